package objstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"heartlog/internal/faults"
	"heartlog/objstore"
)

// TestSlowDownIsRetried: with 30% of requests refused with SlowDown (not
// forwarded), 200 puts of distinct keys all succeed, every object reads
// back, and the retries show in the metrics.
func TestSlowDownIsRetried(t *testing.T) {
	cfg := envConfig(t, primaryEnv)
	direct := newS3(t, cfg)
	// A random seed: a fixed one replays its streaks of refusals on the
	// last requests in flight in every run (see faults.Options.Seed).
	proxy := faults.NewProxy(t, cfg.Endpoint, faults.Options{SlowDownRate: 0.3})
	faulty := cfg
	faulty.Endpoint = proxy.URL
	// The retry settings are the defaults (10 attempts: a put fails if
	// refused 10 times in a row, 0.3^10, about 1 in 170,000 puts, so this
	// test fails about once in 850 runs) except the backoff cap, which keeps
	// the test fast (throttling backs off from 1 s otherwise).
	faulty.MaxBackoff = 100 * time.Millisecond
	processor := "objstore-test-" + randomHex(4)
	b := objstore.Instrument(newS3(t, faulty), processor)

	ctx, w := testContext(t), newWorkspace(t, direct)
	const n = 200
	keys := make([]string, n)
	data := make([][]byte, n)
	for i := range n {
		keys[i] = w.key(fmt.Sprintf("u%d/2024-05-%02d.ndjson.gz", i, i%28+1))
		if i%10 == 0 { // the proxy keeps odd keys' escaping (the signature covers the path)
			keys[i] = w.key(fmt.Sprintf("odd key+%%25/é-%d", i))
		}
		data[i] = randomBytes(100 + i)
	}
	for i, err := range parallel(n, 32, func(i int) error {
		_, err := b.Put(ctx, keys[i], data[i])
		return err
	}) {
		if err != nil {
			t.Fatalf("put %d through 30%% SlowDown: %v", i, err)
		}
	}
	stats := proxy.Stats()
	t.Logf("proxy: %+v", stats)
	if stats.SlowDowns == 0 {
		t.Fatal("the proxy injected no faults: nothing was retried")
	}
	if stats.Forwarded != n {
		t.Errorf("proxy forwarded %d puts, want exactly %d (refused requests are not forwarded)", stats.Forwarded, n)
	}
	labels := map[string]string{"processor": processor, "operation": objstore.OpPut}
	if got := metricValue(t, "heartlog_objstore_retries_total", labels); got != float64(stats.SlowDowns) {
		t.Errorf("retries metric %v, proxy refused %d", got, stats.SlowDowns)
	}
	labels["outcome"] = objstore.OutcomeSuccess
	if got := metricValue(t, "heartlog_objstore_requests_total", labels); got != n {
		t.Errorf("successful puts metric %v, want %d", got, n)
	}

	// Everything is there, read directly and through the faulty proxy.
	for name, r := range map[string]objstore.Bucket{"direct": direct, "faulty": b} {
		for i, err := range parallel(n, 32, func(i int) error {
			got, _, err := r.Get(ctx, keys[i])
			if err == nil && !bytes.Equal(got, data[i]) {
				err = errors.New("content differs")
			}
			return err
		}) {
			if err != nil {
				t.Fatalf("%s get %d: %v", name, i, err)
			}
		}
	}
}

// TestSlowDownExhaustsAttempts: when every request is refused, Put fails
// after MaxAttempts attempts, and nothing was written.
func TestSlowDownExhaustsAttempts(t *testing.T) {
	cfg := envConfig(t, primaryEnv)
	direct := newS3(t, cfg)
	proxy := faults.NewProxy(t, cfg.Endpoint, faults.Options{SlowDownEvery: 1})
	faulty := cfg
	faulty.Endpoint = proxy.URL
	faulty.MaxAttempts = 4
	faulty.MaxBackoff = 5 * time.Millisecond
	b := newS3(t, faulty)

	ctx, w := testContext(t), newWorkspace(t, direct)
	key := w.key("refused.ndjson.gz")
	start := time.Now()
	_, err := b.Put(ctx, key, []byte("never stored"))
	if err == nil {
		t.Fatal("put through 100% SlowDown succeeded")
	}
	t.Logf("error after %v: %v", time.Since(start), err)
	var maxErr *retry.MaxAttemptsError
	if !errors.As(err, &maxErr) || maxErr.Attempt != 4 {
		t.Errorf("error is not a MaxAttemptsError after 4 attempts: %v", err)
	}
	if !strings.Contains(err.Error(), "SlowDown") || !strings.Contains(err.Error(), key) {
		t.Errorf("error does not name the code and key: %v", err)
	}
	if strings.Contains(err.Error(), cfg.SecretAccessKey) {
		t.Errorf("error contains the secret access key")
	}
	if s := proxy.Stats(); s.Requests != 4 || s.Forwarded != 0 {
		t.Errorf("proxy saw %+v, want 4 requests and none forwarded", s)
	}
	if _, _, err := direct.Get(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("a refused put changed the bucket: get: %v", err)
	}
}
