package pgheartbeats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// FenceConstraint is the CHECK constraint that Fence adds to a day's
// partition on the database a day was moved away from.
const FenceConstraint = "heartbeats_moved"

// ErrMoved matches, with errors.Is, a write refused because the day's
// partition on that database is fenced: the day now lives on another
// database, and the writer must look its placement up again.
var ErrMoved = errors.New("pgheartbeats: day moved to another database")

// MovedError is a write that hit a fenced partition.
type MovedError struct {
	Day string // YYYYMMDD; empty if Postgres did not name the partition
	Err error
}

func (e *MovedError) Error() string {
	if e.Day == "" {
		return fmt.Sprintf("pgheartbeats: a day moved to another database: %v", e.Err)
	}
	return fmt.Sprintf("pgheartbeats: day %s moved to another database: %v", e.Day, e.Err)
}

func (e *MovedError) Unwrap() error        { return e.Err }
func (e *MovedError) Is(target error) bool { return target == ErrMoved }

// Moved returns err as a *MovedError if it is Postgres refusing a row
// because of the fence (SQLSTATE 23514 naming FenceConstraint), else nil.
func Moved(err error) *MovedError {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.CheckViolation || pgErr.ConstraintName != FenceConstraint {
		return nil
	}
	m := &MovedError{Err: err}
	if sub := partitionDay.FindStringSubmatch(pgErr.TableName); sub != nil {
		m.Day = sub[1]
	}
	return m
}

// Fence makes the day's table refuse every new row, without touching the
// rows it holds: CHECK (false) NOT VALID is enforced on inserts only. The
// table stays, so CreatePartition on this database remains a no-op and no
// writer can bring the day back here. It is a no-op on a table fenced
// already, and an error if the day has no table. The ALTER waits for the
// writes in flight on the table and blocks new ones meanwhile; lockTimeout
// bounds that wait (a long reader ahead of it would otherwise make every
// write queue behind it), and the caller retries.
func Fence(ctx context.Context, pool *pgxpool.Pool, day string, lockTimeout time.Duration) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", max(lockTimeout.Milliseconds(), 1))); err != nil {
			return err
		}
		var fenced bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2)`,
			PartitionName(day), FenceConstraint).Scan(&fenced); err != nil || fenced {
			return err
		}
		_, err := tx.Exec(ctx, "ALTER TABLE "+sanitized(day)+" ADD CONSTRAINT "+FenceConstraint+" CHECK (false) NOT VALID")
		return err
	})
	if err != nil {
		return fmt.Errorf("pgheartbeats: fence %s: %w", PartitionName(day), err)
	}
	return nil
}

// Fenced reports whether the day's table exists and is fenced.
func Fenced(ctx context.Context, pool *pgxpool.Pool, day string) (bool, error) {
	var yes bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
		WHERE r.relname = $1 AND r.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'heartbeats'::regclass)
		  AND c.conname = $2)`, PartitionName(day), FenceConstraint).Scan(&yes)
	if err != nil {
		return false, fmt.Errorf("pgheartbeats: look for the fence of %s: %w", PartitionName(day), err)
	}
	return yes, nil
}
