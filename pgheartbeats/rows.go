// Package pgheartbeats is the heartbeats table in Postgres: its columns,
// the codec between a heartbeat and a row, the names of its day partitions
// and the SQL that creates, lists, detaches and drops them. The Postgres
// processor writes through it, the read path reads through it and the shard
// janitor drops days through it, so the table's shape is written down once.
//
// The table itself is created by schema/migrations (0002_heartbeats.sql);
// the column list here follows it, and a test holds the two together.
//
// It holds the table's shape and the SQL for it, nothing else: it never
// touches NATS, S3 or SSDB, decides nothing about shard states or the grace
// period (its callers do), and keeps no state.
package pgheartbeats

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Table is the partitioned parent table.
const Table = "heartbeats"

// columns are the table's columns in the order Row gives their values
// (COPY); Scan reads them from user_id on, in the same order.
var columns = []string{
	"day", "user_id", "id", "time", "entity", "type", "category", "project",
	"project_root_count", "branch", "language", "dependencies", "lines",
	"line_additions", "line_deletions", "lineno", "cursorpos", "is_write",
	"ai_line_changes", "human_line_changes", "editor", "plugin",
	"operating_system", "machine", "user_agent", "extra",
}

// Select is the SELECT ... FROM heartbeats whose rows Scan reads; callers
// append their WHERE. The day is left out (a heartbeat's time says it) and
// user_id comes as text, as the heartbeat holds it.
var Select = SelectFrom(Table)

// SelectFrom is Select from another table of heartbeats' shape (a day's
// table, attached or not), its name sanitised by the caller.
func SelectFrom(table string) string {
	return "SELECT user_id::text, " + strings.Join(columns[2:], ", ") + " FROM " + table
}

// Row is the heartbeat's row, values in column order, and the UTC day
// (midnight) it belongs to. A user id that is not a UUID is an error: the
// API sets user ids from the users table, so that is a corrupt heartbeat
// that no retry can store.
func Row(hb *heartlogv1.Heartbeat) (row []any, day time.Time, err error) {
	user, err := uuid.Parse(hb.UserId)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("pgheartbeats: user id %q: %w", hb.UserId, err)
	}
	day = heartbeat.TimeOf(hb).Truncate(24 * time.Hour)
	var extra any
	if len(hb.ExtraJson) > 0 {
		extra = string(hb.ExtraJson)
	}
	deps := hb.Dependencies
	if deps == nil {
		deps = []string{} // the column is NOT NULL
	}
	return []any{
		day, pgtype.UUID{Bytes: user, Valid: true}, hb.Id, hb.Time, hb.Entity, hb.Type, hb.Category, hb.Project,
		hb.ProjectRootCount, hb.Branch, hb.Language, deps, hb.Lines,
		hb.LineAdditions, hb.LineDeletions, hb.Lineno, hb.Cursorpos, hb.IsWrite,
		hb.AiLineChanges, hb.HumanLineChanges, hb.Editor, hb.Plugin,
		hb.OperatingSystem, hb.Machine, hb.UserAgent, extra,
	}, day, nil
}

// Copy writes rows made by Row into table (heartbeats, one of its
// partitions, or a table LIKE it) with COPY, and returns how many it wrote.
func Copy(ctx context.Context, tx pgx.Tx, table string, rows [][]any) (int64, error) {
	return tx.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows))
}

// CopyNew writes rows made by Row into heartbeats, skipping those whose
// key is stored already, and returns how many it inserted: COPY into a
// temporary table of heartbeats' shape (the session keeps it, every commit
// empties it), then INSERT ... ON CONFLICT DO NOTHING. The slow path of
// writes that may repeat rows: a redelivery, a replay, a re-run move.
func CopyNew(ctx context.Context, tx pgx.Tx, rows [][]any) (int64, error) {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS heartbeats_in
		(LIKE heartbeats INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
		return 0, fmt.Errorf("pgheartbeats: temp table: %w", err)
	}
	if _, err := Copy(ctx, tx, "heartbeats_in", rows); err != nil {
		return 0, fmt.Errorf("pgheartbeats: copy %d rows: %w", len(rows), err)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO heartbeats SELECT * FROM heartbeats_in ON CONFLICT DO NOTHING`)
	if err != nil {
		return 0, fmt.Errorf("pgheartbeats: insert: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Scan reads a heartbeat from a row of Select (a pgx.RowToFunc). Extra
// comes back as Postgres writes jsonb: the same JSON object, but not
// necessarily the same bytes as written (jsonb orders keys by length and
// puts a space after ':' and ',').
func Scan(row pgx.CollectableRow) (*heartlogv1.Heartbeat, error) {
	hb := &heartlogv1.Heartbeat{}
	var extra []byte
	err := row.Scan(&hb.UserId, &hb.Id, &hb.Time, &hb.Entity, &hb.Type, &hb.Category, &hb.Project,
		&hb.ProjectRootCount, &hb.Branch, &hb.Language, &hb.Dependencies, &hb.Lines, &hb.LineAdditions,
		&hb.LineDeletions, &hb.Lineno, &hb.Cursorpos, &hb.IsWrite, &hb.AiLineChanges, &hb.HumanLineChanges,
		&hb.Editor, &hb.Plugin, &hb.OperatingSystem, &hb.Machine, &hb.UserAgent, &extra)
	if len(extra) > 0 {
		hb.ExtraJson = extra
	}
	if len(hb.Dependencies) == 0 {
		hb.Dependencies = nil
	}
	return hb, err
}
