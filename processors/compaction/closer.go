package compaction

import (
	"context"
	"errors"
	"slices"
	"time"

	"heartlog/processors"
	"heartlog/shards"
	"heartlog/streams"
)

// Run closes every day that is due (over for longer than
// Options.CloseDelay) and finishes every closed day whose compaction into
// sinks is not recorded for every partition (a compaction stopped by a
// crash or a lost lock), every Options.Interval, until ctx ends. Every
// instance that runs day-file processors runs one: the per-(day,
// partition) locks let one compactor work on a partition at a time, and a
// partition another holds is tried again at the next round.
//
// Days from before the lifecycle existed have no lifecycle key: they are
// due like any other, and their compaction merges into the files the
// per-heartbeat writes left, writing only what those lack.
func (c *Compactor) Run(ctx context.Context, sinks ...processors.Sink) error {
	names := make([]string, len(sinks))
	for i, s := range sinks {
		names[i] = s.Name()
	}
	c.opts.Log.Info().Strs("processors", names).Str("close_delay", c.opts.CloseDelay.String()).
		Str("interval", c.opts.Interval.String()).Msg("day closer started")
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		c.round(ctx, names, sinks)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// round is one pass of Run over the days.
func (c *Compactor) round(ctx context.Context, names []string, sinks []processors.Sink) {
	days, err := c.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.opts.Log.Warn().Err(err).Str("retry_in", c.opts.Interval.String()).Msg("day closer: cannot list the days")
		}
		return
	}
	if missed, err := c.unread(ctx, days); err != nil {
		c.opts.Log.Warn().Err(err).Msg("day closer: cannot check the late consumers' filters")
	} else if len(missed) > 0 {
		if err := c.heal(ctx, missed); err != nil {
			c.opts.Log.Error().Err(err).Msg("day closer: cannot heal the late consumers' filters; next round")
			return
		}
		if days, err = c.List(ctx); err != nil {
			return
		}
	}
	// Newest first: yesterday's close (and its shard drop) must not wait
	// behind weeks of days from before the lifecycle, after an upgrade.
	slices.Reverse(days)
	var todo []string
	for _, d := range days {
		if d.Due || c.unfinished(d, names) {
			todo = append(todo, d.Day)
		}
	}
	// Days are closed closeChunk at a time, so that years of due days (an
	// import, a closer stopped for weeks) pay one filter sync and one
	// Settle a chunk instead of one a day.
	for chunk := range slices.Chunk(todo, closeChunk) {
		if err := c.openLatePaths(ctx, chunk); err != nil {
			if ctx.Err() == nil {
				c.opts.Log.Error().Err(err).Str("day", shards.DisplayDay(chunk[0])).Int("days", len(chunk)).
					Str("retry_in", c.opts.Interval.String()).Msg("day closer: cannot close the days; next round")
			}
			return
		}
		for _, day := range chunk {
			if ctx.Err() != nil {
				return
			}
			c.compact(ctx, day, sinks)
		}
	}
}

// closeChunk is how many due days the day closer closes at once.
const closeChunk = 64

// compact compacts a closed day and logs how it went.
func (c *Compactor) compact(ctx context.Context, day string, sinks []processors.Sink) {
	_, err := c.compactDay(ctx, day, sinks...)
	switch {
	case err == nil, ctx.Err() != nil:
	case errors.Is(err, shards.ErrHeld):
		c.opts.Log.Debug().Err(err).Str("day", shards.DisplayDay(day)).Msg("day closer: another compactor holds a partition; next round")
	default:
		c.opts.Log.Error().Err(err).Str("day", shards.DisplayDay(day)).Str("retry_in", c.opts.Interval.String()).
			Msg("day closer: compaction failed; what is recorded stays, the rest is redone next round")
	}
}

// unfinished reports whether d is closed with a partition not recorded
// for one of names.
func (c *Compactor) unfinished(d DayInfo, names []string) bool {
	if d.Lifecycle.State != streams.DayClosed {
		return false
	}
	for _, n := range names {
		if d.Sinks[n].Partitions < int(c.sc.Partitions) {
			return true
		}
	}
	return false
}
