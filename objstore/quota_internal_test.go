package objstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"heartlog/internal/faults"
)

// TestRetryQuota shows why NewS3 disables the SDK's retry quota. Every
// request is refused with SlowDown by a proxy (which therefore needs no
// server behind it). With the SDK's default quota (500 tokens, 5 per
// throttled retry, refilled only by successes) a burst of 60 puts runs out
// after about 100 retries and the rest fail at once with "retry quota
// exceeded"; with ratelimit.None every put makes all its attempts.
func TestRetryQuota(t *testing.T) {
	const puts, attempts = 60, 10
	run := func(t *testing.T, opts ...func(*retry.StandardOptions)) (faults.Stats, []error) {
		proxy := faults.NewProxy(t, "http://127.0.0.1:1", faults.Options{SlowDownEvery: 1})
		b, err := newS3(context.Background(), S3Config{
			Endpoint: proxy.URL, Region: "us-east-1", Bucket: "quota", PathStyle: true,
			AccessKeyID: "id", SecretAccessKey: "secret",
			MaxAttempts: attempts, MaxBackoff: time.Millisecond,
		}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, puts)
		var wg sync.WaitGroup
		for i := range puts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = b.Put(context.Background(), "k", []byte("x"))
			}()
		}
		wg.Wait()
		return proxy.Stats(), errs
	}
	isQuota := func(err error) bool {
		var q ratelimit.QuotaExceededError
		return errors.As(err, &q)
	}

	t.Run("sdk default quota", func(t *testing.T) {
		stats, errs := run(t, func(o *retry.StandardOptions) {
			o.RateLimiter = ratelimit.NewTokenRateLimit(retry.DefaultRetryRateTokens)
		})
		quota := 0
		for _, err := range errs {
			if isQuota(err) {
				quota++
			}
		}
		t.Logf("%d of %d puts failed with the retry quota exhausted after %d requests (of %d possible); e.g. %v",
			quota, puts, stats.Requests, puts*attempts, errs[len(errs)-1])
		if quota == 0 || stats.Requests >= puts*attempts {
			t.Fatalf("expected the default retry quota to cut retries short: %d quota errors, %d requests", quota, stats.Requests)
		}
	})
	t.Run("NewS3 (no quota)", func(t *testing.T) {
		stats, errs := run(t)
		for _, err := range errs {
			var maxErr *retry.MaxAttemptsError
			if isQuota(err) || !errors.As(err, &maxErr) {
				t.Fatalf("want every put to fail after %d attempts, got %v", attempts, err)
			}
		}
		if stats.Requests != puts*attempts {
			t.Fatalf("%d requests, want %d", stats.Requests, puts*attempts)
		}
	})
}
