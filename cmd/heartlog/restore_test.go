package main_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// TestRestoreKilledAndRerun runs `heartlog restore` for a user whose day
// files got late heartbeats after T: a dry run writes nothing, a restore
// SIGKILLed (HEARTLOG_DEBUG_RESTORE_KILL_AFTER) after 5 files has restored
// exactly those, and a re-run finishes the rest: every file is back to its
// bytes at T in S3 and in the cache.
func TestRestoreKilledAndRerun(t *testing.T) {
	s := heartlogtest.Start(t, heartlogtest.Options{SingleDatabase: true})
	u, _ := s.CreateUser(t, "restorer", "")
	st := heartlogtest.OpenStores(t)
	sinks := st.Sinks(t)
	ctx := context.Background()
	first := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	const days = 12
	keys := make([]string, days)
	commit := func(tag string, n int) {
		t.Helper()
		var batches []*heartlogv1.Batch
		for d := range days {
			b := &heartlogv1.Batch{Day: first.AddDate(0, 0, d).Format(heartbeat.DayLayout), ObjectPrefixes: map[string]string{u.ID: u.ObjectPrefix}}
			for i := range n {
				b.Heartbeats = append(b.Heartbeats, heartlogtest.Heartbeat(t, u.ID, fmt.Sprintf("%s-%d.go", tag, i), first.AddDate(0, 0, d).Add(time.Duration(10+i)*time.Hour)))
			}
			keys[d] = dayfile.Key(u.ObjectPrefix, u.ID, b.Day)
			batches = append(batches, b)
		}
		for _, sink := range sinks {
			if err := sink.Commit(ctx, batches); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit("at-t", 3)
	atT := map[string][]byte{}
	for _, k := range keys {
		data, _, err := st.Primary.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		atT[k] = data
	}
	at := time.Now().Truncate(time.Second).Add(time.Second - time.Millisecond)
	for deadline := time.Now().Add(5 * time.Second); !time.Now().After(at.Add(time.Millisecond)); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the clock did not move")
		}
	}
	commit("late", 1)
	restored := func() (n int) {
		t.Helper()
		for _, k := range keys {
			data, _, err := st.Primary.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			c, ok, err := st.Cache.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(data, atT[k]) && ok && bytes.Equal(c, atT[k]) {
				n++
			}
		}
		return n
	}
	env := []string{"HEARTLOG_NATS_URL=" + s.NATS.URL, "HEARTLOG_POSTGRES_URL=" + s.DBURL, "HEARTLOG_LOG_LEVEL=warn"}
	args := []string{"restore", "--at", at.UTC().Format(time.RFC3339Nano), "--user", u.ID, "--concurrency", "1"}

	out, err := command(env, append(args, "--dry-run")...).CombinedOutput()
	if err != nil || strings.Count(string(out), "+0 -1 heartbeats") != 2*days || !strings.Contains(string(out), fmt.Sprintf("%d would change", days)) {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if n := restored(); n != 0 {
		t.Fatalf("the dry run restored %d files", n)
	}
	out, err = command(append(env, "HEARTLOG_DEBUG_RESTORE_KILL_AFTER=5"), args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "killed after 5 files") {
		t.Fatalf("restore with the kill hook: %v\n%s", err, out)
	}
	if n := restored(); n != 5 {
		t.Fatalf("killed after 5 files: %d restored\n%s", n, out)
	}
	out, err = command(env, args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d files in the backup's history, %d changed", days, days-5)) {
		t.Fatalf("re-run: %v\n%s", err, out)
	}
	if n := restored(); n != days {
		t.Fatalf("after the re-run: %d of %d files at their content at T\n%s", n, days, out)
	}
	t.Logf("re-run:\n%s", out)
	// Finished: the same command does nothing (its journal says so), and
	// --again finds every file at its content.
	if out, err = command(env, args...).CombinedOutput(); err != nil || !strings.Contains(string(out), "already done by an earlier run") {
		t.Fatalf("the finished restore run again: %v\n%s", err, out)
	}
	if out, err = command(env, append(args, "--again")...).CombinedOutput(); err != nil || !strings.Contains(string(out), ", 0 changed") {
		t.Fatalf("--again: %v\n%s", err, out)
	}
}

// TestRestoreRefusesBadFlags: bad input is a clear error before anything
// is read or written.
func TestRestoreRefusesBadFlags(t *testing.T) {
	for args, want := range map[string]string{
		"--dry-run":                  "--at is required",
		"--at yesterday":             `--at: "yesterday": want RFC 3339`,
		"--at 1h --to disk":          `--to "disk": want objects, cache or both`,
		"--at 1h --since 2026-13-01": "--since:",
		"--at 1h --day 2026-11-01 --until 2026-11-02": "if any flags in the group [day until] are set none of the others can be",
	} {
		out, err := command(nil, append([]string{"restore"}, strings.Fields(args)...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("restore %s: %v, %s; want an error saying %q", args, err, out, want)
		}
	}
}
