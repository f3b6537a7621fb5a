package compaction

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"heartlog/processors"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/shards"
	"heartlog/streams"
)

// ErrDayOpen means a compaction was asked for a day that is not closed.
var ErrDayOpen = errors.New("compaction: the day is open")

// ErrDayNotOver means CloseDay was asked for today or a future day.
var ErrDayNotOver = errors.New("compaction: the day has not ended yet")

// Options tune a Compactor. Zero fields take the defaults.
type Options struct {
	// MemoryBytes is how much of a partition-day's heartbeats one
	// compaction holds in memory before it spills a sorted run to TempDir
	// (default 32 MiB, counted generously: protobuf size plus 512 bytes a
	// heartbeat): while it reads, its sort buffer; while it writes, the
	// groups its sinks' passes hold (see GroupHeartbeats), or the sorted
	// heartbeats they share when nothing spilled. The live heap peaks near
	// Partitions times this, and the Go collector lets the heap grow to
	// about twice the live heap: with the defaults some 256 MiB, however
	// large the day.
	MemoryBytes int64
	// TempDir holds the runs (default os.TempDir()); each compaction makes
	// a directory of its own there and removes it when it ends.
	TempDir string
	// Partitions is how many partitions CloseDay compacts at once
	// (default 4).
	Partitions int
	// GroupUsers is how many user-days one Commit takes (default 256), and
	// GroupHeartbeats how many heartbeats past which a group is committed
	// early (default: what keeps the groups of every sink's pass of a
	// partition within MemoryBytes together, about 16,000 heartbeats a
	// sink with the defaults). A user-day is never split across commits,
	// so one larger than that is committed alone.
	GroupUsers, GroupHeartbeats int
	// Settle is how long after a day is marked closed CloseDay waits
	// before the first bound is taken (default 5s): the time the late-path
	// consumers' watches of the shards bucket need to see it, as the
	// janitor's settle (shards.Options.Settle).
	Settle time.Duration
	// CloseDelay is how long after a UTC day ends it is due to close
	// (default 1h, HEARTLOG_DAY_CLOSE_DELAY); List marks an open day past it.
	CloseDelay time.Duration
	// LateProcessors are the processors whose late consumers a close opens
	// to the day (default objects, cache and backup: all of them, whichever
	// sinks this compactor writes).
	LateProcessors []string
	// Interval is how often Run looks for days to close (default 1m).
	Interval time.Duration
	// LockTTL is the per-(day, partition) lock's time to live (default
	// 30s); it is renewed every LockTTL/3 while the compaction works.
	LockTTL time.Duration
	// Owner names this compactor in locks and records (default
	// hostname:pid).
	Owner string
	// Now is the clock CloseDay judges "has the day ended" by (default
	// time.Now).
	Now func() time.Time
	// ProgressEvery is how often a long pass logs its progress (default 10s).
	ProgressEvery time.Duration
	// Log receives progress lines and parked heartbeats.
	Log zerolog.Logger
	// AfterCommit, when set, is called after each Commit of a pass with
	// the user-days the pass has committed so far. A hook for tests (to
	// stop a compaction between user-days); leave it nil.
	AfterCommit func(day string, partition uint32, processor string, userDays int)
}

func (o *Options) defaults() {
	if o.MemoryBytes <= 0 {
		o.MemoryBytes = 32 << 20
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	if o.GroupUsers <= 0 {
		o.GroupUsers = 256
	}
	if o.Settle <= 0 {
		o.Settle = 5 * time.Second
	}
	if o.CloseDelay <= 0 {
		o.CloseDelay = time.Hour
	}
	if len(o.LateProcessors) == 0 {
		o.LateProcessors = []string{streams.DurableObjects, streams.DurableCache, streams.DurableBackup}
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 30 * time.Second
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10 * time.Second
	}
}

// Compactor closes days and compacts their partitions.
type Compactor struct {
	js   jetstream.JetStream
	sc   streams.Config
	dead *streams.DeadLetters
	opts Options
}

// New returns a Compactor over the stream and buckets sc names.
func New(js jetstream.JetStream, sc streams.Config, opts Options) *Compactor {
	opts.defaults()
	return &Compactor{js: js, sc: sc, dead: streams.NewDeadLetters(js, sc), opts: opts}
}

// Result is what one Compact did.
type Result struct {
	Day       string // YYYYMMDD
	Partition uint32
	// Seq is the bound: the subject's last sequence when the compaction
	// began (0: no message, or every sink was already recorded).
	Seq uint64
	// Messages, Heartbeats (distinct) and UserDays read up to Seq.
	Messages, Heartbeats, UserDays int
	// Runs is how many sorted runs were spilled to disk (0: all in memory).
	Runs int
	// Sinks is each sink's record, by processor name.
	Sinks map[string]SinkResult
	Took  time.Duration
}

// SinkResult is one sink's part of a Result.
type SinkResult struct {
	streams.Compaction
	// Skipped: an earlier run recorded it; this one did nothing for it.
	Skipped bool
}

// LockName is the key of a (day, partition)'s compaction lock in the locks
// bucket.
func LockName(day string, partition uint32) string {
	return fmt.Sprintf("compaction-%s-p%02d", day, partition)
}

// Compact writes every user-day of (day, partition) once to each sink
// that has no record for it yet, and records each as soon as it has
// committed them all (see the package doc). The day (YYYY-MM-DD or
// YYYYMMDD) must be closed (CloseDay); otherwise it returns ErrDayOpen.
// When another compactor holds the partition's lock it returns an error
// matching shards.ErrHeld. When ctx ends it returns ctx's error, with the
// sinks that finished recorded and the others left for the next run.
// A record's Files counts the writes of stores that Sinks built; a sink
// built otherwise records 0.
func (c *Compactor) Compact(ctx context.Context, day string, partition uint32, sinks ...processors.Sink) (Result, error) {
	day, err := shards.ParseDay(day)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	res := Result{Day: day, Partition: partition, Sinks: map[string]SinkResult{}}
	kv, err := c.js.KeyValue(ctx, c.sc.ShardsBucket)
	if err != nil {
		return res, fmt.Errorf("compaction: open KV bucket %s: %w", c.sc.ShardsBucket, err)
	}
	if lc, _, _, err := streams.GetLifecycle(ctx, kv, day); err != nil {
		return res, err
	} else if lc.State != streams.DayClosed {
		return res, fmt.Errorf("%w: close %s first (heartlog days close)", ErrDayOpen, shards.DisplayDay(day))
	}
	held, done, err := c.lock(ctx, day, partition)
	if err != nil {
		return res, err
	}
	defer done()
	todo, err := pending(held, kv, &res, sinks)
	if err != nil || len(todo) == 0 {
		res.Took = time.Since(start)
		return res, err
	}
	p := &pass{c: c, kv: kv, day: day, partition: partition, subject: streams.Subject(day, partition),
		groupHeartbeats: c.opts.GroupHeartbeats}
	if p.groupHeartbeats <= 0 {
		// The sinks' passes run at once, each holding one group.
		p.groupHeartbeats = max(1, int(c.opts.MemoryBytes/(entryOverhead+256))/len(todo))
	}
	defer p.cleanup()
	if err := p.read(held); err != nil {
		return res, lockCause(held, err)
	}
	res.Seq, res.Messages, res.Runs = p.bound, p.messages, p.sort.Runs()
	err = p.commitAll(held, todo, &res)
	res.Took = time.Since(start)
	return res, lockCause(held, err)
}

// pending returns the sinks without a record of res's (day, partition),
// and files the records of the others into res as skipped.
func pending(ctx context.Context, kv jetstream.KeyValue, res *Result, sinks []processors.Sink) ([]processors.Sink, error) {
	var todo []processors.Sink
	for _, s := range sinks {
		rec, ok, err := streams.GetCompaction(ctx, kv, res.Day, res.Partition, s.Name())
		if err != nil {
			return nil, err
		}
		if !ok {
			todo = append(todo, s)
			continue
		}
		res.Sinks[s.Name()] = SinkResult{Compaction: rec, Skipped: true}
		res.Seq, res.Messages, res.Heartbeats, res.UserDays = rec.Seq, rec.Messages, rec.Heartbeats, rec.UserDays
	}
	return todo, nil
}

// lock takes (day, partition)'s lock and keeps it renewed; the returned
// context ends when it is lost. done stops renewing and releases it.
func (c *Compactor) lock(ctx context.Context, day string, partition uint32) (context.Context, func(), error) {
	locks, err := c.js.KeyValue(ctx, c.sc.LocksBucket)
	if err != nil {
		return nil, nil, fmt.Errorf("compaction: open KV bucket %s: %w", c.sc.LocksBucket, err)
	}
	lock, err := shards.Acquire(ctx, locks, LockName(day, partition), c.opts.Owner, c.opts.LockTTL, shards.WithJetStream(c.js))
	if err != nil {
		return nil, nil, err
	}
	held, stop := lock.Keep(ctx, 0)
	return held, func() {
		stop()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := lock.Release(rctx); err != nil && !errors.Is(err, shards.ErrLost) {
			c.opts.Log.Warn().Err(err).Str("lock", lock.Name()).Msg("compaction: release lock (it expires by itself)")
		}
	}, nil
}

// lockCause turns an error seen under the lock into the lock's loss when
// that is why the work stopped.
func lockCause(held context.Context, err error) error {
	if err != nil && held.Err() != nil {
		if c := context.Cause(held); errors.Is(c, shards.ErrLost) {
			return fmt.Errorf("%w (stopped: %v)", c, err)
		}
	}
	return err
}

// pass is one Compact's reading of the subject and its sorted heartbeats,
// which every sink's commit then walks on its own.
type pass struct {
	c         *Compactor
	kv        jetstream.KeyValue
	day       string
	partition uint32
	subject   string

	groupHeartbeats int

	bound    uint64
	messages int
	dir      string
	sort     *sorter
	raw      []rawMsg // messages that did not decode
}

type rawMsg struct {
	seq  uint64
	data []byte
	err  error
}

// read takes the bound and reads the subject up to it into the sorter.
func (p *pass) read(ctx context.Context) error {
	stream, err := p.c.js.Stream(ctx, p.c.sc.Stream)
	if err != nil {
		return fmt.Errorf("compaction: stream %s: %w", p.c.sc.Stream, err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, p.subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		p.sort = newSorter("", p.c.opts.MemoryBytes)
		return p.sort.finish() // nothing to read: the bound stays 0
	case err != nil:
		return fmt.Errorf("compaction: last message on %s: %w", p.subject, err)
	}
	p.bound = last.Sequence
	if p.dir, err = os.MkdirTemp(p.c.opts.TempDir, fmt.Sprintf("heartlog-compaction-%s-p%02d-", p.day, p.partition)); err != nil {
		return fmt.Errorf("compaction: temporary directory (Options.TempDir): %w", err)
	}
	p.sort = newSorter(p.dir, p.c.opts.MemoryBytes)
	cons, err := p.c.js.OrderedConsumer(ctx, p.c.sc.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{p.subject}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("compaction: read %s: %w", p.subject, err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(1024, 8<<20))
	if err != nil {
		return fmt.Errorf("compaction: read %s: %w", p.subject, err)
	}
	defer iter.Stop()
	for {
		msg, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("compaction: read %s: %w", p.subject, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("compaction: read %s: %w", p.subject, err)
		}
		seq := meta.Sequence.Stream
		if seq > p.bound {
			break // the bound's message is gone (aged out): all before it is read
		}
		if err := p.add(seq, msg.Data()); err != nil {
			return err
		}
		if seq == p.bound || meta.NumPending == 0 {
			break
		}
	}
	return p.sort.finish()
}

// add files one message's heartbeats into the sort.
func (p *pass) add(seq uint64, data []byte) error {
	p.messages++
	b, err := streams.DecodeBatch(data)
	if err != nil {
		p.raw = append(p.raw, rawMsg{seq: seq, data: data, err: err})
		return nil
	}
	for _, hb := range b.Heartbeats {
		if hb == nil {
			continue
		}
		if err := p.sort.add(b.ObjectPrefixes[hb.UserId], hb); err != nil {
			return err
		}
	}
	return nil
}

func (p *pass) cleanup() {
	if p.dir != "" {
		if err := os.RemoveAll(p.dir); err != nil {
			p.c.opts.Log.Warn().Err(err).Str("dir", p.dir).Msg("compaction: could not remove its runs")
		}
	}
}

// commitAll runs every sink's pass at once and files the records made
// into res; it returns every pass's failure.
func (p *pass) commitAll(ctx context.Context, sinks []processors.Sink, res *Result) error {
	var (
		wg   sync.WaitGroup
		recs = make([]streams.Compaction, len(sinks))
		errs = make([]error, len(sinks))
	)
	for i, s := range sinks {
		wg.Go(func() { recs[i], errs[i] = p.commit(ctx, s) })
	}
	wg.Wait()
	for i, s := range sinks {
		if errs[i] != nil {
			errs[i] = fmt.Errorf("%s: %w", s.Name(), errs[i])
			continue
		}
		res.Sinks[s.Name()] = SinkResult{Compaction: recs[i]}
		res.Heartbeats, res.UserDays = recs[i].Heartbeats, recs[i].UserDays
	}
	return errors.Join(errs...)
}

// commit walks the sorted heartbeats once for sink, committing groups of
// whole user-days, and records the sink's compaction when all are in.
func (p *pass) commit(ctx context.Context, sink processors.Sink) (streams.Compaction, error) {
	o := p.c.opts
	start := time.Now()
	log := o.Log.With().Str("processor", sink.Name()).Str("day", shards.DisplayDay(p.day)).Uint32("partition", p.partition).Logger()
	cm := processors.NewCommitter(sink, p.c.dead, processors.CommitterOptions{Log: o.Log})
	files := &atomic.Int64{}
	ctx = withCounter(ctx, files)
	for _, r := range p.raw {
		if err := cm.ParkUndecodable(ctx, p.subject, r.seq, r.data, r.err); err != nil {
			return streams.Compaction{}, err
		}
	}
	it, err := p.sort.pass()
	if err != nil {
		return streams.Compaction{}, err
	}
	defer it.Close()
	rec := streams.Compaction{Seq: p.bound, Messages: p.messages}
	g := grouper{day: p.day, partition: p.partition, users: o.GroupUsers, heartbeats: p.groupHeartbeats}
	reported := time.Now()
	flush := func(group []*heartlogv1.Batch) error {
		if err := cm.Commit(ctx, group); err != nil {
			return err
		}
		rec.UserDays += len(group)
		if o.AfterCommit != nil {
			o.AfterCommit(p.day, p.partition, sink.Name(), rec.UserDays)
		}
		if time.Since(reported) >= o.ProgressEvery {
			reported = time.Now()
			log.Info().Int("user_days", rec.UserDays).Int("files_written", int(files.Load())).
				Str("elapsed", time.Since(start).Round(time.Millisecond).String()).Msg("compacting")
		}
		return ctx.Err()
	}
	for {
		e, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return streams.Compaction{}, err
		}
		if full := g.add(e); full != nil {
			if err := flush(full); err != nil {
				return streams.Compaction{}, err
			}
		}
	}
	if last := g.end(); len(last) > 0 {
		if err := flush(last); err != nil {
			return streams.Compaction{}, err
		}
	}
	rec.Heartbeats, rec.Files, rec.Parked = g.total, int(files.Load()), cm.Parked()
	rec.At, rec.Took, rec.By = time.Now().UTC(), time.Since(start).Round(time.Millisecond).String(), o.Owner
	// Everything up to the bound is in the sink: a stop now must not lose
	// that (a record is true whoever holds the lock).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := streams.PutCompaction(rctx, p.kv, p.day, p.partition, sink.Name(), rec); errors.Is(err, jetstream.ErrKeyExists) {
		// Another compaction recorded it meanwhile (we read a stale "no
		// record"): its record stands, and our writes were merges.
		log.Info().Msg("partition already recorded by another compaction")
		if prev, ok, gerr := streams.GetCompaction(rctx, p.kv, p.day, p.partition, sink.Name()); gerr == nil && ok {
			return prev, nil
		}
		return rec, nil
	} else if err != nil {
		return streams.Compaction{}, fmt.Errorf("compaction: record %s: %w", streams.CompactionKey(p.day, p.partition, sink.Name()), err)
	}
	log.Info().Uint64("seq", rec.Seq).Int("messages", rec.Messages).Int("heartbeats", rec.Heartbeats).
		Int("user_days", rec.UserDays).Int("files_written", rec.Files).Int("parked", rec.Parked).
		Str("took", rec.Took).Msg("partition compacted")
	return rec, nil
}

// grouper turns entries, in compare order, into batches of one user-day
// each, without copies of a heartbeat, and hands them out in groups.
type grouper struct {
	day               string
	partition         uint32
	users, heartbeats int

	cur     *heartlogv1.Batch
	curUser string
	curPfx  string
	group   []*heartlogv1.Batch
	inGroup int // heartbeats in group
	total   int
}

// add takes one entry; it returns a full group when e starts a user-day
// that does not fit in the group at hand.
func (g *grouper) add(e entry) (full []*heartlogv1.Batch) {
	if g.cur != nil && e.hb.UserId == g.curUser && e.prefix == g.curPfx {
		if last := g.cur.Heartbeats[len(g.cur.Heartbeats)-1]; last.Id == e.hb.Id {
			return nil // a copy (a resend, a redelivered publish)
		}
		g.cur.Heartbeats = append(g.cur.Heartbeats, e.hb)
		g.inGroup++
		g.total++
		return nil
	}
	if g.cur != nil {
		g.group = append(g.group, g.cur)
		if len(g.group) >= g.users || g.inGroup >= g.heartbeats {
			full, g.group, g.inGroup = g.group, nil, 0
		}
	}
	g.cur = &heartlogv1.Batch{
		Day: g.day, Partition: g.partition,
		Heartbeats:     []*heartlogv1.Heartbeat{e.hb},
		ObjectPrefixes: map[string]string{e.hb.UserId: e.prefix},
	}
	g.curUser, g.curPfx = e.hb.UserId, e.prefix
	g.inGroup++
	g.total++
	return full
}

// end returns the last group.
func (g *grouper) end() []*heartlogv1.Batch {
	if g.cur != nil {
		g.group = append(g.group, g.cur)
		g.cur = nil
	}
	out := g.group
	g.group = nil
	return out
}
