package heartlogtest

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"heartlog/api"
	"heartlog/daydb"
	"heartlog/health"
	"heartlog/internal/wiring"
	"heartlog/processors"
	pgsink "heartlog/processors/postgres"
	"heartlog/reads"
	"heartlog/sessions"
	"heartlog/streams"
	"heartlog/today"
	"heartlog/users"
	"heartlog/web"
)

// Options change the service a test starts.
type Options struct {
	// Stream adjusts the topology (e.g. a short Duplicates window).
	Stream func(*streams.Config)
	// API adjusts the API options (rate limits, body size).
	API func(*api.Options)
	// PostgresProxy makes the processor reach Postgres through a Proxy
	// (Service.PostgresProxy) that the test can cut.
	PostgresProxy bool
	// NoProcessor leaves the Postgres processor stopped.
	NoProcessor bool
	// Wrap, if set, wraps the API handler on the test server (for example
	// to count the request body bytes the API reads).
	Wrap func(http.Handler) http.Handler
	// Postgres, if set, holds the test's database instead of the shared
	// server: a private cluster the test may stop.
	Postgres *Postgres
	// ShardDatabases is how many shard databases hold the day partitions,
	// beside the catalog (Service.Pool): default 2, as the local stack, so
	// that every test takes the sharded path.
	ShardDatabases int
	// SingleDatabase puts the day partitions in the catalog, with no shard
	// database: a deployment without HEARTLOG_POSTGRES_SHARD_URLS (and a
	// test that changes the heartbeats table itself).
	SingleDatabase bool
	// PrivateShard, if set, adds one shard database, last in the list,
	// on this private cluster: a shard server the test may stop while
	// the catalog and the other shard databases stay up.
	PrivateShard *Postgres
	// Directory configures the API's copy of the users bucket.
	Directory users.DirectoryOptions
	// ShardsGrace is HEARTLOG_SHARDS_GRACE for the Postgres processor and
	// the reader: days past it get no partition and are read from the day
	// files. Zero: every day gets a partition (most tests use fixed dates).
	ShardsGrace time.Duration
	// SessionTTL is the browser sessions' lifetime (default
	// sessions.DefaultTTL).
	SessionTTL time.Duration
	// Today adjusts the live status bar's tracker (api.Options.Today).
	Today func(*today.Options)
	// PlacementTTL is how long the reader and the processor cache a day's
	// database (HEARTLOG_PLACEMENT_TTL; default daydb.DefaultCacheTTL).
	PlacementTTL time.Duration
}

// Service is a whole heartlog: embedded JetStream, a fresh database, the
// API on a loopback listener and the Postgres processor.
type Service struct {
	NATS    *NATS
	NC      *nats.Conn
	JS      jetstream.JetStream
	Streams streams.Config
	// Pool and DBURL are the catalog database's.
	Pool  *pgxpool.Pool
	DBURL string
	// Days is the set over the catalog and the shard databases
	// (Options.ShardDatabases), whose URLs ShardURLs are.
	Days      *daydb.Set
	ShardURLs []string
	Shards    []*pgxpool.Pool
	Users     *users.Store
	// Directory is the API's copy of the users bucket.
	Directory *users.Directory
	URL       string
	// PostgresProxy is set with Options.PostgresProxy.
	PostgresProxy *Proxy
	// Sessions is the API's store of browser sessions.
	Sessions *sessions.Store
	// Reader is the API's read path, for computing what the API should
	// answer.
	Reader *reads.Reader
	// Today keeps the API's live status bars.
	Today *today.Tracker
	// CloseAPI shuts the API's HTTP server down as serve does at exit
	// (a grace of 5 s), once; the test's end calls it too.
	CloseAPI func() error

	t      testing.TB // the test that started the Service
	opts   Options
	pub    *streams.Publisher
	checks []health.Check
	mu     sync.Mutex
	stop   func()
}

// Start brings a Service up and tears it down when the test ends.
func Start(t testing.TB, opts Options) *Service {
	t.Helper()
	s := &Service{NATS: StartNATS(t), Streams: streams.DefaultConfig(), t: t, opts: opts}
	// Shorter than production, so that redelivery after a stop and the
	// takeover of a pinned partition happen within a test.
	s.Streams.AckWait, s.Streams.PinnedTTL = 10*time.Second, 2*time.Second
	if opts.Stream != nil {
		opts.Stream(&s.Streams)
	}
	s.NC, s.JS = Connect(t, s.NATS.URL)
	ctx := context.Background()
	if err := streams.Ensure(ctx, s.JS, s.Streams); err != nil {
		t.Fatal(err)
	}
	shards := cmp.Or(opts.ShardDatabases, 2)
	if opts.SingleDatabase {
		shards = 0
	}
	var dbs Databases
	if opts.Postgres != nil {
		dbs = opts.Postgres.NewDatabases(t, shards)
	} else {
		dbs = NewDatabases(t, shards)
	}
	if opts.PrivateShard != nil {
		dbs = dbs.AddShard(t, opts.PrivateShard.URL)
	}
	s.Pool, s.DBURL, s.Days, s.ShardURLs, s.Shards = dbs.Catalog, dbs.CatalogURL, dbs.Days, dbs.ShardURLs, dbs.Shards
	if opts.PlacementTTL > 0 {
		s.Days.SetCacheTTL(opts.PlacementTTL)
	}
	mirror, err := users.OpenMirror(ctx, s.JS, s.Streams.UsersBucket)
	if err != nil {
		t.Fatal(err)
	}
	s.Users = users.NewStore(s.Pool, mirror)
	if s.Directory, err = users.WatchDirectory(ctx, s.JS, s.Streams.UsersBucket, opts.Directory); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Directory.Stop() })
	if opts.PostgresProxy {
		u, err := url.Parse(s.DBURL)
		if err != nil {
			t.Fatal(err)
		}
		s.PostgresProxy = NewProxy(t, u.Host)
	}

	pub := streams.NewPublisher(s.NC, s.JS, s.Streams, streams.PublisherOptions{})
	view, err := streams.WatchShards(ctx, s.JS, s.Streams)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = view.Stop() })
	stores := OpenStores(t)
	reader := reads.New(s.Days, view, stores.Cache, stores.Primary, 16, Logger(t)).WithShardsGrace(opts.ShardsGrace)
	checks := health.Deps{NATS: s.NC, JetStream: s.JS, Stream: s.Streams.Stream, UsersBucket: s.Streams.UsersBucket,
		Postgres: s.Pool, PostgresShards: s.Shards, Cache: stores.Cache, S3: stores.Primary}.Checks()
	s.Reader, s.pub, s.checks = reader, pub, checks
	t.Cleanup(pub.Close) // after the API's server, which the next cleanups close
	if err := s.startAPI("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if !opts.NoProcessor {
		s.StartProcessor(t)
	}
	t.Cleanup(s.StopProcessor)
	return s
}

// startAPI starts the API (its sessions store, live tracker, handler and
// HTTP server) on addr; "127.0.0.1:0" picks a free port. It logs to, and
// is torn down with, the test that started the Service, whichever test
// (a subtest) calls it.
func (s *Service) startAPI(addr string) error {
	t, ctx, opts := s.t, context.Background(), s.opts
	var err error
	if s.Sessions, err = sessions.Open(ctx, s.JS, s.Streams.SessionsBucket, sessions.Options{TTL: opts.SessionTTL}); err != nil {
		return err
	}
	todayOpts := today.Options{Log: Logger(t)}
	if opts.Today != nil {
		opts.Today(&todayOpts)
	}
	s.Today = today.New(ctx, s.JS, s.Streams, s.Reader, todayOpts)
	t.Cleanup(s.Today.Close)
	apiOpts := api.Options{Log: Logger(t), RateLimit: 1000, RateBurst: 1000, Reader: s.Reader, Today: s.Today,
		Health: health.New(s.checks, health.Options{Log: Logger(t)}), Sessions: s.Sessions}
	apiOpts.Web = web.Handler()
	// Tests that are not about the work limits must not meet them.
	apiOpts.HeartbeatRate, apiOpts.HeartbeatBurst = 1e9, 1<<30
	apiOpts.ByteRate, apiOpts.ByteBurst = 1e12, 1<<40
	apiOpts.MaxDaysPerRequest, apiOpts.MaxDayHeartbeats, apiOpts.MaxDayBytes = 1<<20, 1<<30, 1<<40
	if opts.API != nil {
		opts.API(&apiOpts)
	}
	var h http.Handler = api.New(users.Accounts{Keys: s.Directory, Store: s.Users}, s.pub, apiOpts)
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	// The API's own server and limits.
	srv, err := wiring.ListenAPI(addr, h)
	if err != nil {
		return err
	}
	s.URL = srv.URL()
	srv.OnShutdown(s.Today.Close)
	var closeOnce sync.Once
	var closeErr error
	s.CloseAPI = func() error {
		closeOnce.Do(func() {
			// A connection the client dialed but never sent a request on
			// (the transport dials spares under concurrency) is StateNew
			// to the server, and Shutdown waits 5 s before it counts as
			// idle: close the client's idle ones first, or a busy test's
			// shutdown outlasts its grace.
			http.DefaultClient.CloseIdleConnections()
			closeErr = srv.Close(5 * time.Second)
		})
		return closeErr
	}
	t.Cleanup(func() {
		if err := s.CloseAPI(); err != nil {
			t.Errorf("API server: %v", err)
		}
	})
	return nil
}

// ReopenAPI starts the API again on its old address after CloseAPI, as a
// restart of `heartlog serve` against a separate NATS would: a new sessions
// store, live tracker and handler, over the same JetStream, whose streams
// and buckets (the sessions among them) survived; the processor and the
// read path are untouched. CloseAPI then closes the new server, and so does
// the end of the test that started the Service.
func (s *Service) ReopenAPI(t testing.TB) {
	t.Helper()
	if err := s.startAPI(strings.TrimPrefix(s.URL, "http://")); err != nil {
		t.Fatalf("reopening the API on %s: %v", s.URL, err)
	}
}

// StartProcessor runs the Postgres processor on its durable consumer.
func (s *Service) StartProcessor(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		t.Fatal("processor already running")
	}
	dbURL := s.DBURL
	if s.PostgresProxy != nil {
		u, _ := url.Parse(dbURL)
		u.Host = s.PostgresProxy.Addr
		dbURL = u.String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := wiring.NewPool(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	days, closeDays, err := wiring.NewDays(ctx, pool, s.ShardURLs)
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.PlacementTTL > 0 {
		days.SetCacheTTL(s.opts.PlacementTTL)
	}
	view, err := streams.WatchShards(ctx, s.JS, s.Streams)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := streams.EnsureConsumer(ctx, s.JS, s.Streams, streams.DurablePostgres)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// As catalog.Processor.Sink builds it: deleted users' heartbeats dropped.
		sink := processors.WithoutDeleted(pgsink.New(days, view, Logger(t), pgsink.Options{Grace: s.opts.ShardsGrace}), s.Directory.Deleted, Logger(t))
		opts := processors.Options{Log: Logger(t), RetryMax: 500 * time.Millisecond, DeadLetters: streams.NewDeadLetters(s.JS, s.Streams)}
		if err := processors.Run(ctx, cons, sink, opts); err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	s.stop = func() {
		cancel()
		<-done
		_ = view.Stop()
		closeDays()
		pool.Close()
	}
}

// StopProcessor stops the processor after its commit in progress.
func (s *Service) StopProcessor() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// CreateUser adds a user; key may be empty for a fresh one.
func (s *Service) CreateUser(t testing.TB, name, key string) (users.User, string) {
	t.Helper()
	u, k, err := s.Users.Create(context.Background(), users.NewUser{Name: name, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return u, k
}

// Do sends a request to the API and returns the response and its body.
func (s *Service) Do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// Post sends body to path with the key as wakatime-cli sends it.
func (s *Service) Post(t testing.TB, path, key string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	return s.Do(t, req)
}

// Count runs a SELECT count(*) style query.
//
// A query that reads the heartbeats table runs on every database that
// holds day partitions, and the counts are added up: with shard databases
// the catalog has no heartbeats, and each day is on one shard.
func (s *Service) Count(t testing.TB, query string, args ...any) int {
	t.Helper()
	pools := []*pgxpool.Pool{s.Pool}
	if readsHeartbeats.MatchString(query) {
		pools = s.DayPools()
	}
	total := 0
	for _, p := range pools {
		var n int
		if err := p.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		total += n
	}
	return total
}

// DayPools are the databases that hold the day partitions: the shard
// databases, or the catalog alone with SingleDatabase.
func (s *Service) DayPools() []*pgxpool.Pool {
	if len(s.Shards) > 0 {
		return s.Shards
	}
	return []*pgxpool.Pool{s.Pool}
}

// readsHeartbeats matches a query that names the heartbeats table or a
// day's (heartbeats_YYYYMMDD, or 'heartbeats_' || $1): the name must be in
// the query's text, not only in an argument.
var readsHeartbeats = regexp.MustCompile(`\bheartbeats(_[0-9]{8}|_)?\b`)

// WaitCount waits until the query counts want, and fails the test with the
// last count if it does not within a generous bound. The bound is not a
// performance goal (those live in `make bench`); it only stops a test that
// would otherwise hang.
func (s *Service) WaitCount(t testing.TB, want int, query string, args ...any) {
	t.Helper()
	var got int
	ok := Eventually(30*time.Second, func() bool {
		got = s.Count(t, query, args...)
		return got == want
	})
	if !ok {
		t.Fatalf("%s: got %d, want %d", query, got, want)
	}
}

// Eventually polls cond until it holds or the bound passes.
func Eventually(bound time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(bound)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Durations print as heartlog logs them ("2s", not 2000): set once, before
// any test logs, since zerolog reads the setting on every event.
func init() { zerolog.DurationFieldFormat = zerolog.DurationFormatString }

// Logger writes the service's log lines into the test's output.
func Logger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: zerolog.TestWriter{T: t, Frame: 6}, NoColor: true}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}
