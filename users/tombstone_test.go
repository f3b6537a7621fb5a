package users_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/users"
)

// TestTombstone: a tombstoned user's key stops working and every watcher
// of the bucket sees the user deleted; a second Tombstone returns the same
// record; a bucket that lost it gets it back from Sync; an id that was
// never a user is refused.
func TestTombstone(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	store, dir, kv := mirrored(t, pool)
	ctx := context.Background()
	u, key, err := store.Create(ctx, users.NewUser{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := store.Create(ctx, users.NewUser{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := store.Tombstone(ctx, u.ID)
	if err != nil || ts.ObjectPrefix != u.ObjectPrefix || ts.DeletedAt.IsZero() {
		t.Fatalf("Tombstone = %+v, %v", ts, err)
	}
	hash, _ := users.HashKey(key)
	if !heartlogtest.Eventually(5*time.Second, func() bool {
		_, err := dir.ByKey(ctx, hash)
		return dir.Deleted(u.ID) && errors.Is(err, users.ErrNotFound)
	}) {
		t.Fatal("the directory does not see the user deleted, or still takes its key")
	}
	if dir.Deleted(other.ID) {
		t.Fatal("another user is deleted too")
	}
	if _, err := store.ByID(ctx, u.ID); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("the users row is still there: %v", err)
	}
	again, err := store.Tombstone(ctx, u.ID)
	if err != nil || again.ID != u.ID || !again.DeletedAt.Equal(ts.DeletedAt) {
		t.Fatalf("second Tombstone = %+v, %v; want the first", again, err)
	}
	if err := kv.Delete(ctx, "deleted."+u.ID); err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(5*time.Second, func() bool { return !dir.Deleted(u.ID) }) {
		t.Fatal("the directory did not follow the bucket")
	}
	if _, err := store.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(5*time.Second, func() bool { return dir.Deleted(u.ID) }) {
		t.Fatal("Sync did not put the lost tombstone back")
	}
	ids, err := store.DeletedIDs(ctx)
	if err != nil || len(ids) != 1 || !ids[u.ID] {
		t.Fatalf("DeletedIDs = %v, %v", ids, err)
	}
	if _, err := store.Tombstone(ctx, "00000000-0000-4000-8000-00000000dead"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("Tombstone of an unknown id: %v, want ErrNotFound", err)
	}
}
