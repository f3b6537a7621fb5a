// Package status gathers the state of a whole heartlog (the stream, each
// processor's consumers, the days, the parked heartbeats, the stores, the
// backup verifier's last result) into one Report, and says in plain words
// what needs the operator's attention. `heartlog status` prints it.
//
// Gathering only reads: it creates no stream, consumer or bucket, so it is
// safe on a live system and from cron.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/daydb"
	"heartlog/health"
	"heartlog/heartbeat"
	"heartlog/processors/compaction"
	"heartlog/streams"
)

// Report is the whole system's state at At. Its JSON shape is stable: a
// field may be added, none renamed or removed.
type Report struct {
	At        time.Time  `json:"at"`
	Stream    Stream     `json:"stream"`
	Consumers []Consumer `json:"consumers"`
	Days      Days       `json:"days"`
	Parked    Parked     `json:"parked"`
	Stores    []Store    `json:"stores"`
	Backup    Verify     `json:"backup_verify"`
	// Warnings are what needs attention, in plain words; empty when all
	// is well.
	Warnings []string `json:"warnings"`
}

// Stream is the heartbeats stream's size against its limits. A limit of 0
// is unset; a Fill is 0..1 of its limit.
type Stream struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	MaxBytes int64  `json:"max_bytes"`
	MaxMsgs  int64  `json:"max_msgs"`
	// BytesFill and MsgsFill are 0..1 of MaxBytes and MaxMsgs.
	BytesFill float64 `json:"bytes_fill"`
	MsgsFill  float64 `json:"msgs_fill"`
	// OldestAge is the age of the oldest message (0 when empty), MaxAge
	// the stream's (Go durations in JSON: "54h0m0s").
	OldestAge Duration `json:"oldest_age"`
	MaxAge    Duration `json:"max_age"`
	// OldestDay is the UTC day (YYYYMMDD) of the oldest message.
	OldestDay string `json:"oldest_day,omitempty"`
}

// Consumer is one durable consumer on the stream.
type Consumer struct {
	Name      string `json:"name"`
	Processor string `json:"processor"`
	// Pending are messages not yet delivered, AckPending delivered and not
	// yet acked; Lag is their sum.
	Pending      uint64 `json:"pending"`
	AckPending   int    `json:"ack_pending"`
	Lag          uint64 `json:"lag"`
	Redelivered  int    `json:"redelivered"`
	WaitingPulls int    `json:"waiting_pulls"`
	// Pinned: a client is pinned to the consumer's priority group.
	Pinned bool `json:"pinned"`
	// Bound: a client is pulling (a waiting pull, a pin or a push client).
	Bound bool `json:"bound"`
	// OldestUnacked is the age of the first message past the ack floor (0
	// when caught up).
	OldestUnacked Duration `json:"oldest_unacked"`
}

// Days counts the UTC days by state.
type Days struct {
	Open      int `json:"open"`
	Closed    int `json:"closed"`
	Compacted int `json:"compacted"`
	Dropped   int `json:"dropped"`
	// OldestInPostgres is the oldest day (YYYY-MM-DD) with a placement in
	// the catalog whose shard is not dropped; "" when none or the catalog
	// is unreachable.
	OldestInPostgres string `json:"oldest_in_postgres,omitempty"`
	// Compacting are the compaction locks held now: "2026-11-20 p03".
	Compacting []string `json:"compacting"`
	// Error says why the days could not be read, if so.
	Error string `json:"error,omitempty"`

	compacted map[string]bool // YYYYMMDD
}

// Parked are the heartbeats in the dead-letter stream, by processor.
type Parked struct {
	Total       uint64            `json:"total"`
	ByProcessor map[string]uint64 `json:"by_processor"`
}

// Store is one dependency's reachability (the /readyz probes).
type Store struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Error is the probe's error; the command runs on the operator's
	// machine, so unlike /readyz it shows it.
	Error string `json:"error,omitempty"`
}

// Duration is a time.Duration that is a Go duration string in JSON.
type Duration time.Duration

// MarshalText writes "1h2m3s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Sources are what Gather reads. JS and Streams are required.
type Sources struct {
	JS      jetstream.JetStream
	Streams streams.Config
	// Processors are the processors that should have consumers (default
	// postgres, objects, cache, backup); one without any is a warning.
	Processors []string
	// Days lists the days (compaction.Compactor.List); nil skips them.
	Days func(context.Context) ([]compaction.DayInfo, error)
	// DayFileSinks are the processors a compaction records per partition
	// (catalog.DayFiles()); a closed day is compacted once each has every
	// partition.
	DayFileSinks []string
	// Catalog lists the placements of days; nil skips OldestInPostgres.
	Catalog *daydb.Set
	// Checks are the stores' probes (health.Deps.Checks and the backup
	// bucket's); each gets ProbeTimeout (default 3s).
	Checks       []health.Check
	ProbeTimeout time.Duration
	// StuckAfter is how long a day may stay closed and not compacted, or
	// due and not closed, before it is a warning (default 6h).
	StuckAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Thresholds of the warnings.
const (
	// FillWarn: the stream's fill of MaxBytes or MaxMsgs past which it
	// warns (ingest answers 503 from 95%).
	FillWarn = 0.8
	// AgeWarn: the oldest message's age, of MaxAge, past which it warns
	// when its day is not compacted yet (past MaxAge it is deleted).
	AgeWarn = 0.75
	// LagWarn: a processor's oldest unacked message's age, of MaxAge, past
	// which it warns while the processor runs (as its lag watch logs).
	LagWarn = 0.5
)

// ErrNATS means NATS or the stream could not be read: there is no report.
var ErrNATS = errors.New("status: cannot read the stream from NATS")

// Gather reads everything and returns the report with its warnings. It
// fails (ErrNATS) only when the stream cannot be read; any other source
// that fails is reported in the Report and warned about.
func Gather(ctx context.Context, src Sources) (Report, error) {
	if src.Now == nil {
		src.Now = time.Now
	}
	if len(src.Processors) == 0 {
		src.Processors = []string{streams.DurablePostgres, streams.DurableObjects, streams.DurableCache, streams.DurableBackup}
	}
	if src.StuckAfter <= 0 {
		src.StuckAfter = 6 * time.Hour
	}
	r := Report{At: src.Now().UTC(), Consumers: []Consumer{}, Stores: []Store{}, Warnings: []string{}}
	var stores sync.WaitGroup
	stores.Go(func() { r.Stores = probe(ctx, src.Checks, src.ProbeTimeout) })
	stream, err := src.JS.Stream(ctx, src.Streams.Stream)
	if err != nil {
		stores.Wait()
		return r, fmt.Errorf("%w: stream %s: %w", ErrNATS, src.Streams.Stream, err)
	}
	if r.Stream, err = streamState(ctx, stream, r.At); err != nil {
		stores.Wait()
		return r, fmt.Errorf("%w: %w", ErrNATS, err)
	}
	var w warnings
	if r.Consumers, err = consumers(ctx, stream, r.At); err != nil {
		w.add("cannot list the stream's consumers: %v", err)
	}
	r.Days = days(ctx, src, r.At, &w)
	r.Parked = parked(ctx, src, &w)
	r.Backup = LastVerify(ctx, src.JS)
	stores.Wait()
	w.stream(r.Stream, r.Days)
	w.consumers(r.Consumers, src.Processors, r.Stream.MaxAge)
	w.parked(r.Parked)
	w.stores(r.Stores)
	w.verify(r.Backup, r.At)
	r.Warnings = append(r.Warnings, w...)
	return r, nil
}

func streamState(ctx context.Context, stream jetstream.Stream, now time.Time) (Stream, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return Stream{}, err
	}
	s := Stream{Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
		MaxAge: Duration(info.Config.MaxAge)}
	if info.Config.MaxBytes > 0 {
		s.MaxBytes, s.BytesFill = info.Config.MaxBytes, float64(info.State.Bytes)/float64(info.Config.MaxBytes)
	}
	if info.Config.MaxMsgs > 0 {
		s.MaxMsgs, s.MsgsFill = info.Config.MaxMsgs, float64(info.State.Msgs)/float64(info.Config.MaxMsgs)
	}
	if info.State.Msgs > 0 {
		s.OldestAge = Duration(max(now.Sub(info.State.FirstTime), 0))
		if msg, err := stream.GetMsg(ctx, info.State.FirstSeq); err == nil {
			s.OldestDay, _, _ = streams.ParseSubject(msg.Subject)
		}
	}
	return s, nil
}

// consumers reads every durable consumer on the stream, with one direct get each
// for the age of its oldest unacked message.
func consumers(ctx context.Context, stream jetstream.Stream, now time.Time) ([]Consumer, error) {
	out := []Consumer{}
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		if info.Config.Durable == "" {
			continue // ordered consumers: a replay's, a compaction's, the live status bars': transient
		}
		c := Consumer{Name: info.Name, Processor: processorOf(info.Name),
			Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered,
			WaitingPulls: info.NumWaiting}
		c.Lag = c.Pending + uint64(c.AckPending)
		for _, g := range info.PriorityGroups {
			c.Pinned = c.Pinned || g.PinnedClientID != ""
		}
		c.Bound = c.WaitingPulls > 0 || c.Pinned || info.PushBound
		if c.Lag > 0 {
			if at, ok := oldestUnacked(ctx, stream, info); ok {
				c.OldestUnacked = Duration(max(now.Sub(at), 0))
			}
		}
		out = append(out, c)
	}
	if err := list.Err(); err != nil {
		return out, err
	}
	slices.SortFunc(out, func(a, b Consumer) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// oldestUnacked is the time of the consumer's first message past its ack
// floor: from floor+1 on, the first on one of its filter subjects. A late
// consumer filters on one subject per closed day, and the message at
// floor+1 is most often another's (an open day's, another partition's);
// floor+1 itself may have aged out. One get per filter subject, only for
// a consumer with lag.
func oldestUnacked(ctx context.Context, stream jetstream.Stream, info *jetstream.ConsumerInfo) (time.Time, bool) {
	subjects := info.Config.FilterSubjects
	if f := info.Config.FilterSubject; f != "" {
		subjects = []string{f}
	}
	if len(subjects) == 0 {
		subjects = []string{">"}
	}
	var oldest *jetstream.RawStreamMsg
	for _, subject := range subjects {
		msg, err := stream.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(subject))
		if err == nil && (oldest == nil || msg.Sequence < oldest.Sequence) {
			oldest = msg
		}
	}
	if oldest == nil {
		return time.Time{}, false
	}
	return oldest.Time, true
}

// processorOf is the processor a durable belongs to: "objects-p03" is
// objects' (streams.PartitionDurable).
func processorOf(durable string) string {
	if i := strings.LastIndex(durable, "-p"); i > 0 {
		return durable[:i]
	}
	return durable
}

func days(ctx context.Context, src Sources, now time.Time, w *warnings) Days {
	d := Days{Compacting: []string{}, compacted: map[string]bool{}}
	if src.Days == nil {
		return d
	}
	list, err := src.Days(ctx)
	if err != nil {
		d.Error = err.Error()
		w.add("cannot read the days: %v", err)
		return d
	}
	for _, day := range list {
		switch {
		case day.Lifecycle.State == streams.DayOpen:
			d.Open++
			if end := dayEnd(day.Day); day.Due && now.Sub(end) > src.StuckAfter {
				w.add("day %s ended %s ago and is still open: is a `heartlog process` closing days?", display(day.Day), ago(now.Sub(end)))
			}
		case compacted(day, src):
			d.Compacted++
			d.compacted[day.Day] = true
		default:
			d.Closed++
			if at := day.Lifecycle.ClosedAt; !at.IsZero() && now.Sub(at) > src.StuckAfter {
				w.add("day %s closed %s ago and still not compacted (heartlog days close %s resumes it)", display(day.Day), ago(now.Sub(at)), display(day.Day))
			}
		}
	}
	states, err := shardStates(ctx, src)
	if err != nil {
		w.add("cannot read the shard states: %v", err)
	}
	for _, s := range states {
		if s == streams.ShardDropped {
			d.Dropped++
		}
	}
	if src.Catalog != nil {
		ps, err := src.Catalog.Placements(ctx)
		if err != nil {
			w.add("cannot read the days' placements from the catalog (the oldest day in Postgres is unknown): %v", err)
		}
		for _, p := range ps {
			if day := p.Day.Format(heartbeat.DayLayout); states[day] != streams.ShardDropped {
				d.OldestInPostgres = p.Day.Format(time.DateOnly)
				break
			}
		}
	}
	if d.Compacting, err = compacting(ctx, src); err != nil {
		w.add("cannot read the compaction locks (KV bucket %s): %v", src.Streams.LocksBucket, err)
	}
	return d
}

// compacted: closed, and every day-file sink recorded every partition.
func compacted(d compaction.DayInfo, src Sources) bool {
	if d.Lifecycle.State != streams.DayClosed || len(src.DayFileSinks) == 0 {
		return false
	}
	for _, name := range src.DayFileSinks {
		if d.Sinks[name].Partitions < int(src.Streams.Partitions) {
			return false
		}
	}
	return true
}

// shardStates are the bare-day keys of the shards bucket.
func shardStates(ctx context.Context, src Sources) (map[string]streams.ShardState, error) {
	out := map[string]streams.ShardState{}
	kv, err := src.JS.KeyValue(ctx, src.Streams.ShardsBucket)
	if err != nil {
		return out, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return out, err
	}
	defer func() { _ = w.Stop() }()
	for e := range w.Updates() {
		if e == nil {
			break
		}
		if _, err := time.Parse(heartbeat.DayLayout, e.Key()); err != nil {
			continue
		}
		var sh streams.Shard
		if err := json.Unmarshal(e.Value(), &sh); err != nil || sh.State == "" {
			sh.State = streams.ShardDraining // as the janitor reads it
		}
		out[e.Key()] = sh.State
	}
	return out, nil
}

// compacting are the compaction locks held (compaction.LockName).
func compacting(ctx context.Context, src Sources) ([]string, error) {
	out := []string{}
	kv, err := src.JS.KeyValue(ctx, src.Streams.LocksBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return out, nil // nothing has ever locked
	} else if err != nil {
		return out, err
	}
	keys, err := kv.ListKeys(ctx) // a key is one token: no filter can take a prefix of it
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return out, nil
	} else if err != nil {
		return out, err
	}
	for k := range keys.Keys() {
		// compaction-YYYYMMDD-pNN
		rest, isCompaction := strings.CutPrefix(k, "compaction-")
		if day, part, ok := strings.Cut(rest, "-"); isCompaction && ok {
			out = append(out, display(day)+" "+part)
		}
	}
	slices.Sort(out)
	return out, nil
}

func parked(ctx context.Context, src Sources, w *warnings) Parked {
	p := Parked{ByProcessor: map[string]uint64{}}
	s, err := src.JS.Stream(ctx, src.Streams.DeadLetterStream)
	if err != nil {
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			w.add("cannot read the dead-letter stream %s: %v", src.Streams.DeadLetterStream, err)
		}
		return p
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(streams.DeadLetterSubjectPrefix+".>"))
	if err != nil {
		w.add("cannot read the dead-letter stream %s: %v", src.Streams.DeadLetterStream, err)
		return p
	}
	p.Total = info.State.Msgs
	for subject, n := range info.State.Subjects {
		p.ByProcessor[strings.TrimPrefix(subject, streams.DeadLetterSubjectPrefix+".")] += n
	}
	return p
}

// probe runs every check at once, each bounded by timeout.
func probe(ctx context.Context, checks []health.Check, timeout time.Duration) []Store {
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	out := make([]Store, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i] = Store{Name: c.Name, OK: true}
			if err := c.Probe(pctx); err != nil {
				out[i].OK, out[i].Error = false, err.Error()
			}
		})
	}
	wg.Wait()
	return out
}

func dayEnd(day string) time.Time {
	t, _ := time.Parse(heartbeat.DayLayout, day)
	return t.AddDate(0, 0, 1)
}

// display is YYYYMMDD as YYYY-MM-DD.
func display(day string) string {
	if t, err := time.Parse(heartbeat.DayLayout, day); err == nil {
		return t.Format(time.DateOnly)
	}
	return day
}

// ago is a duration as an operator says it: "3 days", "5 hours", "12 minutes".
func ago(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
