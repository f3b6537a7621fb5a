package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"heartlog/daydb"
	"heartlog/internal/devstack"
	"heartlog/internal/wiring"
	"heartlog/schema/migrations"
)

// A drain-shards layout: where the days go.
type shardLayout struct {
	name    string
	catalog *pgxpool.Pool
	shards  []*pgxpool.Pool // none: the catalog holds the days
	servers []pgServer      // whose CPU is counted
}

// pgServer is a Postgres server whose CPU time the drain counts: its
// postmaster and every backend (its children).
type pgServer struct {
	name       string
	postmaster int
}

// runDrainShards publishes a backlog of -drain-heartbeats over
// -drain-shards-days UTC days once, then times the Postgres processor
// draining all of it twice, each time on a new consumer from the stream's
// start: into one database on the shared server (catalog and days), then
// into two shard databases on two servers (the shared one and a cluster of
// the bench's own, started with the shared server's durability settings so
// that the two compare), the catalog on the shared server. Each row
// reports rows/s, the rows and days of each database, and the CPU of this
// process (processor and NATS) and of each server.
func runDrainShards(ctx context.Context, st *stack, cfg config) ([]result, error) {
	if err := freshStream(ctx, st); err != nil {
		return nil, err
	}
	pubRes, distinct, err := publishDrainBacklog(ctx, st, cfg, "drain-shards-publish", cfg.drainShardsDays)
	if err != nil {
		return nil, err
	}
	results := []result{pubRes}

	shared, err := serverOf(ctx, "postgres (shared)", st.pool)
	if err != nil {
		return results, err
	}
	one, err := st.benchDatabase(ctx, cfg.postgresURL, migrations.Both)
	if err != nil {
		return results, err
	}
	layouts := []shardLayout{{name: "1 database", catalog: one, servers: []pgServer{shared}}}

	second, err := st.secondServer(ctx)
	if err != nil {
		return results, err
	}
	two := shardLayout{name: "2 databases on 2 servers", servers: []pgServer{shared}}
	if two.catalog, err = st.benchDatabase(ctx, cfg.postgresURL, migrations.Catalog); err != nil {
		return results, err
	}
	for _, server := range []string{cfg.postgresURL, second.URL} {
		p, err := st.benchDatabase(ctx, server, migrations.Shard)
		if err != nil {
			return results, err
		}
		two.shards = append(two.shards, p)
	}
	own, err := serverOf(ctx, "postgres (bench's own)", two.shards[1])
	if err != nil {
		return results, err
	}
	two.servers = append(two.servers, own)
	layouts = append(layouts, two)

	for _, l := range layouts {
		r, err := drainInto(ctx, st, cfg, l, pubRes.msgs, distinct)
		if err != nil {
			return append(results, result{scenario: "drain-shards: " + l.name, target: "—", failed: err.Error()}), err
		}
		results = append(results, r)
	}
	return results, nil
}

// drainInto times the processor draining the whole stream into the
// layout's databases.
func drainInto(ctx context.Context, st *stack, cfg config, l shardLayout, msgs uint64, distinct int) (result, error) {
	res := result{scenario: "drain-shards: " + l.name, target: "—", msgs: msgs, distinct: distinct, unit: "rows/s"}
	days, err := daydb.New(l.catalog, l.shards...)
	if err != nil {
		return res, err
	}
	if err := st.deletePostgresConsumer(ctx); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "bench: drain-shards: %d heartbeats into %s\n", distinct, l.name)
	stopProfile, err := startProfile(cfg, "drain-shards-"+strconv.Itoa(len(days.All()))+"db")
	if err != nil {
		return res, err
	}
	cpu0, wall0 := takeServerCPU(l.servers), time.Now()
	if err := st.startProcessorOn(ctx, cfg.drainFetch, days); err != nil {
		_ = stopProfile()
		return res, err
	}
	sink := st.proc.sink
	done, err := waitRows(ctx, cfg, sink, int64(distinct), int64(distinct), func(ctx context.Context) (int64, error) {
		var sum int64
		for _, db := range days.All() {
			n, err := rowCount(ctx, db.Pool)
			if err != nil {
				return 0, err
			}
			sum += n
		}
		return sum, nil
	})
	wall1, cpu1 := time.Now(), takeServerCPU(l.servers)
	perr := stopProfile()
	st.stopProcessor()
	if err := errors.Join(err, perr); err != nil {
		return res, err
	}
	res.seconds = done.Sub(wall0).Seconds()
	res.rate = float64(distinct) / res.seconds
	res.heartbeats = distinct
	sink.mu.Lock()
	res.latency = summarize(sink.commits)
	res.requests = len(sink.commits)
	sink.mu.Unlock()
	perDB, err := rowsPerDatabase(ctx, days)
	if err != nil {
		return res, err
	}
	res.notes = append(res.notes, fmt.Sprintf("%s distinct rows in %.1fs, %d commits (latency columns: commits)", thousands(float64(distinct)), res.seconds, res.requests), perDB)
	res.cpuNote = serverCPUNote(l.servers, cpu0, cpu1, wall1.Sub(wall0).Seconds())
	return res, nil
}

// rowsPerDatabase says how many rows and days each database holds.
func rowsPerDatabase(ctx context.Context, days *daydb.Set) (string, error) {
	ps, err := days.Placements(ctx)
	if err != nil {
		return "", err
	}
	placed := map[string]int{}
	for _, p := range ps {
		placed[p.Database]++
	}
	var parts []string
	for _, db := range days.All() {
		n, err := rowCount(ctx, db.Pool)
		if err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("%s: %s rows, %d days", db.Name, thousands(float64(n)), placed[db.Name]))
	}
	return strings.Join(parts, ", "), nil
}

func rowCount(ctx context.Context, p *pgxpool.Pool) (int64, error) {
	var n int64
	err := p.QueryRow(ctx, "SELECT count(*) FROM heartbeats").Scan(&n)
	return n, err
}

// benchDatabase creates a database of the bench's own on the server
// serverURL reaches, with the migrations of set, dropped by close.
func (st *stack) benchDatabase(ctx context.Context, serverURL string, set migrations.Set) (*pgxpool.Pool, error) {
	name := benchDatabaseName()
	u, err := wiring.CreateDatabase(ctx, serverURL, name)
	if err != nil {
		return nil, err
	}
	st.closers = append(st.closers, func() error { return wiring.DropDatabase(context.Background(), serverURL, name) })
	p, err := wiring.NewPool(ctx, u)
	if err != nil {
		return nil, err
	}
	st.closers = append(st.closers, func() error { p.Close(); return nil })
	return p, wiring.MigrateSet(ctx, p, set, st.log)
}

// secondServer starts a Postgres cluster of the bench's own in a temporary
// directory, with the shared server's fsync, synchronous_commit and
// full_page_writes, stopped and removed by close.
func (st *stack) secondServer(ctx context.Context) (*devstack.Postgres, error) {
	settings := map[string]string{}
	for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		var v string
		if err := st.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return nil, err
		}
		settings[name] = v
	}
	dir, err := os.MkdirTemp("", "heartlog-bench-postgres-")
	if err != nil {
		return nil, err
	}
	st.closers = append(st.closers, func() error { return os.RemoveAll(dir) })
	fmt.Fprintf(os.Stderr, "bench: starting a second Postgres in %s (fsync=%s, synchronous_commit=%s, full_page_writes=%s, as the shared server)\n",
		dir, settings["fsync"], settings["synchronous_commit"], settings["full_page_writes"])
	pg, err := devstack.StartPostgres(devstack.PostgresOptions{Dir: dir, Settings: settings})
	if pg != nil {
		st.closers = append(st.closers, pg.Stop)
	}
	return pg, err
}

// serverOf finds the postmaster of pool's server: the parent of one of
// its backends, on this machine. A server elsewhere (or a /proc this
// process may not read) is an error: the drain's point is whose CPU runs
// out.
func serverOf(ctx context.Context, name string, pool *pgxpool.Pool) (pgServer, error) {
	var backend int
	if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return pgServer{}, err
	}
	f, err := procStat(backend)
	if err != nil {
		return pgServer{}, fmt.Errorf("%s is not on this machine (its backend %d: %w)", name, backend, err)
	}
	pm, err := strconv.Atoi(f[1])
	if err != nil {
		return pgServer{}, fmt.Errorf("%s: backend %d: bad parent %q", name, backend, f[1])
	}
	return pgServer{name: name, postmaster: pm}, nil
}

// procStat is /proc/<pid>/stat's fields after the command name: state is
// [0], ppid [1], utime [11], stime [12], cutime [13], cstime [14].
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return nil, errors.New("bad stat")
	}
	return f, nil
}

// ticks sums fields of a stat, in clock ticks of 1/100 s (USER_HZ).
func ticks(f []string, idx ...int) time.Duration {
	var n int64
	for _, i := range idx {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return time.Duration(n) * 10 * time.Millisecond
}

// serverCPU is the CPU time of a server: its postmaster's own and its
// exited children's (cutime, cstime), and each living child's. A backend
// that exits between two samples moves from the last to the first sum.
func serverCPU(s pgServer) time.Duration {
	f, err := procStat(s.postmaster)
	if err != nil {
		return 0
	}
	total := ticks(f, 11, 12, 13, 14)
	entries, _ := os.ReadDir("/proc")
	want := strconv.Itoa(s.postmaster)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := procStat(pid); err == nil && f[1] == want {
			total += ticks(f, 11, 12)
		}
	}
	return total
}

// serverSnap is this process's CPU time and each server's.
type serverSnap struct {
	self    time.Duration
	servers []time.Duration
}

func takeServerCPU(servers []pgServer) serverSnap {
	s := serverSnap{self: cpuTime()}
	for _, srv := range servers {
		s.servers = append(s.servers, serverCPU(srv))
	}
	return s
}

// serverCPUNote says how many cores this process and each server used
// between two snapshots, against the machine's.
func serverCPUNote(servers []pgServer, a, b serverSnap, wall float64) string {
	self := (b.self - a.self).Seconds() / wall
	parts := []string{fmt.Sprintf("heartlog (processor, NATS) %.2f", self)}
	total := self
	for i, s := range servers {
		c := (b.servers[i] - a.servers[i]).Seconds() / wall
		total += c
		parts = append(parts, fmt.Sprintf("%s %.2f", s.name, c))
	}
	return fmt.Sprintf("cpu %s = %.2f of %d cores (the shared server's includes other clients')", strings.Join(parts, " + "), total, runtime.NumCPU())
}
