package objstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
)

const (
	primaryEnv = "HEARTLOG_S3_"
	backupEnv  = "HEARTLOG_BACKUP_S3_"
)

// envConfig reads the bucket configuration that `. var/env` exports. These
// tests need a real S3 server: without one they fail, they do not skip.
func envConfig(t testing.TB, prefix string) objstore.S3Config {
	t.Helper()
	if os.Getenv(prefix+"ENDPOINT") == "" {
		t.Fatalf("%sENDPOINT is not set: the objstore tests run against a real S3 server. "+
			"Start the local stack and load its environment first: ops/stack.sh up && . var/env", prefix)
	}
	cfg, err := objstore.ConfigFromEnv(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newS3(t testing.TB, cfg objstore.S3Config) *objstore.S3 {
	t.Helper()
	b, err := objstore.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// workspace is a unique key prefix in one bucket. Every key a test writes
// comes from key(), and the test's cleanup deletes every version of each
// (and whatever is still listed under the prefix).
type workspace struct {
	raw    *objstore.S3
	prefix string

	mu   sync.Mutex
	keys map[string]bool
}

// newWorkspace makes the test's workspace and deletes it at the end. Its
// prefix is a top-level one of its own, not under a shared folder:
// versitygw's posix backend removes a folder that a delete leaves empty,
// and a PUT that is creating its key's folders under the same parent at
// that moment fails (409 ExistingObjectIsDirectory, versity/versitygw#1988),
// so parallel tests' cleanups would break each other's writes.
func newWorkspace(t testing.TB, raw *objstore.S3) *workspace {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	w := &workspace{raw: raw, prefix: "objstore-test-" + name + "-" + randomHex(6) + "/", keys: map[string]bool{}}
	t.Cleanup(func() { w.cleanup(t) })
	return w
}

func (w *workspace) key(name string) string {
	k := w.prefix + name
	w.mu.Lock()
	w.keys[k] = true
	w.mu.Unlock()
	return k
}

func (w *workspace) cleanup(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	listed, err := objstore.ListAll(ctx, w.raw, w.prefix)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	w.mu.Lock()
	for _, k := range listed {
		w.keys[k] = true
	}
	keys := make([]string, 0, len(w.keys))
	for k := range w.keys {
		keys = append(keys, k)
	}
	w.mu.Unlock()
	errs := parallel(len(keys), 32, func(i int) error { return w.raw.DeleteAllVersions(ctx, keys[i]) })
	for _, err := range errs {
		if err != nil {
			t.Errorf("cleanup: %v", err)
			break
		}
	}
	if left, err := objstore.ListAll(ctx, w.raw, w.prefix); err == nil && len(left) > 0 {
		t.Errorf("cleanup: %d keys left under %s", len(left), w.prefix)
	}
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the
// errors by index.
func parallel(n, workers int, fn func(i int) error) []error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// metricValue reads a counter (or a histogram's sample count) from the
// default registry; 0 if the series does not exist.
func metricValue(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	return max(heartlogtest.MetricValue(t, name, labels), 0) // -1: no series yet
}
