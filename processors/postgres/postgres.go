// Package postgres projects the log into the heartbeats table, one
// partition per UTC day: the hot store that recent reads come from.
//
// It creates a day's partition on demand and skips days whose shard the
// janitor is draining or has dropped: those days live in S3 and SSDB, and a
// late heartbeat must not bring a dropped partition back. It never deletes.
package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// ShardStates tells whether a day (YYYYMMDD) may still be written.
// *streams.ShardView implements it.
type ShardStates interface {
	State(day string) streams.ShardState
}

var (
	rowsInserted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_postgres_rows_inserted_total",
		Help: "Heartbeat rows inserted (duplicates excluded).",
	})
	rowsSkipped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_postgres_rows_skipped_shard_total",
		Help: "Heartbeats not written because their day's shard is draining or dropped.",
	})
)

// Sink writes heartbeats to Postgres. It is safe to run in several
// processes at once: the primary key makes every write idempotent.
type Sink struct {
	pool   *pgxpool.Pool
	shards ShardStates
	log    zerolog.Logger

	mu    sync.Mutex
	known map[string]bool // days whose partition exists
}

// New returns the sink. The pool's database must have the migrations applied.
func New(pool *pgxpool.Pool, shards ShardStates, log zerolog.Logger) *Sink {
	return &Sink{pool: pool, shards: shards, log: log, known: map[string]bool{}}
}

// Name implements processors.Sink.
func (s *Sink) Name() string { return streams.DurablePostgres }

// columns are written in this order by COPY; see row.
var columns = []string{
	"day", "user_id", "id", "time", "entity", "type", "category", "project",
	"project_root_count", "branch", "language", "dependencies", "lines",
	"line_additions", "line_deletions", "lineno", "cursorpos", "is_write",
	"ai_line_changes", "human_line_changes", "editor", "plugin",
	"operating_system", "machine", "user_agent", "extra",
}

// Commit implements processors.Sink: COPY into a temporary table, then one
// INSERT ... ON CONFLICT DO NOTHING, in one transaction.
func (s *Sink) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	rows, days := s.rows(batches)
	if len(rows) == 0 {
		return nil
	}
	for day := range days {
		if err := s.ensurePartition(ctx, day); err != nil {
			return err
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS heartbeats_in
		(LIKE heartbeats INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
		return fmt.Errorf("postgres: temp table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"heartbeats_in"}, columns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("postgres: copy %d rows: %w", len(rows), err)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO heartbeats SELECT * FROM heartbeats_in ON CONFLICT DO NOTHING`)
	if err != nil {
		return fmt.Errorf("postgres: insert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	rowsInserted.Add(float64(tag.RowsAffected()))
	return nil
}

// rows flattens the batches into COPY rows for writable days, without
// duplicates, and returns the days they cover.
func (s *Sink) rows(batches []*heartlogv1.Batch) ([][]any, map[string]time.Time) {
	days := map[string]time.Time{}
	seen := map[string]bool{}
	var rows [][]any
	for _, b := range batches {
		if !s.shards.State(b.Day).Writable() {
			rowsSkipped.Add(float64(len(b.Heartbeats)))
			s.log.Debug().Str("day", b.Day).Int("heartbeats", len(b.Heartbeats)).Msg("shard not active; skipped")
			continue
		}
		for _, hb := range b.Heartbeats {
			if seen[hb.Id] {
				continue
			}
			seen[hb.Id] = true
			day := heartbeat.TimeOf(hb).Truncate(24 * time.Hour)
			days[day.Format(heartbeat.DayLayout)] = day
			rows = append(rows, row(day, hb))
		}
	}
	return rows, days
}

func row(day time.Time, hb *heartlogv1.Heartbeat) []any {
	var extra any
	if len(hb.ExtraJson) > 0 {
		extra = string(hb.ExtraJson)
	}
	deps := hb.Dependencies
	if deps == nil {
		deps = []string{}
	}
	return []any{
		day, hb.UserId, hb.Id, hb.Time, hb.Entity, hb.Type, hb.Category, hb.Project,
		hb.ProjectRootCount, hb.Branch, hb.Language, deps, hb.Lines,
		hb.LineAdditions, hb.LineDeletions, hb.Lineno, hb.Cursorpos, hb.IsWrite,
		hb.AiLineChanges, hb.HumanLineChanges, hb.Editor, hb.Plugin,
		hb.OperatingSystem, hb.Machine, hb.UserAgent, extra,
	}
}

// PartitionName is the table that holds one UTC day (YYYYMMDD).
func PartitionName(day string) string { return "heartbeats_" + day }

// ensurePartition creates the day's partition unless this process has seen
// it. Concurrent creators serialise on an advisory lock per day.
func (s *Sink) ensurePartition(ctx context.Context, day string) error {
	s.mu.Lock()
	ok := s.known[day]
	s.mu.Unlock()
	if ok {
		return nil
	}
	from, err := time.Parse(heartbeat.DayLayout, day)
	if err != nil {
		return fmt.Errorf("postgres: bad day %q: %w", day, err)
	}
	to := from.AddDate(0, 0, 1)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('heartlog partition ' || $1))", day); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(
			"CREATE TABLE IF NOT EXISTS %s PARTITION OF heartbeats FOR VALUES FROM ('%s') TO ('%s')",
			pgx.Identifier{PartitionName(day)}.Sanitize(), from.Format(time.DateOnly), to.Format(time.DateOnly)))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create partition for %s: %w", day, err)
	}
	s.mu.Lock()
	s.known[day] = true
	s.mu.Unlock()
	return nil
}
