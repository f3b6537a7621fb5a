package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"heartlog/api"
	"heartlog/daydb"
	"heartlog/internal/wiring"
	"heartlog/reads"
	"heartlog/streams"
	"heartlog/today"
	"heartlog/users"
)

// statusbar: one user with -statusbar-heartbeats heartbeats today (in a
// time zone where it is midday, so that they all fall on the local day),
// GET /api/v1/users/current/statusbar/today over loopback HTTP (one
// keep-alive connection), warm, on two APIs over the same stack: one
// serving it from package today's live state, one without a tracker (the
// computed path, what every read did before). Then the same while
// -paced-users users each send a heartbeat every 60 to 120 s (paced.go's
// plugins) and read their own status bar as often from the live API, so
// that the tracker follows 1,000 active users and its feeds decode their
// messages. Target (live): p50 ≤ 1 ms, p99 ≤ 5 ms.

var statusBarTargets = struct{ p50, p99 time.Duration }{time.Millisecond, 5 * time.Millisecond}

// statusBarAPIs are the two servers compared.
type statusBarAPIs struct {
	live, computed string // base URLs
	tracker        *today.Tracker
	closers        []func()
}

func (a *statusBarAPIs) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

func startStatusBarAPIs(ctx context.Context, st *stack, ds *dayStores) (*statusBarAPIs, error) {
	a := &statusBarAPIs{}
	view, err := streams.WatchShards(ctx, st.js, st.sc)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { _ = view.Stop() })
	reader := reads.New(daydb.One(st.pool), view, ds.cache, ds.primary, 0, zerolog.Nop())
	a.tracker = today.New(ctx, st.js, st.sc, reader, today.Options{Log: st.log})
	a.closers = append(a.closers, a.tracker.Close)
	for _, tr := range []*today.Tracker{a.tracker, nil} {
		srv := api.New(st.accounts(), st.pub, api.Options{Reader: reader, Today: tr, Log: st.log,
			RateLimit: 1e9, RateBurst: 1e9, HeartbeatRate: 1e9, HeartbeatBurst: 1e9, ByteRate: 1e12, ByteBurst: 1 << 40,
			MaxDaysPerRequest: 1 << 20, MaxDayHeartbeats: 1 << 30, MaxDayBytes: 1 << 40})
		hs, err := wiring.ListenAPI("127.0.0.1:0", srv)
		if err != nil {
			a.close()
			return nil, err
		}
		if tr != nil {
			hs.OnShutdown(tr.Close)
			a.live = hs.URL()
		} else {
			a.computed = hs.URL()
		}
		a.closers = append(a.closers, func() { _ = hs.Close(5 * time.Second) })
	}
	return a, nil
}

// middayZone is an Etc/GMT zone in which now is about noon.
func middayZone(now time.Time) string {
	off := 12 - now.UTC().Hour()
	if off == 0 {
		return "UTC"
	}
	return fmt.Sprintf("Etc/GMT%+d", -off) // POSIX signs: Etc/GMT-3 is UTC+3
}

// statusBarGetter times GETs of one user's status bar on one connection.
type statusBarGetter struct {
	client *http.Client
	auth   string
}

func newStatusBarGetter(key string) *statusBarGetter {
	return &statusBarGetter{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second},
		auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(key))}
}

func (g *statusBarGetter) get(ctx context.Context, base string) (time.Duration, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/users/current/statusbar/today", nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", g.auth)
	start := time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET statusbar/today: %d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return took, body, err
}

// timeGets runs n timed GETs (after 20 untimed ones) against base.
func (g *statusBarGetter) timeGets(ctx context.Context, base string, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n + 20 {
		took, _, err := g.get(ctx, base)
		if err != nil {
			return out, err
		}
		if i >= 20 {
			out = append(out, took)
		}
	}
	return out, nil
}

func runStatusBar(ctx context.Context, st *stack, cfg config) ([]result, error) {
	ds, err := openDayStores(ctx)
	if err != nil {
		return nil, err
	}
	defer ds.close()
	if err := st.startProcessor(ctx, 0); err != nil {
		return nil, err
	}
	defer st.stopProcessor()
	apis, err := startStatusBarAPIs(ctx, st, ds)
	if err != nil {
		return nil, err
	}
	defer apis.close()

	heavy, key, err := statusBarUser(ctx, st, cfg.statusBarHeartbeats)
	if err != nil {
		return nil, err
	}
	g := newStatusBarGetter(key)
	same, err := sameStatusBar(ctx, g, apis)
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%s heartbeats today (%s); live and computed answers equal: %v", thousands(float64(cfg.statusBarHeartbeats)), heavy.TimeZone, same)
	var rows []result
	live, err := g.timeGets(ctx, apis.live, cfg.statusBarRequests)
	if err != nil {
		return nil, err
	}
	computed, err := g.timeGets(ctx, apis.computed, cfg.statusBarRequests/4)
	if err != nil {
		return nil, err
	}
	rows = append(rows, statusBarRow("statusbar/warm/live", live, note), statusBarRow("statusbar/warm/computed", computed, "the same reads without the tracker (before)"))

	paced, err := statusBarPaced(ctx, st, cfg, apis, g)
	return append(rows, paced...), err
}

// statusBarUser creates the measured user and sends n heartbeats of today
// (one every 15 s back from now, wakatime-cli's shapes), waiting until the
// Postgres projector has them all.
func statusBarUser(ctx context.Context, st *stack, n int) (users.User, string, error) {
	us, keys, err := st.createUsers(ctx, "bench-statusbar", 1)
	if err != nil {
		return users.User{}, "", err
	}
	zone := middayZone(time.Now())
	u, err := st.users.Update(ctx, us[0].ID, users.Change{TimeZone: &zone})
	if err != nil {
		return users.User{}, "", err
	}
	gen := newGenerator(7)
	gen.offset = 0
	now := time.Now()
	body := []byte{'['}
	for i := range n {
		if i > 0 {
			body = append(body, ',')
		}
		body = gen.appendHeartbeat(body, now.Add(-time.Duration(i)*15*time.Second), 0)
	}
	body = append(body, ']')
	for start := 0; ; start++ {
		pu := &pacedUser{key: keys[0], errors: map[string]int{}}
		pu.send(ctx, st.baseURL+"/api/v1/users/current/heartbeats.bulk", gen, body, n)
		if pu.acked == 1 {
			break
		}
		if start == 50 { // the users bucket may not have the key yet
			return u, "", fmt.Errorf("heartbeats of the statusbar user refused: %v", pu.errors)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var rows int
		if err := st.pool.QueryRow(ctx, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID).Scan(&rows); err != nil {
			return u, "", err
		}
		if rows == n {
			return u, keys[0], nil
		}
		if time.Now().After(deadline) {
			return u, "", fmt.Errorf("%d of %d heartbeats in Postgres after a minute", rows, n)
		}
	}
}

// sameStatusBar compares the data of the two APIs' answers (cached_at
// aside), after the directory has the user's time zone.
func sameStatusBar(ctx context.Context, g *statusBarGetter, apis *statusBarAPIs) (bool, error) {
	var a, b any
	for range 50 {
		for _, p := range []struct {
			base string
			out  *any
		}{{apis.live, &a}, {apis.computed, &b}} {
			_, body, err := g.get(ctx, p.base)
			if err != nil {
				return false, err
			}
			var doc struct{ Data any }
			if err := json.Unmarshal(body, &doc); err != nil {
				return false, err
			}
			*p.out = doc.Data
		}
		if fmt.Sprint(a) == fmt.Sprint(b) {
			return true, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false, nil
}

func statusBarRow(name string, d []time.Duration, note string) result {
	r := result{scenario: name, target: "—", latency: summarize(d), cpuNote: "-", notes: []string{note}}
	r.result = fmt.Sprintf("p50 %s p99 %s", ms(r.latency.p50), ms(r.latency.p99))
	if name == "statusbar/warm/live" || name == "statusbar/paced/live" {
		r.target = "p50 ≤ " + ms(statusBarTargets.p50) + ", p99 ≤ " + ms(statusBarTargets.p99)
		if r.latency.p50 <= statusBarTargets.p50 && r.latency.p99 <= statusBarTargets.p99 {
			r.result += " ✅"
		} else {
			r.result = "**" + r.result + "** ❌"
		}
	}
	return r
}

// statusBarPaced measures the heavy user's reads, live and computed in
// turn, while the paced users send and read.
func statusBarPaced(ctx context.Context, st *stack, cfg config, apis *statusBarAPIs, g *statusBarGetter) ([]result, error) {
	fmt.Fprintf(os.Stderr, "bench: statusbar: creating %d paced users\n", cfg.pacedUsers)
	us, keys, err := st.createUsers(ctx, "bench-statusbar-paced", cfg.pacedUsers)
	if err != nil {
		return nil, err
	}
	pc := cfg
	pc.pacedMinInterval, pc.pacedMaxInterval = 60*time.Second, 120*time.Second
	end := time.Now().Add(cfg.statusBarDuration)
	day := time.Now().UTC().Truncate(24 * time.Hour)
	var wg sync.WaitGroup
	var pacedUsers []*pacedUser
	wg.Go(func() { pacedUsers = pace(ctx, pc, apis.live, keys, day, end) })
	var reads, readErrors atomic.Int64
	for i, key := range keys {
		wg.Go(func() { readPaced(ctx, pc, apis.live, key, uint64(i), end, &reads, &readErrors) })
	}
	var live, computed []time.Duration
	loads := loadAvg()
	for time.Now().Before(end) && ctx.Err() == nil {
		for _, p := range []struct {
			base string
			out  *[]time.Duration
		}{{apis.live, &live}, {apis.computed, &computed}} {
			took, _, err := g.get(ctx, p.base)
			if err != nil && ctx.Err() == nil {
				return nil, err
			}
			*p.out = append(*p.out, took)
		}
		time.Sleep(20 * time.Millisecond)
	}
	loads += " → " + loadAvg()
	wg.Wait()
	acked, sent := 0, 0
	for _, u := range pacedUsers {
		acked, sent = acked+u.acked, sent+u.sent
	}
	note := fmt.Sprintf("%d paced users over %s (%s users in all): %d of %d heartbeats acked, %d status-bar reads of their own (%d failed); load %s",
		len(us), cfg.statusBarDuration, thousands(float64(len(us)+1)), acked, sent, reads.Load(), readErrors.Load(), loads)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return []result{statusBarRow("statusbar/paced/live", live, note),
		statusBarRow("statusbar/paced/computed", computed, "the same reads without the tracker (before), interleaved")}, nil
}

// readPaced reads one paced user's status bar every 60 to 120 s, the first
// within the first interval, as wakatime-cli --today does in an editor.
func readPaced(ctx context.Context, cfg config, base, key string, seed uint64, end time.Time, reads, failed *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, 0x62617273))
	span := int64(cfg.pacedMaxInterval - cfg.pacedMinInterval)
	every := func() time.Duration { return cfg.pacedMinInterval + time.Duration(rng.Int64N(span+1)) }
	g := newStatusBarGetter(key)
	next := time.Now().Add(time.Duration(rng.Int64N(int64(every()) + 1)))
	for next.Before(end) && sleepUntil(ctx, next) {
		reads.Add(1)
		if _, _, err := g.get(ctx, base); err != nil && !errors.Is(err, context.Canceled) {
			failed.Add(1)
		}
		next = next.Add(every())
	}
}
