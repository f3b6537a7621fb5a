package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	hlstatus "heartlog/status"
	"heartlog/streams"
)

// runStatus runs heartlog status (with --json when asJSON) and returns its
// standard output, its standard error and its exit code.
func runStatus(t *testing.T, env []string, asJSON bool) (string, string, int) {
	t.Helper()
	args := []string{"status"}
	if asJSON {
		args = append(args, "--json")
	}
	var stdout, stderr bytes.Buffer
	cmd := command(env, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("heartlog status: %v", err)
	return "", "", -1
}

func statusReport(t *testing.T, env []string) (hlstatus.Report, int) {
	t.Helper()
	out, errOut, code := runStatus(t, env, true)
	var r hlstatus.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status --json (exit %d): %v\n%s%s", code, err, out, errOut)
	}
	return r, code
}

// awaitStatus polls status --json until cond holds, and fails the test
// with the last report when it does not within a minute.
func awaitStatus(t *testing.T, env []string, what string, cond func(hlstatus.Report, int) bool) hlstatus.Report {
	t.Helper()
	var r hlstatus.Report
	var code int
	if !heartlogtest.Eventually(time.Minute, func() bool {
		r, code = statusReport(t, env)
		return cond(r, code)
	}) {
		b, _ := json.MarshalIndent(r, "", "  ")
		t.Fatalf("status never showed %s (exit %d):\n%s", what, code, b)
	}
	return r
}

func hasWarning(r hlstatus.Report, sub string) bool {
	for _, w := range r.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// TestStatusHealthyThenProcessorStopped: a running system with everything
// processed exits 0 and shows every store reachable; once its processor
// stops and heartbeats arrive, status warns that it has no consumer bound
// and how far behind it is, and exits 1.
func TestStatusHealthyThenProcessorStopped(t *testing.T) {
	s := heartlogtest.Start(t, heartlogtest.Options{})
	_, pub := heartlogtest.Publisher(t, s.NC, s.JS)
	ctx := context.Background()
	user := "00000000-0000-4000-8000-0000000000" + fmt.Sprint(10+time.Now().Nanosecond()%90)
	publish := func(n int) {
		var hbs []*heartlogv1.Heartbeat
		for i := range n {
			hbs = append(hbs, heartlogtest.Heartbeat(t, user, fmt.Sprintf("f%d-%d.go", i, time.Now().UnixNano()), time.Now().Add(-time.Duration(i)*time.Second)))
		}
		if err := pub.Publish(ctx, hbs, nil); err != nil {
			t.Fatal(err)
		}
	}
	publish(3)
	env := []string{"HEARTLOG_NATS_URL=" + s.NATS.URL, "HEARTLOG_POSTGRES_URL=" + s.DBURL,
		"HEARTLOG_POSTGRES_SHARD_URLS=" + strings.Join(s.ShardURLs, ","), "HEARTLOG_PROCESSORS=postgres"}

	r := awaitStatus(t, env, "a healthy system, caught up", func(r hlstatus.Report, code int) bool {
		return code == 0 && len(r.Consumers) == 1 && r.Consumers[0].Lag == 0
	})
	stores := map[string]bool{}
	for _, st := range r.Stores {
		stores[st.Name] = st.OK
	}
	for _, name := range []string{"nats", "stream", "users", "postgres", "postgres-shard-1", "postgres-shard-2", "cache", "s3", "backup"} {
		if !stores[name] {
			t.Errorf("store %s: reachable %v in %+v", name, stores[name], r.Stores)
		}
	}
	if r.Stream.Messages == 0 || len(r.Consumers) != 1 || r.Consumers[0].Name != "postgres" || !r.Consumers[0].Bound || r.Consumers[0].Lag != 0 {
		t.Fatalf("healthy: stream %+v, consumers %+v", r.Stream, r.Consumers)
	}
	if r.Days.Open != 1 || r.Backup.Ran() || len(r.Warnings) != 0 {
		t.Fatalf("healthy: days %+v, backup %+v, warnings %q", r.Days, r.Backup, r.Warnings)
	}
	text, _, code := runStatus(t, env, false)
	if code != 0 || !strings.Contains(text, "OK: nothing needs attention") || !strings.Contains(text, "BACKUP VERIFY  not run") {
		t.Fatalf("healthy status (exit %d):\n%s", code, text)
	}

	s.StopProcessor()
	publish(2)
	publish(2)
	r = awaitStatus(t, env, "the stopped processor", func(r hlstatus.Report, code int) bool {
		return code == 1 && hasWarning(r, "processor postgres has no consumer bound and is 2 messages behind")
	})
	if c := r.Consumers[0]; c.Bound || c.WaitingPulls != 0 || c.Lag != 2 || c.OldestUnacked <= 0 {
		t.Fatalf("stopped processor's consumer: %+v", c)
	}
	text, _, code = runStatus(t, env, false)
	if code != 1 || !strings.Contains(text, "WARNINGS (1)") || !strings.Contains(text, "- processor postgres has no consumer bound and is 2 messages behind") {
		t.Fatalf("status with a stopped processor (exit %d):\n%s", code, text)
	}
}

// TestStatusFullStreamParkedDrift: a stream past 80% of its MaxBytes, a
// parked heartbeat and a backup verify that found drift are each warned
// about in plain words, and status exits 1.
func TestStatusFullStreamParkedDrift(t *testing.T) {
	_, dbURL := heartlogtest.NewDatabase(t)
	ctx := context.Background()
	sc := streams.DefaultConfig()
	sc.MaxBytes = 64 << 10
	n := heartlogtest.StartTopology(t, sc)
	js := n.JS
	if _, err := streams.EnsureConsumer(ctx, js, sc, streams.DurablePostgres); err != nil {
		t.Fatal(err)
	}
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_PROCESSORS=postgres"}
	day := time.Now().UTC().Format("20060102")
	payload := bytes.Repeat([]byte("x"), 4<<10)
	for i := 0; ; i++ {
		s, err := js.Stream(ctx, sc.Stream)
		if err != nil {
			t.Fatal(err)
		}
		if float64(s.CachedInfo().State.Bytes) >= 0.85*float64(sc.MaxBytes) {
			break
		}
		if _, err := js.Publish(ctx, streams.Subject(day, uint32(i%4)), payload); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if _, err := streams.NewDeadLetters(js, sc).Park(ctx, streams.DeadLetter{Processor: "objects", Reason: streams.ReasonUndecodable,
		Error: "not a batch", Subject: streams.Subject(day, 1), StreamSeq: 1, ParkedAt: time.Now(), Raw: []byte("garbage")}); err != nil {
		t.Fatal(err)
	}
	if err := hlstatus.RecordVerify(ctx, js, 1, hlstatus.Verify{At: time.Now(), Took: hlstatus.Duration(3 * time.Second), Files: 120, Missing: 1, Stale: 2, Extra: 3}); err != nil {
		t.Fatal(err)
	}

	r, code := statusReport(t, env)
	if code != 1 {
		t.Fatalf("exit %d, want 1; warnings %q", code, r.Warnings)
	}
	if r.Stream.MaxBytes != sc.MaxBytes || r.Stream.BytesFill < 0.85 {
		t.Fatalf("stream %+v", r.Stream)
	}
	full := fmt.Sprintf("stream HEARTBEATS %d%% full (MaxBytes 64.0 KiB)", int(r.Stream.BytesFill*100))
	for _, want := range []string{full, "1 parked heartbeats (objects 1)", "backup drift at", "1 missing, 2 stale, 3 extra",
		"processor postgres has no consumer bound and is"} {
		if !hasWarning(r, want) {
			t.Errorf("no warning %q in %q", want, r.Warnings)
		}
	}
	if r.Parked.Total != 1 || r.Parked.ByProcessor["objects"] != 1 || r.Backup.Files != 120 {
		t.Fatalf("parked %+v, backup %+v", r.Parked, r.Backup)
	}
	text, _, _ := runStatus(t, env, false)
	if !strings.Contains(text, "BACKUP VERIFY  ") || !strings.Contains(text, "120 files, 1 missing, 2 stale, 3 extra (took 3s)") || !strings.Contains(text, "- "+full) {
		t.Fatalf("status text:\n%s", text)
	}
}

// TestStatusStoreDownAndNATSDown: SSDB and then a Postgres shard database
// going down (private instances) turn a clean status (exit 0) into a
// warning naming each (exit 1); NATS down is exit 2.
func TestStatusStoreDownAndNATSDown(t *testing.T) {
	redis := startRedis(t)
	pg := heartlogtest.StartPostgres(t)
	_, shardURL := pg.NewDatabase(t)
	_, dbURL := heartlogtest.NewDatabase(t)
	ctx := context.Background()
	sc := streams.DefaultConfig()
	n := heartlogtest.StartTopology(t, sc)
	js := n.JS
	if _, err := streams.EnsureConsumer(ctx, js, sc, streams.DurablePostgres); err != nil {
		t.Fatal(err)
	}
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_PROCESSORS=postgres",
		"HEARTLOG_CACHE_URL=redis://" + redis.addr + "/0", "HEARTLOG_POSTGRES_SHARD_URLS=" + shardURL}
	if r, code := statusReport(t, env); code != 0 {
		t.Fatalf("with every store up: exit %d, warnings %q", code, r.Warnings)
	}

	redis.stop(t)
	r, code := statusReport(t, env)
	if code != 1 || !hasWarning(r, "SSDB (cache) unreachable") {
		t.Fatalf("SSDB down: exit %d, warnings %q", code, r.Warnings)
	}
	for _, st := range r.Stores {
		if st.OK == (st.Name == "cache") {
			t.Errorf("store %+v", st)
		}
	}

	pg.Stop(t)
	r, code = statusReport(t, env)
	if code != 1 || !hasWarning(r, "SSDB (cache) unreachable") || !hasWarning(r, "Postgres shard 1 unreachable") {
		t.Fatalf("SSDB and shard 1 down: exit %d, warnings %q", code, r.Warnings)
	}
	pg.Start(t) // for the test database's drop at the end

	n.Shutdown()
	out, errOut, code := runStatus(t, env, false)
	if code != 2 || out != "" || !strings.Contains(errOut, "connect to NATS") {
		t.Fatalf("NATS down: exit %d\n%s%s", code, out, errOut)
	}
}

// redisServer is a private redis-server of one test, which it may stop.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &redisServer{addr: addr, cmd: cmd}
	t.Cleanup(func() { r.stop(t) })
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}) {
		t.Fatal("redis-server did not start")
	}
	return r
}

func (r *redisServer) stop(t *testing.T) {
	if r.cmd.Process == nil || r.cmd.ProcessState != nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}
