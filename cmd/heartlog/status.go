package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"heartlog/health"
	"heartlog/internal/wiring"
	"heartlog/processors/catalog"
	"heartlog/processors/compaction"
	"heartlog/ssdb"
	"heartlog/status"
)

// Exit codes of heartlog status.
const (
	statusOK       = 0
	statusWarnings = 1
	statusError    = 2
)

func statusCmd() *cobra.Command {
	var asJSON, all bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "One screen for the whole system; the exit code says whether anything needs attention",
		Long: `Show the whole system at once: the stream (messages, bytes, the oldest message's
age against MaxAge, fill against MaxBytes and MaxMsgs), every durable consumer on
it by processor (lag, ack pending, oldest unacked, redeliveries, whether a client is
pulling), the days (open, closed, compacted, dropped; the oldest day still in
Postgres; compactions in progress), the parked heartbeats, each store's
reachability (the /readyz probes, with each Postgres database, and the backup
bucket), the backup verifier's last result, and warnings in plain words.

It only reads (it creates no stream, consumer or bucket), so it is safe on a
live system and from cron. The processors expected to have consumers are
HEARTLOG_PROCESSORS.

Exit status:
  0  all is well: no warnings
  1  warnings: something needs attention (each is printed)
  2  NATS or the stream cannot be read (nothing else can be judged), or a
     setting is invalid

--json prints the report (shape: status.Report; fields are only ever added):
  {"at", "stream": {"name", "messages", "bytes", "max_bytes", "max_msgs",
   "bytes_fill", "msgs_fill", "oldest_age", "max_age", "oldest_day"},
   "consumers": [{"name", "processor", "pending", "ack_pending", "lag",
   "redelivered", "waiting_pulls", "pinned", "bound", "oldest_unacked"}],
   "days": {"open", "closed", "compacted", "dropped", "oldest_in_postgres",
   "compacting", "error"}, "parked": {"total", "by_processor"},
   "stores": [{"name", "ok", "error"}], "backup_verify": {"at", "took",
   "files", "missing", "stale", "extra", "error", "read_error"},
   "warnings": [...]}
Durations are Go durations ("54h0m0s"), fills 0..1. Exit status 2 prints no
report, only the error on stderr.

Examples:
  heartlog status
  heartlog status --json | jq .warnings
  */5 * * * * heartlog status >/dev/null || page-the-operator`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			r, err := gatherStatus(ctx)
			if err != nil {
				return &exitError{code: statusError, err: err}
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				err = enc.Encode(r)
			} else {
				err = printStatus(os.Stdout, r, all)
			}
			if err != nil {
				return &exitError{code: statusError, err: err}
			}
			if len(r.Warnings) > 0 {
				return &exitError{code: statusWarnings}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&all, "consumers", false, "list every consumer, not a line per processor")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up on the whole report after this long")
	return cmd
}

// gatherStatus connects to everything without ensuring or migrating
// anything, and gathers the report.
func gatherStatus(ctx context.Context) (status.Report, error) {
	cfg, _, err := loadConfig()
	if err != nil {
		return status.Report{}, err
	}
	log := newLogger(cfg).Level(zerolog.ErrorLevel) // the report says the rest
	nc, js, err := connectNATS(cfg, "status", log)
	if err != nil {
		return status.Report{}, err
	}
	defer nc.Close()
	sc := streamConfig(cfg)
	pool, err := wiring.NewPool(ctx, cfg.PostgresURL)
	if err != nil {
		return status.Report{}, fmt.Errorf("HEARTLOG_POSTGRES_URL: %w", err)
	}
	defer pool.Close()
	days, closeDays, err := wiring.NewDays(ctx, pool, cfg.PostgresShardURLs)
	if err != nil {
		return status.Report{}, err
	}
	defer closeDays()
	deps := health.Deps{NATS: nc, JetStream: js, Stream: sc.Stream, UsersBucket: sc.UsersBucket,
		Postgres: pool, PostgresShards: shardPools(days)}
	cache, err := ssdb.New(ssdb.Config{URL: cfg.CacheURL, TTL: cfg.CacheTTL})
	if err != nil {
		return status.Report{}, fmt.Errorf("HEARTLOG_CACHE_URL: %w", err)
	}
	defer func() { _ = cache.Close() }()
	redis.SetLogger(quietRedis{}) // a down SSDB is in the report, not a log line per dial
	deps.Cache = cache
	primary, err := openS3(ctx, cfg.S3, "HEARTLOG_S3_")
	if err != nil {
		return status.Report{}, err
	}
	deps.S3 = primary
	backup, err := openS3(ctx, cfg.Backup, "HEARTLOG_BACKUP_S3_")
	if err != nil {
		return status.Report{}, err
	}
	c := compaction.New(js, sc, catalog.CompactorOptions(cfg, "status", log))
	return status.Gather(ctx, status.Sources{
		JS: js, Streams: sc, Processors: cfg.Processors,
		Days: c.List, DayFileSinks: catalog.DayFiles(), Catalog: days,
		Checks: append(deps.Checks(), status.BackupProbe(health.S3(backup))),
	})
}

// quietRedis drops go-redis's own log lines.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// printStatus writes the report as aligned sections, warnings last.
//
// Consumers are summed by processor (the partitioned ones have one per
// partition) unless all, which lists each.
func printStatus(w io.Writer, r status.Report, all bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	s := r.Stream
	fmt.Fprintf(tw, "STREAM %s\t%d messages\t%s\n", s.Name, s.Messages, sizeText(int64(s.Bytes)))
	fmt.Fprintf(tw, "  fill\t%s\n", fillText(s))
	oldest := "-"
	if s.Messages > 0 {
		oldest = fmt.Sprintf("%s (day %s)", durText(s.OldestAge), dayText(s.OldestDay))
	}
	fmt.Fprintf(tw, "  oldest message\t%s of MaxAge %s\n", oldest, durText(s.MaxAge))
	fmt.Fprintln(tw)
	printConsumers(tw, r.Consumers, all)
	fmt.Fprintln(tw)
	d := r.Days
	fmt.Fprintf(tw, "DAYS\topen %d\tclosed %d\tcompacted %d\tdropped %d\n", d.Open, d.Closed, d.Compacted, d.Dropped)
	fmt.Fprintf(tw, "  oldest in Postgres\t%s\n", orDash(d.OldestInPostgres))
	fmt.Fprintf(tw, "  compacting now\t%s\n", orDash(strings.Join(d.Compacting, ", ")))
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "PARKED\t%d%s\n", r.Parked.Total, parkedText(r.Parked))
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "STORE\tSTATE")
	for _, st := range r.Stores {
		state := "ok"
		if !st.OK {
			state = "unreachable: " + st.Error
		}
		fmt.Fprintf(tw, "%s\t%s\n", st.Name, state)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "BACKUP VERIFY\t%s\n", verifyText(r.Backup))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(r.Warnings) == 0 {
		_, err := fmt.Fprintln(w, "OK: nothing needs attention")
		return err
	}
	fmt.Fprintf(w, "WARNINGS (%d)\n", len(r.Warnings))
	for _, msg := range r.Warnings {
		fmt.Fprintln(w, "  - "+msg)
	}
	return nil
}

// printConsumers writes a line per processor (or per consumer, with all):
// BOUND counts the consumers a client is pulling from or pinned to.
func printConsumers(tw io.Writer, cs []status.Consumer, all bool) {
	type row struct {
		name, processor     string
		consumers, bound    int
		lag                 uint64
		ackPending, redeliv int
		waiting             int
		oldest              status.Duration
	}
	var rows []*row
	by := map[string]*row{}
	for _, c := range cs {
		key := c.Processor
		if all {
			key = c.Name
		}
		r := by[key]
		if r == nil {
			r = &row{name: key, processor: c.Processor}
			by[key] = r
			rows = append(rows, r)
		}
		r.consumers++
		if c.Bound {
			r.bound++
		}
		r.lag += c.Lag
		r.ackPending += c.AckPending
		r.redeliv += c.Redelivered
		r.waiting += c.WaitingPulls
		r.oldest = max(r.oldest, c.OldestUnacked)
	}
	if all {
		fmt.Fprintln(tw, "CONSUMER\tPROCESSOR\tBOUND\tLAG\tACK PENDING\tOLDEST UNACKED\tREDELIVERED\tWAITING PULLS")
	} else {
		fmt.Fprintln(tw, "PROCESSOR\tCONSUMERS\tBOUND\tLAG\tACK PENDING\tOLDEST UNACKED\tREDELIVERED\tWAITING PULLS")
	}
	for _, r := range rows {
		age := "-"
		if r.lag > 0 {
			age = durText(r.oldest)
		}
		second := fmt.Sprint(r.consumers)
		if all {
			second = r.processor
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%s\t%d\t%d\n", r.name, second, r.bound, r.consumers, r.lag, r.ackPending, age, r.redeliv, r.waiting)
	}
}

// parkedText is " (objects 3, postgres 1)", or "" when none.
func parkedText(p status.Parked) string {
	var by []string
	for name, n := range p.ByProcessor {
		by = append(by, fmt.Sprintf("%s %d", name, n))
	}
	if len(by) == 0 {
		return ""
	}
	slices.Sort(by)
	return " (" + strings.Join(by, ", ") + "; heartlog dlq list)"
}

func fillText(s status.Stream) string {
	var parts []string
	if s.MaxBytes > 0 {
		parts = append(parts, fmt.Sprintf("%.0f%% of MaxBytes %s", s.BytesFill*100, sizeText(s.MaxBytes)))
	} else {
		parts = append(parts, "MaxBytes unbounded")
	}
	if s.MaxMsgs > 0 {
		parts = append(parts, fmt.Sprintf("%.0f%% of MaxMsgs %d", s.MsgsFill*100, s.MaxMsgs))
	}
	return strings.Join(parts, ", ")
}

func verifyText(v status.Verify) string {
	switch {
	case v.ReadError != "":
		return "cannot read: " + v.ReadError
	case !v.Ran():
		return "not run"
	case v.Error != "":
		return fmt.Sprintf("%s: failed: %s", v.At.UTC().Format(time.DateTime), v.Error)
	}
	return fmt.Sprintf("%s UTC: %d files, %d missing, %d stale, %d extra (took %s)",
		v.At.UTC().Format(time.DateTime), v.Files, v.Missing, v.Stale, v.Extra, durText(v.Took))
}

func durText(d status.Duration) string {
	v := time.Duration(d)
	switch {
	case v >= 48*time.Hour:
		return fmt.Sprintf("%.1f days", v.Hours()/24)
	case v < time.Second:
		return v.Round(time.Millisecond).String()
	}
	return v.Round(time.Second).String()
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func dayText(day string) string {
	if t, err := time.Parse("20060102", day); err == nil {
		return t.Format(time.DateOnly)
	}
	return orDash(day)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
