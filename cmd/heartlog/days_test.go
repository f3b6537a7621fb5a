package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// TestDaysCloseAndList: days close refuses today, writes each user-day of
// a past day once to S3, SSDB and the backup, writes nothing when run
// again, and days list shows the day closed on every partition.
func TestDaysCloseAndList(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	_, dbURL := heartlogtest.NewDatabase(t)
	ctx := context.Background()
	_, pub := heartlogtest.Publisher(t, nc, js)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "cmd" + hex.EncodeToString(b)
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	day := start.Format("20060102")
	stores := heartlogtest.OpenStores(t)
	want := map[string][]byte{}
	for u := range 3 {
		user := fmt.Sprintf("%s-user%d", prefix, u)
		var hbs []*heartlogv1.Heartbeat
		for i := range 4 {
			hbs = append(hbs, heartlogtest.Heartbeat(t, user, fmt.Sprintf("f%d.go", i), start.Add(time.Duration(u*5+i)*time.Hour)))
		}
		if err := pub.Publish(ctx, hbs, map[string]string{user: prefix}); err != nil {
			t.Fatal(err)
		}
		merged, _ := dayfile.Merge(nil, hbs)
		data, err := dayfile.Encode(merged)
		if err != nil {
			t.Fatal(err)
		}
		want[dayfile.Key(prefix, user, day)] = data
	}
	t.Cleanup(func() {
		for k := range want {
			_ = stores.Primary.Delete(ctx, k)
			_ = stores.Backup.DeleteAllVersions(ctx, k)
			_ = stores.Cache.Delete(ctx, k, digest.Key(k))
		}
	})
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL}

	today := time.Now().UTC().Format(time.DateOnly)
	out, err := command(env, "days", "close", today).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "only a day that is over can be closed") {
		t.Fatalf("days close %s (today): err %v\n%s", today, err, out)
	}

	display := start.Format(time.DateOnly)
	var stdout, stderr bytes.Buffer
	cmd := command(env, "days", "close", display)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("days close: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), display+": 12 heartbeats, 3 user-days; files written: objects 3, cache 3, backup 3") {
		t.Fatalf("days close printed:\n%s", stdout.String())
	}
	for k, data := range want {
		got, _, err := stores.Primary.Get(ctx, k)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("S3 %s: %d bytes, %v; want %d bytes", k, len(got), err, len(data))
		}
		if got, ok, err := stores.Cache.Get(ctx, k); err != nil || !ok || !bytes.Equal(got, data) {
			t.Fatalf("SSDB %s: found %t, %v", k, ok, err)
		}
		if v, err := stores.Backup.Versions(ctx, k); err != nil || len(v) != 1 {
			t.Fatalf("backup %s: %d versions, %v", k, len(v), err)
		}
	}

	out, err = command(env, "days", "close", display).Output()
	if err != nil {
		t.Fatalf("days close again: %v", err)
	}
	if !strings.Contains(string(out), "already compacted") || !strings.Contains(string(out), "files written: objects 0, cache 0, backup 0") {
		t.Fatalf("days close again printed:\n%s", out)
	}

	out, err = command(env, "days", "list").Output()
	if err != nil {
		t.Fatalf("days list: %v", err)
	}
	row := regexp.MustCompile(regexp.QuoteMeta(display) + `\s+closed\s+\d+\s+12\s+3\s+16/16 to seq \d+, 3 files\s+16/16 to seq \d+, 3 files\s+16/16 to seq \d+, 3 files`)
	if !row.Match(out) {
		t.Fatalf("days list printed:\n%s", out)
	}

	// SSDB loses one entry: replay cache --day compacts the day again for
	// the cache alone, rewriting that entry only.
	var lost string
	for k := range want {
		lost = k
		break
	}
	if err := stores.Cache.Delete(ctx, lost, digest.Key(lost)); err != nil {
		t.Fatal(err)
	}
	out, err = command(env, "replay", "cache", "--day", display).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed 16 compaction records") || !strings.Contains(string(out), "files written: objects 0, cache 1, backup 0") {
		t.Fatalf("replay cache --day: %v\n%s", err, out)
	}
	if got, ok, err := stores.Cache.Get(ctx, lost); err != nil || !ok || !bytes.Equal(got, want[lost]) {
		t.Fatalf("SSDB %s after replay --day: found %t, %v", lost, ok, err)
	}
	if out, err := command(env, "replay", "postgres", "--day", display).CombinedOutput(); err == nil || !strings.Contains(string(out), "--day recompacts") {
		t.Fatalf("replay postgres --day: %v\n%s", err, out)
	}
}
