package users

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// Mirror is the users bucket: a copy of the users table in JetStream KV,
// one record per user under the hex SHA-256 of its API key, so that ingest
// authenticates with NATS alone (DESIGN.md invariant 7). Postgres stays
// the source of truth.
//
// The contract:
//   - Every Store write (Create, Update, RotateKey, Delete) writes the
//     bucket inside its Postgres transaction, before the commit. If the
//     bucket write fails, the transaction is rolled back and the caller gets
//     the error: a user is never committed without its record. If the
//     commit fails after the bucket write, the bucket is put back as it was
//     (best effort; Sync repairs what that cannot).
//   - Sync makes the bucket equal to the table: it writes every user whose
//     record is missing or differs, and deletes every key that is no
//     user's. serve, process and dev run it at start, so a bucket lost,
//     emptied or created later converges; `heartlog users sync` runs it by
//     hand.
//   - Writes and Sync exclude each other by a Postgres advisory lock
//     (writes share it, Sync takes it alone), so Sync never overwrites a
//     newer record with the older one it read, nor deletes the record of a
//     user created while it ran. A user's row lock orders writes to one
//     user, so the bucket sees them in commit order.
//   - The bucket never holds an API key in clear: only its hash, as the
//     table does.
type Mirror struct{ kv jetstream.KeyValue }

// NewMirror writes to the users bucket kv (streams.Ensure creates it).
func NewMirror(kv jetstream.KeyValue) *Mirror { return &Mirror{kv: kv} }

// OpenMirror opens the named users bucket.
func OpenMirror(ctx context.Context, js jetstream.JetStream, bucket string) (*Mirror, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("users: open KV bucket %s: %w", bucket, err)
	}
	return NewMirror(kv), nil
}

func (m *Mirror) put(ctx context.Context, h KeyHash, u User) error {
	if _, err := m.kv.Put(ctx, h.String(), encodeRecord(u)); err != nil {
		return fmt.Errorf("users: write the user's record to KV bucket %s: %w", m.kv.Bucket(), err)
	}
	return nil
}

func (m *Mirror) remove(ctx context.Context, h KeyHash) error {
	if err := m.kv.Delete(ctx, h.String()); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("users: delete a record from KV bucket %s: %w", m.kv.Bucket(), err)
	}
	return nil
}

// snapshot reads every current value of the bucket in one pass.
func (m *Mirror) snapshot(ctx context.Context) (map[string][]byte, error) {
	w, err := m.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("users: read KV bucket %s: %w", m.kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	have := map[string][]byte{}
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return have, nil
			}
			have[e.Key()] = e.Value()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// mirrorLock is the advisory lock between Store writes and Sync
// ("heartusr" in ASCII; migrations use another).
const mirrorLock = 0x6865617274757372

// Synced counts what a Sync changed.
type Synced struct {
	Written, Deleted, Unchanged int
}

// syncParallel bounds the bucket writes of a Sync in flight: an empty
// bucket of many users fills in seconds, not one fsync after another.
const syncParallel = 16

// Sync makes the users bucket equal to the users table (see Mirror). It
// needs both Postgres and NATS, and blocks Store writes while it runs.
func (s *Store) Sync(ctx context.Context) (Synced, error) {
	var out Synced
	if s.mirror == nil {
		return out, ErrNoMirror
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return out, fmt.Errorf("users: sync: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(mirrorLock)); err != nil {
		return out, fmt.Errorf("users: sync: lock: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT "+columns+", api_key_hash FROM users")
	if err != nil {
		return out, fmt.Errorf("users: sync: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (current, error) { return scanCurrent(r) })
	if err != nil {
		return out, fmt.Errorf("users: sync: %w", err)
	}
	dead, err := tombstones(ctx, tx)
	if err != nil {
		return out, err
	}
	have, err := s.mirror.snapshot(ctx)
	if err != nil {
		return out, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(syncParallel)
	// keep leaves key as it is if it holds want, else writes it with put.
	keep := func(key string, want []byte, put func() error) {
		old, ok := have[key]
		delete(have, key)
		if ok && bytes.Equal(old, want) {
			out.Unchanged++
			return
		}
		out.Written++
		g.Go(put)
	}
	for _, t := range dead {
		keep(tombstoneKey(t.ID), encodeTombstone(t), func() error { return s.mirror.putTombstone(gctx, t) })
	}
	for _, c := range all {
		keep(c.hash.String(), encodeRecord(c.User), func() error { return s.mirror.put(gctx, c.hash, c.User) })
	}
	for key := range have {
		out.Deleted++
		g.Go(func() error {
			if err := s.mirror.kv.Delete(gctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("users: sync: delete %s: %w", key, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return out, err
	}
	return out, tx.Commit(ctx)
}
