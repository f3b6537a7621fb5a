package users

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound means no user has that id or key.
var ErrNotFound = errors.New("users: no such user")

// ErrKeyTaken means another user already has that API key.
var ErrKeyTaken = errors.New("users: that API key belongs to another user")

// ErrNoMirror is the error of a write to a Store made without a Mirror: a
// user written to Postgres alone could not ingest.
var ErrNoMirror = errors.New("users: this store has no users bucket to mirror writes to")

// User is one account. It never carries the API key.
type User struct {
	ID             string
	Name           string
	ObjectPrefix   string
	TimeZone       string
	TimeoutMinutes int
	CreatedAt      time.Time
	// FirstDay is midnight UTC of the day of the user's earliest heartbeat,
	// zero before the first one is stored. Only Store reads it; records in
	// the users bucket leave it zero.
	FirstDay time.Time
	// Limits are the user's own limits (zero: the server's).
	Limits Limits
}

// Store reads and writes users in Postgres, the source of truth, and
// mirrors every write into the users bucket (see Mirror).
type Store struct {
	pool   *pgxpool.Pool
	mirror *Mirror
}

// NewStore uses a pool whose database has the migrations applied, and
// mirrors writes into m. With a nil m the store only reads: its writes
// fail with ErrNoMirror.
func NewStore(pool *pgxpool.Pool, m *Mirror) *Store { return &Store{pool: pool, mirror: m} }

// NewUser describes an account to create.
type NewUser struct {
	Name     string
	TimeZone string // IANA name; default UTC
	// APIKey to import (a UUID v4, e.g. the key a user already has in their
	// ~/.wakatime.cfg); empty for a fresh one.
	APIKey string
}

// Create adds a user and returns it with its API key, the only time the
// key is seen in clear. When it returns, the user can ingest, with or
// without Postgres.
func (s *Store) Create(ctx context.Context, n NewUser) (User, string, error) {
	if n.Name == "" {
		return User{}, "", errors.New("users: name is required")
	}
	if n.TimeZone == "" {
		n.TimeZone = "UTC"
	}
	if err := CheckTimeZone(n.TimeZone); err != nil {
		return User{}, "", err
	}
	key := n.APIKey
	if key == "" {
		key = NewKey()
	}
	hash, err := HashKey(key)
	if err != nil {
		return User{}, "", err
	}
	c := current{User: User{ID: uuid.NewString(), Name: n.Name, ObjectPrefix: newObjectPrefix(), TimeZone: n.TimeZone, TimeoutMinutes: 15}, hash: hash}
	err = s.write(ctx, "", func(tx pgx.Tx, _ *current) (*current, error) {
		err := tx.QueryRow(ctx, `INSERT INTO users (id, name, api_key_hash, object_prefix, time_zone)
			VALUES ($1, $2, $3, $4, $5) RETURNING created_at`,
			c.ID, c.Name, hash[:], c.ObjectPrefix, c.TimeZone).Scan(&c.CreatedAt)
		if isUniqueViolation(err) {
			return nil, ErrKeyTaken
		}
		if err != nil {
			return nil, fmt.Errorf("users: create: %w", err)
		}
		return &c, nil
	})
	if err != nil {
		return User{}, "", err
	}
	return c.User, key, nil
}

// Change is an edit of a user; nil fields stay as they are.
type Change struct {
	Name           *string
	TimeZone       *string // IANA name
	TimeoutMinutes *int    // 1 to 60
}

// Update applies c to the user and returns the result.
func (s *Store) Update(ctx context.Context, id string, c Change) (User, error) {
	if c.TimeZone != nil {
		if err := CheckTimeZone(*c.TimeZone); err != nil {
			return User{}, err
		}
	}
	if c.Name != nil && *c.Name == "" {
		return User{}, errors.New("users: name must not be empty")
	}
	if c.TimeoutMinutes != nil && (*c.TimeoutMinutes < 1 || *c.TimeoutMinutes > 60) {
		return User{}, errors.New("users: timeout must be 1 to 60 minutes")
	}
	var out User
	err := s.write(ctx, id, func(tx pgx.Tx, old *current) (*current, error) {
		n := *old
		if c.Name != nil {
			n.Name = *c.Name
		}
		if c.TimeZone != nil {
			n.TimeZone = *c.TimeZone
		}
		if c.TimeoutMinutes != nil {
			n.TimeoutMinutes = *c.TimeoutMinutes
		}
		if _, err := tx.Exec(ctx, "UPDATE users SET name = $2, time_zone = $3, timeout_minutes = $4 WHERE id = $1",
			id, n.Name, n.TimeZone, n.TimeoutMinutes); err != nil {
			return nil, fmt.Errorf("users: update: %w", err)
		}
		out = n.User
		return &n, nil
	})
	return out, err
}

// RotateKey gives the user a new API key (key, or a fresh one if empty)
// and returns it; the old key stops working.
func (s *Store) RotateKey(ctx context.Context, id, key string) (string, error) {
	if key == "" {
		key = NewKey()
	}
	hash, err := HashKey(key)
	if err != nil {
		return "", err
	}
	err = s.write(ctx, id, func(tx pgx.Tx, old *current) (*current, error) {
		_, err := tx.Exec(ctx, "UPDATE users SET api_key_hash = $2 WHERE id = $1", id, hash[:])
		if isUniqueViolation(err) {
			return nil, ErrKeyTaken
		}
		if err != nil {
			return nil, fmt.Errorf("users: rotate key: %w", err)
		}
		n := *old
		n.hash = hash
		return &n, nil
	})
	if err != nil {
		return "", err
	}
	return key, nil
}

// Delete removes the user; its key stops working. Its heartbeats stay, and
// the stream would still feed them to every sink: `heartlog users delete`
// uses Tombstone instead, which also keeps them from coming back.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.write(ctx, id, func(tx pgx.Tx, _ *current) (*current, error) {
		if _, err := tx.Exec(ctx, "DELETE FROM users WHERE id = $1", id); err != nil {
			return nil, fmt.Errorf("users: delete: %w", err)
		}
		return nil, nil
	})
}

// current is a user row with its key hash, which only this package sees.
type current struct {
	User
	hash KeyHash
}

// write runs change in a transaction under the mirror's shared lock and,
// for an existing user (id not empty), that user's row lock; old is the
// row before the change, and change returns the row after it (nil:
// deleted). The bucket is written before the commit (see Mirror).
func (s *Store) write(ctx context.Context, id string, change func(tx pgx.Tx, old *current) (*current, error)) error {
	if s.mirror == nil {
		return ErrNoMirror
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", int64(mirrorLock)); err != nil {
		return fmt.Errorf("users: lock: %w", err)
	}
	var old *current
	if id != "" {
		if _, err := uuid.Parse(id); err != nil {
			return ErrNotFound
		}
		c, err := scanCurrent(tx.QueryRow(ctx, "SELECT "+columns+", api_key_hash FROM users WHERE id = $1 FOR UPDATE", id))
		if err != nil {
			return err
		}
		old = &c
	}
	next, err := change(tx, old)
	if err != nil {
		return err
	}
	if err := s.mirrorChange(ctx, old, next); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		// Put the bucket back as the table is. If the commit did happen
		// after all (the connection broke in the middle), Sync repairs it.
		if undo := s.mirrorChange(context.WithoutCancel(ctx), next, old); undo != nil {
			return fmt.Errorf("users: commit: %w (and the users bucket could not be put back: %v; `heartlog users sync` repairs it)", err, undo)
		}
		return fmt.Errorf("users: commit: %w", err)
	}
	return nil
}

// mirrorChange writes the bucket from state old to state next (nil: no
// user): the new record first, then the old key's removal, so that a
// failure between them leaves the user able to ingest.
func (s *Store) mirrorChange(ctx context.Context, old, next *current) error {
	if next != nil {
		if err := s.mirror.put(ctx, next.hash, next.User); err != nil {
			return err
		}
	}
	if old != nil && (next == nil || next.hash != old.hash) {
		return s.mirror.remove(ctx, old.hash)
	}
	return nil
}

// CheckTimeZone accepts IANA names only: time.LoadLocation also takes ""
// (UTC) and "Local" (the server's own zone, which would move the user's
// days with the machine the API happens to run on). Create and Update
// apply it; callers that owe a user a message of their own call it first.
func CheckTimeZone(tz string) error {
	if tz == "" || tz == "Local" {
		return fmt.Errorf("users: %q is not an IANA time zone", tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("users: unknown time zone %q", tz)
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

const columns = "id::text, name, object_prefix, time_zone, timeout_minutes, created_at, first_day"

func scan(row pgx.Row, extra ...any) (User, error) {
	var u User
	var first pgtype.Date
	err := row.Scan(append([]any{&u.ID, &u.Name, &u.ObjectPrefix, &u.TimeZone, &u.TimeoutMinutes, &u.CreatedAt, &first}, extra...)...)
	if first.Valid {
		u.FirstDay = first.Time
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, err
}

// scanCurrent reads columns followed by api_key_hash.
func scanCurrent(row pgx.Row) (current, error) {
	var hash []byte
	u, err := scan(row, &hash)
	if err != nil {
		return current{}, err
	}
	c := current{User: u}
	if copy(c.hash[:], hash) != len(c.hash) {
		return current{}, errors.New("users: a stored key hash is not 32 bytes")
	}
	return c, nil
}

// ByID finds a user by id.
func (s *Store) ByID(ctx context.Context, id string) (User, error) {
	if _, err := uuid.Parse(id); err != nil {
		return User{}, ErrNotFound
	}
	return scan(s.pool.QueryRow(ctx, "SELECT "+columns+" FROM users WHERE id = $1", id))
}

// List returns every user, oldest first.
func (s *Store) List(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+columns+" FROM users ORDER BY created_at, id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scan(r) })
}
