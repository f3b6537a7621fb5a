package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/nats-io/nats.go/jetstream"
)

// Tombstone is the record of a deleted user: the users row is gone, and
// every sink, replay, compaction, restore and rebuild drops the user's
// heartbeats and files for good (the stream still holds them for weeks and
// cannot be edited per user). It is kept in Postgres (user_tombstones) and
// mirrored into the users bucket, so that processes without Postgres see
// it too (Directory.Deleted).
type Tombstone struct {
	ID           string
	ObjectPrefix string    // the user's day-file prefix
	FirstDay     time.Time // the user's first day with a heartbeat; zero if none
	DeletedAt    time.Time
	// FinishedAt is when a delete last emptied every store, PurgedAt when
	// it removed the backup's versions too; zero: not yet.
	FinishedAt, PurgedAt time.Time
}

// tombstonePrefix starts the keys of tombstones in the users bucket
// (records are keyed by a hex hash, which never has a dot).
const tombstonePrefix = "deleted."

func tombstoneKey(id string) string { return tombstonePrefix + id }

// parseTombstoneKey returns the user id of a tombstone's key.
func parseTombstoneKey(key string) (string, bool) {
	return strings.CutPrefix(key, tombstonePrefix)
}

// tombstoneRecord is a tombstone as the users bucket holds it.
type tombstoneRecord struct {
	ID        string    `json:"id"`
	DeletedAt time.Time `json:"deleted_at"`
}

func encodeTombstone(t Tombstone) []byte {
	data, err := json.Marshal(tombstoneRecord{ID: t.ID, DeletedAt: t.DeletedAt.UTC()})
	if err != nil {
		panic(err) // a string and a time always encode
	}
	return data
}

// putTombstone writes t into the bucket.
func (m *Mirror) putTombstone(ctx context.Context, t Tombstone) error {
	if _, err := m.kv.Put(ctx, tombstoneKey(t.ID), encodeTombstone(t)); err != nil {
		return fmt.Errorf("users: write the tombstone of %s to KV bucket %s: %w", t.ID, m.kv.Bucket(), err)
	}
	return nil
}

func (m *Mirror) removeTombstone(ctx context.Context, id string) error {
	if err := m.kv.Delete(ctx, tombstoneKey(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("users: delete the tombstone of %s from KV bucket %s: %w", id, m.kv.Bucket(), err)
	}
	return nil
}

// Tombstone deletes the user id: it records the user's tombstone, in the
// users bucket first and then in Postgres with the removal of the users
// row, in one transaction. When it returns, the key no longer
// authenticates and every process that watches the bucket drops the
// user's heartbeats (after the moment a watch takes to see it). The user's
// data is still in the stores: package erasure removes it.
//
// For a user already tombstoned it returns the tombstone (written into the
// bucket again, in case it was lost), so that an interrupted delete can be
// run again; for an id that is neither a user nor tombstoned, ErrNotFound.
func (s *Store) Tombstone(ctx context.Context, id string) (Tombstone, error) {
	if s.mirror == nil {
		return Tombstone{}, ErrNoMirror
	}
	t, err := s.TombstoneOf(ctx, id)
	if err == nil {
		return t, s.mirror.putTombstone(ctx, t)
	}
	if !errors.Is(err, ErrNotFound) {
		return Tombstone{}, err
	}
	written := false
	err = s.write(ctx, id, func(tx pgx.Tx, old *current) (*current, error) {
		t = Tombstone{ID: old.ID, ObjectPrefix: old.ObjectPrefix, FirstDay: old.FirstDay}
		var first pgtype.Date
		if !old.FirstDay.IsZero() {
			first = pgtype.Date{Time: old.FirstDay, Valid: true}
		}
		if err := tx.QueryRow(ctx, `INSERT INTO user_tombstones (user_id, object_prefix, first_day) VALUES ($1, $2, $3)
			RETURNING deleted_at`, old.ID, old.ObjectPrefix, first).Scan(&t.DeletedAt); err != nil {
			return nil, fmt.Errorf("users: record the tombstone: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM users WHERE id = $1", id); err != nil {
			return nil, fmt.Errorf("users: delete: %w", err)
		}
		// Before the key's record goes (write removes it next): no moment
		// where the user is gone but its heartbeats are still taken.
		if err := s.mirror.putTombstone(ctx, t); err != nil {
			return nil, err
		}
		written = true
		return nil, nil
	})
	if err != nil && written {
		// The transaction did not commit: the user exists, so its tombstone
		// must not drop its heartbeats. Sync removes it if this fails.
		_ = s.mirror.removeTombstone(context.WithoutCancel(ctx), id)
	}
	return t, err
}

// TombstoneOf returns the tombstone of id, or ErrNotFound.
func (s *Store) TombstoneOf(ctx context.Context, id string) (Tombstone, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Tombstone{}, ErrNotFound
	}
	var (
		t                Tombstone
		first            pgtype.Date
		finished, purged pgtype.Timestamptz
	)
	err := s.pool.QueryRow(ctx, `SELECT user_id::text, object_prefix, first_day, deleted_at, finished_at, purged_at
		FROM user_tombstones WHERE user_id = $1`, id).Scan(&t.ID, &t.ObjectPrefix, &first, &t.DeletedAt, &finished, &purged)
	if errors.Is(err, pgx.ErrNoRows) {
		return Tombstone{}, ErrNotFound
	}
	if err != nil {
		return Tombstone{}, fmt.Errorf("users: read the tombstone of %s: %w", id, err)
	}
	t.FirstDay, t.FinishedAt, t.PurgedAt = first.Time, finished.Time, purged.Time
	return t, nil
}

// FinishTombstone records that a delete emptied every store of the user
// (and, with purged, the backup's versions).
func (s *Store) FinishTombstone(ctx context.Context, id string, purged bool) error {
	_, err := s.pool.Exec(ctx, `UPDATE user_tombstones SET finished_at = now(),
		purged_at = CASE WHEN $2 THEN now() ELSE purged_at END WHERE user_id = $1`, id, purged)
	if err != nil {
		return fmt.Errorf("users: record the end of the delete of %s: %w", id, err)
	}
	return nil
}

// tombstones reads every tombstone id in tx (for Sync).
func tombstones(ctx context.Context, tx pgx.Tx) ([]Tombstone, error) {
	rows, err := tx.Query(ctx, "SELECT user_id::text, deleted_at FROM user_tombstones")
	if err != nil {
		return nil, fmt.Errorf("users: sync: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tombstone, error) {
		var t Tombstone
		return t, r.Scan(&t.ID, &t.DeletedAt)
	})
}

// DeletedIDs returns the ids of every tombstoned user, for the commands
// that run without the users bucket (restore, backup verify).
func (s *Store) DeletedIDs(ctx context.Context) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, "SELECT user_id::text FROM user_tombstones")
	if err != nil {
		return nil, fmt.Errorf("users: read the tombstones: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("users: read the tombstones: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}
