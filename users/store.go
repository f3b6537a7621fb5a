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

// User is one account. It never carries the API key.
type User struct {
	ID             string
	Name           string
	ObjectPrefix   string
	TimeZone       string
	TimeoutMinutes int
	CreatedAt      time.Time
	// FirstDay is midnight UTC of the day of the user's earliest heartbeat,
	// zero before the first one is stored.
	FirstDay time.Time
}

// Store reads and writes users in Postgres.
type Store struct{ pool *pgxpool.Pool }

// NewStore uses a pool whose database has the migrations applied.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// NewUser describes an account to create.
type NewUser struct {
	Name     string
	TimeZone string // IANA name; default UTC
	// APIKey to import (a UUID v4, e.g. the key a user already has in their
	// ~/.wakatime.cfg); empty for a fresh one.
	APIKey string
}

// Create adds a user and returns it with its API key, the only time the
// key is seen in clear.
func (s *Store) Create(ctx context.Context, n NewUser) (User, string, error) {
	if n.Name == "" {
		return User{}, "", errors.New("users: name is required")
	}
	if n.TimeZone == "" {
		n.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(n.TimeZone); err != nil {
		return User{}, "", fmt.Errorf("users: unknown time zone %q", n.TimeZone)
	}
	key := n.APIKey
	if key == "" {
		key = NewKey()
	}
	hash, err := HashKey(key)
	if err != nil {
		return User{}, "", err
	}
	u := User{ID: uuid.NewString(), Name: n.Name, ObjectPrefix: newObjectPrefix(), TimeZone: n.TimeZone, TimeoutMinutes: 15}
	err = s.pool.QueryRow(ctx, `INSERT INTO users (id, name, api_key_hash, object_prefix, time_zone)
		VALUES ($1, $2, $3, $4, $5) RETURNING created_at`,
		u.ID, u.Name, hash[:], u.ObjectPrefix, u.TimeZone).Scan(&u.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return User{}, "", ErrKeyTaken
	}
	if err != nil {
		return User{}, "", fmt.Errorf("users: create: %w", err)
	}
	return u, key, nil
}

const columns = "id::text, name, object_prefix, time_zone, timeout_minutes, created_at, first_day"

func scan(row pgx.Row) (User, error) {
	var u User
	var first pgtype.Date
	err := row.Scan(&u.ID, &u.Name, &u.ObjectPrefix, &u.TimeZone, &u.TimeoutMinutes, &u.CreatedAt, &first)
	if first.Valid {
		u.FirstDay = first.Time
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, err
}

// ByKey finds the owner of an API key hash.
func (s *Store) ByKey(ctx context.Context, hash KeyHash) (User, error) {
	return scan(s.pool.QueryRow(ctx, "SELECT "+columns+" FROM users WHERE api_key_hash = $1", hash[:]))
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
