package shards

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/pgheartbeats"
	"heartlog/streams"
)

// LockName is the key of the janitor's lock in the locks bucket. `heartlog
// shards move` (package daymove) takes it too, so that no day is dropped
// mid-move and one move or janitor run works at a time.
const LockName = "shards-janitor"

// Options tune a Janitor. Zero fields take the defaults.
type Options struct {
	// Grace is how long after a UTC day ends it stays in Postgres (default
	// 48h): a day is eligible once day+24h+Grace is past.
	Grace time.Duration
	// LockTTL is the lock's time to live (default 30s); the janitor renews
	// it every LockTTL/3 while it works.
	LockTTL time.Duration
	// Owner names this janitor in the lock and in the shard states
	// (default hostname:pid).
	Owner string
	// Interval is how often Run runs (default 10m).
	Interval time.Duration
	// Settle is how long after a day is marked draining the janitor waits
	// before it detaches the partition (default 5s): the time the Postgres
	// processors' watches of the shards bucket need to see the state.
	Settle time.Duration
	// Processors are the processors whose partition consumers must have
	// acked a whole day before it is dropped (default objects and cache).
	Processors []string
	// Now is the clock eligibility is judged by (default time.Now).
	Now func() time.Time
	// Log receives the janitor's progress.
	Log zerolog.Logger
	// AfterStep, when set, is called after each step of a day; an error
	// stops the janitor right there, as a kill would: it returns the error
	// and leaves its lock to expire. It is a hook for tests; leave it nil.
	AfterStep func(day string, step Step) error
}

func (o *Options) defaults() {
	if o.Grace <= 0 {
		o.Grace = 48 * time.Hour
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 30 * time.Second
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Minute
	}
	if o.Settle <= 0 {
		o.Settle = 5 * time.Second
	}
	if len(o.Processors) == 0 {
		o.Processors = []string{streams.DurableObjects, streams.DurableCache}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Step is one step of dropping a day, in order.
type Step int

const (
	// StepProve: objects and cache have acked every message of the day.
	StepProve Step = iota + 1
	// StepDrain: the shard is marked draining in the shards bucket.
	StepDrain
	// StepSettle: the Postgres processors have had Settle to see it.
	StepSettle
	// StepDetach: the partition is detached from heartbeats.
	StepDetach
	// StepDrop: the detached table is dropped.
	StepDrop
	// StepMarkDropped: the shard is marked dropped.
	StepMarkDropped
)

func (s Step) String() string {
	switch s {
	case StepProve:
		return "prove"
	case StepDrain:
		return "drain"
	case StepSettle:
		return "settle"
	case StepDetach:
		return "detach"
	case StepDrop:
		return "drop"
	case StepMarkDropped:
		return "mark-dropped"
	}
	return fmt.Sprintf("step(%d)", int(s))
}

// Janitor drops Postgres day partitions whose days are safe in S3 and
// SSDB. Any number may run; one at a time works, under the lock.
type Janitor struct {
	js   jetstream.JetStream
	sc   streams.Config
	days *daydb.Set
	opts Options
}

// New returns a janitor over the stream and buckets sc names and the
// databases of days. Each day's table is drained and dropped on the
// database it is on.
func New(js jetstream.JetStream, sc streams.Config, days *daydb.Set, opts Options) *Janitor {
	opts.defaults()
	return &Janitor{js: js, sc: sc, days: days, opts: opts}
}

// Owner is the name this janitor holds the lock under.
func (j *Janitor) Owner() string { return j.opts.Owner }

// TableState is where a day's partition table stands in Postgres.
type TableState string

const (
	// TableNone: there is no table for the day.
	TableNone TableState = "none"
	// TableAttached: the table is a partition of heartbeats.
	TableAttached TableState = "attached"
	// TableDetachPending: a DETACH ... CONCURRENTLY was interrupted; only
	// DETACH ... FINALIZE can complete it.
	TableDetachPending TableState = "detach-pending"
	// TableDetached: the table exists but is no partition any more.
	TableDetached TableState = "detached"
)

// Day is one day as List reports it.
type Day struct {
	// Day is YYYYMMDD.
	Day string
	// State is the shard's state (active when the bucket has no key).
	State streams.ShardState
	// UpdatedAt and By are from the shard's key, when it has one.
	UpdatedAt time.Time
	By        string
	// Table is where the partition table stands.
	Table TableState
	// Database is the name of the database the table is on (daydb.DB.Name);
	// empty when there is no table.
	Database string
	// Rows is Postgres's estimate of the table's rows (pg_class.reltuples);
	// -1 when there is no table or Postgres has not estimated it yet.
	Rows int64
	// Eligible: old enough (past Grace) and with work left, so the next
	// janitor run will try to drop it.
	Eligible bool

	rev     uint64    // the shard key's revision, 0 when none
	created time.Time // when the shard key was last written (server clock)
}

// pending reports whether the janitor has work left on the day.
func (d Day) pending() bool {
	return d.Table != TableNone || d.State == streams.ShardDraining
}

// DisplayDay renders YYYYMMDD as YYYY-MM-DD (anything else unchanged).
func DisplayDay(day string) string {
	t, err := time.Parse(heartbeat.DayLayout, day)
	if err != nil {
		return day
	}
	return t.Format(time.DateOnly)
}

// ParseDay accepts YYYY-MM-DD or YYYYMMDD and returns YYYYMMDD.
func ParseDay(s string) (string, error) {
	for _, layout := range []string{time.DateOnly, heartbeat.DayLayout} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format(heartbeat.DayLayout), nil
		}
	}
	return "", fmt.Errorf("shards: %q is not a day (YYYY-MM-DD)", s)
}

func (j *Janitor) partitionName(day string) string { return pgheartbeats.PartitionName(day) }

// eligible reports whether the whole UTC day ended Grace ago or more.
func (j *Janitor) eligible(day string) bool {
	return streams.PastGrace(day, j.opts.Grace, j.opts.Now())
}

// List returns every day that has a partition table or a key in the
// shards bucket, oldest first.
func (j *Janitor) List(ctx context.Context) ([]Day, error) {
	shardsKV, err := j.js.KeyValue(ctx, j.sc.ShardsBucket)
	if err != nil {
		return nil, fmt.Errorf("shards: open KV bucket %s: %w", j.sc.ShardsBucket, err)
	}
	return j.list(ctx, shardsKV, "")
}

// list reads the days from Postgres and the bucket; only is one day or "".
func (j *Janitor) list(ctx context.Context, shardsKV jetstream.KeyValue, only string) ([]Day, error) {
	days := map[string]*Day{}
	get := func(day string) *Day {
		d := days[day]
		if d == nil {
			d = &Day{Day: day, State: streams.ShardActive, Table: TableNone, Rows: -1}
			days[day] = d
		}
		return d
	}
	tables, err := j.tables(ctx, only)
	if err != nil {
		return nil, err
	}
	for day, t := range tables {
		d := get(day)
		d.Table, d.Rows, d.Database = t.state, t.rows, t.db.Name
	}
	if only != "" {
		e, err := shardsKV.Get(ctx, only)
		switch {
		case err == nil:
			applyEntry(get(only), e)
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		default:
			return nil, fmt.Errorf("shards: read shard %s: %w", only, err)
		}
	} else {
		w, err := shardsKV.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err != nil {
			return nil, fmt.Errorf("shards: read KV bucket %s: %w", j.sc.ShardsBucket, err)
		}
		defer func() { _ = w.Stop() }()
	read:
		for {
			select {
			case e := <-w.Updates():
				if e == nil {
					break read
				}
				if _, err := time.Parse(heartbeat.DayLayout, e.Key()); err == nil {
					applyEntry(get(e.Key()), e)
				}
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	out := make([]Day, 0, len(days))
	for _, d := range days {
		d.Eligible = j.eligible(d.Day) && d.pending()
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b Day) int {
		switch {
		case a.Day < b.Day:
			return -1
		case a.Day > b.Day:
			return 1
		}
		return 0
	})
	return out, nil
}

func applyEntry(d *Day, e jetstream.KeyValueEntry) {
	var s streams.Shard
	if err := json.Unmarshal(e.Value(), &s); err != nil || s.State == "" {
		// Unreadable: the Postgres processor treats it as draining, and so
		// does the janitor (it finishes the drop once proven).
		s.State = streams.ShardDraining
	}
	d.State, d.UpdatedAt, d.By = s.State, s.UpdatedAt, s.By
	d.rev, d.created = e.Revision(), e.Created()
}

type table struct {
	state TableState
	rows  int64
	db    daydb.DB // the database the table is on
}

// tables lists the day tables next to heartbeats, attached or not, on
// every database that may hold them (daydb.Set.Holders), all at once. A
// database that does not answer fails the listing: taking its days for
// tableless could mark a day dropped whose table is still there.
func (j *Janitor) tables(ctx context.Context, only string) (map[string]table, error) {
	dbs, err := j.days.Holders(ctx)
	if err != nil {
		return nil, fmt.Errorf("shards: %w", err)
	}
	listed := make([][]pgheartbeats.DayTable, len(dbs))
	g, gctx := errgroup.WithContext(ctx)
	for i, db := range dbs {
		g.Go(func() error {
			var err error
			if listed[i], err = pgheartbeats.DayTables(gctx, db.Pool, only); err != nil {
				return fmt.Errorf("shards: %s: %w", db.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]table)
	var twice []string
	for i, dts := range listed {
		for _, dt := range dts {
			if _, ok := out[dt.Day]; ok {
				twice = append(twice, dt.Day)
			}
			out[dt.Day] = tableOf(dt, dbs[i])
		}
	}
	return out, j.keepPlaced(ctx, out, twice, dbs, listed)
}

func tableOf(dt pgheartbeats.DayTable, db daydb.DB) table {
	t := table{state: TableDetached, rows: dt.Rows, db: db}
	switch {
	case dt.Attached && dt.DetachPending:
		t.state = TableDetachPending
	case dt.Attached:
		t.state = TableAttached
	}
	return t
}

// keepPlaced settles the days whose table is on two databases (a day
// `shards move` is copying, or whose source it has not dropped yet): the
// table that counts is the one on the day's placement.
func (j *Janitor) keepPlaced(ctx context.Context, out map[string]table, twice []string, dbs []daydb.DB, listed [][]pgheartbeats.DayTable) error {
	if len(twice) == 0 {
		return nil
	}
	placed, err := j.days.Lookup(ctx, twice)
	if err != nil {
		return fmt.Errorf("shards: %w", err)
	}
	for i, dts := range listed {
		for _, dt := range dts {
			if p, ok := placed[dt.Day]; ok && p.Name == dbs[i].Name {
				out[dt.Day] = tableOf(dt, dbs[i])
			}
		}
	}
	return nil
}

// table says where the day's table stands, and on which database.
func (j *Janitor) table(ctx context.Context, day string) (TableState, daydb.DB, error) {
	ts, err := j.tables(ctx, day)
	if err != nil {
		return "", daydb.DB{}, err
	}
	if t, ok := ts[day]; ok {
		return t.state, t.db, nil
	}
	return TableNone, daydb.DB{}, nil
}

// hasRows reports whether the day's table exists and has a row.
func (j *Janitor) hasRows(ctx context.Context, day string) (bool, error) {
	st, db, err := j.table(ctx, day)
	if err != nil || st == TableNone {
		return false, err
	}
	yes, err := pgheartbeats.HasRows(ctx, db.Pool, day)
	if err != nil {
		return false, fmt.Errorf("shards: %s: %w", db.Name, err)
	}
	return yes, nil
}

// errKilled marks an error from the AfterStep hook.
type errKilled struct{ err error }

func (e errKilled) Error() string { return e.err.Error() }
func (e errKilled) Unwrap() error { return e.err }

// session is one janitor run under the lock.
type session struct {
	j      *Janitor
	lock   *Lock
	shards jetstream.KeyValue
	ctx    context.Context // cancelled when the lock is lost
}

// begin takes the lock and starts renewing it.
func (j *Janitor) begin(ctx context.Context) (*session, func(killed bool), error) {
	shardsKV, err := j.js.KeyValue(ctx, j.sc.ShardsBucket)
	if err != nil {
		return nil, nil, fmt.Errorf("shards: open KV bucket %s: %w", j.sc.ShardsBucket, err)
	}
	locks, err := j.js.KeyValue(ctx, j.sc.LocksBucket)
	if err != nil {
		return nil, nil, fmt.Errorf("shards: open KV bucket %s: %w", j.sc.LocksBucket, err)
	}
	lock, err := Acquire(ctx, locks, LockName, j.opts.Owner, j.opts.LockTTL, WithJetStream(j.js))
	if err != nil {
		return nil, nil, err
	}
	held, stop := lock.Keep(ctx, 0)
	s := &session{j: j, lock: lock, shards: shardsKV, ctx: held}
	end := func(killed bool) {
		stop()
		if killed {
			return // a killed janitor leaves its lock to expire
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := lock.Release(rctx); err != nil && !errors.Is(err, ErrLost) {
			j.opts.Log.Warn().Err(err).Msg("shard janitor: release lock")
		}
	}
	return s, end, nil
}

// cause turns an error seen under the session into the lock's loss when
// that is why the work stopped.
func (s *session) cause(err error) error {
	if err != nil && s.ctx.Err() != nil && !errors.Is(err, ErrLost) {
		if c := context.Cause(s.ctx); errors.Is(c, ErrLost) {
			return fmt.Errorf("%w (stopped: %v)", c, err)
		}
	}
	return err
}

// RunOnce drops every eligible day it can prove safe, under the lock. It
// returns the days it dropped (YYYYMMDD). When another janitor holds the
// lock it returns an error matching ErrHeld and does nothing. Days that are
// not proven yet are left as they are and reported in err as
// *NotProvenError (see NotProven), joined with any other failure.
func (j *Janitor) RunOnce(ctx context.Context) (dropped []string, err error) {
	s, end, err := j.begin(ctx)
	if err != nil {
		return nil, err
	}
	var killed errKilled
	defer func() { end(errors.As(err, &killed)) }()
	days, err := j.list(s.ctx, s.shards, "")
	if err != nil {
		return nil, s.cause(err)
	}
	var errs []error
	for _, d := range days {
		if !d.Eligible {
			continue
		}
		done, err := s.day(d)
		if done {
			dropped = append(dropped, d.Day)
		}
		if err == nil {
			continue
		}
		err = s.cause(err)
		if errors.Is(err, ErrLost) || errors.As(err, &killed) || ctx.Err() != nil {
			return dropped, err
		}
		errs = append(errs, err)
	}
	return dropped, errors.Join(errs...)
}

// DropNow drops one day (YYYY-MM-DD or YYYYMMDD) now, whatever its age,
// with the same steps as RunOnce, under the lock: only if the day is
// proven safe; otherwise the error (a *NotProvenError) says what the day
// waits for. A day already dropped is not an error.
func (j *Janitor) DropNow(ctx context.Context, day string) (err error) {
	day, err = ParseDay(day)
	if err != nil {
		return err
	}
	s, end, err := j.begin(ctx)
	if err != nil {
		return err
	}
	var killed errKilled
	defer func() { end(errors.As(err, &killed)) }()
	days, err := j.list(s.ctx, s.shards, day)
	if err != nil {
		return s.cause(err)
	}
	if len(days) == 0 {
		return fmt.Errorf("shards: day %s has no partition (%s) and no shard state", DisplayDay(day), j.partitionName(day))
	}
	_, err = s.day(days[0])
	return s.cause(err)
}

// Run runs the janitor every Interval until ctx ends; it returns nil then.
func (j *Janitor) Run(ctx context.Context) error {
	log := j.opts.Log.With().Str("owner", j.opts.Owner).Logger()
	log.Info().Stringer("interval", j.opts.Interval).Stringer("grace", j.opts.Grace).Msg("shard janitor starting")
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		dropped, err := j.RunOnce(ctx)
		for _, d := range dropped {
			log.Info().Str("day", DisplayDay(d)).Msg("shard dropped")
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrHeld):
			log.Debug().Err(err).Msg("another janitor holds the lock; skipped")
		case err != nil:
			waiting := NotProven(err)
			for _, np := range waiting {
				log.Info().Str("day", DisplayDay(np.Day)).Msg(np.Error())
			}
			// Anything else in the join is a real failure.
			if all := joined(err); len(all) > len(waiting) {
				log.Error().Err(err).Msg("shard janitor run failed; the next run resumes where it stopped")
			}
		}
		t.Reset(j.opts.Interval)
	}
}

func joined(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		return u.Unwrap()
	}
	return []error{err}
}

// after runs the AfterStep hook.
func (s *session) after(day string, step Step) error {
	s.j.opts.Log.Debug().Str("day", DisplayDay(day)).Stringer("step", step).Msg("shard janitor step done")
	if s.j.opts.AfterStep == nil {
		return nil
	}
	if err := s.j.opts.AfterStep(day, step); err != nil {
		return errKilled{err}
	}
	return nil
}

// check is "owner checked before every step".
func (s *session) check() error { return s.lock.Check(s.ctx) }

// day takes one day as far as it can: see the package doc for the steps
// and why each may be repeated. It reports whether the day ended dropped
// by this call.
func (s *session) day(d Day) (bool, error) {
	j, ctx := s.j, s.ctx
	log := j.opts.Log.With().Str("day", DisplayDay(d.Day)).Logger()
	if d.State == streams.ShardDropped && d.Table == TableNone {
		return false, nil
	}
	rev := d.rev
	switch d.State {
	case streams.ShardDropped:
		// A table under a dropped shard: a writer that had not seen the
		// state recreated it. Writers skip the day, so prove and drop again.
		log.Warn().Str("table", string(d.Table)).Msg("table of a dropped shard exists; dropping it again")
	case streams.ShardDraining:
		// A janitor stopped after marking the day: resume at the settle.
		log.Info().Str("by", d.By).Msg("resuming a draining shard")
	default:
		// 1-2: under the lock, prove the day is in S3 and SSDB.
		if err := s.check(); err != nil {
			return false, err
		}
		if err := j.Prove(ctx, d.Day); err != nil {
			return false, err
		}
		if err := s.after(d.Day, StepProve); err != nil {
			return false, err
		}
		// 3: mark it draining; the revision check fails if anyone else
		// wrote the key since we read it.
		if err := s.check(); err != nil {
			return false, err
		}
		var err error
		rev, err = streams.PutShard(ctx, s.shards, d.Day, streams.Shard{
			State: streams.ShardDraining, UpdatedAt: time.Now().UTC(), By: j.opts.Owner,
		}, rev)
		if err != nil {
			return false, fmt.Errorf("shards: mark %s draining: %w", d.Day, err)
		}
		d.State, d.created = streams.ShardDraining, time.Now()
		log.Info().Msg("shard draining")
		if err := s.after(d.Day, StepDrain); err != nil {
			return false, err
		}
	}
	if d.State == streams.ShardDraining {
		// 4: give the Postgres processors' watches time to see draining.
		if wait := time.Until(d.created.Add(j.opts.Settle)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return false, ctx.Err()
			case <-t.C:
			}
		}
		if err := s.after(d.Day, StepSettle); err != nil {
			return false, err
		}
	}
	if d.Table != TableNone {
		// Prove again: this covers every message Postgres can have written
		// before it saw draining.
		if err := s.check(); err != nil {
			return false, err
		}
		if err := j.Prove(ctx, d.Day); err != nil {
			return false, err
		}
		// 5: detach, or finish an interrupted detach.
		if err := s.check(); err != nil {
			return false, err
		}
		if err := j.detach(ctx, d.Day); err != nil {
			return false, err
		}
		if err := s.after(d.Day, StepDetach); err != nil {
			return false, err
		}
		// 6: drop the detached table.
		if err := s.check(); err != nil {
			return false, err
		}
		db, err := j.drop(ctx, d.Day)
		if err != nil {
			return false, err
		}
		log.Info().Str("database", db).Msg("partition dropped")
		if err := s.after(d.Day, StepDrop); err != nil {
			return false, err
		}
	}
	if d.State != streams.ShardDropped {
		// 7: mark it dropped.
		if err := s.check(); err != nil {
			return false, err
		}
		if _, err := streams.PutShard(ctx, s.shards, d.Day, streams.Shard{
			State: streams.ShardDropped, UpdatedAt: time.Now().UTC(), By: j.opts.Owner,
		}, rev); err != nil {
			return false, fmt.Errorf("shards: mark %s dropped: %w", d.Day, err)
		}
		if err := s.after(d.Day, StepMarkDropped); err != nil {
			return true, err
		}
	}
	return true, nil
}

// drop drops the day's detached table, on the database it is on, and
// returns that database's name.
func (j *Janitor) drop(ctx context.Context, day string) (string, error) {
	st, db, err := j.table(ctx, day)
	if err != nil || st == TableNone {
		return db.Name, err
	}
	if err := pgheartbeats.DropTable(ctx, db.Pool, day); err != nil {
		return db.Name, fmt.Errorf("shards: %s: %w", db.Name, err)
	}
	return db.Name, nil
}

// detach takes the day's table out of heartbeats, from whatever state a
// previous janitor left it in.
func (j *Janitor) detach(ctx context.Context, day string) error {
	var last error
	for range 3 {
		st, db, err := j.table(ctx, day)
		if err != nil {
			return err
		}
		switch st {
		case TableNone, TableDetached:
			return nil
		}
		// A pending detach: a janitor died (or was cancelled) inside the
		// concurrent detach, and only FINALIZE completes it.
		if err = pgheartbeats.Detach(ctx, db.Pool, day, st == TableDetachPending); err == nil {
			return nil
		}
		last = fmt.Errorf("shards: %w", err)
		if ctx.Err() != nil {
			return last
		}
		// Another session may have moved the table on (a racing janitor
		// that lost the lock): look again.
		j.opts.Log.Warn().Err(err).Msg("detach failed; looking at the table again")
	}
	return last
}
