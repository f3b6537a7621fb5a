package compaction

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"heartlog/heartbeat"
	"heartlog/processors"
	"heartlog/shards"
	"heartlog/streams"
)

// CloseDay closes a day (YYYY-MM-DD or YYYYMMDD) now and compacts every
// partition of it into sinks, Options.Partitions at a time. It refuses a
// day that has not ended (ErrDayNotOver). Closing is idempotent: a day
// already closed is compacted where it is not recorded yet, and a day
// compacted everywhere returns at once with every sink Skipped. A
// partition that fails does not stop the others; the error joins every
// failure, and the results hold every partition, each with the sinks it
// recorded.
func (c *Compactor) CloseDay(ctx context.Context, day string, sinks ...processors.Sink) ([]Result, error) {
	day, err := shards.ParseDay(day)
	if err != nil {
		return nil, err
	}
	start, _ := time.Parse(heartbeat.DayLayout, day)
	if end := start.AddDate(0, 0, 1); end.After(c.opts.Now()) {
		return nil, fmt.Errorf("%w: %s runs until %s UTC; only a day that is over can be closed (its heartbeats still arrive)",
			ErrDayNotOver, shards.DisplayDay(day), end.Format(time.DateTime))
	}
	if err := c.openLatePaths(ctx, []string{day}); err != nil {
		return nil, err
	}
	return c.compactDay(ctx, day, sinks...)
}

// compactDay compacts every partition of a closed day into sinks.
func (c *Compactor) compactDay(ctx context.Context, day string, sinks ...processors.Sink) ([]Result, error) {
	began := time.Now()
	var (
		g    errgroup.Group
		mu   sync.Mutex
		out  []Result
		errs []error
	)
	g.SetLimit(c.opts.Partitions)
	for p := range c.sc.Partitions {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			r, err := c.Compact(ctx, day, p, sinks...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
			}
			if r.Day != "" {
				out = append(out, r) // with the sinks it recorded, even when it failed
			}
			return nil
		})
	}
	g.Wait()
	slices.SortFunc(out, func(a, b Result) int { return int(a.Partition) - int(b.Partition) })
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	hbs, uds := 0, 0
	for _, r := range out {
		hbs, uds = hbs+r.Heartbeats, uds+r.UserDays
	}
	c.opts.Log.Info().Str("day", shards.DisplayDay(day)).Int("partitions", len(out)).Int("failed", len(errs)).
		Int("heartbeats", hbs).Int("user_days", uds).Str("took", time.Since(began).Round(time.Millisecond).String()).
		Msg("day compacted")
	return out, errors.Join(errs...)
}

// openLatePaths marks the days closed and sees that every late consumer
// reads them, then waits Settle before any bound is taken: a message
// stored before the late consumers read a day, or passed over by a late
// path that read the day as open, is then below every bound, so the
// compaction reads it; every message past a bound is delivered to the late
// path. A lost race between two filter syncs is caught here, at the check
// after the wait, and healed by syncing and waiting again. Settle counts
// from the last day's mark, so many days wait it once.
func (c *Compactor) openLatePaths(ctx context.Context, days []string) error {
	kv, err := c.js.KeyValue(ctx, c.sc.ShardsBucket)
	if err != nil {
		return fmt.Errorf("compaction: open KV bucket %s: %w", c.sc.ShardsBucket, err)
	}
	var closedAt time.Time
	for _, day := range days {
		at, err := c.markClosed(ctx, kv, day)
		if err != nil {
			return err
		}
		closedAt = later(closedAt, at)
	}
	for attempt := 0; ; attempt++ {
		missing, err := c.lateMissing(ctx, days)
		if err != nil {
			return err
		}
		if len(missing) == 0 && attempt > 0 {
			return nil
		}
		if len(missing) > 0 {
			if attempt >= 3 {
				return fmt.Errorf("compaction: late consumers %v still do not read %s after %d syncs", missing, daysNamed(days), attempt)
			}
			if _, err := c.SyncLateFilters(ctx); err != nil {
				return err
			}
			closedAt = time.Now()
		}
		if wait := time.Until(closedAt.Add(c.opts.Settle)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// daysNamed names days for an error: the day, or the first and how many.
func daysNamed(days []string) string {
	if len(days) == 1 {
		return shards.DisplayDay(days[0])
	}
	return fmt.Sprintf("%d days from %s", len(days), shards.DisplayDay(days[0]))
}

// markClosed moves the day to closed unless it is, and returns the time
// CloseDay's Settle counts from.
func (c *Compactor) markClosed(ctx context.Context, kv jetstream.KeyValue, day string) (time.Time, error) {
	for range 3 {
		lc, rev, written, err := streams.GetLifecycle(ctx, kv, day)
		if err != nil {
			return time.Time{}, err
		}
		if lc.State == streams.DayClosed {
			// The server's clock and ours may differ by more than Settle:
			// a day closed within the last minute, by its stamp, waits a
			// whole Settle from now.
			if time.Since(written) < time.Minute {
				return time.Now(), nil
			}
			return written, nil
		}
		_, err = streams.PutLifecycle(ctx, kv, day, streams.Lifecycle{State: streams.DayClosed, ClosedAt: time.Now().UTC(), By: c.opts.Owner}, rev)
		if err == nil {
			c.opts.Log.Info().Str("day", shards.DisplayDay(day)).Msg("day closed; compacting it")
			return time.Now(), nil // Settle counts from when the write was done
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return time.Time{}, err
		}
		// Someone else moved the state: look again.
	}
	return time.Time{}, fmt.Errorf("compaction: the lifecycle of %s keeps changing under us", shards.DisplayDay(day))
}

// DayInfo is one day as List reports it.
type DayInfo struct {
	Day       string // YYYYMMDD
	Lifecycle streams.Lifecycle
	// Due: open, and over for longer than Options.CloseDelay.
	Due bool
	// Messages and Partitions are what the stream holds of the day now.
	Messages   uint64
	Partitions int
	// Sinks sums each processor's compaction records over the partitions.
	Sinks map[string]SinkSummary
}

// SinkSummary sums one processor's compaction records of a day.
type SinkSummary struct {
	Partitions                          int    // partitions recorded
	MaxSeq                              uint64 // the highest recorded bound
	Heartbeats, UserDays, Files, Parked int
}

// List returns every day the stream holds a message of or the shards
// bucket has a lifecycle or compaction key of, oldest first.
func (c *Compactor) List(ctx context.Context) ([]DayInfo, error) {
	kv, err := c.js.KeyValue(ctx, c.sc.ShardsBucket)
	if err != nil {
		return nil, fmt.Errorf("compaction: open KV bucket %s: %w", c.sc.ShardsBucket, err)
	}
	records, err := streams.DayRecords(ctx, kv, "")
	if err != nil {
		return nil, err
	}
	subjects, err := c.subjects(ctx)
	if err != nil {
		return nil, err
	}
	days := map[string]*DayInfo{}
	get := func(day string) *DayInfo {
		d := days[day]
		if d == nil {
			d = &DayInfo{Day: day, Lifecycle: streams.Lifecycle{State: streams.DayOpen}, Sinks: map[string]SinkSummary{}}
			days[day] = d
		}
		return d
	}
	for subject, n := range subjects {
		day, _, err := streams.ParseSubject(subject)
		if err != nil || n == 0 {
			continue
		}
		d := get(day)
		d.Messages += n
		d.Partitions++
	}
	for day, r := range records {
		d := get(day)
		d.Lifecycle = r.Lifecycle
		for _, bySink := range r.Compactions {
			for name, rec := range bySink {
				s := d.Sinks[name]
				s.Partitions++
				s.MaxSeq = max(s.MaxSeq, rec.Seq)
				s.Heartbeats += rec.Heartbeats
				s.UserDays += rec.UserDays
				s.Files += rec.Files
				s.Parked += rec.Parked
				d.Sinks[name] = s
			}
		}
	}
	out := make([]DayInfo, 0, len(days))
	for _, d := range days {
		start, _ := time.Parse(heartbeat.DayLayout, d.Day)
		d.Due = d.Lifecycle.State == streams.DayOpen && !start.AddDate(0, 0, 1).Add(c.opts.CloseDelay).After(c.opts.Now())
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b DayInfo) int { return strings.Compare(a.Day, b.Day) })
	return out, nil
}

// subjects are the messages the stream holds now per heartbeat subject.
func (c *Compactor) subjects(ctx context.Context) (map[string]uint64, error) {
	stream, err := c.js.Stream(ctx, c.sc.Stream)
	if err != nil {
		return nil, fmt.Errorf("compaction: stream %s: %w", c.sc.Stream, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(streams.SubjectPrefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("compaction: stream %s subjects: %w", c.sc.Stream, err)
	}
	return info.State.Subjects, nil
}

// Forget removes processor's compaction records of a closed day (YYYYMMDD)
// so that the next CloseDay compacts it again for that processor (`heartlog
// replay PROCESSOR --day`); it returns how many it removed. Until then the
// processor's late path holds the day's messages (LatePath), so nothing
// falls between the old bound and the new one. It refuses an open day
// (ErrDayOpen).
func (c *Compactor) Forget(ctx context.Context, day, processor string) (int, error) {
	day, err := shards.ParseDay(day)
	if err != nil {
		return 0, err
	}
	kv, err := c.js.KeyValue(ctx, c.sc.ShardsBucket)
	if err != nil {
		return 0, fmt.Errorf("compaction: open KV bucket %s: %w", c.sc.ShardsBucket, err)
	}
	recs, err := streams.DayRecords(ctx, kv, day)
	if err != nil {
		return 0, err
	}
	r := recs[day]
	if r == nil || r.Lifecycle.State != streams.DayClosed {
		return 0, fmt.Errorf("%w: %s has no files to compact again; close it first (heartlog days close)", ErrDayOpen, shards.DisplayDay(day))
	}
	n := 0
	for p, bySink := range r.Compactions {
		if _, ok := bySink[processor]; !ok {
			continue
		}
		if err := kv.Delete(ctx, streams.CompactionKey(day, p, processor)); err != nil {
			return n, fmt.Errorf("compaction: remove %s: %w", streams.CompactionKey(day, p, processor), err)
		}
		n++
	}
	return n, nil
}
