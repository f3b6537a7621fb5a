package main_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
	"heartlog/users"
)

// TestUsersDelete deletes one of two users whose heartbeats are in
// Postgres (a hot day and a closed one), S3, the cache and the backup (two
// versions): afterwards the key is refused, nothing of the user is left
// but the backup's versions, and neither a replay of the stream into every
// sink, a recompaction, a late heartbeat nor a restore to before the delete
// brings anything back. Run again with --purge-backups, it erases the
// backup's versions too. The other user keeps everything.
func TestUsersDelete(t *testing.T) {
	s := heartlogtest.Start(t, heartlogtest.Options{})
	st := heartlogtest.OpenStores(t)
	ctx := context.Background()
	alice, aliceKey := s.CreateUser(t, "alice", "")
	bob, bobKey := s.CreateUser(t, "bob", "")
	closed := time.Date(2019, 3, 17, 10, 0, 0, 0, time.UTC) // days no other test uses: the restore below is of the whole day
	hot := time.Date(2019, 3, 19, 10, 0, 0, 0, time.UTC)
	for _, key := range []string{aliceKey, bobKey} {
		var items []string
		for i, day := range []time.Time{closed, hot} {
			for j := range 3 {
				items = append(items, fmt.Sprintf(`{"entity":"f%d-%d.go","type":"file","time":%d}`, i, j, day.Add(time.Duration(j)*time.Minute).Unix()))
			}
		}
		if resp, b := s.Post(t, "/api/v1/users/current/heartbeats.bulk", key, []byte("["+strings.Join(items, ",")+"]")); resp.StatusCode != http.StatusCreated {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	heartlogtest.WaitPostgresAcked(t, s)
	s.CloseDay(t, closed, &st)
	// A second version of each closed-day file in the backup (a late heartbeat).
	day := closed.Format(heartbeat.DayLayout)
	for _, u := range []users.User{alice, bob} {
		b := &heartlogv1.Batch{Day: day, ObjectPrefixes: map[string]string{u.ID: u.ObjectPrefix},
			Heartbeats: []*heartlogv1.Heartbeat{heartlogtest.Heartbeat(t, u.ID, "late.go", closed.Add(time.Hour))}}
		for _, sink := range st.Sinks(t) {
			if err := sink.Commit(ctx, []*heartlogv1.Batch{b}); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := time.Now()
	time.Sleep(1100 * time.Millisecond) // restore --at before is a second before the delete
	rows := func(u users.User) int {
		return s.Count(t, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
	}
	bobRows, bobFile := rows(bob), dayFile(t, st, bob, day)
	if rows(alice) != 6 || bobRows != 6 || bobFile == nil || dayFile(t, st, alice, day) == nil {
		t.Fatalf("before the delete: %d and %d rows, bob's file %d bytes", rows(alice), bobRows, len(bobFile))
	}
	if n := backupEntries(t, st, alice); n < 2 {
		t.Fatalf("alice has %d backup versions before the delete, want 2", n)
	}

	// A copy each sink keeps of a file it could not read holds the
	// heartbeats too: one of each user's in S3 and in the backup.
	quarantined := func(u users.User) string {
		return "quarantine/" + dayfile.Key(u.ObjectPrefix, u.ID, day) + ".1700000000"
	}
	for _, u := range []users.User{alice, bob} {
		for _, b := range []*objstore.S3{st.Primary, st.Backup} {
			if _, err := b.Put(ctx, quarantined(u), dayFile(t, st, u, day)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		_ = st.Primary.Delete(ctx, quarantined(bob))
		_ = st.Backup.DeleteAllVersions(ctx, quarantined(bob))
	})
	quarantinedIn := func(b *objstore.S3, u users.User) bool {
		_, _, err := b.Get(ctx, quarantined(u))
		return err == nil
	}

	env := []string{"HEARTLOG_NATS_URL=" + s.NATS.URL, "HEARTLOG_POSTGRES_URL=" + s.DBURL,
		"HEARTLOG_POSTGRES_SHARD_URLS=" + strings.Join(s.ShardURLs, ","), "HEARTLOG_LOG_LEVEL=warn"}
	run := func(args ...string) string {
		t.Helper()
		out, err := command(env, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("heartlog %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("users", "delete", alice.ID, "--settle", "1s")
	t.Logf("users delete:\n%s", out)
	for _, want := range []string{"deleted user alice", "postgres: 6 rows removed", "s3: 1 day files removed, and 1 quarantined copies", "backup: kept "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		resp, _ := s.Post(t, "/api/v1/users/current/heartbeats.bulk", aliceKey, []byte(fmt.Sprintf(`[{"entity":"x.go","type":"file","time":%d}]`, hot.Unix())))
		return resp.StatusCode == http.StatusUnauthorized
	}) {
		t.Fatal("the deleted user's key still authenticates")
	}
	gone := func(when string) {
		t.Helper()
		if n := rows(alice); n != 0 {
			t.Errorf("%s: %d rows of the deleted user in the shard databases", when, n)
		}
		if keys, err := objstore.ListAll(ctx, st.Primary, alice.ObjectPrefix+"/"+alice.ID+"/"); err != nil || len(keys) != 0 {
			t.Errorf("%s: S3 still holds %v (%v)", when, keys, err)
		}
		for _, d := range []time.Time{closed, hot} {
			k := dayfile.Key(alice.ObjectPrefix, alice.ID, d.Format(heartbeat.DayLayout))
			vals, err := st.Cache.MGet(ctx, []string{k, digest.Key(k), digest.GenKey(k)})
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if v != nil {
					t.Errorf("%s: cache key %d of %s is still there", when, i, d.Format(time.DateOnly))
				}
			}
		}
		if quarantinedIn(st.Primary, alice) {
			t.Errorf("%s: S3 still holds the deleted user's quarantined copy", when)
		}
		if rows(bob) != bobRows || string(dayFile(t, st, bob, day)) != string(bobFile) || !quarantinedIn(st.Primary, bob) {
			t.Errorf("%s: bob lost data: %d rows", when, rows(bob))
		}
	}
	gone("after users delete")
	kept := backupEntries(t, st, alice)
	if kept < 2 {
		t.Errorf("without --purge-backups the backup kept %d versions, want them all", kept)
	}

	// Nothing comes back: a heartbeat still on its way (published past the
	// API), replays of the whole stream into every sink, a recompaction
	// of the closed day, a restore to before the delete, a backup verify.
	_, pub := heartlogtest.Publisher(t, s.NC, s.JS)
	late := heartlogtest.Heartbeat(t, alice.ID, "in-flight.go", closed.Add(2*time.Hour))
	if err := pub.Publish(ctx, []*heartlogv1.Heartbeat{late}, map[string]string{alice.ID: alice.ObjectPrefix}); err != nil {
		t.Fatal(err)
	}
	heartlogtest.WaitPostgresAcked(t, s)
	for _, p := range []string{streams.DurablePostgres, streams.DurableObjects, streams.DurableCache, streams.DurableBackup} {
		run("replay", p)
	}
	run("replay", "cache", "--day", closed.Format(time.DateOnly))
	run("restore", "--at", before.UTC().Format(time.RFC3339Nano), "--day", closed.Format(time.DateOnly))
	if out, err := command(env, "restore", "--at", before.UTC().Format(time.RFC3339Nano), "--user", alice.ID).CombinedOutput(); err == nil {
		t.Errorf("restore --user of the deleted user succeeded:\n%s", out)
	}
	// Over the shared buckets, where other tests leave drift (exit status 3).
	verify, _ := command(env, "backup", "verify", "--since", closed.Format(time.DateOnly)).CombinedOutput()
	if !strings.Contains(string(verify), "day files in S3") || strings.Contains(string(verify), alice.ID) {
		t.Errorf("backup verify reports the deleted user's kept backup:\n%s", verify)
	}
	gone("after replays, a recompaction and a restore")
	if n := backupEntries(t, st, alice); n != kept {
		t.Errorf("the backup has %d versions of the deleted user after the replays, %d before", n, kept)
	}

	out = run("users", "delete", alice.ID, "--purge-backups", "--settle", "1s")
	t.Logf("users delete --purge-backups:\n%s", out)
	if !strings.Contains(out, "finishing the removal") || !strings.Contains(out, "versions and delete markers of 2 files erased") {
		t.Errorf("re-run with --purge-backups:\n%s", out)
	}
	if n := backupEntries(t, st, alice); n != 0 || quarantinedIn(st.Backup, alice) {
		t.Errorf("after --purge-backups the backup holds %d versions or markers of the deleted user (or its quarantined copy)", n)
	}
	if !quarantinedIn(st.Backup, bob) {
		t.Error("bob's quarantined copy in the backup went too")
	}
	gone("after --purge-backups")
	if backupEntries(t, st, bob) < 2 {
		t.Error("bob's backup versions went too")
	}

	out2, err := command(env, "users", "delete", "00000000-0000-4000-8000-00000000dead").CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "no deleted one") {
		t.Errorf("delete of an unknown id: %v\n%s", err, out2)
	}
}

// dayFile is u's file of day in S3, nil if there is none.
func dayFile(t *testing.T, st heartlogtest.Stores, u users.User, day string) []byte {
	t.Helper()
	data, _, err := st.Primary.Get(context.Background(), dayfile.Key(u.ObjectPrefix, u.ID, day))
	if err != nil {
		return nil
	}
	return data
}

// backupEntries counts the versions and delete markers under u's prefix in the
// backup.
func backupEntries(t *testing.T, st heartlogtest.Stores, u users.User) int {
	t.Helper()
	n := 0
	for _, err := range st.Backup.History(context.Background(), u.ObjectPrefix+"/"+u.ID+"/") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
