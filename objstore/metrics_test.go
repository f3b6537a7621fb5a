package objstore_test

import (
	"errors"
	"testing"

	"heartlog/objstore"
)

func TestInstrumentMetrics(t *testing.T) {
	raw := newS3(t, envConfig(t, primaryEnv))
	processor := "objstore-test-" + randomHex(4)
	b := objstore.Instrument(raw, processor)
	if _, ok := b.(objstore.Versioned); !ok {
		t.Error("Instrument dropped Versioned")
	}
	if b.Name() != raw.Name() {
		t.Errorf("Name %q, want %q", b.Name(), raw.Name())
	}
	ctx, w := testContext(t), newWorkspace(t, raw)

	key := w.key("m.ndjson.gz")
	if _, err := b.Put(ctx, key, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, w.key("missing")); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := objstore.ListAll(ctx, b, w.prefix); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}

	l := func(kv ...string) map[string]string {
		m := map[string]string{"processor": processor, "bucket": raw.Name()}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"heartlog_objstore_requests_total", l("operation", "put", "outcome", "success"), 1},
		{"heartlog_objstore_requests_total", l("operation", "get", "outcome", "success"), 1},
		{"heartlog_objstore_requests_total", l("operation", "get", "outcome", "not_found"), 1},
		{"heartlog_objstore_requests_total", l("operation", "get", "outcome", "error"), 0},
		{"heartlog_objstore_requests_total", l("operation", "list", "outcome", "success"), 1},
		{"heartlog_objstore_requests_total", l("operation", "delete", "outcome", "success"), 1},
		{"heartlog_objstore_bytes_total", l("operation", "put"), 1000},
		{"heartlog_objstore_bytes_total", l("operation", "get"), 1000},
		{"heartlog_objstore_request_duration_seconds", l("operation", "get"), 2},
		{"heartlog_objstore_request_duration_seconds", l("operation", "list"), 1},
		{"heartlog_objstore_retries_total", l("operation", "get"), 0},
	} {
		if got := metricValue(t, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
