package admin_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"heartlog/admin"
)

func TestAdminServesMetricsAndPprof(t *testing.T) {
	srv, err := admin.Listen("127.0.0.1:0", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_ = srv.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv, err = admin.Listen(addr, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for path, want := range map[string]string{"/metrics": "go_goroutines", "/debug/pprof/": "goroutine"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want 200 with %q", path, resp.StatusCode, want)
		}
	}
}

func TestAdminAddressTakenOrEmpty(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := admin.Listen(ln.Addr().String(), zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "HEARTLOG_ADMIN_ADDR") {
		t.Fatalf("taken address: %v, want an error naming HEARTLOG_ADMIN_ADDR", err)
	}
	srv, err := admin.Listen("", zerolog.Nop())
	if srv != nil || err != nil {
		t.Fatalf("empty address: %v %v, want disabled", srv, err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}
