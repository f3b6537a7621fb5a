package heartlogtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"heartlog/config"
	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/catalog"
	"heartlog/processors/compaction"
	"heartlog/processors/dayfiles"
	"heartlog/ssdb"
	"heartlog/streams"

	"github.com/nats-io/nats.go/jetstream"
)

// Stores are the day-file stores of the local stack: the primary bucket,
// the versioned backup bucket and the SSDB stand-in. Tests share them and
// stay apart by user: every user has a random key prefix.
type Stores struct {
	Primary *objstore.S3
	Backup  *objstore.S3
	Cache   *ssdb.Cache
}

// OpenStores connects to the stack's S3 buckets and cache (from var/env).
// Without them the test fails: run it with `make test`.
func OpenStores(t testing.TB) Stores {
	t.Helper()
	return Stores{Primary: Bucket(t, "HEARTLOG_S3_", ""), Backup: Bucket(t, "HEARTLOG_BACKUP_S3_", ""), Cache: Cache(t)}
}

// Bucket opens a bucket from the variables with the prefix; endpoint, if
// set, replaces theirs (a faults proxy in front of the real server).
func Bucket(t testing.TB, envPrefix, endpoint string) *objstore.S3 {
	t.Helper()
	if os.Getenv(envPrefix+"ENDPOINT") == "" {
		t.Fatalf("%sENDPOINT is not set: run the tests with `make test` (or `. var/env` with the stack up)", envPrefix)
	}
	cfg, err := objstore.ConfigFromEnv(envPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if endpoint != "" {
		cfg.Endpoint = endpoint
	}
	b, err := objstore.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Cache opens the stack's SSDB stand-in.
func Cache(t testing.TB) *ssdb.Cache {
	t.Helper()
	if os.Getenv("HEARTLOG_CACHE_URL") == "" {
		t.Fatal("HEARTLOG_CACHE_URL is not set: run the tests with `make test`")
	}
	cfg, err := ssdb.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssdb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// env is what the catalog builds the day-file sinks from: the settings
// of the environment (their defaults), the stores, a test's logger.
func (st Stores) env(t testing.TB) catalog.Env {
	cfg, err := config.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*config.Flush{&cfg.Objects, &cfg.Cache, &cfg.BackupFlush} {
		f.Concurrency, f.MemoBytes = 32, 64<<20
	}
	cfg.BackupRequestsPerSec = 0
	return catalog.Env{Config: cfg, Log: Logger(t), Stores: catalog.Stores{Primary: st.Primary, Backup: st.Backup, Cache: st.Cache}}
}

// Sinks are the three day-file processors' sinks over a set of stores, as
// catalog.Processors builds them.
func (st Stores) Sinks(t testing.TB) map[string]*dayfiles.Sink {
	t.Helper()
	e := st.env(t)
	out := map[string]*dayfiles.Sink{}
	for _, name := range catalog.DayFiles() {
		p, _ := catalog.Lookup(name)
		sink, err := p.Build(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = sink.(*dayfiles.Sink)
	}
	return out
}

// DayFileOptions change how StartDayFiles runs the processors.
type DayFileOptions struct {
	// Stores replaces the stack's (e.g. buckets behind a faults proxy).
	Stores *Stores
	// FlushAge is the processors' Linger (default 100ms).
	FlushAge time.Duration
	// Names limits the processors started (default all three).
	Names []string
}

// StartDayFiles runs the objects, cache and backup processors on the
// service's stream, as `heartlog process` does: the late path of closed
// days (compaction.LatePath), so they write nothing of an open day; close
// one with CloseDay. It returns a function that stops them (also called
// when the test ends). Calling it twice runs two instances of each, as two
// processes would.
func (s *Service) StartDayFiles(t testing.TB, o DayFileOptions) (stop func()) {
	t.Helper()
	st := o.Stores
	if st == nil {
		open := OpenStores(t)
		st = &open
	}
	if o.FlushAge == 0 {
		o.FlushAge = 100 * time.Millisecond
	}
	sinks := st.Sinks(t)
	if len(o.Names) == 0 {
		o.Names = catalog.DayFiles()
	}
	ctx, cancel := context.WithCancel(context.Background())
	// As `heartlog process`: the late consumers read the closed days only.
	if _, err := s.Compactor(t, compaction.Options{}).SyncLateFilters(ctx); err != nil {
		t.Fatal(err)
	}
	days, err := streams.WatchDays(ctx, s.JS, s.Streams)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, len(o.Names))
	for _, name := range o.Names {
		go func() {
			defer func() { done <- struct{}{} }()
			conss, err := streams.PartitionConsumers(ctx, s.JS, s.Streams, name)
			if err != nil {
				if ctx.Err() == nil { // not a test that stopped them while they started
					t.Errorf("%s processor: %v", name, err)
				}
				return
			}
			opts := processors.Options{Linger: o.FlushAge, Log: Logger(t), RetryMax: 500 * time.Millisecond,
				Admit: compaction.LatePath(days, name), HoldDelay: 200 * time.Millisecond, Consumers: conss}
			if err := processors.RunPartitions(ctx, s.JS, s.Streams, sinks[name], opts); err != nil && ctx.Err() == nil {
				t.Errorf("%s processor: %v", name, err)
			}
		}()
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for range o.Names {
			<-done
		}
		_ = days.Stop()
	}
	t.Cleanup(stop)
	return stop
}

// Compactor is a compactor on the service's stream as `heartlog days
// close` makes one, with the settle shortened for tests (the late-path
// views are in this process) and the test's logger.
func (s *Service) Compactor(t testing.TB, o compaction.Options) *compaction.Compactor {
	if o.Settle == 0 {
		o.Settle = 200 * time.Millisecond
	}
	o.Log = Logger(t)
	return compaction.New(s.JS, s.Streams, o)
}

// CloseDay closes a past day (a time in it, UTC) and compacts it into the
// stores (the stack's when nil) with every day-file sink, as `heartlog days
// close` does; the test fails if the compaction does.
func (s *Service) CloseDay(t testing.TB, day time.Time, st *Stores) []compaction.Result {
	t.Helper()
	if st == nil {
		open := OpenStores(t)
		st = &open
	}
	res, err := s.Compactor(t, compaction.Options{}).CloseDay(context.Background(), day.UTC().Format(time.DateOnly), st.CompactionSinks(t)...)
	if err != nil {
		t.Fatalf("close %s: %v", day.UTC().Format(time.DateOnly), err)
	}
	return res
}

// CompactionSinks are the sinks a compaction writes through, over st.
func (st Stores) CompactionSinks(t testing.TB) []processors.Sink {
	t.Helper()
	ctx := context.Background()
	log := Logger(t)
	createFirst := dayfiles.ConditionalWrites(ctx, st.Primary, log) && dayfiles.ConditionalWrites(ctx, st.Backup, log)
	return catalog.CompactionSinks(st.env(t), createFirst)
}

// WaitAcked waits until every partition consumer of the processors has
// been delivered and has acked every message in the stream now: what they
// do with those messages is done.
func WaitAcked(t testing.TB, s *Service, processors ...string) {
	t.Helper()
	var durables []string
	for _, name := range processors {
		for p := range s.Streams.Partitions {
			durables = append(durables, streams.PartitionDurable(name, p))
		}
	}
	waitDurables(t, s, durables)
}

// WaitPostgresAcked waits until the Postgres processor's consumer has acked
// every message in the stream now.
func WaitPostgresAcked(t testing.TB, s *Service) {
	t.Helper()
	waitDurables(t, s, []string{streams.DurablePostgres})
}

func waitDurables(t testing.TB, s *Service, durables []string) {
	t.Helper()
	ctx := context.Background()
	var last string
	ok := Eventually(60*time.Second, func() bool {
		for _, name := range durables {
			done, why, err := durableDone(ctx, s, name)
			if err != nil || !done {
				last = cmp.Or(why, fmt.Sprint(err))
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("consumers %v never acked the stream: %s", durables, last)
	}
}

// durableDone reports whether the consumer has nothing pending or unacked
// and, when it reads one filter from the start (the Postgres consumer, a
// partition consumer), has acked the last message of the stream that its
// filter matches. Pending counts alone are not enough: the server counts
// a just-stored message for its consumers a moment after the publish is
// acked, so right after a publish a consumer can show nothing pending
// while its message is still to come. A late consumer's filter gains days
// whose earlier messages it never reads, so for it the counts are all
// there is to go by.
func durableDone(ctx context.Context, s *Service, name string) (bool, string, error) {
	cons, err := s.JS.Consumer(ctx, s.Streams.Stream, name)
	if err != nil {
		return false, "", err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return false, "", err
	}
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return false, fmt.Sprintf("%s: %d pending, %d unacked", name, info.NumPending, info.NumAckPending), nil
	}
	if info.Config.FilterSubject == "" {
		return true, "", nil
	}
	st, err := s.JS.Stream(ctx, s.Streams.Stream)
	if err != nil {
		return false, "", err
	}
	filter := info.Config.FilterSubject
	msg, err := st.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, "", nil
	}
	if err != nil {
		return false, "", err
	}
	if info.AckFloor.Stream < msg.Sequence {
		return false, fmt.Sprintf("%s: acked up to %d, the last message of %s is %d", name, info.AckFloor.Stream, filter, msg.Sequence), nil
	}
	return true, "", nil
}
