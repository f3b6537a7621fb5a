package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"heartlog/api"
	settings "heartlog/config"
	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/wiring"
	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/catalog"
	"heartlog/processors/compaction"
	"heartlog/processors/dayfiles"
	"heartlog/ssdb"
	"heartlog/streams"
	"heartlog/users"
)

// The lifecycle scenarios (ingest-all, paced) run the processors as
// `heartlog dev` runs them (cmd/heartlog's runtime.process): every row of
// processors/catalog built from the settings, the Postgres processor on its
// shared consumer, the day-file processors on their pinned partition
// consumers behind compaction.LatePath, and the day closer
// (compaction.Compactor.Run) beside them, over the stack's real stores.
// Each processor's buckets are instrumented under "<scenario>/<name>" and
// the closer's under "<scenario>/closer", so that the objstore metrics
// count what each one asked of S3.

// devDayFlushAge is `heartlog dev`'s flush age of the day-file processors
// (cmd/heartlog devFlushAge) where HEARTLOG_*_FLUSH_AGE is not set.
const devDayFlushAge = 2 * time.Second

// devSettings are the settings from the environment (config.FromEnv), with
// the day-file flush ages `heartlog dev` gives them.
func devSettings() (settings.Config, error) {
	c, err := settings.FromEnv()
	if err != nil {
		return c, err
	}
	for name, age := range map[string]*time.Duration{
		"HEARTLOG_OBJECTS_FLUSH_AGE": &c.Objects.Age,
		"HEARTLOG_CACHE_FLUSH_AGE":   &c.Cache.Age,
		"HEARTLOG_BACKUP_FLUSH_AGE":  &c.BackupFlush.Age,
	} {
		if !settings.IsSet(name) {
			*age = devDayFlushAge
		}
	}
	return c, nil
}

// devAPI serves the API with the production limits from c (as `heartlog
// serve` and `dev` build it) on a new loopback listener, over the stack's
// users and publisher.
func (st *stack) devAPI(ctx context.Context, c settings.Config) (string, func(), error) {
	limits := heartbeat.DefaultLimits
	limits.MaxHeartbeats = c.MaxHeartbeats
	srv := api.New(st.accounts(), st.pub, api.Options{
		MaxBodyBytes: c.MaxBodyBytes, Limits: limits, RateLimit: c.RateLimit, RateBurst: c.RateBurst, Log: st.log,
		HeartbeatRate: c.Work.HeartbeatRate, HeartbeatBurst: c.Work.HeartbeatBurst,
		ByteRate: c.Work.ByteRate, ByteBurst: c.Work.ByteBurst, MaxDaysPerRequest: c.Work.MaxDaysPerRequest,
		MaxDayHeartbeats: c.Work.DayMaxHeartbeats, MaxDayBytes: c.Work.DayMaxBytes,
		Capacity: streams.WatchFill(ctx, st.js, st.sc, streams.FillOptions{Log: st.log}),
	})
	hs, err := wiring.ListenAPI("127.0.0.1:0", srv)
	if err != nil {
		return "", nil, err
	}
	return hs.URL(), func() { _ = hs.Close(10 * time.Second) }, nil
}

// devProcessors are processors running as `heartlog dev` runs them.
type devProcessors struct {
	cancel   context.CancelFunc
	g        *errgroup.Group
	cleanups []func()
}

// startDevProcessors runs the named processors (catalog rows) and, when one
// of them is a day-file processor, the day closer with closeDelay
// (0: the settings' HEARTLOG_DAY_CLOSE_DELAY). Stores are counted under
// scenario/<name> and scenario/closer.
func startDevProcessors(ctx context.Context, st *stack, c settings.Config, scenario string, names []string, closeDelay time.Duration) (*devProcessors, error) {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(pctx)
	dp := &devProcessors{cancel: cancel, g: g}
	fail := func(err error) (*devProcessors, error) {
		dp.stop()
		return nil, err
	}
	var days *streams.DayView
	var late []string
	for _, name := range names {
		p, err := catalog.Lookup(name)
		if err != nil {
			return fail(err)
		}
		stores, err := dp.stores(gctx, st, c, name, scenario+"/"+name)
		if err != nil {
			return fail(err)
		}
		sink, err := p.Build(gctx, catalog.Env{Config: c, Log: st.log, Stores: stores})
		if err != nil {
			return fail(err)
		}
		f := p.Flush(c)
		opts := processors.Options{BatchMessages: f.Messages, BatchBytes: f.Bytes, Linger: f.Age, Log: st.log}
		if p.Consumes == catalog.Shared {
			cons, err := streams.EnsureConsumer(gctx, st.js, st.sc, name)
			if err != nil {
				return fail(err)
			}
			opts.DeadLetters = streams.NewDeadLetters(st.js, st.sc)
			if opts.Stream, err = st.js.Stream(gctx, st.sc.Stream); err != nil {
				return fail(err)
			}
			labelled(gctx, "processor", func(lctx context.Context) {
				g.Go(func() error { return processors.Run(lctx, cons, sink, opts) })
			})
			continue
		}
		if days == nil {
			// As runtime.process: the late consumers read closed days only.
			if _, err := compaction.New(st.js, st.sc, catalog.CompactorOptions(c, "bench-closer", st.log)).SyncLateFilters(gctx); err != nil {
				return fail(err)
			}
			if days, err = streams.WatchDays(gctx, st.js, st.sc); err != nil {
				return fail(err)
			}
			dp.cleanups = append(dp.cleanups, func() { _ = days.Stop() })
		}
		opts.Admit = compaction.LatePath(days, name)
		if opts.Consumers, err = streams.PartitionConsumers(gctx, st.js, st.sc, name); err != nil {
			return fail(err)
		}
		late = append(late, name)
		labelled(gctx, "processor", func(lctx context.Context) {
			g.Go(func() error { return processors.RunPartitions(lctx, st.js, st.sc, sink, opts) })
		})
	}
	if len(late) == 0 {
		return dp, nil
	}
	stores, err := dp.stores(gctx, st, c, "closer", scenario+"/closer")
	if err != nil {
		return fail(err)
	}
	co := catalog.CompactorOptions(c, "bench-closer", st.log)
	if closeDelay > 0 {
		co.CloseDelay = closeDelay
	}
	co.TempDir = st.cfg.workDir
	closer := compaction.New(st.js, st.sc, co)
	sinks := catalog.CompactionSinks(catalog.Env{Config: c, Log: st.log, Stores: stores}, createFirst(gctx, st, stores), late...)
	labelled(gctx, "closer", func(lctx context.Context) {
		g.Go(func() error { return closer.Run(lctx, sinks...) })
	})
	return dp, nil
}

// createFirst is compaction.SinkOptions.CreateFirst as cmd/heartlog
// decides it: where both buckets refuse a create over an existing file.
func createFirst(ctx context.Context, st *stack, s catalog.Stores) bool {
	return dayfiles.ConditionalWrites(ctx, s.Primary, st.log) && dayfiles.ConditionalWrites(ctx, s.Backup, st.log)
}

// stop stops every processor and the closer after their commits in
// progress and closes their stores.
func (dp *devProcessors) stop() error {
	dp.cancel()
	err := dp.g.Wait()
	for i := len(dp.cleanups) - 1; i >= 0; i-- {
		dp.cleanups[i]()
	}
	dp.cleanups = nil
	return err
}

// stores opens what the named processor writes to ("closer": every
// day-file store), each bucket a client of its own instrumented under
// label, as cmd/heartlog's runtime.stores does.
func (dp *devProcessors) stores(ctx context.Context, st *stack, c settings.Config, name, label string) (catalog.Stores, error) {
	var s catalog.Stores
	all := name == "closer"
	if name == streams.DurablePostgres {
		pool, err := wiring.NewPool(ctx, st.dbURL)
		if err != nil {
			return s, err
		}
		dp.cleanups = append(dp.cleanups, pool.Close)
		view, err := streams.WatchShards(ctx, st.js, st.sc)
		if err != nil {
			return s, err
		}
		dp.cleanups = append(dp.cleanups, func() { _ = view.Stop() })
		s.Days, s.Shards = daydb.One(pool), view
		return s, nil
	}
	var err error
	if all || name == streams.DurableObjects || name == streams.DurableCache {
		if s.Primary, err = devBucket(ctx, c.S3, label); err != nil {
			return s, fmt.Errorf("HEARTLOG_S3_*: %w", err)
		}
	}
	if all || name == streams.DurableObjects || name == streams.DurableBackup {
		if s.Backup, err = devBucket(ctx, c.Backup, label); err != nil {
			return s, fmt.Errorf("HEARTLOG_BACKUP_S3_*: %w", err)
		}
	}
	if all || name == streams.DurableCache {
		cache, err := ssdb.New(ssdb.Config{URL: c.CacheURL, TTL: c.CacheTTL})
		if err != nil {
			return s, fmt.Errorf("HEARTLOG_CACHE_URL: %w", err)
		}
		dp.cleanups = append(dp.cleanups, func() { _ = cache.Close() })
		s.Cache = cache
	}
	return s, nil
}

// devBucket is a bucket client from the settings, instrumented under label.
func devBucket(ctx context.Context, b settings.Bucket, label string) (objstore.Bucket, error) {
	if b.Name == "" {
		return nil, errors.New("no bucket set: run `. var/env` with the stack up")
	}
	s3, err := objstore.NewS3(ctx, objstore.S3Config{
		Endpoint: b.Endpoint, Region: b.Region, Bucket: b.Name,
		AccessKeyID: b.AccessKeyID, SecretAccessKey: b.SecretAccessKey, PathStyle: b.PathStyle,
	})
	if err != nil {
		return nil, err
	}
	return objstore.Instrument(s3, label), nil
}

// freshStream empties the stream and removes every processor's consumers,
// so that a lifecycle scenario sees only its own heartbeats (earlier
// scenarios publish backlogs over several days, which the day closer would
// otherwise close and compact during the measurement).
func freshStream(ctx context.Context, st *stack) error {
	if err := st.deletePostgresConsumer(ctx); err != nil {
		return err
	}
	for _, name := range dayfileProcessors {
		if err := deletePartitionConsumers(ctx, st, name); err != nil {
			return err
		}
	}
	s, err := st.js.Stream(ctx, st.sc.Stream)
	if err != nil {
		return err
	}
	if err := s.Purge(ctx); err != nil {
		return fmt.Errorf("purge stream: %w", err)
	}
	return nil
}

// lifecycleStart is what a lifecycle scenario starts from: the dev
// settings, an emptied stream and n new users (with their keys).
func lifecycleStart(ctx context.Context, st *stack, scenario string, n int) (settings.Config, []users.User, []string, error) {
	c, err := devSettings()
	if err != nil {
		return c, nil, nil, err
	}
	if err := freshStream(ctx, st); err != nil {
		return c, nil, nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: %s: creating %d users\n", scenario, n)
	us, keys, err := st.createUsers(ctx, "bench-"+scenario, n)
	if err != nil {
		return c, nil, nil, fmt.Errorf("create users: %w", err)
	}
	return c, us, keys, nil
}

// consumersIdle reports whether the named processors' consumers (shared or
// every partition's) have nothing pending and nothing unacked, and the
// total they still have.
func consumersIdle(ctx context.Context, st *stack, names []string) (bool, uint64, error) {
	var left uint64
	for _, name := range names {
		durables := []string{name}
		if p, err := catalog.Lookup(name); err == nil && p.Consumes == catalog.LatePath {
			durables = durables[:0]
			for i := range st.sc.Partitions {
				durables = append(durables, streams.PartitionDurable(name, i))
			}
		}
		for _, d := range durables {
			c, err := st.js.Consumer(ctx, st.sc.Stream, d)
			if err != nil {
				return false, 0, fmt.Errorf("consumer %s: %w", d, err)
			}
			info, err := c.Info(ctx)
			if err != nil {
				return false, 0, fmt.Errorf("consumer %s: %w", d, err)
			}
			left += info.NumPending + uint64(info.NumAckPending)
		}
	}
	return left == 0, left, nil
}

// waitIdle polls consumersIdle until it holds or timeout passes; it
// returns how long that took and what was left.
func waitIdle(ctx context.Context, st *stack, names []string, timeout time.Duration) (time.Duration, uint64, error) {
	start := time.Now()
	for {
		idle, left, err := consumersIdle(ctx, st, names)
		if err != nil || idle || time.Since(start) > timeout {
			return time.Since(start), left, err
		}
		if !sleepUntil(ctx, time.Now().Add(250*time.Millisecond)) {
			return time.Since(start), left, ctx.Err()
		}
	}
}

// storeCounts are requests to the primary bucket (S3) and to the backup
// bucket, told apart by the objstore metrics' bucket label.
type storeCounts struct{ primary, backup sinkRequests }

// readStoreCounts are label's requests (a processor's or the closer's).
func readStoreCounts(c settings.Config, label string) storeCounts {
	return storeCounts{
		primary: readRequests(map[string]string{"processor": label, "bucket": c.S3.Name}),
		backup:  readRequests(map[string]string{"processor": label, "bucket": c.Backup.Name}),
	}
}

func (s storeCounts) minus(o storeCounts) storeCounts {
	return storeCounts{s.primary.minus(o.primary), s.backup.minus(o.backup)}
}

func (s storeCounts) plus(o storeCounts) storeCounts {
	return storeCounts{s.primary.plus(o.primary), s.backup.plus(o.backup)}
}

// storeWatch counts the requests of scenario's day-file processors and
// closer from the moment it is made.
type storeWatch struct {
	c        settings.Config
	scenario string
	before   map[string]storeCounts
}

// lifecycleLabels are the labels of a lifecycle scenario's store users.
var lifecycleLabels = append(append([]string(nil), dayfileProcessors...), "closer")

func watchStores(c settings.Config, scenario string) *storeWatch {
	w := &storeWatch{c: c, scenario: scenario, before: map[string]storeCounts{}}
	for _, n := range lifecycleLabels {
		w.before[n] = readStoreCounts(c, scenario+"/"+n)
	}
	return w
}

// since are the requests of each label since the watch began, and their
// total under "all".
func (w *storeWatch) since() map[string]storeCounts {
	out := map[string]storeCounts{}
	var all storeCounts
	for _, n := range lifecycleLabels {
		d := readStoreCounts(w.c, w.scenario+"/"+n).minus(w.before[n])
		out[n] = d
		all = all.plus(d)
	}
	out["all"] = all
	return out
}

// requestsNote describes counts (from since) as a note.
func requestsNote(counts map[string]storeCounts) string {
	a := counts["all"]
	var by []string
	for _, n := range lifecycleLabels {
		s := counts[n]
		by = append(by, fmt.Sprintf("%s %s/%s/%s/%s", n, thousands(s.primary.puts), thousands(s.primary.gets), thousands(s.backup.puts), thousands(s.backup.gets)))
	}
	return fmt.Sprintf("S3 PUTs %s, GETs %s; backup PUTs %s, GETs %s (S3 PUT/GET, backup PUT/GET by %s)",
		thousands(a.primary.puts), thousands(a.primary.gets), thousands(a.backup.puts), thousands(a.backup.gets), strings.Join(by, ", "))
}
