package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"heartlog/objstore"
	"heartlog/processors/compaction"
	"heartlog/processors/merge"
	"heartlog/streams"
)

// The compaction scenario times `heartlog days close` on a closed day:
// -compaction-heartbeats heartbeats of -compaction-users users, all of
// yesterday (UTC), are published straight through streams.Publisher, then
// compaction.Compactor.CloseDay compacts every partition into the stack's
// real stores (versitygw's primary bucket and versioned backup bucket,
// Redis for SSDB), -compaction-partitions partitions at once, each holding
// at most -compaction-memory-bytes in memory before it spills sorted runs
// to <workdir>/compaction. Reported: heartbeats/s over the close, files
// written per user-day and sink, runs spilled, and the process's peak RSS
// during the close (VmHWM, reset just before it; the process also holds
// the embedded NATS server that serves the reads).

func runCompaction(ctx context.Context, st *stack, cfg config) (results []result, err error) {
	ds, err := openDayStores(ctx)
	if err != nil {
		return nil, err
	}
	defer ds.close()
	// Yesterday, so that the day is over and CloseDay takes it.
	endOfYesterday := time.Now().UTC().Truncate(24 * time.Hour).Add(-time.Second)
	day := endOfYesterday.Format("20060102")
	fmt.Fprintf(os.Stderr, "bench: compaction: preparing %d heartbeats for %d users on %s\n", cfg.compHeartbeats, cfg.compUsers, day)
	hbs, prefixes, err := backlog(cfg.compHeartbeats, cfg.compUsers, 1, endOfYesterday)
	if err != nil {
		return nil, err
	}
	pub, keys, distinct, err := publishDayfileBacklog(ctx, st, cfg, "compaction", hbs, prefixes, cfg.compUsers, 1)
	results = []result{pub}
	if err != nil {
		results[0].failed = err.Error()
		return results, err
	}
	if !cfg.dfKeep {
		defer func() {
			results = append(results, cleanupDayfiles(context.WithoutCancel(ctx), ds, "compaction-cleanup", keys,
				map[string]bool{"primary": true, "backup": true, "cache": true}))
		}()
	}
	dir := filepath.Join(cfg.workDir, "compaction")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return results, err
	}
	c := compaction.New(st.js, st.sc, compaction.Options{
		MemoryBytes: cfg.compMemory, Partitions: cfg.compPartitions, TempDir: dir,
		Settle: time.Millisecond, Owner: "bench", Log: st.log,
	})
	sinks := compaction.Sinks(compaction.Stores{
		Primary: objstore.Instrument(ds.primary, "compaction"),
		Cache:   ds.cache,
		Backup:  objstore.Instrument(ds.backup, "compaction-backup"),
	}, compaction.SinkOptions{Concurrency: cfg.dfConcurrency, BackupConcurrency: cfg.dfConcurrency, BackupRequestsPerSecond: cfg.dfBackupRPS, Log: st.log,
		// As `heartlog days close` decides it.
		CreateFirst: merge.ConditionalWrites(ctx, ds.primary, st.log) && merge.ConditionalWrites(ctx, ds.backup, st.log)})

	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	before := peakRSS()
	stop, err := startProfile(cfg, "compaction")
	if err != nil {
		return results, err
	}
	cpu0, start := cpuTime(), time.Now()
	res, err := c.CloseDay(ctx, day, sinks...)
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	peak := peakRSS()
	if perr := stop(); err == nil {
		err = perr
	}
	r := compactionRow(res, wall, cpu, distinct, len(keys), before, peak)
	if err != nil {
		r.failed = err.Error()
	}
	results = append(results, r)
	return results, err
}

func compactionRow(res []compaction.Result, wall, cpu time.Duration, distinct, userDays int, before, peak int64) result {
	r := result{scenario: "compaction", target: "—", unit: "heartbeats/s", seconds: wall.Seconds(), distinct: distinct}
	files := map[string]int{}
	runs, hbs := 0, 0
	for _, p := range res {
		runs += p.Runs
		hbs += p.Heartbeats
		for name, s := range p.Sinks {
			files[name] += s.Files
		}
	}
	r.heartbeats = hbs
	if wall > 0 {
		r.rate = float64(hbs) / wall.Seconds()
	}
	per := func(name string) string {
		if userDays == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", float64(files[name])/float64(userDays))
	}
	r.notes = []string{fmt.Sprintf("%s heartbeats (%s distinct in the backlog), %s user-days, %d partitions in %.1fs; files per user-day: objects %s, cache %s, backup %s; %d runs spilled; peak RSS %s (%s before the close)",
		thousands(float64(hbs)), thousands(float64(distinct)), thousands(float64(userDays)), len(res), wall.Seconds(),
		per(streams.DurableObjects), per(streams.DurableCache), per(streams.DurableBackup), runs, mib(peak), mib(before))}
	r.cpuNote = fmt.Sprintf("cpu %.2f cores (this process)", cpu.Seconds()/wall.Seconds())
	return r
}

func mib(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux 4.0+).
func resetPeakRSS() {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Fprintf(os.Stderr, "bench: compaction: cannot reset the peak RSS (%v); it includes what came before\n", err)
	}
}

// peakRSS is VmHWM from /proc/self/status, in bytes; -1 when unknown.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
