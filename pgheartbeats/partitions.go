package pgheartbeats

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"heartlog/heartbeat"
)

// ErrBadDay is returned for a day that is not YYYYMMDD.
var ErrBadDay = errors.New("pgheartbeats: bad day")

// PartitionName is the table that holds one UTC day (YYYYMMDD).
func PartitionName(day string) string { return Table + "_" + day }

// partitionDay matches a PartitionName and captures its day.
var partitionDay = regexp.MustCompile(`^heartbeats_([0-9]{8})$`)

func sanitized(day string) string { return pgx.Identifier{PartitionName(day)}.Sanitize() }

// CreatePartition creates the day's partition if it does not exist.
// Concurrent creators serialise on an advisory lock per day.
func CreatePartition(ctx context.Context, pool *pgxpool.Pool, day string) error {
	from, err := time.Parse(heartbeat.DayLayout, day)
	if err != nil {
		return fmt.Errorf("%w %q: %w", ErrBadDay, day, err)
	}
	to := from.AddDate(0, 0, 1)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('heartlog partition ' || $1))", day); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(
			"CREATE TABLE IF NOT EXISTS %s PARTITION OF heartbeats FOR VALUES FROM ('%s') TO ('%s')",
			sanitized(day), from.Format(time.DateOnly), to.Format(time.DateOnly)))
		return err
	})
	if err != nil {
		return fmt.Errorf("pgheartbeats: create partition for %s: %w", day, err)
	}
	return nil
}

// Partitioned tells which of the days (YYYYMMDD) have a partition of
// heartbeats, with one query.
func Partitioned(ctx context.Context, pool *pgxpool.Pool, days []string) (map[string]bool, error) {
	names := make([]string, len(days))
	byName := make(map[string]string, len(days))
	for i, d := range days {
		names[i] = PartitionName(d)
		byName[names[i]] = d
	}
	rows, err := pool.Query(ctx, `SELECT c.relname::text FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
		WHERE i.inhparent = 'heartbeats'::regclass AND c.relname = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("pgheartbeats: look up partitions: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgheartbeats: look up partitions: %w", err)
	}
	out := make(map[string]bool, len(found))
	for _, name := range found {
		out[byName[name]] = true
	}
	return out, nil
}

// DayTable is a day's table next to heartbeats, attached or not.
type DayTable struct {
	Day string // YYYYMMDD
	// Attached: the table is a partition of heartbeats. DetachPending: a
	// DETACH ... CONCURRENTLY was interrupted; only DETACH ... FINALIZE
	// can complete it.
	Attached, DetachPending bool
	Rows                    int64 // the planner's estimate; -1 when never analysed
}

// DayTables lists the day tables in heartbeats' schema, attached or not:
// every one when only is "", else the one of that day (YYYYMMDD) if any.
func DayTables(ctx context.Context, pool *pgxpool.Pool, only string) ([]DayTable, error) {
	name := ""
	if only != "" {
		name = PartitionName(only)
	}
	rows, err := pool.Query(ctx, `
		SELECT c.relname::text,
		       i.inhrelid IS NOT NULL,
		       COALESCE(i.inhdetachpending, false),
		       c.reltuples::bigint
		FROM pg_class c
		LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'heartbeats'::regclass
		WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'heartbeats'::regclass)
		  AND c.relkind IN ('r', 'p')
		  AND c.relname ~ '^heartbeats_[0-9]{8}$'
		  AND ($1 = '' OR c.relname = $1)`, name)
	if err != nil {
		return nil, fmt.Errorf("pgheartbeats: list partitions: %w", err)
	}
	var (
		out []DayTable
		t   DayTable
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &t.Attached, &t.DetachPending, &t.Rows}, func() error {
		m := partitionDay.FindStringSubmatch(name)
		if m == nil {
			return nil
		}
		t.Day = m[1]
		if t.Rows < 0 {
			t.Rows = -1
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgheartbeats: list partitions: %w", err)
	}
	return out, nil
}

// HasRows reports whether the day's table has a row; the table must exist.
func HasRows(ctx context.Context, pool *pgxpool.Pool, day string) (bool, error) {
	var yes bool
	err := pool.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s)", sanitized(day))).Scan(&yes)
	if err != nil {
		return false, fmt.Errorf("pgheartbeats: look into %s: %w", PartitionName(day), err)
	}
	return yes, nil
}

// Detach takes the day's partition out of heartbeats: with DETACH
// PARTITION ... CONCURRENTLY, or with finalize the DETACH ... FINALIZE that
// completes an interrupted one. Neither runs in a transaction block.
func Detach(ctx context.Context, pool *pgxpool.Pool, day string, finalize bool) error {
	stmt := "ALTER TABLE heartbeats DETACH PARTITION " + sanitized(day) + " CONCURRENTLY"
	if finalize {
		stmt = "ALTER TABLE heartbeats DETACH PARTITION " + sanitized(day) + " FINALIZE"
	}
	// No arguments, so the simple protocol: one statement, outside any
	// transaction block, as CONCURRENTLY requires.
	if _, err := pool.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("pgheartbeats: %s: %w", stmt, err)
	}
	return nil
}

// DropTable drops the day's table, attached or not, if it exists. The
// janitor detaches first (see Detach), so that no reader is blocked.
func DropTable(ctx context.Context, pool *pgxpool.Pool, day string) error {
	if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+sanitized(day)); err != nil {
		return fmt.Errorf("pgheartbeats: drop %s: %w", PartitionName(day), err)
	}
	return nil
}
