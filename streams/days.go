package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/heartbeat"
)

// The day lifecycle lives in the shards bucket next to the shard states,
// under keys of their own so that neither writer rewrites the other's
// value (the janitor writes a day's Shard whole):
//
//	<YYYYMMDD>                              Shard: the Postgres shard's state
//	<YYYYMMDD>.lifecycle                    Lifecycle: open or closed
//	<YYYYMMDD>.compacted.p<NN>.<processor>  Compaction: what a compaction covered
//
// Readers of shard states take only the bare-day keys (ShardView, the
// janitor's list), so these keys change nothing for them.

// DayState is a UTC day's stage in the day-file lifecycle. A day with no
// lifecycle key is open.
type DayState string

const (
	// DayOpen: heartbeats of the day go to Postgres; its day files are
	// written when it closes.
	DayOpen DayState = "open"
	// DayClosed: the day is compacted (or being compacted) into its day
	// files; what arrives past each compaction's recorded sequence is the
	// late path's.
	DayClosed DayState = "closed"
)

// Lifecycle is the value under <YYYYMMDD>.lifecycle.
type Lifecycle struct {
	State    DayState  `json:"state"`
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// By names who closed the day, for the operator's eye.
	By string `json:"by,omitempty"`
}

// Compaction is the value under <YYYYMMDD>.compacted.p<NN>.<processor>:
// one processor's sink holds every heartbeat of the day's partition up to
// and including stream sequence Seq. Messages of the day on the partition
// after Seq are the late path's.
type Compaction struct {
	// Seq is the last stream sequence on heartbeats.<day>.<partition> when
	// the compaction began (its bound); 0 when the subject had no message.
	Seq uint64 `json:"seq"`
	// Messages, Heartbeats (distinct ids) and UserDays are what the
	// compaction read up to Seq.
	Messages   int `json:"messages"`
	Heartbeats int `json:"heartbeats"`
	UserDays   int `json:"user_days"`
	// Files is how many day files the sink wrote (a file already complete
	// is not written again); Parked is heartbeats and messages it parked in
	// the dead-letter stream.
	Files  int `json:"files"`
	Parked int `json:"parked,omitempty"`
	// At is when it was recorded; Took how long the sink's pass took (a Go
	// duration, "1.2s").
	At   time.Time `json:"at"`
	Took string    `json:"took,omitempty"`
	By   string    `json:"by,omitempty"`
}

// LifecycleKey is the key of a day's lifecycle state.
func LifecycleKey(day string) string { return day + ".lifecycle" }

// CompactionKey is the key of one (day, partition, processor) compaction.
func CompactionKey(day string, partition uint32, processor string) string {
	return fmt.Sprintf("%s.compacted.p%02d.%s", day, partition, processor)
}

// isDayKey reports whether key is a bare day: a shard state's key.
func isDayKey(key string) bool {
	_, err := time.Parse(heartbeat.DayLayout, key)
	return err == nil && len(key) == len(heartbeat.DayLayout)
}

// GetLifecycle reads a day's lifecycle state and its revision (0 and
// DayOpen when the key does not exist) and when it was written.
func GetLifecycle(ctx context.Context, kv jetstream.KeyValue, day string) (Lifecycle, uint64, time.Time, error) {
	e, err := kv.Get(ctx, LifecycleKey(day))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Lifecycle{State: DayOpen}, 0, time.Time{}, nil
	}
	if err != nil {
		return Lifecycle{}, 0, time.Time{}, fmt.Errorf("streams: read lifecycle of %s: %w", day, err)
	}
	l, err := parseLifecycle(e.Value())
	if err != nil {
		return Lifecycle{}, 0, time.Time{}, fmt.Errorf("streams: lifecycle of %s: %w", day, err)
	}
	return l, e.Revision(), e.Created(), nil
}

func parseLifecycle(data []byte) (Lifecycle, error) {
	var l Lifecycle
	if err := json.Unmarshal(data, &l); err != nil {
		return l, err
	}
	if l.State != DayOpen && l.State != DayClosed {
		return l, fmt.Errorf("unknown day state %q", l.State)
	}
	return l, nil
}

// PutLifecycle writes a day's lifecycle state: revision 0 creates the key,
// otherwise the write succeeds only at that revision. The state only moves
// forward (open to closed), so a conflict means someone else moved it.
func PutLifecycle(ctx context.Context, kv jetstream.KeyValue, day string, l Lifecycle, revision uint64) (uint64, error) {
	return putJSON(ctx, kv, LifecycleKey(day), l, revision)
}

// GetCompaction reads one compaction record; ok is false when none exists.
func GetCompaction(ctx context.Context, kv jetstream.KeyValue, day string, partition uint32, processor string) (c Compaction, ok bool, err error) {
	e, err := kv.Get(ctx, CompactionKey(day, partition, processor))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Compaction{}, false, nil
	}
	if err != nil {
		return Compaction{}, false, fmt.Errorf("streams: read compaction %s: %w", CompactionKey(day, partition, processor), err)
	}
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return Compaction{}, false, fmt.Errorf("streams: compaction %s: %w", e.Key(), err)
	}
	return c, true, nil
}

// PutCompaction records a compaction. It only creates: a (day, partition,
// processor) is compacted once, and what comes after its Seq is the late
// path's; a second record would move that boundary under the late path.
// It fails with an error matching jetstream.ErrKeyExists when one exists.
func PutCompaction(ctx context.Context, kv jetstream.KeyValue, day string, partition uint32, processor string, c Compaction) (uint64, error) {
	return putJSON(ctx, kv, CompactionKey(day, partition, processor), c, 0)
}

func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any, revision uint64) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	if revision == 0 {
		rev, err := kv.Create(ctx, key, data)
		if err != nil {
			return 0, fmt.Errorf("streams: create %s: %w", key, err)
		}
		return rev, nil
	}
	rev, err := kv.Update(ctx, key, data, revision)
	if err != nil {
		return 0, fmt.Errorf("streams: update %s at revision %d: %w", key, revision, err)
	}
	return rev, nil
}

// DayRecord is everything the shards bucket says about one day's files.
type DayRecord struct {
	Day       string // YYYYMMDD
	Lifecycle Lifecycle
	// Compactions by partition, then processor.
	Compactions map[uint32]map[string]Compaction
}

// DayRecords reads every day's lifecycle and compaction keys (day "" for
// all days), by day.
func DayRecords(ctx context.Context, kv jetstream.KeyValue, day string) (map[string]*DayRecord, error) {
	filter := ">"
	if day != "" {
		filter = day + ".>"
	}
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("streams: read KV bucket %s: %w", kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	out := map[string]*DayRecord{}
	get := func(d string) *DayRecord {
		r := out[d]
		if r == nil {
			r = &DayRecord{Day: d, Lifecycle: Lifecycle{State: DayOpen}, Compactions: map[uint32]map[string]Compaction{}}
			out[d] = r
		}
		return r
	}
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return out, nil
			}
			if err := apply(get, e); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// apply files one key into its day's record; keys of other kinds (shard
// states) are left alone.
func apply(get func(string) *DayRecord, e jetstream.KeyValueEntry) error {
	parts := strings.Split(e.Key(), ".")
	if len(parts) < 2 || !isDayKey(parts[0]) {
		return nil
	}
	switch {
	case len(parts) == 2 && parts[1] == "lifecycle":
		l, err := parseLifecycle(e.Value())
		if err != nil {
			return fmt.Errorf("streams: %s: %w", e.Key(), err)
		}
		get(parts[0]).Lifecycle = l
	case len(parts) == 4 && parts[1] == "compacted" && strings.HasPrefix(parts[2], "p"):
		p, err := strconv.ParseUint(parts[2][1:], 10, 32)
		if err != nil {
			return nil
		}
		var c Compaction
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return fmt.Errorf("streams: %s: %w", e.Key(), err)
		}
		r := get(parts[0])
		if r.Compactions[uint32(p)] == nil {
			r.Compactions[uint32(p)] = map[string]Compaction{}
		}
		r.Compactions[uint32(p)][parts[3]] = c
	}
	return nil
}

// DayView is an in-memory copy of the days' lifecycle and compaction keys,
// kept current by a KV watch as ShardView keeps the shard states: what the
// late path asks about every message without a request to the server.
type DayView struct {
	mu   sync.RWMutex
	days map[string]*DayRecord
	w    jetstream.KeyWatcher
	kv   jetstream.KeyValue

	// confirmed[day] is when a read of the server last found day open.
	confirmedMu sync.Mutex
	confirmed   map[string]time.Time
}

// confirmFor is how long ConfirmOpen trusts a read that found a day open:
// well under the Settle a close waits before it takes its bounds.
const confirmFor = time.Second

// WatchDays opens the shards bucket and returns once the view holds every
// key's current value.
func WatchDays(ctx context.Context, js jetstream.JetStream, cfg Config) (*DayView, error) {
	v := &DayView{days: map[string]*DayRecord{}, confirmed: map[string]time.Time{}}
	kv, err := js.KeyValue(ctx, cfg.ShardsBucket)
	if err != nil {
		return nil, fmt.Errorf("streams: open KV bucket %s: %w", cfg.ShardsBucket, err)
	}
	w, err := watchShardsBucket(ctx, js, cfg, v.apply)
	if err != nil {
		return nil, err
	}
	v.w, v.kv = w, kv
	return v, nil
}

// ConfirmOpen asks the server whether day is still open, for a caller
// about to act on the view's word that it is (the late path passing a
// message over). A watch can lag, or stall while NATS recovers, past any
// settle; a read cannot. The answer is cached for a second, which the
// close's settle covers. false means closed, or that the server could
// not be asked: the caller must then not act as if it were open.
func (v *DayView) ConfirmOpen(ctx context.Context, day string) bool {
	v.confirmedMu.Lock()
	at, ok := v.confirmed[day]
	v.confirmedMu.Unlock()
	if ok && time.Since(at) < confirmFor {
		return true
	}
	start := time.Now()
	lc, _, _, err := GetLifecycle(ctx, v.kv, day)
	if err != nil || lc.State != DayOpen {
		return false
	}
	v.confirmedMu.Lock()
	v.confirmed[day] = start
	v.confirmedMu.Unlock()
	return true
}

func (v *DayView) apply(e jetstream.KeyValueEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	get := func(d string) *DayRecord {
		r := v.days[d]
		if r == nil {
			r = &DayRecord{Day: d, Lifecycle: Lifecycle{State: DayOpen}, Compactions: map[uint32]map[string]Compaction{}}
			v.days[d] = r
		}
		return r
	}
	if e.Operation() == jetstream.KeyValuePut {
		if err := apply(get, e); err != nil {
			// A value we cannot read must not let the late path take a
			// message the compaction may not have: the key's day reads as
			// closed with no record, which holds its messages.
			if d, _, ok := strings.Cut(e.Key(), "."); ok && isDayKey(d) {
				get(d).Lifecycle = Lifecycle{State: DayClosed}
			}
		}
		return
	}
	// A deleted key: a record removed to compact again, or a day reopened
	// by hand.
	parts := strings.Split(e.Key(), ".")
	r := v.days[parts[0]]
	switch {
	case r == nil:
	case len(parts) == 2 && parts[1] == "lifecycle":
		r.Lifecycle = Lifecycle{State: DayOpen}
	case len(parts) == 4 && parts[1] == "compacted":
		if p, err := strconv.ParseUint(strings.TrimPrefix(parts[2], "p"), 10, 32); err == nil {
			delete(r.Compactions[uint32(p)], parts[3])
		}
	}
}

// Lifecycle is the day's (YYYYMMDD) state; DayOpen when it has no key.
func (v *DayView) Lifecycle(day string) Lifecycle {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if r, ok := v.days[day]; ok {
		return r.Lifecycle
	}
	return Lifecycle{State: DayOpen}
}

// Compacted is the record of (day, partition, processor); ok is false
// when there is none yet.
func (v *DayView) Compacted(day string, partition uint32, processor string) (c Compaction, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if r, found := v.days[day]; found {
		c, ok = r.Compactions[partition][processor]
	}
	return c, ok
}

// Stop ends the watch.
func (v *DayView) Stop() error { return v.w.Stop() }
