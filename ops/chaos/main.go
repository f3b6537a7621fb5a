// Command chaos is heartlog's fault matrix: each row injects one fault
// into a real, private stack while a bounded load runs, waits until the
// processors have caught up, and counts what each sink holds of the
// heartbeats the API acknowledged. It prints a Markdown table: per row the
// heartbeats acknowledged, the requests not answered 2xx, what Postgres,
// S3 (the primary bucket's day files), the cache (SSDB, here Redis) and
// the backup (the newest version of each day file) hold of them, the
// heartbeats lost (acknowledged but missing from a sink they belong in;
// must be 0) and duplicated (one id twice in one sink; must be 0).
//
// Run it from the repository root:
//
//	make chaos                                  # every row, some 10 minutes
//	make chaos CHAOSFLAGS='-rows poison -v -keep'
//	go run ./ops/chaos -rows process-kill,serve-kill
//
// It never touches the shared local stack (ops/stack.sh). It starts its
// own in a temporary directory, on free loopback ports: a Postgres 15
// cluster (initdb), a redis-server with its append-only file on (SSDB
// keeps its data on disk, and so must its stand-in), versitygw with a
// versioned backup bucket, the fault-injecting S3 proxy of internal/faults
// in front of it (in this process), and a standalone nats-server
// (.tools/bin/nats-server, built from go.mod's module; sync_interval:
// always). heartlog runs as separate OS processes, bin/heartlog serve and
// one bin/heartlog process --only P per processor, configured by HEARTLOG_*
// variables, so that kill -9 is real. Each row gets a fresh NATS store, a
// fresh database and fresh users; the servers live for the whole suite.
//
// The load sends for yesterday (UTC): today's day files are never written
// while today is open. The processes run with HEARTLOG_DAY_CLOSE_DELAY a
// year, so no day closer acts by itself; each row closes the day with
// `bin/heartlog days close`, as an operator would, where it tests its fault
// best: early (the rest of its traffic is the late path's under the
// fault), in the fault (the compaction meets it), or at the end (the fault
// hits ingest and Postgres, the compaction writes the files). Every row
// closes its days again at its end before counting (skipped where
// recorded), and a day closed only then must have had no day file.
//
// The rows (-rows picks some; see allRows): kill -9 of each processor
// -kills times in a row, each kill once the restarted process holds
// delivered, unacked messages; kill -9 of serve; Postgres stopped
// -pg-down; Redis stopped -redis-down; S3 answering 30% 503 SlowDown for
// -s3-down; the NATS server restarted (SIGTERM, then kill -9); a poison
// heartbeat (through the API and straight into the stream); a corrupt day
// file in S3; the shard janitor killed after each of its steps
// (HEARTLOG_DEBUG_JANITOR_PAUSE holds it there); `heartlog days close`
// killed at random points until a run completes, then one late heartbeat
// (one more backup version of its file only).
//
// The exit status is 1 when a row lost or duplicated a heartbeat, or
// failed to run; the table is printed either way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	rows     []row
	keep     bool
	verbose  bool
	users    int
	interval time.Duration
	bulk     int
	kills    int
	// compaction-kill: its users, each one's heartbeats of the day, and
	// how many times `days close` is killed before it may complete.
	compactionUsers, compactionHeartbeats, compactionKills int
	serveKills                                             int
	pgDown                                                 time.Duration
	redisDown                                              time.Duration
	s3Down                                                 time.Duration
	settle                                                 time.Duration
	poisonSettle                                           time.Duration
	root                                                   string
	heartlog                                               string
	tools                                                  string
	pgBin                                                  string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var names []string
	for _, r := range allRows {
		names = append(names, r.name)
	}
	rows := fs.String("rows", strings.Join(names, ","), "rows to run, comma-separated, in the matrix's order")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (logs, data) for inspection")
	fs.BoolVar(&c.verbose, "v", false, "more progress lines")
	fs.IntVar(&c.users, "users", 30, "users of each row's load")
	fs.DurationVar(&c.interval, "interval", 500*time.Millisecond, "each user sends one request this often")
	fs.IntVar(&c.bulk, "bulk", 10, "heartbeats in every 8th request (heartbeats.bulk)")
	fs.IntVar(&c.kills, "kills", 20, "process-kill: kills of each processor in a row")
	fs.IntVar(&c.compactionUsers, "compaction-users", 300, "compaction-kill: users sending for the day")
	fs.IntVar(&c.compactionHeartbeats, "compaction-heartbeats", 40, "compaction-kill: heartbeats of each user's day")
	fs.IntVar(&c.compactionKills, "compaction-kills", 8, "compaction-kill: kills of `heartlog days close` before it may complete")
	fs.IntVar(&c.serveKills, "serve-kills", 5, "serve-kill: kills of serve")
	fs.DurationVar(&c.pgDown, "pg-down", 90*time.Second, "postgres-down: how long Postgres stays stopped")
	fs.DurationVar(&c.redisDown, "redis-down", 60*time.Second, "redis-down: how long Redis stays stopped")
	fs.DurationVar(&c.s3Down, "s3-down", 60*time.Second, "s3-slowdown: how long S3 refuses 30% of requests")
	fs.DurationVar(&c.settle, "settle", 60*time.Second, "how long a row waits at its end for the processors to catch up")
	fs.DurationVar(&c.poisonSettle, "poison-settle", 30*time.Second, "poison: the deadline within which every other heartbeat must land")
	fs.StringVar(&c.heartlog, "heartlog", "bin/heartlog", "the heartlog binary (make chaos builds it)")
	fs.StringVar(&c.tools, "tools", ".tools/bin", "directory with versitygw and nats-server")
	fs.StringVar(&c.pgBin, "pg-bin", "/usr/lib/postgresql/15/bin", "Postgres 15 binaries (initdb, postgres)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, name := range strings.Split(*rows, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := slices.IndexFunc(allRows, func(r row) bool { return r.name == name })
		if i < 0 {
			return c, fmt.Errorf("unknown row %q (have %s)", name, strings.Join(names, ", "))
		}
		if !slices.ContainsFunc(c.rows, func(r row) bool { return r.name == name }) {
			c.rows = append(c.rows, allRows[i])
		}
	}
	slices.SortFunc(c.rows, func(a, b row) int {
		return slices.IndexFunc(allRows, func(r row) bool { return r.name == a.name }) -
			slices.IndexFunc(allRows, func(r row) bool { return r.name == b.name })
	})
	switch {
	case len(c.rows) == 0:
		return c, errors.New("-rows names none")
	case c.users < 2 || c.users > 1000 || c.compactionUsers < 2 || c.compactionUsers > 1000:
		return c, errors.New("-users and -compaction-users must be 2-1000")
	case c.compactionHeartbeats < 1 || c.compactionHeartbeats > 10000 || c.compactionKills < 0 || c.compactionKills > 100:
		return c, errors.New("-compaction-heartbeats must be 1-10000, -compaction-kills 0-100")
	case c.interval < 10*time.Millisecond || c.bulk < 1 || c.bulk > 25:
		return c, errors.New("-interval must be at least 10ms, -bulk 1-25")
	case c.kills < 1 || c.kills > 100 || c.serveKills < 1 || c.serveKills > 100:
		return c, errors.New("-kills and -serve-kills must be 1-100")
	case c.pgDown <= 0 || c.redisDown <= 0 || c.s3Down <= 0 || c.settle <= 0 || c.poisonSettle <= 0:
		return c, errors.New("durations must be positive")
	}
	var err error
	if c.root, err = os.Getwd(); err != nil {
		return c, err
	}
	for _, p := range []*string{&c.heartlog, &c.tools} {
		if *p, err = filepath.Abs(*p); err != nil {
			return c, err
		}
	}
	for _, bin := range []string{c.heartlog, filepath.Join(c.tools, "versitygw"), filepath.Join(c.tools, "nats-server"),
		filepath.Join(c.pgBin, "initdb"), filepath.Join(c.pgBin, "postgres")} {
		if _, err := os.Stat(bin); err != nil {
			return c, fmt.Errorf("%s is missing (make chaos builds and installs what the suite needs): %w", bin, err)
		}
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// run starts the stack, runs the rows and prints the table.
func run(ctx context.Context, cfg config) (bool, error) {
	started := time.Now()
	st, err := startStack(ctx, cfg)
	if st != nil {
		defer st.close()
	}
	if err != nil {
		return false, err
	}
	var results []result
	for _, rw := range cfg.rows {
		if ctx.Err() != nil {
			break
		}
		res := runRow(ctx, st, rw)
		st.logf("[%s] %s", rw.name, res.summary())
		for _, m := range res.t.missingSample {
			st.logf("[%s] e.g. %s", rw.name, m)
		}
		results = append(results, res)
	}
	printTable(os.Stdout, results, time.Since(started))
	ok := ctx.Err() == nil
	for _, r := range results {
		ok = ok && r.passed()
	}
	return ok, nil
}

// runRow runs one row on a fresh part of the stack and counts the sinks.
func runRow(ctx context.Context, st *stack, rw row) (res result) {
	start := time.Now()
	res.row = rw
	st.logf("[%s] %s", rw.name, rw.fault)
	// Every row is bounded: a fault that hangs the driver fails the row.
	ctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	defer func() { res.took = time.Since(start) }()
	if err := st.beginRow(ctx, rw.name); err != nil {
		res.err = err
		return res
	}
	defer st.endRow()
	users := st.cfg.users
	if rw.name == "compaction-kill" {
		users = st.cfg.compactionUsers
	}
	l, err := newLoad(ctx, st, users)
	if err != nil {
		res.err = err
		return res
	}
	r := &rowRun{st: st, cfg: st.cfg, l: l, skip: map[string]bool{}, inPG: func(string) bool { return true },
		settle: st.cfg.settle, closed: map[string]bool{}}
	err = rw.run(ctx, r)
	r.stopLoad()
	if err == nil {
		err = r.closeAtEnd(ctx)
	}
	res.notes = r.notes
	if err != nil {
		res.err = err
		return res
	}
	st.logf("[%s] waiting up to %s for the processors to catch up", rw.name, r.settle)
	settleStart := time.Now()
	if behind := st.settle(ctx, r.settle); behind != "" {
		res.notes = append(res.notes, "not caught up after "+r.settle.String()+": "+behind)
	} else {
		res.notes = append(res.notes, "caught up in "+time.Since(settleStart).Round(time.Second).String())
	}
	if rw.name == "poison" {
		n := st.dlqCount(ctx)
		if n < 0 {
			res.notes = append(res.notes, "no HEARTBEATS_DLQ stream: poison not parked")
		} else {
			res.notes = append(res.notes, fmt.Sprintf("HEARTBEATS_DLQ holds %d", n))
		}
	}
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer ccancel()
	res.t, err = st.count(cctx, l, r.skip, r.inPG)
	if err != nil {
		res.err = fmt.Errorf("count: %w", err)
	}
	if rw.name == "poison" {
		res.notes = append(res.notes, fmt.Sprintf("other heartbeats held back from Postgres: %d", res.t.pg.lost()))
	}
	l.mu.Lock()
	res.requests, res.outcomes = l.requests, l.outcomes
	l.mu.Unlock()
	return res
}
