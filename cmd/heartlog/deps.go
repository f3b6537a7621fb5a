package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"heartlog/config"
	"heartlog/schema/migrations"
	"heartlog/streams"
)

func newLogger(cfg config.Config) zerolog.Logger { return newLoggerTo(cfg, os.Stderr) }

// newLoggerTo is the process's logger, console or JSON. Every duration
// field, .Dur included, prints as Go writes a duration ("2s", "6.4s") in
// both formats: zerolog's default, a bare number of milliseconds
// (flush_age=2000), leaves the reader to guess the unit.
func newLoggerTo(cfg config.Config, w io.Writer) zerolog.Logger {
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil || cfg.LogLevel == "" {
		level = zerolog.InfoLevel
	}
	var log zerolog.Logger
	if cfg.LogFormat == "json" {
		log = zerolog.New(w)
	} else {
		log = zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly})
	}
	return log.Level(level).With().Timestamp().Logger()
}

func loadConfig() (config.Config, zerolog.Logger, error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return cfg, zerolog.Nop(), err
	}
	return cfg, newLogger(cfg), nil
}

func streamConfig(cfg config.Config) streams.Config {
	sc := streams.DefaultConfig()
	sc.Partitions = cfg.Partitions
	sc.Replicas = cfg.StreamReplicas
	sc.MaxAge = cfg.StreamMaxAge
	sc.MaxBytes = cfg.StreamMaxBytes
	sc.Duplicates = cfg.StreamDuplicates
	sc.AckWait = cfg.AckWait
	sc.PinnedTTL = cfg.PinnedTTL
	return sc
}

// connectNATS connects with unlimited reconnects: a NATS restart must not
// take heartlog down, only make it answer 503 meanwhile.
func connectNATS(cfg config.Config, name string, log zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name("heartlog " + name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // our own Close at exit, not an outage
			}
			log.Warn().Err(err).Msg("NATS disconnected; ingest answers 503 until it is back")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s (HEARTLOG_NATS_URL): %w", redactURL(cfg.NATSURL), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// openPostgres connects and applies pending migrations.
func openPostgres(ctx context.Context, cfg config.Config, log zerolog.Logger) (*pgxpool.Pool, error) {
	pool, err := newPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, pool, log); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// newPool makes a pool without connecting: pgxpool connects on first use,
// so serve can start while Postgres is down.
func newPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.PostgresURL)
	if err != nil {
		return nil, errors.New("HEARTLOG_POSTGRES_URL is not a valid Postgres URL")
	}
	return pgxpool.NewWithConfig(ctx, pc)
}

// migrate checks that Postgres answers and applies pending migrations.
func migrate(ctx context.Context, pool *pgxpool.Pool, log zerolog.Logger) error {
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pc := pool.Config().ConnConfig
		return fmt.Errorf("connect to Postgres at %s:%d/%s (HEARTLOG_POSTGRES_URL): %w", pc.Host, pc.Port, pc.Database, err)
	}
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		log.Info().Strs("migrations", applied).Msg("database migrated")
	}
	return nil
}

// redactURL drops credentials from a URL list for log lines.
func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}
