package dayfiles_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	"heartlog/internal/faults"
	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/catalog"
	"heartlog/processors/compaction"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
	"heartlog/users"
)

// world is a service with day-file processors and a few users.
type world struct {
	svc    *heartlogtest.Service
	stores heartlogtest.Stores
	users  []users.User
	keys   []string
}

func newWorld(t *testing.T, nUsers int) *world {
	t.Helper()
	w := &world{svc: heartlogtest.Start(t, heartlogtest.Options{}), stores: heartlogtest.OpenStores(t)}
	for i := range nUsers {
		u, k := w.svc.CreateUser(t, fmt.Sprintf("user%d", i), "")
		w.users = append(w.users, u)
		w.keys = append(w.keys, k)
	}
	return w
}

// send posts heartbeats for user i at the given times and returns them as
// the server stored them (ids from the response).
func (w *world) send(t *testing.T, i int, times ...time.Time) {
	t.Helper()
	var items []string
	for j, at := range times {
		items = append(items, fmt.Sprintf(`{"entity":"/src/f%d.go","type":"file","time":%d.%03d,"project":"p","language":"Go"}`, j, at.Unix(), at.Nanosecond()/1e6))
	}
	resp, body := w.svc.Post(t, "/api/v1/users/current/heartbeats.bulk", w.keys[i], []byte("["+join(items)+"]"))
	if resp.StatusCode != 201 {
		t.Fatalf("ingest: %d %s", resp.StatusCode, body)
	}
}

func join(items []string) string {
	var b bytes.Buffer
	for i, s := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}

// expected is the day file each user-day must hold: every heartbeat the
// stream has for it, encoded by the format package.
func (w *world) expected(t *testing.T) map[string][]byte {
	t.Helper()
	byKey := map[string][]*heartlogv1.Heartbeat{}
	ctx := context.Background()
	s, err := w.svc.JS.Stream(ctx, w.svc.Streams.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		b, err := streams.DecodeBatch(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, hb := range b.Heartbeats {
			k := dayfile.Key(b.ObjectPrefixes[hb.UserId], hb.UserId, heartbeat.Day(hb))
			byKey[k] = append(byKey[k], hb)
		}
	}
	out := map[string][]byte{}
	for k, hbs := range byKey {
		merged, _ := dayfile.Merge(nil, hbs)
		data, err := dayfile.Encode(merged)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = data
	}
	return out
}

type reader func(ctx context.Context, key string) ([]byte, error)

func (w *world) readers() map[string]reader {
	return map[string]reader{
		"objects": func(ctx context.Context, k string) ([]byte, error) {
			d, _, err := w.stores.Primary.Get(ctx, k)
			return d, err
		},
		"backup": func(ctx context.Context, k string) ([]byte, error) {
			d, _, err := w.stores.Backup.Get(ctx, k)
			return d, err
		},
		"cache": func(ctx context.Context, k string) ([]byte, error) {
			d, ok, err := w.stores.Cache.Get(ctx, k)
			if err == nil && !ok {
				err = objstore.ErrNotFound
			}
			return d, err
		},
	}
}

// waitFiles waits until every store holds exactly the expected bytes.
func (w *world) waitFiles(t *testing.T, want map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	for name, read := range w.readers() {
		var last string
		ok := heartlogtest.Eventually(60*time.Second, func() bool {
			for k, data := range want {
				got, err := read(ctx, k)
				if err != nil || !bytes.Equal(got, data) {
					last = fmt.Sprintf("%s: %d bytes, err %v; want %d bytes", k, len(got), err, len(data))
					return false
				}
			}
			return true
		})
		if !ok {
			t.Fatalf("%s store never matched the stream: %s", name, last)
		}
	}
}

// closeDays closes the days d days ago (heartlog days close): what was sent
// for them is compacted, and what is sent later is the late path's.
func (w *world) closeDays(t *testing.T, ds ...int) {
	t.Helper()
	for _, d := range ds {
		w.svc.CloseDay(t, day(d, 0), &w.stores)
	}
}

func day(d int, h int) time.Time {
	return time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -d).Add(time.Duration(h) * time.Hour)
}

func TestDayFilesHoldExactlyTheStream(t *testing.T) {
	w := newWorld(t, 3)
	w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	for i := range w.users {
		w.send(t, i, day(1, 1), day(1, 2), day(2, 5))
		w.send(t, i, day(1, 1)) // a resend: no duplicate line
	}
	want := w.expected(t)
	if len(want) != 6 {
		t.Fatalf("%d user-days, want 6", len(want))
	}
	w.closeDays(t, 1, 2)
	w.waitFiles(t, want)
	for k, data := range want {
		hbs, err := dayfile.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(hbs); n != 1 && n != 2 {
			t.Fatalf("%s has %d heartbeats: duplicates kept", k, n)
		}
	}
}

func TestReplayIsByteIdenticalAndAddsNoVersion(t *testing.T) {
	w := newWorld(t, 2)
	stop := w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	for i := range w.users {
		w.send(t, i, day(1, 3), day(3, 4))
	}
	w.closeDays(t, 1, 3)
	w.send(t, 0, day(1, 5)) // late: merged by the late path
	want := w.expected(t)
	w.waitFiles(t, want)
	stop()
	ctx := context.Background()
	versions := func() map[string]int {
		out := map[string]int{}
		for k := range want {
			v, err := w.stores.Backup.Versions(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			out[k] = len(v)
		}
		return out
	}
	etags := func() map[string]string {
		out := map[string]string{}
		for k := range want {
			_, etag, err := w.stores.Primary.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			out[k] = etag
		}
		return out
	}
	before, beforeTags := versions(), etags()
	days, err := streams.WatchDays(ctx, w.svc.JS, w.svc.Streams)
	if err != nil {
		t.Fatal(err)
	}
	defer days.Stop()
	for name, sink := range w.stores.Sinks(t) {
		for range 2 {
			o := processors.ReplayOptions{Admit: compaction.ClosedDays(days)}
			if err := processors.Replay(ctx, w.svc.JS, w.svc.Streams, sink, o); err != nil {
				t.Fatalf("replay %s: %v", name, err)
			}
		}
	}
	// replay --day: the records go, every partition is compacted again.
	c := w.svc.Compactor(t, compaction.Options{})
	for _, name := range catalog.DayFiles() {
		for _, d := range []int{1, 3} {
			if n, err := c.Forget(ctx, day(d, 0).Format(time.DateOnly), name); err != nil || n != int(w.svc.Streams.Partitions) {
				t.Fatalf("forget %s: %d records, %v", name, n, err)
			}
		}
	}
	w.closeDays(t, 1, 3)
	w.waitFiles(t, want)
	if after := versions(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("backup versions %v after replaying twice, were %v: an unchanged file was written again", after, before)
	}
	if after := etags(); fmt.Sprint(after) != fmt.Sprint(beforeTags) {
		t.Fatalf("ETags changed by replay: %v -> %v", beforeTags, after)
	}
}

func TestLateHeartbeatMakesABackupVersion(t *testing.T) {
	w := newWorld(t, 1)
	w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	old := day(6, 9)
	w.send(t, 0, old)
	w.closeDays(t, 6)
	first := w.expected(t)
	w.waitFiles(t, first)
	var key string
	for k := range first {
		key = k
	}
	w.send(t, 0, old.Add(30*time.Minute)) // from wakatime-cli's offline queue, days later
	second := w.expected(t)
	if bytes.Equal(first[key], second[key]) {
		t.Fatal("the late heartbeat did not change the expected day file")
	}
	w.waitFiles(t, second)
	ctx := context.Background()
	versions, err := w.stores.Backup.Versions(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 2 || !versions[0].IsLatest {
		t.Fatalf("backup of %s has versions %+v, want 2, newest first", key, versions)
	}
	prev, err := w.stores.Backup.GetVersion(ctx, key, versions[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(prev, first[key]) {
		t.Fatal("the previous backup version is not the old day file")
	}
}

func TestTwoInstancesAndSlowDownLoseNothing(t *testing.T) {
	w := newWorld(t, 8)
	st := heartlogtest.OpenStores(t)
	flaky := faults.NewProxy(t, mustEnv(t, "HEARTLOG_S3_ENDPOINT"), faults.Options{SlowDownRate: 0.3})
	st.Primary = heartlogtest.Bucket(t, "HEARTLOG_S3_", flaky.URL)
	w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{Stores: &st})
	w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{Stores: &st}) // a second process
	w.closeDays(t, 1, 2, 3)                                          // empty: every heartbeat below is late
	for round := range 5 {
		for i := range w.users {
			w.send(t, i, day(1+round%3, i), day(1+round%3, i).Add(time.Minute))
		}
	}
	w.waitFiles(t, w.expected(t))
	if flaky.Stats().SlowDowns == 0 {
		t.Fatal("the proxy injected no SlowDown: the test proved nothing about retries")
	}
}

func TestReplayRestoresWipedCacheAndBackup(t *testing.T) {
	w := newWorld(t, 2)
	stop := w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	for i := range w.users {
		w.send(t, i, day(1, 7), day(2, 7))
	}
	w.closeDays(t, 1, 2)
	want := w.expected(t)
	w.waitFiles(t, want)
	stop()
	ctx := context.Background()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
		if err := w.stores.Backup.DeleteAllVersions(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(keys)
	if err := w.stores.Cache.Delete(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.stores.Backup.Get(ctx, keys[0]); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("backup not emptied: %v", err)
	}
	sinks := w.stores.Sinks(t)
	days, err := streams.WatchDays(ctx, w.svc.JS, w.svc.Streams)
	if err != nil {
		t.Fatal(err)
	}
	defer days.Stop()
	for _, name := range []string{streams.DurableCache, streams.DurableBackup} {
		o := processors.ReplayOptions{Admit: compaction.ClosedDays(days)}
		if err := processors.Replay(ctx, w.svc.JS, w.svc.Streams, sinks[name], o); err != nil {
			t.Fatal(err)
		}
	}
	w.waitFiles(t, want)
}

func TestCorruptFileIsReportedAndOthersGoOn(t *testing.T) {
	w := newWorld(t, 2)
	ctx := context.Background()
	w.closeDays(t, 1) // empty: what follows is late
	// A truncated file where user 0's day file will go.
	w.send(t, 0, day(1, 4))
	victim := ""
	for k := range w.expected(t) {
		victim = k
	}
	if _, err := w.stores.Primary.Put(ctx, victim, []byte("\x1f\x8b\x08\x00garbage")); err != nil {
		t.Fatal(err)
	}
	w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{Names: []string{streams.DurableObjects}})
	w.send(t, 1, day(1, 4))
	want := w.expected(t)
	ok := heartlogtest.Eventually(60*time.Second, func() bool {
		for k, data := range want {
			got, _, err := w.stores.Primary.Get(ctx, k)
			if err != nil || !bytes.Equal(got, data) {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatal("day files were not written after a corrupt file met the processor")
	}
	quarantined, err := objstore.ListAll(ctx, w.stores.Primary, "quarantine/"+victim)
	if err != nil || len(quarantined) != 1 {
		t.Fatalf("corrupt file not quarantined: %v %v", quarantined, err)
	}
	for _, k := range quarantined {
		_ = w.stores.Primary.Delete(ctx, k)
	}
}

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run with `make test`", name)
	}
	return v
}

// TestOutsideWriteIsNotOverwritten: the objects and backup sinks remember
// the files they wrote and merge the next change without reading them
// again. When someone else has written a file since (a replay, another
// instance after a takeover), that memory is stale; the conditional write
// must be refused and the file read again, so the outside change survives.
func TestOutsideWriteIsNotOverwritten(t *testing.T) {
	w := newWorld(t, 1)
	stop := w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	ctx := context.Background()
	w.closeDays(t, 1) // empty: what follows is late
	w.send(t, 0, day(1, 9))
	first := w.expected(t)
	w.waitFiles(t, first)

	// The outside writer adds a heartbeat the processors never saw.
	buckets := map[string]objstore.Bucket{"primary": w.stores.Primary, "backup": w.stores.Backup}
	var key string
	for k := range first {
		key = k
	}
	hbs, err := dayfile.Decode(first[key])
	if err != nil {
		t.Fatal(err)
	}
	foreign := proto.Clone(hbs[0]).(*heartlogv1.Heartbeat)
	foreign.Id, foreign.Entity, foreign.Time = "f0reign", "/src/outside.go", foreign.Time+60
	outside, _ := dayfile.Merge(hbs, []*heartlogv1.Heartbeat{foreign})
	for name, b := range buckets {
		data, err := dayfile.Encode(outside)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(ctx, key, data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	w.send(t, 0, day(1, 10))
	w.expectWithOutside(t, buckets, key, foreign.Id)

	// Restarted processors remember nothing: they read the file first.
	stop()
	w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	w.send(t, 0, day(1, 11))
	w.expectWithOutside(t, buckets, key, foreign.Id)
}

// expectWithOutside waits until key holds every streamed heartbeat of its
// user-day and the outside one, in each bucket.
func (w *world) expectWithOutside(t *testing.T, buckets map[string]objstore.Bucket, key, outside string) {
	t.Helper()
	ctx := context.Background()
	streamed := map[string]bool{}
	for _, hb := range mustDecode(t, w.expected(t)[key]) {
		streamed[hb.Id] = true
	}
	for name, b := range buckets {
		ok := heartlogtest.Eventually(30*time.Second, func() bool {
			data, _, err := b.Get(ctx, key)
			return err == nil && len(mustDecode(t, data)) == len(streamed)+1
		})
		data, _, _ := b.Get(ctx, key)
		got := mustDecode(t, data)
		if !ok {
			t.Fatalf("%s: %d heartbeats in %s, want the %d streamed and the outside one", name, len(got), key, len(streamed))
		}
		for _, hb := range got {
			if !streamed[hb.Id] && hb.Id != outside {
				t.Errorf("%s: unexpected heartbeat %s", name, hb.Id)
			}
		}
	}
}

func mustDecode(t *testing.T, data []byte) []*heartlogv1.Heartbeat {
	t.Helper()
	hbs, err := dayfile.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return hbs
}

// TestOpenDayWritesNoDayFile: while a day is open its heartbeats go to
// Postgres only; the day-file processors pass them over (the day's
// compaction writes them at close), so S3, the backup and SSDB get no
// request for them at all.
func TestOpenDayWritesNoDayFile(t *testing.T) {
	w := newWorld(t, 3)
	st := heartlogtest.OpenStores(t)
	primary := faults.NewProxy(t, mustEnv(t, "HEARTLOG_S3_ENDPOINT"), faults.Options{})
	backup := faults.NewProxy(t, mustEnv(t, "HEARTLOG_BACKUP_S3_ENDPOINT"), faults.Options{})
	st.Primary = heartlogtest.Bucket(t, "HEARTLOG_S3_", primary.URL)
	st.Backup = heartlogtest.Bucket(t, "HEARTLOG_BACKUP_S3_", backup.URL)
	w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{Stores: &st})
	before := []faults.Stats{primary.Stats(), backup.Stats()} // the sinks' start-up probes
	for i := range w.users {
		w.send(t, i, day(0, 0), day(1, 3), day(1, 4))
	}
	want := w.expected(t)
	heartlogtest.WaitAcked(t, w.svc, catalog.DayFiles()...)
	for i, p := range []*faults.Proxy{primary, backup} {
		if got := p.Stats().Requests - before[i].Requests; got != 0 {
			t.Errorf("%d requests to bucket %d for open days, want none", got, i)
		}
	}
	ctx := context.Background()
	for k := range want {
		if _, ok, err := w.stores.Cache.Get(ctx, k); ok || err != nil {
			t.Errorf("cache holds %s of an open day (err %v)", k, err)
		}
	}
	// Closed, yesterday's files appear; today's stay unwritten.
	w.svc.CloseDay(t, day(1, 0), &st)
	yesterday := map[string][]byte{}
	for k, data := range want {
		if strings.HasSuffix(k, day(1, 0).Format(time.DateOnly)+".ndjson.gz") {
			yesterday[k] = data
		} else if _, _, err := w.stores.Primary.Get(ctx, k); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("today's %s in S3: %v", k, err)
		}
	}
	if len(yesterday) != len(w.users) {
		t.Fatalf("%d user-days of yesterday, want %d", len(yesterday), len(w.users))
	}
	w.waitFiles(t, yesterday)
}
