package faults_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"heartlog/internal/faults"
)

// backend records what reaches the target.
type backend struct {
	*httptest.Server
	hits  atomic.Int64
	mu    sync.Mutex
	hosts []string
	paths []string
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.hosts = append(b.hosts, r.Host)
		b.paths = append(b.paths, r.URL.EscapedPath())
		b.mu.Unlock()
		w.Header().Set("ETag", `"x"`)
		_, _ = w.Write(body)
	}))
	t.Cleanup(b.Close)
	return b
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestForwardsUnchanged(t *testing.T) {
	be := newBackend(t)
	p := faults.NewProxy(t, be.URL, faults.Options{})
	code, body := do(t, http.MethodPut, p.URL+"/bucket/a%2Fb/c.ndjson.gz?x-id=PutObject", "hello")
	if code != 200 || body != "hello" {
		t.Fatalf("got %d %q, want 200 hello", code, body)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	// Host must be the proxy's (what the client signed), the path as sent.
	if want := strings.TrimPrefix(p.URL, "http://"); be.hosts[0] != want {
		t.Errorf("target saw Host %q, want %q", be.hosts[0], want)
	}
	if be.paths[0] != "/bucket/a%2Fb/c.ndjson.gz" {
		t.Errorf("target saw path %q", be.paths[0])
	}
	if s := p.Stats(); s.Requests != 1 || s.Forwarded != 1 || s.Faults() != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestSlowDownEveryIsNotForwarded(t *testing.T) {
	be := newBackend(t)
	p := faults.NewProxy(t, be.URL, faults.Options{SlowDownEvery: 3})
	refused := 0
	for i := 0; i < 9; i++ {
		code, body := do(t, http.MethodPut, p.URL+"/bucket/k", "data")
		if code == http.StatusServiceUnavailable {
			refused++
			if !strings.Contains(body, "<Code>SlowDown</Code>") {
				t.Errorf("refusal body %q", body)
			}
		}
	}
	if refused != 3 || be.hits.Load() != 6 {
		t.Fatalf("refused %d, target saw %d; want 3 and 6", refused, be.hits.Load())
	}
	if s := p.Stats(); s.SlowDowns != 3 || s.Forwarded != 6 || s.Requests != 9 {
		t.Errorf("stats %+v", s)
	}
}

func TestSlowDownRateIsSeeded(t *testing.T) {
	be := newBackend(t)
	run := func(seed uint64) []bool {
		p := faults.NewProxy(t, be.URL, faults.Options{SlowDownRate: 0.3, Seed: seed})
		var out []bool
		for i := 0; i < 200; i++ {
			code, _ := do(t, http.MethodGet, p.URL+"/bucket/k", "")
			out = append(out, code == http.StatusServiceUnavailable)
		}
		return out
	}
	a, b := run(7), run(7)
	n := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different refusal at request %d", i)
		}
		if a[i] {
			n++
		}
	}
	if n < 30 || n > 90 {
		t.Fatalf("%d of 200 refused at rate 0.3", n)
	}
}

func TestMatchAndRuntimeRate(t *testing.T) {
	be := newBackend(t)
	p := faults.NewProxy(t, be.URL, faults.Options{
		SlowDownRate: 1,
		Match:        func(r *http.Request) bool { return r.Method == http.MethodPut },
	})
	if code, _ := do(t, http.MethodGet, p.URL+"/b/k", ""); code != 200 {
		t.Fatalf("GET refused (%d) though Match selects PUTs only", code)
	}
	if code, _ := do(t, http.MethodPut, p.URL+"/b/k", "x"); code != 503 {
		t.Fatalf("PUT got %d, want 503", code)
	}
	p.SetSlowDownRate(0)
	if code, _ := do(t, http.MethodPut, p.URL+"/b/k", "x"); code != 200 {
		t.Fatalf("PUT after SetSlowDownRate(0) got %d", code)
	}
}

func TestLatencyPerMethod(t *testing.T) {
	be := newBackend(t)
	p := faults.NewProxy(t, be.URL, faults.Options{
		Latency:       20 * time.Millisecond,
		MethodLatency: map[string]time.Duration{"put": 150 * time.Millisecond},
	})
	timed := func(method string) time.Duration {
		start := time.Now()
		do(t, method, p.URL+"/b/k", "x")
		return time.Since(start)
	}
	if d := timed(http.MethodGet); d < 20*time.Millisecond || d > 140*time.Millisecond {
		t.Errorf("GET took %v, want about 20ms", d)
	}
	if d := timed(http.MethodPut); d < 150*time.Millisecond {
		t.Errorf("PUT took %v, want at least 150ms", d)
	}
}

func TestRateLimitRefuses(t *testing.T) {
	be := newBackend(t)
	p := faults.NewProxy(t, be.URL, faults.Options{RateLimit: 10, Burst: 5})
	ok, refused := 0, 0
	for i := 0; i < 20; i++ {
		if code, _ := do(t, http.MethodGet, p.URL+"/b/k", ""); code == 200 {
			ok++
		} else {
			refused++
		}
	}
	// 20 requests in well under a second: the burst of 5 plus a few refills.
	if ok < 5 || ok > 10 || p.Stats().RateLimited != int64(refused) {
		t.Fatalf("ok %d refused %d stats %+v", ok, refused, p.Stats())
	}
}

func TestRateLimitQueues(t *testing.T) {
	be := newBackend(t)
	p := faults.NewProxy(t, be.URL, faults.Options{RateLimit: 50, Burst: 1, Queue: true})
	start := time.Now()
	for i := 0; i < 11; i++ {
		if code, _ := do(t, http.MethodGet, p.URL+"/b/k", ""); code != 200 {
			t.Fatalf("queued request got %d", code)
		}
	}
	// 1 from the burst, then 10 at 50/s: about 200ms.
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("11 requests at 50/s took only %v", d)
	}
	if s := p.Stats(); s.Queued < 9 || s.RateLimited != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := faults.New("ftp://x", faults.Options{}); err == nil {
		t.Error("ftp target accepted")
	}
	if _, err := faults.New("127.0.0.1:1", faults.Options{SlowDownRate: 2}); err == nil {
		t.Error("SlowDownRate 2 accepted")
	}
}

func TestCountsOperations(t *testing.T) {
	be := newBackend(t)
	p := faults.NewProxy(t, be.URL, faults.Options{RateLimit: 1, Burst: 1})
	before := p.Stats()
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/b?list-type=2&prefix=x%2F"},
		{http.MethodGet, "/b?versions&prefix=x%2F"},
		{http.MethodGet, "/b/x/k?versionId=v1"},
		{http.MethodHead, "/b/x/k"},
		{http.MethodPut, "/b/x/k"},
		{http.MethodDelete, "/b/x/k"},
	} {
		do(t, r.method, p.URL+r.path, "")
	}
	// Refused requests (all but the first, at 1/s) are counted too.
	s := p.Stats().Minus(before)
	if s.Lists != 2 || s.Gets != 2 || s.Puts != 1 || s.Deletes != 1 || s.Requests != 6 || s.RateLimited < 4 {
		t.Fatalf("stats %+v, want 2 lists, 2 gets, 1 put, 1 delete of 6 requests, at least 4 refused", s)
	}
}
