package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/users"
)

func TestKeysAreCheckedAgainstTheUsersBucket(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{Directory: users.DirectoryOptions{MaxStale: time.Second}})
	u, key := svc.CreateUser(t, "alice", "")
	body := []byte("[" + hbJSON("a.go", now()) + "]")
	if resp, b := svc.Post(t, bulk, key, body); resp.StatusCode != http.StatusCreated {
		t.Fatalf("a key created a moment ago: %d %s, want 201", resp.StatusCode, b)
	}
	if resp, b := svc.Post(t, bulk, users.NewKey(), body); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "unknown API key") {
		t.Fatalf("unknown key: %d %s, want 401", resp.StatusCode, b)
	}

	// A new key revokes the old one on the API at once (no cache to expire).
	newKey, err := svc.Users.RotateKey(context.Background(), u.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		resp, _ := svc.Post(t, bulk, key, body)
		return resp.StatusCode == http.StatusUnauthorized
	}) {
		t.Fatal("the revoked key still works")
	}
	if resp, b := svc.Post(t, bulk, newKey, body); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the new key: %d %s, want 201", resp.StatusCode, b)
	}

	// The users bucket out of reach for longer than MaxStale: 503 with
	// Retry-After, never 401 (a client would drop its heartbeats).
	svc.NATS.Shutdown()
	var resp *http.Response
	var b []byte
	if !heartlogtest.Eventually(20*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, svc.URL+"/api/v1/users/current", nil)
		req.SetBasicAuth(newKey, "")
		resp, b = svc.Do(t, req)
		return resp.StatusCode == http.StatusServiceUnavailable
	}) {
		t.Fatalf("with NATS down: %d %s, want 503", resp.StatusCode, b)
	}
	if resp.Header.Get("Retry-After") == "" || strings.Contains(string(b), "nats") {
		t.Fatalf("503 without Retry-After, or with detail: %v %s", resp.Header, b)
	}
	req, _ := http.NewRequest(http.MethodGet, svc.URL+"/readyz", nil)
	if resp, b := svc.Do(t, req); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), `"ingest":"unavailable"`) {
		t.Fatalf("/readyz with NATS down: %d %s, want 503, ingest unavailable", resp.StatusCode, b)
	}
}
