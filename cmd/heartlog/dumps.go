package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"heartlog/dumps"
	"heartlog/heartbeat"
	"heartlog/streams"
	"heartlog/users"
)

func importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import wakatime|ndjson --user ID FILE",
		Short: "Bring a user's heartbeats in from a WakaTime data dump or JSON lines",
		Long: `Import a file of heartbeats into one user's history. FILE may be - for stdin.

  wakatime  the JSON of WakaTime's heartbeats export, gzip or not (Settings > Account >
            Export, or POST /api/v1/users/current/data_dumps {"type": "heartbeats"}):
            {"user": ..., "range": ..., "days": [{"date": ..., "heartbeats": [...]}]}
  ndjson    one heartbeat per line with WakaTime's field names, gzip or not:
            a heartlog day file, or what "heartlog export" writes

Every heartbeat is validated as a live one and appended to the log as ingest
does, with the id a live one gets, so every sink (Postgres, S3, SSDB, backup)
receives it. Days inside HEARTLOG_SHARDS_GRACE get Postgres rows; older days
get none: the day closer of "heartlog process" compacts them into their day
files from the log, like any day that is over (one already closed is merged
by the late path). See "heartlog days list".

A record that is refused (not JSON, a field of the wrong type, a time before
2000, no entity ...) is printed with its position, the rest is imported, and
the command exits non-zero. A progress line (heartbeats read, rate, bytes,
ETA) goes to stderr every few seconds.

Running an import again adds nothing: ids and messages are deterministic,
the log drops a repeated message within its duplicate window
(HEARTLOG_STREAM_DUPLICATES, 2 minutes), and every sink drops a heartbeat it
already has. A killed import is resumed by running it again from the start.

An import is the operator's, so the per-user API rate limits do not apply;
it keeps --in-flight messages waiting for the log's ack at most (the disk's
fsyncs are shared with live ingest), can be held under --rate, and pauses
while the stream is over 95% full, as ingest does.

Examples:
  heartlog import wakatime --user 3f0c... wakatime-heartbeats.json \
      --user-agents user_agents.json --machine-names machine_names.json
  heartlog import ndjson --user 3f0c... export.ndjson.gz
  zcat 2026-11-25.ndjson.gz | heartlog import ndjson --user 3f0c... -`,
	}
	cmd.AddCommand(importFormatCmd(dumps.WakaTime), importFormatCmd(dumps.NDJSON))
	return cmd
}

// maxPrinted bounds the refusals printed one by one; the rest are counted.
const maxPrinted = 1000

func importFormatCmd(format dumps.Format) *cobra.Command {
	var (
		userID, agentsFile, machinesFile string
		o                                dumps.Options
	)
	cmd := &cobra.Command{
		Use:   format.String() + " --user ID FILE",
		Short: "Import " + map[dumps.Format]string{dumps.WakaTime: "WakaTime's heartbeats data dump", dumps.NDJSON: "JSON lines of heartbeats (gzip or not)"}[format],
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var err error
			if o.UserAgents, err = loadWakaTimeValues(agentsFile); err != nil {
				return fmt.Errorf("--user-agents: %w", err)
			}
			if o.Machines, err = loadWakaTimeValues(machinesFile); err != nil {
				return fmt.Errorf("--machine-names: %w", err)
			}
			in, size, closeIn, err := openInput(args[0])
			if err != nil {
				return err
			}
			defer closeIn()
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			rt, err := startRuntime(ctx, cfg, log, "import")
			if err != nil {
				return err
			}
			defer rt.close()
			if o.User, err = rt.users.ByID(ctx, userID); errors.Is(err, users.ErrNotFound) {
				return fmt.Errorf("no user %q (heartlog users list)", userID)
			} else if err != nil {
				return err
			}
			o.Format, o.Size = format, size
			o.Limits = heartbeat.DefaultLimits
			o.DayMaxHeartbeats, o.DayMaxBytes = cfg.Work.DayMaxHeartbeats, cfg.Work.DayMaxBytes
			o.Capacity = streams.WatchFill(ctx, rt.js, rt.sc, streams.FillOptions{Log: log})
			printed := 0
			o.Refused = func(r dumps.Refusal) {
				if printed++; printed <= maxPrinted {
					fmt.Fprintf(os.Stderr, "\rimport: refused %s: %s\n", r.Where, r.Reason)
				}
			}
			o.Progress = printImportProgress
			res, err := dumps.Import(ctx, rt.js, rt.sc, in, o)
			if printed > maxPrinted {
				fmt.Fprintf(os.Stderr, "import: %d more refused records not printed\n", printed-maxPrinted)
			}
			fmt.Fprintf(os.Stderr, "import: read %d, imported %d, refused %d, duplicates %d (already in the log or twice in the file); %d messages in %s\n",
				res.Read, res.Imported, res.Refused, res.Duplicates, res.Messages, res.Elapsed.Round(time.Millisecond))
			if res.Imported > 0 {
				fmt.Fprintln(os.Stderr, "import: days past HEARTLOG_SHARDS_GRACE reach their day files when the day closer compacts them (heartlog days list)")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&userID, "user", "", "the user (id) the heartbeats are imported for (required)")
	f.IntVar(&o.InFlight, "in-flight", 32, "messages waiting for the log's ack at once (of up to 512 KiB each)")
	f.Float64Var(&o.Rate, "rate", 0, "most heartbeats per second (0: as fast as the log acks)")
	if format == dumps.WakaTime {
		f.StringVar(&agentsFile, "user-agents", "", "WakaTime's GET /api/v1/users/current/user_agents answer: turns each heartbeat's user_agent_id into its user agent (editor, plugin, OS)")
		f.StringVar(&machinesFile, "machine-names", "", "WakaTime's GET /api/v1/users/current/machine_names answer: turns each heartbeat's machine_name_id into its machine")
	}
	_ = cmd.MarkFlagRequired("user")
	return cmd
}

func printImportProgress(p dumps.Progress) {
	of := ""
	if p.Size > 0 {
		of = fmt.Sprintf(" of %.1f", float64(p.Size)/1e6)
	}
	eta := ""
	if d := p.ETA(); d > 0 {
		eta = ", ETA " + d.Round(time.Second).String()
	}
	wait := ""
	if p.Waiting != "" {
		wait = "; " + p.Waiting
	}
	fmt.Fprintf(os.Stderr, "\rimport: %d heartbeats read, %d refused, %.0f/s, %.1f%s MB%s%s   ",
		p.Read, p.Refused, p.Rate(), float64(p.Bytes)/1e6, of, eta, wait)
	if p.Done {
		fmt.Fprintln(os.Stderr)
	}
}

// openInput opens FILE, or stdin for "-", with its size when known.
func openInput(name string) (io.Reader, int64, func(), error) {
	if name == "-" {
		return os.Stdin, 0, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, nil, err
	}
	var size int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, func() { _ = f.Close() }, nil
}

// loadWakaTimeValues reads WakaTime's answer to GET …/user_agents or
// …/machine_names ({"data": [{"id": …, "value": …}]}) as id → value.
func loadWakaTimeValues(name string) (map[string]string, error) {
	if name == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Data []struct {
			ID    string `json:"id"`
			Value string `json:"value"`
			Name  string `json:"name"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: want WakaTime's {\"data\": [{\"id\": …, \"value\": …}]}: %w", name, err)
	}
	out := make(map[string]string, len(doc.Data))
	for _, d := range doc.Data {
		v := d.Value
		if v == "" {
			v = d.Name
		}
		if d.ID != "" && v != "" {
			out[d.ID] = v
		}
	}
	return out, nil
}

func exportCmd() *cobra.Command {
	var userID, since, until, output string
	var zip bool
	cmd := &cobra.Command{
		Use:   "export --user ID [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--gzip] [-o FILE]",
		Short: "Write a user's heartbeats out as JSON lines (WakaTime's field names)",
		Long: `Export one user's heartbeats: one JSON object per line, in the fields and
form of a day file (WakaTime's field names, plus editor, plugin,
operating_system and the unknown fields a client sent under "extra"), by UTC
day ascending, from wherever each day is: Postgres for the hot days, SSDB or
S3 for the others. "heartlog import ndjson" reads it back.

--since and --until are UTC days, inclusive (default: everything). Without
-o the lines go to stdout; with -o FILE they go to FILE.tmp, renamed to FILE
once complete, so a failed export leaves no half-written FILE. A day past
the shard grace that is not closed yet (an import's, until the day closer
compacts it) is not in the export.

The user can download the same with their API key:
  GET /api/v1/users/current/heartbeats.ndjson?start=YYYY-MM-DD&end=YYYY-MM-DD

Examples:
  heartlog export --user 3f0c... --gzip -o alice.ndjson.gz
  heartlog export --user 3f0c... --since 2026-01-01 --until 2026-06-30 | jq .project`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			from, err := dumps.ParseDay(since)
			if err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			to, err := dumps.ParseDay(until)
			if err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if !from.IsZero() && !to.IsZero() && to.Before(from) {
				return errors.New("--until is before --since")
			}
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			rt, err := startRuntime(ctx, cfg, log, "export")
			if err != nil {
				return err
			}
			defer rt.close()
			u, err := rt.users.ByID(ctx, userID)
			if errors.Is(err, users.ErrNotFound) {
				return fmt.Errorf("no user %q (heartlog users list)", userID)
			} else if err != nil {
				return err
			}
			reader, _, stop, err := rt.reader(ctx)
			if err != nil {
				return err
			}
			defer stop()
			files, err := instrumentedBucket(ctx, cfg.S3, "HEARTLOG_S3_", "export")
			if err != nil {
				return err
			}
			e := &dumps.Exporter{Reader: reader, Files: files, Grace: cfg.ShardsGrace}
			return writeOutput(output, zip, func(w io.Writer) error {
				res, err := e.Export(ctx, struct{ io.Writer }{w}, u, from, to, nil) // flushed once, at the end
				fmt.Fprintf(os.Stderr, "export: %d heartbeats of %d days, %.1f MB of JSON\n", res.Heartbeats, res.Days, float64(res.Bytes)/1e6)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&userID, "user", "", "the user (id) whose heartbeats are exported (required)")
	f.StringVar(&since, "since", "", "first UTC day (YYYY-MM-DD)")
	f.StringVar(&until, "until", "", "last UTC day (YYYY-MM-DD)")
	f.BoolVar(&zip, "gzip", false, "gzip the output")
	f.StringVarP(&output, "output", "o", "", "write to this file (default stdout)")
	_ = cmd.MarkFlagRequired("user")
	return cmd
}

// writeOutput runs write on stdout or on name's temporary file, renamed
// to name once write and every close succeeded; gzip on request.
func writeOutput(name string, zip bool, write func(io.Writer) error) (err error) {
	var out io.Writer = os.Stdout
	var file *os.File
	if name != "" {
		if file, err = os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".*.tmp"); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				_ = file.Close()
				_ = os.Remove(file.Name())
			}
		}()
		out = file
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	var w io.Writer = bw
	var zw *gzip.Writer
	if zip {
		zw = gzip.NewWriter(bw)
		w = zw
	}
	if err = write(w); err != nil {
		return err
	}
	if zw != nil {
		if err = zw.Close(); err != nil {
			return err
		}
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if file == nil {
		return nil
	}
	if err = file.Close(); err != nil {
		return err
	}
	return os.Rename(file.Name(), name)
}
