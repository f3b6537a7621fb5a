package dumps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	"heartlog/progress"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
	"heartlog/users"
)

// Options configure an import. Zero fields take the defaults.
type Options struct {
	// User owns every heartbeat imported (ID and ObjectPrefix are used).
	User users.User
	// Format is the file's format (required).
	Format Format
	// Limits are the heartbeat limits of live ingest (default
	// heartbeat.DefaultLimits; MaxHeartbeats, a per-request limit, does
	// not apply).
	Limits heartbeat.Limits
	// UserAgents and Machines map WakaTime's ids to their values (from its
	// GET /users/current/user_agents and /machine_names): a dump's
	// heartbeat names its user agent and machine only by id. A mapped id
	// becomes the heartbeat's user_agent (hence editor, plugin and
	// operating system) or machine, as a live heartbeat has them; an
	// unmapped one is kept among its unknown fields.
	UserAgents, Machines map[string]string
	// InFlight is how many messages may wait for the server's ack at once
	// (default 32): the import's share of the server, which bounds how
	// much of the disk's fsyncs it takes from live ingest.
	InFlight int
	// MaxMessageBytes is the size at which a (day, partition) batch is
	// sent (default 512 KiB, as ingest's publisher).
	MaxMessageBytes int
	// MaxOpenDays is how many days are batched at once (default 8): a day
	// is sent once MaxOpenDays later days have begun, so a file in day
	// order (a dump, an export) is sent while it is read; an unsorted one
	// sends its batches smaller, never more memory.
	MaxOpenDays int
	// Rate, if positive, is a ceiling in heartbeats per second.
	Rate float64
	// DayMaxHeartbeats, if positive, refuses heartbeats of a UTC day past
	// that many, as ingest does (HEARTLOG_DAY_MAX_HEARTBEATS).
	DayMaxHeartbeats int
	// DayMaxBytes, if positive, refuses heartbeats of a UTC day whose day
	// file would grow past that many bytes, as ingest does
	// (HEARTLOG_DAY_MAX_BYTES): the day-file sinks park a day past it.
	DayMaxBytes int64
	// Capacity, if set, pauses the import while the stream is nearly
	// full, as ingest answers 503 then (*streams.Fill).
	Capacity interface {
		Full() (full bool, used, max int64)
	}
	// Size is the file's size in bytes, if known: the progress line's ETA.
	Size int64
	// Progress, if set, is called every ProgressEvery (default 2 s) and
	// once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Refused, if set, is called for each refused record, in file order.
	Refused func(Refusal)
	// Now is the clock validation checks times against (default
	// time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Limits == (heartbeat.Limits{}) {
		o.Limits = heartbeat.DefaultLimits
	}
	if o.InFlight <= 0 {
		o.InFlight = 32
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 512 << 10
	}
	if o.MaxOpenDays <= 0 {
		o.MaxOpenDays = 8
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Refusal is a record that was not imported, and why.
type Refusal struct {
	Record int64  // 1-based, in file order
	Line   int64  // NDJSON: the line; 0 for a dump
	Offset int64  // byte offset of the record in the uncompressed file
	Date   string // a dump: the "date" of its day
	Where  string // all of the above, for a person
	Reason string
}

// Result sums up an import.
type Result struct {
	// Read counts the records read; Imported the heartbeats the log
	// stored; Refused the records refused; Duplicates the heartbeats the
	// log already had (messages it dropped as repeats within its
	// duplicate window) or that the file holds twice. Past the window a
	// repeat is stored again and the sinks drop it, uncounted here.
	Read, Imported, Refused, Duplicates int64
	// Messages is how many messages the import sent.
	Messages int64
	// Bytes is how much of the file was read.
	Bytes   int64
	Elapsed time.Duration
}

// Progress is a snapshot of a running import.
type Progress struct {
	Result
	Size int64 // the file's size, 0 when unknown
	// Waiting says why the import is paused, if it is.
	Waiting string
	Done    bool
}

// Rate is heartbeats read per second so far.
func (p Progress) Rate() float64 { return progress.Rate(float64(p.Read), p.Elapsed) }

// ETA is the time left at the rate so far, from the bytes left; zero when
// the size is unknown.
func (p Progress) ETA() time.Duration {
	return progress.ETA(float64(p.Bytes), float64(p.Size), p.Elapsed)
}

// ErrRefused is matched by the error Import returns when it imported
// everything else but refused some records.
var ErrRefused = errors.New("dumps: refused")

// Import reads r in o.Format and appends its heartbeats to the log, as
// o.User's, and returns once the log has acked every message or ctx ends.
// Each record is validated and prepared as a live heartbeat; a record
// that is refused is reported (o.Refused) and the rest goes on, and the
// error then matches ErrRefused. A file that breaks off (ErrNotDump) or a
// log that stops acking ends the import with what came before it in the
// log: running the same import again completes it and duplicates nothing.
func Import(ctx context.Context, js jetstream.JetStream, sc streams.Config, r io.Reader, o Options) (Result, error) {
	o.setDefaults()
	if o.User.ID == "" || o.User.ObjectPrefix == "" {
		return Result{}, errors.New("dumps: import needs a user with an id and an object prefix")
	}
	var records func(io.Reader) iter.Seq2[record, error]
	switch o.Format {
	case WakaTime:
		records = wakatimeRecords
	case NDJSON:
		records = ndjsonRecords
	default:
		return Result{}, fmt.Errorf("dumps: unknown format %v", o.Format)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	in := &importer{o: o, js: js, sc: sc, start: time.Now(), cancel: cancel,
		partition: streams.Partition(o.User.ID, sc.Partitions),
		open:      map[string]*openBatch{}, days: map[string]int{}, bytes: map[string]int64{},
		window: make(chan *pending, o.InFlight), acked: make(chan struct{})}
	if o.Rate > 0 {
		in.pace = rate.NewLimiter(rate.Limit(o.Rate), max(int(o.Rate), 1)+5000)
	}
	in.file = &counter{r: r}
	go in.ackLoop(ctx)
	stopProgress := in.reportProgress()

	var readErr error
	for ch := range decodeParallel(ctx, records(in.file), in.o, &readErr) {
		for i := range ch.recs {
			in.take(ctx, ch.recs[i], ch.out[i])
		}
	}
	if ctx.Err() == nil {
		in.flushAll(ctx)
	}
	close(in.window)
	<-in.acked
	res := in.result()
	stopProgress(res)
	switch {
	case context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), context.Canceled):
		return res, context.Cause(ctx)
	case ctx.Err() != nil:
		return res, ctx.Err()
	case readErr != nil:
		return res, readErr
	case res.Refused > 0:
		return res, fmt.Errorf("%w: %d of %d records (the other %d imported)", ErrRefused, res.Refused, res.Read, res.Read-res.Refused)
	}
	return res, nil
}

type importer struct {
	o         Options
	js        jetstream.JetStream
	sc        streams.Config
	start     time.Time
	cancel    context.CancelCauseFunc
	partition uint32
	file      *counter
	pace      *rate.Limiter

	open  map[string]*openBatch // by day (one user: one partition)
	seq   int64                 // orders open batches by last use
	days  map[string]int        // heartbeats taken per day, for the cap
	bytes map[string]int64      // their day-file lines' bytes, for the other cap
	total int64                 // heartbeats taken into batches

	window chan *pending
	acked  chan struct{}

	read, refused, imported, duplicates, messages atomic.Int64
	waiting                                       atomic.Value // string
}

type openBatch struct {
	batch   *heartlogv1.Batch
	size    int
	ids     map[string]bool
	touched int64
}

type pending struct {
	batch *heartlogv1.Batch
	fut   jetstream.PubAckFuture
	err   error
}

// take batches one decoded and prepared record, or refuses it.
func (in *importer) take(ctx context.Context, rec record, d decoded) {
	in.read.Add(1)
	hb, err := d.hb, d.err
	if err == nil && in.o.DayMaxHeartbeats > 0 && in.days[heartbeat.Day(hb)] >= in.o.DayMaxHeartbeats {
		err = fmt.Errorf("time falls on the UTC day %s, which already holds %d heartbeats of this import, the most one user-day may hold (HEARTLOG_DAY_MAX_HEARTBEATS)",
			heartbeat.TimeOf(hb).Format(time.DateOnly), in.o.DayMaxHeartbeats)
	}
	size := 0
	if err == nil && in.o.DayMaxBytes > 0 {
		if size, err = dayfile.LineSize(hb); err == nil && in.bytes[heartbeat.Day(hb)]+int64(size) > in.o.DayMaxBytes {
			err = fmt.Errorf("time falls on the UTC day %s, whose day file would grow past %d bytes with this import, the most one user-day may hold (HEARTLOG_DAY_MAX_BYTES)",
				heartbeat.TimeOf(hb).Format(time.DateOnly), in.o.DayMaxBytes)
		}
	}
	if err != nil {
		in.refuse(rec, err.Error())
		return
	}
	in.add(ctx, hb, size)
}

func (in *importer) refuse(rec record, reason string) {
	in.refused.Add(1)
	if in.o.Refused != nil {
		in.o.Refused(Refusal{Record: rec.index, Line: rec.line, Offset: rec.offset, Date: rec.date, Where: rec.where(), Reason: reason})
	}
}

// add puts a prepared heartbeat into its day's batch, sending the batch
// first when it would grow past MaxMessageBytes, and the least recently
// used batch when too many days are open. Batches depend only on the
// file, so the same file always makes the same messages (and message
// ids): what lets the server drop a re-run's repeats.
func (in *importer) add(ctx context.Context, hb *heartlogv1.Heartbeat, lineSize int) {
	day := heartbeat.Day(hb)
	size := proto.Size(hb) + 8
	b := in.open[day]
	if b != nil && b.ids[hb.Id] {
		in.duplicates.Add(1)
		return
	}
	if b != nil && b.size+size > in.o.MaxMessageBytes {
		in.send(ctx, b)
		delete(in.open, day)
		b = nil
	}
	if b == nil {
		if len(in.open) >= in.o.MaxOpenDays {
			in.flushOldest(ctx)
		}
		b = &openBatch{batch: &heartlogv1.Batch{Day: day, Partition: in.partition,
			ObjectPrefixes: map[string]string{in.o.User.ID: in.o.User.ObjectPrefix}}, ids: map[string]bool{}}
		in.open[day] = b
	}
	in.seq++
	b.touched = in.seq
	b.batch.Heartbeats = append(b.batch.Heartbeats, hb)
	b.ids[hb.Id] = true
	b.size += size
	in.days[day]++
	in.bytes[day] += int64(lineSize)
	in.total++
}

func (in *importer) flushOldest(ctx context.Context) {
	var oldest *openBatch
	for _, b := range in.open {
		if oldest == nil || b.touched < oldest.touched {
			oldest = b
		}
	}
	in.send(ctx, oldest)
	delete(in.open, oldest.batch.Day)
}

// flushAll sends the open batches, oldest day first.
func (in *importer) flushAll(ctx context.Context) {
	days := make([]string, 0, len(in.open))
	for d := range in.open {
		days = append(days, d)
	}
	slices.Sort(days)
	for _, d := range days {
		if ctx.Err() != nil {
			return
		}
		in.send(ctx, in.open[d])
		delete(in.open, d)
	}
}

// send publishes one batch without waiting for its ack, once the pace,
// the stream's room and the window allow.
func (in *importer) send(ctx context.Context, b *openBatch) {
	n := len(b.batch.Heartbeats)
	if in.pace != nil {
		if err := in.pace.WaitN(ctx, min(n, in.pace.Burst())); err != nil {
			return
		}
	}
	in.awaitRoom(ctx)
	p := &pending{batch: b.batch}
	if msg, err := streams.BatchMsg(b.batch); err != nil {
		p.err = err
	} else {
		p.fut, p.err = streams.PublishAsync(in.js, in.sc, msg, streams.MsgID(b.batch))
	}
	in.messages.Add(1)
	select {
	case in.window <- p:
	case <-ctx.Done():
	}
}

// awaitRoom pauses while the stream is nearly full: live ingest is refused
// then, and an import must not take the last of the room.
func (in *importer) awaitRoom(ctx context.Context) {
	if in.o.Capacity == nil {
		return
	}
	for {
		full, used, limit := in.o.Capacity.Full()
		if !full {
			in.waiting.Store("")
			return
		}
		in.waiting.Store(fmt.Sprintf("the stream is nearly full (%s); waiting for room", streams.FillPercent(used, limit)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// Retries of a message the server did not ack: the same message id, so a
// retry of one it did store is dropped as a duplicate.
const (
	ackTimeout   = 30 * time.Second
	publishTries = 5
)

// ackLoop waits for each message's ack in order, retrying a message that
// failed, and ends the import when one still fails.
func (in *importer) ackLoop(ctx context.Context) {
	defer close(in.acked)
	for p := range in.window {
		if ctx.Err() != nil {
			continue // drain: the import is ending
		}
		ack, err := in.await(ctx, p)
		for try := 1; err != nil && try < publishTries && ctx.Err() == nil; try++ {
			wait := time.Duration(try) * time.Second
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			ack, err = in.republish(ctx, p.batch)
		}
		if err != nil {
			in.cancel(fmt.Errorf("dumps: the log did not store a message of %d heartbeats of %s after %d tries (run the import again: it adds nothing twice): %w",
				len(p.batch.Heartbeats), p.batch.Day, publishTries, err))
			continue
		}
		n := int64(len(p.batch.Heartbeats))
		if ack.Duplicate {
			in.duplicates.Add(n)
		} else {
			in.imported.Add(n)
		}
	}
}

func (in *importer) await(ctx context.Context, p *pending) (*jetstream.PubAck, error) {
	if p.err != nil {
		return nil, p.err
	}
	t := time.NewTimer(ackTimeout)
	defer t.Stop()
	select {
	case ack := <-p.fut.Ok():
		return ack, nil
	case err := <-p.fut.Err():
		return nil, err
	case <-t.C:
		return nil, errors.New("no ack within " + ackTimeout.String())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (in *importer) republish(ctx context.Context, b *heartlogv1.Batch) (*jetstream.PubAck, error) {
	msg, err := streams.BatchMsg(b)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	return in.js.PublishMsg(pctx, msg, jetstream.WithMsgID(streams.MsgID(b)), jetstream.WithExpectStream(in.sc.Stream))
}

func (in *importer) result() Result {
	return Result{Read: in.read.Load(), Imported: in.imported.Load(), Refused: in.refused.Load(),
		Duplicates: in.duplicates.Load(), Messages: in.messages.Load(), Bytes: in.file.n.Load(),
		Elapsed: time.Since(in.start)}
}

// reportProgress calls Progress every ProgressEvery; the returned function
// stops it and reports the end.
func (in *importer) reportProgress() func(Result) {
	if in.o.Progress == nil {
		return func(Result) {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(in.o.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				w, _ := in.waiting.Load().(string)
				in.o.Progress(Progress{Result: in.result(), Size: in.o.Size, Waiting: w})
			}
		}
	}()
	return func(res Result) {
		close(stop)
		wg.Wait()
		in.o.Progress(Progress{Result: res, Size: in.o.Size, Done: true})
	}
}
