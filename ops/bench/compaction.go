package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/compaction"
	"heartlog/processors/dayfiles"
	"heartlog/schema/digest"
	"heartlog/ssdb"
	"heartlog/streams"
)

// The compaction scenarios time `heartlog days close` on a closed day: its
// heartbeats are published straight through streams.Publisher, then
// compaction.Compactor.CloseDay compacts every partition into the stack's
// real stores (versitygw's primary bucket and versioned backup bucket,
// Redis for SSDB), directly (compaction) or through the faults proxies of
// dayfiles-latency (compaction-latency), with the production settings
// (config's defaults) unless a flag says otherwise. Each sink writes
// through buckets instrumented under a label of its own, so that the
// objstore metrics count each sink's requests: what the stores saw, not
// only what the sink says it wrote.

// closeRun is one timed CloseDay and what the stores counted.
type closeRun struct {
	res          []compaction.Result
	start        time.Time
	wall, cpu    time.Duration
	before, peak int64 // RSS when VmHWM was reset before the close, and VmHWM after
	reqs         map[string]sinkRequests
	cacheWrites  int // day-file writes counted by their generations in Redis
	userDays     int
}

// sinkRequests are one sink's object-store operations (after the SDK's
// retries) and its retried HTTP attempts.
type sinkRequests struct {
	puts, putsOK, conflicts, gets, notFound, failed, retries float64
}

func (r sinkRequests) minus(o sinkRequests) sinkRequests {
	return sinkRequests{r.puts - o.puts, r.putsOK - o.putsOK, r.conflicts - o.conflicts, r.gets - o.gets,
		r.notFound - o.notFound, r.failed - o.failed, r.retries - o.retries}
}

func (r sinkRequests) plus(o sinkRequests) sinkRequests {
	return sinkRequests{r.puts + o.puts, r.putsOK + o.putsOK, r.conflicts + o.conflicts, r.gets + o.gets,
		r.notFound + o.notFound, r.failed + o.failed, r.retries + o.retries}
}

// http is the HTTP requests they took: operations plus retried attempts.
func (r sinkRequests) http() float64 { return r.puts + r.gets + r.retries }

func readSinkRequests(label string) sinkRequests {
	return readRequests(map[string]string{"processor": label})
}

// readRequests are the requests of the objstore series whose labels
// include these.
func readRequests(these map[string]string) sinkRequests {
	m := gatherMetrics()
	n := func(op, outcome string) float64 {
		l := maps.Clone(these)
		if op != "" {
			l["operation"] = op
		}
		if outcome != "" {
			l["outcome"] = outcome
		}
		return m.sum("heartlog_objstore_requests_total", l)
	}
	return sinkRequests{
		puts: n(objstore.OpPut, ""), putsOK: n(objstore.OpPut, objstore.OutcomeSuccess), conflicts: n(objstore.OpPut, objstore.OutcomeConflict),
		gets: n(objstore.OpGet, ""), notFound: n(objstore.OpGet, objstore.OutcomeNotFound), failed: n("", objstore.OutcomeError),
		retries: m.sum("heartlog_objstore_retries_total", these),
	}
}

// closeSinks returns compaction.Sinks' objects, cache and backup sinks,
// each built over its own instrumented view of the buckets (label
// scenario/sink): compaction.Sinks gives the objects sink and the cache's
// seed one primary bucket, whose requests one label could not tell apart.
func closeSinks(scenario string, primary, backup objstore.Bucket, c *ssdb.Cache, o compaction.SinkOptions) []processors.Sink {
	var out []processors.Sink
	for _, name := range dayfileProcessors {
		label := scenario + "/" + name
		for _, s := range compaction.Sinks(compaction.Stores{
			Primary: objstore.Instrument(primary, label), Cache: c, Backup: objstore.Instrument(backup, label),
		}, o) {
			if s.Name() == name {
				out = append(out, s)
			}
		}
	}
	return out
}

// closeDay times CloseDay of day over sinks, with the peak RSS and the
// requests of the close alone.
func closeDay(ctx context.Context, st *stack, cfg config, ds *dayStores, scenario, day string, keys []string, sinks []processors.Sink) (closeRun, error) {
	run := closeRun{reqs: map[string]sinkRequests{}, userDays: len(keys)}
	dir := filepath.Join(cfg.workDir, scenario)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return run, err
	}
	c := compaction.New(st.js, st.sc, compaction.Options{
		MemoryBytes: cfg.compMemory, Partitions: cfg.compPartitions, TempDir: dir,
		// No late-path consumer runs here to see the day closed.
		Settle: time.Millisecond, Owner: "bench", Log: st.log,
	})
	before := map[string]sinkRequests{}
	for _, s := range sinks {
		before[s.Name()] = readSinkRequests(scenario + "/" + s.Name())
	}
	// Start the peak from what is left after the publish, given back.
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	run.before = peakRSS()
	stop, err := startProfile(cfg, scenario)
	if err != nil {
		return run, err
	}
	stopHeap := startHeapProfile(cfg, scenario)
	tctx, cancel := context.WithTimeout(ctx, cfg.compTimeout)
	defer cancel()
	cpu0 := cpuTime()
	run.start = time.Now()
	run.res, err = c.CloseDay(tctx, day, sinks...)
	run.wall, run.cpu = time.Since(run.start), cpuTime()-cpu0
	run.peak = peakRSS()
	if perr := errors.Join(stop(), stopHeap()); err == nil {
		err = perr
	}
	if err != nil && tctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("-compaction-timeout %s: %w", cfg.compTimeout, err)
	}
	for _, s := range sinks {
		run.reqs[s.Name()] = readSinkRequests(scenario + "/" + s.Name()).minus(before[s.Name()])
	}
	var gerr error
	if run.cacheWrites, gerr = cacheWrites(context.WithoutCancel(ctx), ds.cache, keys); err == nil {
		err = gerr
	}
	return run, err
}

// cacheWrites counts the day-file writes the cache took for keys: each
// write counts a key's generation up by one (ssdb.Cache.WriteDayFiles), and the
// bench's keys are new.
func cacheWrites(ctx context.Context, c *ssdb.Cache, keys []string) (int, error) {
	total := 0
	for i := 0; i < len(keys); i += 1000 {
		var gens []string
		for _, k := range keys[i:min(i+1000, len(keys))] {
			gens = append(gens, digest.GenKey(k))
		}
		vals, err := c.MGet(ctx, gens)
		if err != nil {
			return total, fmt.Errorf("count cache writes: %w", err)
		}
		for _, v := range vals {
			if v == nil {
				continue
			}
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return total, fmt.Errorf("count cache writes: generation %q: %w", v, err)
			}
			total += n
		}
	}
	return total, nil
}

// sinkPass is one sink's passes over every partition, from the records.
type sinkPass struct {
	files, parked int
	took, longest time.Duration // the passes' Took, summed and the longest
	doneAt        time.Duration // from the close's start to its last record
}

func (run closeRun) passes() map[string]sinkPass {
	out := map[string]sinkPass{}
	for _, r := range run.res {
		for name, s := range r.Sinks {
			p := out[name]
			p.files += s.Files
			p.parked += s.Parked
			if d, err := time.ParseDuration(s.Took); err == nil {
				p.took += d
				p.longest = max(p.longest, d)
			}
			if !s.Skipped {
				p.doneAt = max(p.doneAt, s.At.Sub(run.start))
			}
			out[name] = p
		}
	}
	return out
}

// totals are the heartbeats, the runs spilled and the largest partition's
// heartbeats the close read.
func (run closeRun) totals() (hbs, runs, largest int) {
	for _, r := range run.res {
		hbs += r.Heartbeats
		runs += r.Runs
		largest = max(largest, r.Heartbeats)
	}
	return hbs, runs, largest
}

// perUserDay is n per user-day, as text.
func (run closeRun) perUserDay(n float64) string {
	if run.userDays == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", n/float64(run.userDays))
}

// closedDay is the end of the UTC day daysAgo days before today.
func closedDay(daysAgo int) (time.Time, string) {
	end := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1-daysAgo).Add(-time.Second)
	return end, end.Format("20060102")
}

// publishClosedDay publishes n heartbeats of users ids on the day ending
// at end, and returns the publish row, the day-file keys and the distinct
// heartbeats.
func publishClosedDay(ctx context.Context, st *stack, cfg config, scenario string, ids []string, prefixes map[string]string, n int, end time.Time) (result, []string, int, error) {
	fmt.Fprintf(os.Stderr, "bench: %s: preparing %d heartbeats for %d users on %s\n", scenario, n, len(ids), end.Format(time.DateOnly))
	hbs, err := backlogFor(ids, n, 1, end, 0)
	if err != nil {
		return result{}, nil, 0, err
	}
	return publishDayfileBacklog(ctx, st, cfg, scenario, hbs, prefixes, len(ids), 1)
}

// usersOn makes nu users whose ids all fall on one partition of the
// stream's.
func usersOn(nu int, partitions uint32) ([]string, map[string]string) {
	ids := make([]string, 0, nu)
	prefixes := make(map[string]string, nu)
	for len(ids) < nu {
		id := uuid.NewString()
		if streams.Partition(id, partitions) == 0 {
			ids = append(ids, id)
			prefixes[id] = randomPrefix()
		}
	}
	return ids, prefixes
}

// rssBound is the bound on a partition-day's compaction.
const rssBound = 512 << 20

// closeSpec is a closed day to publish and close.
type closeSpec struct {
	scenario   string
	ids        []string
	prefixes   map[string]string
	heartbeats int
	daysAgo    int // the day: 1 is yesterday

	primary, backup objstore.Bucket // what the sinks write to (ds's cache is the third)
	backupRPS       float64
	started         func() // called just before the close (nil: nothing)
}

// publishAndClose publishes spec's day, closes it with the sinks of
// `heartlog days close` and, unless -dayfiles-keep, deletes what the close
// wrote. It returns the publish row, the close, the backlog's distinct
// heartbeats and the cleanup row (nil when kept).
func publishAndClose(ctx context.Context, st *stack, cfg config, ds *dayStores, spec closeSpec) (pub result, run closeRun, distinct int, cleanup *result, err error) {
	end, day := closedDay(spec.daysAgo)
	pub, keys, distinct, err := publishClosedDay(ctx, st, cfg, spec.scenario, spec.ids, spec.prefixes, spec.heartbeats, end)
	if err != nil {
		pub.failed = err.Error()
		return pub, run, distinct, nil, err
	}
	if !cfg.dfKeep {
		defer func() {
			r := cleanupDayfiles(context.WithoutCancel(ctx), ds, spec.scenario+"-cleanup", keys,
				map[string]bool{"primary": true, "backup": true, "cache": true})
			cleanup = &r
		}()
	}
	sinks := closeSinks(spec.scenario, spec.primary, spec.backup, ds.cache, compaction.SinkOptions{
		Concurrency: cfg.compConcurrency, BackupConcurrency: cfg.compBackupConc, BackupRequestsPerSecond: spec.backupRPS, Log: st.log,
		// As `heartlog days close` decides it.
		CreateFirst: dayfiles.ConditionalWrites(ctx, spec.primary, st.log) && dayfiles.ConditionalWrites(ctx, spec.backup, st.log),
	})
	if spec.started != nil {
		spec.started()
	}
	run, err = closeDay(ctx, st, cfg, ds, spec.scenario, day, keys, sinks)
	return pub, run, distinct, nil, err
}

// rows are the publish row, the measured ones and the cleanup's.
func rows(pub result, measured []result, cleanup *result) []result {
	out := append([]result{pub}, measured...)
	if cleanup != nil {
		out = append(out, *cleanup)
	}
	return out
}

func runCompaction(ctx context.Context, st *stack, cfg config) ([]result, error) {
	ds, err := openDayStores(ctx)
	if err != nil {
		return nil, err
	}
	defer ds.close()
	ids, prefixes := benchUsers(cfg.compUsers)
	if cfg.compOnePartition {
		ids, prefixes = usersOn(cfg.compUsers, st.sc.Partitions)
	}
	// Yesterday, so that the day is over and CloseDay takes it.
	pub, run, distinct, cleanup, err := publishAndClose(ctx, st, cfg, ds, closeSpec{
		scenario: "compaction", ids: ids, prefixes: prefixes, heartbeats: cfg.compHeartbeats, daysAgo: 1,
		primary: ds.primary, backup: ds.backup, backupRPS: cfg.compBackupRPS,
	})
	if pub.failed != "" {
		return rows(pub, nil, cleanup), err
	}
	r := compactionRow(cfg, run, distinct)
	if err != nil {
		r.failed = err.Error()
	}
	return rows(pub, []result{r}, cleanup), err
}

func compactionRow(cfg config, run closeRun, distinct int) result {
	hbs, runs, largest := run.totals()
	r := result{scenario: "compaction", target: "—", unit: "heartbeats/s", seconds: run.wall.Seconds(), heartbeats: hbs, distinct: distinct}
	if run.wall > 0 {
		r.rate = float64(hbs) / run.wall.Seconds()
	}
	if cfg.compOnePartition {
		r.scenario, r.target, r.unit = "compaction (one partition)", "peak RSS ≤ 512 MiB", ""
		ok := "✅"
		if run.peak < 0 || run.peak > rssBound {
			ok = "❌"
		}
		r.result = fmt.Sprintf("%s heartbeats/s, peak RSS %s %s", thousands(r.rate), mib(run.peak), ok)
	}
	o, c, b := run.reqs[streams.DurableObjects], run.reqs[streams.DurableCache], run.reqs[streams.DurableBackup]
	p := run.passes()
	pass := func(name string) string {
		s := p[name]
		return fmt.Sprintf("%s %s (longest %s, all recorded at %s)", name, s.took.Round(time.Millisecond), s.longest.Round(time.Millisecond), s.doneAt.Round(time.Millisecond))
	}
	r.notes = []string{
		fmt.Sprintf("%s heartbeats (%s distinct in the backlog), %s user-days, %d partitions (largest %s heartbeats), %d at once, in %.1fs; %d runs spilled past %s per partition",
			thousands(float64(hbs)), thousands(float64(distinct)), thousands(float64(run.userDays)), len(run.res), thousands(float64(largest)),
			cfg.compPartitions, run.wall.Seconds(), runs, mib(cfg.compMemory)),
		fmt.Sprintf("files per user-day counted by the stores: S3 PUTs %s, backup PUTs %s, cache writes %s (generations in Redis); by the records: objects %s, cache %s, backup %s",
			run.perUserDay(o.putsOK), run.perUserDay(b.putsOK), run.perUserDay(float64(run.cacheWrites)),
			run.perUserDay(float64(p[streams.DurableObjects].files)), run.perUserDay(float64(p[streams.DurableCache].files)), run.perUserDay(float64(p[streams.DurableBackup].files))),
		fmt.Sprintf("requests: objects %s PUTs (%s refused as existing), %s GETs; cache %s S3 GETs (its seed); backup %s PUTs (%s refused), %s GETs; %s SDK retries, %s failed",
			thousands(o.puts), thousands(o.conflicts), thousands(o.gets), thousands(c.gets), thousands(b.puts), thousands(b.conflicts), thousands(b.gets),
			thousands(o.retries+c.retries+b.retries), thousands(o.failed+c.failed+b.failed)),
		"sink passes summed over partitions: " + pass(streams.DurableObjects) + ", " + pass(streams.DurableCache) + ", " + pass(streams.DurableBackup),
		fmt.Sprintf("peak RSS %s: VmHWM of this process, reset before the close at %s, so it includes the embedded NATS server serving the reads and what the publish left",
			mib(run.peak), mib(run.before)),
		fmt.Sprintf("concurrency: objects and cache %d, backup %d, backup ceiling %s", cfg.compConcurrency, cfg.compBackupConc, rpsText(cfg.compBackupRPS)),
	}
	r.cpuNote = fmt.Sprintf("cpu %.2f cores (this process)", run.cpu.Seconds()/run.wall.Seconds())
	return r
}

func rpsText(rps float64) string {
	if rps <= 0 {
		return "none"
	}
	return thousands(rps) + " requests/s"
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
