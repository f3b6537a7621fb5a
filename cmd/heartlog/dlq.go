package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"heartlog/processors"
	"heartlog/streams"
)

func dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, retry and drop the heartbeats the sinks could not store (dead letters)",
		Long: `A heartbeat that a sink can never store (a number Postgres refuses, a day
file over its limit) and a log message that does not decode are parked in
the dead-letter stream HEARTBEATS_DLQ, one entry each, with the processor,
the reason, the error and where they were in HEARTBEATS, so that one bad
heartbeat never holds back the others. Transient errors (a store down) are
retried by the processor and never parked. Each parked heartbeat is counted
in heartlog_processor_parked_heartbeats_total{processor,reason} and logged
with its user id, day, reason and stream sequence.

Entries stay as long as the log keeps heartbeats (HEARTLOG_STREAM_MAX_AGE).
Once the cause is fixed, "heartlog dlq retry" feeds them back to their sink;
"heartlog dlq drop" removes entries deliberately.`,
	}
	cmd.AddCommand(dlqListCmd(), dlqRetryCmd(), dlqDropCmd())
	return cmd
}

// deadLetters connects to NATS alone (ensuring the topology): listing and
// dropping need no store.
func deadLetters(cmd *cobra.Command) (*streams.DeadLetters, func(), error) {
	cfg, log, err := loadConfig()
	if err != nil {
		return nil, nil, err
	}
	nc, js, err := connectNATS(cfg, "dlq", log)
	if err != nil {
		return nil, nil, err
	}
	sc := streamConfig(cfg)
	if err := streams.Ensure(cmd.Context(), js, sc); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return streams.NewDeadLetters(js, sc), nc.Close, nil
}

// dlqEntry is an entry as list --json prints it.
type dlqEntry struct {
	Seq       uint64    `json:"seq"`
	Processor string    `json:"processor"`
	Reason    string    `json:"reason"`
	User      string    `json:"user_id,omitempty"`
	Day       string    `json:"day,omitempty"`
	Heartbeat string    `json:"heartbeat_id,omitempty"`
	ParkedAt  time.Time `json:"parked_at"`
	Error     string    `json:"error"`
	Subject   string    `json:"subject"`
	StreamSeq uint64    `json:"stream_seq"`
	RetryOf   uint64    `json:"retry_of,omitempty"`
	RawBytes  int       `json:"raw_bytes,omitempty"`
}

func entryOf(d streams.DeadLetter) dlqEntry {
	e := dlqEntry{Seq: d.Seq, Processor: d.Processor, Reason: d.Reason, User: d.User(), Day: d.Day(),
		ParkedAt: d.ParkedAt.UTC(), Error: d.Error, Subject: d.Subject, StreamSeq: d.StreamSeq, RetryOf: d.RetryOf, RawBytes: len(d.Raw)}
	if d.Batch != nil && len(d.Batch.Heartbeats) > 0 {
		e.Heartbeat = d.Batch.Heartbeats[0].Id
	}
	return e
}

func dlqListCmd() *cobra.Command {
	var processor string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--processor P] [--json]",
		Short: "Show the parked entries: seq, processor, reason, user, day, when, error",
		Long: `Show every entry of the dead-letter stream, oldest first: its sequence (what
retry --seq and drop --seq take), the processor whose sink refused it, the
reason, the heartbeat's user id and UTC day, when it was parked and the
error. --json prints one JSON object a line, with the heartbeat id and where
it was in HEARTBEATS (subject and stream sequence) too. Entity paths and
other heartbeat content are not printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dl, done, err := deadLetters(cmd)
			if err != nil {
				return err
			}
			defer done()
			entries, err := dl.List(cmd.Context(), processor)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				for _, d := range entries {
					if err := enc.Encode(entryOf(d)); err != nil {
						return err
					}
				}
				return nil
			}
			if len(entries) == 0 {
				fmt.Fprintln(os.Stderr, "no dead letters")
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tPROCESSOR\tREASON\tUSER\tDAY\tPARKED AT\tERROR")
			for _, d := range entries {
				e := entryOf(d)
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Processor, e.Reason, dash(e.User), dash(e.Day),
					e.ParkedAt.Format(time.DateTime), e.Error)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&processor, "processor", "", "only this processor's entries (postgres, objects, cache, backup)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dlqRetryCmd() *cobra.Command {
	var processor string
	var seqs []uint
	cmd := &cobra.Command{
		Use:   "retry [--processor P] [--seq N...]",
		Short: "Feed parked entries back to their sink, once the cause is fixed",
		Long: `Feed parked entries back to the sink of the processor that parked them, with
the processor's own code and its handling of errors: a store that is down is
retried (stop with Ctrl-C: what is not stored yet stays), and a heartbeat the
sink still refuses is parked again as a new entry (its retry_of names the
old one) rather than lost. An entry is removed from the dead-letter stream
only after its sink committed it or it was parked again. Sinks are
idempotent, so retrying an entry that was stored meanwhile changes nothing.

Without --seq every entry (of --processor, or of every processor) is
retried, up to the last one parked when the command starts.

Examples:
  heartlog dlq retry --processor postgres    # after widening a column
  heartlog dlq retry --seq 12 --seq 13`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			rt, err := startRuntime(cmd.Context(), cfg, log, "dlq")
			if err != nil {
				return err
			}
			defer rt.close()
			dl := streams.NewDeadLetters(rt.js, rt.sc)
			plan, err := retryPlan(cmd, dl, processor, seqsOf(seqs))
			if err != nil {
				return err
			}
			if len(plan) == 0 {
				fmt.Fprintln(os.Stderr, "no dead letters to retry")
				return nil
			}
			for _, name := range slices.Sorted(maps.Keys(plan)) {
				sink, cleanup, err := rt.sink(cmd.Context(), name)
				if err != nil {
					return err
				}
				res, err := processors.RetryDeadLetters(cmd.Context(), dl, sink, processors.RetryOptions{Seqs: plan[name], Log: log})
				cleanup()
				fmt.Fprintf(os.Stderr, "%s: %d entries retried and removed, %d heartbeats parked again\n", name, res.Retried, res.Reparked)
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&processor, "processor", "", "only this processor's entries")
	cmd.Flags().UintSliceVar(&seqs, "seq", nil, "only these entries (dead-letter sequences, as list shows)")
	return cmd
}

// retryPlan maps each processor to the entries to retry (nil: all of it).
func retryPlan(cmd *cobra.Command, dl *streams.DeadLetters, processor string, seqs []uint64) (map[string][]uint64, error) {
	plan := map[string][]uint64{}
	if len(seqs) == 0 {
		entries, err := dl.List(cmd.Context(), processor)
		if err != nil {
			return nil, err
		}
		for _, d := range entries {
			plan[d.Processor] = nil
		}
		return plan, nil
	}
	for _, seq := range seqs {
		d, err := dl.Get(cmd.Context(), seq)
		if err != nil {
			return nil, err
		}
		if processor != "" && d.Processor != processor {
			return nil, fmt.Errorf("dead letter %d was parked by %s, not %s", seq, d.Processor, processor)
		}
		plan[d.Processor] = append(plan[d.Processor], seq)
	}
	return plan, nil
}

// seqsOf converts --seq values.
func seqsOf(in []uint) []uint64 {
	out := make([]uint64, len(in))
	for i, v := range in {
		out[i] = uint64(v)
	}
	return out
}

func dlqDropCmd() *cobra.Command {
	var processor string
	var seqs []uint
	var all bool
	cmd := &cobra.Command{
		Use:   "drop --seq N... | --all [--processor P]",
		Short: "Remove parked entries deliberately (they are not stored anywhere)",
		Long: `Remove entries from the dead-letter stream without storing them: the
heartbeats they hold are then in no sink of that processor (the stream
HEARTBEATS still has them until HEARTLOG_STREAM_MAX_AGE, and the other sinks
may have stored them). Each removed entry is printed.

Examples:
  heartlog dlq drop --seq 12 --seq 13
  heartlog dlq drop --all --processor postgres`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all == (len(seqs) > 0) {
				return errors.New("give either --seq N (one or more) or --all")
			}
			dl, done, err := deadLetters(cmd)
			if err != nil {
				return err
			}
			defer done()
			var entries []streams.DeadLetter
			if all {
				if entries, err = dl.List(cmd.Context(), processor); err != nil {
					return err
				}
			}
			for _, seq := range seqsOf(seqs) {
				d, err := dl.Get(cmd.Context(), seq)
				if err != nil {
					return err
				}
				if processor != "" && d.Processor != processor {
					return fmt.Errorf("dead letter %d was parked by %s, not %s", seq, d.Processor, processor)
				}
				entries = append(entries, d)
			}
			for _, d := range entries {
				if err := dl.Delete(cmd.Context(), d.Seq); err != nil {
					return err
				}
				e := entryOf(d)
				fmt.Fprintf(os.Stdout, "dropped %d: %s %s user %s day %s\n", e.Seq, e.Processor, e.Reason, dash(e.User), dash(e.Day))
			}
			fmt.Fprintf(os.Stderr, "%d dead letters dropped\n", len(entries))
			return nil
		},
	}
	cmd.Flags().StringVar(&processor, "processor", "", "with --all: only this processor's entries")
	cmd.Flags().UintSliceVar(&seqs, "seq", nil, "the entries to drop (dead-letter sequences, as list shows)")
	cmd.Flags().BoolVar(&all, "all", false, "drop every entry (of --processor)")
	return cmd
}
