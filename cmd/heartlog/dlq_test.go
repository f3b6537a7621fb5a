package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

type dlqEntry struct {
	Seq       uint64 `json:"seq"`
	Processor string `json:"processor"`
	Reason    string `json:"reason"`
	User      string `json:"user_id"`
	Heartbeat string `json:"heartbeat_id"`
	RetryOf   uint64 `json:"retry_of"`
}

func dlqList(t *testing.T, env []string) []dlqEntry {
	t.Helper()
	out, err := command(env, "dlq", "list", "--json").Output()
	if err != nil {
		t.Fatalf("dlq list --json: %v", err)
	}
	var entries []dlqEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e dlqEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("dlq list --json line %q: %v", sc.Text(), err)
		}
		entries = append(entries, e)
	}
	return entries
}

// TestDLQCommands: a poison heartbeat parked by a replay is listed, parked
// again by a retry before the fix, stored by a retry after it; an
// undecodable message is dropped deliberately.
func TestDLQCommands(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	pool, dbURL := heartlogtest.NewDatabase(t)
	ctx := context.Background()
	_, pub := heartlogtest.Publisher(t, nc, js)
	const user = "00000000-0000-4000-8000-000000000042"
	var hbs []*heartlogv1.Heartbeat
	for i := range 5 {
		hbs = append(hbs, heartlogtest.Heartbeat(t, user, fmt.Sprintf("f%d.go", i), time.Now().Add(-time.Duration(i)*time.Minute)))
	}
	hbs[2].ExtraJson = []byte(`{"x":1e200000}`)
	if err := pub.Publish(ctx, hbs, nil); err != nil {
		t.Fatal(err)
	}
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL}
	rows := func() int {
		var c int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM heartbeats").Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if out, err := command(env, "replay", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if rows() != 4 {
		t.Fatalf("%d rows after the replay, want the 4 good ones", rows())
	}
	entries := dlqList(t, env)
	if len(entries) != 1 || entries[0].Reason != "postgres 22003" || entries[0].User != user || entries[0].Heartbeat != hbs[2].Id {
		t.Fatalf("dlq list: %+v, want the poison heartbeat", entries)
	}
	table, err := command(env, "dlq", "list").Output()
	if err != nil || !strings.Contains(string(table), "postgres 22003") || !strings.Contains(string(table), "value overflows numeric format") {
		t.Fatalf("dlq list: %v\n%s", err, table)
	}

	out, err := command(env, "dlq", "retry").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 entries retried and removed, 1 heartbeats parked again") {
		t.Fatalf("dlq retry before the fix: %v\n%s", err, out)
	}
	again := dlqList(t, env)
	if len(again) != 1 || again[0].RetryOf != entries[0].Seq || again[0].Heartbeat != hbs[2].Id {
		t.Fatalf("after a retry that failed again: %+v", again)
	}

	if _, err := pool.Exec(ctx, "ALTER TABLE heartbeats ALTER COLUMN extra TYPE text"); err != nil {
		t.Fatal(err)
	}
	out, err = command(env, "dlq", "retry", "--processor", "postgres", "--seq", strconv.FormatUint(again[0].Seq, 10)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 entries retried and removed, 0 heartbeats parked again") {
		t.Fatalf("dlq retry after the fix: %v\n%s", err, out)
	}
	if rows() != 5 || len(dlqList(t, env)) != 0 {
		t.Fatalf("after the retry: %d rows, %d dead letters; want 5 and none", rows(), len(dlqList(t, env)))
	}

	if _, err := js.Publish(ctx, streams.Subject("20261125", 3), []byte("\xff garbage")); err != nil {
		t.Fatal(err)
	}
	if out, err := command(env, "replay", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	garbage := dlqList(t, env)
	if len(garbage) != 1 || garbage[0].Reason != "undecodable" {
		t.Fatalf("after replaying an undecodable message: %+v", garbage)
	}
	if out, err := command(env, "dlq", "drop").CombinedOutput(); err == nil {
		t.Fatalf("dlq drop without --seq or --all succeeded: %s", out)
	}
	out, err = command(env, "dlq", "drop", "--all", "--processor", "postgres").CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("dropped %d: postgres undecodable", garbage[0].Seq)) {
		t.Fatalf("dlq drop --all: %v\n%s", err, out)
	}
	if len(dlqList(t, env)) != 0 {
		t.Fatal("entries left after drop --all")
	}
}
