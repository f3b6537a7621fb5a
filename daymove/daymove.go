// Package daymove moves one UTC day's heartbeats from the Postgres
// database it is placed on to another (`heartlog shards move`): to
// rebalance the shard databases, or to empty one before it is retired.
//
// # The protocol
//
// Under the shard janitor's lock (shards.LockName, so that the janitor
// never drops a day mid-move and two moves never run at once), for a day
// whose shard is active:
//
//  1. lock: take the lock, renew it while working, check it before every
//     step.
//  2. partition: create the day's partition on the target.
//  3. copy: stream the source's rows to the target in chunks of the
//     primary key's order, each through a temporary table and INSERT ...
//     ON CONFLICT DO NOTHING, so that a re-run copies nothing twice.
//  4. switch: day_placements names the target (and placed_at the switch
//     time). New writes and reads go there from now on, in every process
//     whose cached placement has expired.
//  5. settle: wait Settle (twice daydb's cache TTL) from the switch, so
//     that no process still uses the old placement.
//  6. fence: CHECK (false) NOT VALID on the source's partition: any
//     further insert there fails with a "moved" error (the Postgres
//     processor looks the day up again and writes to the target), and the
//     partition still exists, so nothing recreates it.
//  7. recopy: copy again what stale writers wrote between 3 and 6.
//  8. verify: every row of the source is on the target with the same
//     content (both streamed in key order, an md5 of each row compared); on
//     a mismatch nothing is dropped.
//  9. detach, drop: detach the source's partition concurrently (as the
//     janitor does, so no reader blocks) and drop it.
//
// # Why a cache TTL and a settle
//
// Every process caches placements (daydb.Set) for at most a TTL
// (HEARTLOG_PLACEMENT_TTL), so Settle (twice the TTL) after the switch
// none still uses the old one. That needs no signal between processes and
// nothing a process can miss: a KV watch that is disconnected or paused
// would leave it stale without a bound, a TTL is bounded by the clock. It
// costs one catalog query per day, TTL and process. The settle is what
// keeps readers off the source before it is dropped; writers are safe even
// past it: the fence turns a stale writer away, and the Postgres processor
// reads the placement afresh before it creates a partition, so nothing
// brings a dropped source back. Between the switch and the settle a reader
// whose cache is stale may miss rows new writers sent to the target: for
// at most the TTL, like any read of heartbeats still in flight.
//
// # Resuming
//
// Each run derives where the move stands from facts, not from a
// remembered step: where the catalog places the day, which databases have
// a table of it, whether the source's is fenced, and when the placement
// was switched. Every step is idempotent, so a run killed anywhere and run
// again finishes the move. A table of the day on a database other than
// its placement is always a source to be copied, verified and dropped:
// that is also how a move abandoned before its switch (a partial copy on
// the old target) is cleaned up by moving the day to where it is.
package daymove

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/daydb"
	"heartlog/pgheartbeats"
	"heartlog/shards"
	"heartlog/streams"
)

// Step is one step of a move, in order.
type Step string

// The steps; see the package doc.
const (
	StepLock      Step = "lock"
	StepPartition Step = "partition"
	StepCopy      Step = "copy"
	StepSwitch    Step = "switch"
	StepSettle    Step = "settle"
	StepFence     Step = "fence"
	StepRecopy    Step = "recopy"
	StepVerify    Step = "verify"
	StepDetach    Step = "detach"
	StepDrop      Step = "drop"
)

// Steps lists the steps in order.
var Steps = []Step{StepLock, StepPartition, StepCopy, StepSwitch, StepSettle, StepFence, StepRecopy, StepVerify, StepDetach, StepDrop}

var (
	// ErrUnplaced: the day has no placement (no heartbeat of it was
	// written to Postgres), so there is nothing to move.
	ErrUnplaced = errors.New("daymove: day is not placed on any database")
	// ErrNotActive: the janitor is dropping the day (draining) or has
	// dropped it; its reads come from SSDB and S3, and it is not moved.
	ErrNotActive = errors.New("daymove: day's shard is not active")
	// ErrUnfinished: an earlier move of the day, to another database, has
	// not finished; the error says which move to run again.
	ErrUnfinished = errors.New("daymove: an earlier move of the day is unfinished")
	// ErrMismatch: the target lacks rows of the source or holds them with
	// other content; nothing was dropped.
	ErrMismatch = errors.New("daymove: the target does not hold the source's rows")
)

// Options tune a move. Zero fields take the defaults.
type Options struct {
	// Settle is how long after the switch the source is fenced: at least
	// twice the cache TTL of every process's daydb.Set (default: twice
	// this Set's CacheTTL).
	Settle time.Duration
	// LockTTL is the lock's time to live (default 30s): how long a killed
	// move keeps the janitor and other moves out.
	LockTTL time.Duration
	// Wait is how long to retry while another owner holds the lock
	// (default 0: fail at once with shards.ErrHeld).
	Wait time.Duration
	// Owner names the move in the lock (default "move@hostname:pid").
	Owner string
	// ChunkRows is how many rows one copy transaction carries (default
	// 10,000).
	ChunkRows int
	// FenceLockTimeout bounds the fence's wait for the partition's lock
	// behind long readers (default 5s); the fence is tried again.
	FenceLockTimeout time.Duration
	// Progress receives a line per copied chunk and per step (default
	// io.Discard).
	Progress io.Writer
	// AfterStep, when set, is called after each step; an error stops the
	// move there and leaves the lock to expire, as a kill would. A hook
	// for tests; leave it nil.
	AfterStep func(Step) error
}

func (o *Options) defaults(days *daydb.Set) {
	if o.Settle <= 0 {
		o.Settle = 2 * days.CacheTTL()
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 30 * time.Second
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = fmt.Sprintf("move@%s:%d", host, os.Getpid())
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = 10_000
	}
	if o.FenceLockTimeout <= 0 {
		o.FenceLockTimeout = 5 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Summary is what a move did.
type Summary struct {
	Day      string // YYYYMMDD
	From, To string // database names; From is empty when nothing moved
	// Already: the day was on To, with no table elsewhere: nothing to do.
	Already bool
	// Copied and Recopied are the rows inserted on the target before the
	// switch and after the fence (a re-run counts only what it inserted);
	// Verified is the rows of the source found on the target.
	Copied, Recopied, Verified int64
	// Settled is how long the move waited for the switch to be seen.
	Settled time.Duration
	// Took is the whole move, under the lock.
	Took time.Duration
}

// Mover moves days between the databases of a daydb.Set.
type Mover struct {
	js   jetstream.JetStream
	sc   streams.Config
	days *daydb.Set
	opts Options
}

// New returns a mover over the databases of days, locking in the locks
// bucket and reading shard states from the shards bucket that sc names.
func New(js jetstream.JetStream, sc streams.Config, days *daydb.Set, opts Options) *Mover {
	opts.defaults(days)
	return &Mover{js: js, sc: sc, days: days, opts: opts}
}

// Settle is the settle time the mover waits.
func (m *Mover) Settle() time.Duration { return m.opts.Settle }

// Move moves day (YYYYMMDD) to the database named to, or finishes an
// earlier move of it there.
func (m *Mover) Move(ctx context.Context, day, to string) (*Summary, error) {
	target, ok := m.days.Database(to)
	if !ok {
		return nil, fmt.Errorf("%w: %s", daydb.ErrUnknownDatabase, to)
	}
	lock, err := m.acquire(ctx)
	if err != nil {
		return nil, err
	}
	held, stop := lock.Keep(ctx, 0)
	r := &run{m: m, lock: lock, ctx: held, day: day, to: target, sum: &Summary{Day: day, To: to}}
	start := time.Now()
	err = r.move()
	stop()
	var killed errKilled
	if !errors.As(err, &killed) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if rerr := lock.Release(rctx); rerr != nil && !errors.Is(rerr, shards.ErrLost) && err == nil {
			err = rerr
		}
		cancel()
	}
	r.sum.Took = time.Since(start)
	if err != nil && held.Err() != nil {
		if c := context.Cause(held); errors.Is(c, shards.ErrLost) {
			err = fmt.Errorf("%w (stopped: %v)", c, err)
		}
	}
	return r.sum, err
}

// acquire takes the janitor's lock, retrying for Wait while it is held.
func (m *Mover) acquire(ctx context.Context) (*shards.Lock, error) {
	locks, err := m.js.KeyValue(ctx, m.sc.LocksBucket)
	if err != nil {
		return nil, fmt.Errorf("daymove: open KV bucket %s: %w", m.sc.LocksBucket, err)
	}
	deadline := time.Now().Add(m.opts.Wait)
	for {
		lock, err := shards.Acquire(ctx, locks, shards.LockName, m.opts.Owner, m.opts.LockTTL, shards.WithJetStream(m.js))
		if !errors.Is(err, shards.ErrHeld) || !time.Now().Before(deadline) {
			return lock, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// errKilled marks an error from the AfterStep hook.
type errKilled struct{ err error }

func (e errKilled) Error() string { return e.err.Error() }
func (e errKilled) Unwrap() error { return e.err }

// run is one move under the lock.
type run struct {
	m    *Mover
	lock *shards.Lock
	ctx  context.Context // cancelled when the lock is lost
	day  string
	to   daydb.DB
	sum  *Summary
}

func (r *run) printf(format string, args ...any) {
	fmt.Fprintf(r.m.opts.Progress, format+"\n", args...)
}

// done ends a step: the progress line, the hook, and the lock check that
// comes before the next step.
func (r *run) done(step Step, detail string) error {
	if detail != "" {
		r.printf("%s: %s", step, detail)
	}
	if h := r.m.opts.AfterStep; h != nil {
		if err := h(step); err != nil {
			return errKilled{err}
		}
	}
	return r.lock.Check(r.ctx)
}

func (r *run) move() error {
	ctx, day := r.ctx, r.day
	if err := r.done(StepLock, "holding "+shards.LockName); err != nil {
		return err
	}
	if err := r.active(); err != nil {
		return err
	}
	placed, _, ok, err := r.m.days.PlacedFor(ctx, day)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s (nothing of it was written to Postgres)", ErrUnplaced, shards.DisplayDay(day))
	}
	source, ok := r.m.days.Database(placed)
	if !ok {
		return fmt.Errorf("%w: day %s is on %s", daydb.ErrUnknownDatabase, shards.DisplayDay(day), placed)
	}
	tables, err := r.tables()
	if err != nil {
		return err
	}
	if placed != r.to.Name {
		// copyAndSwitch refuses tables on a third database, so what is
		// left below is the source's, if it has one.
		if err := r.copyAndSwitch(source, tables); err != nil {
			return err
		}
		if _, had := tables[source.Name]; !had {
			// A writer that looked the day up before the switch may still
			// create the table on the source and write there: wait out the
			// settle and look again, or its rows would be where no read
			// looks.
			if err := r.settle(); err != nil {
				return err
			}
			if tables, err = r.tables(); err != nil {
				return err
			}
		}
	}
	delete(tables, r.to.Name)
	if len(tables) == 0 {
		r.sum.Already = r.sum.From == ""
		return nil
	}
	for name := range tables {
		src, _ := r.m.days.Database(name)
		if err := r.finish(src); err != nil {
			return err
		}
	}
	return nil
}

// active refuses a day the janitor is dropping or has dropped.
func (r *run) active() error {
	kv, err := r.m.js.KeyValue(r.ctx, r.m.sc.ShardsBucket)
	if err != nil {
		return fmt.Errorf("daymove: open KV bucket %s: %w", r.m.sc.ShardsBucket, err)
	}
	e, err := kv.Get(r.ctx, r.day)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return nil
	case err != nil:
		return fmt.Errorf("daymove: read shard %s: %w", r.day, err)
	}
	state := shardState(e.Value())
	if state != streams.ShardActive {
		return fmt.Errorf("%w: %s is %s (the shard janitor drops it; its reads come from SSDB and S3)", ErrNotActive, shards.DisplayDay(r.day), state)
	}
	return nil
}

// tables finds the day's table on every database that may hold one, by
// database name.
func (r *run) tables() (map[string]pgheartbeats.DayTable, error) {
	dbs, err := r.m.days.Holders(r.ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]pgheartbeats.DayTable{}
	for _, db := range dbs {
		ts, err := pgheartbeats.DayTables(r.ctx, db.Pool, r.day)
		if err != nil {
			return nil, fmt.Errorf("daymove: %s: %w", db.Name, err)
		}
		if len(ts) > 0 {
			out[db.Name] = ts[0]
		}
	}
	return out, nil
}

// copyAndSwitch is steps 2-4: the day is still placed on source.
func (r *run) copyAndSwitch(source daydb.DB, tables map[string]pgheartbeats.DayTable) error {
	ctx, day := r.ctx, r.day
	for name := range tables {
		if name != source.Name && name != r.to.Name {
			return fmt.Errorf("%w: %s is placed on %s but also has a table on %s; run `heartlog shards move %s --to %s` first",
				ErrUnfinished, shards.DisplayDay(day), source.Name, name, shards.DisplayDay(day), source.Name)
		}
	}
	for _, db := range []daydb.DB{source, r.to} {
		if _, has := tables[db.Name]; !has {
			continue
		}
		fenced, err := pgheartbeats.Fenced(ctx, db.Pool, day)
		if err != nil {
			return err
		}
		switch {
		case fenced && db.Name == r.to.Name:
			// Only a move away from a database fences it, after switching
			// the day away from it: that move has not dropped its copy.
			return fmt.Errorf("%w: %s's table on %s is fenced by a move to %s that has not finished; run `heartlog shards move %s --to %s` first",
				ErrUnfinished, shards.DisplayDay(day), db.Name, source.Name, shards.DisplayDay(day), source.Name)
		case fenced:
			// No move leaves this: the day's own database refuses its rows.
			return fmt.Errorf("daymove: %s's table on %s, where it is placed, is fenced (constraint %s), so its writes fail; no move leaves that state: look before you drop the constraint",
				shards.DisplayDay(day), db.Name, pgheartbeats.FenceConstraint)
		}
	}
	if err := pgheartbeats.CreatePartition(ctx, r.to.Pool, day); err != nil {
		return fmt.Errorf("daymove: %s: %w", r.to.Name, err)
	}
	if err := r.done(StepPartition, pgheartbeats.PartitionName(day)+" on "+r.to.Name); err != nil {
		return err
	}
	if _, has := tables[source.Name]; has {
		n, err := r.copy(source)
		if err != nil {
			return err
		}
		r.sum.Copied += n
	}
	if err := r.done(StepCopy, fmt.Sprintf("%d rows inserted on %s", r.sum.Copied, r.to.Name)); err != nil {
		return err
	}
	if err := r.m.days.Switch(ctx, day, source.Name, r.to.Name); err != nil {
		return err
	}
	r.sum.From = source.Name
	return r.done(StepSwitch, fmt.Sprintf("%s placed on %s", shards.DisplayDay(day), r.to.Name))
}

// finish is steps 5-9 for a table of the day on src, which the day is no
// longer placed on.
func (r *run) finish(src daydb.DB) error {
	ctx, day := r.ctx, r.day
	if r.sum.From == "" {
		r.sum.From = src.Name
		r.printf("resuming: %s is placed on %s, and %s still has a table of it", shards.DisplayDay(day), r.to.Name, src.Name)
	}
	fenced, err := pgheartbeats.Fenced(ctx, src.Pool, day)
	if err != nil {
		return err
	}
	if !fenced {
		// The fence comes after the settle, so a fenced source has
		// settled already; else wait what is left of it since the switch.
		if err := r.settle(); err != nil {
			return err
		}
		if err := r.fence(src); err != nil {
			return err
		}
	}
	if err := r.done(StepFence, pgheartbeats.PartitionName(day)+" on "+src.Name+" refuses new rows"); err != nil {
		return err
	}
	n, err := r.copy(src)
	if err != nil {
		return err
	}
	r.sum.Recopied += n
	if err := r.done(StepRecopy, fmt.Sprintf("%d rows inserted on %s after the fence", n, r.to.Name)); err != nil {
		return err
	}
	v, err := verify(ctx, src, r.to, day)
	if err != nil {
		return err
	}
	if v.missing > 0 || v.differ > 0 {
		return fmt.Errorf("%w: of %d rows on %s, %d are missing on %s and %d differ (first: %s); nothing dropped",
			ErrMismatch, v.source, src.Name, v.missing, r.to.Name, v.differ, v.first)
	}
	r.sum.Verified = v.source
	if err := r.done(StepVerify, fmt.Sprintf("all %d rows of %s are on %s (%d there)", v.source, src.Name, r.to.Name, v.target)); err != nil {
		return err
	}
	if err := r.detach(src); err != nil {
		return err
	}
	if err := r.done(StepDetach, pgheartbeats.PartitionName(day)+" detached on "+src.Name); err != nil {
		return err
	}
	if err := pgheartbeats.DropTable(ctx, src.Pool, day); err != nil {
		return fmt.Errorf("daymove: %s: %w", src.Name, err)
	}
	return r.done(StepDrop, pgheartbeats.PartitionName(day)+" dropped on "+src.Name)
}

// settle waits until Settle has passed since the placement was switched,
// by the catalog's clock (a resumed move does not wait twice).
func (r *run) settle() error {
	_, age, _, err := r.m.days.PlacedFor(r.ctx, r.day)
	if err != nil {
		return err
	}
	wait := max(r.m.opts.Settle-age, 0)
	r.printf("settle: waiting %s so that every process reads the new placement (settle %s)", wait.Round(time.Millisecond), r.m.opts.Settle)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-t.C:
	}
	r.sum.Settled += wait
	return r.done(StepSettle, "")
}

// fence fences src's table, retrying while long readers hold it.
func (r *run) fence(src daydb.DB) error {
	for {
		err := pgheartbeats.Fence(r.ctx, src.Pool, r.day, r.m.opts.FenceLockTimeout)
		if err == nil || r.ctx.Err() != nil || !lockTimedOut(err) {
			if err != nil {
				return fmt.Errorf("daymove: %s: %w", src.Name, err)
			}
			return nil
		}
		r.printf("fence: %s is busy (lock timeout %s); trying again", pgheartbeats.PartitionName(r.day), r.m.opts.FenceLockTimeout)
	}
}

// detach takes src's table out of heartbeats, from wherever an earlier
// run left it.
func (r *run) detach(src daydb.DB) error {
	ts, err := pgheartbeats.DayTables(r.ctx, src.Pool, r.day)
	if err != nil || len(ts) == 0 || !ts[0].Attached {
		return err
	}
	if err := pgheartbeats.Detach(r.ctx, src.Pool, r.day, ts[0].DetachPending); err != nil {
		return fmt.Errorf("daymove: %s: %w", src.Name, err)
	}
	return nil
}
