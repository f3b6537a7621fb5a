package wiring

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"heartlog/daydb"
	"heartlog/schema/migrations"
)

// PingTimeout bounds Migrate's first round trip, so that an unreachable
// Postgres is reported instead of waited for.
const PingTimeout = 10 * time.Second

// ErrPostgresURL is NewPool's answer to a URL pgx cannot parse. The URL is
// not repeated: it may hold a password.
var ErrPostgresURL = errors.New("not a valid Postgres URL")

// NewPool makes a pool without connecting: pgxpool connects on first use,
// so a service can start while Postgres is down. A connection attempt
// gives up after PingTimeout unless the URL sets connect_timeout.
func NewPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, ErrPostgresURL
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		// A database that drops packets must fail a commit, not hang it:
		// the Postgres processor holds back that database's days and goes
		// on with the others only once the attempt has failed.
		pc.ConnConfig.ConnectTimeout = PingTimeout
	}
	return pgxpool.NewWithConfig(ctx, pc)
}

// Migrate checks within PingTimeout that Postgres answers, then applies
// the pending migrations of both sets (a catalog that holds the day
// partitions too) and logs which.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log zerolog.Logger) error {
	return MigrateSet(ctx, pool, migrations.Both, log)
}

// MigrateSet is Migrate for the migrations of one set.
func MigrateSet(ctx context.Context, pool *pgxpool.Pool, set migrations.Set, log zerolog.Logger) error {
	pingCtx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pc := pool.Config().ConnConfig
		return fmt.Errorf("connect to Postgres at %s:%d/%s: %w", pc.Host, pc.Port, pc.Database, err)
	}
	applied, err := migrations.ApplySet(ctx, pool, set)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		log.Info().Str("database", daydb.NameOf(pool)).Strs("migrations", applied).Msg("database migrated")
	}
	return nil
}

// NewDays makes pools on the shard databases (without connecting, as
// NewPool) and the set of databases over them and catalog; close closes
// the shard pools, not the catalog's. No shard URLs: the catalog holds the
// day partitions. An error names the entry at fault, never its text.
func NewDays(ctx context.Context, catalog *pgxpool.Pool, shardURLs []string) (days *daydb.Set, close func(), err error) {
	var pools []*pgxpool.Pool
	close = func() {
		for _, p := range pools {
			p.Close()
		}
	}
	for i, u := range shardURLs {
		p, err := NewPool(ctx, u)
		if err != nil {
			close()
			return nil, nil, fmt.Errorf("HEARTLOG_POSTGRES_SHARD_URLS entry %d: %w", i+1, err)
		}
		pools = append(pools, p)
	}
	if days, err = daydb.New(catalog, pools...); err != nil {
		close()
		return nil, nil, err
	}
	return days, close, nil
}

// MigrateDays applies the catalog's migrations to the catalog and the
// shards' to each shard database (both to a catalog that holds the days),
// each database under its own advisory lock.
// Then it records the placement of day partitions that predate
// placements (daydb.Set.Adopt).
func MigrateDays(ctx context.Context, days *daydb.Set, log zerolog.Logger) error {
	if !days.Sharded() {
		if err := Migrate(ctx, days.Catalog(), log); err != nil {
			return err
		}
		return days.Adopt(ctx)
	}
	if err := MigrateSet(ctx, days.Catalog(), migrations.Catalog, log); err != nil {
		return err
	}
	for _, db := range days.All() {
		if err := MigrateSet(ctx, db.Pool, migrations.Shard, log); err != nil {
			return fmt.Errorf("shard %s: %w", db.Name, err)
		}
	}
	return days.Adopt(ctx)
}

// ShardRetryMax bounds the pause between attempts to migrate a shard
// database that MigrateDaysLater could not migrate: 1 s, doubling up to
// this.
const ShardRetryMax = 30 * time.Second

// MigrateDaysLater is MigrateDays for a process that runs on while a shard
// database is down, so that one down shard stops no other day: the
// catalog must migrate, but a shard that fails is logged (which database,
// the error, when it is tried again) and marked not ready in days
// (daydb.Set.SetReady): no new day is placed on it, the Postgres processor
// holds back the batches of the days placed there, and reads that need it
// fail. Its migration is retried in the background until it succeeds,
// then it is marked ready, or until ctx ends. A shard already not ready
// (its retry under way, when this is called again) is left to that retry.
// The shards are tried in parallel, each within PingTimeout.
func MigrateDaysLater(ctx context.Context, days *daydb.Set, log zerolog.Logger) error {
	if !days.Sharded() {
		return MigrateDays(ctx, days, log)
	}
	if err := MigrateSet(ctx, days.Catalog(), migrations.Catalog, log); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, db := range days.All() {
		if !days.Ready(db.Name) {
			continue
		}
		wg.Go(func() {
			err := MigrateSet(ctx, db.Pool, migrations.Shard, log)
			if err == nil || ctx.Err() != nil {
				return
			}
			days.SetReady(db.Name, false)
			log.Error().Str("database", db.Name).Err(err).Str("retry_in", RetryFirst.String()).
				Msg("shard database not migrated: no new day goes to it, and the days placed there wait (their writes held back, their reads failing) until its migration succeeds")
			go retryShard(ctx, days, db, log)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return days.Adopt(ctx)
}

// retryShard migrates db until it succeeds (then marks it ready and
// adopts its old days) or ctx ends.
func retryShard(ctx context.Context, days *daydb.Set, db daydb.DB, log zerolog.Logger) {
	ok := Retry(ctx, ShardRetryMax, func() error { return MigrateSet(ctx, db.Pool, migrations.Shard, log) }, func(err error, next time.Duration) {
		log.Warn().Str("database", db.Name).Err(err).Str("retry_in", next.String()).Msg("shard database still not migrated")
	})
	if !ok {
		return
	}
	days.SetReady(db.Name, true)
	log.Info().Str("database", db.Name).Msg("shard database migrated: it takes new days, and the days placed there are written and read again")
	if err := days.Adopt(ctx); err != nil {
		log.Warn().Err(err).Msg("adopt the day partitions that predate placements (retried at the next start)")
	}
}

// RetryFirst is Retry's first pause.
const RetryFirst = time.Second

// Retry calls try RetryFirst from now, then after each failure (told to
// failed with the pause before the next try) twice as long again, up to
// most, until try succeeds (true) or ctx ends (false).
func Retry(ctx context.Context, most time.Duration, try func() error, failed func(err error, next time.Duration)) bool {
	wait := RetryFirst
	for {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		err := try()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait = min(2*wait, most)
		failed(err, wait)
	}
}

// OpenPostgres is NewPool and Migrate: a pool on a database that answers
// and has the current schema.
func OpenPostgres(ctx context.Context, url string, log zerolog.Logger) (*pgxpool.Pool, error) {
	pool, err := NewPool(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, pool, log); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// CreateDatabase creates the empty database name in the server serverURL
// reaches and returns its URL: the benchmarks' and tests' own database
// on a shared server. DropDatabase removes it.
func CreateDatabase(ctx context.Context, serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", ErrPostgresURL
	}
	u.Path = "/" + name
	if err := onServer(ctx, serverURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return u.String(), nil
}

// DropDatabase drops the database name, closing its sessions first.
func DropDatabase(ctx context.Context, serverURL, name string) error {
	if err := onServer(ctx, serverURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// onServer runs one statement on a connection of its own: CREATE and DROP
// DATABASE cannot run in a pool's transaction or in the database dropped.
func onServer(ctx context.Context, serverURL, sql string) error {
	c, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, sql)
	return err
}
