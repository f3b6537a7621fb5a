// Package postgres projects the log into the heartbeats table, one
// partition per UTC day: the hot store that recent reads come from.
//
// It creates a day's partition on demand and skips days whose shard the
// janitor is draining or has dropped: those days live in S3 and SSDB, and a
// late heartbeat must not bring a dropped partition back. Nor does it create
// a partition for a day already past the shard grace period (an import, a
// very late offline queue): such days go to the day files alone, so that
// importing a year attaches no 365 partitions, and the read path serves them
// from the files (reads.Reader decides by the same rule). It never deletes.
// The table's columns, row codec and partition SQL are package
// pgheartbeats'; this package decides what to write and when.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/pgheartbeats"
	"heartlog/processors"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// ShardStates tells whether a day (YYYYMMDD) may still be written.
// *streams.ShardView implements it.
type ShardStates interface {
	State(day string) streams.ShardState
}

var (
	rowsSkipped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_postgres_rows_skipped_shard_total",
		Help: "Heartbeats not written because their day's shard is draining or dropped.",
	})
	rowsPastGrace = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_postgres_rows_skipped_past_grace_total",
		Help: "Heartbeats not written because their day is past the shard grace period and has no partition (they are in the day files).",
	})
)

// Sink writes heartbeats to Postgres. It is safe to run in several
// processes at once: the primary key makes every write idempotent.
type Sink struct {
	days   *daydb.Set
	shards ShardStates
	log    zerolog.Logger
	opts   Options

	mu       sync.Mutex
	known    map[string]bool // database/day whose partition exists
	cold     map[string]bool // days past grace without a partition
	placedAt time.Time       // when the days placed were last counted
}

// Options tune the sink. Zero fields take the defaults.
type Options struct {
	// Writers is how many connections one commit writes over in parallel
	// on each database (default 2): a single session's COPY is
	// Postgres-bound.
	Writers int
	// Grace is the shard grace period (HEARTLOG_SHARDS_GRACE): a day that
	// ended longer ago than this gets no partition, and its rows are
	// skipped unless its partition exists already. Zero: every day gets
	// one (tools that load history into Postgres on purpose).
	Grace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New returns the sink over the databases of days. Every database must
// have its migrations applied.
func New(days *daydb.Set, shards ShardStates, log zerolog.Logger, opts Options) *Sink {
	if opts.Writers <= 0 {
		opts.Writers = 2
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sink{days: days, shards: shards, log: log, opts: opts, known: map[string]bool{}, cold: map[string]bool{}}
}

// Name implements processors.Sink.
func (s *Sink) Name() string { return streams.DurablePostgres }

// group is the batches of one commit that go to one database.
type group struct {
	db      daydb.DB
	batches []*heartlogv1.Batch
	late    []string // days past grace: written only if their partition exists
}

// Commit implements processors.Sink. Each batch goes to its day's database
// (placing the day there if it is new), and the databases are written in
// parallel. On each, the rows are split over Writers connections, and each
// part is written in its own transaction: first by a plain COPY into
// heartbeats, the fast path when nothing is a duplicate (the usual case);
// if the primary key refuses a row, that part is written again through a
// temporary table and INSERT ... ON CONFLICT DO NOTHING. A part that failed
// leaves nothing, and a part that committed is absorbed by the conflict
// path when the batch comes again.
//
// When a database fails, Commit returns a *processors.Held naming the
// batches of that database, whether or not others committed: the others
// are acked, the held messages come again later, and the loop goes on with
// the next messages, so only the unreachable database's days wait (a
// commit that retried in place would hold every day back). With a single
// database, it returns the error, and the loop retries the commit in place.
func (s *Sink) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	// First days go first, so that a reader who sees the rows also sees
	// the first day that covers them.
	if err := s.noteFirstDays(ctx, batches); err != nil {
		return err
	}
	var (
		held, todo = []*heartlogv1.Batch(nil), batches
		heldErrs   []error
		heldBy     = map[string]int{} // held batches by database, for the metric
		rejected   []processors.Rejection
	)
	// A database that answers "moved" (the day's partition there is fenced
	// by `shards move`, or gone) sends its batches round again at once,
	// with the day's placement read afresh: they go to the day's new
	// database. What committed on the first round is absorbed by the
	// conflict path; batches of the other databases are not written again.
	for round := 1; len(todo) > 0; round++ {
		groups, h, he, hb, err := s.place(ctx, todo)
		if err != nil {
			return err
		}
		held, heldErrs, todo = append(held, h...), append(heldErrs, he...), nil
		for name, n := range hb {
			heldBy[name] += n
		}
		errs := make([]error, len(groups))
		rejects := make([][]processors.Rejection, len(groups))
		var wg sync.WaitGroup
		for i, g := range groups {
			wg.Go(func() {
				start := time.Now()
				rejects[i], errs[i] = s.commitTo(ctx, g)
				commitSeconds.WithLabelValues(g.db.Name).Observe(time.Since(start).Seconds())
				if errs[i] != nil {
					commitErrors.WithLabelValues(g.db.Name).Inc()
				}
			})
		}
		wg.Wait()
		for i, g := range groups {
			switch err := errs[i]; {
			case err == nil:
				rejected = append(rejected, rejects[i]...)
			case errors.Is(err, processors.ErrPermanent):
				// The loop splits the batches to find the bad heartbeat; what
				// committed here meanwhile is absorbed by the conflict path.
				return err
			case (errors.Is(err, pgheartbeats.ErrMoved) || errors.Is(err, errPartitionGone)) && round < moveRounds:
				s.forget(err, g)
				todo = append(todo, g.batches...)
			default:
				held = append(held, g.batches...)
				heldErrs = append(heldErrs, fmt.Errorf("%s: %w", g.db.Name, err))
				heldBy[g.db.Name] += len(g.batches)
			}
		}
	}
	s.countPlaced(ctx)
	unplaceable := heldBy[unlisted] // days on a database this process lacks
	switch {
	case len(held) == len(batches) && len(s.days.All()) == 1 && unplaceable == 0:
		// One database, down: retrying in place is all there is to do.
		return errors.Join(heldErrs...)
	case len(held) > 0:
		for name, n := range heldBy {
			heldBatches.WithLabelValues(name).Add(float64(n))
		}
		return &processors.Held{Batches: held, Rejected: rejected, Err: errors.Join(heldErrs...)}
	case len(rejected) > 0:
		return &processors.Rejected{Heartbeats: rejected}
	}
	return nil
}

// errPartitionGone marks a write whose day's partition is not on the
// database any more: the janitor detached it (the next round finds the
// day draining in the shard view and skips it), or `shards move` dropped
// it here and this process had not seen the move (the next round's
// ensurePartition reads the placement again and follows the day).
var errPartitionGone = errors.New("postgres: the day's partition went away")

// moveRounds bounds how often one Commit follows moved days: a day moves
// once per `shards move`, so a third "moved" means something else is
// wrong, and the batches are held like those of a database that is down.
const moveRounds = 3

// forget makes the days that err says moved away from g's database be
// looked up again: the day the fence names, or every day of g.
func (s *Sink) forget(err error, g *group) {
	var m *pgheartbeats.MovedError
	if errors.As(err, &m) && m.Day != "" {
		s.days.Forget(m.Day)
		return
	}
	for _, b := range g.batches {
		s.days.Forget(b.Day)
	}
}

// ErrNotMigrated is the reason a batch is held when its day is on a
// database that this process could not migrate yet (down at start).
var ErrNotMigrated = errors.New("postgres: database not migrated yet (it was down at start; its migration is retried)")

// place groups the writable batches by their day's database, placing new
// days. A day past the grace period is never placed: if it has no
// placement, its rows go to the day files alone. A batch whose day is on a
// database this process does not have, or on one not migrated yet, is
// held, with the reason; heldBy counts the held batches by database.
func (s *Sink) place(ctx context.Context, batches []*heartlogv1.Batch) (groups []*group, held []*heartlogv1.Batch, heldErrs []error, heldBy map[string]int, err error) {
	now := s.opts.Now()
	byDB := map[string]*group{}
	heldBy = map[string]int{}
	for _, b := range batches {
		if !s.shards.State(b.Day).Writable() {
			rowsSkipped.Add(float64(len(b.Heartbeats)))
			s.log.Debug().Str("day", b.Day).Int("heartbeats", len(b.Heartbeats)).Msg("shard not active; skipped")
			continue
		}
		late := streams.PastGrace(b.Day, s.opts.Grace, now)
		db, ok, err := s.database(ctx, b.Day, late)
		switch {
		case errors.Is(err, daydb.ErrBadDay):
			return nil, nil, nil, nil, processors.Permanent("postgres bad day", err)
		case errors.Is(err, daydb.ErrUnknownDatabase):
			held, heldErrs = append(held, b), append(heldErrs, err)
			heldBy[unlisted]++
			continue
		case err != nil:
			return nil, nil, nil, nil, fmt.Errorf("postgres: %w", err)
		case !ok:
			s.skipCold(b)
			continue
		case !s.days.Ready(db.Name):
			held, heldErrs = append(held, b), append(heldErrs, fmt.Errorf("%s: %w", db.Name, ErrNotMigrated))
			heldBy[db.Name]++
			continue
		}
		g := byDB[db.Name]
		if g == nil {
			g = &group{db: db}
			byDB[db.Name] = g
			groups = append(groups, g)
		}
		g.batches = append(g.batches, b)
		if late && !slices.Contains(g.late, b.Day) {
			g.late = append(g.late, b.Day)
		}
	}
	return groups, held, heldErrs, heldBy, nil
}

// database is the day's database. A late day (past grace) is only looked
// up: without a placement (ok false) its rows go to the day files alone.
func (s *Sink) database(ctx context.Context, day string, late bool) (db daydb.DB, ok bool, err error) {
	if !late {
		db, err = s.days.For(ctx, day)
		return db, err == nil, err
	}
	placed, err := s.days.Lookup(ctx, []string{day})
	db, ok = placed[day]
	return db, ok, err
}

func (s *Sink) skipCold(b *heartlogv1.Batch) {
	rowsPastGrace.Add(float64(len(b.Heartbeats)))
	s.log.Debug().Str("day", b.Day).Int("heartbeats", len(b.Heartbeats)).Msg("day past the shard grace period; left to the day files")
}

// commitTo writes one database's batches: partitions first, then the rows
// over Writers connections.
func (s *Sink) commitTo(ctx context.Context, g *group) ([]processors.Rejection, error) {
	cold, err := s.coldDays(ctx, g.db, g.late)
	if err != nil {
		return nil, err
	}
	rows, days, rejected := s.rows(g.batches, cold)
	for day := range days {
		if err := s.ensurePartition(ctx, g.db, day); err != nil {
			return nil, s.classify(err) // a day Postgres' date cannot hold is 22008
		}
	}
	eg, gctx := errgroup.WithContext(ctx)
	for _, part := range split(rows, s.opts.Writers) {
		eg.Go(func() error { return s.write(gctx, g.db.Pool, g.db.Name, part) })
	}
	if err := eg.Wait(); err != nil {
		return nil, s.classify(err)
	}
	return rejected, nil
}

// classify marks as permanent what retrying the same rows cannot fix: data
// exceptions (class 22: a number numeric cannot hold, text encoding),
// integrity constraint violations (class 23; the primary key's duplicates
// never get here, write absorbs them with ON CONFLICT DO NOTHING, so a 23
// is a NOT NULL or CHECK the row breaks) and program limits (class 54: a
// jsonb nested too deep). Everything else is transient: connection errors,
// timeouts, serialization failures and deadlocks (40001, 40P01), an
// administrator's shutdown (57P0x), insufficient resources (53xxx), and
// schema errors too, since a deploy fixes those for every row at once.
func (s *Sink) classify(err error) error {
	if m := pgheartbeats.Moved(err); m != nil {
		// `shards move` fenced the day's partition here: the day lives on
		// another database now (Commit looks it up again).
		return m
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code == pgerrcode.CheckViolation && (pgErr.ConstraintName == "" || strings.HasPrefix(pgErr.Message, "no partition of relation")):
		// The day's partition went away under this process (the janitor
		// detached it): not the rows' fault. Postgres names no constraint
		// for that 23514, and words its message in the server's
		// lc_messages, so the constraint decides; a CHECK the row breaks
		// names one. Look it up again on the retry,
		// when the shard view says whether the day is still writable (or,
		// if `shards move` dropped it here, ensurePartition finds the day
		// moved and Commit follows it).
		s.mu.Lock()
		clear(s.known)
		s.mu.Unlock()
		return fmt.Errorf("%w: %w", errPartitionGone, err)
	case pgerrcode.IsDataException(pgErr.Code), pgerrcode.IsIntegrityConstraintViolation(pgErr.Code),
		pgerrcode.IsProgramLimitExceeded(pgErr.Code):
		return processors.Permanent("postgres "+pgErr.Code, err)
	}
	return err
}

// noteFirstDays moves each user's first_day back to the earliest day in the
// batches, where it is later than that. Days whose shard is dropped count
// too: their heartbeats are in S3, and all_time reads them there. Most
// commits change no user, and then write nothing.
func (s *Sink) noteFirstDays(ctx context.Context, batches []*heartlogv1.Batch) error {
	first := map[string]string{}
	for _, b := range batches {
		for _, hb := range b.Heartbeats {
			if d, ok := first[hb.UserId]; !ok || b.Day < d {
				first[hb.UserId] = b.Day
			}
		}
	}
	ids, days := make([]string, 0, len(first)), make([]time.Time, 0, len(first))
	for id, d := range first {
		t, err := time.Parse(heartbeat.DayLayout, d)
		if _, perr := uuid.Parse(id); err != nil || perr != nil {
			continue // rejected by rows
		}
		ids, days = append(ids, id), append(days, t)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := s.days.Catalog().Exec(ctx, `UPDATE users u SET first_day = v.day
		FROM unnest($1::uuid[], $2::date[]) AS v(id, day)
		WHERE u.id = v.id AND (u.first_day IS NULL OR u.first_day > v.day)`, ids, days)
	if err != nil {
		return fmt.Errorf("postgres: note first days: %w", err)
	}
	return nil
}

// split cuts rows (grouped by day, in order) into at most n runs of near
// equal size.
func split(rows [][]any, n int) [][][]any {
	size := (len(rows) + n - 1) / n
	var parts [][][]any
	for len(rows) > 0 {
		k := min(size, len(rows))
		parts = append(parts, rows[:k])
		rows = rows[k:]
	}
	return parts
}

// write writes rows to pool, the database named name.
func (s *Sink) write(ctx context.Context, pool *pgxpool.Pool, name string, rows [][]any) error {
	var copied int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		copied, err = pgheartbeats.Copy(ctx, tx, pgheartbeats.Table, rows)
		return err
	})
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		rowsInserted.WithLabelValues(name).Add(float64(copied))
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation:
		return s.writeDeduplicated(ctx, pool, name, rows)
	}
	return fmt.Errorf("postgres: copy %d rows: %w", len(rows), err)
}

// writeDeduplicated is the slow path for rows of which some are stored
// already: a redelivery, a replay, a plugin resending from its queue.
func (s *Sink) writeDeduplicated(ctx context.Context, pool *pgxpool.Pool, name string, rows [][]any) error {
	var inserted int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		inserted, err = pgheartbeats.CopyNew(ctx, tx, rows)
		return err
	})
	if err != nil {
		return err
	}
	rowsInserted.WithLabelValues(name).Add(float64(inserted))
	duplicates.WithLabelValues(name).Add(float64(int64(len(rows)) - inserted))
	return nil
}

// coldDays returns which of the late days (past the grace period, placed
// on db) have no partition there. A partition that exists (the janitor has
// not dropped the day yet) still takes its late rows, as before. Both
// answers are remembered: a day past grace never gets a partition later.
func (s *Sink) coldDays(ctx context.Context, db daydb.DB, late []string) (map[string]bool, error) {
	cold := map[string]bool{}
	var ask []string
	s.mu.Lock()
	for _, d := range late {
		switch {
		case s.known[db.Name+"/"+d]:
		case s.cold[d]:
			cold[d] = true
		default:
			ask = append(ask, d)
		}
	}
	s.mu.Unlock()
	if len(ask) == 0 {
		return cold, nil
	}
	exist, err := pgheartbeats.Partitioned(ctx, db.Pool, ask)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ask {
		if exist[d] {
			s.known[db.Name+"/"+d] = true
		} else {
			s.cold[d], cold[d] = true, true
		}
	}
	return cold, nil
}

// rows flattens the batches into COPY rows for writable days (not cold),
// without duplicates, and returns the days they cover and the heartbeats no
// retry can store.
func (s *Sink) rows(batches []*heartlogv1.Batch, cold map[string]bool) ([][]any, map[string]time.Time, []processors.Rejection) {
	days := map[string]time.Time{}
	seen := map[string]bool{}
	var rows [][]any
	var rejected []processors.Rejection
	for _, b := range batches {
		if cold[b.Day] {
			s.skipCold(b)
			continue
		}
		for _, hb := range b.Heartbeats {
			if seen[hb.Id] {
				continue
			}
			seen[hb.Id] = true
			row, day, err := pgheartbeats.Row(hb)
			if err != nil {
				// A user id that is not a UUID: a corrupt message, and no
				// retry can store it.
				rejected = append(rejected, processors.Rejection{Batch: b, Heartbeat: hb, Reason: "postgres bad user id", Err: err})
				continue
			}
			days[day.Format(heartbeat.DayLayout)] = day
			rows = append(rows, row)
		}
	}
	return rows, days, rejected
}

// ensurePartition creates the day's partition on db unless this process
// has seen it.
func (s *Sink) ensurePartition(ctx context.Context, db daydb.DB, day string) error {
	key := db.Name + "/" + day
	s.mu.Lock()
	ok := s.known[key]
	s.mu.Unlock()
	if ok {
		return nil
	}
	// Creating a partition is rare (once per day, database and process),
	// so the placement is read afresh first: a cached placement from
	// before a move must never bring the day's partition back on the
	// database it left, where no read would find its rows.
	s.days.Forget(day)
	placed, err := s.days.Lookup(ctx, []string{day})
	if errors.Is(err, daydb.ErrBadDay) {
		return processors.Permanent("postgres bad day", err)
	}
	if err != nil {
		return err
	}
	if p, ok := placed[day]; ok && p.Name != db.Name {
		return &pgheartbeats.MovedError{Day: day, Err: fmt.Errorf("placed on %s now, not on %s", p.Name, db.Name)}
	}
	if err := pgheartbeats.CreatePartition(ctx, db.Pool, day); err != nil {
		if errors.Is(err, pgheartbeats.ErrBadDay) {
			return processors.Permanent("postgres bad day", err)
		}
		return err
	}
	s.mu.Lock()
	s.known[key] = true
	s.mu.Unlock()
	return nil
}
