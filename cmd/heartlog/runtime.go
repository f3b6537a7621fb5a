package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"heartlog/api"
	"heartlog/config"
	"heartlog/heartbeat"
	"heartlog/processors"
	pgsink "heartlog/processors/postgres"
	"heartlog/streams"
	"heartlog/users"
)

// runtime is one process's connections: NATS with the topology ensured,
// and Postgres with the migrations applied.
type runtime struct {
	cfg  config.Config
	log  zerolog.Logger
	sc   streams.Config
	nc   *nats.Conn
	js   jetstream.JetStream
	pool *pgxpool.Pool
}

func startRuntime(ctx context.Context, cfg config.Config, log zerolog.Logger, name string) (*runtime, error) {
	rt := &runtime{cfg: cfg, log: log, sc: streamConfig(cfg)}
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
	if rt.pool, err = openPostgres(ctx, cfg, log); err != nil {
		rt.close()
		return nil, err
	}
	return rt, nil
}

func (rt *runtime) close() {
	if rt.pool != nil {
		rt.pool.Close()
	}
	if rt.nc != nil {
		_ = rt.nc.Drain()
	}
}

// ready is the /readyz check: NATS connected, the stream reachable,
// Postgres answering.
func (rt *runtime) ready(ctx context.Context) error {
	if st := rt.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("NATS is %s", st)
	}
	if _, err := rt.js.Stream(ctx, rt.sc.Stream); err != nil {
		return fmt.Errorf("stream %s: %w", rt.sc.Stream, err)
	}
	if err := rt.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
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
	srv := api.New(users.NewStore(rt.pool), pub, api.Options{
		MaxBodyBytes: rt.cfg.MaxBodyBytes,
		Limits:       limits,
		RateLimit:    rt.cfg.RateLimit,
		RateBurst:    rt.cfg.RateBurst,
		Ready:        rt.ready,
		Log:          rt.log,
	})
	ln, err := net.Listen("tcp", rt.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (HEARTLOG_HTTP_ADDR): %w", rt.cfg.HTTPAddr, err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		Protocols:         api.Protocols(),
	}
	rt.log.Info().Str("addr", "http://"+ln.Addr().String()).Msg("API listening")
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// processorNames are the processors this release has.
var processorNames = []string{streams.DurablePostgres}

// process runs the named processors until ctx is done.
func (rt *runtime) process(ctx context.Context, names []string) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, name := range names {
		sink, cleanup, err := rt.sink(ctx, name)
		if err != nil {
			return err
		}
		defer cleanup()
		cons, err := streams.EnsureConsumer(ctx, rt.js, rt.sc, name)
		if err != nil {
			return err
		}
		g.Go(func() error {
			return processors.Run(ctx, cons, sink, processors.Options{
				BatchMessages: rt.cfg.FetchBatch,
				Log:           rt.log,
			})
		})
	}
	return g.Wait()
}

func (rt *runtime) sink(ctx context.Context, name string) (processors.Sink, func(), error) {
	switch name {
	case streams.DurablePostgres:
		view, err := streams.WatchShards(ctx, rt.js, rt.sc)
		if err != nil {
			return nil, nil, err
		}
		return pgsink.New(rt.pool, view, rt.log, pgsink.Options{Writers: rt.cfg.PostgresWriters}), func() { _ = view.Stop() }, nil
	}
	return nil, nil, fmt.Errorf("unknown processor %q (HEARTLOG_PROCESSORS); this release has: %v", name, processorNames)
}
