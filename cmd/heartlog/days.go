package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"heartlog/processors"
	"heartlog/processors/catalog"
	"heartlog/processors/compaction"
	"heartlog/shards"
	"heartlog/streams"
)

func daysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "days",
		Short: "List UTC days and close one: write its day files once, from the stream",
		Long: `Each UTC day is open while its heartbeats arrive (they go to Postgres), then
closed: a compaction reads each partition of the day back from the stream and
writes every user-day file once to S3, to SSDB (with its digest) and to the
versioned backup, and records in the shards bucket, per partition and
processor, the last stream sequence it covered. A day is due to close
HEARTLOG_DAY_CLOSE_DELAY after it ends.`,
	}
	cmd.AddCommand(daysListCmd(), daysCloseCmd())
	return cmd
}

// dayTools is what the days commands work with.
type dayTools struct {
	c          *compaction.Compactor
	sinks      []processors.Sink // set when asked for
	partitions uint32
	close      func()
}

// compactor connects (ensuring the topology and the schema, as every
// command does) and returns a compactor, with the sinks of a close when
// withSinks.
func compactor(cmd *cobra.Command, withSinks bool) (*dayTools, error) {
	cfg, log, err := loadConfig()
	if err != nil {
		return nil, err
	}
	rt, err := startRuntime(cmd.Context(), cfg, log, "days")
	if err != nil {
		return nil, err
	}
	t := &dayTools{partitions: cfg.Partitions, close: rt.close}
	if !withSinks {
		host, _ := os.Hostname()
		t.c = compaction.New(rt.js, rt.sc, catalog.CompactorOptions(cfg, fmt.Sprintf("operator@%s:%d", host, os.Getpid()), log))
		return t, nil
	}
	c, sinks, cleanup, err := rt.compactor(cmd.Context(), "compaction")
	if err != nil {
		rt.close()
		return nil, err
	}
	t.c, t.sinks = c, sinks
	t.close = func() { cleanup(); rt.close() }
	return t, nil
}

func daysListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the days the stream or the shards bucket knows, with their compaction",
		Long: `List every UTC day the stream holds messages of or the shards bucket has a
lifecycle or compaction record of, oldest first: its state (open, closed; "due"
marks an open day past HEARTLOG_DAY_CLOSE_DELAY), the messages the stream holds
of it now, and per processor the partitions compacted, the highest stream
sequence recorded, the heartbeats and user-days compacted and the files written.
--json prints every field.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := compactor(cmd, false)
			if err != nil {
				return err
			}
			defer t.close()
			days, err := t.c.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(days)
			}
			return printDays(os.Stdout, days, t.partitions)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// dayfileSinks are the columns of the days table, in order.
var dayfileSinks = catalog.DayFiles()

func printDays(w io.Writer, days []compaction.DayInfo, partitions uint32) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tSTATE\tMESSAGES\tHEARTBEATS\tUSER-DAYS\tOBJECTS\tCACHE\tBACKUP")
	for _, d := range days {
		state := string(d.Lifecycle.State)
		if d.Due {
			state += " (due)"
		}
		hbs, uds := "-", "-"
		if s, ok := d.Sinks[streams.DurableObjects]; ok {
			hbs, uds = fmt.Sprint(s.Heartbeats), fmt.Sprint(s.UserDays)
		}
		cols := make([]string, len(dayfileSinks))
		for i, name := range dayfileSinks {
			s, ok := d.Sinks[name]
			if !ok {
				cols[i] = "-"
				continue
			}
			cols[i] = fmt.Sprintf("%d/%d to seq %d, %d files", s.Partitions, partitions, s.MaxSeq, s.Files)
			if s.Parked > 0 {
				cols[i] += fmt.Sprintf(", %d parked", s.Parked)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", shards.DisplayDay(d.Day), state, d.Messages, hbs, uds, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

func daysCloseCmd() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "close YYYY-MM-DD",
		Short: "Close a past day now: write each of its user-day files once to S3, SSDB and the backup",
		Long: `Close one UTC day now, whatever HEARTLOG_DAY_CLOSE_DELAY says: mark it closed in
the shards bucket, then compact each partition (HEARTLOG_COMPACTION_PARTITIONS at
once): read heartbeats.<day>.<partition> from the stream up to its last message,
sort the heartbeats by user (spilling to HEARTLOG_COMPACTION_DIR past
HEARTLOG_COMPACTION_MEMORY_BYTES), and write each user-day file once to S3, to
SSDB with its digest, and to the backup (paced by
HEARTLOG_BACKUP_REQUESTS_PER_SECOND). A file already complete is not written
again, so the backup gains no version for it. Each partition and processor is
recorded once done; a heartbeat the sinks can never store is parked in the
dead-letter stream (heartlog dlq list).

Today and future days are refused: their heartbeats still arrive. Closing a day
again is safe and quick: what is recorded is skipped, the rest is redone. A
compaction stopped midway (Ctrl-C, a crash) resumes this way. If another
compactor holds a partition's lock, the command retries for --wait; a close
killed outright (kill -9) holds its partitions' locks until their 30 s TTL runs
out, so a rerun right after one waits that long.

Examples:
  heartlog days close 2026-11-20     # then: heartlog days list
  heartlog days close yesterday`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			day := args[0]
			if day == "yesterday" {
				day = time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
			}
			if _, err := shards.ParseDay(day); err != nil {
				return err
			}
			t, err := compactor(cmd, true)
			if err != nil {
				return err
			}
			defer t.close()
			return closeDay(cmd.Context(), t.c, day, t.sinks, wait)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to retry while another compactor holds a partition's lock")
	return cmd
}

// closeDay closes and compacts day, printing each partition, and retries
// for up to wait while another compactor (a day closer) holds a partition.
func closeDay(ctx context.Context, c *compaction.Compactor, day string, sinks []processors.Sink, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		res, err := c.CloseDay(ctx, day, sinks...)
		printClose(os.Stdout, res)
		if !errors.Is(err, shards.ErrHeld) || time.Now().After(deadline) {
			return err
		}
		fmt.Fprintf(os.Stderr, "a partition is being compacted by another owner (%v); retrying\n", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// printClose prints one line a partition and the totals.
func printClose(w io.Writer, res []compaction.Result) {
	if len(res) == 0 {
		return
	}
	var hbs, uds int
	files := map[string]int{}
	for _, r := range res {
		var parts []string
		for _, name := range dayfileSinks {
			s, ok := r.Sinks[name]
			switch {
			case !ok:
				parts = append(parts, name+" not done")
			case s.Skipped:
				parts = append(parts, name+" already compacted")
			default:
				parts = append(parts, fmt.Sprintf("%s %d files", name, s.Files))
				files[name] += s.Files
			}
		}
		hbs, uds = hbs+r.Heartbeats, uds+r.UserDays
		fmt.Fprintf(w, "%s partition %2d: to seq %d, %d heartbeats, %d user-days; %s (%s)\n",
			shards.DisplayDay(r.Day), r.Partition, r.Seq, r.Heartbeats, r.UserDays, strings.Join(parts, ", "), r.Took.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "%s: %d heartbeats, %d user-days; files written: objects %d, cache %d, backup %d\n",
		shards.DisplayDay(res[0].Day), hbs, uds, files[streams.DurableObjects], files[streams.DurableCache], files[streams.DurableBackup])
}
