package shards_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"heartlog/shards"
)

func TestLockExclusive(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	kv := e.locks()
	a, err := shards.Acquire(ctx, kv, "l", "a", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = shards.Acquire(ctx, kv, "l", "b", 5*time.Second)
	var held *shards.HeldError
	if !errors.Is(err, shards.ErrHeld) || !errors.As(err, &held) || held.Holder != "a" {
		t.Fatalf("second Acquire: %v, want ErrHeld naming a", err)
	}
	if err := a.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(ctx); !errors.Is(err, shards.ErrLost) {
		t.Errorf("Check after Release: %v", err)
	}
	b, err := shards.Acquire(ctx, kv, "l", "b", 5*time.Second)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if err := a.Release(ctx); !errors.Is(err, shards.ErrLost) {
		t.Errorf("a's second Release: %v, want ErrLost", err)
	}
	if err := b.Check(ctx); err != nil {
		t.Errorf("a's stale Release touched b's lock: %v", err)
	}
}

// A lock whose owner is paused past its TTL (no renewal) expires; another
// owner takes it, and the paused owner can neither check, renew nor
// release it.
func TestLockTTLExpiresWhileOwnerPaused(t *testing.T) {
	t.Parallel()
	for _, atomic := range []bool{true, false} {
		name := map[bool]string{true: "atomic renew", false: "delete and create"}[atomic]
		t.Run(name, func(t *testing.T) {
			e := setup(t)
			ctx := context.Background()
			kv := e.locks()
			var opts []shards.LockOption
			if atomic {
				opts = append(opts, shards.WithJetStream(e.js))
			}
			a, err := shards.Acquire(ctx, kv, "l", "a", time.Second, opts...)
			if err != nil {
				t.Fatal(err)
			}
			// Renewal works while we hold it, and keeps the TTL.
			time.Sleep(600 * time.Millisecond)
			rev := a.Revision()
			if err := a.Renew(ctx); err != nil {
				t.Fatal(err)
			}
			// Atomic: one write. Fallback: a delete marker, then a create.
			if want := map[bool]uint64{true: rev + 1, false: rev + 2}[atomic]; a.Revision() != want {
				t.Errorf("after Renew the revision is %d, want %d", a.Revision(), want)
			}
			time.Sleep(600 * time.Millisecond) // 1.2s after Acquire, 0.6s after Renew
			if err := a.Check(ctx); err != nil {
				t.Fatalf("renewed lock expired early: %v", err)
			}
			if _, err := shards.Acquire(ctx, kv, "l", "b", time.Second); !errors.Is(err, shards.ErrHeld) {
				t.Fatalf("Acquire of a renewed lock: %v", err)
			}

			// Paused: no renewal past the TTL.
			time.Sleep(1500 * time.Millisecond)
			b, err := shards.Acquire(ctx, kv, "l", "b", 5*time.Second, opts...)
			if err != nil {
				t.Fatalf("Acquire after the TTL: %v", err)
			}
			if err := a.Check(ctx); !errors.Is(err, shards.ErrLost) {
				t.Errorf("paused owner's Check: %v, want ErrLost", err)
			}
			if err := a.Renew(ctx); !errors.Is(err, shards.ErrLost) {
				t.Errorf("paused owner's Renew: %v, want ErrLost", err)
			}
			if err := a.Release(ctx); !errors.Is(err, shards.ErrLost) {
				t.Errorf("paused owner's Release: %v, want ErrLost", err)
			}
			if err := b.Check(ctx); err != nil {
				t.Errorf("the new owner lost the lock to the paused one: %v", err)
			}
		})
	}
}

// An expired key that nobody took is not silently regained by its old
// owner's renewal.
func TestLockNotRegainedAfterExpiry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	a, err := shards.Acquire(ctx, e.locks(), "l", "a", time.Second, shards.WithJetStream(e.js))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := a.Renew(ctx); !errors.Is(err, shards.ErrLost) {
		t.Fatalf("Renew after expiry: %v, want ErrLost", err)
	}
}

func TestKeepRenewsAndReportsLoss(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	kv := e.locks()
	a, err := shards.Acquire(ctx, kv, "l", "a", time.Second, shards.WithJetStream(e.js))
	if err != nil {
		t.Fatal(err)
	}
	held, stop := a.Keep(ctx, 0)
	defer stop()
	time.Sleep(3 * time.Second) // three TTLs
	if held.Err() != nil {
		t.Fatalf("Keep let the lock go: %v", context.Cause(held))
	}
	if err := a.Check(ctx); err != nil {
		t.Fatalf("kept lock: %v", err)
	}
	// Someone takes the key over (as after an expiry): Keep notices.
	if err := kv.Purge(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if _, err := shards.Acquire(ctx, kv, "l", "b", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Done():
		if !errors.Is(context.Cause(held), shards.ErrLost) {
			t.Errorf("cause %v, want ErrLost", context.Cause(held))
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Keep did not notice the loss")
	}
}
