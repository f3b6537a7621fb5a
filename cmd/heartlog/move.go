package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"heartlog/daydb"
	"heartlog/daymove"
	"heartlog/shards"
)

func shardsMoveCmd() *cobra.Command {
	var (
		to               string
		settle, wait, tl time.Duration
		chunk            int
	)
	cmd := &cobra.Command{
		Use:   "move YYYY-MM-DD --to N",
		Short: "Move one day's heartbeats to another shard database",
		Long: `Move one day's Postgres partition to another database: N is its place
(1, 2, ...) in HEARTLOG_POSTGRES_SHARD_URLS, or its name host:port/dbname as
"shards list" shows it. For rebalancing, and for emptying a database before
it leaves the list. Under the shard janitor's lock, for a day whose shard
is active:

  copy     create the partition on the target, copy the rows (ON CONFLICT
           DO NOTHING: a re-run copies nothing twice)
  switch   place the day on the target in the catalog
  settle   wait --settle (twice HEARTLOG_PLACEMENT_TTL): every process has
           read the new placement
  fence    make the source's partition refuse new rows (a writer that still
           sent some there writes them to the target instead)
  recopy   copy what came to the source before the fence
  verify   every row of the source is on the target, same content; on a
           mismatch stop and drop nothing
  drop     detach and drop the source's partition

Killed anywhere, run the same command again: it finds where the move stood
(placement, tables, fence) and finishes it. A day already on the target,
with no copy left elsewhere, is reported and exits 0.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			day, err := shards.ParseDay(args[0])
			if err != nil {
				return err
			}
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			kill, err := killAt(cfg.DebugMoveKillAt)
			if err != nil {
				return err
			}
			rt, err := startRuntime(cmd.Context(), cfg, log, "shards")
			if err != nil {
				return err
			}
			defer rt.close()
			target, err := moveTarget(rt.days, to)
			if err != nil {
				return err
			}
			if settle > 0 && settle < 2*rt.days.CacheTTL() {
				fmt.Fprintf(os.Stderr, "warning: --settle %s is under twice HEARTLOG_PLACEMENT_TTL (%s): a process may still read the source when it is dropped\n",
					settle, rt.days.CacheTTL())
			}
			m := daymove.New(rt.js, rt.sc, rt.days, daymove.Options{
				Settle: settle, LockTTL: tl, Wait: wait, ChunkRows: chunk, Progress: os.Stderr, AfterStep: kill,
			})
			sum, err := m.Move(cmd.Context(), day, target.Name)
			if err != nil {
				return err
			}
			if sum.Already {
				fmt.Fprintf(os.Stderr, "day %s is on %s already; nothing to move\n", shards.DisplayDay(day), sum.To)
				return nil
			}
			fmt.Fprintf(os.Stderr, "day %s moved from %s to %s: %d rows copied, %d more after the fence, %d verified; settled %s, took %s\n",
				shards.DisplayDay(day), sum.From, sum.To, sum.Copied, sum.Recopied, sum.Verified,
				sum.Settled.Round(time.Millisecond), sum.Took.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "target database: its place (1-based) in HEARTLOG_POSTGRES_SHARD_URLS, or host:port/dbname")
	_ = cmd.MarkFlagRequired("to")
	cmd.Flags().DurationVar(&settle, "settle", 0, "wait between the switch and the fence (default twice HEARTLOG_PLACEMENT_TTL)")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to retry while the janitor or another move holds the lock")
	cmd.Flags().IntVar(&chunk, "chunk", 10_000, "rows per copy transaction")
	cmd.Flags().DurationVar(&tl, "lock-ttl", 30*time.Second, "the lock's time to live: how long a killed move keeps the janitor and other moves out")
	return cmd
}

// moveTarget resolves --to: a 1-based place in the shard list, or a name.
func moveTarget(days *daydb.Set, to string) (daydb.DB, error) {
	if !days.Sharded() {
		return daydb.DB{}, errors.New("HEARTLOG_POSTGRES_SHARD_URLS is empty: the catalog holds every day, there is no other database to move to")
	}
	all := days.All()
	if n, err := strconv.Atoi(to); err == nil {
		if n < 1 || n > len(all) {
			return daydb.DB{}, fmt.Errorf("--to %d: HEARTLOG_POSTGRES_SHARD_URLS has %d databases (1 to %d)", n, len(all), len(all))
		}
		return all[n-1], nil
	}
	if i := slices.IndexFunc(all, func(db daydb.DB) bool { return db.Name == to }); i >= 0 {
		return all[i], nil
	}
	names := make([]string, len(all))
	for i, db := range all {
		names[i] = strconv.Itoa(i+1) + " " + db.Name
	}
	return daydb.DB{}, fmt.Errorf("--to %q is no database of HEARTLOG_POSTGRES_SHARD_URLS (%v)", to, names)
}

// killAt is the HEARTLOG_DEBUG_MOVE_KILL_AT hook, for the fault tests
// only: the move SIGKILLs itself right after that step, as a crash there
// would, leaving its lock to expire.
func killAt(step string) (func(daymove.Step) error, error) {
	if step == "" {
		return nil, nil
	}
	if !slices.Contains(daymove.Steps, daymove.Step(step)) {
		return nil, fmt.Errorf("HEARTLOG_DEBUG_MOVE_KILL_AT: %q is no step of a move (%v)", step, daymove.Steps)
	}
	return func(s daymove.Step) error {
		if s == daymove.Step(step) {
			fmt.Fprintf(os.Stderr, "HEARTLOG_DEBUG_MOVE_KILL_AT: killed after %s\n", s)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		return nil
	}, nil
}
