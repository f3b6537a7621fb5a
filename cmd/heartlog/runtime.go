package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"heartlog/api"
	"heartlog/config"
	"heartlog/daydb"
	"heartlog/dumps"
	"heartlog/health"
	"heartlog/heartbeat"
	"heartlog/internal/wiring"
	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/catalog"
	"heartlog/processors/compaction"
	"heartlog/processors/dayfiles"
	"heartlog/reads"
	"heartlog/sessions"
	"heartlog/shards"
	"heartlog/ssdb"
	"heartlog/streams"
	"heartlog/today"
	"heartlog/users"
	"heartlog/web"
)

// runtime is one process's connections: NATS with the topology ensured,
// the users bucket, and Postgres with the migrations applied.
type runtime struct {
	cfg  config.Config
	log  zerolog.Logger
	sc   streams.Config
	nc   *nats.Conn
	js   jetstream.JetStream
	pool *pgxpool.Pool // the catalog
	// days are the databases of the day partitions (the catalog alone
	// without HEARTLOG_POSTGRES_SHARD_URLS) and the placement of days.
	days      *daydb.Set
	closeDays func()
	// users writes to Postgres and the users bucket; dir is the bucket's
	// local copy that the API authenticates from.
	users *users.Store
	dir   *users.Directory
	// pgReady is closed once Postgres is migrated and the users bucket
	// synced from it; under serve and dev that may be after the start.
	pgReady chan struct{}
	// noJanitor keeps process from running the shard janitor.
	noJanitor bool
	// replay makes the cache sink a standby beside the live processor.
	replay bool
	// stopping is when a daemon's context ended (a signal), for the
	// "stopped" line of close.
	stopping atomic.Pointer[time.Time]
}

// stoppingLine is what each command that runs until a signal logs when it
// begins to stop; close then logs "stopped" with the time it took, so the
// log of a restart says how long the drain was.
var stoppingLine = map[string]string{
	"serve":   "stopping: the API finishes the requests in flight (up to 15s)",
	"process": "stopping: the processors finish the batch in hand (what is not acked comes again after a restart)",
	"dev":     "stopping: the API finishes the requests in flight (up to 15s), the processors the batch in hand",
}

// postgresOptional are the commands that start without Postgres: ingest
// needs NATS alone (DESIGN.md invariant 7), and only reads of hot days
// wait for Postgres. process and the tools need it at start.
var postgresOptional = map[string]bool{"serve": true, "dev": true}

func startRuntime(ctx context.Context, cfg config.Config, log zerolog.Logger, name string) (*runtime, error) {
	rt := &runtime{cfg: cfg, log: log, sc: streamConfig(cfg), pgReady: make(chan struct{})}
	var err error
	if rt.nc, rt.js, err = connectNATS(cfg, name, log); err != nil {
		return nil, err
	}
	ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := streams.Ensure(ensureCtx, rt.js, rt.sc); err != nil {
		rt.close()
		return nil, err
	}
	mirror, err := users.OpenMirror(ensureCtx, rt.js, rt.sc.UsersBucket)
	if err == nil {
		rt.dir, err = users.WatchDirectory(ensureCtx, rt.js, rt.sc.UsersBucket, users.DirectoryOptions{})
	}
	if err == nil {
		if rt.pool, err = wiring.NewPool(ctx, cfg.PostgresURL); err != nil {
			err = fmt.Errorf("HEARTLOG_POSTGRES_URL: %w", err)
		}
	}
	if err == nil {
		rt.days, rt.closeDays, err = wiring.NewDays(ctx, rt.pool, cfg.PostgresShardURLs)
	}
	if err == nil {
		rt.days.SetCacheTTL(cfg.PlacementTTL)
	}
	if err != nil {
		rt.close()
		return nil, err
	}
	rt.users = users.NewStore(rt.pool, mirror)
	if line, ok := stoppingLine[name]; ok {
		context.AfterFunc(ctx, func() {
			now := time.Now()
			rt.stopping.Store(&now)
			log.Info().Msg(line)
		})
	}
	if err := rt.preparePostgres(ctx); err != nil {
		if !postgresOptional[name] {
			rt.close()
			return nil, err
		}
		log.Warn().Err(err).Msg("Postgres is unreachable: ingest goes on (the log keeps every heartbeat); " +
			"reads of hot days fail, and migrations and the users sync wait, until it is back")
		go rt.awaitPostgres(ctx)
	}
	return rt, nil
}

// preparePostgres migrates, then makes the users bucket equal to the users
// table (a bucket lost or created after the users converges here).
func (rt *runtime) preparePostgres(ctx context.Context) error {
	if err := wiring.MigrateDaysLater(ctx, rt.days, rt.log); err != nil {
		return fmt.Errorf("HEARTLOG_POSTGRES_URL, HEARTLOG_POSTGRES_SHARD_URLS: %w", err)
	}
	synced, err := rt.users.Sync(ctx)
	if err != nil {
		return err
	}
	rt.log.Info().Int("written", synced.Written).Int("deleted", synced.Deleted).Int("unchanged", synced.Unchanged).
		Msg("users bucket synced from Postgres")
	close(rt.pgReady)
	return nil
}

// awaitPostgres retries preparePostgres until it succeeds or ctx ends.
func (rt *runtime) awaitPostgres(ctx context.Context) {
	if wiring.Retry(ctx, 30*time.Second, func() error { return rt.preparePostgres(ctx) }, func(err error, next time.Duration) {
		rt.log.Debug().Err(err).Str("retry_in", next.String()).Msg("Postgres still unreachable")
	}) {
		rt.log.Info().Msg("Postgres is back: migrated, users bucket synced")
	}
}

func (rt *runtime) close() {
	if rt.dir != nil {
		_ = rt.dir.Stop()
	}
	if rt.closeDays != nil {
		rt.closeDays()
	}
	if rt.pool != nil {
		rt.pool.Close()
	}
	if rt.nc != nil {
		_ = rt.nc.Drain()
	}
	if at := rt.stopping.Load(); at != nil {
		rt.log.Info().Str("took", time.Since(*at).Round(time.Millisecond).String()).Msg("stopped")
	}
}

// serve runs the API until ctx is done, then drains requests in flight.
func (rt *runtime) serve(ctx context.Context) error {
	pub := streams.NewPublisher(rt.nc, rt.js, rt.sc, streams.PublisherOptions{
		Linger:      rt.cfg.PublishLinger,
		MaxInFlight: rt.cfg.PublishInFlight,
	})
	defer pub.Close()
	limits := heartbeat.DefaultLimits
	limits.MaxHeartbeats = rt.cfg.MaxHeartbeats
	reader, deps, stop, err := rt.reader(ctx)
	if err != nil {
		return err
	}
	defer stop()
	files, err := instrumentedBucket(ctx, rt.cfg.S3, "HEARTLOG_S3_", "export")
	if err != nil {
		return err
	}
	sess, err := sessions.Open(ctx, rt.js, rt.sc.SessionsBucket, sessions.Options{TTL: rt.cfg.SessionTTL})
	if err != nil {
		return err
	}
	live := today.New(ctx, rt.js, rt.sc, reader, today.Options{Log: rt.log,
		MaxUsers: rt.cfg.TodayMaxUsers, MaxHeartbeats: rt.cfg.TodayMaxHeartbeats})
	defer live.Close()
	srv := api.New(users.Accounts{Keys: rt.dir, Store: rt.users}, pub, api.Options{
		Today:        live,
		Sessions:     sess,
		Web:          web.Handler(),
		MaxBodyBytes: rt.cfg.MaxBodyBytes,
		Limits:       limits,
		RateLimit:    rt.cfg.RateLimit,
		RateBurst:    rt.cfg.RateBurst,
		Health:       health.New(deps.Checks(), health.Options{Log: rt.log}),
		Reader:       reader,
		Export:       &dumps.Exporter{Reader: reader, Files: files, Grace: rt.cfg.ShardsGrace},
		Log:          rt.log,

		HeartbeatRate: rt.cfg.Work.HeartbeatRate, HeartbeatBurst: rt.cfg.Work.HeartbeatBurst,
		ByteRate: rt.cfg.Work.ByteRate, ByteBurst: rt.cfg.Work.ByteBurst,
		MaxDaysPerRequest: rt.cfg.Work.MaxDaysPerRequest,
		MaxDayHeartbeats:  rt.cfg.Work.DayMaxHeartbeats, MaxDayBytes: rt.cfg.Work.DayMaxBytes,
		Capacity: streams.WatchFill(ctx, rt.js, rt.sc, streams.FillOptions{Log: rt.log}),
	})
	hs, err := wiring.ListenAPI(rt.cfg.HTTPAddr, srv)
	if err != nil {
		return fmt.Errorf("listen on %s (HEARTLOG_HTTP_ADDR): %w", rt.cfg.HTTPAddr, err)
	}
	hs.OnShutdown(live.Close) // ends the open WatchToday streams
	rt.log.Info().Str("addr", hs.URL()).Msg("API listening")
	select {
	case <-hs.Done():
		return hs.Err()
	case <-ctx.Done():
	}
	return hs.Close(15 * time.Second)
}

// process runs the named processors (rows of catalog.Processors) until ctx
// is done. Postgres shares one durable consumer between instances (its
// writes are idempotent inserts). The day-file processors are the late
// path of closed days, each partition on its own pinned consumer (one
// writer per user-day); beside them runs the day closer, which compacts
// each day into their files once it is due.
func (rt *runtime) process(ctx context.Context, names []string) (err error) {
	defer func() {
		if ctx.Err() != nil {
			err = nil // stopped while starting
		}
	}()
	// Everything is built before anything runs: a failure to start leaves
	// no processor acking messages behind a view that is being stopped.
	var (
		runs []func(context.Context) error
		days *streams.DayView
		late []string
	)
	for _, name := range names {
		p, err := catalog.Lookup(name)
		if err != nil {
			return fmt.Errorf("HEARTLOG_PROCESSORS: %w", err)
		}
		if p.Consumes == catalog.LatePath {
			late = append(late, name)
		}
	}
	if len(late) > 0 {
		if rt.cfg.DayCloseDelay >= rt.cfg.ShardsGrace {
			rt.log.Warn().Str("HEARTLOG_DAY_CLOSE_DELAY", rt.cfg.DayCloseDelay.String()).Str("HEARTLOG_SHARDS_GRACE", rt.cfg.ShardsGrace.String()).
				Msg("days close only after their shard grace: a late heartbeat for a day past the grace is in neither Postgres nor its files until the day closes")
		}
		closer, sinks, cleanup, err := rt.compactor(ctx, "closer", late...)
		if err != nil {
			return err
		}
		defer cleanup()
		// The late consumers read the closed days only: an open day's
		// messages are never delivered to them.
		if _, err := closer.SyncLateFilters(ctx); err != nil {
			return err
		}
		if days, err = streams.WatchDays(ctx, rt.js, rt.sc); err != nil {
			return err
		}
		defer func() { _ = days.Stop() }()
		runs = append(runs, func(ctx context.Context) error { return closer.Run(ctx, sinks...) })
	}
	for _, name := range names {
		p, _ := catalog.Lookup(name)
		sink, cleanup, err := rt.sink(ctx, name)
		if err != nil {
			return err
		}
		defer cleanup()
		f := p.Flush(rt.cfg)
		opts := processors.Options{BatchMessages: f.Messages, BatchBytes: f.Bytes, Linger: f.Age, Log: rt.log}
		if p.Consumes == catalog.Shared {
			run, err := rt.shared(ctx, sink, opts)
			if err != nil {
				return err
			}
			runs = append(runs, run)
			continue
		}
		opts.Admit = compaction.LatePath(days, name)
		if opts.Consumers, err = streams.PartitionConsumers(ctx, rt.js, rt.sc, name); err != nil {
			return err
		}
		runs = append(runs, func(ctx context.Context) error { return processors.RunPartitions(ctx, rt.js, rt.sc, sink, opts) })
		rt.log.Info().Str("processor", name).Str("flush_age", f.Age.String()).Msg("day-file processor starting: late heartbeats of closed days, every partition")
	}
	if run, err := rt.backupVerifier(ctx, names); err != nil {
		return err
	} else if run != nil {
		runs = append(runs, run)
	}
	if !rt.noJanitor {
		run, err := rt.janitor(ctx)
		if err != nil {
			return err
		}
		runs = append(runs, run)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range runs {
		g.Go(func() error { return run(gctx) })
	}
	return g.Wait()
}

// shared returns the run of a processor on its one shared durable
// consumer (the Postgres projector), once Postgres is ready.
func (rt *runtime) shared(ctx context.Context, sink processors.Sink, opts processors.Options) (func(context.Context) error, error) {
	cons, err := streams.EnsureConsumer(ctx, rt.js, rt.sc, sink.Name())
	if err != nil {
		return nil, err
	}
	opts.DeadLetters = streams.NewDeadLetters(rt.js, rt.sc)
	if opts.Stream, err = rt.js.Stream(ctx, rt.sc.Stream); err != nil {
		return nil, err
	}
	rt.log.Info().Str("processor", sink.Name()).Msg("processor starting")
	return func(ctx context.Context) error {
		if !rt.awaitReady(ctx, sink.Name()) {
			return nil
		}
		return processors.Run(ctx, cons, sink, opts)
	}, nil
}

// janitor returns the shard janitor's run. Every instance runs one; the
// lock in NATS lets one work at a time.
func (rt *runtime) janitor(ctx context.Context) (func(context.Context) error, error) {
	jo := shards.Options{Grace: rt.cfg.ShardsGrace, Interval: rt.cfg.ShardsInterval, Processors: catalog.GuardingDrops(), Log: rt.log}
	if rt.cfg.DebugJanitorPause != "" {
		step, err := shards.ParseStep(rt.cfg.DebugJanitorPause)
		if err != nil {
			return nil, fmt.Errorf("HEARTLOG_DEBUG_JANITOR_PAUSE: %w", err)
		}
		jo.AfterStep = shards.PauseAfter(ctx, step, rt.log)
	}
	j := shards.New(rt.js, rt.sc, rt.days, jo)
	return func(ctx context.Context) error {
		if !rt.awaitReady(ctx, "shard janitor") {
			return nil
		}
		return j.Run(ctx)
	}, nil
}

// awaitReady waits until Postgres is migrated (at once, except under dev
// started without it); false if ctx ended first.
func (rt *runtime) awaitReady(ctx context.Context, what string) bool {
	select {
	case <-rt.pgReady:
		return true
	default:
	}
	rt.log.Warn().Str("waiting", what).Msg("waits for Postgres to come back")
	select {
	case <-rt.pgReady:
		return true
	case <-ctx.Done():
		return false
	}
}

// sink builds the named processor's sink over stores of its own, whose
// requests are counted under its name.
func (rt *runtime) sink(ctx context.Context, name string) (processors.Sink, func(), error) {
	p, err := catalog.Lookup(name)
	if err != nil {
		return nil, nil, err
	}
	st, cleanup, err := rt.stores(ctx, []string{name}, name)
	if err != nil {
		return nil, nil, err
	}
	sink, err := p.Sink(ctx, catalog.Env{Config: rt.cfg, Log: rt.log, Stores: st, Standby: rt.replay, Deleted: rt.dir.Deleted})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return sink, cleanup, nil
}

// stores opens what the named processors write to, with metrics under
// label.
func (rt *runtime) stores(ctx context.Context, names []string, label string) (catalog.Stores, func(), error) {
	var (
		st      catalog.Stores
		closers []func()
	)
	cleanup := func() {
		for _, c := range closers {
			c()
		}
	}
	fail := func(err error) (catalog.Stores, func(), error) {
		cleanup()
		return catalog.Stores{}, nil, err
	}
	need := map[string]bool{}
	for _, n := range names {
		need[n] = true
	}
	if need[streams.DurablePostgres] {
		view, err := streams.WatchShards(ctx, rt.js, rt.sc)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { _ = view.Stop() })
		st.Days, st.Shards = rt.days, view
	}
	var err error
	if need[streams.DurableObjects] || need[streams.DurableCache] {
		if st.Primary, err = instrumentedBucket(ctx, rt.cfg.S3, "HEARTLOG_S3_", label); err != nil {
			return fail(err)
		}
	}
	if need[streams.DurableObjects] || need[streams.DurableBackup] {
		st.Backup, err = instrumentedBucket(ctx, rt.cfg.Backup, "HEARTLOG_BACKUP_S3_", label)
		switch {
		case err != nil && !need[streams.DurableBackup]:
			// Objects only rebuilds a corrupt day file from its backup copy.
			rt.log.Warn().Err(err).Msg("no backup bucket: a corrupt day file is rebuilt from the heartbeats at hand alone")
			st.Backup = nil
		case err != nil:
			return fail(err)
		default:
			rt.checkSpacesLimits()
		}
	}
	if need[streams.DurableCache] {
		c, err := ssdb.New(ssdb.Config{URL: rt.cfg.CacheURL, TTL: rt.cfg.CacheTTL})
		if err != nil {
			return fail(fmt.Errorf("HEARTLOG_CACHE_URL: %w", err))
		}
		closers = append(closers, func() { _ = c.Close() })
		st.Cache = c
	}
	return st, cleanup, nil
}

// compactor returns a compactor and the compaction sinks of the named
// day-file processors (all for none), over stores counted under label.
func (rt *runtime) compactor(ctx context.Context, label string, names ...string) (*compaction.Compactor, []processors.Sink, func(), error) {
	if len(names) == 0 {
		names = catalog.DayFiles()
	}
	st, cleanup, err := rt.stores(ctx, names, label)
	if err != nil {
		return nil, nil, nil, err
	}
	// At close most files do not exist yet: where every bucket refuses a
	// create over an existing file, each costs one request, not two.
	createFirst := true
	for _, b := range []objstore.Bucket{st.Primary, st.Backup} {
		if b != nil && !dayfiles.ConditionalWrites(ctx, b, rt.log) {
			createFirst = false
		}
	}
	e := catalog.Env{Config: rt.cfg, Log: rt.log, Stores: st, Deleted: rt.dir.Deleted}
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s@%s:%d", label, host, os.Getpid())
	return compaction.New(rt.js, rt.sc, catalog.CompactorOptions(rt.cfg, owner, rt.log)), catalog.CompactionSinks(e, createFirst, names...), cleanup, nil
}

// Spaces' documented limits per Space (bucket): 240 requests/s in all, 150
// of them writes (PUT, POST, COPY, DELETE, LIST), and 5 PUTs of one object
// per 5 minutes. Beyond them Spaces answers 503 SlowDown: retried, so
// nothing is lost, but the backup then runs at the limit with backoff.
const (
	spacesWritesPerSecond = 150
	spacesMinFlushAge     = time.Minute
)

// checkSpacesLimits warns when the backup's settings exceed what a single
// DigitalOcean Space accepts.
func (rt *runtime) checkSpacesLimits() {
	if !strings.Contains(rt.cfg.Backup.Endpoint, "digitaloceanspaces.com") {
		return
	}
	if rt.cfg.BackupRequestsPerSec > spacesWritesPerSecond {
		rt.log.Warn().Float64("HEARTLOG_BACKUP_REQUESTS_PER_SECOND", rt.cfg.BackupRequestsPerSec).
			Msg("above the 150 writes/s a single Space accepts: expect 503 SlowDown and retries; set it to about 140")
	}
	if rt.cfg.BackupFlush.Age < spacesMinFlushAge {
		rt.log.Warn().Dur("HEARTLOG_BACKUP_FLUSH_AGE", rt.cfg.BackupFlush.Age).
			Msg("Spaces accepts 5 writes of one object per 5 minutes: a busy day file will be throttled; keep the flush age at a minute or more")
	}
}

// instrumentedBucket opens an S3 bucket for a processor, with its metrics.
func instrumentedBucket(ctx context.Context, b config.Bucket, envPrefix, processor string) (objstore.Bucket, error) {
	s3, err := openS3(ctx, b, envPrefix)
	if err != nil {
		return nil, err
	}
	return objstore.Instrument(s3, processor), nil
}

// openS3 opens the bucket that settings under envPrefix name, without the
// metrics decorator: what a one-off command (status, restore) reads
// through, and what restore needs for the history and conditional deletes
// that only *objstore.S3 has.
func openS3(ctx context.Context, b config.Bucket, envPrefix string) (*objstore.S3, error) {
	s3, err := objstore.NewS3(ctx, objstore.S3Config{
		Endpoint: b.Endpoint, Region: b.Region, Bucket: b.Name,
		AccessKeyID: b.AccessKeyID, SecretAccessKey: b.SecretAccessKey, PathStyle: b.PathStyle,
	})
	if err != nil {
		return nil, fmt.Errorf("%s* settings: %w", envPrefix, err)
	}
	return s3, nil
}

// reader is the read path: Postgres for active shards, else SSDB, else S3;
// deps are what /readyz checks.
func (rt *runtime) reader(ctx context.Context) (*reads.Reader, health.Deps, func(), error) {
	deps := health.Deps{NATS: rt.nc, JetStream: rt.js, Stream: rt.sc.Stream, UsersBucket: rt.sc.UsersBucket,
		Postgres: rt.pool, PostgresShards: shardPools(rt.days),
		ShardMigrated: func(i int) bool { return rt.days.Ready(rt.days.All()[i].Name) }}
	view, err := streams.WatchShards(ctx, rt.js, rt.sc)
	if err != nil {
		return nil, deps, nil, err
	}
	primary, err := instrumentedBucket(ctx, rt.cfg.S3, "HEARTLOG_S3_", "reads")
	if err != nil {
		_ = view.Stop()
		return nil, deps, nil, err
	}
	c, err := ssdb.New(ssdb.Config{URL: rt.cfg.CacheURL, TTL: rt.cfg.CacheTTL})
	if err != nil {
		_ = view.Stop()
		return nil, deps, nil, fmt.Errorf("HEARTLOG_CACHE_URL: %w", err)
	}
	stop := func() {
		_ = view.Stop()
		_ = c.Close()
	}
	deps.Cache, deps.S3 = c, primary
	return reads.New(rt.days, view, c, primary, 16, rt.log).WithShardsGrace(rt.cfg.ShardsGrace), deps, stop, nil
}

// shardPools are the shard databases' pools, in list order; none without
// HEARTLOG_POSTGRES_SHARD_URLS (the catalog holds the days).
func shardPools(days *daydb.Set) []*pgxpool.Pool {
	if !days.Sharded() {
		return nil
	}
	var out []*pgxpool.Pool
	for _, db := range days.All() {
		out = append(out, db.Pool)
	}
	return out
}
