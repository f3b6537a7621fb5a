package wiring_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/internal/wiring"
)

// The API's server refuses headers past DefaultMaxHeaderBytes, and Close
// stops it cleanly.
func TestListenAPIHeaderLimit(t *testing.T) {
	s, err := wiring.ListenAPI("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		header int
		want   int
	}{{1 << 10, http.StatusNoContent}, {2 * wiring.DefaultMaxHeaderBytes, http.StatusRequestHeaderFieldsTooLarge}} {
		req, _ := http.NewRequest(http.MethodGet, s.URL(), nil)
		req.Header.Set("X-Big", strings.Repeat("a", tc.header))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d-byte header: status %d, want %d", tc.header, resp.StatusCode, tc.want)
		}
	}
	if err := s.Close(time.Second); err != nil {
		t.Fatalf("close: %v", err)
	}
	<-s.Done()
}

// The connection is named for the command and survives a server restart.
func TestConnectNATSNameAndReconnect(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, _, err := wiring.ConnectNATS(n.URL, wiring.NATSOptions{Name: "test", ReconnectWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.Opts.Name; got != "heartlog test" {
		t.Errorf("name %q, want %q", got, "heartlog test")
	}
	n.Shutdown()
	n.Restart(t)
	if !heartlogtest.Eventually(30*time.Second, nc.IsConnected) {
		t.Fatal("not reconnected after the server restarted")
	}
}

func TestConnectNATSRedactsURL(t *testing.T) {
	_, _, err := wiring.ConnectNATS("nats://alice:secret@127.0.0.1:1", wiring.NATSOptions{})
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "nats://***@127.0.0.1:1") {
		t.Fatalf("error %v: want the URL without its password", err)
	}
}

// A scratch database is created, migrated and dropped.
func TestCreateOpenDropDatabase(t *testing.T) {
	ctx := context.Background()
	server := heartlogtest.PostgresURL(t)
	name := "heartlog_test_wiring_" + time.Now().UTC().Format("150405000000")
	dbURL, err := wiring.CreateDatabase(ctx, server, name)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := wiring.OpenPostgres(ctx, dbURL, heartlogtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var applied int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&applied); err != nil || applied == 0 {
		t.Errorf("schema_migrations: %d rows, %v", applied, err)
	}
	pool.Close()
	if err := wiring.DropDatabase(ctx, server, name); err != nil {
		t.Fatal(err)
	}
	if _, err := wiring.OpenPostgres(ctx, dbURL, heartlogtest.Logger(t)); err == nil {
		t.Fatal("database still there after DropDatabase")
	}
}

func TestNewPoolBadURL(t *testing.T) {
	if _, err := wiring.NewPool(context.Background(), "postgres://h:notaport/x"); !errors.Is(err, wiring.ErrPostgresURL) {
		t.Fatalf("err %v, want ErrPostgresURL", err)
	}
}
