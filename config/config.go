// Package config reads heartlog's settings from HEARTLOG_* environment
// variables. Every variable is declared once in Vars, with its default and
// its meaning, so that `heartlog config` and the README say the same thing
// as the code. It must never log a value: some are secrets.
package config

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Var is one setting.
type Var struct {
	Name    string
	Default string
	Help    string
	Secret  bool
}

// Vars is every setting heartlog reads, in the order the README lists them.
var Vars = []Var{
	{"HEARTLOG_HTTP_ADDR", "127.0.0.1:8080", "address the API (WakaTime routes, Connect services, /livez, /readyz) listens on", false},
	{"HEARTLOG_ADMIN_ADDR", "127.0.0.1:9090", "address of /metrics and /debug/pprof/ (serve, process and dev each); unauthenticated, so keep it private; empty disables it", false},
	{"HEARTLOG_POSTGRES_URL", "postgres://heartlog@127.0.0.1:55432/heartlog?sslmode=disable", "Postgres connection URL (pgx syntax) of the catalog: users, the placement of days, and the day partitions too when no shard URLs are set", true},
	{"HEARTLOG_POSTGRES_SHARD_URLS", "", "Postgres URLs of the shard databases that hold the day partitions, comma-separated; a database added to the list takes new days, old days stay where they are; empty: the catalog holds them", true},
	{"HEARTLOG_PLACEMENT_TTL", "10s", "how long a process uses a day's database (its placement) before it reads it from the catalog again; `heartlog shards move` waits twice this before it fences the old copy, so every process must have the same value or less", false},
	{"HEARTLOG_NATS_URL", "nats://127.0.0.1:54222", "NATS server URL(s), comma-separated; `heartlog dev` serves it embedded", false},
	{"HEARTLOG_NATS_CREDS", "", "NATS credentials file, if the server requires one", false},
	{"HEARTLOG_NATS_CONFIG", "nats.conf", "nats-server config that `heartlog dev` embeds", false},
	{"HEARTLOG_NATS_STORE_DIR", "var/nats", "JetStream store directory of the embedded server (overrides nats.conf)", false},
	{"HEARTLOG_STREAM_REPLICAS", "1", "replicas of the stream and KV buckets: 1 on one server, 3 in a cluster", false},
	{"HEARTLOG_STREAM_MAX_AGE", "1344h", "how long the stream keeps heartbeats (8 weeks)", false},
	{"HEARTLOG_STREAM_MAX_BYTES", "17179869184", "most bytes the stream holds (16 GiB; 0: unbounded; the server reserves it against nats.conf's max_file_store, 20G); past 95% ingest answers 503 with Retry-After, and JetStream itself refuses writes at the limit rather than drop unprocessed ones", false},
	{"HEARTLOG_STREAM_DUPLICATES", "2m", "window in which JetStream drops a repeated message id", false},
	{"HEARTLOG_PARTITIONS", "16", "user partitions; fixed for the life of a stream", false},
	{"HEARTLOG_PUBLISH_LINGER", "500us", "group commit: how long a flush waits for more requests", false},
	{"HEARTLOG_PUBLISH_IN_FLIGHT", "4", "group commit: flushes awaiting acks at once", false},
	{"HEARTLOG_MAX_BODY_BYTES", "4194304", "largest request body accepted (bytes); larger gets 413", false},
	{"HEARTLOG_MAX_HEARTBEATS", "1000", "most heartbeats in one request", false},
	{"HEARTLOG_RATE_LIMIT", "10", "requests per second allowed per user (token bucket); over it gets 429", false},
	{"HEARTLOG_RATE_BURST", "100", "burst of requests allowed per user above the rate", false},
	{"HEARTLOG_SESSION_TTL", "168h", "lifetime of a browser session (the dashboard's sign-in cookie, 7 days); not extended by use", false},
	{"HEARTLOG_TODAY_MAX_USERS", "10000", "live status bar: most users whose today serve keeps in memory (least recently used dropped past it; a dropped user is read again)", false},
	{"HEARTLOG_TODAY_MAX_HEARTBEATS", "1000000", "live status bar: most heartbeats serve keeps over those users (about 300 bytes each)", false},
	{"HEARTLOG_HEARTBEAT_RATE", "20", "heartbeats per second allowed per user at ingest (token bucket; a busy developer sends one every few seconds); over it the request gets 429 with Retry-After", false},
	{"HEARTLOG_HEARTBEAT_BURST", "2000", "burst of heartbeats allowed per user above the rate (an offline-queue sync sends up to 1000 at once); never below HEARTLOG_MAX_HEARTBEATS", false},
	{"HEARTLOG_BYTE_RATE", "65536", "request body bytes per second allowed per user at ingest; over it gets 429 with Retry-After", false},
	{"HEARTLOG_BYTE_BURST", "8388608", "burst of request body bytes allowed per user above the rate; never below HEARTLOG_MAX_BODY_BYTES", false},
	{"HEARTLOG_MAX_DAYS_PER_REQUEST", "31", "most distinct UTC days one request may carry; heartbeats of further days get a 429 each (wakatime-cli sends them again)", false},
	{"HEARTLOG_DAY_MAX_HEARTBEATS", "100000", "most heartbeats one user-day may hold; past it each heartbeat gets a 400 (counted per serve instance, in memory)", false},
	{"HEARTLOG_DAY_MAX_BYTES", "67108864", "most bytes of day-file JSON one user-day may hold (64 MiB, well below the day-file decoder's 256 MiB); past it each heartbeat gets a 400", false},
	{"HEARTLOG_PROCESSORS", "postgres,objects,cache,backup", "processors `heartlog process` and `heartlog dev` run, comma-separated", false},
	{"HEARTLOG_POSTGRES_WRITERS", "2", "connections the Postgres processor writes one batch over in parallel", false},
	{"HEARTLOG_ACK_WAIT", "30s", "how long a processor's message may stay unacked before JetStream redelivers it", false},
	{"HEARTLOG_PINNED_TTL", "30s", "how long a day-file partition stays with a processor instance that stopped pulling before another takes it over", false},
	{"HEARTLOG_SHARDS_GRACE", "48h", "a Postgres day partition is dropped only this long after its UTC day ended (time zones, offline queues)", false},
	{"HEARTLOG_SHARDS_INTERVAL", "10m", "how often the shard janitor looks for days to drop", false},
	{"HEARTLOG_FETCH_BATCH", "512", "messages a processor fetches and commits at once", false},
	{"HEARTLOG_S3_ENDPOINT", "http://127.0.0.1:57070", "primary bucket's S3 endpoint; empty for AWS S3 itself (the default is the local versitygw)", false},
	{"HEARTLOG_S3_REGION", "us-east-1", "primary bucket's region", false},
	{"HEARTLOG_S3_BUCKET", "heartlog", "primary bucket: the day files, heartlog's primary store", false},
	{"HEARTLOG_S3_ACCESS_KEY_ID", "heartlog", "primary bucket's access key; empty for the AWS default credential chain", true},
	{"HEARTLOG_S3_SECRET_ACCESS_KEY", "heartlog-secret", "primary bucket's secret key", true},
	{"HEARTLOG_S3_PATH_STYLE", "true", "path-style addressing (local and most S3-compatible servers); false for AWS", false},
	{"HEARTLOG_BACKUP_S3_ENDPOINT", "http://127.0.0.1:57070", "backup bucket's endpoint (DigitalOcean Spaces: https://<region>.digitaloceanspaces.com)", false},
	{"HEARTLOG_BACKUP_S3_REGION", "us-east-1", "backup bucket's region", false},
	{"HEARTLOG_BACKUP_S3_BUCKET", "heartlog-backup", "backup bucket, with versioning on: every change to a day file is a new version", false},
	{"HEARTLOG_BACKUP_S3_ACCESS_KEY_ID", "heartlog", "backup bucket's access key", true},
	{"HEARTLOG_BACKUP_S3_SECRET_ACCESS_KEY", "heartlog-secret", "backup bucket's secret key", true},
	{"HEARTLOG_BACKUP_S3_PATH_STYLE", "true", "path-style addressing for the backup bucket", false},
	{"HEARTLOG_CACHE_URL", "redis://127.0.0.1:56379/0", "SSDB (or Redis) holding the day-file cache; database 0 only", true},
	{"HEARTLOG_CACHE_TTL", "840h", "how long a cached day file lives after its last write (35 days: covers 'last 30 days' and month ranges)", false},
	{"HEARTLOG_OBJECTS_FLUSH_AGE", "10s", "objects processor (late heartbeats of closed days): longest one waits before its day file is rewritten", false},
	{"HEARTLOG_OBJECTS_FLUSH_MESSAGES", "2048", "objects processor: messages that trigger a flush", false},
	{"HEARTLOG_OBJECTS_FLUSH_BYTES", "33554432", "objects processor: message bytes that trigger a flush", false},
	{"HEARTLOG_OBJECTS_CONCURRENCY", "64", "objects processor: day files read-merge-written at once", false},
	{"HEARTLOG_OBJECTS_MEMO_BYTES", "268435456", "objects processor: memory of the day files it wrote last, so that their next change is written without a read (needs a bucket that enforces conditional writes; 0: off)", false},
	{"HEARTLOG_CACHE_FLUSH_AGE", "5s", "cache processor (late heartbeats of closed days): longest one waits before its cached day file is updated", false},
	{"HEARTLOG_CACHE_FLUSH_MESSAGES", "2048", "cache processor: messages that trigger a flush", false},
	{"HEARTLOG_CACHE_FLUSH_BYTES", "33554432", "cache processor: message bytes that trigger a flush", false},
	{"HEARTLOG_CACHE_CONCURRENCY", "64", "cache processor: day files merged at once", false},
	{"HEARTLOG_CACHE_MEMO_BYTES", "268435456", "cache processor: memory of the day files it wrote last, so that their next change is merged without reading SSDB and S3 (0: off; every merge then reads both)", false},
	{"HEARTLOG_BACKUP_FLUSH_AGE", "5m", "backup processor (late heartbeats of closed days): longest one waits before its backup is rewritten (Spaces writes take ~2 s)", false},
	{"HEARTLOG_BACKUP_FLUSH_MESSAGES", "20000", "backup processor: messages that trigger a flush", false},
	{"HEARTLOG_BACKUP_FLUSH_BYTES", "268435456", "backup processor: message bytes that trigger a flush", false},
	{"HEARTLOG_BACKUP_CONCURRENCY", "1024", "backup processor: writes in flight (2 s each: ~1000 needed to reach 450/s)", false},
	{"HEARTLOG_BACKUP_MEMO_BYTES", "268435456", "backup processor: memory of the day files it wrote last, so that most changes cost one request, not two (needs conditional writes; 0: off)", false},
	{"HEARTLOG_BACKUP_REQUESTS_PER_SECOND", "450", "backup processor: ceiling on its reads and writes together, below Spaces' ~500 requests/s per account (a single Space documents 240 requests/s and 150 writes/s: set about 140 for one Space)", false},
	{"HEARTLOG_BACKUP_VERIFY_EVERY", "24h", "heartlog process (with the backup processor): compare every S3 day file with the backup this often, as `heartlog backup verify` does, exporting heartlog_backup_drift_files{kind}; 0: never", false},
	{"HEARTLOG_BACKUP_VERIFY_REQUESTS_PER_SECOND", "20", "the scheduled backup verify: ceiling on its backup requests, beside the backup processor's under the same Space's limit (20,000 files take ~17 minutes at 20)", false},
	{"HEARTLOG_DAYFILE_MAX_BYTES", "268435456", "largest day file (uncompressed bytes) the objects, cache and backup processors write; heartbeats past it are rejected (parked), the file is kept as it is", false},
	{"HEARTLOG_DAYFILE_MAX_HEARTBEATS", "400000", "most heartbeats in one day file; past it, as HEARTLOG_DAYFILE_MAX_BYTES", false},
	{"HEARTLOG_DAYFILE_MERGE_BYTES", "268435456", "each day-file processor: uncompressed bytes of day files merged at once (a larger file is merged alone)", false},
	{"HEARTLOG_DAY_CLOSE_DELAY", "1h", "a UTC day is due to close (its day files written once, by compaction) this long after it ends; `heartlog days list` marks the days past it", false},
	{"HEARTLOG_COMPACTION_MEMORY_BYTES", "33554432", "compaction: heartbeats of one partition-day held in memory before sorted runs spill to HEARTLOG_COMPACTION_DIR (bytes, counted generously)", false},
	{"HEARTLOG_COMPACTION_PARTITIONS", "4", "compaction: partitions of a day compacted at once", false},
	{"HEARTLOG_COMPACTION_DIR", "", "compaction: directory of the spilled runs; empty: the system's temporary directory ($TMPDIR)", false},
	{"HEARTLOG_LOG_LEVEL", "info", "debug, info, warn or error", false},
	{"HEARTLOG_LOG_FORMAT", "console", "console (for people) or json (for log shippers)", false},
	{"HEARTLOG_DEBUG_JANITOR_PAUSE", "", "fault tests only (`make chaos`): the shard janitor waits, holding its lock, after this step of a day (prove, drain, settle, detach, drop, mark-dropped) to be killed there; empty: off", false},
	{"HEARTLOG_DEBUG_MOVE_KILL_AT", "", "fault tests only: `heartlog shards move` kills itself (SIGKILL) after this step (lock, partition, copy, switch, settle, fence, recopy, verify, detach, drop); empty: off", false},
	{"HEARTLOG_DEBUG_RESTORE_KILL_AFTER", "0", "fault tests only: `heartlog restore` kills itself (SIGKILL) after writing this many files; 0: off", false},
}

// Bucket is one S3-compatible bucket.
type Bucket struct {
	Endpoint, Region, Name, AccessKeyID, SecretAccessKey string
	PathStyle                                            bool
}

// Flush is a day-file processor's batching: a flush happens at Messages
// messages, Bytes bytes or Age after the first message, whichever is first.
type Flush struct {
	Messages, Bytes, Concurrency int
	Age                          time.Duration
	// MemoBytes is the sink's memory of files it wrote.
	MemoBytes int64
}

// Work is the per-user ingest budget and the caps on what a request and a
// user-day may carry.
type Work struct {
	HeartbeatRate, ByteRate                      float64
	HeartbeatBurst, ByteBurst, MaxDaysPerRequest int
	DayMaxHeartbeats                             int
	DayMaxBytes                                  int64
}

// Config is the parsed settings.
type Config struct {
	S3, Backup           Bucket
	CacheURL             string
	CacheTTL             time.Duration
	Objects, Cache       Flush
	BackupFlush          Flush
	BackupRequestsPerSec float64
	// BackupVerifyEvery is the scheduled verify's period (0: off), paced
	// under BackupVerifyRequestsPerSec.
	BackupVerifyEvery          time.Duration
	BackupVerifyRequestsPerSec float64
	// DayFileMaxBytes and DayFileMaxHeartbeats bound each day file;
	// MergeBytes bounds what each day-file processor merges at once.
	DayFileMaxBytes, DayFileMaxHeartbeats int
	MergeBytes                            int64

	HTTPAddr         string
	AdminAddr        string
	PostgresURL      string
	NATSURL          string
	NATSCreds        string
	NATSConfig       string
	NATSStoreDir     string
	StreamReplicas   int
	StreamMaxAge     time.Duration
	StreamDuplicates time.Duration
	Partitions       uint32
	PublishLinger    time.Duration
	PublishInFlight  int
	MaxBodyBytes     int64
	MaxHeartbeats    int
	RateLimit        float64
	RateBurst        int
	Processors       []string
	StreamMaxBytes   int64
	Work             Work
	FetchBatch       int
	AckWait          time.Duration
	PinnedTTL        time.Duration
	ShardsGrace      time.Duration
	ShardsInterval   time.Duration
	PostgresWriters  int
	LogLevel         string
	LogFormat        string
	// DebugJanitorPause is a shards.Step name, or empty.
	DebugJanitorPause string
	// The day lifecycle and its compaction.
	DayCloseDelay         time.Duration
	CompactionMemoryBytes int64
	CompactionPartitions  int
	CompactionDir         string
	// SessionTTL is a browser session's lifetime.
	SessionTTL time.Duration
	// TodayMaxUsers and TodayMaxHeartbeats bound the live status bar's
	// memory (package today).
	TodayMaxUsers, TodayMaxHeartbeats int
	// PostgresShardURLs are the shard databases; empty: the catalog
	// holds the day partitions.
	PostgresShardURLs []string
	// PlacementTTL is how long a day's placement is cached.
	PlacementTTL time.Duration
	// DebugMoveKillAt is a daymove.Step name, or empty.
	DebugMoveKillAt string
	// DebugRestoreKillAfter is the files `heartlog restore` writes before
	// it kills itself; 0 for never.
	DebugRestoreKillAfter int
}

// FromEnv reads every variable, falling back to its default. The error
// names the variable at fault.
func FromEnv() (Config, error) {
	r := reader{}
	c := Config{
		HTTPAddr:         r.str("HEARTLOG_HTTP_ADDR"),
		AdminAddr:        r.str("HEARTLOG_ADMIN_ADDR"),
		PostgresURL:      r.str("HEARTLOG_POSTGRES_URL"),
		NATSURL:          r.str("HEARTLOG_NATS_URL"),
		NATSCreds:        r.str("HEARTLOG_NATS_CREDS"),
		NATSConfig:       r.str("HEARTLOG_NATS_CONFIG"),
		NATSStoreDir:     r.str("HEARTLOG_NATS_STORE_DIR"),
		StreamReplicas:   r.int("HEARTLOG_STREAM_REPLICAS", 1, 5),
		StreamMaxAge:     r.duration("HEARTLOG_STREAM_MAX_AGE"),
		StreamDuplicates: r.duration("HEARTLOG_STREAM_DUPLICATES"),
		Partitions:       uint32(r.int("HEARTLOG_PARTITIONS", 1, 1024)),
		PublishLinger:    r.duration("HEARTLOG_PUBLISH_LINGER"),
		PublishInFlight:  r.int("HEARTLOG_PUBLISH_IN_FLIGHT", 1, 64),
		MaxBodyBytes:     int64(r.int("HEARTLOG_MAX_BODY_BYTES", 1024, 1<<30)),
		MaxHeartbeats:    r.int("HEARTLOG_MAX_HEARTBEATS", 1, 100000),
		RateLimit:        r.float("HEARTLOG_RATE_LIMIT"),
		RateBurst:        r.int("HEARTLOG_RATE_BURST", 1, 1<<30),
		Processors:       r.list("HEARTLOG_PROCESSORS"),
		FetchBatch:       r.int("HEARTLOG_FETCH_BATCH", 1, 100000),
		AckWait:          r.duration("HEARTLOG_ACK_WAIT"),
		PinnedTTL:        r.duration("HEARTLOG_PINNED_TTL"),
		ShardsGrace:      r.duration("HEARTLOG_SHARDS_GRACE"),
		ShardsInterval:   r.duration("HEARTLOG_SHARDS_INTERVAL"),
		PostgresWriters:  r.int("HEARTLOG_POSTGRES_WRITERS", 1, 64),
		LogLevel:         r.str("HEARTLOG_LOG_LEVEL"),
		LogFormat:        r.str("HEARTLOG_LOG_FORMAT"),
	}
	c.DebugJanitorPause = r.str("HEARTLOG_DEBUG_JANITOR_PAUSE")
	c.PostgresShardURLs = r.postgresURLs("HEARTLOG_POSTGRES_SHARD_URLS")
	c.PlacementTTL = r.duration("HEARTLOG_PLACEMENT_TTL")
	c.DebugMoveKillAt = r.str("HEARTLOG_DEBUG_MOVE_KILL_AT")
	c.DebugRestoreKillAfter = r.int("HEARTLOG_DEBUG_RESTORE_KILL_AFTER", 0, 1<<30)
	c.StreamMaxBytes = int64(r.int("HEARTLOG_STREAM_MAX_BYTES", 0, 1<<50))
	c.Work = Work{
		HeartbeatRate:     r.float("HEARTLOG_HEARTBEAT_RATE"),
		HeartbeatBurst:    r.int("HEARTLOG_HEARTBEAT_BURST", 1, 1<<30),
		ByteRate:          r.float("HEARTLOG_BYTE_RATE"),
		ByteBurst:         r.int("HEARTLOG_BYTE_BURST", 1, 1<<40),
		MaxDaysPerRequest: r.int("HEARTLOG_MAX_DAYS_PER_REQUEST", 1, 100000),
		DayMaxHeartbeats:  r.int("HEARTLOG_DAY_MAX_HEARTBEATS", 1, 1<<30),
		DayMaxBytes:       int64(r.int("HEARTLOG_DAY_MAX_BYTES", 1024, 1<<40)),
	}
	c.S3 = r.bucket("HEARTLOG_S3_")
	c.Backup = r.bucket("HEARTLOG_BACKUP_S3_")
	c.CacheURL = r.str("HEARTLOG_CACHE_URL")
	c.CacheTTL = r.duration("HEARTLOG_CACHE_TTL")
	c.Objects = r.flush("HEARTLOG_OBJECTS_")
	c.Cache = r.flush("HEARTLOG_CACHE_")
	c.BackupFlush = r.flush("HEARTLOG_BACKUP_")
	c.BackupRequestsPerSec = r.float("HEARTLOG_BACKUP_REQUESTS_PER_SECOND")
	if Lookup("HEARTLOG_BACKUP_VERIFY_EVERY") != "0" {
		c.BackupVerifyEvery = r.duration("HEARTLOG_BACKUP_VERIFY_EVERY")
	}
	c.BackupVerifyRequestsPerSec = r.float("HEARTLOG_BACKUP_VERIFY_REQUESTS_PER_SECOND")
	c.Objects.MemoBytes = int64(r.int("HEARTLOG_OBJECTS_MEMO_BYTES", 0, 1<<40))
	c.BackupFlush.MemoBytes = int64(r.int("HEARTLOG_BACKUP_MEMO_BYTES", 0, 1<<40))
	c.Cache.MemoBytes = int64(r.int("HEARTLOG_CACHE_MEMO_BYTES", 0, 1<<40))
	c.DayFileMaxBytes = r.int("HEARTLOG_DAYFILE_MAX_BYTES", 1024, 1<<32)
	c.DayFileMaxHeartbeats = r.int("HEARTLOG_DAYFILE_MAX_HEARTBEATS", 1, 1<<30)
	c.MergeBytes = int64(r.int("HEARTLOG_DAYFILE_MERGE_BYTES", 1<<20, 1<<40))
	c.DayCloseDelay = r.duration("HEARTLOG_DAY_CLOSE_DELAY")
	c.CompactionMemoryBytes = int64(r.int("HEARTLOG_COMPACTION_MEMORY_BYTES", 64<<10, 1<<40))
	c.CompactionPartitions = r.int("HEARTLOG_COMPACTION_PARTITIONS", 1, 1024)
	c.CompactionDir = r.str("HEARTLOG_COMPACTION_DIR")
	c.SessionTTL = r.duration("HEARTLOG_SESSION_TTL")
	c.TodayMaxUsers = r.int("HEARTLOG_TODAY_MAX_USERS", 1, 1<<30)
	c.TodayMaxHeartbeats = r.int("HEARTLOG_TODAY_MAX_HEARTBEATS", 1, 1<<40)
	return c, r.err
}

func (r *reader) bucket(prefix string) Bucket {
	b := Bucket{
		Endpoint:        r.str(prefix + "ENDPOINT"),
		Region:          r.str(prefix + "REGION"),
		Name:            r.str(prefix + "BUCKET"),
		AccessKeyID:     r.str(prefix + "ACCESS_KEY_ID"),
		SecretAccessKey: r.str(prefix + "SECRET_ACCESS_KEY"),
		PathStyle:       r.bool(prefix + "PATH_STYLE"),
	}
	if b.Name == "" {
		r.fail(prefix+"BUCKET", "", "a bucket name")
	}
	return b
}

func (r *reader) flush(prefix string) Flush {
	return Flush{
		Messages:    r.int(prefix+"FLUSH_MESSAGES", 1, 1_000_000),
		Bytes:       r.int(prefix+"FLUSH_BYTES", 1024, 1<<32),
		Age:         r.duration(prefix + "FLUSH_AGE"),
		Concurrency: r.int(prefix+"CONCURRENCY", 1, 100_000),
	}
}

func (r *reader) bool(name string) bool {
	v := Lookup(name)
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, v, "true or false")
	}
	return b
}

// IsSet reports whether the environment sets the variable.
func IsSet(name string) bool {
	_, ok := os.LookupEnv(name)
	return ok
}

// Lookup returns a variable's value or its default.
func Lookup(name string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	for _, v := range Vars {
		if v.Name == name {
			return v.Default
		}
	}
	panic("config: undeclared variable " + name)
}

type reader struct{ err error }

func (r *reader) fail(name, value, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("config: %s=%q: want %s", name, value, want)
	}
}

func (r *reader) str(name string) string { return Lookup(name) }

func (r *reader) int(name string, min, max int) int {
	v := Lookup(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(name, v, fmt.Sprintf("an integer from %d to %d", min, max))
	}
	return n
}

func (r *reader) float(name string) float64 {
	v := Lookup(name)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		r.fail(name, v, "a positive number")
	}
	return f
}

func (r *reader) duration(name string) time.Duration {
	v := Lookup(name)
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail(name, v, "a positive duration such as 500us, 2m or 1344h")
	}
	return d
}

func (r *reader) list(name string) []string {
	var out []string
	for _, s := range strings.Split(Lookup(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// postgresURLs reads a comma-separated list of Postgres URLs. An entry at
// fault is named by its place and its host and database, never by its
// text: it may hold a password.
func (r *reader) postgresURLs(name string) []string {
	urls := r.list(name)
	seen := map[string]int{}
	for i, s := range urls {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" || strings.Trim(u.Path, "/") == "" {
			r.failAt(name, fmt.Sprintf("entry %d: want a postgres://host:port/dbname URL", i+1))
			continue
		}
		where := u.Host + u.Path
		if j, ok := seen[where]; ok {
			r.failAt(name, fmt.Sprintf("entries %d and %d are both %s", j+1, i+1, where))
		}
		seen[where] = i
	}
	return urls
}

// failAt is fail for a value that must not be repeated.
func (r *reader) failAt(name, why string) {
	if r.err == nil {
		r.err = fmt.Errorf("config: %s: %s", name, why)
	}
}

// Markdown is the configuration table of README.md: every variable, its
// default and its meaning. A test keeps the README equal to it.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Meaning |\n|---|---|---|\n")
	for _, v := range Vars {
		def := "`" + v.Default + "`"
		if v.Default == "" {
			def = ""
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, def, strings.ReplaceAll(v.Help, "|", "\\|"))
	}
	return b.String()
}
