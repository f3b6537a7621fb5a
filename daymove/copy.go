package daymove

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/pgheartbeats"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// copy inserts on the target every row of src's table of the day that the
// target lacks, in chunks of ChunkRows in primary key order, one
// transaction each, and returns how many it inserted. The table is read
// by name, attached or not (a resumed move may find it detached).
func (r *run) copy(src daydb.DB) (int64, error) {
	ctx, table := r.ctx, pgx.Identifier{pgheartbeats.PartitionName(r.day)}.Sanitize()
	// The day's equality lets the primary key (day, user_id, id) serve
	// both the keyset condition and the order.
	query := pgheartbeats.SelectFrom(table) + ` WHERE day = $4 AND (day, user_id, id) > ($4, $1::uuid, $2)
		ORDER BY day, user_id, id LIMIT $3`
	d, err := time.Parse(heartbeat.DayLayout, r.day)
	if err != nil {
		return 0, fmt.Errorf("daymove: %w", err)
	}
	// The smallest key: no row has an empty id.
	user, id := "00000000-0000-0000-0000-000000000000", ""
	var read, inserted int64
	start, last := time.Now(), time.Now()
	progress := func() {
		took := time.Since(start)
		r.printf("copy: %d rows read from %s, %d inserted on %s, in %s (%.0f rows/s)",
			read, src.Name, inserted, r.to.Name, took.Round(time.Millisecond), float64(read)/max(took.Seconds(), 1e-3))
		last = time.Now()
	}
	defer progress()
	for {
		rows, err := src.Pool.Query(ctx, query, user, id, r.m.opts.ChunkRows, d)
		if err != nil {
			return inserted, fmt.Errorf("daymove: read %s on %s: %w", table, src.Name, err)
		}
		hbs, err := pgx.CollectRows(rows, pgheartbeats.Scan)
		if err != nil {
			return inserted, fmt.Errorf("daymove: read %s on %s: %w", table, src.Name, err)
		}
		if len(hbs) == 0 {
			break
		}
		n, err := r.insert(hbs)
		if err != nil {
			return inserted, err
		}
		read, inserted = read+int64(len(hbs)), inserted+n
		user, id = hbs[len(hbs)-1].UserId, hbs[len(hbs)-1].Id
		if time.Since(last) >= time.Second {
			progress()
		}
		if len(hbs) < r.m.opts.ChunkRows {
			break
		}
	}
	return inserted, nil
}

// insert writes one chunk on the target, skipping the rows it has.
func (r *run) insert(hbs []*heartlogv1.Heartbeat) (int64, error) {
	rows := make([][]any, len(hbs))
	for i, hb := range hbs {
		row, _, err := pgheartbeats.Row(hb)
		if err != nil {
			return 0, fmt.Errorf("daymove: %w", err)
		}
		rows[i] = row
	}
	var inserted int64
	err := pgx.BeginFunc(r.ctx, r.to.Pool, func(tx pgx.Tx) error {
		var err error
		inserted, err = pgheartbeats.CopyNew(r.ctx, tx, rows)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("daymove: write %d rows on %s: %w", len(rows), r.to.Name, err)
	}
	return inserted, nil
}

// canonicalSettings make a row's text the same on every server: its
// dates, times and floats print by these session settings, which two
// shard servers configured differently would not share.
const canonicalSettings = `SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL TimeZone = 'UTC'; ` +
	`SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'`

// canonicalQuery runs query in a read-only transaction under
// canonicalSettings; end closes the rows and the transaction.
func canonicalQuery(ctx context.Context, pool *pgxpool.Pool, query string) (pgx.Rows, func(), error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, err
	}
	rollback := func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }
	if _, err := tx.Exec(ctx, canonicalSettings); err != nil {
		rollback()
		return nil, nil, err
	}
	rows, err := tx.Query(ctx, query)
	if err != nil {
		rollback()
		return nil, nil, err
	}
	return rows, func() { rows.Close(); rollback() }, nil
}

// verified is what verify found.
type verified struct {
	source, target  int64 // rows on each
	missing, differ int64 // source rows absent from the target, or different there
	first           string
}

// verify streams the day's rows of both databases in key order, each with
// an md5 of its whole row text, and checks that every source row is on
// the target with the same md5. The target may hold more (what writers
// sent it after the switch).
func verify(ctx context.Context, src, dst daydb.DB, day string) (verified, error) {
	var v verified
	table := pgx.Identifier{pgheartbeats.PartitionName(day)}.Sanitize()
	// COLLATE "C": the order Go compares strings in, whatever the
	// databases' collation.
	query := `SELECT user_id::text, id COLLATE "C", md5(t::text) FROM ` + table + ` t ORDER BY user_id, id COLLATE "C"`
	s, endS, err := canonicalQuery(ctx, src.Pool, query)
	if err != nil {
		return v, fmt.Errorf("daymove: verify: read %s on %s: %w", table, src.Name, err)
	}
	defer endS()
	d, endD, err := canonicalQuery(ctx, dst.Pool, query)
	if err != nil {
		return v, fmt.Errorf("daymove: verify: read %s on %s: %w", table, dst.Name, err)
	}
	defer endD()
	var su, si, sh, du, di, dh string
	more := func(rows pgx.Rows, u, i, h *string, n *int64) (bool, error) {
		if !rows.Next() {
			return false, rows.Err()
		}
		*n++
		return true, rows.Scan(u, i, h)
	}
	dok, err := more(d, &du, &di, &dh, &v.target)
	for err == nil {
		var sok bool
		if sok, err = more(s, &su, &si, &sh, &v.source); err != nil || !sok {
			break
		}
		for dok && err == nil && (du < su || du == su && di < si) {
			dok, err = more(d, &du, &di, &dh, &v.target)
		}
		if err != nil {
			break
		}
		switch {
		case !dok || du != su || di != si:
			v.missing++
			if v.first == "" {
				v.first = fmt.Sprintf("user %s heartbeat %s missing", su, si)
			}
		case dh != sh:
			v.differ++
			if v.first == "" {
				v.first = fmt.Sprintf("user %s heartbeat %s differs", su, si)
			}
		}
	}
	for err == nil && dok {
		dok, err = more(d, &du, &di, &dh, &v.target)
	}
	if err != nil {
		return v, fmt.Errorf("daymove: verify %s: %w", table, err)
	}
	return v, nil
}

// shardState reads a shard key's state as the janitor does: a value that
// does not decode counts as draining.
func shardState(value []byte) streams.ShardState {
	var s streams.Shard
	if err := json.Unmarshal(value, &s); err != nil || s.State == "" {
		return streams.ShardDraining
	}
	return s.State
}

// lockTimedOut reports a statement that gave up waiting for a lock.
func lockTimedOut(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.LockNotAvailable
}
