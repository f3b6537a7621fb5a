package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"heartlog/internal/faults"
	"heartlog/internal/wiring"
	"heartlog/objstore"
	"heartlog/streams"
)

const (
	s3Region  = "us-east-1"
	s3Access  = "chaos"
	s3Secret  = "chaos-secret"
	bucket    = "heartlog"
	backupBkt = "heartlog-backup"
	// partitions is HEARTLOG_PARTITIONS here: 4 instead of 16 keeps the
	// partition consumers (3 processors × partitions) cheap on a small
	// machine; the kill and takeover paths are the same.
	partitions = 4
)

// heartlog's processes, each its own OS process so that kill -9 is real.
var processorProcs = []string{streams.DurablePostgres, streams.DurableObjects, streams.DurableCache, streams.DurableBackup}

// stack is the private stack: servers started once for the suite
// (Postgres, Redis, versitygw and the S3 fault proxy), and per row a fresh
// NATS store, a fresh database and fresh heartlog processes.
type stack struct {
	cfg  config
	dir  string
	logs string

	pgPort, redisPort, s3Port, natsPort, httpPort int
	pg, redisd, vgw, natsd                        *daemon
	proxy                                         *faults.Proxy

	// Per row.
	row     string
	dbName  string
	procs   map[string]*daemon // "serve", the processors, "janitor"
	pool    *pgxpool.Pool
	nc      *nats.Conn
	js      jetstream.JetStream
	sc      streams.Config
	baseURL string

	primary, backup *objstore.S3 // straight to versitygw, not through the proxy
	rdb             *redis.Client
}

func (st *stack) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chaos: "+format+"\n", args...)
}

func (st *stack) debugf(format string, args ...any) {
	if st.cfg.verbose {
		st.logf(format, args...)
	}
}

// startStack starts the servers that live for the whole suite.
func startStack(ctx context.Context, cfg config) (*stack, error) {
	dir, err := os.MkdirTemp("", "heartlog-chaos-")
	if err != nil {
		return nil, err
	}
	st := &stack{cfg: cfg, dir: dir, logs: filepath.Join(dir, "log"), procs: map[string]*daemon{}}
	// Postgres runs as its own user when we are root; it must reach its
	// data directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return st, err
	}
	for _, d := range []string{st.logs, filepath.Join(dir, "compaction")} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			return st, err
		}
	}
	_ = os.Chmod(st.logs, 0o777)
	for _, p := range []*int{&st.pgPort, &st.redisPort, &st.s3Port, &st.natsPort, &st.httpPort} {
		if *p, err = freePort(); err != nil {
			return st, err
		}
	}
	st.logf("private stack in %s (postgres :%d, redis :%d, versitygw :%d, nats :%d, api :%d)",
		dir, st.pgPort, st.redisPort, st.s3Port, st.natsPort, st.httpPort)
	if err := st.startPostgres(ctx); err != nil {
		return st, err
	}
	if err := st.startRedis(); err != nil {
		return st, err
	}
	if err := st.startS3(ctx); err != nil {
		return st, err
	}
	st.natsd = &daemon{name: "nats-server", path: filepath.Join(cfg.tools, "nats-server"),
		args: []string{"-c", filepath.Join(dir, "nats.conf")}, logPath: filepath.Join(st.logs, "nats-server.log")}
	return st, nil
}

// close stops everything and removes the work directory unless -keep.
func (st *stack) close() {
	st.stopHeartlog()
	st.closeClients()
	if st.proxy != nil {
		_ = st.proxy.Close()
	}
	for _, d := range []*daemon{st.natsd, st.vgw, st.redisd} {
		if d != nil {
			_ = d.stop(syscall.SIGTERM, 15*time.Second)
		}
	}
	if st.pg != nil {
		_ = st.pg.stop(syscall.SIGINT, 30*time.Second)
	}
	if st.cfg.keep {
		st.logf("kept %s (logs in %s)", st.dir, st.logs)
		return
	}
	_ = os.RemoveAll(st.dir)
}

// --- Postgres ---

func (st *stack) startPostgres(ctx context.Context) error {
	data := filepath.Join(st.dir, "postgres")
	sock := filepath.Join(st.dir, "pgsock")
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root, Postgres needs the 'postgres' system user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	for _, d := range []string{data, sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if cred != nil {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return err
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(st.cfg.pgBin, "initdb"), "-D", data, "-U", "heartlog",
		"--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	initdb.Dir = "/"
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	st.pg = &daemon{
		name: "postgres", path: filepath.Join(st.cfg.pgBin, "postgres"), cred: cred, dir: "/",
		args: []string{"-D", data, "-p", strconv.Itoa(st.pgPort), "-k", sock,
			"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
			// The suite stops Postgres cleanly, never the machine: durability
			// against power loss is not what it tests.
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"},
		logPath: filepath.Join(st.logs, "postgres.log"),
	}
	return st.startPG()
}

// startPG starts Postgres and waits until it accepts queries (it listens
// before it has finished starting up).
func (st *stack) startPG() error {
	if err := st.pg.start(); err != nil {
		return err
	}
	if err := st.pg.waitPort(st.pgPort, 60*time.Second); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := pgx.Connect(ctx, st.pgURL("postgres"))
		if err == nil {
			_ = c.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || !st.pg.alive() {
			return fmt.Errorf("postgres did not accept connections: %w; see %s", err, st.pg.logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (st *stack) pgURL(db string) string {
	return fmt.Sprintf("postgres://heartlog@127.0.0.1:%d/%s?sslmode=disable", st.pgPort, db)
}

// --- Redis (SSDB's stand-in: on disk, as SSDB is) ---

func (st *stack) startRedis() error {
	dir := filepath.Join(st.dir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	st.redisd = &daemon{
		name: "redis-server", path: "redis-server",
		args: []string{"--port", strconv.Itoa(st.redisPort), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"},
		logPath: filepath.Join(st.logs, "redis.log"),
	}
	if err := st.startRedisd(); err != nil {
		return err
	}
	st.rdb = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", st.redisPort), MaxRetries: 3})
	return nil
}

func (st *stack) startRedisd() error {
	if err := st.redisd.start(); err != nil {
		return err
	}
	return st.redisd.waitPort(st.redisPort, 30*time.Second)
}

// --- versitygw, its buckets, and the fault proxy in front of it ---

func (st *stack) startS3(ctx context.Context) error {
	root, versions := filepath.Join(st.dir, "s3"), filepath.Join(st.dir, "s3-versions")
	for _, d := range []string{root, versions} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	st.vgw = &daemon{
		name: "versitygw", path: filepath.Join(st.cfg.tools, "versitygw"),
		args: []string{"--port", fmt.Sprintf("127.0.0.1:%d", st.s3Port), "--access", s3Access, "--secret", s3Secret,
			"--region", s3Region, "--health", "/health", "--quiet", "--keep-alive",
			"posix", "--versioning-dir", versions, root},
		logPath: filepath.Join(st.logs, "versitygw.log"),
	}
	if err := st.vgw.start(); err != nil {
		return err
	}
	if err := st.vgw.waitPort(st.s3Port, 60*time.Second); err != nil {
		return err
	}
	endpoint := st.s3URL()
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint), Region: s3Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s3Access, s3Secret, ""),
	})
	for _, b := range []string{bucket, backupBkt} {
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(backupBkt),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	}); err != nil {
		return fmt.Errorf("enable versioning on %s: %w", backupBkt, err)
	}
	var err error
	open := func(name string) (*objstore.S3, error) {
		return objstore.NewS3(ctx, objstore.S3Config{Endpoint: endpoint, Region: s3Region, Bucket: name,
			AccessKeyID: s3Access, SecretAccessKey: s3Secret, PathStyle: true})
	}
	if st.primary, err = open(bucket); err != nil {
		return err
	}
	if st.backup, err = open(backupBkt); err != nil {
		return err
	}
	st.proxy, err = faults.Listen("127.0.0.1:0", endpoint, faults.Options{})
	return err
}

func (st *stack) s3URL() string { return fmt.Sprintf("http://127.0.0.1:%d", st.s3Port) }

// --- NATS ---

// writeNATSConf writes the standalone server's config for a row: a fresh
// store, fsync on every write as nats.conf has it.
func (st *stack) writeNATSConf(storeDir string) error {
	conf := fmt.Sprintf(`server_name: chaos
listen: 127.0.0.1:%d
max_payload: 1MB
jetstream {
  store_dir: %q
  sync_interval: always
  max_file_store: 4G
  max_memory_store: 64M
}
`, st.natsPort, storeDir)
	return os.WriteFile(filepath.Join(st.dir, "nats.conf"), []byte(conf), 0o644)
}

func (st *stack) startNATS() error {
	if err := st.natsd.start(); err != nil {
		return err
	}
	return st.natsd.waitPort(st.natsPort, 30*time.Second)
}

// --- heartlog ---

// heartlogEnv is the environment of every heartlog process of the row:
// the driver's, without any HEARTLOG_* or AWS_* it may carry (the shared
// stack's var/env), plus the private stack's.
func (st *stack) heartlogEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HEARTLOG_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	set := map[string]string{
		"HEARTLOG_HTTP_ADDR":    fmt.Sprintf("127.0.0.1:%d", st.httpPort),
		"HEARTLOG_POSTGRES_URL": st.pgURL(st.dbName),
		"HEARTLOG_NATS_URL":     fmt.Sprintf("nats://127.0.0.1:%d", st.natsPort),
		"HEARTLOG_PARTITIONS":   strconv.Itoa(partitions),
		// A killed processor's messages come back after the ack wait, and
		// a partition it held moves after the pinned TTL: short, so a row
		// settles in seconds.
		"HEARTLOG_ACK_WAIT":   "15s",
		"HEARTLOG_PINNED_TTL": "3s",
		// Every user sends well under this; the suite is not about limits.
		"HEARTLOG_RATE_LIMIT": "1000", "HEARTLOG_RATE_BURST": "1000",
		"HEARTLOG_HEARTBEAT_RATE": "100000", "HEARTLOG_HEARTBEAT_BURST": "100000",
		"HEARTLOG_BYTE_RATE": "1073741824", "HEARTLOG_BYTE_BURST": "1073741824",
		"HEARTLOG_CACHE_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", st.redisPort),
		// As `heartlog dev`: a day file, cache entry and backup version within seconds.
		"HEARTLOG_OBJECTS_FLUSH_AGE": "2s", "HEARTLOG_CACHE_FLUSH_AGE": "2s", "HEARTLOG_BACKUP_FLUSH_AGE": "2s",
		"HEARTLOG_SHARDS_INTERVAL": "1s",
		// No day closer closes a day by itself: the rows close the load's
		// day (yesterday) with `heartlog days close` where they want it.
		"HEARTLOG_DAY_CLOSE_DELAY": "8760h",
		"HEARTLOG_COMPACTION_DIR":  filepath.Join(st.dir, "compaction"),
		"HEARTLOG_LOG_LEVEL":       "info",
		"HEARTLOG_LOG_FORMAT":      "json",
		// Several heartlog processes run side by side: none takes the
		// default admin port (and a shared-stack one may hold it).
		"HEARTLOG_ADMIN_ADDR": "",
		// The suite's nats-server has max_file_store 4G, below the
		// default 16 GiB the server would have to reserve.
		"HEARTLOG_STREAM_MAX_BYTES": strconv.Itoa(2 << 30),
	}
	for _, p := range []string{"HEARTLOG_S3_", "HEARTLOG_BACKUP_S3_"} {
		set[p+"ENDPOINT"] = st.proxy.URL // faults are injected on both buckets
		set[p+"REGION"] = s3Region
		set[p+"ACCESS_KEY_ID"] = s3Access
		set[p+"SECRET_ACCESS_KEY"] = s3Secret
		set[p+"PATH_STYLE"] = "true"
	}
	set["HEARTLOG_S3_BUCKET"], set["HEARTLOG_BACKUP_S3_BUCKET"] = bucket, backupBkt
	for k, v := range extra {
		set[k] = v
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// heartlogProc declares one heartlog process of the row.
func (st *stack) heartlogProc(name string, args []string, extra map[string]string) *daemon {
	d := &daemon{name: "heartlog " + name, path: st.cfg.heartlog, args: args, env: st.heartlogEnv(extra),
		dir: st.cfg.root, logPath: filepath.Join(st.logs, st.row+"-"+name+".log")}
	st.procs[name] = d
	return d
}

// beginRow gives the row a fresh NATS store and database, and starts
// `heartlog serve` and one `heartlog process --only P` per processor.
func (st *stack) beginRow(ctx context.Context, row string) error {
	st.stopHeartlog()
	st.closeClients()
	st.proxy.SetSlowDownRate(0)
	st.row = row
	if err := st.natsd.stop(syscall.SIGTERM, 15*time.Second); err != nil {
		return err
	}
	if err := st.writeNATSConf(filepath.Join(st.dir, "nats", row)); err != nil {
		return err
	}
	if err := st.startNATS(); err != nil {
		return err
	}
	st.dbName = "chaos_" + strings.ReplaceAll(row, "-", "_")
	// A fresh connection: the row before may have restarted Postgres.
	if _, err := wiring.CreateDatabase(ctx, st.pgURL("postgres"), st.dbName); err != nil {
		return err
	}
	serve := st.heartlogProc("serve", []string{"serve"}, nil)
	if err := serve.start(); err != nil {
		return err
	}
	// serve migrates the database before it listens: the processors then
	// start on a migrated schema.
	if err := serve.waitPort(st.httpPort, 60*time.Second); err != nil {
		return err
	}
	for _, p := range processorProcs {
		if err := st.heartlogProc(p, []string{"process", "--only", p, "--no-janitor"}, nil).start(); err != nil {
			return err
		}
	}
	st.baseURL = fmt.Sprintf("http://127.0.0.1:%d", st.httpPort)
	var err error
	if st.pool, err = wiring.NewPool(ctx, st.pgURL(st.dbName)); err != nil {
		return err
	}
	// The rows restart NATS: reconnect sooner than heartlog does.
	st.nc, st.js, err = wiring.ConnectNATS(fmt.Sprintf("nats://127.0.0.1:%d", st.natsPort),
		wiring.NATSOptions{Name: "chaos", ReconnectWait: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	st.sc = streams.DefaultConfig()
	st.sc.Partitions = partitions
	// The processors create their consumers as they start: wait for them,
	// so that lag is measured on every one.
	return st.waitConsumers(ctx, 60*time.Second)
}

// consumerNames are every processor's durable consumers.
func (st *stack) consumerNames(proc string) []string {
	if proc == streams.DurablePostgres {
		return []string{proc}
	}
	var out []string
	for p := range uint32(partitions) {
		out = append(out, streams.PartitionDurable(proc, p))
	}
	return out
}

func (st *stack) waitConsumers(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := ""
		for _, p := range processorProcs {
			for _, name := range st.consumerNames(p) {
				if _, err := st.js.Consumer(ctx, st.sc.Stream, name); err != nil {
					missing = name
					break
				}
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consumer %s did not appear within %s (see %s)", missing, timeout, st.logs)
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// stopHeartlog stops the row's heartlog processes.
func (st *stack) stopHeartlog() {
	for name, d := range st.procs {
		_ = d.stop(syscall.SIGTERM, 20*time.Second)
		delete(st.procs, name)
	}
}

func (st *stack) closeClients() {
	if st.pool != nil {
		st.pool.Close()
		st.pool = nil
	}
	if st.nc != nil {
		st.nc.Close()
		st.nc = nil
	}
}

// endRow stops the row's processes; its database and store stay (for -keep).
func (st *stack) endRow() { st.stopHeartlog() }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var errNotCaughtUp = errors.New("processors did not catch up")
