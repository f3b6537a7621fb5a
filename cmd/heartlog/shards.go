package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/shards"
)

func shardsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shards",
		Short: "List, drop and move the Postgres day partitions",
		Long: `Postgres holds the hot days, one partition per UTC day. The shard janitor
(running inside every "heartlog process") drops a day HEARTLOG_SHARDS_GRACE
after it ends, once the objects and cache processors have acked every message
of it, under a cluster-wide lock in NATS. These commands show the days, drop one at
once, and move one to another shard database under the same lock (copy,
switch the placement, wait for every process to see it, fence the old copy,
copy again, verify, drop; a killed move finishes when run again).`,
	}
	cmd.AddCommand(shardsListCmd(), shardsDropCmd(), shardsMoveCmd())
	return cmd
}

// janitor connects to NATS and Postgres (ensuring the topology and the
// schema, as every command does) and returns a janitor over them and the
// databases of the days.
func janitor(cmd *cobra.Command) (*shards.Janitor, *daydb.Set, func(), error) {
	cfg, log, err := loadConfig()
	if err != nil {
		return nil, nil, nil, err
	}
	rt, err := startRuntime(cmd.Context(), cfg, log, "shards")
	if err != nil {
		return nil, nil, nil, err
	}
	host, _ := os.Hostname()
	j := shards.New(rt.js, rt.sc, rt.days, shards.Options{
		Owner: fmt.Sprintf("operator@%s:%d", host, os.Getpid()),
		Grace: cfg.ShardsGrace,
		Log:   log,
	})
	return j, rt.days, rt.close, nil
}

func shardsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the days that have a partition or a shard state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, set, done, err := janitor(cmd)
			if err != nil {
				return err
			}
			defer done()
			// The janitor lists the tables on every database; a placed day
			// without a table (written to the day files alone, or dropped
			// before its shard state was kept) is listed after them.
			days, err := j.List(cmd.Context())
			if err != nil {
				return err
			}
			placements, err := set.Placements(cmd.Context())
			if err != nil {
				return err
			}
			on := map[string]string{}
			for _, p := range placements {
				on[p.Day.Format(heartbeat.DayLayout)] = p.Database
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DAY\tDATABASE\tSTATE\tTABLE\tROWS (EST.)\tELIGIBLE\tCHANGED BY")
			for _, d := range days {
				db := on[d.Day]
				if db == "" {
					db = "-"
				}
				delete(on, d.Day)
				rows := "-"
				if d.Rows >= 0 {
					rows = strconv.FormatInt(d.Rows, 10)
				}
				by := ""
				if d.By != "" {
					by = d.By + " at " + d.UpdatedAt.Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\n", shards.DisplayDay(d.Day), db, d.State, d.Table, rows, d.Eligible, by)
			}
			for _, p := range placements {
				if day := p.Day.Format(heartbeat.DayLayout); on[day] != "" {
					fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t\n", shards.DisplayDay(day), p.Database)
				}
			}
			return tw.Flush()
		},
	}
}

func shardsDropCmd() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "drop YYYY-MM-DD",
		Short: "Drop one day's partition now, if objects and cache have all of it",
		Long: `Drop one day's Postgres partition now, whatever its age, with the janitor's
steps: prove that every objects and cache partition consumer has acked the
day's last message, mark the shard draining, let the Postgres processors see
it, detach the partition concurrently, drop it, mark the shard dropped.

If the day is not proven, nothing changes and the command says what it waits
for (which consumer has acked up to which sequence) and exits non-zero. If a
janitor holds the lock, the command retries for --wait.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			day, err := shards.ParseDay(args[0])
			if err != nil {
				return err
			}
			j, _, done, err := janitor(cmd)
			if err != nil {
				return err
			}
			defer done()
			deadline := time.Now().Add(wait)
			for {
				err = j.DropNow(cmd.Context(), day)
				if !errors.Is(err, shards.ErrHeld) || time.Now().After(deadline) {
					break
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(time.Second):
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "day %s dropped from Postgres; its reads come from SSDB and S3\n", shards.DisplayDay(day))
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to retry while another janitor holds the lock")
	return cmd
}
