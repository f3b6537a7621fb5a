package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	settings "heartlog/config"
	"heartlog/processors/catalog"
	"heartlog/streams"
)

// ingest-all: bulk's load (-bulk-conns connections, -bulk-size heartbeats
// a request) over -ingest-users users in turn, through the API with the
// production limits, measured twice in one run: with only the Postgres
// processor running, then with every processor of the catalog and the day
// closer, as `heartlog dev` runs them. Today's heartbeats are of an open
// day, so the day-file processors ack them without writing
// (compaction.LatePath): the second figure is what that costs.

// ingestAllMin is the all-four target, and ingestAllRatio the share of
// the Postgres-only figure it must keep.
const (
	ingestAllMin   = 25_000
	ingestAllRatio = 0.85
)

// ingestPhase is one measured window of ingest-all.
type ingestPhase struct {
	res     result
	left    uint64        // the Postgres consumer's backlog at the window's end
	drained time.Duration // from the window's end until the processors had nothing left
	reqs    map[string]storeCounts
	err     error
}

func runIngestAll(ctx context.Context, st *stack, cfg config) ([]result, error) {
	c, _, keys, err := lifecycleStart(ctx, st, "ingest-all", cfg.ingestUsers)
	if err != nil {
		return nil, err
	}
	base, closeAPI, err := st.devAPI(ctx, c)
	if err != nil {
		return nil, err
	}
	defer closeAPI()

	pg := ingestAllPhase(ctx, st, cfg, c, base, keys, []string{streams.DurablePostgres})
	if pg.err != nil {
		return []result{pg.res}, pg.err
	}
	// The next phase starts on an empty stream: the day-file processors'
	// new consumers would otherwise begin with this phase's backlog.
	if err := freshStream(ctx, st); err != nil {
		return []result{pg.res}, err
	}
	all := ingestAllPhase(ctx, st, cfg, c, base, keys, catalog.Names(nil))
	if all.err != nil {
		return []result{pg.res, all.res}, all.err
	}
	ratio := 0.0
	if pg.res.rate > 0 {
		ratio = all.res.rate / pg.res.rate
	}
	ok := func(b bool) string {
		if b {
			return "✅"
		}
		return "❌"
	}
	all.res.unit = "" // the result says it
	all.res.result = fmt.Sprintf("%s heartbeats/s %s, %.2f of postgres only %s",
		thousands(all.res.rate), ok(all.res.rate >= ingestAllMin), ratio, ok(ratio >= ingestAllRatio))
	return []result{pg.res, all.res}, nil
}

// ingestAllPhase runs names (with the day closer when they include a
// day-file processor), measures bulk's load over keys for -warmup and
// -duration, then waits up to -lifecycle-idle-timeout for the processors to
// catch up and stops them.
func ingestAllPhase(ctx context.Context, st *stack, cfg config, c settings.Config, base string, keys []string, names []string) ingestPhase {
	label, profile := "ingest-all (postgres only)", "ingest-all-postgres"
	target := "—"
	if len(names) > 1 {
		label, profile = "ingest-all (all four)", "ingest-all-all-four"
		target = fmt.Sprintf("≥%s heartbeats/s, ≥%.2f of postgres only", thousands(ingestAllMin), ingestAllRatio)
	}
	ph := ingestPhase{}
	fmt.Fprintf(os.Stderr, "bench: %s: %s\n", label, strings.Join(names, ", "))
	dp, err := startDevProcessors(ctx, st, c, "ingest-all", names, 0)
	if err != nil {
		ph.err = err
		ph.res = result{scenario: label, target: target, failed: err.Error()}
		return ph
	}
	// From here: the conditional-write probes of the start are not counted.
	watch := watchStores(c, "ingest-all")
	writes0 := gatherMetrics().sum("heartlog_dayfile_writes_total", nil)
	res, err := runHTTP(ctx, st, cfg, httpScenarioSpec{name: profile, conns: cfg.bulkConns, size: cfg.bulkSize, bulk: true, keys: keys, base: base})
	if err == nil {
		_, ph.left, err = consumersIdle(ctx, st, []string{streams.DurablePostgres})
	}
	if err == nil {
		ph.drained, _, err = waitIdle(ctx, st, names, cfg.idleTimeout)
	}
	if serr := dp.stop(); err == nil {
		err = serr
	}
	ph.reqs = watch.since()
	writes := gatherMetrics().sum("heartlog_dayfile_writes_total", nil) - writes0
	res.scenario, res.target = label, target
	res.unit, res.rate = "heartbeats/s", 0
	if res.seconds > 0 {
		res.rate = float64(res.heartbeats) / res.seconds
	}
	if err != nil {
		res.failed = err.Error()
		ph.err = err
	}
	res.notes = []string{
		fmt.Sprintf("%s req/s (%d conns × %d hb, %s users in turn, production API limits)",
			thousands(float64(res.okRequests)/res.seconds), res.conns, res.size, thousands(float64(len(keys)))),
		fmt.Sprintf("%s msgs stored (%.1f hb/msg)", thousands(float64(res.msgs)), float64(res.heartbeats)/max(float64(res.msgs), 1)),
		fmt.Sprintf("Postgres consumer %s messages behind at the window's end; processors idle %s later",
			thousands(float64(ph.left)), ph.drained.Round(time.Millisecond)),
		fmt.Sprintf("day-file writes %s (heartlog_dayfile_writes_total), requests: %s", thousands(writes), requestsNote(ph.reqs)),
		"errors: " + formatErrors(res.errors),
	}
	ph.res = res
	return ph
}
