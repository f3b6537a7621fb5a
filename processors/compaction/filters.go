package compaction

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/heartbeat"
	"heartlog/shards"
	"heartlog/streams"
)

// LateFiltersLock is the key in the locks bucket under which the late
// consumers' filters are changed, one writer at a time.
const LateFiltersLock = "late-filters"

// SyncLateFilters sets every partition consumer of the late-path
// processors (Options.LateProcessors) to read exactly the closed days the
// stream may still hold (streams.LateConsumerConfig), creating the
// consumers where missing, and returns the days. It reads the days from
// the shards bucket under the lock LateFiltersLock, so that two syncs
// cannot interleave their writes.
func (c *Compactor) SyncLateFilters(ctx context.Context) ([]string, error) {
	locks, err := c.js.KeyValue(ctx, c.sc.LocksBucket)
	if err != nil {
		return nil, fmt.Errorf("compaction: open KV bucket %s: %w", c.sc.LocksBucket, err)
	}
	var lock *shards.Lock
	for attempt := 0; ; attempt++ {
		lock, err = shards.Acquire(ctx, locks, LateFiltersLock, c.opts.Owner, c.opts.LockTTL, shards.WithJetStream(c.js))
		if !errors.Is(err, shards.ErrHeld) || attempt == 100 {
			break
		}
		select { // another sync takes milliseconds
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Release(rctx)
	}()
	days, err := c.lateDays(ctx)
	if err != nil {
		return nil, err
	}
	for _, proc := range c.opts.LateProcessors {
		if _, err := streams.EnsureLateConsumers(ctx, c.js, c.sc, proc, days); err != nil {
			return nil, err
		}
	}
	return days, nil
}

// lateDays are the closed days whose messages the stream may still hold.
func (c *Compactor) lateDays(ctx context.Context) ([]string, error) {
	kv, err := c.js.KeyValue(ctx, c.sc.ShardsBucket)
	if err != nil {
		return nil, fmt.Errorf("compaction: open KV bucket %s: %w", c.sc.ShardsBucket, err)
	}
	recs, err := streams.DayRecords(ctx, kv, "")
	if err != nil {
		return nil, err
	}
	held, err := c.heldDays(ctx)
	if err != nil {
		return nil, err
	}
	var days []string
	for d, r := range recs {
		if r.Lifecycle.State == streams.DayClosed && (held[d] || c.inStream(d)) {
			days = append(days, d)
		}
	}
	return days, nil
}

// heldDays are the days the stream holds messages of now. A message is
// not always stored on its day: an import (package dumps) appends years-old
// days, whose messages the stream then keeps for MaxAge from their storing,
// and the late consumers must read them all that time.
func (c *Compactor) heldDays(ctx context.Context) (map[string]bool, error) {
	subjects, err := c.subjects(ctx)
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for subject, n := range subjects {
		if day, _, err := streams.ParseSubject(subject); err == nil && n > 0 {
			held[day] = true
		}
	}
	return held, nil
}

// inStream reports whether the stream may still hold messages of day that
// live ingest stored: it keeps a message for MaxAge after it was stored,
// and ingest stores one at the earliest on its day (a client's clock
// ahead: a day more). Messages stored later (an import's) are found by
// heldDays.
func (c *Compactor) inStream(day string) bool {
	start, err := time.Parse(heartbeat.DayLayout, day)
	if err != nil {
		return false
	}
	maxAge := c.sc.MaxAge
	if maxAge <= 0 {
		return true
	}
	return c.opts.Now().Sub(start) < maxAge+48*time.Hour
}

// lateConsumer names one partition consumer of a late-path processor.
type lateConsumer struct {
	processor string
	partition uint32
}

// lateConfigs are the configs of the late consumers that exist.
func (c *Compactor) lateConfigs(ctx context.Context) (map[lateConsumer]jetstream.ConsumerConfig, error) {
	out := map[lateConsumer]jetstream.ConsumerConfig{}
	for _, proc := range c.opts.LateProcessors {
		for p := range c.sc.Partitions {
			name := streams.PartitionDurable(proc, p)
			cons, err := c.js.Consumer(ctx, c.sc.Stream, name)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("compaction: consumer %s: %w", name, err)
			}
			out[lateConsumer{proc, p}] = cons.CachedInfo().Config
		}
	}
	return out, nil
}

// lateMissing returns the late consumers that do not read one of days yet
// (or do not exist), as "objects-p03".
func (c *Compactor) lateMissing(ctx context.Context, days []string) ([]string, error) {
	configs, err := c.lateConfigs(ctx)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, proc := range c.opts.LateProcessors {
		for p := range c.sc.Partitions {
			cfg, ok := configs[lateConsumer{proc, p}]
			if !ok || slices.ContainsFunc(days, func(day string) bool { return !streams.LateReads(cfg, p, day) }) {
				missing = append(missing, streams.PartitionDurable(proc, p))
			}
		}
	}
	return missing, nil
}

// unread returns the closed days of days (in the stream's reach) that
// some existing late consumer does not read: a filter sync lost a race,
// or a consumer was recreated by hand. Messages of such a day past its
// bounds may have gone by unread. (A consumer that does not exist yet is
// no loss: SyncLateFilters creates it reading every closed day.)
func (c *Compactor) unread(ctx context.Context, days []DayInfo) ([]string, error) {
	configs, err := c.lateConfigs(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range days {
		if d.Lifecycle.State != streams.DayClosed || (d.Messages == 0 && !c.inStream(d.Day)) {
			continue
		}
		for lc, cfg := range configs {
			if !streams.LateReads(cfg, lc.partition, d.Day) {
				out = append(out, d.Day)
				break
			}
		}
	}
	return out, nil
}

// heal makes every late consumer read the days it missed, then has them
// compacted again for every late processor (their records are removed:
// the late path holds those days' messages until the new records), so
// that whatever went by unread is below the new bounds.
func (c *Compactor) heal(ctx context.Context, days []string) error {
	if _, err := c.SyncLateFilters(ctx); err != nil {
		return err
	}
	for _, d := range days {
		c.opts.Log.Warn().Str("day", shards.DisplayDay(d)).
			Msg("a late consumer did not read this closed day; compacting it again so that nothing it missed is lost")
		for _, proc := range c.opts.LateProcessors {
			if _, err := c.Forget(ctx, d, proc); err != nil {
				return err
			}
		}
	}
	return nil
}
