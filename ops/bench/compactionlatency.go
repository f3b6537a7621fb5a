package main

import (
	"context"
	"fmt"
	"time"

	"heartlog/internal/faults"
	"heartlog/streams"
)

// The compaction-latency scenario closes a day of -compaction-latency-users
// user-days through dayfiles-latency's simulation of AWS S3 (200 ms a
// request) and Spaces (2 s PUTs, 500 requests/s, 503 SlowDown past it),
// with the production settings, and reports how long the day takes to
// compact and to back up. A partition's compaction runs its three sinks'
// passes at once and the next partition starts when all three are done, so
// the slowest sink of each partition paces the close.

func runCompactionLatency(ctx context.Context, st *stack, cfg config) ([]result, error) {
	ds, sim, done, err := openSimulation(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	ids, prefixes := benchUsers(cfg.clUsers)
	var p0, b0 faults.Stats
	// The day before yesterday: the compaction scenario closes yesterday
	// in the same run, and a closed day's records would make a second
	// close skip it.
	pub, run, _, cleanup, err := publishAndClose(ctx, st, cfg, ds, closeSpec{
		scenario: "compaction-latency", ids: ids, prefixes: prefixes, heartbeats: cfg.clHeartbeats, daysAgo: 2,
		primary: sim.primary, backup: sim.backup, backupRPS: cfg.latBackupRPS,
		// After the conditional-write probes, which go through the proxies.
		started: func() { p0, b0 = sim.pproxy.Stats(), sim.bproxy.Stats() },
	})
	if pub.failed != "" {
		return rows(pub, nil, cleanup), err
	}
	pr, br := sim.pproxy.Stats().Minus(p0), sim.bproxy.Stats().Minus(b0)
	measured := compactionLatencyRows(cfg, run, pr, br)
	if err != nil {
		measured[0].failed = err.Error()
	}
	return rows(pub, measured, cleanup), err
}

// compactionLatencyRows are the close's row and one row per sink.
func compactionLatencyRows(cfg config, run closeRun, pr, br faults.Stats) []result {
	hbs, runs, _ := run.totals()
	wall := run.wall.Seconds()
	close := result{scenario: "compaction-latency", target: "—", seconds: wall, heartbeats: hbs,
		result: fmt.Sprintf("%.1f s to close %s user-days", wall, thousands(float64(run.userDays)))}
	mode := "excess refused with 503 SlowDown"
	if cfg.latBackupQueue {
		mode = "excess queued"
	}
	close.notes = []string{
		fmt.Sprintf("%s user-days/s, %s heartbeats in %d partitions, %d at once; %d runs spilled", thousands(float64(run.userDays)/wall), thousands(float64(hbs)), len(run.res), cfg.compPartitions, runs),
		fmt.Sprintf("primary proxy (%s a request): %s requests (%s/s)", cfg.latPrimary, thousands(float64(pr.Requests)), thousands(float64(pr.Requests)/wall)),
		fmt.Sprintf("backup proxy (PUT %s, other %s, ceiling %s requests/s, %s): %s requests, %s forwarded, %s answered 503", cfg.latBackupPut, cfg.latBackupGet,
			thousands(cfg.latBackupRate), mode, thousands(float64(br.Requests)), thousands(float64(br.Forwarded)), thousands(float64(br.Faults()))),
		fmt.Sprintf("production settings: objects and cache concurrency %d, backup concurrency %d, backup paced at %s requests/s, %s memory per partition", cfg.compConcurrency, cfg.compBackupConc, thousands(cfg.latBackupRPS), mib(cfg.compMemory)),
	}
	close.cpuNote = fmt.Sprintf("cpu %.2f cores (this process)", run.cpu.Seconds()/wall)
	rows := []result{close}
	passes := run.passes()
	for _, name := range dayfileProcessors {
		p, q := passes[name], run.reqs[name]
		done := p.doneAt.Seconds()
		r := result{scenario: "compaction-latency/" + name, target: "—", seconds: done, cpuNote: "-",
			result: fmt.Sprintf("%.1f s until recorded", done)}
		written := q.putsOK
		what := "S3 PUTs"
		if name == streams.DurableCache {
			written, what = float64(run.cacheWrites), "cache writes"
		}
		rate := 0.0
		if done > 0 {
			rate = q.http() / done
		}
		r.notes = []string{
			fmt.Sprintf("passes (Took) %s summed over %d partitions, longest %s", p.took.Round(time.Millisecond), len(run.res), p.longest.Round(time.Millisecond)),
			fmt.Sprintf("%s %s per user-day (the records: %s files)", what, run.perUserDay(written), thousands(float64(p.files))),
			fmt.Sprintf("requests: %s PUTs (%s refused as existing), %s GETs (%s not found), %s SDK retries, %s failed: %s HTTP requests/s until recorded",
				thousands(q.puts), thousands(q.conflicts), thousands(q.gets), thousands(q.notFound), thousands(q.retries), thousands(q.failed), thousands(rate)),
		}
		switch name {
		case streams.DurableBackup:
			r.notes = append(r.notes, fmt.Sprintf("%s answered 503 by the proxy; achieved %s requests/s against the sink's pace of %s and the ceiling of %s (%.0f%% of the ceiling)",
				thousands(float64(br.Faults())), thousands(rate), thousands(cfg.latBackupRPS), thousands(cfg.latBackupRate), 100*rate/max(1, cfg.latBackupRate)))
		case streams.DurableCache:
			r.notes = append(r.notes, "its S3 requests are its seed's, through the primary proxy")
		}
		if p.parked > 0 {
			r.notes = append(r.notes, fmt.Sprintf("%d parked", p.parked))
		}
		rows = append(rows, r)
	}
	return rows
}
