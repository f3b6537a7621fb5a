package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"heartlog/api"
	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
)

const sendHeartbeats = "/heartlog.v1.IngestService/SendHeartbeats"

// bodyCounter counts the request body bytes the API reads: what
// connect-go would have to read before it could decompress or decode.
type bodyCounter struct{ n atomic.Int64 }

func (c *bodyCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &countingBody{r.Body, &c.n}
		h.ServeHTTP(w, r)
	})
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func gzipped(t *testing.T, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// connectPost sends body as a Connect unary request with a gzip-encoded
// message and returns the status, the Connect error code and message, and
// the response header.
func connectPost(t *testing.T, url, auth string, body io.Reader) (int, string, string, http.Header) {
	t.Helper()
	return connectPostQuery(t, url, "", auth, body)
}

func connectPostQuery(t *testing.T, url, query, auth string, body io.Reader) (int, string, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+sendHeartbeats+query, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Connect-Protocol-Version", "1")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Code, Message string }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("status %d, body %q: not a Connect error", resp.StatusCode, b)
	}
	return resp.StatusCode, e.Code, e.Message, resp.Header
}

// TestConnectRefusesBeforeReadingTheBody sends a 4.5 MB gzip body (random,
// so it does not shrink) without a key and then with one: neither may cost
// the server a byte of reading, so neither can cost it a decompression.
func TestConnectRefusesBeforeReadingTheBody(t *testing.T) {
	var read bodyCounter
	svc := heartlogtest.Start(t, heartlogtest.Options{Wrap: read.wrap, NoProcessor: true})
	_, key := svc.CreateUser(t, "alice", "")
	random := make([]byte, 4_500_000)
	_, _ = rand.Read(random)
	body := gzipped(t, random)
	if len(body) <= 4<<20 {
		t.Fatalf("the body is %d bytes: not over the 4 MiB default cap", len(body))
	}

	status, code, msg, _ := connectPost(t, svc.URL, "", bytes.NewReader(body))
	if status != http.StatusUnauthorized || code != "unauthenticated" || strings.Contains(msg, "api_key") {
		t.Fatalf("no key: %d %s %q, want 401 unauthenticated not suggesting ?api_key=", status, code, msg)
	}
	if n := read.n.Load(); n != 0 {
		t.Fatalf("the API read %d body bytes of a request without a key", n)
	}

	status, code, msg, _ = connectPost(t, svc.URL, "Bearer "+key, bytes.NewReader(body))
	if status != http.StatusTooManyRequests || code != "resource_exhausted" || !strings.Contains(msg, "larger than 4 MiB") {
		t.Fatalf("with a key: %d %s %q, want resource_exhausted for the size", status, code, msg)
	}
	if n := read.n.Load(); n != 0 {
		t.Fatalf("the API read %d body bytes of a request whose Content-Length is over the cap", n)
	}

	// Without a Content-Length the cap is met while reading: no more than
	// the cap (and the one byte that shows it is exceeded) is read.
	status, code, _, _ = connectPost(t, svc.URL, "Bearer "+key, io.MultiReader(bytes.NewReader(body)))
	if status != http.StatusTooManyRequests || code != "resource_exhausted" {
		t.Fatalf("chunked, with a key: %d %s, want resource_exhausted", status, code)
	}
	if n := read.n.Load(); n > 4<<20+1 {
		t.Fatalf("the API read %d body bytes of a chunked request; the cap is %d", n, 4<<20)
	}
}

// TestConnectGzipBombStopsAtTheCap sends 64 MiB of zeros in ~64 KiB of
// gzip: refused once the inflated message passes the cap, with the capped
// decompressor's error (connect-go's own would inflate all 64 MiB first to
// report "message size 67108864").
func TestConnectGzipBombStopsAtTheCap(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{NoProcessor: true})
	_, key := svc.CreateUser(t, "alice", "")
	bomb := gzipped(t, make([]byte, 64<<20))
	status, code, msg, _ := connectPost(t, svc.URL, "Bearer "+key, bytes.NewReader(bomb))
	if status != http.StatusTooManyRequests || code != "resource_exhausted" || !strings.Contains(msg, "decompressed message is over the size limit") {
		t.Fatalf("connect: %d %s %q, want resource_exhausted from the capped decompressor", status, code, msg)
	}

	// The same over gRPC, from a real client compressing a real message.
	client := heartlogv1connect.NewIngestServiceClient(h2cClient(), svc.URL, connect.WithGRPC(), connect.WithSendGzip())
	req := connect.NewRequest(&heartlogv1.SendHeartbeatsRequest{Machine: strings.Repeat("a", 64<<20)})
	req.Header().Set("Authorization", "Bearer "+key)
	_, err := client.SendHeartbeats(context.Background(), req)
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "decompressed message is over the size limit") {
		t.Fatalf("grpc: %v, want resource_exhausted from the capped decompressor", err)
	}
}

// TestConnectKeyForms: Bearer and Basic (base64(key) and base64(key:)) work
// on both services over Connect and gRPC; ?api_key= does not.
func TestConnectKeyForms(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{NoProcessor: true})
	_, key := svc.CreateUser(t, "alice", "")
	forms := map[string]string{
		"bearer":      "Bearer " + key,
		"basic":       "Basic " + base64.StdEncoding.EncodeToString([]byte(key)),
		"basic colon": "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":")),
	}
	for _, proto := range []struct {
		name string
		opt  []connect.ClientOption
	}{{"connect", nil}, {"grpc", []connect.ClientOption{connect.WithGRPC()}}} {
		ingest := heartlogv1connect.NewIngestServiceClient(h2cClient(), svc.URL, proto.opt...)
		stats := heartlogv1connect.NewStatsServiceClient(h2cClient(), svc.URL, proto.opt...)
		for form, auth := range forms {
			t.Run(proto.name+"/"+form, func(t *testing.T) {
				send := connect.NewRequest(&heartlogv1.SendHeartbeatsRequest{
					Heartbeats: []*heartlogv1.Heartbeat{{Entity: form + ".go", Type: "file", Time: now()}},
				})
				send.Header().Set("Authorization", auth)
				resp, err := ingest.SendHeartbeats(context.Background(), send)
				if err != nil || len(resp.Msg.Results) != 1 || resp.Msg.Results[0].Id == "" {
					t.Fatalf("SendHeartbeats: %v %v", resp, err)
				}
				bar := connect.NewRequest(&heartlogv1.GetStatusBarRequest{})
				bar.Header().Set("Authorization", auth)
				if _, err := stats.GetStatusBar(context.Background(), bar); err != nil {
					t.Fatalf("GetStatusBar: %v", err)
				}
			})
		}
	}
	status, code, msg, _ := connectPostQuery(t, svc.URL, "?api_key="+key, "", bytes.NewReader(gzipped(t, nil)))
	if status != http.StatusUnauthorized || code != "unauthenticated" || !strings.Contains(msg, "Authorization") {
		t.Fatalf("?api_key=: %d %s %q, want 401 naming the Authorization header", status, code, msg)
	}
}

// TestConnectRateLimit: over the limit is resource_exhausted with a
// Retry-After header on the HTTP response, before the body is read.
func TestConnectRateLimit(t *testing.T) {
	var read bodyCounter
	svc := heartlogtest.Start(t, heartlogtest.Options{Wrap: read.wrap, NoProcessor: true, API: func(o *api.Options) {
		o.RateLimit, o.RateBurst = 0.01, 1 // one request, then one per 100 s
	}})
	_, key := svc.CreateUser(t, "alice", "")
	stats := heartlogv1connect.NewStatsServiceClient(h2cClient(), svc.URL, connect.WithGRPC())
	bar := connect.NewRequest(&heartlogv1.GetStatusBarRequest{})
	bar.Header().Set("Authorization", "Bearer "+key)
	if _, err := stats.GetStatusBar(context.Background(), bar); err != nil {
		t.Fatalf("first request: %v", err)
	}
	_, err := stats.GetStatusBar(context.Background(), bar)
	var ce *connect.Error
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("grpc over the limit: %v, want resource_exhausted", err)
	}
	if !errors.As(err, &ce) || ce.Meta().Get("Retry-After") == "" {
		t.Fatalf("grpc over the limit: no Retry-After in the response metadata")
	}
	before := read.n.Load()
	status, code, _, header := connectPost(t, svc.URL, "Bearer "+key, bytes.NewReader(gzipped(t, []byte("x"))))
	secs, _ := strconv.Atoi(header.Get("Retry-After"))
	if status != http.StatusTooManyRequests || code != "resource_exhausted" || secs < 1 {
		t.Fatalf("connect over the limit: %d %s Retry-After %q, want resource_exhausted with Retry-After in seconds", status, code, header.Get("Retry-After"))
	}
	if n := read.n.Load() - before; n != 0 {
		t.Fatalf("the API read %d body bytes of a request over the rate limit", n)
	}
}

// TestPublicAPIHasNoMetrics: /metrics is on the admin listener only.
func TestPublicAPIHasNoMetrics(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{NoProcessor: true})
	resp, err := http.Get(svc.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics on the public API: %d, want 404", resp.StatusCode)
	}
}
