// Package daydb holds the set of Postgres databases that the day
// partitions of heartbeats live on, and the placement of each UTC day on
// one of them, recorded in the catalog database (day_placements).
//
// A day is placed when its first heartbeat is written (Set.For) and then
// never moves by itself: only `heartlog shards move` changes a placement.
// Reads look placements up (Set.Lookup) and never place. A Set remembers a
// placement for at most its cache TTL (DefaultCacheTTL), so every process
// sees a move within that time without being told; the move waits twice
// the TTL before it fences and drops the old copy. The package must never move, copy or delete heartbeats, and
// never place a day on a read: a read of a day nobody wrote must not claim
// a database for it.
package daydb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"heartlog/heartbeat"
	"heartlog/pgheartbeats"
)

// DB is one database that holds day partitions.
type DB struct {
	// Name identifies the database in day_placements: host:port/dbname,
	// without user or password, so that a new password or a longer list
	// of shard URLs leaves every placement valid.
	Name string
	Pool *pgxpool.Pool
}

// ErrUnknownDatabase is Lookup's and For's answer for a day placed on a
// database that this process was not given (a shard URL removed from the
// list while it still holds days).
var ErrUnknownDatabase = errors.New("daydb: day placed on a database not in HEARTLOG_POSTGRES_SHARD_URLS")

// ErrNotReady is For's answer for a new day when no database that takes
// new days is ready (SetReady): none can take it yet.
var ErrNotReady = errors.New("daydb: no database that takes new days is migrated yet")

// ErrBadDay is the answer for a day that is not YYYYMMDD.
var ErrBadDay = errors.New("daydb: bad day")

// Window is how far back the placement rule counts a database's days.
//
// The rule is least-loaded: a new day goes to the database with the fewest
// days placed within Window of it (ties to the first in the list).
// Days only live in Postgres for the shard grace period, so recent days are
// what fills a database's disk; counting them makes a database added to
// the list take the new days until it holds its share, then the databases
// alternate. Round-robin over the list would give a new database only 1/N
// of the new days while the old ones stay full, and counting every day ever
// placed would send a new database all new days for as long as the old
// ones have existed.
const Window = 30 * 24 * time.Hour

// Set is the databases and the placement of days on them. It is safe for
// concurrent use.
type Set struct {
	catalog *pgxpool.Pool
	takers  []DB          // the databases that take new days, in list order
	byName  map[string]DB // every database a placement may name

	mu         sync.Mutex
	registered bool
	placed     map[string]cachedDB // day (YYYYMMDD) -> database, as recorded
	ttl        time.Duration
	unready    map[string]bool // databases not migrated yet (SetReady)
}

// DefaultCacheTTL is how long a Set uses a placement it read from the
// catalog before it reads it again (HEARTLOG_PLACEMENT_TTL's default).
// The cost is one catalog query per day and TTL in each process; what it
// buys is that a moved day is seen everywhere within the TTL.
const DefaultCacheTTL = 10 * time.Second

// cachedDB is a remembered placement and when it stops being used.
type cachedDB struct {
	db      DB
	expires time.Time
}

// New returns the set over catalog and the shard databases. Without
// shards, the catalog holds the day partitions itself. With shards, the
// catalog still answers for days placed on it before the shards were
// configured. Two shards with the same name (the same database twice in
// the list) are an error. It does not connect.
func New(catalog *pgxpool.Pool, shards ...*pgxpool.Pool) (*Set, error) {
	s := &Set{catalog: catalog, byName: map[string]DB{}, placed: map[string]cachedDB{}, ttl: DefaultCacheTTL}
	cat := DB{Name: NameOf(catalog), Pool: catalog}
	s.byName[cat.Name] = cat
	if len(shards) == 0 {
		s.takers = []DB{cat}
	}
	for i, p := range shards {
		db := DB{Name: NameOf(p), Pool: p}
		for _, t := range s.takers {
			if t.Name == db.Name {
				return nil, fmt.Errorf("daydb: shard %d is %s again", i+1, db.Name)
			}
		}
		s.takers = append(s.takers, db)
		s.byName[db.Name] = db
	}
	return s, nil
}

// One is the set of a single database that is catalog and shard at once:
// heartlog without HEARTLOG_POSTGRES_SHARD_URLS, and tools that load one
// database.
func One(pool *pgxpool.Pool) *Set {
	s, _ := New(pool) // New fails only for two shards of one name
	return s
}

// NameOf is a pool's database name: host:port/dbname.
func NameOf(p *pgxpool.Pool) string {
	c := p.Config().ConnConfig
	return c.Host + ":" + strconv.Itoa(int(c.Port)) + "/" + c.Database
}

// SetCacheTTL sets how long a placement read from the catalog is used
// before it is read again (default DefaultCacheTTL); zero or less reads
// the catalog every time. Call it before the Set is used.
func (s *Set) SetCacheTTL(ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = ttl
}

// CacheTTL is how long a placement is remembered.
func (s *Set) CacheTTL() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ttl
}

// Catalog is the catalog database's pool (users, placements).
func (s *Set) Catalog() *pgxpool.Pool { return s.catalog }

// All is every database that takes new days, in the order of the list: what
// the janitor, /readyz and the metrics go over. A database that holds only
// old days (the catalog once shards are configured) is reachable through
// Lookup.
func (s *Set) All() []DB { return append([]DB(nil), s.takers...) }

// Sharded reports whether the day partitions live apart from the catalog.
func (s *Set) Sharded() bool { return len(s.takers) != 1 || s.takers[0].Pool != s.catalog }

// For returns the database of day (YYYYMMDD), placing the day on one if it
// has none yet: the write path. Concurrent callers, in this process or
// others, agree: the first recorded placement wins.
func (s *Set) For(ctx context.Context, day string) (DB, error) {
	if db, ok := s.cached(day); ok {
		return db, nil
	}
	d, err := parseDay(day)
	if err != nil {
		return DB{}, err
	}
	if err := s.register(ctx); err != nil {
		return DB{}, err
	}
	var names []string
	for _, t := range s.takers {
		if s.Ready(t.Name) {
			names = append(names, t.Name)
		}
	}
	if len(names) == 0 {
		return DB{}, fmt.Errorf("place %s: %w", day, ErrNotReady)
	}
	var name string
	asked := time.Now()
	err = s.catalog.QueryRow(ctx, `
		WITH pick AS (
			SELECT n.name FROM unnest($2::text[]) WITH ORDINALITY AS n(name, ord)
			LEFT JOIN day_placements p ON p.database = n.name AND p.day > $1::date - $3::int AND p.day <= $1::date + $3::int
			GROUP BY n.name, n.ord ORDER BY count(p.day), n.ord LIMIT 1)
		INSERT INTO day_placements (day, database) SELECT $1, name FROM pick
		ON CONFLICT (day) DO NOTHING RETURNING database`, d, names, int(Window.Hours()/24)).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		// Placed by someone else meanwhile: a new statement sees their row.
		err = s.catalog.QueryRow(ctx, `SELECT database FROM day_placements WHERE day = $1`, d).Scan(&name)
	}
	if err != nil {
		return DB{}, fmt.Errorf("daydb: place %s: %w", day, err)
	}
	return s.remember(day, name, asked)
}

// Lookup returns the databases of the days that are placed; a day with no
// placement is absent from the map (nothing was ever written for it, or
// its heartbeats went to the day files alone). It never places. A day
// placed on a database this set does not have is an error that names the
// database and wraps ErrUnknownDatabase.
func (s *Set) Lookup(ctx context.Context, days []string) (map[string]DB, error) {
	out := make(map[string]DB, len(days))
	var ask []time.Time
	for _, day := range days {
		if db, ok := s.cached(day); ok {
			out[day] = db
			continue
		}
		d, err := parseDay(day)
		if err != nil {
			return nil, err
		}
		ask = append(ask, d)
	}
	if len(ask) == 0 {
		return out, nil
	}
	asked := time.Now()
	rows, err := s.catalog.Query(ctx, `SELECT day, database FROM day_placements WHERE day = ANY($1)`, ask)
	if err != nil {
		return nil, fmt.Errorf("daydb: look up placements: %w", err)
	}
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Placement])
	if err != nil {
		return nil, fmt.Errorf("daydb: look up placements: %w", err)
	}
	for _, p := range ps {
		day := p.Day.Format(heartbeat.DayLayout)
		db, err := s.remember(day, p.Database, asked)
		if err != nil {
			return nil, err
		}
		out[day] = db
	}
	return out, nil
}

// Placement is one row of day_placements.
type Placement struct {
	Day      time.Time // the UTC day, at midnight
	Database string    // a DB.Name
}

// Placements lists every placed day, oldest first.
func (s *Set) Placements(ctx context.Context) ([]Placement, error) {
	rows, err := s.catalog.Query(ctx, `SELECT day, database FROM day_placements ORDER BY day`)
	if err != nil {
		return nil, fmt.Errorf("daydb: list placements: %w", err)
	}
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Placement])
	if err != nil {
		return nil, fmt.Errorf("daydb: list placements: %w", err)
	}
	return ps, nil
}

// SetReady records whether the database of that name has its migrations
// applied. Every database is ready until told otherwise: a process marks
// one not ready when it could not migrate it at start (down), and ready
// once it did. For places no new day on a database that is not ready;
// days placed there already stay there, and their writers and readers ask
// Ready before they go to it.
func (s *Set) SetReady(name string, ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unready == nil {
		s.unready = map[string]bool{}
	}
	if ready {
		delete(s.unready, name)
	} else {
		s.unready[name] = true
	}
}

// Ready reports whether the database of that name is ready (SetReady).
func (s *Set) Ready(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.unready[name]
}

// Database returns the database of that name, if the set has it.
func (s *Set) Database(name string) (DB, bool) {
	db, ok := s.byName[name]
	return db, ok
}

// Forget drops the remembered placements of days, or of every day when
// none is given, so that the next For or Lookup reads the catalog again:
// what the Postgres processor calls when a write finds a day moved away.
// Other processes forget on their own within the cache TTL.
func (s *Set) Forget(days ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(days) == 0 {
		clear(s.placed)
		return
	}
	for _, d := range days {
		delete(s.placed, d)
	}
}

func (s *Set) cached(day string) (DB, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.placed[day]
	if !ok || !time.Now().Before(c.expires) {
		return DB{}, false
	}
	return c.db, true
}

func (s *Set) remember(day, name string, asked time.Time) (DB, error) {
	db, ok := s.byName[name]
	if !ok {
		return DB{}, fmt.Errorf("%w: day %s is on %s", ErrUnknownDatabase, day, name)
	}
	s.mu.Lock()
	if s.ttl > 0 {
		// The TTL counts from before the catalog was asked: a slow answer
		// must not make a placement outlive a move by the query's time.
		s.placed[day] = cachedDB{db: db, expires: asked.Add(s.ttl)}
	}
	s.mu.Unlock()
	return db, nil
}

// Adopt records, for every day partition already on one of the set's
// databases and not placed yet, that it is placed there: the placement of
// the days written before day_placements existed (an upgrade from one
// database), so that adding shard URLs never sends a late heartbeat of
// such a day to another database. Days placed already stay placed. A
// database that is not ready is left out: what cannot be read cannot be
// adopted (only the catalog, which must be up, can hold such days: the
// shard databases came with placements).
func (s *Set) Adopt(ctx context.Context) error {
	dbs, err := s.Holders(ctx)
	if err != nil {
		return fmt.Errorf("daydb: adopt: %w", err)
	}
	for _, db := range dbs {
		if !s.Ready(db.Name) {
			continue
		}
		tables, err := pgheartbeats.DayTables(ctx, db.Pool, "")
		if err != nil {
			return fmt.Errorf("daydb: adopt the days of %s: %w", db.Name, err)
		}
		var days []time.Time
		for _, t := range tables {
			if d, err := parseDay(t.Day); err == nil && t.Attached {
				days = append(days, d)
			}
		}
		if len(days) == 0 {
			continue
		}
		if _, err := s.catalog.Exec(ctx, `INSERT INTO shard_databases (name) VALUES ($1) ON CONFLICT DO NOTHING`, db.Name); err != nil {
			return fmt.Errorf("daydb: adopt the days of %s: %w", db.Name, err)
		}
		if _, err := s.catalog.Exec(ctx, `INSERT INTO day_placements (day, database) SELECT unnest($1::date[]), $2
			ON CONFLICT (day) DO NOTHING`, days, db.Name); err != nil {
			return fmt.Errorf("daydb: adopt the days of %s: %w", db.Name, err)
		}
	}
	return nil
}

// register records the databases that take new days in shard_databases,
// once per process (placements refer to them).
func (s *Set) register(ctx context.Context) error {
	s.mu.Lock()
	done := s.registered
	s.mu.Unlock()
	if done {
		return nil
	}
	names := make([]string, len(s.takers))
	for i, t := range s.takers {
		names[i] = t.Name
	}
	if _, err := s.catalog.Exec(ctx, `INSERT INTO shard_databases (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, names); err != nil {
		return fmt.Errorf("daydb: record databases: %w", err)
	}
	s.mu.Lock()
	s.registered = true
	s.mu.Unlock()
	return nil
}

func parseDay(day string) (time.Time, error) {
	d, err := time.Parse(heartbeat.DayLayout, day)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w %q: %w", ErrBadDay, day, err)
	}
	return d, nil
}

// Holders are the databases that may hold day tables: every one that takes
// new days, and, with shard databases, the catalog if it still has a
// heartbeats table (the days written there before the shards were
// configured). What the janitor lists the tables of.
func (s *Set) Holders(ctx context.Context) ([]DB, error) {
	dbs := s.All()
	if !s.Sharded() {
		return dbs, nil
	}
	var has bool
	if err := s.catalog.QueryRow(ctx, `SELECT to_regclass('heartbeats') IS NOT NULL`).Scan(&has); err != nil {
		return nil, fmt.Errorf("daydb: look for day tables on the catalog: %w", err)
	}
	if has {
		dbs = append(dbs, s.byName[NameOf(s.catalog)])
	}
	return dbs, nil
}

// ErrPlacementChanged is Switch's answer when the day is no longer on the
// database the caller moved it from.
var ErrPlacementChanged = errors.New("daydb: the day's placement changed meanwhile")

// Switch records that day now lives on to instead of from, and when: the
// step of `shards move` that sends new writes and reads to to. It fails
// with ErrPlacementChanged unless the day was on from. Other processes
// see the switch once their cached placement expires (CacheTTL).
func (s *Set) Switch(ctx context.Context, day, from, to string) error {
	d, err := parseDay(day)
	if err != nil {
		return err
	}
	if _, ok := s.byName[to]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownDatabase, to)
	}
	if err := s.register(ctx); err != nil {
		return err
	}
	tag, err := s.catalog.Exec(ctx, `UPDATE day_placements SET database = $3, placed_at = now()
		WHERE day = $1 AND database = $2`, d, from, to)
	if err != nil {
		return fmt.Errorf("daydb: switch %s to %s: %w", day, to, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%w: %s is not on %s", ErrPlacementChanged, day, from)
	}
	s.Forget(day)
	return nil
}

// PlacedFor reads the day's placement from the catalog, bypassing the
// cache: the database and how long ago, by the catalog's clock, the day
// was placed there (or switched there). ok is false for an unplaced day.
func (s *Set) PlacedFor(ctx context.Context, day string) (name string, age time.Duration, ok bool, err error) {
	d, err := parseDay(day)
	if err != nil {
		return "", 0, false, err
	}
	var secs float64
	err = s.catalog.QueryRow(ctx, `SELECT database, extract(epoch FROM now() - placed_at)::float8
		FROM day_placements WHERE day = $1`, d).Scan(&name, &secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("daydb: look up %s: %w", day, err)
	}
	return name, time.Duration(secs * float64(time.Second)), true, nil
}
