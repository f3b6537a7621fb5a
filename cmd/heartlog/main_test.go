package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// binary is the heartlog command built once for these tests: the fault
// tests kill a real process, not a goroutine.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "heartlog-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "heartlog")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build heartlog:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// command runs the binary with env added; the admin listener is off
// unless env sets HEARTLOG_ADMIN_ADDR (its default port would be shared by
// every test and process on the machine), and so are the shard databases
// of the shared stack's var/env unless env sets HEARTLOG_POSTGRES_SHARD_URLS
// (the test's catalog is its own database).
func command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "HEARTLOG_ADMIN_ADDR=", "HEARTLOG_POSTGRES_SHARD_URLS="), env...)
	return cmd
}

func TestUsersCreatePrintsOnlyTheKey(t *testing.T) {
	_, dbURL := heartlogtest.NewDatabase(t)
	n := heartlogtest.StartNATS(t)
	var stdout, stderr bytes.Buffer
	cmd := command([]string{"HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_NATS_URL=" + n.URL}, "users", "create", "--name", "alice", "--timezone", "Europe/Berlin")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("users create: %v\n%s", err, stderr.String())
	}
	if !regexp.MustCompile(`^waka_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$`).Match(stdout.Bytes()) {
		t.Fatalf("stdout %q: want the API key alone", stdout.String())
	}
	bad := command([]string{"HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_NATS_URL=" + n.URL}, "users", "create", "--name", "bob", "--timezone", "Mars/Olympus")
	out, err := bad.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown time zone "Mars/Olympus"`) {
		t.Fatalf("bad time zone: err %v, output %s", err, out)
	}
}

// TestProcessorKilledMidBatch kills `heartlog process` with SIGKILL while it
// drains a backlog, several times, then lets it finish: every heartbeat
// must be in Postgres exactly once.
func TestProcessorKilledMidBatch(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	pool, dbURL := heartlogtest.NewDatabase(t)
	ctx := context.Background()
	_, pub := heartlogtest.Publisher(t, nc, js)

	const users, perUser = 50, 1000
	var ids []string
	start := time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC) // spans two UTC days
	for u := range users {
		user := fmt.Sprintf("00000000-0000-4000-8000-%012d", u)
		hbs := make([]*heartlogv1.Heartbeat, perUser)
		for i := range hbs {
			hbs[i] = heartlogtest.Heartbeat(t, user, fmt.Sprintf("/src/f%d.go", i%40), start.Add(time.Duration(i*10)*time.Second))
			ids = append(ids, hbs[i].Id)
		}
		for i := 0; i < perUser; i += 20 { // many small messages: many commits to die in
			if err := pub.Publish(ctx, hbs[i:i+20], nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func() int {
		var c int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM heartbeats").Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The backlog's days are fixed, so past the default shard grace: a
	// grace of ten years keeps them going to Postgres.
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_FETCH_BATCH=16", "HEARTLOG_ACK_WAIT=2s", "HEARTLOG_LOG_LEVEL=warn", "HEARTLOG_SHARDS_GRACE=87600h"}
	kills := 0
	for last := 0; kills < 3; {
		proc := command(env, "process", "--only", "postgres")
		proc.Stderr = os.Stderr
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill as soon as it has committed something new: mid-backlog, and
		// most likely mid-commit, since it commits all the time.
		heartlogtest.Eventually(30*time.Second, func() bool { return count() > last })
		_ = proc.Process.Signal(syscall.SIGKILL)
		_ = proc.Wait()
		last = count()
		kills++
		if last == len(ids) {
			t.Fatalf("backlog drained before kill %d; make it larger", kills)
		}
		t.Logf("kill %d: %d of %d rows", kills, last, len(ids))
	}
	proc := command(env, "process", "--only", "postgres")
	proc.Stderr = os.Stderr
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = proc.Process.Signal(syscall.SIGTERM)
		_ = proc.Wait()
	}()
	if !heartlogtest.Eventually(60*time.Second, func() bool { return count() >= len(ids) }) {
		t.Fatalf("%d rows after restart, want %d", count(), len(ids))
	}
	var total, matching int
	if err := pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE id = ANY($1)) FROM heartbeats", ids).Scan(&total, &matching); err != nil {
		t.Fatal(err)
	}
	if total != len(ids) || matching != len(ids) {
		t.Fatalf("%d rows, %d of them expected; want exactly the %d heartbeats sent", total, matching, len(ids))
	}
}

// TestServeAndProcessBinaries runs `heartlog serve` and `heartlog process`
// as an operator would, sends a fixture through the real binary, and reads
// readiness as a load balancer would.
func TestServeAndProcessBinaries(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	pool, dbURL := heartlogtest.NewDatabase(t)
	addr := freeAddr(t)
	admins := map[string]string{"serve": freeAddr(t), "process": freeAddr(t)}
	// The fixture's times are fixed, so past the default shard grace: a
	// grace of ten years keeps its day going to Postgres.
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_HTTP_ADDR=" + addr, "HEARTLOG_LOG_LEVEL=warn", "HEARTLOG_SHARDS_GRACE=87600h"}
	startHeartlog(t, append(env, "HEARTLOG_ADMIN_ADDR="+admins["serve"]), "serve")
	startHeartlog(t, append(env, "HEARTLOG_ADMIN_ADDR="+admins["process"]), "process")
	base := "http://" + addr
	if !heartlogtest.Eventually(30*time.Second, func() bool { return status(t, base+"/readyz") == 200 }) {
		t.Fatalf("/readyz never became 200")
	}
	create := command(env, "users", "create", "--name", "fixture", "--api-key", "00000000-0000-4000-8000-000000000001")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("users create: %v %s", err, out)
	}
	fx := heartlogtest.LoadFixtures(t)[0]
	req, err := http.NewRequest(fx.Method, base+fx.Path, bytes.NewReader(fx.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = fx.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("%s: status %d", fx.Name, resp.StatusCode)
	}
	var want []json.RawMessage
	if err := json.Unmarshal(fx.Body, &want); err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		var c int
		_ = pool.QueryRow(context.Background(), "SELECT count(*) FROM heartbeats").Scan(&c)
		return c == len(want)
	}) {
		t.Fatalf("the fixture's %d heartbeats did not reach Postgres", len(want))
	}
	// Metrics are on each process's admin address, not the API's.
	for name, metric := range map[string]string{"serve": "heartlog_api_requests_total", "process": "heartlog_processor_"} {
		if body := get(t, "http://"+admins[name]+"/metrics"); !strings.Contains(body, metric) {
			t.Errorf("heartlog %s: its admin /metrics has no %s", name, metric)
		}
	}
	if got := status(t, base+"/metrics"); got != 404 {
		t.Errorf("GET /metrics on the API address: %d, want 404", got)
	}
	n.Shutdown()
	if !heartlogtest.Eventually(30*time.Second, func() bool { return status(t, base+"/readyz") == 503 }) {
		t.Fatalf("/readyz still answers 200 with NATS down")
	}
	if got := status(t, base+"/livez"); got != 200 {
		t.Fatalf("/livez = %d with NATS down; liveness must not depend on it", got)
	}
	n.Restart(t)
	if !heartlogtest.Eventually(30*time.Second, func() bool { return status(t, base+"/readyz") == 200 }) {
		t.Fatalf("/readyz did not recover after NATS came back")
	}
}

// TestServeAndProcessSayWhenTheyStop: on SIGTERM, serve and process log
// that they are stopping and what they finish first, then "stopped" with
// how long it took (a duration with its unit), and exit 0.
func TestServeAndProcessSayWhenTheyStop(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	_, dbURL := heartlogtest.NewDatabase(t)
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_LOG_FORMAT=json"}
	for _, c := range []struct {
		args    []string
		started string
	}{{[]string{"serve"}, "API listening"}, {[]string{"process", "--only", "postgres"}, "processor starting"}} {
		cmd := c.args[0]
		var log heartlogtest.LogBuffer
		proc := command(append(env, "HEARTLOG_HTTP_ADDR="+freeAddr(t), "HEARTLOG_ADMIN_ADDR="+freeAddr(t)), c.args...)
		proc.Stderr = &log
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
		if !heartlogtest.Eventually(30*time.Second, func() bool { return strings.Contains(log.String(), c.started) }) {
			_ = proc.Process.Kill()
			t.Fatalf("heartlog %s did not start:\n%s", cmd, log.String())
		}
		if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := proc.Wait(); err != nil {
			t.Errorf("heartlog %s on SIGTERM: %v, want exit 0", cmd, err)
		}
		out := log.String()
		if !strings.Contains(out, `"message":"stopping: the `) || !regexp.MustCompile(`"took":"[0-9.]+(µs|ms|s)"[^}]*"message":"stopped"`).MatchString(out) {
			t.Errorf("heartlog %s's log has no stopping and stopped lines:\n%s", cmd, out)
		}
	}
}

func status(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestDevSaysAtOnceWhichPortIsTaken holds the NATS client port that `heartlog
// dev` is told to use: it must fail naming the port and its owner, well
// before the embedded server's 30 s wait for a port could run out.
func TestDevSaysAtOnceWhichPortIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "dev")
	cmd.Env = command([]string{
		"HEARTLOG_NATS_URL=nats://" + ln.Addr().String(), "HEARTLOG_NATS_CONFIG=../../nats.conf",
		"HEARTLOG_NATS_STORE_DIR=" + t.TempDir(), "HEARTLOG_HTTP_ADDR=" + freeAddr(t),
	}).Env
	out, err := cmd.CombinedOutput()
	want := fmt.Sprintf("NATS client port (HEARTLOG_NATS_URL) %s is already in use by pid %d (", ln.Addr(), os.Getpid())
	if ctx.Err() != nil || err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("heartlog dev with its NATS port taken: err %v (bound hit: %v), output:\n%s\nwant %q", err, ctx.Err() != nil, out, want)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestReplayRebuildsPostgres empties the heartbeats table and rebuilds it
// with `heartlog replay postgres`, twice: the same rows each time.
func TestReplayRebuildsPostgres(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	pool, dbURL := heartlogtest.NewDatabase(t)
	ctx := context.Background()
	_, pub := heartlogtest.Publisher(t, nc, js)
	const total = 300
	for i := range total {
		hb := heartlogtest.Heartbeat(t, fmt.Sprintf("00000000-0000-4000-8000-%012d", i%3), fmt.Sprintf("f%d.go", i), time.Now().Add(-time.Duration(i)*time.Minute))
		if err := pub.Publish(ctx, []*heartlogv1.Heartbeat{hb}, nil); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL}
	checksum := func() (int, string) {
		var c int
		var sum string
		if err := pool.QueryRow(ctx, "SELECT count(*), coalesce(md5(string_agg(id || entity || time::text, ',' ORDER BY id)), '') FROM heartbeats").Scan(&c, &sum); err != nil {
			t.Fatal(err)
		}
		return c, sum
	}
	var sums []string
	for round := range 2 {
		out, err := command(env, "replay", "postgres").CombinedOutput()
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "done in") {
			t.Errorf("no progress line in %q", out)
		}
		c, sum := checksum()
		if c != total {
			t.Fatalf("round %d: %d rows after replay, want %d", round, c, total)
		}
		sums = append(sums, sum)
		if _, err := pool.Exec(ctx, "TRUNCATE heartbeats"); err != nil {
			t.Fatal(err)
		}
	}
	if sums[0] != sums[1] {
		t.Fatal("two replays of the same stream gave different rows")
	}
	out, err := command(env, "replay", "postgres", "--since", "yesterday").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "want RFC 3339") {
		t.Fatalf("a bad --since: err %v, output %s", err, out)
	}
}

// TestDayFileProcessorKilledMidFlush kills `heartlog process --only objects`
// with SIGKILL while it writes day files, several times, then lets it
// finish: every day file must hold exactly its heartbeats, once each.
func TestDayFileProcessorKilledMidFlush(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	_, dbURL := heartlogtest.NewDatabase(t)
	primary := heartlogtest.Bucket(t, "HEARTLOG_S3_", "")
	ctx := context.Background()
	_, pub := heartlogtest.Publisher(t, nc, js)

	const users, perUser = 40, 200
	want := map[string][]*heartlogv1.Heartbeat{}
	prefix := fmt.Sprintf("k%07d", time.Now().UnixNano()%10_000_000)
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(-30 * time.Hour)
	for u := range users {
		user := fmt.Sprintf("00000000-0000-4000-8000-%012d", u)
		hbs := make([]*heartlogv1.Heartbeat, perUser)
		for i := range hbs {
			hbs[i] = heartlogtest.Heartbeat(t, user, fmt.Sprintf("/src/f%d.go", i%9), start.Add(time.Duration(i*300)*time.Second))
			key := dayfile.Key(prefix, user, heartbeat.Day(hbs[i]))
			want[key] = append(want[key], hbs[i])
		}
		for i := 0; i < perUser; i += 10 {
			if err := pub.Publish(ctx, hbs[i:i+10], map[string]string{user: prefix}); err != nil {
				t.Fatal(err)
			}
		}
	}
	written := func() int {
		keys, err := objstore.ListAll(ctx, primary, prefix+"/")
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_LOG_LEVEL=warn",
		"HEARTLOG_OBJECTS_FLUSH_AGE=50ms", "HEARTLOG_OBJECTS_FLUSH_MESSAGES=4", "HEARTLOG_OBJECTS_CONCURRENCY=4",
		"HEARTLOG_ACK_WAIT=2s", "HEARTLOG_PINNED_TTL=1s"}
	for kill := 1; kill <= 3; kill++ {
		before := written()
		proc := command(env, "process", "--only", "objects")
		proc.Stderr = os.Stderr
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
		heartlogtest.Eventually(60*time.Second, func() bool { return written() > before })
		_ = proc.Process.Signal(syscall.SIGKILL)
		_ = proc.Wait()
		t.Logf("kill %d: %d of %d day files exist", kill, written(), len(want))
	}
	proc := command(env, "process", "--only", "objects")
	proc.Stderr = os.Stderr
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = proc.Process.Signal(syscall.SIGTERM)
		_ = proc.Wait()
	}()
	expected := map[string][]byte{}
	for key, hbs := range want {
		merged, _ := dayfile.Merge(nil, hbs)
		data, err := dayfile.Encode(merged)
		if err != nil {
			t.Fatal(err)
		}
		expected[key] = data
	}
	var last string
	ok := heartlogtest.Eventually(90*time.Second, func() bool {
		for key, data := range expected {
			got, _, err := primary.Get(ctx, key)
			if err != nil || !bytes.Equal(got, data) {
				last = fmt.Sprintf("%s: %d bytes (%v), want %d", key, len(got), err, len(data))
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("after the kills the day files did not converge: %s", last)
	}
	for key := range expected {
		_ = primary.Delete(ctx, key)
	}
}
