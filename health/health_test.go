package health_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"heartlog/health"
)

// A unit test of the report's logic: the probes are plain functions here;
// the real dependencies are probed in api and cmd/heartlog's tests.
func TestReportSaysWhatWorksAndLogsOnlyChanges(t *testing.T) {
	var pgDown atomic.Bool
	secret := errors.New(`failed to connect to "user=heartlog database=heartlog host=10.1.2.3": dial tcp 10.1.2.3:5432: connection refused`)
	checks := []health.Check{
		{Name: "nats", Needed: []health.Capability{health.Ingest, health.HotReads, health.OlderReads}, Probe: func(context.Context) error { return nil }},
		{Name: "postgres", Needed: []health.Capability{health.HotReads}, Probe: func(context.Context) error {
			if pgDown.Load() {
				return secret
			}
			return nil
		}},
	}
	var logged bytes.Buffer
	c := health.New(checks, health.Options{ReuseFor: time.Nanosecond, LogEvery: time.Hour, Log: zerolog.New(&logged)})
	ctx := context.Background()

	if r := c.Report(ctx); r.Status != health.OK || r.Ingest != health.OK || r.Reads != health.OK || len(r.Affected) != 0 {
		t.Fatalf("all up: %+v", r)
	}
	pgDown.Store(true)
	var r health.Report
	for range 50 { // a probe every second for a minute, compressed
		r = c.Report(ctx)
		time.Sleep(time.Microsecond)
	}
	if r.Status != health.Degraded || !r.IngestOK() || r.Reads != health.Degraded ||
		len(r.Affected) != 1 || r.Affected[0] != health.HotReads || r.Checks["postgres"] != health.Unreachable {
		t.Fatalf("postgres down: %+v", r)
	}
	body, _ := json.Marshal(r)
	if strings.Contains(string(body), "10.1.2.3") || strings.Contains(string(body), "refused") {
		t.Fatalf("the report carries error detail: %s", body)
	}
	if n := strings.Count(logged.String(), "dependency unreachable"); n != 1 || !strings.Contains(logged.String(), "10.1.2.3") {
		t.Fatalf("log after 50 failed probes (want the detail once):\n%s", logged.String())
	}
	pgDown.Store(false)
	c.Report(ctx)
	c.Report(ctx)
	if n := strings.Count(logged.String(), "dependency is back"); n != 1 {
		t.Fatalf("log after recovery (want one line):\n%s", logged.String())
	}

	// NATS down takes ingest away.
	checks[0].Probe = func(context.Context) error { return errors.New("NATS connection is RECONNECTING") }
	c = health.New(checks, health.Options{Log: zerolog.Nop()})
	if r := c.Report(ctx); r.IngestOK() || r.Status != health.Unavailable || r.Reads != health.Unavailable {
		t.Fatalf("nats down: %+v", r)
	}
}
