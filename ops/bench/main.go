// Command bench measures heartlog's durable ingest and its Postgres
// projection on this machine, with the real code wired as `heartlog dev`
// wires it: an embedded nats-server with JetStream (sync_interval: always by
// default, so every stored message is fsynced), the real API on a loopback
// TCP listener, the real group-commit publisher, and the real Postgres
// processor writing into a fresh database. Nothing is mocked.
//
// Run it from the repository root with the local stack's environment:
//
//	. var/env && go run ./ops/bench
//	go run ./ops/bench -scenarios drain -drain-heartbeats 200000
//	go run ./ops/bench -cpuprofile /tmp/heartlog-prof
//
// (`make bench` starts the stack and does this.) It needs only
// HEARTLOG_POSTGRES_URL (or -postgres): a database named heartlog_bench_*
// is created there and dropped at the end. The JetStream store lives in
// var/bench/nats, which is removed before and after the run.
//
// Scenarios (-scenarios picks some, in this order):
//
//   - bulk: -bulk-conns HTTP/1.1 keep-alive connections, one user each, POST
//     /api/v1/users/current/heartbeats.bulk with -bulk-size distinct
//     heartbeats per request, shaped like the wakatime-cli requests in
//     shared/fixtures/wakatime (Basic base64(key), User-Agent,
//     X-Machine-Name, times within the last hour). Only a 201 whose every
//     item is 201 counts as acknowledged. Target: 100,000 heartbeats/s.
//   - single: -single-conns connections POSTing one heartbeat each to
//     /api/v1/users/current/heartbeats. Target: 15,000 requests/s.
//   - ingest-all (not run by default: it needs HEARTLOG_S3_*,
//     HEARTLOG_BACKUP_S3_* and HEARTLOG_CACHE_URL): whole-system ingest in
//     the `heartlog dev` configuration. Bulk's load (-bulk-conns
//     connections, -bulk-size heartbeats a request) over -ingest-users
//     users, each connection sending for its share of them in turn,
//     through the API with the production limits (config's), for -warmup
//     and -duration, twice in one run on an emptied stream: first with
//     only the Postgres processor running, then with every processor of
//     processors/catalog (the day-file ones behind compaction.LatePath on
//     their partition consumers) and the day closer, as cmd/heartlog's
//     process wires them. Today is an open day, so the day-file
//     processors only ack. Reported per phase: heartbeats/s, the Postgres
//     consumer's backlog at the window's end and how long the processors
//     took to go idle, the day-file requests and writes (0 expected).
//     Target: all four ≥ 25,000 heartbeats/s and ≥ 0.85 of the Postgres-only
//     figure.
//   - drain: with no processor running, -drain-heartbeats heartbeats over
//     -drain-users users and -drain-days UTC days are published straight
//     through streams.Publisher (no HTTP), then the Postgres processor is
//     started and timed until every distinct heartbeat is a row. Target:
//     100,000 rows/s. The publish of the backlog is reported as well.
//   - drain-shards (not run by default): a backlog of -drain-heartbeats
//     heartbeats over -drain-users users and -drain-shards-days UTC days
//     is published once, then the Postgres processor drains all of it
//     twice, each time on a new consumer from the stream's start: into one
//     database on the shared server, then into two shard databases, one on
//     the shared server and one on a Postgres cluster the bench starts in a
//     temporary directory (with the shared server's fsync,
//     synchronous_commit and full_page_writes) and stops at the end, the
//     catalog on the shared server. Reported per layout: rows/s, the rows
//     and days on each database, and the CPU of this process and of each
//     server's postmaster and backends (from /proc).
//   - dayfiles-drain (not run by default): a backlog of -dayfiles-heartbeats
//     heartbeats over -dayfiles-users users (each with a random object
//     prefix) and -dayfiles-days UTC days is published as drain's is; then
//     each of the objects, cache and backup processors, alone, runs with
//     processors.RunPartitions over the stack's real stores (versitygw's
//     primary bucket, its versioned backup bucket, Redis) and is timed
//     until its 16 partition consumers have nothing pending or unacked.
//     Reported per processor: heartbeats/s, day-file writes
//     (heartlog_dayfile_writes_total) per user-day, requests, CPU. Target:
//     objects 50,000 heartbeats/s. The day files are deleted at the end
//     (every backup version too) unless -dayfiles-keep.
//   - dayfiles-latency (not run by default): the same over a smaller
//     backlog (-latency-*), with internal/faults proxies in front of
//     versitygw: the primary answers in 200 ms, the backup like Spaces (2 s
//     PUTs, a 500 requests/s ceiling that refuses the excess with 503
//     SlowDown). It runs in -latency-rounds rounds on the same day files:
//     round 1 meets files the sink never saw (a GET before each write of
//     an older day), later rounds files it remembers writing (one
//     conditional PUT each), as the successive flushes of a busy day do.
//     Reported per round: sustained writes/s of objects (target 2,000) and
//     backup (target 450), requests per write, and the concurrency.
//   - reads (not run by default; some 7 minutes): one heavy user with
//     -reads-per-day heartbeats on each of -reads-days days, among
//     -reads-users users (the others have -reads-other-days days of
//     -reads-other-per-day heartbeats), written straight into Postgres
//     (COPY), the primary bucket and the cache; then GET
//     /api/v1/users/current/summaries through the real API handler for 7,
//     30 and 365 days, hot (Postgres), warm (SSDB) and cold (S3 only: the
//     range's cache keys are deleted before each request), -reads-iterations
//     times each (-reads-states picks some of hot, warm, cold). Reported:
//     p50 and p99, the read path's share, S3 GETs.
//     Targets: warm p99 7 days 10 ms, 365 days 150 ms, no S3 GET when warm.
//     The day files and cache keys are deleted at the end.
//   - compaction (not run by default): -compaction-heartbeats heartbeats
//     of -compaction-users users, all of yesterday (UTC), published as
//     drain's are; then `heartlog days close` (compaction.CloseDay) writes
//     every user-day once into the stack's primary bucket, Redis and the
//     versioned backup bucket, with the production settings (config's
//     defaults: -compaction-partitions partitions at once, each spilling
//     past -compaction-memory-bytes; the sinks' concurrency), but no
//     backup request ceiling (-compaction-backup-rps). Reported:
//     heartbeats/s over the close; files per user-day per sink counted by
//     the stores (S3 PUTs from the objstore metrics, cache writes from the
//     generations in Redis) beside the compaction's records; GETs, refused
//     conditional PUTs, SDK retries; runs spilled; each sink's pass time;
//     peak RSS (VmHWM of this process, reset just before the close: it
//     includes the embedded NATS server serving the reads and what the
//     publish left, which "before" shows). -compaction-one-partition puts
//     every user on one partition: with -compaction-heartbeats 2000000 it
//     measures the bound, a partition-day of 2,000,000 heartbeats
//     within 512 MiB of RSS (the row's target). The day files are deleted
//     at the end unless -dayfiles-keep.
//   - compaction-latency (not run by default): the close of a day (the day
//     before yesterday) of -compaction-latency-users user-days
//     (-compaction-latency-heartbeats heartbeats) through dayfiles-latency's
//     proxies: the primary answers in -latency-primary (200 ms), the
//     backup like Spaces (-latency-backup-put 2 s PUTs, a
//     -latency-backup-rate 500 requests/s ceiling past which it answers 503
//     SlowDown). Production settings: the backup sink paced at
//     -latency-backup-rps (HEARTLOG_BACKUP_REQUESTS_PER_SECOND), the
//     compaction-* concurrency, partitions and memory. Reported: the close's
//     wall time, and per sink the time until its last record was written
//     (its files done), its pass times (compaction.Result Took), PUTs, GETs,
//     refused conditional PUTs, SDK retries, the proxies' 503s, and the
//     backup's achieved request rate against its pace and the ceiling.
//   - janitor (not run by default): -janitor-rows rows COPYed into one day's
//     partition, the day's messages acked by every objects and cache
//     partition consumer, then the shard janitor's DropNow (`heartlog
//     shards drop`) is timed, with its steps (prove, drain, settle, detach,
//     drop, mark-dropped).
//   - noisy-neighbour (not run by default; about a minute): an API with the
//     production limits (api.Options defaults) beside the unlimited one;
//     user B sends single heartbeats over 8 connections, one per second
//     each (below B's own limits), for -noisy-phase alone and then for
//     -noisy-phase while user A sends 1000 heartbeats over 31 UTC days per
//     request (the most a request may carry) back to back over
//     -noisy-conns connections. Reported: B's p50/p99 in both phases (target:
//     with A at most 2× alone), A's 429s and accepted requests.
//   - paced (not run by default; -paced-duration plus about a minute; not
//     with compaction, which closes yesterday too): -paced-users users,
//     each a plugin sending one heartbeat every -paced-min-interval to
//     -paced-max-interval (uniform, the first within the first interval)
//     to POST /api/v1/users/current/heartbeats, a new connection each as
//     wakatime-cli, through the API with the production limits, for
//     -paced-duration, while every processor and the day closer run as in
//     ingest-all (the closer with -paced-close-delay, so that it leaves
//     yesterday open). The heartbeats are of yesterday (UTC) at the clock
//     time they are sent. Three rows: "open day" counts what the
//     processors and the closer asked of the day-file stores while the day
//     was open (S3 and backup PUTs and GETs from the objstore metrics,
//     cache writes from the generations in Redis, heartlog_dayfile_writes,
//     the late path's admissions; the conditional-write probes at start
//     apart). Target: 0. "close" times compaction.CloseDay of yesterday with
//     the sinks catalog.CompactionSinks builds (as `heartlog days close`),
//     beside the running closer, and reports S3 PUTs, backup writes and
//     cache writes per user-day (target ≤ 1.05 each), GETs, the load
//     average. "late" has -paced-late-users users send one bulk of 3
//     heartbeats of the closed day each and reports the late path's writes
//     per user-day per sink (expected 1: one flush each). The day files
//     are deleted at the end unless -dayfiles-keep.
//   - statusbar (not run by default; some 3 minutes): one user with
//     -statusbar-heartbeats heartbeats today, GET
//     /api/v1/users/current/statusbar/today over loopback HTTP, warm
//     (-statusbar-requests timed), on an API serving it from package
//     today's live state and on one computing it (the path before); then
//     the same, interleaved, for -statusbar-duration while -paced-users
//     users each send a heartbeat and read their own status bar every 60 to
//     120 s. Reported: p50 and p99 of each. Target (live): p50 ≤ 1 ms,
//     p99 ≤ 5 ms.
//   - dashboard (not run by default; needs Debian's chromium, HEARTLOG_S3_*
//     and HEARTLOG_CACHE_URL; about the reads setup plus 3 minutes): the
//     reads scenario's year, warm, served with the dashboard; headless
//     Chromium times navigation to performance.mark("dashboard-ready") for
//     last 7 days and last year (-dashboard-loads warm loads each; target
//     last year ≤ 500 ms), the bundle's gzip -9 size (≤ 300 KB) and
//     -dashboard-live heartbeats from ack to the paint of #today-total
//     (p99 ≤ 2 s). See dashboard.go.
//   - import (not run by default): a WakaTime heartbeats dump of
//     -import-heartbeats heartbeats over -import-days days (from 2019, past
//     any shard grace) is written to the work directory, then imported by
//     dumps.Import as `heartlog import wakatime` does, with no processor
//     running. Reported: heartbeats/s and peak RSS. Target: 50,000
//     heartbeats/s.
//   - restore (not run by default; needs HEARTLOG_S3_* and
//     HEARTLOG_BACKUP_S3_*): -restore-files user-days (-restore-days a
//     user, a few hundred heartbeats a file, under one object prefix of
//     the run) are written straight into both buckets, T is noted, a
//     second version of every file (3 late heartbeats more) is written to
//     both and every 20th is deleted from the primary; then restore.Run
//     (`heartlog restore --at T --to objects`, its concurrency and pace)
//     puts them back, reading the backup through a Space's simulation
//     (dayfiles-latency's, with a -restore-backup-rate ceiling, 240
//     requests/s) and the primary through the S3 one. Reported: files/s,
//     the proxies' requests by operation and 503s, requests a file, CPU,
//     and how many primary files are not their content at T afterwards
//     (0 expected). Target: the ceiling ÷ backup requests a file (about 1:
//     240 files/s); the commands' concurrency bounds it first.
//   - verify (not run by default; as restore): -verify-files user-days in
//     both buckets, 10 deleted from the backup, 10 with another version
//     there and 10 day files only there; resync.VerifyBackup (`heartlog
//     backup verify`, its concurrency and pace) through the same
//     simulation. Reported as restore, and whether it found exactly the
//     seeded drift. Target: as restore's.
//
// How to read the output: for bulk and single, the clients run for -warmup
// (not counted) and then for -duration; throughput counts the requests that
// completed inside the measured window, and the latency percentiles are
// over the acknowledged ones (client-side, request written to response
// read). "msgs" is how many JetStream messages the stream gained in the
// window, so "hb/msg" is how well the publisher's group commit batches: with
// fsync on every message, messages/s (about 6,000/s on the reference disk)
// times hb/msg is the ceiling of durable ingest. "cpu" is the CPU time this
// process (load generator, API, NATS server, publisher, processor, but not
// Postgres) used per second of wall time; close to the machine's core count
// means CPU-bound, well below means waiting (fsync, Postgres, locks).
//
// The load generator shares the machine (and this process) with the
// server, as a benchmark on one box must: its cost is part of every number.
// CPU profiles (-cpuprofile) carry a pprof label "component" (loadgen, api,
// publisher, nats-client, nats-server, processor) so that, e.g.,
//
//	go tool pprof -tags bulk.pprof
//	go tool pprof -top -cum -tagfocus component=api bulk.pprof
//
// split the time between the load generator and the server.
//
// The process exits 0 when the measurements ran, whether or not the
// targets were met, and non-zero only when something failed.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	settings "heartlog/config" // the package; config is this command's flags
	"heartlog/restore"
)

// config is every flag.
type config struct {
	scenarios   []string
	postgresURL string
	workDir     string
	cpuProfile  string
	syncAlways  bool

	warmup   time.Duration
	duration time.Duration

	bulkConns   int
	bulkSize    int
	singleConns int

	linger      time.Duration
	maxInFlight int
	partitions  int

	withProcessor bool

	drainHeartbeats int
	drainUsers      int
	drainDays       int
	drainShardsDays int
	drainPublishers int
	drainBatch      int
	drainFetch      int
	drainPoll       time.Duration
	drainTimeout    time.Duration

	// import: the generated dump's heartbeats and days
	importHeartbeats, importDays int

	// restore, verify: the seeded user-days (days per user), the
	// commands' concurrency and backup pace, the simulated Space's ceiling
	restoreFiles, verifyFiles, restoreDays int
	restoreConcurrency, verifyConcurrency  int
	restoreRPS, restoreBackupRate          float64

	stackRunDir string

	dfHeartbeats  int
	dfUsers       int
	dfDays        int
	dfProcessors  []string
	dfBatch       int
	dfLinger      time.Duration
	dfConcurrency int
	dfBackupRPS   float64
	memoBytes     int64
	dfTimeout     time.Duration
	dfKeep        bool

	latHeartbeats  int
	latUsers       int
	latDays        int
	latProcessors  []string
	latPrimary     time.Duration
	latBackupPut   time.Duration
	latBackupGet   time.Duration
	latBackupRate  float64
	latBackupQueue bool
	latObjectsConc int
	latBackupConc  int
	latBackupRPS   float64
	latRounds      int
	latTimeout     time.Duration

	readsDays        int
	readsPerDay      int
	readsUsers       int
	readsOtherDays   int
	readsOtherPerDay int
	readsIterations  []int
	readsStates      []string
	readsTimezone    string
	janitorRows      int

	noisyConns int
	noisyPhase time.Duration

	compHeartbeats   int
	compUsers        int
	compOnePartition bool
	compMemory       int64
	compPartitions   int
	compConcurrency  int
	compBackupConc   int
	compBackupRPS    float64
	compTimeout      time.Duration
	clUsers          int
	clHeartbeats     int

	ingestUsers      int
	pacedUsers       int
	pacedDuration    time.Duration
	pacedMinInterval time.Duration
	pacedMaxInterval time.Duration
	pacedLateUsers   int
	pacedCloseDelay  time.Duration
	idleTimeout      time.Duration

	statusBarHeartbeats int
	statusBarRequests   int
	statusBarDuration   time.Duration

	dashboardLoads int
	dashboardLive  int
	// dashboardProfile: one more last-year navigation under V8's profiler
	dashboardProfile bool
	// dashboardAB: another build of the page (web/dist's layout), timed
	// in turn with the embedded one
	dashboardAB string
	// dashboardTrace: a file for a Chrome trace of one more navigation
	dashboardTrace string
}

var allScenarios = []string{"bulk", "single", "ingest-all", "drain", "drain-shards", "dayfiles-drain", "dayfiles-latency", "reads", "janitor", "noisy-neighbour", "compaction", "compaction-latency", "paced", "statusbar", "dashboard", "import", "restore", "verify"}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	scen := fs.String("scenarios", "bulk,single,drain", "comma-separated scenarios to run, always in the order "+strings.Join(allScenarios, ", ")+" (the day-file ones also need HEARTLOG_S3_*, HEARTLOG_BACKUP_S3_* and HEARTLOG_CACHE_URL)")
	fs.StringVar(&c.postgresURL, "postgres", "", "Postgres server URL in which a throwaway database heartlog_bench_* is created and dropped (default $HEARTLOG_POSTGRES_URL)")
	fs.StringVar(&c.workDir, "workdir", "var/bench", "scratch directory, relative to the working directory; removed before and after the run (the JetStream store is <workdir>/nats)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "directory to write one CPU profile per scenario into (<scenario>.pprof; drain also writes drain-publish.pprof, compaction <scenario>-heap.pprof at its largest heap); must not be inside -workdir")
	fs.IntVar(&c.noisyConns, "noisy-conns", 4, "noisy-neighbour: connections user A floods over")
	fs.DurationVar(&c.noisyPhase, "noisy-phase", 25*time.Second, "noisy-neighbour: length of each phase (B alone, then B with A)")
	fs.BoolVar(&c.syncAlways, "sync-always", true, "JetStream sync_interval: always (fsync every write), as nats.conf ships; false measures the default periodic fsync")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "bulk/single: load before the measured window (not counted)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "bulk/single: length of the measured window")
	fs.IntVar(&c.bulkConns, "bulk-conns", 32, "bulk: concurrent keep-alive connections, one user each")
	fs.IntVar(&c.bulkSize, "bulk-size", 25, "bulk: heartbeats per request (1-1000)")
	fs.IntVar(&c.singleConns, "single-conns", 64, "single: concurrent keep-alive connections, one user each")
	fs.DurationVar(&c.linger, "linger", 0, "publisher group-commit Linger (0: the publisher's default)")
	fs.IntVar(&c.maxInFlight, "max-inflight", 0, "publisher MaxInFlight flushes (0: the publisher's default)")
	fs.IntVar(&c.partitions, "partitions", 0, "stream partition count (0: streams.DefaultConfig's, 16); a flush stores one message per (day, partition), so fewer partitions mean fewer fsyncs per flush")
	fs.BoolVar(&c.withProcessor, "with-processor", false, "bulk/single: run the Postgres processor during the HTTP scenarios too, as 'heartlog dev' does (default: ingest alone)")
	fs.IntVar(&c.drainHeartbeats, "drain-heartbeats", 1_000_000, "drain: heartbeats in the backlog (all distinct)")
	fs.IntVar(&c.importHeartbeats, "import-heartbeats", 1_000_000, "import: heartbeats in the generated WakaTime dump")
	fs.IntVar(&c.importDays, "import-days", 1000, "import: days the dump's heartbeats are spread over (from 2019-01-01)")
	fs.IntVar(&c.restoreFiles, "restore-files", 20_000, "restore: user-days seeded and restored (-restore-days a user)")
	fs.IntVar(&c.verifyFiles, "verify-files", 20_000, "verify: user-days seeded in both buckets and verified (-restore-days a user), besides the seeded drift")
	fs.IntVar(&c.restoreDays, "restore-days", 10, "restore, verify: UTC days of each seeded user (users = files / days)")
	fs.IntVar(&c.restoreConcurrency, "restore-concurrency", restore.DefaultConcurrency, "restore: files restored at once (heartlog restore --concurrency's default)")
	fs.IntVar(&c.verifyConcurrency, "verify-concurrency", 32, "verify: files compared at once (heartlog backup verify --concurrency's default)")
	fs.Float64Var(&c.restoreRPS, "restore-rps", configFloat("HEARTLOG_BACKUP_REQUESTS_PER_SECOND"), "restore, verify: the commands' pace of backup requests (their default: HEARTLOG_BACKUP_REQUESTS_PER_SECOND's default)")
	fs.Float64Var(&c.restoreBackupRate, "restore-backup-rate", restore.DefaultRequestsPerSecond, "restore, verify: the simulated backup's ceiling in requests/s, past which it answers 503 SlowDown (one Space documents 240)")
	fs.IntVar(&c.drainUsers, "drain-users", 1000, "drain: users the backlog is spread over")
	fs.IntVar(&c.drainDays, "drain-days", 3, "drain: UTC days the backlog is spread over (today and the days before)")
	fs.IntVar(&c.drainShardsDays, "drain-shards-days", 30, "drain-shards: UTC days the backlog is spread over (today and the days before), placed over the databases")
	fs.IntVar(&c.drainPublishers, "drain-publishers", 16, "drain: goroutines calling Publisher.Publish concurrently")
	fs.IntVar(&c.drainBatch, "drain-batch", 500, "drain: heartbeats per Publish call")
	fs.IntVar(&c.drainFetch, "drain-fetch", 0, "drain: processor BatchMessages, messages per commit (0: the processor's default, 512)")
	fs.DurationVar(&c.drainPoll, "drain-poll", 250*time.Millisecond, "drain: how often progress is polled while the processor drains")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 5*time.Minute, "drain: give up (and fail) if the backlog is not in Postgres by then")
	fs.StringVar(&c.stackRunDir, "stack-run-dir", "var/run", "dayfiles-*: directory with the stack's versitygw.pid and redis.pid, whose CPU time is reported beside this process's")
	fs.IntVar(&c.dfHeartbeats, "dayfiles-heartbeats", 1_000_000, "dayfiles-drain: heartbeats in the backlog (published like drain's, with -drain-publishers and -drain-batch)")
	fs.IntVar(&c.dfUsers, "dayfiles-users", 10_000, "dayfiles-drain: users the backlog is spread over (each with a random 8-character object prefix)")
	fs.IntVar(&c.dfDays, "dayfiles-days", 3, "dayfiles-drain: UTC days the backlog is spread over (user-days = users × days)")
	dfProcs := fs.String("dayfiles-processors", strings.Join(dayfileProcessors, ","), "dayfiles-drain: processors to time, one after the other, each alone")
	fs.IntVar(&c.dfBatch, "dayfiles-batch", 2048, "dayfiles-*: processors.Options.BatchMessages, messages per flush (HEARTLOG_*_FLUSH_MESSAGES)")
	fs.DurationVar(&c.dfLinger, "dayfiles-linger", 2*time.Second, "dayfiles-*: processors.Options.Linger, the flush age (HEARTLOG_*_FLUSH_AGE; a partition whose backlog is under -dayfiles-batch messages waits this long before its first flush)")
	fs.IntVar(&c.dfConcurrency, "dayfiles-concurrency", 64, "dayfiles-drain: each sink's Concurrency, day files merged at once across partitions (HEARTLOG_*_CONCURRENCY)")
	fs.Int64Var(&c.memoBytes, "dayfiles-memo-bytes", 256<<20, "dayfiles-*: the objects and backup sinks' memory of files they wrote (HEARTLOG_*_MEMO_BYTES; 0: read before every write)")
	fs.Float64Var(&c.dfBackupRPS, "dayfiles-backup-rps", 0, "dayfiles-drain: the backup sink's requests/s ceiling (0: no cap; the ceiling is what dayfiles-latency measures)")
	fs.DurationVar(&c.dfTimeout, "dayfiles-timeout", 2*time.Minute, "dayfiles-drain: stop a processor that has not drained by then and report what it did")
	fs.BoolVar(&c.dfKeep, "dayfiles-keep", false, "dayfiles-*: keep the day files written (default: delete them, every backup version and the cache entries at the end)")
	fs.IntVar(&c.latHeartbeats, "latency-heartbeats", 100_000, "dayfiles-latency: heartbeats in the backlog")
	fs.IntVar(&c.latUsers, "latency-users", 10_000, "dayfiles-latency: users in the backlog")
	fs.IntVar(&c.latDays, "latency-days", 2, "dayfiles-latency: UTC days in the backlog (user-days = users × days: the writes to make)")
	latProcs := fs.String("latency-processors", "objects,backup", "dayfiles-latency: processors to time (objects, backup), one after the other")
	fs.DurationVar(&c.latPrimary, "latency-primary", 200*time.Millisecond, "dayfiles-latency, compaction-latency, restore, verify: latency the proxy adds to every primary-bucket request")
	fs.DurationVar(&c.latBackupPut, "latency-backup-put", 2*time.Second, "dayfiles-latency, compaction-latency, restore, verify: latency the proxy adds to every backup PUT (Spaces writes take about 2 s)")
	fs.DurationVar(&c.latBackupGet, "latency-backup-get", 200*time.Millisecond, "dayfiles-latency, compaction-latency, restore, verify: latency the proxy adds to every other backup request (GET, ...)")
	fs.Float64Var(&c.latBackupRate, "latency-backup-rate", 500, "dayfiles-latency, compaction-latency: the backup proxy's ceiling in requests/s, every method counted (Spaces: 500 operations/s per bucket)")
	fs.BoolVar(&c.latBackupQueue, "latency-backup-queue", false, "dayfiles-latency, compaction-latency: requests above the ceiling wait for a token instead of being refused with 503 SlowDown (Spaces refuses)")
	fs.IntVar(&c.latObjectsConc, "latency-objects-concurrency", 1024, "dayfiles-latency: the objects sink's Concurrency")
	fs.IntVar(&c.latBackupConc, "latency-backup-concurrency", configInt("HEARTLOG_BACKUP_CONCURRENCY"), "dayfiles-latency: the backup sink's Concurrency (from config: HEARTLOG_BACKUP_CONCURRENCY's default)")
	fs.Float64Var(&c.latBackupRPS, "latency-backup-rps", configFloat("HEARTLOG_BACKUP_REQUESTS_PER_SECOND"), "dayfiles-latency, compaction-latency: the backup sink's requests/s ceiling, reads and writes (from config: HEARTLOG_BACKUP_REQUESTS_PER_SECOND's default)")
	fs.IntVar(&c.latRounds, "latency-rounds", 2, "dayfiles-latency: rounds of new heartbeats on the same day files, each drained before the next is published; round 1 meets files the sink has never seen, later rounds files it wrote (its memo), as successive flushes of a busy day do (1 to 3)")
	fs.DurationVar(&c.latTimeout, "latency-timeout", 150*time.Second, "dayfiles-latency: stop a processor that has not drained by then and report the rate it sustained")
	fs.IntVar(&c.readsDays, "reads-days", 365, "reads: days of the heavy user (ending yesterday, in -reads-timezone)")
	fs.IntVar(&c.readsPerDay, "reads-per-day", 1000, "reads: the heavy user's heartbeats a day")
	fs.IntVar(&c.readsUsers, "reads-users", 10_000, "reads: users in all, the heavy one included")
	fs.IntVar(&c.readsOtherDays, "reads-other-days", 2, "reads: days each other user has, among the last 30 (rows, day files and cache keys)")
	fs.IntVar(&c.readsOtherPerDay, "reads-other-per-day", 100, "reads: the other users' heartbeats a day")
	readsIter := fs.String("reads-iterations", "200,100,50", "reads: timed summaries requests per state for the 7-, 30- and 365-day ranges")
	readsStates := fs.String("reads-states", "hot,warm,cold", "reads: states to measure, in the order hot, warm, cold")
	fs.StringVar(&c.readsTimezone, "reads-timezone", "Europe/Berlin", "reads: the heavy user's time zone")
	fs.IntVar(&c.janitorRows, "janitor-rows", 1_000_000, "janitor: rows in the day the janitor drops")
	fs.IntVar(&c.compHeartbeats, "compaction-heartbeats", 1_000_000, "compaction: heartbeats of the closed day")
	fs.IntVar(&c.compUsers, "compaction-users", 10_000, "compaction: users they are spread over (user-days = users)")
	fs.BoolVar(&c.compOnePartition, "compaction-one-partition", false, "compaction: give every user the same partition (the others stay empty), so that the day is one partition-day of -compaction-heartbeats (the issue's bound: 2,000,000 within 512 MiB of RSS)")
	fs.Int64Var(&c.compMemory, "compaction-memory-bytes", int64(configInt("HEARTLOG_COMPACTION_MEMORY_BYTES")), "compaction-*: each partition's in-memory budget before it spills (from config: HEARTLOG_COMPACTION_MEMORY_BYTES's default)")
	fs.IntVar(&c.compPartitions, "compaction-partitions", configInt("HEARTLOG_COMPACTION_PARTITIONS"), "compaction-*: partitions compacted at once (from config: HEARTLOG_COMPACTION_PARTITIONS's default)")
	fs.IntVar(&c.compConcurrency, "compaction-concurrency", configInt("HEARTLOG_OBJECTS_CONCURRENCY"), "compaction-*: the objects and cache sinks' Concurrency, as heartlog days close sets it (from config: HEARTLOG_OBJECTS_CONCURRENCY's default)")
	fs.IntVar(&c.compBackupConc, "compaction-backup-concurrency", configInt("HEARTLOG_BACKUP_CONCURRENCY"), "compaction-*: the backup sink's Concurrency (from config: HEARTLOG_BACKUP_CONCURRENCY's default)")
	fs.Float64Var(&c.compBackupRPS, "compaction-backup-rps", 0, "compaction: the backup sink's requests/s ceiling (0: none, as the local versitygw needs none; compaction-latency uses -latency-backup-rps)")
	fs.DurationVar(&c.compTimeout, "compaction-timeout", 20*time.Minute, "compaction-*: stop a close that has not finished by then and report what it did")
	fs.IntVar(&c.clUsers, "compaction-latency-users", 20_000, "compaction-latency: users of the closed day (user-days = users)")
	fs.IntVar(&c.clHeartbeats, "compaction-latency-heartbeats", 100_000, "compaction-latency: heartbeats of the closed day")
	fs.IntVar(&c.ingestUsers, "ingest-users", 3200, "ingest-all: users the -bulk-conns connections send for, each connection its share in turn (the production API limits apply per user)")
	fs.IntVar(&c.pacedUsers, "paced-users", 1000, "paced: simulated users, each a plugin sending single heartbeats")
	fs.DurationVar(&c.pacedDuration, "paced-duration", 3*time.Minute, "paced: how long the users send while the day is open")
	fs.DurationVar(&c.pacedMinInterval, "paced-min-interval", 20*time.Second, "paced: shortest time between a user's heartbeats (each interval uniform in [min, max])")
	fs.DurationVar(&c.pacedMaxInterval, "paced-max-interval", 2*time.Minute, "paced: longest time between a user's heartbeats")
	fs.IntVar(&c.pacedLateUsers, "paced-late-users", 20, "paced: users that send one bulk of late heartbeats after the close (0: none)")
	fs.DurationVar(&c.pacedCloseDelay, "paced-close-delay", 48*time.Hour, "paced: the running day closer's CloseDelay (HEARTLOG_DAY_CLOSE_DELAY), long enough that it does not close yesterday during the traffic")
	fs.IntVar(&c.statusBarHeartbeats, "statusbar-heartbeats", 1000, "statusbar: the measured user's heartbeats today (1-1000: one request)")
	fs.IntVar(&c.statusBarRequests, "statusbar-requests", 2000, "statusbar: timed warm reads of the live API (a quarter as many of the computed one)")
	fs.DurationVar(&c.statusBarDuration, "statusbar-duration", 90*time.Second, "statusbar: how long the paced users send and read while the measured user's reads are timed")
	fs.IntVar(&c.dashboardLoads, "dashboard-loads", 20, "dashboard: timed warm loads per range (after 2 untimed)")
	fs.IntVar(&c.dashboardLive, "dashboard-live", 50, "dashboard: heartbeats timed from ack to #today-total's paint")
	fs.StringVar(&c.dashboardAB, "dashboard-ab", "", "dashboard: a directory with another build of the page (as web/dist: index.html, assets/), e.g. a copy of web/dist before a change; each timed load then runs on the embedded build (A) and on this one (B) in turn, in the same browser against the same server, and each gets its rows")
	fs.StringVar(&c.dashboardTrace, "dashboard-trace", "", "dashboard: after the timed loads, trace one navigation to last year (Chrome's performance categories) into this JSON file, for ui.perfetto.dev: style, layout and paint besides JavaScript")
	fs.BoolVar(&c.dashboardProfile, "dashboard-profile", false, "dashboard: after the timed loads, profile one navigation to last year (V8's sampling profiler) and print where the page's main thread spent its time")
	fs.DurationVar(&c.idleTimeout, "lifecycle-idle-timeout", 2*time.Minute, "ingest-all, paced: longest wait for the processors' consumers to have nothing pending or unacked")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, `Usage: go run ./ops/bench [flags]

Measures heartlog's durable ingest (bulk and single-heartbeat WakaTime
routes over real HTTP, into an embedded JetStream with fsync on every write)
and the Postgres processor draining a backlog, then prints a Markdown table
against the targets (bulk >= 100,000 heartbeats/s, single >= 15,000
requests/s, drain >= 100,000 rows/s). With -scenarios dayfiles-drain or
dayfiles-latency, it also times the objects, cache and backup processors
draining a backlog into the local stack's S3 buckets and Redis, directly or
behind a proxy simulating S3 and Spaces latency and rate limits (objects >=
50,000 heartbeats/s; with latency, objects >= 2,000 and backup >= 450
writes/s). -scenarios reads times summaries of 7, 30 and 365 days for a
user with 1,000 heartbeats a day, hot (Postgres), warm (SSDB) and cold (S3)
(warm p99: 7 days <= 10 ms, 365 days <= 150 ms, no S3 request); -scenarios
janitor times the shard janitor dropping a day of 1,000,000 rows;
-scenarios compaction times closing a day of 1,000,000 heartbeats (with
-compaction-one-partition, one partition-day) and compaction-latency one of
20,000 user-days into the simulated S3 and Spaces. -scenarios ingest-all
compares bulk ingest with only the Postgres processor and with all four
and the day closer (>= 25,000 heartbeats/s, within 15%%); -scenarios paced
sends paced plugin traffic for yesterday, closes the day and sends late
heartbeats (no day-file write while open, <= 1.05 per user-day).
-scenarios restore times heartlog restore --at TIME of 20,000 day files
from the backup through a simulated Space (240 requests/s, 503 SlowDown
past it): files/s at the request ceiling, ideally 240 requests/s divided by
the backup requests a file (about 1: 240 files/s), and checks every file
afterwards; -scenarios verify times heartlog backup verify of 20,000 files
(one backup GET a file: 240 files/s at the ceiling) and checks it finds
exactly the drift seeded. Needs HEARTLOG_POSTGRES_URL (. var/env).
Exit status is 0 when the measurements ran, whether or not targets were met.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if c.readsIterations, err = parseIterations(*readsIter); err != nil {
		return c, err
	}
	if c.readsStates, err = processorList(*readsStates, readStates, "-reads-states"); err != nil {
		return c, err
	}
	if c.dfProcessors, err = processorList(*dfProcs, dayfileProcessors, "-dayfiles-processors"); err != nil {
		return c, err
	}
	if c.latProcessors, err = processorList(*latProcs, []string{"objects", "backup"}, "-latency-processors"); err != nil {
		return c, err
	}
	for s := range strings.SplitSeq(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return c, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ", "))
		}
		if !slices.Contains(c.scenarios, s) {
			c.scenarios = append(c.scenarios, s)
		}
	}
	slices.SortFunc(c.scenarios, func(a, b string) int {
		return slices.Index(allScenarios, a) - slices.Index(allScenarios, b)
	})
	if len(c.scenarios) == 0 {
		return c, errors.New("-scenarios names none")
	}
	if c.postgresURL == "" {
		c.postgresURL = os.Getenv("HEARTLOG_POSTGRES_URL")
	}
	if c.postgresURL == "" {
		return c, errors.New("HEARTLOG_POSTGRES_URL is not set: run `. var/env` after `make run` (or `make bench`), or pass -postgres")
	}
	switch {
	case c.duration <= 0 || c.warmup < 0:
		return c, errors.New("-duration must be positive and -warmup not negative")
	case c.bulkConns < 1 || c.singleConns < 1:
		return c, errors.New("-bulk-conns and -single-conns must be at least 1")
	case c.bulkSize < 1 || c.bulkSize > 1000:
		return c, errors.New("-bulk-size must be 1-1000 (the API refuses more than 1000)")
	case c.restoreFiles < 1 || c.verifyFiles < 2*verifyDrift || c.restoreDays < 1 || c.restoreConcurrency < 1 || c.verifyConcurrency < 1 || c.restoreRPS < 0 || c.restoreBackupRate <= 0:
		return c, fmt.Errorf("-restore-files, -restore-days and the -restore/-verify concurrencies must be positive, -verify-files at least %d, -restore-rps not negative, -restore-backup-rate positive", 2*verifyDrift)
	case c.importHeartbeats < 1 || c.importDays < 1:
		return c, errors.New("-import-heartbeats and -import-days must be at least 1")
	case c.drainHeartbeats < 1 || c.drainUsers < 1 || c.drainDays < 1 || c.drainDays > 30 || c.drainShardsDays < 1 || c.drainShardsDays > 30:
		return c, errors.New("-drain-heartbeats and -drain-users must be positive, -drain-days and -drain-shards-days 1-30")
	case c.drainPublishers < 1 || c.drainBatch < 1 || c.drainBatch > 20000:
		return c, errors.New("-drain-publishers must be positive, -drain-batch 1-20000")
	case c.partitions < 0:
		return c, errors.New("-partitions must not be negative")
	case c.drainPoll <= 0 || c.drainTimeout <= 0:
		return c, errors.New("-drain-poll and -drain-timeout must be positive")
	case c.dfHeartbeats < 1 || c.dfUsers < 1 || c.dfDays < 1 || c.dfDays > 30 || c.latHeartbeats < 1 || c.latUsers < 1 || c.latDays < 1 || c.latDays > 30:
		return c, errors.New("-dayfiles-heartbeats, -dayfiles-users, -latency-heartbeats and -latency-users must be positive, -dayfiles-days and -latency-days 1-30")
	case c.dfBatch < 1 || c.dfLinger <= 0 || c.dfConcurrency < 1 || c.latObjectsConc < 1 || c.latBackupConc < 1:
		return c, errors.New("-dayfiles-batch, -dayfiles-linger and the concurrencies must be positive")
	case c.dfBackupRPS < 0 || c.latBackupRPS < 0 || c.latBackupRate < 0 || c.latPrimary < 0 || c.latBackupPut < 0 || c.latBackupGet < 0:
		return c, errors.New("rates and latencies must not be negative")
	case c.latRounds < 1 || c.latRounds > 3:
		return c, errors.New("-latency-rounds must be 1-3")
	case c.dfTimeout <= 0 || c.latTimeout <= 0:
		return c, errors.New("-dayfiles-timeout and -latency-timeout must be positive")
	case c.compHeartbeats < 1 || c.compUsers < 1 || c.compMemory < 64<<10 || c.compPartitions < 1 || c.clUsers < 1 || c.clHeartbeats < c.clUsers:
		return c, errors.New("-compaction-heartbeats, -compaction-users and -compaction-partitions must be positive, -compaction-memory-bytes at least 65536, -compaction-latency-heartbeats at least -compaction-latency-users")
	case c.compConcurrency < 1 || c.compBackupConc < 1 || c.compBackupRPS < 0 || c.compTimeout <= 0:
		return c, errors.New("-compaction-concurrency and -compaction-backup-concurrency must be positive, -compaction-backup-rps not negative, -compaction-timeout positive")
	case c.ingestUsers < c.bulkConns || c.pacedUsers < 1 || c.pacedLateUsers < 0 || c.pacedLateUsers > c.pacedUsers || c.idleTimeout <= 0:
		return c, errors.New("-ingest-users must be at least -bulk-conns, -paced-users positive, -paced-late-users 0 to -paced-users, -lifecycle-idle-timeout positive")
	case c.pacedDuration <= 0 || c.pacedMinInterval <= 0 || c.pacedMaxInterval < c.pacedMinInterval || c.pacedCloseDelay < 25*time.Hour+c.pacedDuration:
		return c, errors.New("-paced-duration and -paced-min-interval must be positive, -paced-max-interval at least -paced-min-interval, -paced-close-delay more than 25h plus -paced-duration (yesterday must stay open)")
	case c.statusBarHeartbeats < 1 || c.statusBarHeartbeats > 1000 || c.statusBarRequests < 4 || c.statusBarDuration <= 0:
		return c, errors.New("-statusbar-heartbeats must be 1-1000, -statusbar-requests at least 4, -statusbar-duration positive")
	case c.dashboardLoads < 1 || c.dashboardLive < 1:
		return c, errors.New("-dashboard-loads and -dashboard-live must be positive")
	case c.readsDays < 1 || c.readsDays > 390 || c.readsPerDay < 1 || c.readsUsers < 1 || c.readsOtherDays < 0 || c.readsOtherDays > 30 || c.readsOtherPerDay < 1 || c.janitorRows < 1:
		return c, errors.New("-reads-days must be 1-390, -reads-other-days 0-30, the other -reads-* counts and -janitor-rows positive")
	}
	if slices.Contains(c.scenarios, "paced") && slices.Contains(c.scenarios, "compaction") {
		// Both close yesterday: the second would find it compacted.
		return c, errors.New("-scenarios: paced and compaction both close yesterday; run them separately")
	}
	if c.workDir, err = filepath.Abs(c.workDir); err != nil {
		return c, err
	}
	if c.workDir == "/" || c.workDir == filepath.Dir(c.workDir) {
		return c, fmt.Errorf("-workdir %s would remove too much", c.workDir)
	}
	if c.cpuProfile != "" {
		if c.cpuProfile, err = filepath.Abs(c.cpuProfile); err != nil {
			return c, err
		}
		if rel, err := filepath.Rel(c.workDir, c.cpuProfile); err == nil && !strings.HasPrefix(rel, "..") {
			return c, fmt.Errorf("-cpuprofile %s is inside -workdir %s, which is removed at the end", c.cpuProfile, c.workDir)
		}
	}
	if c.stackRunDir, err = filepath.Abs(c.stackRunDir); err != nil {
		return c, err
	}
	return c, nil
}

// configInt and configFloat are a setting's declared default (config.Vars),
// which the flags of the production settings start from.
func configInt(name string) int {
	n, err := strconv.Atoi(configDefault(name))
	if err != nil {
		panic(fmt.Sprintf("config: %s's default: %v", name, err))
	}
	return n
}

func configFloat(name string) float64 {
	f, err := strconv.ParseFloat(configDefault(name), 64)
	if err != nil {
		panic(fmt.Sprintf("config: %s's default: %v", name, err))
	}
	return f
}

func configDefault(name string) string {
	for _, v := range settings.Vars {
		if v.Name == name {
			return v.Default
		}
	}
	panic("config: undeclared variable " + name)
}

// processorList parses a comma-separated list of processor names from have.
func processorList(s string, have []string, flagName string) ([]string, error) {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(have, p) {
			return nil, fmt.Errorf("%s: unknown processor %q (have %s)", flagName, p, strings.Join(have, ", "))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names none", flagName)
	}
	return out, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run sets the stack up, runs the scenarios, prints the table and tears
// everything down, whatever happened.
func run(ctx context.Context, cfg config) (err error) {
	st, err := startStack(ctx, cfg)
	if st != nil {
		defer func() {
			if cerr := st.close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	if err != nil {
		return err
	}
	if cfg.cpuProfile != "" {
		if err := os.MkdirAll(cfg.cpuProfile, 0o755); err != nil {
			return err
		}
	}

	m := probeMachine(cfg.workDir)
	var results []result
	var failures []error
	httpScenario := func(name string) {
		var r result
		var err error
		switch name {
		case "bulk":
			r, err = runHTTP(ctx, st, cfg, httpScenarioSpec{name: "bulk", conns: cfg.bulkConns, size: cfg.bulkSize, bulk: true})
		case "single":
			r, err = runHTTP(ctx, st, cfg, httpScenarioSpec{name: "single", conns: cfg.singleConns, size: 1})
		}
		if err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", name, err))
			r = result{scenario: name, target: targetFor(name), failed: err.Error()}
		}
		results = append(results, r)
	}
	processorOn := false
	for _, name := range cfg.scenarios {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "bench: scenario %s\n", name)
		switch name {
		case "bulk", "single":
			if cfg.withProcessor && !processorOn {
				if err := st.startProcessor(ctx, 0); err != nil {
					return err
				}
				processorOn = true
			}
			httpScenario(name)
		case "drain":
			if processorOn {
				st.stopProcessor()
				processorOn = false
			}
			rs, err := runDrain(ctx, st, cfg)
			if err != nil {
				failures = append(failures, fmt.Errorf("drain: %w", err))
				if len(rs) == 0 {
					rs = []result{{scenario: "drain", target: targetFor("drain"), failed: err.Error()}}
				}
			}
			results = append(results, rs...)
		case "ingest-all", "drain-shards", "dayfiles-drain", "dayfiles-latency", "reads", "janitor", "noisy-neighbour", "compaction", "compaction-latency", "paced", "statusbar", "dashboard", "import", "restore", "verify":
			if processorOn {
				st.stopProcessor()
				processorOn = false
			}
			run := map[string]func(context.Context, *stack, config) ([]result, error){
				"drain-shards": runDrainShards, "dayfiles-drain": runDayfilesDrain, "dayfiles-latency": runDayfilesLatency,
				"reads": runReads, "janitor": runJanitor, "noisy-neighbour": runNoisy, "compaction": runCompaction,
				"compaction-latency": runCompactionLatency, "ingest-all": runIngestAll, "paced": runPaced,
				"statusbar": runStatusBar,
				"dashboard": runDashboard,
				"import":    runImport,
				"restore":   runRestore,
				"verify":    runVerify,
			}[name]
			rs, err := run(ctx, st, cfg)
			if err != nil {
				failures = append(failures, fmt.Errorf("%s: %w", name, err))
				if len(rs) == 0 {
					rs = []result{{scenario: name, target: "—", failed: err.Error()}}
				}
			}
			results = append(results, rs...)
		}
	}
	if processorOn {
		st.stopProcessor()
	}
	printTable(os.Stdout, cfg, m, results)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return errors.Join(failures...)
}
