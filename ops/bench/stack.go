package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"heartlog/api"
	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/devstack"
	"heartlog/internal/wiring"
	"heartlog/processors"
	pgsink "heartlog/processors/postgres"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
	"heartlog/users"
)

// stack is the whole service under test, in this process.
type stack struct {
	cfg config
	log zerolog.Logger

	ns   *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	sc   streams.Config
	pool *pgxpool.Pool

	dbName string
	dbURL  string
	users  *users.Store
	dir    *users.Directory

	pub     *streams.Publisher
	api     *wiring.Server
	baseURL string

	proc *processor

	closers []func() error // run in reverse by close
}

// labelled runs f with the pprof label component=name, so that goroutines
// f starts carry it into CPU profiles.
func labelled(ctx context.Context, name string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels("component", name), f)
}

func startStack(ctx context.Context, cfg config) (*stack, error) {
	st := &stack{
		cfg: cfg,
		log: zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true}).
			Level(zerolog.WarnLevel).
			Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Second}).
			With().Timestamp().Logger(),
		sc: streams.DefaultConfig(),
	}
	if cfg.partitions > 0 {
		st.sc.Partitions = uint32(cfg.partitions)
	}

	// JetStream on a fresh store.
	if err := os.RemoveAll(cfg.workDir); err != nil {
		return nil, fmt.Errorf("remove %s: %w", cfg.workDir, err)
	}
	st.closers = append(st.closers, func() error { return os.RemoveAll(cfg.workDir) })
	storeDir := filepath.Join(cfg.workDir, "nats")
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return st, err
	}
	var err error
	labelled(ctx, "nats-server", func(context.Context) {
		sync := cfg.syncAlways
		st.ns, err = devstack.StartNATS(devstack.NATSOptions{StoreDir: storeDir, Host: "127.0.0.1", Port: -1, NoMonitoring: true, SyncAlways: &sync})
	})
	if err != nil {
		return st, err
	}
	st.closers = append(st.closers, func() error {
		st.ns.Shutdown()
		st.ns.WaitForShutdown()
		return nil
	})
	labelled(ctx, "nats-client", func(context.Context) {
		st.nc, st.js, err = wiring.ConnectNATS(st.ns.ClientURL(), wiring.NATSOptions{Name: "bench", Log: st.log})
	})
	if err != nil {
		return st, err
	}
	st.closers = append(st.closers, func() error { st.nc.Close(); return nil })
	if err := streams.Ensure(ctx, st.js, st.sc); err != nil {
		return st, err
	}

	// A fresh database.
	if err := st.createDatabase(ctx); err != nil {
		return st, err
	}
	mirror, err := users.OpenMirror(ctx, st.js, st.sc.UsersBucket)
	if err != nil {
		return st, err
	}
	st.users = users.NewStore(st.pool, mirror)
	// The API authenticates from the users bucket, as cmd/heartlog's does.
	if st.dir, err = users.WatchDirectory(ctx, st.js, st.sc.UsersBucket, users.DirectoryOptions{}); err != nil {
		return st, err
	}
	st.closers = append(st.closers, st.dir.Stop)

	// The API on a real loopback listener.
	labelled(ctx, "publisher", func(context.Context) {
		st.pub = streams.NewPublisher(st.nc, st.js, st.sc, st.publisherOptions())
	})
	st.closers = append(st.closers, func() error { st.pub.Close(); return nil })
	srv := api.New(st.accounts(), st.pub, api.Options{Log: st.log, RateLimit: 1e9, RateBurst: 1e9, HeartbeatRate: 1e9, HeartbeatBurst: 1e9, ByteRate: 1e12, ByteBurst: 1 << 40, MaxDaysPerRequest: 1 << 20, MaxDayHeartbeats: 1 << 30, MaxDayBytes: 1 << 40})
	labelled(ctx, "api", func(context.Context) {
		st.api, err = wiring.ListenAPI("127.0.0.1:0", srv)
	})
	if err != nil {
		return st, err
	}
	st.baseURL = st.api.URL()
	st.closers = append(st.closers, func() error { return st.api.Close(10 * time.Second) })
	return st, nil
}

func (st *stack) publisherOptions() streams.PublisherOptions {
	return streams.PublisherOptions{Linger: st.cfg.linger, MaxInFlight: st.cfg.maxInFlight}
}

// close stops everything in reverse order of start and drops the database.
func (st *stack) close() error {
	st.stopProcessor()
	var errs []error
	for i := len(st.closers) - 1; i >= 0; i-- {
		if err := st.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// createDatabase creates and migrates a database of the bench's own on
// HEARTLOG_POSTGRES_URL's server, dropped by close.
func (st *stack) createDatabase(ctx context.Context) error {
	name := benchDatabaseName()
	var err error
	if st.dbURL, err = wiring.CreateDatabase(ctx, st.cfg.postgresURL, name); err != nil {
		return fmt.Errorf("HEARTLOG_POSTGRES_URL: %w", err)
	}
	st.dbName = name
	st.closers = append(st.closers, func() error { return wiring.DropDatabase(context.Background(), st.cfg.postgresURL, name) })
	if st.pool, err = wiring.OpenPostgres(ctx, st.dbURL, st.log); err != nil {
		return err
	}
	st.closers = append(st.closers, func() error { st.pool.Close(); return nil })
	return nil
}

// benchDatabaseName is a fresh heartlog_bench_* database name.
func benchDatabaseName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "heartlog_bench_" + hex.EncodeToString(b)
}

// streamMsgs is the stream's message count now.
func (st *stack) streamMsgs(ctx context.Context) (uint64, error) {
	s, err := st.js.Stream(ctx, st.sc.Stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// countingSink wraps the Postgres sink to time each commit and count the
// heartbeats it committed.
type countingSink struct {
	processors.Sink
	heartbeats atomic.Int64
	mu         sync.Mutex
	commits    []time.Duration
	sizes      []int
}

func (s *countingSink) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	start := time.Now()
	err := s.Sink.Commit(ctx, batches)
	d := time.Since(start)
	if err != nil {
		return err
	}
	n := 0
	for _, b := range batches {
		n += len(b.Heartbeats)
	}
	s.mu.Lock()
	s.commits = append(s.commits, d)
	s.sizes = append(s.sizes, n)
	s.mu.Unlock()
	s.heartbeats.Add(int64(n))
	return nil
}

// processor is a running Postgres processor, wired as `heartlog process`
// and heartlogtest wire it.
type processor struct {
	sink   *countingSink
	cancel context.CancelFunc
	done   chan error
	view   *streams.ShardView
	pool   *pgxpool.Pool // its own, when it was given no databases
}

// startProcessor runs the Postgres processor on its durable consumer,
// into the stack's database. batchMessages 0 keeps the processor's default.
func (st *stack) startProcessor(ctx context.Context, batchMessages int) error {
	return st.startProcessorOn(ctx, batchMessages, nil)
}

// startProcessorOn is startProcessor into the databases of days (nil: a
// pool of its own on the stack's database).
func (st *stack) startProcessorOn(ctx context.Context, batchMessages int, days *daydb.Set) error {
	if st.proc != nil {
		return errors.New("processor already running")
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &processor{cancel: cancel, done: make(chan error, 1)}
	var err error
	labelled(pctx, "processor", func(lctx context.Context) {
		if days == nil {
			if p.pool, err = wiring.NewPool(lctx, st.dbURL); err != nil {
				return
			}
			days = daydb.One(p.pool)
		}
		if p.view, err = streams.WatchShards(lctx, st.js, st.sc); err != nil {
			return
		}
		var cons jetstream.Consumer
		if cons, err = streams.EnsureConsumer(lctx, st.js, st.sc, streams.DurablePostgres); err != nil {
			return
		}
		p.sink = &countingSink{Sink: pgsink.New(days, p.view, st.log, pgsink.Options{})}
		go func() {
			p.done <- processors.Run(lctx, cons, p.sink, processors.Options{BatchMessages: batchMessages, Log: st.log, DeadLetters: streams.NewDeadLetters(st.js, st.sc)})
		}()
	})
	if err != nil {
		cancel()
		if p.view != nil {
			_ = p.view.Stop()
		}
		if p.pool != nil {
			p.pool.Close()
		}
		return fmt.Errorf("start processor: %w", err)
	}
	st.proc = p
	return nil
}

// stopProcessor stops the processor after its commit in progress.
func (st *stack) stopProcessor() {
	p := st.proc
	if p == nil {
		return
	}
	st.proc = nil
	p.cancel()
	if err := <-p.done; err != nil {
		st.log.Error().Err(err).Msg("processor stopped with an error")
	}
	_ = p.view.Stop()
	if p.pool != nil {
		p.pool.Close()
	}
}

// newUsers creates n users through the user store and returns their keys.
func (st *stack) newUsers(ctx context.Context, prefix string, n int) ([]string, error) {
	_, keys, err := st.createUsers(ctx, prefix, n)
	return keys, err
}

// createUsers creates n users through the user store, 8 at a time, and
// returns them and their keys.
func (st *stack) createUsers(ctx context.Context, prefix string, n int) ([]users.User, []string, error) {
	us := make([]users.User, n)
	keys := make([]string, n)
	var g errgroup.Group
	g.SetLimit(8)
	for i := range keys {
		g.Go(func() error {
			var err error
			us[i], keys[i], err = st.users.Create(ctx, users.NewUser{Name: fmt.Sprintf("%s-%d", prefix, i)})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return us, keys, nil
}

// prepare is what the API does to a decoded heartbeat before publishing.
func prepare(hb *heartlogv1.Heartbeat, userID, ua, machine string, now time.Time) error {
	return heartbeat.DefaultLimits.Prepare(hb, heartbeat.Origin{UserID: userID, UserAgent: ua, Machine: machine, Now: now})
}

// accounts is what the API looks users up in.
func (st *stack) accounts() users.Accounts { return users.Accounts{Keys: st.dir, Store: st.users} }
