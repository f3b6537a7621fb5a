package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"heartlog/config"
	"heartlog/internal/wiring"
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

// connectNATS is heartlog's NATS connection (see wiring.ConnectNATS) to
// HEARTLOG_NATS_URL, named for the command.
func connectNATS(cfg config.Config, name string, log zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, js, err := wiring.ConnectNATS(cfg.NATSURL, wiring.NATSOptions{Name: name, Creds: cfg.NATSCreds, Log: log})
	if err != nil {
		return nil, nil, fmt.Errorf("HEARTLOG_NATS_URL: %w", err)
	}
	return nc, js, nil
}

// openPostgres connects to HEARTLOG_POSTGRES_URL, the catalog, and applies
// pending migrations: the catalog's to it, and the shards' to each of
// HEARTLOG_POSTGRES_SHARD_URLS (or to the catalog, without them).
func openPostgres(ctx context.Context, cfg config.Config, log zerolog.Logger) (*pgxpool.Pool, error) {
	pool, err := wiring.NewPool(ctx, cfg.PostgresURL)
	if err != nil {
		return nil, fmt.Errorf("HEARTLOG_POSTGRES_URL: %w", err)
	}
	days, closeDays, err := wiring.NewDays(ctx, pool, cfg.PostgresShardURLs)
	if err == nil {
		err = wiring.MigrateDays(ctx, days, log)
		closeDays()
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("HEARTLOG_POSTGRES_URL, HEARTLOG_POSTGRES_SHARD_URLS: %w", err)
	}
	return pool, nil
}
