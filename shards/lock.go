package shards

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrHeld means another owner holds the lock.
var ErrHeld = errors.New("shards: lock held by another owner")

// ErrLost means the lock is no longer ours: its TTL ran out (the owner was
// paused, or could not reach NATS to renew), and the key expired or another
// owner took it. A holder that sees ErrLost must stop at once; every step it
// has not started yet is left to the next owner.
var ErrLost = errors.New("shards: lock lost")

// HeldError is the ErrHeld an Acquire returns: it names the holder.
type HeldError struct {
	Name   string
	Holder string
}

func (e *HeldError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("shards: lock %s is held by another owner", e.Name)
	}
	return fmt.Sprintf("shards: lock %s is held by %s", e.Name, e.Holder)
}

// Is makes errors.Is(err, ErrHeld) hold.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Lock is a cluster-wide lock: one key in a KV bucket with a per-key TTL
// (the locks bucket, created with LimitMarkerTTL, which needs nats-server
// 2.11+). The key's value is the owner; the Lock remembers the revision its
// own last write got, and every operation is a compare-and-set against that
// revision, so an owner can never act on a key someone else has written
// since.
//
// Renewing: kv.Update in nats.go v1.55 takes no options and publishes the
// new revision without a Nats-TTL header: the renewed key would then never
// expire, and a crashed owner would hold the lock forever. So a renewal is a
// publish to the key's subject carrying both the expected last subject
// sequence (our revision: the same compare-and-set Update makes) and a fresh
// Nats-TTL: exactly what kv.Create(..., KeyTTL) sends, at our revision
// instead of zero. That needs the JetStream the bucket lives in
// (WithJetStream). Without it, Renew falls back to Delete(LastRevision(rev))
// followed by Create(KeyTTL): safe (the delete succeeds only if the key is
// still ours, and the create only if nobody took the key in between) but
// not atomic: in the moment between the two another owner may take the
// lock, and then Renew returns ErrLost.
type Lock struct {
	kv    jetstream.KeyValue
	js    jetstream.JetStream // set when renewals can be atomic
	key   string
	owner string
	ttl   time.Duration

	mu    sync.Mutex
	rev   uint64
	wrote time.Time // when the write that made rev was sent: its TTL runs from no earlier
}

// LockOption changes how Acquire's lock behaves.
type LockOption func(*Lock)

// WithJetStream gives the lock the JetStream its bucket lives in, so that
// Renew is one atomic compare-and-set with a fresh TTL (see Lock). It is
// ignored when the bucket is a mirror or the JetStream uses an API prefix or
// domain, where the key's write subject differs.
func WithJetStream(js jetstream.JetStream) LockOption {
	return func(l *Lock) { l.js = js }
}

// Acquire takes the lock name for owner, for ttl. It fails with an error
// that matches ErrHeld (a *HeldError naming the holder) when the key exists.
// The TTL must be at least a second (the server's granularity) and the
// bucket must allow per-key TTLs.
func Acquire(ctx context.Context, kv jetstream.KeyValue, name, owner string, ttl time.Duration, opts ...LockOption) (*Lock, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("shards: lock TTL %s is under the server's one-second granularity", ttl)
	}
	if owner == "" {
		return nil, errors.New("shards: lock owner is empty")
	}
	l := &Lock{kv: kv, key: name, owner: owner, ttl: ttl}
	for _, o := range opts {
		o(l)
	}
	if l.js != nil && !atomicRenewal(ctx, l.js, kv) {
		l.js = nil
	}
	sent := time.Now()
	rev, err := kv.Create(ctx, name, []byte(owner), jetstream.KeyTTL(ttl))
	if errors.Is(err, jetstream.ErrKeyExists) {
		held := &HeldError{Name: name}
		if e, gerr := kv.Get(ctx, name); gerr == nil {
			held.Holder = string(e.Value())
		}
		return nil, held
	}
	if err != nil {
		return nil, fmt.Errorf("shards: acquire lock %s: %w", name, err)
	}
	l.rev, l.wrote = rev, sent
	return l, nil
}

// atomicRenewal reports whether a publish to $KV.<bucket>.<key> through js
// writes the bucket's key, as kv.Put does.
func atomicRenewal(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) bool {
	o := js.Options()
	if (o.APIPrefix != "" && o.APIPrefix != jetstream.DefaultAPIPrefix) || o.Domain != "" {
		return false
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return false
	}
	b, ok := st.(*jetstream.KeyValueBucketStatus)
	return ok && b.StreamInfo() != nil && b.StreamInfo().Config.Mirror == nil
}

// Name is the lock's key.
func (l *Lock) Name() string { return l.key }

// Owner is the value the lock holds.
func (l *Lock) Owner() string { return l.owner }

// TTL is how long the key lives after each write.
func (l *Lock) TTL() time.Duration { return l.ttl }

// Revision is the key's revision of our last write.
func (l *Lock) Revision() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev
}

func (l *Lock) wroteAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wrote
}

// Check verifies that the key still holds our owner at our revision. It
// returns ErrLost when it does not, and another error when it cannot tell
// (NATS unreachable): callers stop in both cases. The janitor calls it
// before every step, so that an owner that was paused past its TTL does not
// take the next step. It cannot stop a step already under way: that is why
// every step is also idempotent and safe to repeat (see the package doc).
func (l *Lock) Check(ctx context.Context) error {
	rev := l.Revision()
	e, err := l.kv.Get(ctx, l.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return fmt.Errorf("%w: %s expired or was released", ErrLost, l.key)
	}
	if err != nil {
		return fmt.Errorf("shards: check lock %s: %w", l.key, err)
	}
	// A renewal (Keep) may have written the key between the two reads: then
	// the key is at our newer revision, which Revision gives once Renew is
	// done (it holds the mutex until it has stored it).
	if string(e.Value()) != l.owner || e.Revision() != rev && e.Revision() != l.Revision() {
		return fmt.Errorf("%w: %s is now held by %q at revision %d (ours was %d)", ErrLost, l.key, e.Value(), e.Revision(), rev)
	}
	return nil
}

// Renew writes the key again with a fresh TTL, only if it is still ours.
func (l *Lock) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	sent := time.Now()
	if l.js != nil {
		pa, err := l.js.PublishMsg(ctx,
			&nats.Msg{Subject: "$KV." + l.kv.Bucket() + "." + l.key, Data: []byte(l.owner)},
			jetstream.WithExpectLastSequencePerSubject(l.rev), jetstream.WithMsgTTL(l.ttl))
		if isCASConflict(err) {
			return fmt.Errorf("%w: %s changed since revision %d", ErrLost, l.key, l.rev)
		}
		if err != nil {
			return fmt.Errorf("shards: renew lock %s: %w", l.key, err)
		}
		l.rev, l.wrote = pa.Sequence, sent
		return nil
	}
	err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
	if isCASConflict(err) {
		return fmt.Errorf("%w: %s changed since revision %d", ErrLost, l.key, l.rev)
	}
	if err != nil {
		return fmt.Errorf("shards: renew lock %s: %w", l.key, err)
	}
	rev, err := l.kv.Create(ctx, l.key, []byte(l.owner), jetstream.KeyTTL(l.ttl))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w: %s taken by another owner while renewing", ErrLost, l.key)
	}
	if err != nil {
		// Our delete went through: the key is free, so the lock is gone.
		return fmt.Errorf("%w: renew %s: %w", ErrLost, l.key, err)
	}
	l.rev, l.wrote = rev, sent
	return nil
}

func isCASConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Release deletes the key if it is still ours; if it is not, it leaves the
// key alone and returns ErrLost.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
	if isCASConflict(err) {
		return fmt.Errorf("%w: %s changed since revision %d; not released", ErrLost, l.key, l.rev)
	}
	if err != nil {
		return fmt.Errorf("shards: release lock %s: %w", l.key, err)
	}
	return nil
}

// Keep renews the lock every `every` (TTL/3 when zero) until stop is
// called or ctx ends. The returned context is cancelled, with ErrLost as
// its cause (context.Cause), as soon as the lock is known lost (a renewal
// found the key changed) or must be presumed lost: renewals kept failing
// (NATS unreachable) until less than one period of the TTL was left. stop
// ends the renewer and waits for it; it does not release the lock.
func (l *Lock) Keep(ctx context.Context, every time.Duration) (held context.Context, stop func()) {
	if every <= 0 {
		every = l.ttl / 3
	}
	held, cancel := context.WithCancelCause(ctx)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-quit:
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(held, every)
			err := l.Renew(rctx)
			rcancel()
			switch {
			case err == nil:
			case errors.Is(err, ErrLost):
				cancel(err)
				return
			case time.Since(l.wroteAt()) >= l.ttl-every:
				cancel(fmt.Errorf("%w: %s not renewed since %s, its TTL is %s: %w", ErrLost, l.key, l.wroteAt().Format(time.RFC3339Nano), l.ttl, err))
				return
			}
		}
	}()
	var once sync.Once
	return held, func() {
		once.Do(func() {
			close(quit)
			<-done
			cancel(context.Canceled)
		})
	}
}
