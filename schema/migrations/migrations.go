// Package migrations holds heartlog's SQL schema as numbered files embedded
// in the binary, and applies the ones a database lacks. Every instance runs
// Apply at start; a Postgres advisory lock makes concurrent starts take
// turns. A migration, once released, is never edited: add a new file.
//
// The files form two sets (Set): the catalog's (users, the placement of
// days) and the shard databases' (the heartbeats parent table that day
// partitions attach to). Versions are numbered across both, so a database
// that is catalog and shard at once (no HEARTLOG_POSTGRES_SHARD_URLS) takes
// both sets into one schema_migrations table without a clash.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// lockID is the advisory lock key: "heartlog" in ASCII.
const lockID = 0x686561727460676

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
	Set     Set // the databases it belongs on
}

// Set chooses the migrations of one kind of database.
type Set int

const (
	// Catalog is the database of HEARTLOG_POSTGRES_URL: users, the
	// placement of days, and each database's migration bookkeeping.
	Catalog Set = 1 << iota
	// Shard is a database that holds day partitions of heartbeats.
	Shard
	// Both is a catalog that holds the day partitions too (no shard URLs).
	Both = Catalog | Shard
)

// shardVersions are the migrations that belong on shard databases; every
// other one is the catalog's. A new migration of the heartbeats table is
// added here.
var shardVersions = map[int]bool{2: true}

// All returns the embedded migrations in order.
func All() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, name := range names {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migrations: %s: name must start with a number and _", name)
		}
		sql, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		set := Catalog
		if shardVersions[v] {
			set = Shard
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(sql), Set: set})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Apply runs, in order and each in its own transaction, every migration the
// database has not recorded, of both sets: a database that is catalog and
// shard at once. It returns the names it applied.
func Apply(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	return ApplySet(ctx, pool, Both)
}

// ApplySet is Apply for the migrations of set only, under the database's
// own advisory lock.
func ApplySet(ctx context.Context, pool *pgxpool.Pool, set Set) ([]string, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return nil, fmt.Errorf("migrations: take advisory lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockID) //nolint:errcheck // the session ends with the connection anyway

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrations: create schema_migrations: %w", err)
	}
	var applied []string
	for _, m := range all {
		if m.Set&set == 0 {
			continue
		}
		done, err := apply(ctx, conn.Conn(), m)
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m.Name)
		}
	}
	return applied, nil
}

func apply(ctx context.Context, conn *pgx.Conn, m Migration) (bool, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", m.Version).Scan(&exists); err != nil {
		return false, fmt.Errorf("migrations: %s: %w", m.Name, err)
	}
	if exists {
		return false, nil
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migrations: %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
		return false, fmt.Errorf("migrations: record %s: %w", m.Name, err)
	}
	return true, tx.Commit(ctx)
}
