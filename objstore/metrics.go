package objstore

import (
	"context"
	"errors"
	"iter"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Operation label values.
const (
	OpGet        = "get"
	OpPut        = "put"
	OpDelete     = "delete"
	OpList       = "list"
	OpVersions   = "versions"
	OpGetVersion = "get_version"
)

// Outcome label values.
const (
	OutcomeSuccess  = "success"
	OutcomeNotFound = "not_found" // a normal answer for Get: no day file yet
	OutcomeConflict = "conflict"  // PutIfMatch refused: the object changed
	OutcomeCanceled = "canceled"  // the caller's context ended
	OutcomeError    = "error"
)

var (
	requestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_objstore_requests_total",
		Help: "Object store operations by outcome (success, not_found, canceled, error), after the client's retries.",
	}, []string{"processor", "bucket", "operation", "outcome"})
	requestSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "heartlog_objstore_request_duration_seconds",
		Help:    "Time an object store operation took, retries and backoff included (for list: time spent fetching pages).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 17), // 1 ms .. 65 s
	}, []string{"processor", "bucket", "operation"})
	bytesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_objstore_bytes_total",
		Help: "Object bytes read (get, get_version) and written (put) by successful operations.",
	}, []string{"processor", "bucket", "operation"})
	retriesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_objstore_retries_total",
		Help: "Retried HTTP attempts inside object store operations (throttling, 5xx, connection errors); counted by the S3 client.",
	}, []string{"processor", "bucket", "operation"})
)

// Instrument returns b with Prometheus metrics, labelled with processor and
// b.Name(): heartlog_objstore_requests_total (operation, outcome),
// heartlog_objstore_request_duration_seconds (operation),
// heartlog_objstore_bytes_total (operation) and
// heartlog_objstore_retries_total (operation; filled in by *S3, which sees
// each attempt; other implementations report none). The result implements
// Versioned when b does. It keeps the Bucket contract: errors and results
// pass through unchanged.
func Instrument(b Bucket, processor string) Bucket {
	m := &instrumented{b: b, labels: prometheus.Labels{"processor": processor, "bucket": b.Name()}}
	if v, ok := b.(Versioned); ok {
		return &instrumentedVersioned{instrumented: m, v: v}
	}
	return m
}

type instrumented struct {
	b      Bucket
	labels prometheus.Labels

	mu  sync.Mutex
	ops map[string]*opMetrics
}

type opMetrics struct {
	seconds  prometheus.Observer
	bytes    prometheus.Counter
	retries  prometheus.Counter
	outcomes map[string]prometheus.Counter
}

func (m *instrumented) op(name string) *opMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.ops[name]; ok {
		return o
	}
	l := func(extra ...string) prometheus.Labels {
		out := prometheus.Labels{"operation": name}
		for k, v := range m.labels {
			out[k] = v
		}
		if len(extra) == 2 {
			out[extra[0]] = extra[1]
		}
		return out
	}
	o := &opMetrics{
		seconds:  requestSeconds.With(l()),
		bytes:    bytesTotal.With(l()),
		retries:  retriesTotal.With(l()),
		outcomes: map[string]prometheus.Counter{},
	}
	for _, oc := range []string{OutcomeSuccess, OutcomeNotFound, OutcomeConflict, OutcomeCanceled, OutcomeError} {
		o.outcomes[oc] = requestsTotal.With(l("outcome", oc))
	}
	if m.ops == nil {
		m.ops = map[string]*opMetrics{}
	}
	m.ops[name] = o
	return o
}

// start begins one operation; the returned func records it.
func (m *instrumented) start(ctx context.Context, name string) (context.Context, func(err error, n int)) {
	o := m.op(name)
	ctx, retries := withRetryCounter(ctx)
	begin := time.Now()
	return ctx, func(err error, n int) {
		o.seconds.Observe(time.Since(begin).Seconds())
		o.record(err, n, retries.Load())
	}
}

func (o *opMetrics) record(err error, n int, retries int64) {
	if retries > 0 {
		o.retries.Add(float64(retries))
	}
	o.outcomes[outcome(err)].Inc()
	if err == nil && n > 0 {
		o.bytes.Add(float64(n))
	}
}

func outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeSuccess
	case errors.Is(err, ErrPreconditionFailed):
		return OutcomeConflict
	case errors.Is(err, ErrNotFound):
		return OutcomeNotFound
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	default:
		return OutcomeError
	}
}

func (m *instrumented) Name() string { return m.b.Name() }

func (m *instrumented) Get(ctx context.Context, key string) ([]byte, string, error) {
	ctx, done := m.start(ctx, OpGet)
	data, etag, err := m.b.Get(ctx, key)
	done(err, len(data))
	return data, etag, err
}

func (m *instrumented) Put(ctx context.Context, key string, data []byte) (string, error) {
	ctx, done := m.start(ctx, OpPut)
	etag, err := m.b.Put(ctx, key, data)
	done(err, len(data))
	return etag, err
}

func (m *instrumented) PutIfMatch(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	ctx, done := m.start(ctx, OpPut)
	etag, err := m.b.PutIfMatch(ctx, key, data, ifMatch)
	done(err, len(data))
	return etag, err
}

func (m *instrumented) Delete(ctx context.Context, key string) error {
	ctx, done := m.start(ctx, OpDelete)
	err := m.b.Delete(ctx, key)
	done(err, 0)
	return err
}

// List counts one operation per iteration; its duration is the time spent
// inside the wrapped iterator (fetching pages), not in the caller's loop.
func (m *instrumented) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return instrumentList(m, ctx, func(ctx context.Context) iter.Seq2[string, error] { return m.b.List(ctx, prefix) })
}

func (m *instrumented) Objects(ctx context.Context, prefix string) iter.Seq2[Object, error] {
	return instrumentList(m, ctx, func(ctx context.Context) iter.Seq2[Object, error] { return m.b.Objects(ctx, prefix) })
}

// instrumentList times a listing as one list operation: the time spent in
// the listing's pages, not in the caller's loop body.
func instrumentList[T any](m *instrumented, ctx context.Context, list func(context.Context) iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		o := m.op(OpList)
		ctx, retries := withRetryCounter(ctx)
		var spent time.Duration
		var err error
		stopped := false
		t := time.Now()
		for v, e := range list(ctx) {
			spent += time.Since(t)
			if e != nil {
				err = e
			}
			ok := yield(v, e)
			t = time.Now()
			if !ok {
				stopped = true
				break
			}
		}
		if !stopped {
			spent += time.Since(t)
		}
		o.seconds.Observe(spent.Seconds())
		o.record(err, 0, retries.Load())
	}
}

type instrumentedVersioned struct {
	*instrumented
	v Versioned
}

var _ Versioned = (*instrumentedVersioned)(nil)

func (m *instrumentedVersioned) Versions(ctx context.Context, key string) ([]Version, error) {
	ctx, done := m.start(ctx, OpVersions)
	vs, err := m.v.Versions(ctx, key)
	done(err, 0)
	return vs, err
}

func (m *instrumentedVersioned) GetVersion(ctx context.Context, key, versionID string) ([]byte, error) {
	ctx, done := m.start(ctx, OpGetVersion)
	data, err := m.v.GetVersion(ctx, key, versionID)
	done(err, len(data))
	return data, err
}
