package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"heartlog/api"
	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
	"heartlog/stats"
	"heartlog/streams"
	"heartlog/users"
)

const statusBarRoute = "/api/v1/users/current/statusbar/today"

// postAt sends one heartbeat of project p at each time, in one request.
func postAt(t *testing.T, svc *heartlogtest.Service, key, p string, at ...time.Time) {
	t.Helper()
	items := make([]string, len(at))
	for i, a := range at {
		items[i] = fmt.Sprintf(`{"entity":"/src/main.go","type":"file","time":%.6f,"project":%q,"language":"Go"}`, float64(a.UnixMicro())/1e6, p)
	}
	if resp, b := svc.Post(t, bulk, key, []byte("["+strings.Join(items, ",")+"]")); resp.StatusCode != 201 {
		t.Errorf("post: %d %s", resp.StatusCode, b)
	}
}

// watcher reads one WatchToday stream and keeps the messages it got.
type watcher struct {
	mu   sync.Mutex
	msgs []*heartlogv1.WatchTodayResponse
	err  error
	done chan struct{}
}

func watch(t *testing.T, svc *heartlogtest.Service, key string, read bool) (*watcher, *connect.ServerStreamForClient[heartlogv1.WatchTodayResponse]) {
	t.Helper()
	// A client of its own: one connection per stream, as browsers' are.
	// Uncompressed, so that the bytes on the wire are the messages' own.
	client := heartlogv1connect.NewStatsServiceClient(&http.Client{Transport: &http.Transport{}}, svc.URL,
		connect.WithAcceptCompression("gzip", nil, nil))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req := connect.NewRequest(&heartlogv1.WatchTodayRequest{})
	req.Header().Set("Authorization", "Bearer "+key)
	stream, err := client.WatchToday(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{done: make(chan struct{})}
	if read {
		go w.read(stream)
	}
	return w, stream
}

func (w *watcher) read(stream *connect.ServerStreamForClient[heartlogv1.WatchTodayResponse]) {
	defer close(w.done)
	for stream.Receive() {
		w.mu.Lock()
		w.msgs = append(w.msgs, stream.Msg())
		w.mu.Unlock()
	}
	w.mu.Lock()
	w.err = stream.Err()
	w.mu.Unlock()
}

// await waits for a message that satisfies ok.
func (w *watcher) await(t *testing.T, what string, ok func(*heartlogv1.WatchTodayResponse) bool) {
	t.Helper()
	if !heartlogtest.Eventually(20*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.msgs) > 0 && ok(w.msgs[len(w.msgs)-1])
	}) {
		w.mu.Lock()
		defer w.mu.Unlock()
		t.Fatalf("no message %s; %d messages, stream error %v", what, len(w.msgs), w.err)
	}
}

func (w *watcher) all() []*heartlogv1.WatchTodayResponse {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*heartlogv1.WatchTodayResponse(nil), w.msgs...)
}

func lastAt(at time.Time) func(*heartlogv1.WatchTodayResponse) bool {
	want := float64(at.UnixMicro()) / 1e6
	// Within a millisecond: a heartbeat's time is float seconds.
	return func(m *heartlogv1.WatchTodayResponse) bool { return math.Abs(m.LastHeartbeatAt-want) < 1e-3 }
}

func onePartition(c *streams.Config) { c.Partitions = 1 }

// Two streams of one user both get the update after a heartbeat; the
// heartbeats of another user of the same partition never reach them.
func TestWatchTodayTwoClientsOneUser(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{Stream: onePartition})
	zone := heartlogtest.MiddayZone(time.Now())
	alice, aliceKey := svc.CreateUser(t, "alice", "")
	bob, bobKey := svc.CreateUser(t, "bob", "")
	svc.SetZone(t, alice.ID, aliceKey, zone, 0)
	svc.SetZone(t, bob.ID, bobKey, zone, 0)
	one, _ := watch(t, svc, aliceKey, true)
	two, _ := watch(t, svc, aliceKey, true)
	theirs, _ := watch(t, svc, bobKey, true)
	empty := func(m *heartlogv1.WatchTodayResponse) bool {
		return m.LastHeartbeatAt == 0 && m.Today.GrandTotal.TotalSeconds == 0
	}
	one.await(t, "at once", empty)
	two.await(t, "at once", empty)

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	postAt(t, svc, bobKey, "bobs", base, base.Add(5*time.Minute))
	theirs.await(t, "with bob's heartbeats", lastAt(base.Add(5*time.Minute)))
	postAt(t, svc, aliceKey, "alices", base.Add(time.Minute), base.Add(3*time.Minute))
	for _, w := range []*watcher{one, two} {
		w.await(t, "with alice's heartbeats", func(m *heartlogv1.WatchTodayResponse) bool {
			return lastAt(base.Add(3*time.Minute))(m) && m.Today.GrandTotal.TotalSeconds == 120
		})
		for _, m := range w.all() {
			for _, p := range m.Today.Breakdown.Projects {
				if p.Name != "alices" {
					t.Fatalf("alice's stream shows project %q: %v", p.Name, m)
				}
			}
		}
	}
}

// A client that never reads its stream holds up neither ingest nor the
// other client, which sees the newest state; when it reads at last it gets
// the newest state too, not a queue of old ones.
func TestWatchTodaySlowClient(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, key := svc.CreateUser(t, "alice", "")
	svc.SetZone(t, alice.ID, key, heartlogtest.MiddayZone(time.Now()), 0)
	_, stuck := watch(t, svc, key, false)
	reader, _ := watch(t, svc, key, true)
	reader.await(t, "at once", func(*heartlogv1.WatchTodayResponse) bool { return true })

	// Each update names a new 900-byte project: the stream's messages grow
	// to hundreds of KB, far past what the socket buffers of the stuck
	// client take.
	base := time.Now().Add(-time.Hour)
	var last time.Time
	for i := range 200 {
		last = base.Add(time.Duration(i) * 10 * time.Second).Truncate(time.Millisecond)
		postAt(t, svc, key, fmt.Sprintf("%03d-%s", i, strings.Repeat("p", 900)), last)
	}
	newest := func(m *heartlogv1.WatchTodayResponse) bool {
		return lastAt(last)(m) && m.Today.GrandTotal.TotalSeconds == 1990 && len(m.Today.Breakdown.Projects) == 200
	}
	reader.await(t, "with the newest heartbeat", newest)
	late := &watcher{done: make(chan struct{})}
	go late.read(stuck)
	late.await(t, "with the newest heartbeat, once read", newest)
	t.Logf("the stuck client got %d messages", len(late.all()))
	if n := len(late.all()); n > 150 {
		t.Errorf("the stuck client got %d messages for 200 updates: they were queued, not coalesced", n)
	}
}

// The status bar of the live state is the one computed afresh, in the
// WakaTime route's JSON and over Connect, after heartbeats out of order
// and a duplicate, and after the user's time zone and timeout change.
func TestStatusBarLive(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, key := svc.CreateUser(t, "alice", "")
	alice = svc.SetZone(t, alice.ID, key, heartlogtest.MiddayZone(time.Now()), 0)
	liveReads := func() float64 {
		return heartlogtest.MetricValue(t, "heartlog_api_statusbar_reads_total", map[string]string{"source": "live"})
	}
	before := liveReads()
	status, _ := get(t, svc, statusBarRoute, key) // activates alice
	if status != 200 {
		t.Fatalf("status bar: %d", status)
	}
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	postAt(t, svc, key, "x", base.Add(10*time.Minute), base)
	postAt(t, svc, key, "y", base.Add(4*time.Minute), base.Add(20*time.Minute))
	postAt(t, svc, key, "x", base.Add(10*time.Minute)) // a duplicate
	postAt(t, svc, key, "y", base.Add(2*time.Minute), base.Add(30*time.Minute))
	svc.WaitCount(t, 6, "SELECT count(*) FROM heartbeats WHERE user_id = $1", alice.ID)
	sameAsComputed(t, svc, alice, key)
	if liveReads() <= before {
		t.Fatal("no status bar was served from the live state")
	}

	// Another zone and a 5-minute timeout: the next read is of them.
	alice = svc.SetZone(t, alice.ID, key, heartlogtest.MiddayZone(time.Now().Add(3*time.Hour)), 5)
	sameAsComputed(t, svc, alice, key)
}

// sameAsComputed waits until the route's data and the Connect status bar
// equal the status bar computed afresh from the read path.
func sameAsComputed(t *testing.T, svc *heartlogtest.Service, u users.User, key string) {
	t.Helper()
	loc, err := time.LoadLocation(u.TimeZone)
	if err != nil {
		t.Fatal(err)
	}
	client := heartlogv1connect.NewStatsServiceClient(http.DefaultClient, svc.URL)
	var got, want any
	if !heartlogtest.Eventually(20*time.Second, func() bool {
		d := stats.DateOf(time.Now(), loc)
		hbs, err := svc.Reader.Heartbeats(context.Background(), u, stats.UTCDays(d, d, loc))
		if err != nil {
			t.Fatal(err)
		}
		days, err := stats.Summarize(hbs, stats.Options{Location: loc, Timeout: u.TimeoutMinutes, Start: d, End: d, OmitEntities: true})
		if err != nil {
			t.Fatal(err)
		}
		want = roundTrip(t, days[0])
		_, body := get(t, svc, statusBarRoute, key)
		got = body["data"]
		if !reflect.DeepEqual(got, want) {
			return false
		}
		req := connect.NewRequest(&heartlogv1.GetStatusBarRequest{})
		req.Header().Set("Authorization", "Bearer "+key)
		resp, err := client.GetStatusBar(context.Background(), req)
		return err == nil && resp.Msg.Today.GrandTotal.TotalSeconds == days[0].GrandTotal.Total.Seconds() &&
			resp.Msg.Today.Date == d.String()
	}) {
		t.Fatalf("status bar\n%v\nwant (computed)\n%v", got, want)
	}
}

// roundTrip is v as a decoded JSON document.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// A server shutdown ends the open streams at once rather than waiting out
// its grace, and says so with unavailable, on which clients reconnect.
func TestWatchTodayEndsAtShutdown(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	_, key := svc.CreateUser(t, "alice", "")
	w, _ := watch(t, svc, key, true)
	w.await(t, "at once", func(*heartlogv1.WatchTodayResponse) bool { return true })
	if err := svc.CloseAPI(); err != nil {
		t.Fatalf("shutdown with a stream open: %v", err)
	}
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream is still open after the shutdown")
	}
	if connect.CodeOf(w.err) != connect.CodeUnavailable {
		t.Fatalf("stream ended with %v, want unavailable", w.err)
	}
}

// WatchToday authenticates like the other StatsService methods.
func TestWatchTodayNeedsKey(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	client := heartlogv1connect.NewStatsServiceClient(http.DefaultClient, svc.URL)
	stream, err := client.WatchToday(context.Background(), connect.NewRequest(&heartlogv1.WatchTodayRequest{}))
	if err == nil {
		for stream.Receive() {
			t.Fatal("a message without a key")
		}
		err = stream.Err()
	}
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnauthenticated {
		t.Fatalf("no key: %v, want unauthenticated", err)
	}
}

// The dashboard watches with its session cookie (Connect JSON streams, as
// connect-web sends them); signing out ends the stream at its next update.
func TestWatchTodayBySessionEndsAtSignOut(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, key := svc.CreateUser(t, "alice", "")
	svc.SetZone(t, alice.ID, key, heartlogtest.MiddayZone(time.Now()), 0)
	_, _, cookie := signIn(t, svc, keyBody(key), nil)
	if cookie == nil {
		t.Fatal("no session cookie")
	}
	client := heartlogv1connect.NewStatsServiceClient(&http.Client{Transport: &http.Transport{}}, svc.URL, connect.WithProtoJSON())
	req := connect.NewRequest(&heartlogv1.WatchTodayRequest{})
	pageHeaders(svc, cookie)(req.Header())
	stream, err := client.WatchToday(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{done: make(chan struct{})}
	go w.read(stream)
	w.await(t, "at once", func(*heartlogv1.WatchTodayResponse) bool { return true })
	if resp, b := rawRequest(t, svc, http.MethodDelete, sessionPath, "", pageHeaders(svc, cookie)); resp.StatusCode/100 != 2 {
		t.Fatalf("sign out: %d %s", resp.StatusCode, b)
	}
	postAt(t, svc, key, "x", time.Now().Add(-time.Minute))
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream outlived its session")
	}
	if connect.CodeOf(w.err) != connect.CodeUnauthenticated {
		t.Fatalf("stream ended with %v, want unauthenticated", w.err)
	}
}

// TestWatchTodayIsCappedPerUser: one user holds at most MaxWatches live
// streams; the next is refused ResourceExhausted, another user's is not,
// and once one closes a new one is accepted.
func TestWatchTodayIsCappedPerUser(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{API: func(o *api.Options) { o.MaxWatches = 2 }})
	_, aliceKey := svc.CreateUser(t, "alice", "")
	_, bobKey := svc.CreateUser(t, "bob", "")
	first, firstStream := watch(t, svc, aliceKey, true)
	second, _ := watch(t, svc, aliceKey, true)
	for _, w := range []*watcher{first, second} {
		w.await(t, "at once", func(*heartlogv1.WatchTodayResponse) bool { return true })
	}
	third, _ := watch(t, svc, aliceKey, true)
	<-third.done
	if connect.CodeOf(third.err) != connect.CodeResourceExhausted || !strings.Contains(third.err.Error(), "close one") {
		t.Fatalf("a third stream of alice: %v, want resource exhausted", third.err)
	}
	bobs, _ := watch(t, svc, bobKey, true)
	bobs.await(t, "for bob, under his own cap", func(*heartlogv1.WatchTodayResponse) bool { return true })

	_ = firstStream.Close()
	<-first.done
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		again, _ := watch(t, svc, aliceKey, true)
		if !heartlogtest.Eventually(2*time.Second, func() bool { return len(again.all()) > 0 }) {
			return false
		}
		return true
	}) {
		t.Fatal("no stream accepted once one of alice's closed")
	}
}
