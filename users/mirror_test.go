package users_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"heartlog/internal/heartlogtest"
	"heartlog/streams"
	"heartlog/users"
)

// bench is a Store mirrored into the users bucket of a fresh JetStream
// server, a Directory on that bucket, and the bucket itself.
type bench struct {
	store *users.Store
	dir   *users.Directory
	kv    jetstream.KeyValue
	js    jetstream.JetStream
	nats  *heartlogtest.NATS
}

func mirrored(t *testing.T, pool *pgxpool.Pool) (*users.Store, *users.Directory, jetstream.KeyValue) {
	b := newBench(t, pool, users.DirectoryOptions{})
	return b.store, b.dir, b.kv
}

func newBench(t *testing.T, pool *pgxpool.Pool, opts users.DirectoryOptions) bench {
	t.Helper()
	top := heartlogtest.StartTopology(t, streams.DefaultConfig())
	ns, js, sc := top.NATS, top.JS, top.Config
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, sc.UsersBucket)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := users.WatchDirectory(ctx, js, sc.UsersBucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dir.Stop() })
	return bench{store: users.NewStore(pool, users.NewMirror(kv)), dir: dir, kv: kv, js: js, nats: ns}
}

// bucketRecord is a record as another program would read it from the bucket.
type bucketRecord struct {
	ID             string `json:"id"`
	ObjectPrefix   string `json:"object_prefix"`
	TimeZone       string `json:"time_zone"`
	TimeoutMinutes int    `json:"timeout_minutes"`
}

func record(t *testing.T, kv jetstream.KeyValue, key string) (bucketRecord, bool) {
	t.Helper()
	h, err := users.HashKey(key)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), h.String())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return bucketRecord{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var r bucketRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		t.Fatalf("record of %s is not JSON: %v", h, err)
	}
	return r, true
}

func keys(t *testing.T, kv jetstream.KeyValue) []string {
	t.Helper()
	ks, err := kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range ks.Keys() {
		out = append(out, k)
	}
	return out
}

func TestEveryWriteReachesTheBucket(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	store, dir, kv := mirrored(t, pool)
	ctx := context.Background()

	u, key, err := store.Create(ctx, users.NewUser{Name: "alice", TimeZone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := record(t, kv, key)
	if !ok || r.ID != u.ID || r.TimeZone != "Europe/Berlin" || r.ObjectPrefix != u.ObjectPrefix || r.TimeoutMinutes != 15 {
		t.Fatalf("record after create = %+v, %v; want alice's", r, ok)
	}

	tz, timeout := "America/New_York", 30
	if _, err := store.Update(ctx, u.ID, users.Change{TimeZone: &tz, TimeoutMinutes: &timeout}); err != nil {
		t.Fatal(err)
	}
	if r, _ := record(t, kv, key); r.TimeZone != tz || r.TimeoutMinutes != 30 {
		t.Fatalf("record after the time zone change = %+v", r)
	}
	hash, _ := users.HashKey(key)
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		got, err := dir.ByKey(ctx, hash)
		return err == nil && got.TimeZone == tz
	}) {
		t.Fatal("the directory did not see the time zone change")
	}

	newKey, err := store.RotateKey(ctx, u.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := record(t, kv, key); ok {
		t.Fatal("the old key still has a record after a new key was issued")
	}
	if r, ok := record(t, kv, newKey); !ok || r.ID != u.ID || r.TimeZone != tz {
		t.Fatalf("record of the new key = %+v, %v", r, ok)
	}
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		_, err := dir.ByKey(ctx, hash)
		return errors.Is(err, users.ErrNotFound)
	}) {
		t.Fatal("the directory still accepts the revoked key")
	}

	if err := store.Delete(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, kv); len(got) != 0 {
		t.Fatalf("bucket keys after the only user was deleted: %v", got)
	}
}

func TestSyncMakesTheBucketEqualToTheTable(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	store, dir, kv := mirrored(t, pool)
	ctx := context.Background()
	alice, aliceKey, err := store.Create(ctx, users.NewUser{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	bob, bobKey, err := store.Create(ctx, users.NewUser{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}

	// A user removed from Postgres behind the Store's back: Sync removes
	// the record; the other user's is left alone.
	if _, err := pool.Exec(ctx, "DELETE FROM users WHERE id = $1", bob.ID); err != nil {
		t.Fatal(err)
	}
	s, err := store.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s != (users.Synced{Deleted: 1, Unchanged: 1}) {
		t.Fatalf("sync = %+v, want 1 deleted and 1 unchanged", s)
	}
	if _, ok := record(t, kv, bobKey); ok {
		t.Fatal("a deleted user's record survived the sync")
	}
	bobHash, _ := users.HashKey(bobKey)
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		_, err := dir.ByKey(ctx, bobHash)
		return errors.Is(err, users.ErrNotFound)
	}) {
		t.Fatal("the directory still knows the deleted user")
	}

	// The bucket emptied (lost, or created after the users): Sync refills it.
	for _, k := range keys(t, kv) {
		if err := kv.Purge(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := record(t, kv, aliceKey); ok {
		t.Fatal("purge left alice's record")
	}
	if s, err := store.Sync(ctx); err != nil || s != (users.Synced{Written: 1}) {
		t.Fatalf("sync of an empty bucket = %+v, %v; want 1 written", s, err)
	}
	if r, ok := record(t, kv, aliceKey); !ok || r.ID != alice.ID {
		t.Fatalf("alice's record after the refill = %+v, %v", r, ok)
	}
	// A record that differs from the table (a stale time zone) is rewritten.
	h, _ := users.HashKey(aliceKey)
	if _, err := kv.Put(ctx, h.String(), []byte(`{"id":"`+alice.ID+`","time_zone":"Asia/Tokyo"}`)); err != nil {
		t.Fatal(err)
	}
	if s, err := store.Sync(ctx); err != nil || s != (users.Synced{Written: 1}) {
		t.Fatalf("sync of a stale record = %+v, %v; want 1 written", s, err)
	}
	if r, _ := record(t, kv, aliceKey); r.TimeZone != "UTC" || r.ObjectPrefix != alice.ObjectPrefix {
		t.Fatalf("alice's record after the repair = %+v", r)
	}
}

func TestBucketHoldsOnlyKeyHashes(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	b := newBench(t, pool, users.DirectoryOptions{})
	store, kv := b.store, b.kv
	ctx := context.Background()
	var clear []string
	u, key, err := store.Create(ctx, users.NewUser{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	clear = append(clear, key)
	if key, err = store.RotateKey(ctx, u.ID, ""); err != nil {
		t.Fatal(err)
	}
	clear = append(clear, key)
	if _, _, err := store.Create(ctx, users.NewUser{Name: "bob", APIKey: "waka_0C5A9B2E-8F4D-4E6A-9B1C-2D3E4F5A6B7C"}); err != nil {
		t.Fatal(err)
	}
	clear = append(clear, "0c5a9b2e-8f4d-4e6a-9b1c-2d3e4f5a6b7c")
	if _, err := store.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	// Every message the bucket's stream holds, deletes and history
	// included: subjects (the keys) and payloads (the records).
	info, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream := info.(*jetstream.KeyValueBucketStatus).StreamInfo()
	s, err := b.js.Stream(ctx, stream.Config.Name)
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for seq := stream.State.FirstSeq; seq <= stream.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString(m.Subject + "\n")
		all.Write(m.Data)
		all.WriteString("\n")
	}
	if all.Len() == 0 {
		t.Fatal("the bucket's stream is empty: nothing was checked")
	}
	text := strings.ToLower(all.String())
	for _, k := range clear {
		bare := strings.ToLower(strings.TrimPrefix(k, "waka_"))
		if strings.Contains(text, bare) || strings.Contains(text, strings.ReplaceAll(bare, "-", "")) {
			t.Fatalf("an API key appears in clear in the users bucket")
		}
	}
}

func TestWriteThatCannotReachTheBucketLeavesNoUser(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	b := newBench(t, pool, users.DirectoryOptions{})
	store := b.store
	ctx := context.Background()
	u, _, err := store.Create(ctx, users.NewUser{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.js.DeleteKeyValue(ctx, b.kv.Bucket()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Create(ctx, users.NewUser{Name: "bob"}); err == nil {
		t.Fatal("create succeeded without the users bucket")
	}
	tz := "Europe/Paris"
	if _, err := store.Update(ctx, u.ID, users.Change{TimeZone: &tz}); err == nil {
		t.Fatal("update succeeded without the users bucket")
	}
	var n int
	var aliceTZ string
	if err := pool.QueryRow(ctx, "SELECT count(*), max(time_zone) FROM users").Scan(&n, &aliceTZ); err != nil {
		t.Fatal(err)
	}
	if n != 1 || aliceTZ != "UTC" {
		t.Fatalf("users table after failed writes: %d users, alice in %s; want only alice, unchanged", n, aliceTZ)
	}
}

func TestDirectoryAnswersThroughABriefNATSOutageOnly(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	b := newBench(t, pool, users.DirectoryOptions{MaxStale: 2 * time.Second})
	ctx := context.Background()
	alice, key, err := b.store.Create(ctx, users.NewUser{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := users.HashKey(key)
	if u, err := b.dir.ByKey(ctx, hash); err != nil || u.ID != alice.ID {
		t.Fatalf("ByKey right after Create = %+v, %v", u, err)
	}
	unknown, _ := users.HashKey(users.NewKey())
	if _, err := b.dir.ByKey(ctx, unknown); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("unknown key: %v, want ErrNotFound", err)
	}

	// The answer above may have come from the bucket: the local copy is
	// what must answer through the outage, so wait for the watch to bring it.
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.dir.Await(actx, alice.ID, func(users.User) bool { return true }); err != nil {
		t.Fatalf("the watch did not bring alice's record: %v", err)
	}
	b.nats.Shutdown()
	if u, err := b.dir.ByKey(ctx, hash); err != nil || u.ID != alice.ID {
		t.Fatalf("ByKey just after NATS went away = %+v, %v; want the local copy", u, err)
	}
	if !heartlogtest.Eventually(20*time.Second, func() bool {
		_, err := b.dir.ByKey(ctx, hash)
		return errors.Is(err, users.ErrUnavailable)
	}) {
		t.Fatal("the directory still answers from its copy long after NATS went away")
	}

	b.nats.Restart(t)
	if !heartlogtest.Eventually(20*time.Second, func() bool {
		_, err := b.dir.ByKey(ctx, hash)
		return err == nil
	}) {
		t.Fatal("the directory did not recover after NATS came back")
	}
	// The watch goes on after the restart: a key revoked now stops working.
	if _, err := b.store.RotateKey(ctx, alice.ID, ""); err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(20*time.Second, func() bool {
		_, err := b.dir.ByKey(ctx, hash)
		return errors.Is(err, users.ErrNotFound)
	}) {
		t.Fatal("a key revoked after the NATS restart still works")
	}
}
