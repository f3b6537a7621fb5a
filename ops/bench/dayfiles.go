package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"heartlog/heartbeat"
	"heartlog/internal/faults"
	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/backup"
	cachesink "heartlog/processors/cache"
	"heartlog/processors/objects"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/ssdb"
	"heartlog/streams"
)

// The day-file scenarios run the objects, cache and backup processors
// (processors.RunPartitions over their 16 pinned partition consumers, as
// `heartlog process` runs them) over a backlog already in the stream, one
// processor at a time, against the local stack's real stores: versitygw's
// primary bucket, its versioned backup bucket, and Redis standing in for
// SSDB. dayfiles-latency puts internal/faults proxies in front of
// versitygw to make it behave like AWS S3 (latency) and Spaces (latency and
// a request-rate ceiling).

var dayfileProcessors = []string{streams.DurableObjects, streams.DurableCache, streams.DurableBackup}

// dayStores are the stack's day-file stores, opened from the environment
// (. var/env): HEARTLOG_S3_*, HEARTLOG_BACKUP_S3_*, HEARTLOG_CACHE_URL.
type dayStores struct {
	primaryCfg, backupCfg objstore.S3Config
	primary, backup       *objstore.S3 // direct: no proxy
	cache                 *ssdb.Cache
}

func openDayStores(ctx context.Context) (*dayStores, error) {
	var ds dayStores
	var err error
	if os.Getenv("HEARTLOG_S3_BUCKET") == "" || os.Getenv("HEARTLOG_BACKUP_S3_BUCKET") == "" {
		return nil, errors.New("HEARTLOG_S3_* / HEARTLOG_BACKUP_S3_* are not set: run `. var/env` with the stack up (ops/stack.sh up)")
	}
	if ds.primaryCfg, err = objstore.ConfigFromEnv("HEARTLOG_S3_"); err != nil {
		return nil, err
	}
	if ds.backupCfg, err = objstore.ConfigFromEnv("HEARTLOG_BACKUP_S3_"); err != nil {
		return nil, err
	}
	if ds.primary, err = objstore.NewS3(ctx, ds.primaryCfg); err != nil {
		return nil, err
	}
	if ds.backup, err = objstore.NewS3(ctx, ds.backupCfg); err != nil {
		return nil, err
	}
	ccfg, err := ssdb.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	if ds.cache, err = ssdb.New(ccfg); err != nil {
		return nil, err
	}
	if err := ds.cache.Ping(ctx); err != nil {
		_ = ds.cache.Close()
		return nil, fmt.Errorf("cache (HEARTLOG_CACHE_URL): %w", err)
	}
	return &ds, nil
}

func (ds *dayStores) close() { _ = ds.cache.Close() }

// timedBucket wraps the bucket a sink writes through: it times every Get
// and Put (SDK retries and backoff included), counts the requests in
// flight and how often each key was written.
type timedBucket struct {
	objstore.Bucket
	get, put opStats
	inflight atomic.Int64

	mu        sync.Mutex
	putsByKey map[string]int32
}

type opStats struct {
	mu              sync.Mutex
	lat             []time.Duration
	n, missing, bad atomic.Int64
}

func (o *opStats) record(d time.Duration, err error) {
	o.n.Add(1)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		o.missing.Add(1)
	case err != nil:
		o.bad.Add(1)
		return
	}
	o.mu.Lock()
	o.lat = append(o.lat, d)
	o.mu.Unlock()
}

func (o *opStats) latencies() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.lat)
}

// reset forgets what was recorded: the next round of a sink that keeps its
// bucket (and its memo) is measured on its own.
func (b *timedBucket) reset() {
	b.get.reset()
	b.put.reset()
	b.mu.Lock()
	b.putsByKey = map[string]int32{}
	b.mu.Unlock()
}

func (o *opStats) reset() {
	o.mu.Lock()
	o.lat = nil
	o.mu.Unlock()
	o.n.Store(0)
	o.missing.Store(0)
	o.bad.Store(0)
}

func newTimedBucket(b objstore.Bucket) *timedBucket {
	return &timedBucket{Bucket: b, putsByKey: map[string]int32{}}
}

func (b *timedBucket) Get(ctx context.Context, key string) ([]byte, string, error) {
	b.inflight.Add(1)
	start := time.Now()
	data, etag, err := b.Bucket.Get(ctx, key)
	b.get.record(time.Since(start), err)
	b.inflight.Add(-1)
	return data, etag, err
}

func (b *timedBucket) Put(ctx context.Context, key string, data []byte) (string, error) {
	return b.PutIfMatch(ctx, key, data, "\x00unconditional")
}

// PutIfMatch times a write; the sinks write this way. ifMatch
// "\x00unconditional" (from Put) is a plain Put.
func (b *timedBucket) PutIfMatch(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	b.inflight.Add(1)
	start := time.Now()
	var etag string
	var err error
	if ifMatch == "\x00unconditional" {
		etag, err = b.Bucket.Put(ctx, key, data)
	} else {
		etag, err = b.Bucket.PutIfMatch(ctx, key, data, ifMatch)
	}
	b.put.record(time.Since(start), err)
	b.inflight.Add(-1)
	if err == nil {
		b.mu.Lock()
		b.putsByKey[key]++
		b.mu.Unlock()
	}
	return etag, err
}

// bucketSnap is what a timedBucket counted up to a moment.
type bucketSnap struct {
	gets, missing, puts, failed int64
	getLat, putLat              []time.Duration
}

func (b *timedBucket) snap() bucketSnap {
	return bucketSnap{
		gets: b.get.n.Load(), missing: b.get.missing.Load(), puts: b.put.n.Load(),
		failed: b.get.bad.Load() + b.put.bad.Load(),
		getLat: b.get.latencies(), putLat: b.put.latencies(),
	}
}

// rewrites is how many keys were written more than once, the most writes
// of one key, and how many keys were written more often than their
// partition's sink was asked to commit (which would break "at most one
// write per user-day per flush").
func (b *timedBucket) rewrites(commitsByPartition map[uint32]int, partitions uint32) (keys int, most int32, over int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, n := range b.putsByKey {
		if n > 1 {
			keys++
		}
		most = max(most, n)
		if _, user, _, err := dayfile.ParseKey(k); err == nil && int(n) > commitsByPartition[streams.Partition(user, partitions)] {
			over++
		}
	}
	return keys, most, over
}

// timedSink times each commit of a sink.
type timedSink struct {
	processors.Sink
	mu       sync.Mutex
	commits  []time.Duration
	sizes    []int          // messages per commit
	attempts map[uint32]int // commit attempts per partition
}

func (s *timedSink) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	if len(batches) > 0 {
		s.mu.Lock()
		s.attempts[batches[0].Partition]++
		s.mu.Unlock()
	}
	start := time.Now()
	err := s.Sink.Commit(ctx, batches)
	if err == nil {
		s.mu.Lock()
		s.commits = append(s.commits, time.Since(start))
		s.sizes = append(s.sizes, len(batches))
		s.mu.Unlock()
	}
	return err
}

// dfCounters are the Prometheus counters of one processor that a run
// reports as deltas.
type dfCounters struct {
	writes, unchanged, corrupt        float64 // heartlog_dayfile_*
	batches, commitErrors, heartbeats float64 // heartlog_processor_*
	s3Retries                         float64 // heartlog_objstore_retries_total
}

func readCounters(processor string) dfCounters {
	sum := gatherMetrics().sum
	p := map[string]string{"processor": processor}
	return dfCounters{
		writes:       sum("heartlog_dayfile_writes_total", p),
		unchanged:    sum("heartlog_dayfile_unchanged_total", p),
		corrupt:      sum("heartlog_dayfile_corrupt_total", p),
		batches:      sum("heartlog_processor_batch_messages", p),
		commitErrors: sum("heartlog_processor_commit_errors_total", p),
		heartbeats:   sum("heartlog_processor_heartbeats_total", p),
		s3Retries:    sum("heartlog_objstore_retries_total", p),
	}
}

// metrics is one gathering of the default Prometheus registry, by name.
type metrics map[string]*dto.MetricFamily

func gatherMetrics() metrics {
	fams, _ := prometheus.DefaultGatherer.Gather()
	m := metrics{}
	for _, f := range fams {
		m[f.GetName()] = f
	}
	return m
}

// sum adds up the series of name whose labels include labels: counters'
// and gauges' values, histograms' sample counts.
func (m metrics) sum(name string, labels map[string]string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	var v float64
metrics:
	for _, s := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range s.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, want := range labels {
			if have[k] != want {
				continue metrics
			}
		}
		switch {
		case s.Counter != nil:
			v += s.Counter.GetValue()
		case s.Histogram != nil:
			v += float64(s.Histogram.GetSampleCount())
		case s.Gauge != nil:
			v += s.Gauge.GetValue()
		}
	}
	return v
}

func (c dfCounters) minus(o dfCounters) dfCounters {
	return dfCounters{
		writes: c.writes - o.writes, unchanged: c.unchanged - o.unchanged, corrupt: c.corrupt - o.corrupt,
		batches: c.batches - o.batches, commitErrors: c.commitErrors - o.commitErrors,
		heartbeats: c.heartbeats - o.heartbeats, s3Retries: c.s3Retries - o.s3Retries,
	}
}

// extProc is a stack process whose CPU time is counted too.
type extProc struct {
	name string
	pid  int
}

// stackProcs reads the pid files of the stack's S3 server and cache
// (versitygw.pid, redis.pid in -stack-run-dir). Missing ones are skipped.
func stackProcs(dir string) []extProc {
	var out []extProc
	for _, name := range []string{"versitygw", "redis"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if _, err := procCPU(pid); err != nil {
			continue
		}
		out = append(out, extProc{name: name, pid: pid})
	}
	return out
}

// procCPU is the user+system CPU time of a process from /proc/<pid>/stat
// (in clock ticks of 1/100 s, USER_HZ on Linux).
func procCPU(pid int) (time.Duration, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	return ticks(f, 11, 12), nil
}

// cpuSnap is the CPU time of this process and of the stack's processes.
type cpuSnap struct {
	self time.Duration
	ext  []time.Duration
}

func takeCPU(procs []extProc) cpuSnap {
	s := cpuSnap{self: cpuTime()}
	for _, p := range procs {
		d, _ := procCPU(p.pid)
		s.ext = append(s.ext, d)
	}
	return s
}

// cpuNote says how many cores each process used between two snapshots.
func cpuNote(procs []extProc, a, b cpuSnap, wall float64) (string, float64) {
	self := (b.self - a.self).Seconds() / wall
	parts := []string{fmt.Sprintf("bench %.2f", self)}
	total := self
	for i, p := range procs {
		c := (b.ext[i] - a.ext[i]).Seconds() / wall
		total += c
		parts = append(parts, fmt.Sprintf("%s %.2f", p.name, c))
	}
	return fmt.Sprintf("cpu %s = %.2f cores", strings.Join(parts, " + "), total), self
}

// dfSample is one poll of a run.
type dfSample struct {
	at       time.Duration
	writes   float64
	inflight int64
}

// dfRun is what one processor run measured.
type dfRun struct {
	name      string
	drained   bool
	seconds   float64 // start to drained (or to the timeout)
	delta     dfCounters
	samples   []dfSample
	pending   uint64 // messages not yet acked at the end
	redeliv   int    // consumers' NumRedelivered at the end
	commits   []time.Duration
	sizes     []int
	bucket    bucketSnap // at the end of the measured window
	rewritten int        // keys written more than once
	mostPuts  int32      // most writes of one key
	overPuts  int        // keys written more often than their partition committed
	cpuNote   string
	cpuSelf   float64
	proxy     faults.Stats // requests the proxy saw (latency scenario)
	proxyName string
}

// dfSpec says how to run one processor.
type dfSpec struct {
	scenario string // for progress lines and the profile name
	name     string // processor
	sink     processors.Sink
	bucket   *timedBucket // what the sink reads/writes through (nil: none)
	opts     processors.Options
	timeout  time.Duration
	proxy    *faults.Proxy
}

// deletePartitionConsumers removes a processor's partition consumers, so
// that a run starts at the beginning of the stream.
func deletePartitionConsumers(ctx context.Context, st *stack, name string) error {
	for p := range st.sc.Partitions {
		err := st.js.DeleteConsumer(ctx, st.sc.Stream, streams.PartitionDurable(name, p))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete consumer %s: %w", streams.PartitionDurable(name, p), err)
		}
	}
	return nil
}

// runDayfileProcessor runs one processor over the stream until every one of
// its partition consumers has nothing pending and nothing unacked, or the
// timeout passes (then the run is reported as it stands).
func runDayfileProcessor(ctx context.Context, st *stack, cfg config, procs []extProc, spec dfSpec) (dfRun, error) {
	run := dfRun{name: spec.name}
	if err := deletePartitionConsumers(ctx, st, spec.name); err != nil {
		return run, err
	}
	conss, err := streams.EnsurePartitionConsumers(ctx, st.js, st.sc, spec.name)
	if err != nil {
		return run, err
	}
	ts := &timedSink{Sink: spec.sink, attempts: map[uint32]int{}}
	var proxy0 faults.Stats
	if spec.proxy != nil {
		proxy0 = spec.proxy.Stats()
	}
	before := readCounters(spec.name)
	stopProfile, err := startProfile(cfg, spec.scenario+"-"+spec.name)
	if err != nil {
		return run, err
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	cpu0, wall0 := takeCPU(procs), time.Now()
	labelled(pctx, "processor", func(lctx context.Context) {
		go func() { done <- processors.RunPartitions(lctx, st.js, st.sc, ts, spec.opts) }()
	})

	tick := time.NewTicker(cfg.drainPoll)
	defer tick.Stop()
	deadline := time.NewTimer(spec.timeout)
	defer deadline.Stop()
	lastLog := wall0
	var runErr error
	var end time.Time
	// A consumer info request can time out while the machine is saturated;
	// the poll is retried on the next tick and fails only when none has
	// answered for 30 s.
	lastPoll := wall0
	var slowPolls int
	poll := func() (pending uint64, redeliv int, ok bool, err error) {
		for _, c := range conss {
			ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
			info, err := c.Info(ictx)
			icancel()
			if err != nil {
				slowPolls++
				if time.Since(lastPoll) > 30*time.Second {
					return 0, 0, false, fmt.Errorf("consumer info: %w (no answer for 30s)", err)
				}
				return 0, 0, false, nil
			}
			pending += info.NumPending + uint64(info.NumAckPending)
			redeliv += info.NumRedelivered
		}
		lastPoll = time.Now()
		return pending, redeliv, true, nil
	}
loop:
	for {
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
			break loop
		case err := <-done:
			runErr = fmt.Errorf("processor stopped early: %v", err)
			done <- err
			break loop
		case <-deadline.C:
			end = time.Now()
			break loop
		case now := <-tick.C:
			t0 := time.Now()
			pending, redeliv, ok, err := poll()
			if err != nil {
				runErr = err
				break loop
			}
			if !ok {
				continue
			}
			if d := time.Since(t0); d > time.Second {
				fmt.Fprintf(os.Stderr, "bench: %s %s: consumer info for %d consumers took %s\n", spec.scenario, spec.name, len(conss), d.Round(time.Millisecond))
			}
			c := readCounters(spec.name).minus(before)
			var inflight int64
			if spec.bucket != nil {
				inflight = spec.bucket.inflight.Load()
			}
			run.samples = append(run.samples, dfSample{at: now.Sub(wall0), writes: c.writes, inflight: inflight})
			run.pending, run.redeliv = pending, redeliv
			if pending == 0 {
				run.drained = true
				end = now
				break loop
			}
			if now.Sub(lastLog) >= 5*time.Second {
				fmt.Fprintf(os.Stderr, "bench: %s %s: %.0fs, %s writes, %s heartbeats committed, %s messages pending or unacked, %d in flight\n",
					spec.scenario, spec.name, now.Sub(wall0).Seconds(), thousands(c.writes), thousands(c.heartbeats), thousands(float64(pending)), inflight)
				lastLog = now
			}
		}
	}
	if end.IsZero() {
		end = time.Now()
	}
	cpu1 := takeCPU(procs)
	perr := stopProfile()
	if spec.proxy != nil {
		run.proxy = spec.proxy.Stats().Minus(proxy0)
	}
	run.delta = readCounters(spec.name).minus(before)
	if spec.bucket != nil {
		run.bucket = spec.bucket.snap()
	}
	cancel()
	if err := <-done; err != nil && runErr == nil {
		runErr = err
	}
	if spec.bucket != nil {
		ts.mu.Lock()
		attempts := maps.Clone(ts.attempts)
		ts.mu.Unlock()
		run.rewritten, run.mostPuts, run.overPuts = spec.bucket.rewrites(attempts, st.sc.Partitions)
	}
	run.seconds = end.Sub(wall0).Seconds()
	if slowPolls > 0 {
		fmt.Fprintf(os.Stderr, "bench: %s %s: %d consumer info requests timed out\n", spec.scenario, spec.name, slowPolls)
	}
	run.cpuNote, run.cpuSelf = cpuNote(procs, cpu0, cpu1, time.Since(wall0).Seconds())
	ts.mu.Lock()
	run.commits = slices.Clone(ts.commits)
	run.sizes = slices.Clone(ts.sizes)
	ts.mu.Unlock()
	if runErr == nil {
		runErr = perr
	}
	return run, runErr
}

// steady is the write rate between the polls at which 10% and 90% of the
// run's writes were done, and the mean requests in flight meanwhile.
func (r dfRun) steady() (rate, inflight float64, window time.Duration) {
	total := r.delta.writes
	var a, b *dfSample
	for i := range r.samples {
		s := &r.samples[i]
		if a == nil && s.writes >= 0.1*total {
			a = s
		}
		if b == nil && s.writes >= 0.9*total {
			b = s
		}
	}
	if a == nil || b == nil || b.at <= a.at {
		if r.seconds > 0 {
			return total / r.seconds, 0, 0
		}
		return 0, 0, 0
	}
	var sum float64
	n := 0
	for _, s := range r.samples {
		if s.at >= a.at && s.at <= b.at {
			sum += float64(s.inflight)
			n++
		}
	}
	return (b.writes - a.writes) / (b.at - a.at).Seconds(), sum / float64(max(n, 1)), b.at - a.at
}

// sizeSummary is "min/median/max" of commit sizes.
func sizeSummary(n []int) string {
	if len(n) == 0 {
		return "—"
	}
	s := slices.Sorted(slices.Values(n))
	return fmt.Sprintf("min %d, median %d, max %d", s[0], s[len(s)/2], s[len(s)-1])
}

func mean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var s time.Duration
	for _, x := range d {
		s += x
	}
	return s / time.Duration(len(d))
}

// dayfileBacklog generates and publishes a backlog, and returns the publish
// row, the day-file keys it touches and its distinct heartbeats.
func dayfileBacklog(ctx context.Context, st *stack, cfg config, scenario string, n, users, days int) (result, []string, int, error) {
	fmt.Fprintf(os.Stderr, "bench: %s: preparing %d heartbeats for %d users over %d UTC days\n", scenario, n, users, days)
	hbs, prefixes, err := backlog(n, users, days, time.Now())
	if err != nil {
		return result{}, nil, 0, err
	}
	return publishDayfileBacklog(ctx, st, cfg, scenario, hbs, prefixes, users, days)
}

// dayfileRound replaces the stream's content with round r of the backlog
// of the same users (see backlogFor): new heartbeats on the same day files.
func dayfileRound(ctx context.Context, st *stack, cfg config, scenario string, ids []string, prefixes map[string]string, n, days, round int) (result, []string, error) {
	fmt.Fprintf(os.Stderr, "bench: %s: preparing %d heartbeats for %d users over %d UTC days (round %d)\n", scenario, n, len(ids), days, round)
	hbs, err := backlogFor(ids, n, days, time.Now(), round)
	if err != nil {
		return result{}, nil, err
	}
	pub, keys, _, err := publishDayfileBacklog(ctx, st, cfg, scenario, hbs, prefixes, len(ids), days)
	return pub, keys, err
}

// publishDayfileBacklog empties the stream (earlier scenarios publish too)
// and publishes hbs.
func publishDayfileBacklog(ctx context.Context, st *stack, cfg config, scenario string, hbs []*heartlogv1.Heartbeat, prefixes map[string]string, users, days int) (result, []string, int, error) {
	n := len(hbs)
	s, err := st.js.Stream(ctx, st.sc.Stream)
	if err != nil {
		return result{}, nil, 0, err
	}
	if err := s.Purge(ctx); err != nil {
		return result{}, nil, 0, fmt.Errorf("purge stream: %w", err)
	}
	distinct := distinctIDs(hbs)
	keySet := make(map[string]struct{}, users*days)
	for _, hb := range hbs {
		keySet[dayfile.Key(prefixes[hb.UserId], hb.UserId, heartbeat.Day(hb))] = struct{}{}
	}
	keys := make([]string, 0, len(keySet))
	for k := range keySet {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	pub, err := publishBacklog(ctx, st, cfg, scenario+"-publish", hbs, prefixes)
	if err != nil {
		return pub, keys, distinct, err
	}
	pub.distinct = distinct
	pub.notes = []string{fmt.Sprintf("%s heartbeats, %s user-days (%s users × %d days)", thousands(float64(n)), thousands(float64(len(keys))), thousands(float64(users)), days)}
	runtime.GC()
	return pub, keys, distinct, nil
}

// runDayfilesDrain is the dayfiles-drain scenario.
func runDayfilesDrain(ctx context.Context, st *stack, cfg config) ([]result, error) {
	ds, err := openDayStores(ctx)
	if err != nil {
		return nil, err
	}
	defer ds.close()
	for _, name := range dayfileProcessors {
		if err := deletePartitionConsumers(ctx, st, name); err != nil {
			return nil, err
		}
	}
	pub, keys, distinct, err := dayfileBacklog(ctx, st, cfg, "dayfiles-drain", cfg.dfHeartbeats, cfg.dfUsers, cfg.dfDays)
	results := []result{pub}
	if err != nil {
		results[0].failed = err.Error()
		return results, err
	}
	procs := stackProcs(cfg.stackRunDir)
	var errs []error
	touched := map[string]bool{}
	for _, name := range cfg.dfProcessors {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "bench: dayfiles-drain: %s processor\n", name)
		spec := dfSpec{
			scenario: "dayfiles-drain", name: name, timeout: cfg.dfTimeout,
			opts: processors.Options{BatchMessages: cfg.dfBatch, Linger: cfg.dfLinger, Log: st.log, StopTimeout: 10 * time.Second},
		}
		switch name {
		case streams.DurableObjects:
			spec.bucket = newTimedBucket(objstore.Instrument(ds.primary, name))
			spec.sink = objects.New(ctx, spec.bucket, objects.Options{Concurrency: cfg.dfConcurrency, MemoBytes: cfg.memoBytes, Log: st.log})
			touched["primary"] = true
		case streams.DurableCache:
			spec.bucket = newTimedBucket(objstore.Instrument(ds.primary, name)) // the seed
			spec.sink = cachesink.New(ds.cache, spec.bucket, cachesink.Options{Concurrency: cfg.dfConcurrency, MemoBytes: 256 << 20, Log: st.log})
			touched["cache"] = true
		case streams.DurableBackup:
			spec.bucket = newTimedBucket(objstore.Instrument(ds.backup, name))
			spec.sink = backup.New(ctx, spec.bucket, backup.Options{Concurrency: cfg.dfConcurrency, RequestsPerSecond: cfg.dfBackupRPS, MemoBytes: cfg.memoBytes, Log: st.log})
			touched["backup"] = true
		}
		run, err := runDayfileProcessor(ctx, st, cfg, procs, spec)
		r := drainRow(cfg, spec, run, len(keys), distinct, pub.msgs)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			r.failed = err.Error()
		}
		results = append(results, r)
	}
	if !cfg.dfKeep {
		results = append(results, cleanupDayfiles(context.WithoutCancel(ctx), ds, "dayfiles-drain-cleanup", keys, touched))
	}
	return results, errors.Join(errs...)
}

// drainRow is the table row of one dayfiles-drain processor run.
func drainRow(cfg config, spec dfSpec, run dfRun, userDays, distinct int, msgs uint64) result {
	scen := "dayfiles-drain/" + spec.name
	r := result{scenario: scen, target: targetFor(scen), unit: "heartbeats/s", seconds: run.seconds, msgs: msgs, distinct: distinct}
	// Drained: the backlog's distinct heartbeats over the time it took.
	// Timed out: what the processor committed (redelivered messages
	// counted again) over the time it had.
	r.heartbeats = int(run.delta.heartbeats)
	if run.drained {
		r.heartbeats = distinct
	}
	if run.seconds > 0 {
		r.rate = float64(r.heartbeats) / run.seconds
	}
	r.latency = summarize(run.commits)
	wpd := run.delta.writes / float64(userDays)
	var notes []string
	if !run.drained {
		notes = append(notes, fmt.Sprintf("**timed out** after -dayfiles-timeout %s with %s messages pending or unacked (result: heartbeats committed, redeliveries included, per second)", cfg.dfTimeout, thousands(float64(run.pending))))
	}
	flushes := run.delta.batches
	notes = append(notes,
		fmt.Sprintf("%s heartbeats committed (%s distinct in the backlog) in %.1fs", thousands(run.delta.heartbeats), thousands(float64(distinct)), run.seconds),
		fmt.Sprintf("%s day-file writes for %s user-days = %.2f writes/user-day over %s flushes (%.1f per partition; messages per flush %s)", thousands(run.delta.writes), thousands(float64(userDays)), wpd, thousands(flushes), flushes/16, sizeSummary(run.sizes)),
	)
	if spec.bucket != nil {
		b := run.bucket
		what := "S3"
		if spec.name == streams.DurableCache {
			what = "S3 seed"
		} else {
			ok := "✅"
			if run.overPuts > 0 {
				ok = "❌"
			}
			notes = append(notes, fmt.Sprintf("%s keys written more than once (most %d), %d keys written more often than their partition flushed %s", thousands(float64(run.rewritten)), run.mostPuts, run.overPuts, ok))
		}
		puts := ""
		if spec.name != streams.DurableCache {
			puts = fmt.Sprintf(", PUTs %s (p50 %s, p99 %s)", thousands(float64(b.puts)), ms(summarize(b.putLat).p50), ms(summarize(b.putLat).p99))
		}
		notes = append(notes, fmt.Sprintf("%s GETs %s (%s not found, p50 %s, p99 %s)%s, %s SDK retries, %s failed requests",
			what, thousands(float64(b.gets)), thousands(float64(b.missing)), ms(summarize(b.getLat).p50), ms(summarize(b.getLat).p99),
			puts, thousands(run.delta.s3Retries), thousands(float64(b.failed))))
	}
	if run.delta.unchanged > 0 || run.redeliv > 0 || run.delta.commitErrors > 0 || run.delta.corrupt > 0 {
		notes = append(notes, fmt.Sprintf("%s unchanged (re-read, not written), %d redelivered messages, %s failed commits, %s corrupt",
			thousands(run.delta.unchanged), run.redeliv, thousands(run.delta.commitErrors), thousands(run.delta.corrupt)))
	}
	notes = append(notes, fmt.Sprintf("concurrency %d, BatchMessages %d, Linger %s (latency columns: commits)", cfg.dfConcurrency, cfg.dfBatch, cfg.dfLinger))
	r.notes = notes
	r.cpuNote = run.cpuNote
	r.cpuCores = run.cpuSelf
	return r
}

// runDayfilesLatency is the dayfiles-latency scenario.
func runDayfilesLatency(ctx context.Context, st *stack, cfg config) ([]result, error) {
	ds, sim, done, err := openSimulation(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	pproxy, bproxy, slowPrimary, slowBackup := sim.pproxy, sim.bproxy, sim.primary, sim.backup
	for _, name := range dayfileProcessors {
		if err := deletePartitionConsumers(ctx, st, name); err != nil {
			return nil, err
		}
	}
	ids, prefixes := benchUsers(cfg.latUsers)
	var results []result
	var keys []string
	procs := stackProcs(cfg.stackRunDir)
	var errs []error
	touched := map[string]bool{}
	for i, name := range cfg.latProcessors {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "bench: dayfiles-latency: %s processor\n", name)
		spec := dfSpec{
			scenario: "dayfiles-latency", name: name, timeout: cfg.latTimeout,
			opts: processors.Options{BatchMessages: cfg.dfBatch, Linger: cfg.dfLinger, Log: st.log, StopTimeout: 5 * time.Second},
		}
		var conc int
		switch name {
		case streams.DurableObjects:
			conc = cfg.latObjectsConc
			spec.bucket = newTimedBucket(objstore.Instrument(slowPrimary, name))
			spec.sink = objects.New(ctx, spec.bucket, objects.Options{Concurrency: conc, MemoBytes: cfg.memoBytes, Log: st.log})
			spec.proxy = pproxy
			touched["primary"] = true
		case streams.DurableBackup:
			conc = cfg.latBackupConc
			spec.bucket = newTimedBucket(objstore.Instrument(slowBackup, name))
			spec.sink = backup.New(ctx, spec.bucket, backup.Options{Concurrency: conc, RequestsPerSecond: cfg.latBackupRPS, MemoBytes: cfg.memoBytes, Log: st.log})
			spec.proxy = bproxy
			touched["backup"] = true
		}
		for round := range cfg.latRounds {
			// Round 1 meets day files the sink has never seen; later
			// rounds the same files again, as the next flushes of a busy
			// day, which it remembers (its memo). Every processor and
			// round gets heartbeats of its own: the stream would drop
			// repeated message ids as duplicates.
			pub, k, err := dayfileRound(ctx, st, cfg, "dayfiles-latency", ids, prefixes, cfg.latHeartbeats, cfg.latDays, i*cfg.latRounds+round)
			if keys = k; i == 0 && round == 0 || err != nil {
				results = append(results, pub)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s round %d: %w", name, round+1, err))
				break
			}
			spec.bucket.reset()
			run, err := runDayfileProcessor(ctx, st, cfg, procs, spec)
			r := latencyRow(cfg, spec, run, conc, len(keys))
			r.scenario += fmt.Sprintf(" round %d", round+1)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				r.failed = err.Error()
			}
			results = append(results, r)
		}
	}
	if !cfg.dfKeep {
		results = append(results, cleanupDayfiles(context.WithoutCancel(ctx), ds, "dayfiles-latency-cleanup", keys, touched))
	}
	return results, errors.Join(errs...)
}

// simulation is the stack's buckets behind internal/faults proxies that
// make versitygw answer like AWS S3 (the primary: -latency-primary on every
// request) and like Spaces (the backup: -latency-backup-put on PUTs,
// -latency-backup-get on the rest, and a ceiling of -latency-backup-rate
// requests/s past which it answers 503 SlowDown, or queues with
// -latency-backup-queue).
type simulation struct {
	pproxy, bproxy   *faults.Proxy
	primary, backup  *objstore.S3 // through the proxies
	restoreStdLogger func()
}

// openSimulation opens the stack's stores and the simulation in front of
// them; done closes both.
func openSimulation(ctx context.Context, cfg config) (ds *dayStores, sim *simulation, done func(), err error) {
	if ds, err = openDayStores(ctx); err != nil {
		return nil, nil, nil, err
	}
	if sim, err = startSimulation(ctx, cfg, ds); err != nil {
		ds.close()
		return nil, nil, nil, err
	}
	return ds, sim, func() { sim.close(); ds.close() }, nil
}

func startSimulation(ctx context.Context, cfg config, ds *dayStores) (*simulation, error) {
	// httputil.ReverseProxy logs every request its client gave up on
	// (processors stopping) through the standard logger: keep that out of
	// the output.
	log.SetOutput(io.Discard)
	sim := &simulation{restoreStdLogger: func() { log.SetOutput(os.Stderr) }}
	var err error
	labelled(ctx, "s3-proxy", func(context.Context) {
		sim.pproxy, err = faults.Listen("127.0.0.1:0", ds.primaryCfg.Endpoint, faults.Options{Latency: cfg.latPrimary})
		if err != nil {
			return
		}
		sim.bproxy, err = faults.Listen("127.0.0.1:0", ds.backupCfg.Endpoint, faults.Options{
			Latency:       cfg.latBackupGet,
			MethodLatency: map[string]time.Duration{"PUT": cfg.latBackupPut},
			RateLimit:     cfg.latBackupRate,
			Queue:         cfg.latBackupQueue,
		})
	})
	if err == nil {
		pcfg, bcfg := ds.primaryCfg, ds.backupCfg
		pcfg.Endpoint, bcfg.Endpoint = sim.pproxy.URL, sim.bproxy.URL
		if sim.primary, err = objstore.NewS3(ctx, pcfg); err == nil {
			sim.backup, err = objstore.NewS3(ctx, bcfg)
		}
	}
	if err != nil {
		sim.close()
		return nil, err
	}
	return sim, nil
}

func (sim *simulation) close() {
	if sim.pproxy != nil {
		_ = sim.pproxy.Close()
	}
	if sim.bproxy != nil {
		_ = sim.bproxy.Close()
	}
	sim.restoreStdLogger()
}

// latencyRow is the table row of one dayfiles-latency processor run.
func latencyRow(cfg config, spec dfSpec, run dfRun, conc, userDays int) result {
	scen := "dayfiles-latency/" + spec.name
	r := result{scenario: scen, target: targetFor(scen), unit: "writes/s", seconds: run.seconds}
	rate, inflight, window := run.steady()
	r.rate = rate
	b := run.bucket
	r.latency = summarize(b.putLat)
	var notes []string
	if !run.drained {
		notes = append(notes, fmt.Sprintf("**timed out** after -latency-timeout %s: %s of %s user-days written, %s messages pending or unacked", cfg.latTimeout, thousands(run.delta.writes), thousands(float64(userDays)), thousands(float64(run.pending))))
	}
	notes = append(notes, fmt.Sprintf("sustained rate over the %.0fs between 10%% and 90%% of the writes; %s writes in %.1fs overall (%s/s)",
		window.Seconds(), thousands(run.delta.writes), run.seconds, thousands(run.delta.writes/run.seconds)))
	gm, pm := mean(b.getLat), mean(b.putLat)
	var t float64
	if tt, ok := targets[scen]; ok {
		t = tt.min
	}
	notes = append(notes, fmt.Sprintf("concurrency %d; mean %.0f S3 requests in flight in that window; GET mean %s, PUT mean %s: Little's law needs ≥ %s day files in flight for %s writes/s",
		conc, inflight, ms(gm), ms(pm), thousands(t*(gm+pm).Seconds()), thousands(t)))
	notes = append(notes, fmt.Sprintf("GETs %s (%s not found, p50 %s, p99 %s), PUTs %s, %s SDK retries, %s failed requests; %.2f requests per write",
		thousands(float64(b.gets)), thousands(float64(b.missing)), ms(summarize(b.getLat).p50), ms(summarize(b.getLat).p99),
		thousands(float64(b.puts)), thousands(run.delta.s3Retries), thousands(float64(b.failed)),
		float64(b.gets+b.puts)/max(1, run.delta.writes)))
	pr := run.proxy
	proxyOpts := fmt.Sprintf("latency %s", cfg.latPrimary)
	if spec.name == streams.DurableBackup {
		mode := "excess refused with 503 SlowDown"
		if cfg.latBackupQueue {
			mode = "excess queued"
		}
		proxyOpts = fmt.Sprintf("PUT %s, other %s, ceiling %s req/s (%s); sink RequestsPerSecond %s", cfg.latBackupPut, cfg.latBackupGet, thousands(cfg.latBackupRate), mode, thousands(cfg.latBackupRPS))
	}
	notes = append(notes, fmt.Sprintf("proxy (%s): %s requests (%s/s), %s forwarded, %s refused by the ceiling, %s queued",
		proxyOpts, thousands(float64(pr.Requests)), thousands(float64(pr.Requests)/run.seconds), thousands(float64(pr.Forwarded)), thousands(float64(pr.RateLimited+pr.SlowDowns)), thousands(float64(pr.Queued))))
	notes = append(notes, fmt.Sprintf("%.2f writes/user-day (%s keys written more than once, most %d; %d more often than their partition flushed) over %s flushes (messages per flush %s); %s unchanged, %d redelivered messages, %s failed commits",
		run.delta.writes/float64(userDays), thousands(float64(run.rewritten)), run.mostPuts, run.overPuts, thousands(run.delta.batches), sizeSummary(run.sizes), thousands(run.delta.unchanged), run.redeliv, thousands(run.delta.commitErrors)))
	notes = append(notes, "latency columns: PUTs, SDK retries and backoff included")
	r.notes = notes
	r.cpuNote = run.cpuNote
	r.cpuCores = run.cpuSelf
	return r
}

// parallelKeys runs f on every key, 64 at a time.
func parallelKeys(keys []string, f func(string)) {
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				f(k)
			}
		}()
	}
	for _, k := range keys {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
}

// cleanupDayfiles deletes what the runs wrote under the backlog's keys:
// the primary objects, every version of the backup objects and the cache
// entries, then checks a sample of the keys. It reports as a table row.
func cleanupDayfiles(ctx context.Context, ds *dayStores, name string, keys []string, touched map[string]bool) result {
	fmt.Fprintf(os.Stderr, "bench: %s: deleting %d keys from %v\n", name, len(keys), slices.Sorted(func(yield func(string) bool) {
		for k := range touched {
			if !yield(k) {
				return
			}
		}
	}))
	// A PUT cancelled when a processor stopped may still land at the
	// server after its DELETE: give such requests a moment.
	time.Sleep(2 * time.Second)
	start := time.Now()
	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		failed.Add(1)
		errOnce.Do(func() { firstErr = err })
	}
	var done []string
	for _, b := range []struct {
		store    string
		cfg      objstore.S3Config
		bucket   *objstore.S3
		versions bool
	}{{"primary", ds.primaryCfg, ds.primary, false}, {"backup", ds.backupCfg, ds.backup, true}} {
		if !touched[b.store] {
			continue
		}
		t0 := time.Now()
		n, slow, reason, err := deleteKeys(ctx, b.cfg, keys, b.versions)
		fmt.Fprintf(os.Stderr, "bench: %s: %s: %d objects or versions deleted in batches in %s\n", name, b.store, n, time.Since(t0).Round(time.Millisecond))
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: batch delete in %s: %v; deleting one key at a time\n", name, b.store, err)
			slow = keys
		} else if len(slow) > 0 {
			fmt.Fprintf(os.Stderr, "bench: %s: the %s bucket refused to delete versions of %d keys in a batch (first: %s); deleting those one key at a time\n", name, b.store, len(slow), reason)
		}
		// The slow way, for what the batch did not delete.
		parallelKeys(slow, func(k string) {
			var err error
			if b.versions {
				err = b.bucket.DeleteAllVersions(ctx, k)
			} else {
				err = b.bucket.Delete(ctx, k)
			}
			if err != nil {
				fail(err)
			}
		})
		if len(slow) > 0 {
			n += len(slow)
			fmt.Fprintf(os.Stderr, "bench: %s: %s: %d keys deleted one at a time in %s\n", name, b.store, len(slow), time.Since(t0).Round(time.Millisecond))
		}
		done = append(done, fmt.Sprintf("%s %s (%s keys one at a time)", b.store, thousands(float64(n)), thousands(float64(len(slow)))))
	}
	if touched["cache"] {
		for i := 0; i < len(keys); i += 1000 {
			var del []string
			for _, k := range keys[i:min(i+1000, len(keys))] {
				del = append(del, k, digest.Key(k), digest.GenKey(k))
			}
			if err := ds.cache.Delete(ctx, del...); err != nil {
				fail(err)
			}
		}
		done = append(done, "cache "+thousands(float64(len(keys))))
	}
	t0 := time.Now()
	// Check every 50th key in every store touched.
	var sample []string
	for i := 0; i < len(keys); i += 50 {
		sample = append(sample, keys[i])
	}
	var leftN atomic.Int64
	parallelKeys(sample, func(k string) {
		if touched["primary"] {
			if _, _, err := ds.primary.Get(ctx, k); !errors.Is(err, objstore.ErrNotFound) {
				leftN.Add(1)
			}
		}
		if touched["backup"] {
			if v, err := ds.backup.Versions(ctx, k); err != nil || len(v) > 0 {
				leftN.Add(1)
			}
		}
		if touched["cache"] {
			if _, ok, err := ds.cache.Get(ctx, k); err != nil || ok {
				leftN.Add(1)
			}
		}
	})
	checked, left := len(sample), leftN.Load()
	fmt.Fprintf(os.Stderr, "bench: %s: sample of %d keys checked in %s\n", name, checked, time.Since(t0).Round(time.Millisecond))
	r := result{scenario: name, target: "—", unit: "keys/s", seconds: time.Since(start).Seconds(), rate: float64(len(keys)) / time.Since(start).Seconds()}
	note := fmt.Sprintf("%s day-file keys deleted in %.1fs (objects or versions deleted: %s); %d delete errors; sample check: %d of %d keys still present",
		thousands(float64(len(keys))), r.seconds, strings.Join(done, ", "), failed.Load(), left, checked)
	if firstErr != nil {
		note += "; first error: " + firstErr.Error()
	}
	r.notes = []string{note}
	r.cpuNote = "-"
	return r
}
