package today_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/stats"
	"heartlog/streams"
	"heartlog/today"
	"heartlog/users"
)

const bulk = "/api/v1/users/current/heartbeats.bulk"

// onePartition puts every user in one partition, so that each feed carries
// other users' messages.
func onePartition(c *streams.Config) { c.Partitions = 1 }

// own is the status bar's options in u's settings, today.
func own(t *testing.T, u users.User) stats.Options {
	t.Helper()
	loc, err := time.LoadLocation(u.TimeZone)
	if err != nil {
		t.Fatal(err)
	}
	d := stats.DateOf(time.Now(), loc)
	return stats.Options{Location: loc, Timeout: u.TimeoutMinutes, Start: d, End: d}
}

// post sends heartbeats at the given times (project p), as wakatime-cli
// does.
func post(t *testing.T, svc *heartlogtest.Service, key, p string, at ...time.Time) {
	t.Helper()
	items := make([]string, len(at))
	for i, a := range at {
		items[i] = fmt.Sprintf(`{"entity":"/src/%s.go","type":"file","time":%.6f,"project":%q,"language":"Go"}`, p, float64(a.UnixMicro())/1e6, p)
	}
	if resp, b := svc.Post(t, bulk, key, []byte("["+strings.Join(items, ",")+"]")); resp.StatusCode != 201 {
		t.Errorf("post: %d %s", resp.StatusCode, b)
	}
}

// computed is the status bar computed afresh from the read path, as JSON.
func computed(t *testing.T, svc *heartlogtest.Service, u users.User, o stats.Options) string {
	t.Helper()
	hbs, err := svc.Reader.Heartbeats(context.Background(), u, stats.UTCDays(o.Start, o.Start, o.Location))
	if err != nil {
		t.Fatal(err)
	}
	o.OmitEntities = true
	days, err := stats.Summarize(hbs, o)
	if err != nil {
		t.Fatal(err)
	}
	return asJSON(t, days[0])
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// live is the tracker's status bar as JSON.
func live(t *testing.T, svc *heartlogtest.Service, u users.User) string {
	t.Helper()
	bar, err := svc.Today.StatusBar(context.Background(), u, own(t, u))
	if err != nil {
		t.Fatalf("live status bar of %s: %v", u.Name, err)
	}
	return asJSON(t, bar.Day)
}

// waitEqual waits until the live status bar equals the computed one, which
// it must reach and then keep: a lost heartbeat or one counted twice would
// keep them apart.
func waitEqual(t *testing.T, svc *heartlogtest.Service, u users.User) {
	t.Helper()
	var got, want string
	if !heartlogtest.Eventually(20*time.Second, func() bool {
		want = computed(t, svc, u, own(t, u))
		got = live(t, svc, u)
		return got == want
	}) {
		t.Fatalf("%s: live status bar\n%s\nwant (computed)\n%s", u.Name, got, want)
	}
}

// A user activated while their heartbeats are being published, with the
// Postgres projector stopped (everything comes from the stream: the
// catch-up and the feed) and then running (the floor moves under the
// activation), counts each heartbeat once.
func TestActivationIsExact(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{Stream: onePartition})
	zone := heartlogtest.MiddayZone(time.Now())
	alice, aliceKey := svc.CreateUser(t, "alice", "")
	alice = svc.SetZone(t, alice.ID, aliceKey, zone, 0)
	post(t, svc, aliceKey, "a", time.Now().Add(-time.Hour))
	live(t, svc, alice) // the partition's feed runs from here on

	for _, projector := range []bool{false, true} {
		t.Run(fmt.Sprintf("projector running %v", projector), func(t *testing.T) {
			if !projector {
				svc.StopProcessor()
			}
			name := fmt.Sprintf("bob-%v", projector)
			bob, key := svc.CreateUser(t, name, "")
			bob = svc.SetZone(t, bob.ID, key, zone, 0)
			base := time.Now().Add(-50 * time.Minute)
			first := []time.Time{base, base.Add(time.Minute), base.Add(2 * time.Minute)}
			post(t, svc, key, "b", first...) // in the stream before bob is active
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := range 30 {
					post(t, svc, key, "b", base.Add(time.Duration(3+i)*time.Minute))
					if i == 10 {
						post(t, svc, key, "b", first...) // a resend: same ids
					}
				}
			})
			live(t, svc, bob) // activates while the posts go on
			wg.Wait()
			if !projector {
				svc.StartProcessor(t)
			}
			svc.WaitCount(t, 33, "SELECT count(*) FROM heartbeats WHERE user_id = $1", bob.ID)
			waitEqual(t, svc, bob)
			waitEqual(t, svc, alice) // and nothing of bob's reached alice
		})
	}
}

// A change of day (the state is keyed by its date) or of settings builds
// the state again; with the user cap at one, users take turns and each
// answer is still exact.
func TestRebuiltWhenKeyChanges(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{Stream: onePartition, Today: func(o *today.Options) { o.MaxUsers = 1 }})
	zone := heartlogtest.MiddayZone(time.Now())
	alice, aliceKey := svc.CreateUser(t, "alice", "")
	bob, bobKey := svc.CreateUser(t, "bob", "")
	alice = svc.SetZone(t, alice.ID, aliceKey, zone, 0)
	bob = svc.SetZone(t, bob.ID, bobKey, zone, 0)
	now := time.Now()
	post(t, svc, aliceKey, "a", now.Add(-30*time.Minute), now.Add(-20*time.Minute), now.Add(-12*time.Minute))
	post(t, svc, bobKey, "b", now.Add(-40*time.Minute), now.Add(-39*time.Minute))
	svc.WaitCount(t, 5, "SELECT count(*) FROM heartbeats")
	for range 3 {
		waitEqual(t, svc, alice)
		waitEqual(t, svc, bob)
	}
	// Timeout 5: alice's 10- and 8-minute gaps no longer count.
	alice = svc.SetZone(t, alice.ID, aliceKey, zone, 5)
	waitEqual(t, svc, alice)
	if got := live(t, svc, alice); !strings.Contains(got, `"total_seconds":0,`) {
		t.Fatalf("timeout 5: %s", got)
	}
	// Tomorrow's state is tomorrow's day: none of today's time.
	o := own(t, alice)
	o.Start = o.Start.AddDays(1)
	bar, err := svc.Today.StatusBar(context.Background(), alice, o)
	if err != nil || bar.Day.Range.Date != o.Start.String() || bar.Day.GrandTotal.Total != 0 {
		t.Fatalf("next day: %+v %v", bar.Day.Range, err)
	}
}

// A user idle past IdleAfter is dropped, and the partition's feed with its
// last user.
func TestIdleUserStopsFeed(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{Today: func(o *today.Options) { o.IdleAfter = time.Millisecond }})
	alice, key := svc.CreateUser(t, "alice", "")
	post(t, svc, key, "a", time.Now().Add(-time.Minute))
	feeds := func() float64 { return heartlogtest.MetricValue(t, "heartlog_today_partition_feeds", nil) }
	idle := func() float64 {
		return heartlogtest.MetricValue(t, "heartlog_today_dropped_total", map[string]string{"reason": "idle"})
	}
	before, idleBefore := feeds(), idle()
	live(t, svc, alice)
	if !heartlogtest.Eventually(20*time.Second, func() bool { return idle() > idleBefore && feeds() == before }) {
		t.Fatalf("feeds: %v, want %v after the user went idle (idle drops %v, before %v)", feeds(), before, idle(), idleBefore)
	}
	waitEqual(t, svc, alice) // read again: active again
}
