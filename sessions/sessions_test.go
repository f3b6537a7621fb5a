package sessions_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/internal/heartlogtest"
	"heartlog/sessions"
	"heartlog/streams"
	"heartlog/users"
)

func open(t *testing.T, ttl time.Duration, now func() time.Time) (*sessions.Store, jetstream.KeyValue) {
	t.Helper()
	top := heartlogtest.StartTopology(t, streams.DefaultConfig())
	js, sc := top.JS, top.Config
	ctx := context.Background()
	s, err := sessions.Open(ctx, js, sc.SessionsBucket, sessions.Options{TTL: ttl, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, sc.SessionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	return s, kv
}

func TestSessionLifecycle(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s, _ := open(t, time.Hour, now)
	ctx := context.Background()
	key, err := users.HashKey(users.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	token, sess, err := s.Create(ctx, users.User{ID: "u1"}, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) != 43 || sess.UserID != "u1" || sess.Key != key {
		t.Fatalf("token %d chars, session %+v", len(token), sess)
	}
	other, _, err := s.Create(ctx, users.User{ID: "u1"}, key)
	if err != nil || other == token {
		t.Fatalf("a second sign-in must get its own token: %v", err)
	}
	got, err := s.Lookup(ctx, token)
	if err != nil || got.UserID != "u1" || got.Key != key || !got.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	for _, bad := range []string{"", "short", token[:42] + "!", token + "A"} {
		if _, err := s.Lookup(ctx, bad); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("lookup %q: %v, want ErrNotFound", bad, err)
		}
	}
	// Past its expiry the session is refused, whatever the bucket still holds.
	offset.Store(int64(time.Hour))
	if _, err := s.Lookup(ctx, token); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("lookup at expiry: %v, want ErrNotFound", err)
	}
	offset.Store(0)
	if err := s.Delete(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, token); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("lookup after delete: %v", err)
	}
	if err := s.Delete(ctx, token); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, err := s.Lookup(ctx, other); err != nil {
		t.Fatalf("signing out one session ended another: %v", err)
	}
}

// The bucket forgets a session by itself once its TTL has passed.
func TestBucketExpiresSessions(t *testing.T) {
	s, kv := open(t, time.Second, nil)
	ctx := context.Background()
	key, _ := users.HashKey(users.NewKey())
	if _, _, err := s.Create(ctx, users.User{ID: "u1"}, key); err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return false
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n == 0
	}) {
		t.Fatal("the session is still in the bucket after its TTL")
	}
}
