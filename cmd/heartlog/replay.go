package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"heartlog/processors"
	"heartlog/processors/catalog"
	"heartlog/processors/compaction"
	"heartlog/shards"
	"heartlog/streams"
)

func replayCmd() *cobra.Command {
	var o processors.ReplayOptions
	var since, until, day string
	cmd := &cobra.Command{
		Use:   "replay PROCESSOR [--day YYYY-MM-DD | [--since TIME|--since-seq N] [--until TIME|--until-seq N] [--user ID]]",
		Short: "Feed part of the stream to one processor's sink again (rebuild a cache, refill a backup)",
		Long: `Replay messages of the HEARTBEATS stream into one sink (postgres, objects,
cache or backup) through an ordered consumer. The processors' durable consumers
are not touched and every sink is idempotent, so replaying into a live system
is safe: files and rows converge to the same content however often they are
replayed.

The day-file processors (objects, cache, backup) replay only closed days: an
open day's files are written when it closes. --day recompacts one closed day
for the processor: its compaction records are removed (its late path holds
the day's messages meanwhile) and every partition is compacted again, which
rewrites only files that lack something (a wiped cache, a deleted S3 file).

TIME is RFC 3339 (2026-11-20T00:00:00Z), a date (2026-11-20, UTC midnight) or a
duration ago (72h). Without --until the replay ends at the stream's last message
when it starts. A progress line (messages, rate, ETA) goes to stderr.

Examples:
  heartlog replay cache                       # SSDB was wiped: refill it
  heartlog replay backup --since 168h         # the last week into the backup bucket
  heartlog replay objects --user 3f0c... --since-seq 120000
  heartlog replay cache --day 2026-11-20     # recompact one day into SSDB`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.Since, err = parseWhen(since); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if o.Until, err = parseWhen(until); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			rt, err := startRuntime(cmd.Context(), cfg, log, "replay")
			if err != nil {
				return err
			}
			defer rt.close()
			rt.replay = true
			p, err := catalog.Lookup(args[0])
			if err != nil {
				return err
			}
			if day != "" {
				if p.Consumes != catalog.LatePath {
					return fmt.Errorf("--day recompacts a day's files: it is for %v, not %s", catalog.DayFiles(), p.Name)
				}
				return recompact(cmd.Context(), rt, p.Name, day)
			}
			if p.Consumes == catalog.LatePath {
				days, err := streams.WatchDays(cmd.Context(), rt.js, rt.sc)
				if err != nil {
					return err
				}
				defer func() { _ = days.Stop() }()
				o.Admit = compaction.ClosedDays(days)
			}
			sink, cleanup, err := rt.sink(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer cleanup()
			o.Log = log
			o.Progress = func(p processors.ReplayProgress) {
				fmt.Fprintf(os.Stderr, "\rreplay %s: %d/%d messages, %d heartbeats, %.0f msg/s, ETA %s   ",
					args[0], p.Messages, p.Total, p.Heartbeats, p.Rate(), p.ETA().Round(time.Second))
				if p.Done {
					fmt.Fprintf(os.Stderr, "\nreplay %s: done in %s\n", args[0], p.Elapsed.Round(time.Millisecond))
				}
			}
			err = processors.Replay(cmd.Context(), rt.js, rt.sc, sink, o)
			if errors.Is(err, processors.ErrNothingToReplay) {
				fmt.Fprintln(os.Stderr, "replay:", err)
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "first message by time: RFC 3339, a date, or a duration ago")
	f.Uint64Var(&o.SinceSeq, "since-seq", 0, "first message by stream sequence")
	f.StringVar(&until, "until", "", "last message by time (same forms as --since)")
	f.Uint64Var(&o.UntilSeq, "until-seq", 0, "last message by stream sequence")
	f.StringVar(&o.User, "user", "", "replay only this user's heartbeats (user id)")
	f.StringVar(&day, "day", "", "recompact this closed UTC day (YYYY-MM-DD) for a day-file processor")
	f.IntVar(&o.BatchMessages, "batch", 512, "messages per commit")
	cmd.MarkFlagsMutuallyExclusive("since", "since-seq")
	cmd.MarkFlagsMutuallyExclusive("until", "until-seq")
	for _, other := range []string{"since", "since-seq", "until", "until-seq", "user"} {
		cmd.MarkFlagsMutuallyExclusive("day", other)
	}
	return cmd
}

// recompact removes processor's compaction records of a closed day and
// compacts every partition of it again.
func recompact(ctx context.Context, rt *runtime, processor, day string) error {
	day, err := shards.ParseDay(day)
	if err != nil {
		return err
	}
	c, sinks, cleanup, err := rt.compactor(ctx, "compaction", processor)
	if err != nil {
		return err
	}
	defer cleanup()
	removed, err := c.Forget(ctx, day, processor)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "replay %s --day %s: removed %d compaction records; compacting again\n", processor, shards.DisplayDay(day), removed)
	return closeDay(ctx, c, day, sinks, time.Minute)
}

// parseWhen reads an RFC 3339 time, a date, or a duration ago.
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	if _, err := strconv.Atoi(s); err == nil {
		return time.Time{}, fmt.Errorf("%q: a bare number is ambiguous; use --since-seq for a sequence or add a unit (72h)", s)
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-11-20T00:00:00Z), a date (2026-11-20) or a duration ago (72h)", s)
}
