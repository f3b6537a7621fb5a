package compaction_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/compaction"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/shards"
	"heartlog/streams"
)

// world is an embedded JetStream with the stack's real S3, backup bucket
// and SSDB stand-in. Tests stay apart from each other in the shared
// stores by a random key prefix, and count their own requests by a
// metrics label of their own.
type world struct {
	js     jetstream.JetStream
	sc     streams.Config
	stores heartlogtest.Stores
	prefix string
	label  string
	day    string    // YYYYMMDD, three days ago
	at     time.Time // the day's start
	// want is every user-day's expected file, by key.
	want map[string][]byte
	hbs  map[string][]*heartlogv1.Heartbeat // by key
}

func newWorld(t *testing.T, partitions uint32) *world {
	t.Helper()
	sc := streams.DefaultConfig()
	sc.Partitions = partitions
	js := heartlogtest.StartTopology(t, sc).JS
	at := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	return &world{
		js: js, sc: sc, stores: heartlogtest.OpenStores(t),
		prefix: "ct" + randomHex(6), label: "compaction-test-" + randomHex(4),
		day: at.Format("20060102"), at: at,
		want: map[string][]byte{}, hbs: map[string][]*heartlogv1.Heartbeat{},
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// publish sends perUser heartbeats of each of users users for the day,
// shuffled into messages of up to 40 heartbeats per partition, and each
// user's first heartbeat once more in another message (a resend).
func (w *world) publish(t *testing.T, users, perUser int) {
	t.Helper()
	byPart := map[uint32][]*heartlogv1.Heartbeat{}
	for u := range users {
		user := fmt.Sprintf("u%s-%04d", w.prefix, u)
		p := streams.Partition(user, w.sc.Partitions)
		key := dayfile.Key(w.prefix, user, w.day)
		for i := range perUser {
			at := w.at.Add(time.Duration(u%20)*time.Hour + time.Duration(i)*time.Minute + time.Duration(u)*time.Second)
			hb := heartlogtest.Heartbeat(t, user, fmt.Sprintf("/src/%d/f%d.go", u, i), at)
			w.hbs[key] = append(w.hbs[key], hb)
			byPart[p] = append(byPart[p], hb)
		}
		byPart[p] = append(byPart[p], w.hbs[key][0])
	}
	ctx := context.Background()
	for p, hbs := range byPart {
		mrand.Shuffle(len(hbs), func(i, j int) { hbs[i], hbs[j] = hbs[j], hbs[i] })
		for len(hbs) > 0 {
			chunk := hbs[:min(40, len(hbs))]
			hbs = hbs[len(chunk):]
			b := &heartlogv1.Batch{Day: w.day, Partition: p, Heartbeats: chunk, ObjectPrefixes: map[string]string{}}
			for _, hb := range chunk {
				b.ObjectPrefixes[hb.UserId] = w.prefix
			}
			data, err := streams.EncodeBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.js.Publish(ctx, streams.Subject(w.day, p), data); err != nil {
				t.Fatal(err)
			}
		}
	}
	for key, hbs := range w.hbs {
		merged, _ := dayfile.Merge(nil, hbs)
		data, err := dayfile.Encode(merged)
		if err != nil {
			t.Fatal(err)
		}
		w.want[key] = data
	}
}

// sinks are the compaction's sinks over the stack's stores, the buckets
// instrumented under the world's label.
func (w *world) sinks(t *testing.T) []processors.Sink {
	return w.sinksWith(t, compaction.SinkOptions{})
}

func (w *world) sinksWith(t *testing.T, o compaction.SinkOptions) []processors.Sink {
	o.Concurrency, o.BackupConcurrency, o.Log = 32, 32, heartlogtest.Logger(t)
	return compaction.Sinks(compaction.Stores{
		Primary: objstore.Instrument(w.stores.Primary, w.label),
		Cache:   w.stores.Cache,
		Backup:  objstore.Instrument(w.stores.Backup, w.label+"-backup"),
	}, o)
}

// backupGets is how many GETs the backup bucket answered under the label,
// found or not.
func (w *world) backupGets(t *testing.T) int {
	t.Helper()
	n := 0
	for _, outcome := range []string{objstore.OutcomeSuccess, objstore.OutcomeNotFound} {
		v := heartlogtest.MetricValue(t, "heartlog_objstore_requests_total",
			map[string]string{"processor": w.label + "-backup", "operation": objstore.OpGet, "outcome": outcome})
		n += int(max(v, 0)) // -1: none yet
	}
	return n
}

func (w *world) compactor(t *testing.T, o compaction.Options) *compaction.Compactor {
	o.Settle, o.Log = time.Millisecond, heartlogtest.Logger(t)
	if o.TempDir == "" {
		o.TempDir = t.TempDir()
	}
	return compaction.New(w.js, w.sc, o)
}

// puts is how many PUTs to the primary bucket succeeded under the label.
func (w *world) puts(t *testing.T) int {
	t.Helper()
	n := heartlogtest.MetricValue(t, "heartlog_objstore_requests_total",
		map[string]string{"processor": w.label, "operation": objstore.OpPut, "outcome": objstore.OutcomeSuccess})
	return int(max(n, 0)) // -1: no PUT yet
}

// check asserts that every user-day's S3 file, SSDB entry (with a digest)
// and backup object is exactly its expected file, and that the backup
// holds exactly one version of each.
func (w *world) check(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var g errgroup.Group
	g.SetLimit(16)
	var mu sync.Mutex
	var bad []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		bad = append(bad, fmt.Sprintf(format, args...))
	}
	for key, want := range w.want {
		g.Go(func() error {
			if got, _, err := w.stores.Primary.Get(ctx, key); err != nil || !bytes.Equal(got, want) {
				fail("S3 %s: %d bytes, %v; want %d bytes", key, len(got), err, len(want))
			}
			if got, _, err := w.stores.Backup.Get(ctx, key); err != nil || !bytes.Equal(got, want) {
				fail("backup %s: %d bytes, %v; want %d bytes", key, len(got), err, len(want))
			}
			if got, ok, err := w.stores.Cache.Get(ctx, key); err != nil || !ok || !bytes.Equal(got, want) {
				fail("SSDB %s: %d bytes, found %t, %v; want %d bytes", key, len(got), ok, err, len(want))
			}
			if _, ok, err := w.stores.Cache.Get(ctx, digest.Key(key)); err != nil || !ok {
				fail("SSDB digest of %s: found %t, %v", key, ok, err)
			}
			if v, err := w.stores.Backup.Versions(ctx, key); err != nil || len(v) != 1 {
				fail("backup %s has %d versions (%v), want 1", key, len(v), err)
			}
			return nil
		})
	}
	g.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d user-days wrong, e.g. %s", len(bad), len(w.want), bad[0])
	}
}

func (w *world) cleanup(t *testing.T) {
	t.Cleanup(func() {
		ctx := context.Background()
		keys := make([]string, 0, len(w.want))
		for key := range w.want {
			keys = append(keys, key, digest.Key(key))
			_ = w.stores.Primary.Delete(ctx, key)
			_ = w.stores.Backup.DeleteAllVersions(ctx, key)
		}
		_ = w.stores.Cache.Delete(ctx, keys...)
	})
}

func TestCloseDayWritesEachUserDayOnce(t *testing.T) {
	w := newWorld(t, 16)
	w.cleanup(t)
	w.publish(t, 1000, 3)
	c := w.compactor(t, compaction.Options{})
	// versitygw enforces conditional writes (objstore's conformance suite
	// checks it), so files are created without a read first.
	sinks := w.sinksWith(t, compaction.SinkOptions{CreateFirst: true})
	ctx := context.Background()
	before, gets := w.puts(t), w.backupGets(t)
	res, err := c.CloseDay(ctx, w.day, sinks...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 16 {
		t.Fatalf("%d partitions compacted, want 16", len(res))
	}
	userDays, files := 0, map[string]int{}
	for _, r := range res {
		userDays += r.UserDays
		for name, s := range r.Sinks {
			if s.Skipped || s.Seq != r.Seq || s.Seq == 0 {
				t.Fatalf("partition %d %s: %+v, bound %d", r.Partition, name, s, r.Seq)
			}
			files[name] += s.Files
		}
	}
	if userDays != 1000 {
		t.Fatalf("%d user-days compacted, want 1000", userDays)
	}
	for _, name := range []string{streams.DurableObjects, streams.DurableCache, streams.DurableBackup} {
		if files[name] != 1000 {
			t.Fatalf("%s wrote %d files, want 1000", name, files[name])
		}
	}
	if n := w.puts(t) - before; n != 1000 {
		t.Fatalf("%d S3 PUTs for 1000 user-days", n)
	}
	if n := w.backupGets(t) - gets; n != 0 {
		t.Fatalf("%d backup GETs for 1000 new user-days, want 0: each is created without a read", n)
	}
	w.check(t)

	// The day is listed closed, every sink recorded on every partition.
	days, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 1 || days[0].Day != w.day || days[0].Lifecycle.State != streams.DayClosed || days[0].Partitions != 16 {
		t.Fatalf("days list: %+v", days)
	}
	for name, s := range days[0].Sinks {
		if s.Partitions != 16 || s.UserDays != 1000 || s.Heartbeats != 3000 || s.Files != 1000 {
			t.Fatalf("days list, %s: %+v", name, s)
		}
	}

	// Closing again writes nothing: every sink is recorded.
	before = w.puts(t)
	res, err = c.CloseDay(ctx, w.day, sinks...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		for name, s := range r.Sinks {
			if !s.Skipped {
				t.Fatalf("second close compacted partition %d %s again", r.Partition, name)
			}
		}
	}
	// Recompacting the backup from scratch (its records removed) reads
	// every file, finds it complete, and writes none: no new version.
	kv, err := w.js.KeyValue(ctx, w.sc.ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
	for p := range w.sc.Partitions {
		if err := kv.Delete(ctx, streams.CompactionKey(w.day, p, streams.DurableBackup)); err != nil {
			t.Fatal(err)
		}
	}
	res, err = c.CloseDay(ctx, w.day, sinks...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if s := r.Sinks[streams.DurableBackup]; s.Skipped || s.Files != 0 || s.UserDays != r.UserDays {
			t.Fatalf("recompacted backup, partition %d: %+v", r.Partition, s)
		}
	}
	if n := w.puts(t) - before; n != 0 {
		t.Fatalf("closing again made %d S3 PUTs", n)
	}
	w.check(t)
}

func TestKilledCompactionResumes(t *testing.T) {
	w := newWorld(t, 4)
	w.cleanup(t)
	w.publish(t, 80, 4)
	sinks := w.sinks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Stopped after the backup of partition 1 has committed 10 user-days,
	// and whatever else had finished by then.
	c := w.compactor(t, compaction.Options{Partitions: 2, GroupUsers: 5, AfterCommit: func(_ string, p uint32, name string, n int) {
		if p == 1 && name == streams.DurableBackup && n >= 10 {
			cancel()
		}
	}})
	before := w.puts(t)
	first, err := c.CloseDay(ctx, w.day, sinks...)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the stopped close returned %v", err)
	}
	kv, err := w.js.KeyValue(context.Background(), w.sc.ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
	records, err := streams.DayRecords(context.Background(), kv, w.day)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for p, bySink := range records[w.day].Compactions {
		for name := range bySink {
			recorded[fmt.Sprint(p, name)] = true
		}
	}
	for _, r := range first {
		for name := range r.Sinks {
			if !recorded[fmt.Sprint(r.Partition, name)] {
				t.Fatalf("the stopped run reports partition %d %s done, but it is not recorded", r.Partition, name)
			}
		}
	}
	if len(recorded) == 3*4 {
		t.Fatal("the compaction finished before it was stopped: the test proved nothing")
	}

	c = w.compactor(t, compaction.Options{GroupUsers: 5})
	second, err := c.CloseDay(context.Background(), w.day, sinks...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range second {
		for name, s := range r.Sinks {
			if s.Skipped != recorded[fmt.Sprint(r.Partition, name)] {
				t.Fatalf("partition %d %s: skipped %t, recorded by the stopped run %t", r.Partition, name, s.Skipped, !s.Skipped)
			}
		}
	}
	// No file was written twice: one version each, and no more successful
	// PUTs than user-days (fewer if a PUT stopped in flight had landed).
	w.check(t)
	if n := w.puts(t) - before; n > len(w.want) {
		t.Fatalf("%d S3 PUTs for %d user-days over the stopped and the resumed run", n, len(w.want))
	}
}

func TestCompactionSpillsPastItsMemoryBudget(t *testing.T) {
	w := newWorld(t, 1)
	w.cleanup(t)
	w.publish(t, 40, 100)
	c := w.compactor(t, compaction.Options{MemoryBytes: 64 << 10})
	res, err := c.CloseDay(context.Background(), w.day, w.sinks(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Runs < 2 {
		t.Fatalf("results %+v: want one partition sorted in several runs", res)
	}
	if res[0].Heartbeats != 4000 || res[0].UserDays != 40 {
		t.Fatalf("compacted %d heartbeats of %d user-days, want 4000 of 40", res[0].Heartbeats, res[0].UserDays)
	}
	w.check(t)
}

func TestCloseRefusesADayNotOver(t *testing.T) {
	w := newWorld(t, 1)
	c := w.compactor(t, compaction.Options{})
	ctx := context.Background()
	for _, day := range []time.Time{time.Now().UTC(), time.Now().UTC().AddDate(0, 0, 1)} {
		_, err := c.CloseDay(ctx, day.Format(time.DateOnly))
		if !errors.Is(err, compaction.ErrDayNotOver) {
			t.Fatalf("closing %s: %v", day.Format(time.DateOnly), err)
		}
	}
	if _, err := c.Compact(ctx, w.day, 0, w.sinks(t)...); !errors.Is(err, compaction.ErrDayOpen) {
		t.Fatalf("compacting an open day: %v", err)
	}
	if _, err := c.CloseDay(ctx, "2026-13-01"); err == nil {
		t.Fatal("a bad date was accepted")
	}
}

func TestCompactionWaitsForThePartitionLock(t *testing.T) {
	w := newWorld(t, 1)
	ctx := context.Background()
	locks, err := w.js.KeyValue(ctx, w.sc.LocksBucket)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := shards.Acquire(ctx, locks, compaction.LockName(w.day, 0), "someone-else", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release(ctx)
	_, err = w.compactor(t, compaction.Options{}).CloseDay(ctx, w.day, w.sinks(t)...)
	if !errors.Is(err, shards.ErrHeld) {
		t.Fatalf("compacting a partition another holds: %v", err)
	}
}

// TestUndecodableMessageIsParkedPerSink: a message of the day that does
// not decode is parked in the dead-letter stream once for each sink, as
// the processors park it, and the rest of the partition is compacted.
func TestUndecodableMessageIsParkedPerSink(t *testing.T) {
	w := newWorld(t, 1)
	w.cleanup(t)
	w.publish(t, 5, 2)
	ctx := context.Background()
	if _, err := w.js.Publish(ctx, streams.Subject(w.day, 0), []byte("\xff not a batch")); err != nil {
		t.Fatal(err)
	}
	res, err := w.compactor(t, compaction.Options{}).CloseDay(ctx, w.day, w.sinks(t)...)
	if err != nil {
		t.Fatal(err)
	}
	w.check(t)
	dead := streams.NewDeadLetters(w.js, w.sc)
	for _, name := range []string{streams.DurableObjects, streams.DurableCache, streams.DurableBackup} {
		entries, err := dead.List(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Reason != streams.ReasonUndecodable || entries[0].Subject != streams.Subject(w.day, 0) {
			t.Fatalf("%s parked %+v, want the one undecodable message", name, entries)
		}
		if s := res[0].Sinks[name]; s.Parked != 1 || s.UserDays != 5 || s.Files != 5 {
			t.Fatalf("%s record: %+v", name, s)
		}
	}
}

// TestLateMessageIsLeftToTheLatePath: once a partition is recorded, a
// message of the day published after it is past the record's bound, and
// closing the day again neither reads it nor moves the bound: it is the
// late path's.
func TestLateMessageIsLeftToTheLatePath(t *testing.T) {
	w := newWorld(t, 1)
	w.cleanup(t)
	w.publish(t, 3, 2)
	c := w.compactor(t, compaction.Options{})
	ctx := context.Background()
	first, err := c.CloseDay(ctx, w.day, w.sinks(t)...)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for k, v := range w.want {
		before[k] = v
	}
	w.publish(t, 4, 3) // user 3 is new, users 0-2 get a heartbeat more
	stream, err := w.js.Stream(ctx, w.sc.Stream)
	if err != nil {
		t.Fatal(err)
	}
	late, err := stream.GetLastMsgForSubject(ctx, streams.Subject(w.day, 0))
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.CloseDay(ctx, w.day, w.sinks(t)...)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range second[0].Sinks {
		if !s.Skipped || s.Seq != first[0].Seq || s.Seq >= late.Sequence {
			t.Fatalf("%s after a late message at seq %d: %+v (first bound %d)", name, late.Sequence, s, first[0].Seq)
		}
	}
	w.want = before
	w.check(t) // the files the first close wrote, unchanged
}

// TestHeartbeatsPastTheDayFileLimitAreParked: a user-day over the sinks'
// limit is written up to it to S3 and the backup, and what is past it is
// parked in the dead-letter stream by each of them (the processors'
// handling of a *Rejected); the cache, a copy of S3, keeps no entry for
// it, so that reads take the day from S3.
func TestHeartbeatsPastTheDayFileLimitAreParked(t *testing.T) {
	w := newWorld(t, 1)
	w.cleanup(t)
	w.publish(t, 3, 5)
	sinks := compaction.Sinks(compaction.Stores{Primary: w.stores.Primary, Cache: w.stores.Cache, Backup: w.stores.Backup},
		compaction.SinkOptions{Limits: dayfile.Limits{MaxHeartbeats: 3}, Log: heartlogtest.Logger(t)})
	ctx := context.Background()
	res, err := w.compactor(t, compaction.Options{}).CloseDay(ctx, w.day, sinks...)
	if err != nil {
		t.Fatal(err)
	}
	dead := streams.NewDeadLetters(w.js, w.sc)
	for name, want := range map[string]int{streams.DurableObjects: 3, streams.DurableBackup: 3, streams.DurableCache: 0} {
		entries, err := dead.List(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if s := res[0].Sinks[name]; len(entries) != 2*want || s.Parked != 2*want || s.Files != want {
			t.Fatalf("%s: %d parked, record %+v; want %d files and 2 heartbeats parked of each", name, len(entries), s, want)
		}
	}
	for key := range w.hbs {
		for name, b := range map[string]objstore.Bucket{"S3": w.stores.Primary, "backup": w.stores.Backup} {
			data, _, err := b.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := dayfile.Decode(data); err != nil || len(got) != 3 {
				t.Fatalf("%s %s: %d heartbeats, %v; want the limit, 3 of 5", name, key, len(got), err)
			}
		}
		if _, ok, err := w.stores.Cache.Get(ctx, key); ok || err != nil {
			t.Fatalf("SSDB holds %s (%v): reads would not go to S3", key, err)
		}
	}
}

// TestRunClosesDueDaysAndFinishesStoppedOnes: the day closer compacts a
// day once it is over for longer than CloseDelay, and redoes a closed
// day's partitions that a stopped compaction left unrecorded; an open day
// not yet due is left open.
func TestRunClosesDueDaysAndFinishesStoppedOnes(t *testing.T) {
	w := newWorld(t, 2)
	w.cleanup(t)
	w.publish(t, 20, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The day began three days ago: with a 4-day delay it is not due.
	notYet := w.compactor(t, compaction.Options{CloseDelay: 96 * time.Hour, Interval: 50 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- notYet.Run(ctx, w.sinks(t)...) }()
	days := func() compaction.DayInfo {
		t.Helper()
		list, err := notYet.List(context.Background())
		if err != nil || len(list) != 1 {
			t.Fatalf("days: %v %v", list, err)
		}
		return list[0]
	}
	time.Sleep(300 * time.Millisecond) // several rounds: none may close the day
	if d := days(); d.Lifecycle.State != streams.DayOpen || d.Due {
		t.Fatalf("a day not due: %+v", d)
	}
	cancel()
	<-done

	// Stop a compaction after its first commit: the day is closed, a
	// partition unrecorded.
	stopping, stop := context.WithCancel(context.Background())
	c := w.compactor(t, compaction.Options{Partitions: 1, GroupUsers: 1, AfterCommit: func(string, uint32, string, int) { stop() }})
	if _, err := c.CloseDay(stopping, w.day, w.sinks(t)...); err == nil {
		t.Fatal("the stopped compaction reported success")
	}
	if d := days(); d.Lifecycle.State != streams.DayClosed || d.Sinks[streams.DurableObjects].Partitions == 2 {
		t.Fatalf("after the stop: %+v", d)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	closer := w.compactor(t, compaction.Options{CloseDelay: time.Hour, Interval: 50 * time.Millisecond})
	go func() { done <- closer.Run(ctx, w.sinks(t)...) }()
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		d := days()
		for _, name := range []string{streams.DurableObjects, streams.DurableCache, streams.DurableBackup} {
			if d.Sinks[name].Partitions != 2 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the closer did not finish the day: %+v", days())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.check(t)
}

// TestLatePathDoesNotTrustAStaleView: the late path passes a message of
// an over day as open only once the server confirms the day is open; a
// view that missed the close (a stalled watch) makes it hold the message,
// not drop it. A record decides whatever the lifecycle says.
func TestLatePathDoesNotTrustAStaleView(t *testing.T) {
	w := newWorld(t, 1)
	ctx := context.Background()
	view, err := streams.WatchDays(ctx, w.js, w.sc)
	if err != nil {
		t.Fatal(err)
	}
	admit := compaction.LatePath(view, streams.DurableObjects)
	if got := admit(w.day, 0, 10); got != processors.Pass {
		t.Fatalf("open day: %v, want Pass", got)
	}
	today := time.Now().UTC().Format("20060102")
	_ = view.Stop() // the watch stalls: nothing it misses reaches the view
	kv, err := w.js.KeyValue(ctx, w.sc.ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.PutLifecycle(ctx, kv, w.day, streams.Lifecycle{State: streams.DayClosed}, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the confirmation's cache
	if got := admit(w.day, 0, 11); got != processors.Hold {
		t.Fatalf("closed day behind a stale view: %v, want Hold", got)
	}
	if got := admit(today, 0, 12); got != processors.Pass {
		t.Fatalf("today (cannot be closed): %v, want Pass", got)
	}
	fresh, err := streams.WatchDays(ctx, w.js, w.sc)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Stop()
	if _, err := streams.PutCompaction(ctx, kv, w.day, 0, streams.DurableObjects, streams.Compaction{Seq: 20}); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, streams.LifecycleKey(w.day)); err != nil { // reopened by hand
		t.Fatal(err)
	}
	admit = compaction.LatePath(fresh, streams.DurableObjects)
	if !heartlogtest.Eventually(5*time.Second, func() bool { return admit(w.day, 0, 21) == processors.Admit }) {
		t.Fatalf("past the record of a reopened day: %v, want Admit", admit(w.day, 0, 21))
	}
	if got := admit(w.day, 0, 20); got != processors.Pass {
		t.Fatalf("at the record: %v, want Pass", got)
	}
}

// TestCloserHealsALateConsumerThatMissedADay: a late consumer whose
// filter lost a closed day (a filter sync that lost a race) never sees
// that day's late heartbeats; the closer notices, gives the filter its day
// back and compacts the day again, so the late heartbeat reaches the
// files all the same.
func TestCloserHealsALateConsumerThatMissedADay(t *testing.T) {
	w := newWorld(t, 1)
	w.cleanup(t)
	w.publish(t, 3, 2)
	ctx := context.Background()
	c := w.compactor(t, compaction.Options{Interval: 50 * time.Millisecond})
	if _, err := c.CloseDay(ctx, w.day, w.sinks(t)...); err != nil {
		t.Fatal(err)
	}
	for _, proc := range []string{streams.DurableObjects, streams.DurableCache, streams.DurableBackup} {
		ok, err := w.lateReads(proc)
		if err != nil || !ok {
			t.Fatalf("after close, %s's late consumer does not read the day: %v", proc, err)
		}
	}
	if _, err := streams.EnsureLateConsumers(ctx, w.js, w.sc, streams.DurableCache, nil); err != nil { // the lost race
		t.Fatal(err)
	}
	w.publish(t, 4, 3) // late heartbeats nobody's late path delivers to cache
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx, w.sinks(t)...) }()
	// Every file comes to hold the late heartbeats too (the backup with a
	// new version where they changed a file: a late heartbeat does).
	var last string
	ok := heartlogtest.Eventually(30*time.Second, func() bool {
		for key, want := range w.want {
			if got, found, err := w.stores.Cache.Get(ctx, key); err != nil || !found || !bytes.Equal(got, want) {
				last = fmt.Sprintf("SSDB %s: %d bytes, found %t, %v; want %d bytes", key, len(got), found, err, len(want))
				return false
			}
			if got, _, err := w.stores.Primary.Get(ctx, key); err != nil || !bytes.Equal(got, want) {
				last = fmt.Sprintf("S3 %s: %d bytes, %v; want %d bytes", key, len(got), err, len(want))
				return false
			}
			if got, _, err := w.stores.Backup.Get(ctx, key); err != nil || !bytes.Equal(got, want) {
				last = fmt.Sprintf("backup %s: %d bytes, %v; want %d bytes", key, len(got), err, len(want))
				return false
			}
		}
		return true
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("the closer did not heal the cache's late consumer: %s", last)
	}
	if read, err := w.lateReads(streams.DurableCache); err != nil || !read {
		t.Fatalf("the cache's late consumer still does not read the day: %v", err)
	}
}

// lateReads reports whether processor's late consumer of partition 0
// reads the world's day.
func (w *world) lateReads(processor string) (bool, error) {
	cons, err := w.js.Consumer(context.Background(), w.sc.Stream, streams.PartitionDurable(processor, 0))
	if err != nil {
		return false, err
	}
	return streams.LateReads(cons.CachedInfo().Config, 0, w.day), nil
}

// TestRunClosesDueDaysTogether: with several days due (an import of
// years, a closer stopped for a while), the closer marks them all closed
// before it compacts the first, so that they share one filter sync and one
// Settle instead of paying one each; and every day is compacted whole.
func TestRunClosesDueDaysTogether(t *testing.T) {
	w := newWorld(t, 2)
	w.cleanup(t)
	first := w.at
	var days []string
	for i := range 3 {
		w.at = first.AddDate(0, 0, -i)
		w.day = w.at.Format("20060102")
		days = append(days, w.day)
		w.publish(t, 5, 2)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	closer := w.compactor(t, compaction.Options{CloseDelay: time.Hour, Interval: 50 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- closer.Run(ctx, w.sinks(t)...) }()
	if !heartlogtest.Eventually(60*time.Second, func() bool {
		list, err := closer.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		compacted := 0
		for _, d := range list {
			if d.Sinks[streams.DurableObjects].Partitions == 2 && d.Sinks[streams.DurableCache].Partitions == 2 && d.Sinks[streams.DurableBackup].Partitions == 2 {
				compacted++
			}
		}
		return compacted == len(days)
	}) {
		t.Fatalf("the closer did not compact the %d days", len(days))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.check(t)

	// In the shards bucket, every day's close comes before any compaction
	// record.
	kv, err := w.js.KeyValue(context.Background(), w.sc.ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
	var lastClose, firstRecord uint64
	for _, day := range days {
		e, err := kv.Get(context.Background(), streams.LifecycleKey(day))
		if err != nil {
			t.Fatalf("lifecycle of %s: %v", day, err)
		}
		lastClose = max(lastClose, e.Revision())
		for p := range w.sc.Partitions {
			for _, name := range []string{streams.DurableObjects, streams.DurableCache, streams.DurableBackup} {
				r, err := kv.Get(context.Background(), streams.CompactionKey(day, p, name))
				if err != nil {
					t.Fatalf("record of %s p%d %s: %v", day, p, name, err)
				}
				if firstRecord == 0 || r.Revision() < firstRecord {
					firstRecord = r.Revision()
				}
			}
		}
	}
	if lastClose > firstRecord {
		t.Errorf("a day was closed (revision %d) after another's compaction was recorded (revision %d): the days were closed one at a time", lastClose, firstRecord)
	}
}
