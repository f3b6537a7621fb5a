package objstore_test

import (
	"errors"
	"testing"
	"time"

	"heartlog/objstore"
)

// TestHistory checks that History lists versions and delete markers of
// every key under a prefix, and that DeleteIfMatch refuses a stale ETag.
func TestHistory(t *testing.T) {
	raw := newS3(t, envConfig(t, backupEnv))
	ctx, w := testContext(t), newWorkspace(t, raw)
	a, b := w.key("h/a.ndjson.gz"), w.key("h/b.ndjson.gz")
	etag1, err := raw.Put(ctx, a, []byte("a1"))
	if err != nil {
		t.Fatal(err)
	}
	firstWritten := time.Now()
	// The next version is written in a later second, so that a server
	// that reports when a version was superseded is told apart.
	for next := firstWritten.Truncate(time.Second).Add(time.Second); time.Now().Before(next); {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := raw.Put(ctx, a, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if err := raw.DeleteIfMatch(ctx, a, etag1); !errors.Is(err, objstore.ErrPreconditionFailed) {
		t.Fatalf("delete under a stale ETag: %v, want ErrPreconditionFailed", err)
	}
	if data, _, err := raw.Get(ctx, a); err != nil || string(data) != "a2" {
		t.Fatalf("after a refused delete: %q, %v", data, err)
	}
	etagB, err := raw.Put(ctx, b, []byte("b1"))
	if err != nil {
		t.Fatal(err)
	}
	// The delete in a later second too: a server that lists a marker at
	// the time of the version it hides is told apart.
	for next := time.Now().Truncate(time.Second).Add(time.Second); time.Now().Before(next); {
		time.Sleep(10 * time.Millisecond)
	}
	deleting := time.Now()
	if err := raw.DeleteIfMatch(ctx, b, etagB); err != nil {
		t.Fatal(err)
	}
	if _, _, err := raw.Get(ctx, b); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("after a conditional delete: %v, want ErrNotFound", err)
	}
	versions, markers := map[string]int{}, map[string]int{}
	for e, err := range raw.History(ctx, w.key("h/")) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Key == a && !e.IsLatest && e.LastModified.After(firstWritten) {
			t.Errorf("the first version of a: LastModified %s, after it was written (%s)", e.LastModified, firstWritten)
		}
		if e.DeleteMarker && e.LastModified.Before(deleting.Truncate(time.Second)) {
			t.Errorf("the delete marker of b: LastModified %s, before it was made (%s)", e.LastModified, deleting)
		}
		if e.DeleteMarker {
			markers[e.Key]++
		} else {
			versions[e.Key]++
		}
	}
	if versions[a] != 2 || markers[a] != 0 || versions[b] != 1 || markers[b] != 1 {
		t.Fatalf("history: versions %v, delete markers %v; want a: 2 versions, b: 1 version and 1 marker", versions, markers)
	}
}
