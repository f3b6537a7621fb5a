package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
)

// TestServeStartsAndIngestsWithPostgresDown starts `heartlog serve` while
// Postgres is down: a user created with `heartlog users create` just
// before can ingest, /readyz is 200 with reads degraded, and the
// heartbeats reach Postgres once it is back and `heartlog process` runs.
func TestServeStartsAndIngestsWithPostgresDown(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	pg := heartlogtest.StartPostgres(t)
	pool, dbURL := pg.NewDatabase(t)
	addr := freeAddr(t)
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_HTTP_ADDR=" + addr, "HEARTLOG_LOG_LEVEL=warn"}
	var key bytes.Buffer
	create := command(env, "users", "create", "--name", "alice")
	create.Stdout, create.Stderr = &key, os.Stderr
	if err := create.Run(); err != nil {
		t.Fatalf("users create: %v", err)
	}
	pg.Stop(t)

	startHeartlog(t, env, "serve")
	base := "http://" + addr
	var ready map[string]any
	if !heartlogtest.Eventually(60*time.Second, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || json.Unmarshal(body, &ready) != nil {
			return false
		}
		if strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), "postgres://") {
			t.Fatalf("/readyz shows connection detail: %s", body)
		}
		return ready["reads"] == "degraded" && ready["ingest"] == "ok"
	}) {
		t.Fatalf("/readyz never said ingest ok, reads degraded with Postgres down (last: %v)", ready)
	}

	const sent = 5
	for i := range sent {
		body := fmt.Sprintf(`[{"entity":"f%d.go","type":"file","time":%d}]`, i, time.Now().Unix()-1)
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/users/current/heartbeats.bulk", strings.NewReader(body))
		req.SetBasicAuth(strings.TrimSpace(key.String()), "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("heartbeat %d with Postgres down: %d %s, want 201", i, resp.StatusCode, out)
		}
	}

	pg.Start(t)
	startHeartlog(t, env, "process", "--only", "postgres")
	if !heartlogtest.Eventually(60*time.Second, func() bool {
		var c int
		_ = pool.QueryRow(context.Background(), "SELECT count(*) FROM heartbeats").Scan(&c)
		return c == sent
	}) {
		t.Fatalf("the %d heartbeats sent while Postgres was down did not reach it", sent)
	}
}

// startHeartlog runs a heartlog command until the test ends, then stops it
// with SIGTERM and expects a clean exit.
func startHeartlog(t *testing.T, env []string, args ...string) {
	t.Helper()
	startHeartlogTo(t, os.Stderr, env, args...)
}

// startHeartlogTo is startHeartlog with the command's log going to stderr.
func startHeartlogTo(t *testing.T, stderr io.Writer, env []string, args ...string) {
	t.Helper()
	proc := command(env, args...)
	proc.Stderr = stderr
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = proc.Process.Signal(syscall.SIGTERM)
		if err := proc.Wait(); err != nil {
			t.Errorf("heartlog %s did not stop cleanly on SIGTERM: %v", args[0], err)
		}
	})
}
