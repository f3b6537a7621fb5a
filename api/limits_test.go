package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"heartlog/api"
	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
	"heartlog/streams"
)

// result is one [body, status] pair of a bulk answer.
type result struct {
	Code  int
	ID    string
	Error string
}

func bulkResults(t *testing.T, body []byte) []result {
	t.Helper()
	var br struct {
		Responses [][2]json.RawMessage `json:"responses"`
	}
	if err := json.Unmarshal(body, &br); err != nil {
		t.Fatalf("response %s is not {\"responses\": [...]}: %v", body, err)
	}
	out := make([]result, len(br.Responses))
	for i, pair := range br.Responses {
		var item struct {
			Data  struct{ ID string } `json:"data"`
			Error string              `json:"error"`
		}
		if err := json.Unmarshal(pair[1], &out[i].Code); err != nil {
			t.Fatalf("responses[%d][1] = %s, want a status code", i, pair[1])
		}
		if err := json.Unmarshal(pair[0], &item); err != nil {
			t.Fatalf("responses[%d][0] = %s: %v", i, pair[0], err)
		}
		out[i].ID, out[i].Error = item.Data.ID, item.Error
	}
	return out
}

// productionLimits undoes the test service's generous work limits: the
// defaults apply again, with the given changes.
func productionLimits(change func(o *api.Options)) func(o *api.Options) {
	return func(o *api.Options) {
		o.HeartbeatRate, o.HeartbeatBurst, o.ByteRate, o.ByteBurst = 0, 0, 0, 0
		o.MaxDaysPerRequest, o.MaxDayHeartbeats, o.MaxDayBytes = 0, 0, 0
		if change != nil {
			change(o)
		}
	}
}

// bulkOver is a bulk body of n heartbeats spread over days UTC days
// ending today, each with a distinct entity under tag.
func bulkOver(tag string, n, days int) []byte {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	items := make([]string, n)
	for i := range items {
		at := today.AddDate(0, 0, -(i % days)).Add(time.Duration(i) * time.Second)
		if at.After(time.Now()) {
			at = at.AddDate(0, 0, -days)
		}
		items[i] = hbJSON(fmt.Sprintf("%s-%d.go", tag, i), float64(at.Unix()))
	}
	return []byte("[" + strings.Join(items, ",") + "]")
}

func TestNoisyNeighbourDoesNotHoldBackOthers(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{API: productionLimits(nil)})
	_, keyA := svc.CreateUser(t, "noisy", "")
	b, keyB := svc.CreateUser(t, "quiet", "")

	// A: the most heartbeats and distinct days a request may carry, as
	// fast as it can over four connections, bounded in time and count.
	var limited, accepted, aRequests atomic.Int64
	var retryAfterMissing atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for r := 0; r < 50; r++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, _ := svc.Post(t, bulk, keyA, bulkOver(fmt.Sprintf("a%d-%d", c, r), 1000, 31))
				aRequests.Add(1)
				switch resp.StatusCode {
				case http.StatusTooManyRequests:
					limited.Add(1)
					if resp.Header.Get("Retry-After") == "" {
						retryAfterMissing.Store(true)
					}
				case http.StatusCreated:
					accepted.Add(1)
				default:
					t.Errorf("user A: status %d", resp.StatusCode)
				}
			}
		})
	}

	// B: single heartbeats over eight connections meanwhile.
	const perConn = 10
	var bwg sync.WaitGroup
	for c := range 8 {
		bwg.Go(func() {
			for i := range perConn {
				body := hbJSON(fmt.Sprintf("b%d-%d.go", c, i), now()-float64(c*perConn+i))
				resp, got := svc.Post(t, "/api/v1/users/current/heartbeats", keyB, []byte(body))
				if resp.StatusCode != http.StatusCreated {
					t.Errorf("user B: status %d (%s), want 201", resp.StatusCode, got)
				}
			}
		})
	}
	bwg.Wait()
	close(stop)
	wg.Wait()

	if limited.Load() == 0 {
		t.Errorf("user A sent %d requests of 1000 heartbeats and none was answered 429", aRequests.Load())
	}
	if retryAfterMissing.Load() {
		t.Error("a 429 came without Retry-After")
	}
	// The burst (2000) lets two full requests through at once; the rate
	// (20/s) another in the time this takes.
	if accepted.Load() == 0 || accepted.Load() > 4 {
		t.Errorf("user A had %d requests of 1000 accepted; want 1 to 4 under a burst of 2000 and 20/s", accepted.Load())
	}
	svc.WaitCount(t, 8*perConn, "SELECT count(*) FROM heartbeats WHERE user_id = $1", b.ID)
}

func TestPerUserDayCaps(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{API: productionLimits(func(o *api.Options) {
		o.MaxDayHeartbeats, o.MaxDayBytes = 5, 3000
	})})
	u, key := svc.CreateUser(t, "alice", "")

	day := time.Now().UTC().Add(-24 * time.Hour).Truncate(24 * time.Hour).Add(9 * time.Hour)
	var five []string
	for i := range 5 {
		five = append(five, hbJSON(fmt.Sprintf("f%d.go", i), float64(day.Add(time.Duration(i)*time.Minute).Unix())))
	}
	resp, body := svc.Post(t, bulk, key, []byte("["+strings.Join(five, ",")+"]"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d (%s)", resp.StatusCode, body)
	}
	var ids []string
	for i, r := range bulkResults(t, body) {
		if r.Code != http.StatusCreated {
			t.Fatalf("heartbeat %d of the first five: %+v", i, r)
		}
		ids = append(ids, r.ID)
	}
	// A resend of one of the five still fits (it is the same heartbeat);
	// a sixth does not.
	sixth := hbJSON("f5.go", float64(day.Add(10*time.Minute).Unix()))
	resp, body = svc.Post(t, bulk, key, []byte("["+five[2]+","+sixth+"]"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d (%s)", resp.StatusCode, body)
	}
	got := bulkResults(t, body)
	if got[0].Code != http.StatusCreated || got[0].ID != ids[2] {
		t.Errorf("resent heartbeat: %+v, want 201 with id %s", got[0], ids[2])
	}
	if got[1].Code != http.StatusBadRequest || !strings.Contains(got[1].Error, "5 heartbeats") || !strings.Contains(got[1].Error, "HEARTLOG_DAY_MAX_HEARTBEATS") {
		t.Errorf("sixth heartbeat of the day: %+v, want 400 naming the cap of 5", got[1])
	}

	// Bytes: two heartbeats of about 1.3 KB of JSON each fit 3000 bytes,
	// a third does not.
	other := day.Add(-24 * time.Hour)
	big := func(i int) string {
		return fmt.Sprintf(`{"entity":"/%s-%d.go","type":"file","time":%d}`, strings.Repeat("x", 1000), i, other.Add(time.Duration(i)*time.Minute).Unix())
	}
	resp, body = svc.Post(t, bulk, key, []byte("["+big(0)+","+big(1)+","+big(2)+"]"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d (%s)", resp.StatusCode, body)
	}
	got = bulkResults(t, body)
	if got[0].Code != http.StatusCreated || got[1].Code != http.StatusCreated {
		t.Errorf("first two big heartbeats: %+v %+v, want 201", got[0], got[1])
	}
	if got[2].Code != http.StatusBadRequest || !strings.Contains(got[2].Error, "HEARTLOG_DAY_MAX_BYTES") {
		t.Errorf("third big heartbeat: %+v, want 400 naming the byte cap", got[2])
	}

	// Closed, the day files hold every accepted heartbeat and nothing
	// else; no other object was written for the user (nothing moved aside).
	svc.CloseDay(t, day, nil)
	svc.CloseDay(t, other, nil)
	ctx := context.Background()
	stores := heartlogtest.OpenStores(t)
	want := map[string]int{heartbeat.Day(heartlogtest.Heartbeat(t, u.ID, "x", day)): 5, heartbeat.Day(heartlogtest.Heartbeat(t, u.ID, "x", other)): 2}
	for d, n := range want {
		key := dayfile.Key(u.ObjectPrefix, u.ID, d)
		if !heartlogtest.Eventually(20*time.Second, func() bool {
			data, _, err := stores.Primary.Get(ctx, key)
			if err != nil {
				return false
			}
			hbs, err := dayfile.Decode(data)
			return err == nil && len(hbs) == n
		}) {
			t.Fatalf("day file %s does not hold the %d accepted heartbeats", key, n)
		}
	}
	var keys []string
	for k, err := range stores.Primary.List(ctx, u.ObjectPrefix+"/") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if len(keys) != 2 {
		t.Errorf("objects under the user's prefix: %v, want the two day files only", keys)
	}
}

func TestDistinctDaysPerRequestCap(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{API: productionLimits(func(o *api.Options) { o.MaxDaysPerRequest = 3 })})
	u, key := svc.CreateUser(t, "alice", "")
	resp, body := svc.Post(t, bulk, key, bulkOver("d", 10, 5))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d (%s)", resp.StatusCode, body)
	}
	// Heartbeat i falls on day i%5: days 0, 1 and 2 are the first three.
	stored := 0
	for i, r := range bulkResults(t, body) {
		switch {
		case i%5 < 3 && r.Code != http.StatusCreated:
			t.Errorf("heartbeat %d (day %d): %+v, want 201", i, i%5, r)
		case i%5 >= 3 && (r.Code != http.StatusTooManyRequests || !strings.Contains(r.Error, "3 UTC days") || !strings.Contains(r.Error, "HEARTLOG_MAX_DAYS_PER_REQUEST")):
			t.Errorf("heartbeat %d (day %d): %+v, want 429 naming the cap of 3 days", i, i%5, r)
		case r.Code == http.StatusCreated:
			stored++
		}
	}
	svc.WaitCount(t, stored, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
	if stored != 6 {
		t.Errorf("%d stored, want 6", stored)
	}
}

// fillRef lets a test hand the API a stream fill watch made after the
// service started.
type fillRef struct{ p atomic.Pointer[streams.Fill] }

func (f *fillRef) Full() (bool, int64, int64) {
	if fl := f.p.Load(); fl != nil {
		return fl.Full()
	}
	return false, 0, 0
}

func TestStreamNearlyFullAnswers503AndRecovers(t *testing.T) {
	ref := &fillRef{}
	svc := heartlogtest.Start(t, heartlogtest.Options{
		Stream: func(c *streams.Config) { c.MaxBytes = 2 << 20 },
		API:    func(o *api.Options) { o.Capacity = ref },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fill := streams.WatchFill(ctx, svc.JS, svc.Streams, streams.FillOptions{Every: 50 * time.Millisecond, Log: heartlogtest.Logger(t)})
	ref.p.Store(fill)
	u, key := svc.CreateUser(t, "alice", "")

	// About 150 KB of heartbeats a request: the stream fills in some 14.
	request := func(r int) []byte {
		items := make([]string, 100)
		for i := range items {
			items[i] = fmt.Sprintf(`{"entity":"/%s-%d-%d.go","type":"file","time":%v}`, strings.Repeat("y", 1000), r, i, now()-float64(i))
		}
		return []byte("[" + strings.Join(items, ",") + "]")
	}
	acked := 0
	var refused *http.Response
	var refusedBody []byte
	for r := 0; r < 100 && refused == nil; r++ {
		resp, body := svc.Post(t, bulk, key, request(r))
		switch resp.StatusCode {
		case http.StatusCreated:
			for _, res := range bulkResults(t, body) {
				if res.Code == http.StatusCreated {
					acked++
				}
			}
		case http.StatusServiceUnavailable:
			refused, refusedBody = resp, body
		default:
			t.Fatalf("request %d: status %d (%s)", r, resp.StatusCode, body)
		}
	}
	if refused == nil {
		t.Fatal("100 requests of 150 KB into a 2 MiB stream and none was answered 503")
	}
	if refused.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %s", refusedBody)
	}
	// Once the watch has seen the fill, ingest refuses before JetStream.
	if !heartlogtest.Eventually(5*time.Second, func() bool { full, _, _ := fill.Full(); return full }) {
		t.Fatal("the fill watch never reported the stream full")
	}
	resp, body := svc.Post(t, bulk, key, request(1000))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "nearly full") || resp.Header.Get("Retry-After") != "60" {
		t.Errorf("while full: %d %s (Retry-After %q), want 503 saying the log is nearly full, Retry-After 60", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	// Every acknowledged heartbeat reaches Postgres.
	svc.WaitCount(t, acked, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)

	// Room again (the limit raised): ingest accepts once the watch sees it.
	cfg := svc.Streams
	cfg.MaxBytes = 64 << 20
	if err := streams.Ensure(ctx, svc.JS, cfg); err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		resp, _ := svc.Post(t, bulk, key, []byte("["+hbJSON("after.go", now())+"]"))
		return resp.StatusCode == http.StatusCreated
	}) {
		t.Fatal("ingest did not recover after the stream's limit was raised")
	}
	svc.WaitCount(t, acked+1, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
}

func TestDaysPastGraceGoToDayFilesOnly(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{ShardsGrace: 48 * time.Hour})
	u, key := svc.CreateUser(t, "alice", "")

	today := time.Now().UTC().Truncate(24 * time.Hour)
	old, recent := today.AddDate(0, 0, -30).Add(10*time.Hour), today.AddDate(0, 0, -1).Add(10*time.Hour)
	// The same hour of work on both days: twelve heartbeats five minutes
	// apart.
	session := func(tag string, start time.Time) []byte {
		items := make([]string, 12)
		for i := range items {
			items[i] = hbJSON(fmt.Sprintf("%s-%d.go", tag, i), float64(start.Add(time.Duration(i)*5*time.Minute).Unix()))
		}
		return []byte("[" + strings.Join(items, ",") + "]")
	}
	for _, s := range []struct {
		tag string
		at  time.Time
	}{{"old", old}, {"recent", recent}} {
		if resp, body := svc.Post(t, bulk, key, session(s.tag, s.at)); resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: status %d (%s)", s.tag, resp.StatusCode, body)
		}
	}
	// The recent day's rows mean the processor has passed the old day's.
	svc.WaitCount(t, 12, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
	oldDay, recentDay := old.Format(heartbeat.DayLayout), recent.Format(heartbeat.DayLayout)
	if n := svc.Count(t, "SELECT count(*) FROM pg_class WHERE relname = 'heartbeats_' || $1", oldDay); n != 0 {
		t.Errorf("a partition was created for %s, 30 days old", oldDay)
	}
	if n := svc.Count(t, "SELECT count(*) FROM pg_class WHERE relname = 'heartbeats_' || $1", recentDay); n != 1 {
		t.Errorf("no partition for yesterday (%s)", recentDay)
	}
	if n := svc.Count(t, "SELECT count(*) FROM users WHERE id = $1 AND first_day = $2", u.ID, old.Truncate(24*time.Hour)); n != 1 {
		t.Error("first_day did not move back to the old day")
	}

	total := func(day time.Time) float64 {
		d := day.Format(time.DateOnly)
		code, sum := get(t, svc, "/api/v1/users/current/summaries?start="+d+"&end="+d, key)
		if code != http.StatusOK {
			t.Fatalf("summaries of %s: %d %v", d, code, sum)
		}
		secs, _ := dig(sum, "cumulative_total", "seconds").(float64)
		return secs
	}
	want := total(recent) // from Postgres
	if want < 50*60 {
		t.Fatalf("yesterday's total %v s, want about an hour (twelve heartbeats five minutes apart)", want)
	}
	// Read the old day only once it is closed and its file is in S3: a
	// read before would find none and cache that, as for any day without
	// heartbeats.
	svc.CloseDay(t, old, nil)
	ctx := context.Background()
	primary := heartlogtest.OpenStores(t).Primary
	if !heartlogtest.Eventually(20*time.Second, func() bool {
		_, _, err := primary.Get(ctx, dayfile.Key(u.ObjectPrefix, u.ID, oldDay))
		return err == nil
	}) {
		t.Fatalf("no day file in S3 for %s", oldDay)
	}
	var got float64
	if !heartlogtest.Eventually(20*time.Second, func() bool { got = total(old); return got == want }) {
		t.Fatalf("the old day's total from the day files is %v s, want %v", got, want)
	}
}

func TestConnectIngestMeetsTheSameLimits(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{API: productionLimits(func(o *api.Options) {
		o.HeartbeatRate, o.HeartbeatBurst, o.MaxDaysPerRequest = 1, 1000, 2
	})})
	u, key := svc.CreateUser(t, "alice", "")
	client := heartlogv1connect.NewIngestServiceClient(h2cClient(), svc.URL)
	send := func(hbs []*heartlogv1.Heartbeat) (*connect.Response[heartlogv1.SendHeartbeatsResponse], error) {
		req := connect.NewRequest(&heartlogv1.SendHeartbeatsRequest{Heartbeats: hbs})
		req.Header().Set("Authorization", "Bearer "+key)
		return client.SendHeartbeats(context.Background(), req)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	hbs := make([]*heartlogv1.Heartbeat, 1000)
	for i := range hbs {
		at := today.AddDate(0, 0, -1-i%3).Add(time.Duration(i) * time.Second)
		hbs[i] = &heartlogv1.Heartbeat{Entity: fmt.Sprintf("c%d.go", i), Type: "file", Time: float64(at.Unix())}
	}
	resp, err := send(hbs)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for i, r := range resp.Msg.Results {
		switch {
		case i%3 < 2 && r.Id == "":
			t.Errorf("heartbeat %d: %v, want stored", i, r)
		case i%3 == 2 && !strings.Contains(r.Error, "HEARTLOG_MAX_DAYS_PER_REQUEST"):
			t.Errorf("heartbeat %d of a third day: %v, want the distinct-days cap named", i, r)
		case r.Id != "":
			stored++
		}
	}
	// The burst of 1000 is spent: the next request is refused whole.
	_, err = send(hbs[:10])
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeResourceExhausted || cerr.Meta().Get("Retry-After") == "" {
		t.Fatalf("second request: %v, want ResourceExhausted with Retry-After", err)
	}
	svc.WaitCount(t, stored, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
}

// A user who has spent the heartbeat budget is refused from the headers:
// the upload is not read (nor decoded) just to be refused, and the
// connection is closed rather than drained.
func TestSpentBudgetIsRefusedBeforeTheBodyIsRead(t *testing.T) {
	var read bodyCounter
	svc := heartlogtest.Start(t, heartlogtest.Options{Wrap: read.wrap, NoProcessor: true, API: productionLimits(func(o *api.Options) {
		o.HeartbeatRate, o.HeartbeatBurst = 0.001, 1000
	})})
	_, key := svc.CreateUser(t, "alice", "")
	if resp, got := svc.Post(t, bulk, key, bulkOver("first", 1000, 1)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("first request: status %d (%s)", resp.StatusCode, got)
	}
	read.n.Store(0)
	resp, got := svc.Post(t, bulk, key, bulkOver("second", 1000, 1))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second request: status %d, Retry-After %q (%s); want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), got)
	}
	if n := read.n.Load(); n != 0 {
		t.Errorf("the API read %d bytes of a request it refused from its headers, want 0", n)
	}
	if !resp.Close {
		t.Errorf("the connection stays open: net/http drains the unread body to reuse it; want Connection: close")
	}

	// The Connect ingest alike: refused from its headers, nothing read.
	hbs := make([]*heartlogv1.Heartbeat, 1000)
	for i := range hbs {
		hbs[i] = &heartlogv1.Heartbeat{Entity: fmt.Sprintf("c%d.go", i), Type: "file", Time: float64(time.Now().Add(-time.Hour).Unix())}
	}
	req := connect.NewRequest(&heartlogv1.SendHeartbeatsRequest{Heartbeats: hbs})
	req.Header().Set("Authorization", "Bearer "+key)
	_, err := heartlogv1connect.NewIngestServiceClient(http.DefaultClient, svc.URL).SendHeartbeats(context.Background(), req)
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeResourceExhausted || cerr.Meta().Get("Retry-After") == "" {
		t.Fatalf("a Connect call with the budget spent: %v, want ResourceExhausted with Retry-After", err)
	}
	if n := read.n.Load(); n != 0 {
		t.Errorf("the Connect ingest read %d bytes of a call it refused from its headers, want 0", n)
	}
}
