package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"heartlog/api"
	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/wiring"
	"heartlog/pgheartbeats"
	pgsink "heartlog/processors/postgres"
	"heartlog/reads"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/ssdb"
	"heartlog/stats"
	"heartlog/streams"
	"heartlog/users"
)

// The reads scenario times GET /api/v1/users/current/summaries, through
// the real API handler over the real read path (package reads, then
// stats.Summarize), for one heavy user: -reads-per-day heartbeats on each of
// -reads-days days, among -reads-users users in all (the others have
// -reads-other-days days of -reads-other-per-day heartbeats in the last 30
// days, so that the tables, the bucket and the cache keyspace are not
// trivially small). The data is written straight into the stores (COPY
// through the Postgres sink, dayfile.Encode into the primary bucket and
// SSDB), not through HTTP and the processors. Then, for ranges of 7, 30 and
// 365 local days ending yesterday:
//
//   - hot: every day's shard is active, so the days come from Postgres;
//   - warm: the days' shards are marked dropped in the shards bucket and
//     their partitions dropped (as the janitor leaves them), so they come
//     from SSDB; S3 requests are counted and must be 0;
//   - cold: the user's cache keys of the range are deleted before each
//     iteration (not timed), so every day comes from S3 (and refills SSDB).
//
// Warm and cold, it also times the dashboard's other year-long reads as
// its connect-web client sends them (Connect protocol, JSON, through the
// same handler): GetHeatMap, GetStats and GetInsights of last_year, and
// GetProjects, as many times as the 365-day summaries. seedYear is the
// setup, for other scenarios too.

// readStates are where the days are read from, in the order measured.
var readStates = []string{"hot", "warm", "cold"}

// readRanges are the summaries ranges measured, in days.
var readRanges = []int{7, 30, 365}

// readTargets are the p99 targets, by state and range.
var readTargets = map[string]time.Duration{"warm/7d": 10 * time.Millisecond, "warm/365d": 150 * time.Millisecond, "warm/heatmap": 100 * time.Millisecond}

// alwaysActive lets the Postgres sink write every day while the bench
// loads data, whatever the shards bucket says.
type alwaysActive struct{}

func (alwaysActive) State(string) streams.ShardState { return streams.ShardActive }

// readData is what the setup wrote, to read and to clean up.
type readData struct {
	heavy    users.User
	key      string   // the heavy user's API key
	days     []string // the heavy user's UTC days, YYYYMMDD
	keys     []string // every day-file key written (primary bucket and cache)
	rows     int
	files    int
	users    int
	setup    time.Duration
	fileSize int // bytes of all the heavy user's day files
}

// workday returns n heartbeats of one working day that starts at 08:30 to
// 09:30 local time on date: project stints of 80-200 heartbeats, a file
// that changes every few heartbeats, steps of 5-55 s, a lunch break and a
// few breaks longer than the 15-minute timeout, so that durations are
// real. Every heartbeat is prepared as the API prepares it (ids, editor,
// operating system).
func workday(rng *rand.Rand, userID string, date time.Time, n int, now time.Time) ([]*heartlogv1.Heartbeat, error) {
	t := date.Add(8*time.Hour + 30*time.Minute + time.Duration(rng.IntN(3600))*time.Second)
	ua := userAgents[0]
	machine := "workstation"
	if date.Weekday() == time.Saturday || date.Weekday() == time.Sunday {
		ua, machine = userAgents[1], "laptop"
	}
	hbs := make([]*heartlogv1.Heartbeat, 0, n)
	stint, p, branch, file := 0, 0, "", 0
	for i := range n {
		switch {
		case i == n/2:
			t = t.Add(time.Duration(40+rng.IntN(30)) * time.Minute) // lunch
		case i > 0 && rng.IntN(300) == 0:
			t = t.Add(time.Duration(16+rng.IntN(50)) * time.Minute) // a meeting
		case i > 0:
			t = t.Add(time.Duration(5000+rng.IntN(50000)) * time.Millisecond)
		}
		if stint == 0 {
			stint, p, branch = 80+rng.IntN(120), rng.IntN(len(projects)), branches[rng.IntN(len(branches))]
		}
		stint--
		if rng.IntN(4) == 0 {
			file = rng.IntN(30)
		}
		hb := workdayHeartbeat(rng, p, branch, file)
		hb.Time = float64(t.UnixMicro()) / 1e6
		if err := prepare(hb, userID, ua, machine, now); err != nil {
			return nil, err
		}
		hbs = append(hbs, hb)
	}
	return hbs, nil
}

// workdayHeartbeat is one heartbeat on file f of project p: mostly files,
// sometimes an app or a web page.
func workdayHeartbeat(rng *rand.Rand, p int, branch string, f int) *heartlogv1.Heartbeat {
	pr := projects[p]
	hb := &heartlogv1.Heartbeat{Project: pr.name, Branch: branch, Category: categories[rng.IntN(len(categories))]}
	switch k := rng.IntN(100); {
	case k < 90:
		lines, lineno, cursor := int32(100+f*37), int32(1+rng.IntN(100+f*37)), int32(rng.IntN(120))
		write := rng.IntN(5) == 0
		hb.Entity = fmt.Sprintf("/home/dev/src/%s/%s/%s%d.%s", pr.name, dirs[f%len(dirs)], files[f%len(files)], f, pr.ext)
		hb.Type, hb.Language, hb.Dependencies = "file", pr.lang, deps[f%len(deps)]
		hb.Lines, hb.Lineno, hb.Cursorpos, hb.IsWrite = &lines, &lineno, &cursor, &write
	case k < 97:
		hb.Entity, hb.Type = apps[rng.IntN(len(apps))], "app"
	default:
		hb.Entity, hb.Type = domains[rng.IntN(len(domains))], "domain"
	}
	return hb
}

// userDay is one user's heartbeats of one UTC day, ready for every store.
type userDay struct {
	key  string
	day  string
	data []byte // the day file
	hbs  []*heartlogv1.Heartbeat
}

// encodeDay merges and encodes one user-day.
func encodeDay(u users.User, day string, hbs []*heartlogv1.Heartbeat) (userDay, error) {
	merged, _ := dayfile.Merge(nil, hbs)
	data, err := dayfile.Encode(merged)
	if err != nil {
		return userDay{}, err
	}
	return userDay{key: dayfile.Key(u.ObjectPrefix, u.ID, day), day: day, data: data, hbs: merged}, nil
}

// storeDays writes user-days into Postgres (through the sink's COPY), the
// primary bucket and the cache, as the processors would have.
func storeDays(ctx context.Context, ds *dayStores, sink *pgsink.Sink, uds []userDay) error {
	batches := make([]*heartlogv1.Batch, len(uds))
	values := make(map[string][]byte, len(uds))
	keys := make([]string, len(uds))
	files := make([]ssdb.DayFile, len(uds)) // for the cache, with their digests
	for i, ud := range uds {
		batches[i] = &heartlogv1.Batch{Day: ud.day, Heartbeats: ud.hbs}
		values[ud.key] = ud.data
		keys[i] = ud.key
		files[i] = ssdb.DayFile{Key: ud.key, Data: ud.data, Heartbeats: ud.hbs, Decoded: true}
	}
	if err := sink.Commit(ctx, batches); err != nil {
		return err
	}
	var mu sync.Mutex
	var putErr error
	parallelKeys(keys, func(k string) {
		if _, err := ds.primary.Put(ctx, k, values[k]); err != nil {
			mu.Lock()
			putErr = fmt.Errorf("put %s: %w", k, err)
			mu.Unlock()
		}
	})
	if putErr != nil {
		return putErr
	}
	return ds.cache.PutDayFiles(ctx, files)
}

// newReadUsers creates n users, 8 at a time.
func newReadUsers(ctx context.Context, st *stack, n int) ([]users.User, error) {
	out := make([]users.User, n)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += 8 {
				out[i], _, errs[w] = st.users.Create(ctx, users.NewUser{Name: fmt.Sprintf("reads-other-%d", i)})
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setupReads writes the heavy user's days, then the other users' days.
func setupReads(ctx context.Context, st *stack, cfg config, ds *dayStores, now time.Time) (*readData, error) {
	start := time.Now()
	loc, err := time.LoadLocation(cfg.readsTimezone)
	if err != nil {
		return nil, err
	}
	rd := &readData{}
	if rd.heavy, rd.key, err = st.users.Create(ctx, users.NewUser{Name: "reads-heavy", TimeZone: cfg.readsTimezone}); err != nil {
		return nil, err
	}
	sink := pgsink.New(daydb.One(st.pool), alwaysActive{}, st.log, pgsink.Options{})
	today := stats.DateOf(now, loc)
	// The heavy user: one UTC day per local working day, written a month at
	// a time.
	for first := 1; first <= cfg.readsDays; first += 30 {
		var uds []userDay
		for back := first; back < first+30 && back <= cfg.readsDays; back++ {
			date := today.AddDays(-back).Midnight(loc)
			hbs, err := workday(rand.New(rand.NewPCG(uint64(back), 1)), rd.heavy.ID, date, cfg.readsPerDay, now)
			if err != nil {
				return nil, err
			}
			ud, err := encodeDay(rd.heavy, heartbeat.Day(hbs[0]), hbs)
			if err != nil {
				return nil, err
			}
			rd.days = append(rd.days, ud.day)
			rd.fileSize += len(ud.data)
			uds = append(uds, ud)
		}
		if err := rd.store(ctx, ds, sink, uds); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: reads: heavy user: %d days, %d rows, %.1f MB of day files in %s\n",
		len(rd.days), rd.rows, float64(rd.fileSize)/1e6, time.Since(start).Round(time.Millisecond))
	others, err := newReadUsers(ctx, st, cfg.readsUsers-1)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: reads: %d other users created after %s\n", len(others), time.Since(start).Round(time.Millisecond))
	const chunk = 500
	for i := 0; i < len(others); i += chunk {
		uds, err := otherDays(others[i:min(i+chunk, len(others))], i, cfg, today, now)
		if err != nil {
			return nil, err
		}
		if err := rd.store(ctx, ds, sink, uds); err != nil {
			return nil, err
		}
	}
	rd.users = cfg.readsUsers
	rd.setup = time.Since(start)
	fmt.Fprintf(os.Stderr, "bench: reads: %d users, %d rows, %d day files written in %s\n", rd.users, rd.rows, rd.files, rd.setup.Round(time.Millisecond))
	return rd, nil
}

func (rd *readData) store(ctx context.Context, ds *dayStores, sink *pgsink.Sink, uds []userDay) error {
	for _, ud := range uds {
		rd.keys = append(rd.keys, ud.key)
		rd.rows += len(ud.hbs)
	}
	rd.files += len(uds)
	return storeDays(ctx, ds, sink, uds)
}

// otherDays builds the days of some of the other users (the first is
// number offset): each has -reads-other-days days among the last 30, of
// -reads-other-per-day heartbeats, in UTC.
func otherDays(us []users.User, offset int, cfg config, today stats.Date, now time.Time) ([]userDay, error) {
	out := make([][]userDay, runtime.GOMAXPROCS(0))
	errs := make([]error, len(out))
	var wg sync.WaitGroup
	for w := range out {
		wg.Go(func() {
			for i := w; i < len(us) && errs[w] == nil; i += len(out) {
				n := offset + i
				for k := range cfg.readsOtherDays {
					back := 1 + (n*7+k*11)%30
					date := today.AddDays(-back).Midnight(time.UTC)
					hbs, err := workday(rand.New(rand.NewPCG(uint64(n), uint64(back))), us[i].ID, date, cfg.readsOtherPerDay, now)
					if err != nil {
						errs[w] = err
						break
					}
					ud, err := encodeDay(us[i], heartbeat.Day(hbs[0]), hbs)
					if err != nil {
						errs[w] = err
						break
					}
					out[w] = append(out[w], ud)
				}
			}
		})
	}
	wg.Wait()
	var all []userDay
	for w := range out {
		if errs[w] != nil {
			return nil, errs[w]
		}
		all = append(all, out[w]...)
	}
	return all, nil
}

// timedReader records how long the read path's fetch took in the request
// being served (requests are made one at a time).
type timedReader struct {
	r          *reads.Reader
	last       time.Duration
	heartbeats int
}

func (t *timedReader) Heartbeats(ctx context.Context, u users.User, days []string) ([]*heartlogv1.Heartbeat, error) {
	start := time.Now()
	hbs, err := t.r.Heartbeats(ctx, u, days)
	t.last, t.heartbeats = time.Since(start), len(hbs)
	return hbs, err
}

func (t *timedReader) Activity(ctx context.Context, u users.User, days []string) (stats.Activity, error) {
	start := time.Now()
	beats, err := t.r.Activity(ctx, u, days)
	t.last, t.heartbeats = time.Since(start), len(beats.Beats)
	return beats, err
}

// readRun is one (state, range) measurement.
type readRun struct {
	total, fetch []time.Duration
	heartbeats   int
	s3Gets       int64
	bodyBytes    int
}

// yearSeed is a heavy user with a year of heartbeats in the stores (see
// setupReads: -reads-days days of -reads-per-day heartbeats, among
// -reads-users users) and the API that serves it over the real read path,
// limits off. The reads scenario measures it; a scenario that drives the
// dashboard takes handler (or serve's URL) and data.key.
type yearSeed struct {
	data    *readData      // data.heavy is the user, data.key its API key
	handler http.Handler   // the API
	loc     *time.Location // the user's time zone (-reads-timezone)
	now     time.Time      // the days end the day before now, in loc

	st     *stack
	ds     *dayStores
	view   *streams.ShardView
	bucket *timedBucket // the primary bucket, its requests counted
	reader *timedReader // the read path, timed
}

// seedYear writes the year into the stores and builds the API on it; opts,
// if not nil, adjusts the API's options (sessions, say). The days are hot
// (in Postgres) until drop. close removes what it wrote.
func seedYear(ctx context.Context, st *stack, cfg config, opts func(*api.Options)) (*yearSeed, error) {
	y := &yearSeed{st: st, now: time.Now()}
	var err error
	if y.loc, err = time.LoadLocation(cfg.readsTimezone); err != nil {
		return nil, err
	}
	if y.ds, err = openDayStores(ctx); err != nil {
		return nil, err
	}
	y.data, err = setupReads(ctx, st, cfg, y.ds, y.now)
	if err == nil {
		y.view, err = streams.WatchShards(ctx, st.js, st.sc)
	}
	if err != nil {
		y.close(ctx)
		return nil, err
	}
	y.bucket = newTimedBucket(y.ds.primary)
	y.reader = &timedReader{r: reads.New(daydb.One(st.pool), y.view, y.ds.cache, y.bucket, 0, zerolog.Nop())}
	o := api.Options{Reader: y.reader, RateLimit: 1e9, RateBurst: 1e9, HeartbeatRate: 1e9, HeartbeatBurst: 1e9, ByteRate: 1e12, ByteBurst: 1 << 40, MaxDaysPerRequest: 1 << 20, MaxDayHeartbeats: 1 << 30, MaxDayBytes: 1 << 40, Log: st.log}
	if opts != nil {
		opts(&o)
	}
	y.handler = api.New(st.accounts(), st.pub, o)
	return y, nil
}

// drop leaves the user's days as the janitor does, so that they are read
// from SSDB (warm) or, with their cache keys gone, from S3 (cold).
func (y *yearSeed) drop(ctx context.Context) error {
	if y.view.State(y.data.days[0]) == streams.ShardDropped {
		return nil
	}
	return dropShards(ctx, y.st, y.view, y.data.days)
}

// serve puts handler on a loopback port, for a client outside the process
// (a browser); stop closes it.
func (y *yearSeed) serve() (url string, stop func() error, err error) {
	srv, err := wiring.ListenAPI("127.0.0.1:0", y.handler)
	if err != nil {
		return "", nil, err
	}
	return srv.URL(), func() error { return srv.Close(10 * time.Second) }, nil
}

// close deletes the day files and the cache keys; the database goes with
// the stack.
func (y *yearSeed) close(ctx context.Context) {
	if y.view != nil {
		_ = y.view.Stop()
	}
	if y.data != nil {
		cleanupReads(ctx, y.ds, y.data)
	}
	y.ds.close()
}

func runReads(ctx context.Context, st *stack, cfg config) ([]result, error) {
	y, err := seedYear(ctx, st, cfg, nil)
	if err != nil {
		return nil, err
	}
	defer y.close(ctx)
	end := stats.DateOf(y.now, y.loc).AddDays(-1)

	out := []result{setupRow(y.data)}
	for _, state := range readStates {
		if !slices.Contains(cfg.readsStates, state) {
			continue
		}
		if state != "hot" {
			if err := y.drop(ctx); err != nil {
				return out, err
			}
		}
		for i, n := range readRanges {
			start := end.AddDays(1 - n)
			call := readCall{name: fmt.Sprintf("%dd", n), days: stats.UTCDays(start, end, y.loc),
				method: http.MethodGet, path: "/api/v1/users/current/summaries?start=" + start.String() + "&end=" + end.String()}
			row, err := y.measure(ctx, cfg, state, call, cfg.readsIterations[i])
			if err != nil {
				return out, err
			}
			out = append(out, row)
		}
		if state == "hot" {
			continue // a year attached in Postgres is a state the janitor never leaves
		}
		for _, call := range dashboardCalls {
			call.days = y.data.days
			row, err := y.measure(ctx, cfg, state, call, cfg.readsIterations[len(readRanges)-1])
			if err != nil {
				return out, err
			}
			out = append(out, row)
		}
	}
	return out, nil
}

// dropShards leaves the days as the janitor leaves them: marked dropped in
// the shards bucket, their partitions gone (hundreds of attached partitions
// would slow the planning of the query for the days still active). It
// waits until the reader's view has every day.
func dropShards(ctx context.Context, st *stack, view *streams.ShardView, days []string) error {
	kv, err := st.js.KeyValue(ctx, st.sc.ShardsBucket)
	if err != nil {
		return err
	}
	for _, d := range days {
		if _, err := streams.PutShard(ctx, kv, d, streams.Shard{State: streams.ShardDropped, UpdatedAt: time.Now().UTC(), By: "bench"}, 0); err != nil {
			return fmt.Errorf("mark %s dropped: %w", d, err)
		}
		if err := pgheartbeats.DropTable(ctx, st.pool, d); err != nil {
			return err
		}
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if view.State(days[len(days)-1]) == streams.ShardDropped && view.State(days[0]) == streams.ShardDropped {
			return nil
		}
	}
	return fmt.Errorf("the shard view did not see %d days dropped within 30s", len(days))
}

// readCall is one request the scenario times: a WakaTime route (GET) or a
// StatsService method over the Connect protocol with JSON, as the
// dashboard's connect-web client sends it.
type readCall struct {
	name         string
	method, path string
	body         string   // a Connect call's JSON message
	days         []string // UTC days it reads: their cache keys go for cold
}

// connectCall is a StatsService method as the dashboard calls it.
func connectCall(name, method, body string) readCall {
	return readCall{name: name, method: http.MethodPost, path: "/heartlog.v1.StatsService/" + method, body: body}
}

// dashboardCalls are the dashboard's year-long reads beside the summaries,
// measured warm and cold over the heavy user's whole year.
var dashboardCalls = []readCall{
	connectCall("heatmap", "GetHeatMap", `{}`),
	connectCall("stats-last_year", "GetStats", `{"range":"last_year"}`),
	connectCall("insights-last_year", "GetInsights", `{"range":"last_year"}`),
	connectCall("projects", "GetProjects", `{}`),
}

// measure times a call in a state (profiled with -cpuprofile) and gives
// its row.
func (y *yearSeed) measure(ctx context.Context, cfg config, state string, call readCall, iterations int) (result, error) {
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}
	stop, err := startProfile(cfg, "reads-"+state+"-"+call.name)
	if err != nil {
		return result{}, err
	}
	run, err := y.measureReads(ctx, state, call, iterations)
	if perr := stop(); err == nil {
		err = perr
	}
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %w", state, call.name, err)
	}
	return readRow(state+"/"+call.name, run), nil
}

// measureReads runs iterations timed requests (after 2 untimed ones)
// through the API handler. For cold, the user's cache keys of the call's
// days are deleted before each request, untimed.
func (y *yearSeed) measureReads(ctx context.Context, state string, call readCall, iterations int) (readRun, error) {
	var run readRun
	var keys []string
	for _, d := range call.days {
		k := dayfile.Key(y.data.heavy.ObjectPrefix, y.data.heavy.ID, d)
		keys = append(keys, k, digest.Key(k), digest.GenKey(k)) // a wipe: a day with a generation left is not filled
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(y.data.key))
	for i := range iterations + 2 {
		if state == "cold" {
			if err := y.ds.cache.Delete(ctx, keys...); err != nil {
				return run, err
			}
		}
		gets := y.bucket.get.n.Load()
		req := httptest.NewRequestWithContext(ctx, call.method, call.path, strings.NewReader(call.body))
		req.Header.Set("Authorization", auth)
		if call.body != "" {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Connect-Protocol-Version", "1")
		}
		rec := httptest.NewRecorder()
		t0 := time.Now()
		y.handler.ServeHTTP(rec, req)
		took := time.Since(t0)
		if rec.Code != http.StatusOK {
			return run, fmt.Errorf("%s %s: %d %s", call.method, call.path, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
		if i < 2 {
			continue // warm-up: connections, buffers, the key cache
		}
		run.total = append(run.total, took)
		run.fetch = append(run.fetch, y.reader.last)
		run.heartbeats, run.bodyBytes = y.reader.heartbeats, rec.Body.Len()
		run.s3Gets += y.bucket.get.n.Load() - gets
	}
	return run, nil
}

func setupRow(rd *readData) result {
	return result{
		scenario: "reads-setup", target: "—",
		result: fmt.Sprintf("%.0f s", rd.setup.Seconds()),
		notes: []string{fmt.Sprintf("%s users; heavy user: %d days, %.1f MB of day files; in all %s rows (COPY), %s day files in the primary bucket and the cache",
			thousands(float64(rd.users)), len(rd.days), float64(rd.fileSize)/1e6, thousands(float64(rd.rows)), thousands(float64(rd.files)))},
		cpuNote: "-",
	}
}

func readRow(name string, run readRun) result {
	r := result{scenario: "reads/" + name, target: "—", latency: summarize(run.total), cpuNote: "-"}
	r.result = "p99 " + ms(r.latency.p99)
	if t, ok := readTargets[name]; ok {
		r.target = "p99 ≤ " + ms(t)
		if r.latency.p99 <= t {
			r.result += " ✅"
		} else {
			r.result = fmt.Sprintf("**%s** ❌ (%.1f×)", r.result, float64(r.latency.p99)/float64(t))
		}
	}
	fetch := summarize(run.fetch)
	r.notes = []string{
		fmt.Sprintf("%d requests; %s heartbeats read per request; read path (reads.Reader) p50 %s p99 %s, the rest (stats.Summarize, JSON of %s KB) p50 ≈ %s",
			r.latency.n, thousands(float64(run.heartbeats)), ms(fetch.p50), ms(fetch.p99), thousands(float64(run.bodyBytes)/1e3), ms(r.latency.p50-fetch.p50)),
		fmt.Sprintf("S3 GETs: %s (%.1f per request)", thousands(float64(run.s3Gets)), float64(run.s3Gets)/float64(max(1, r.latency.n))),
	}
	return r
}

// cleanupReads deletes the day files from the primary bucket and the
// cache; the database goes with the stack.
func cleanupReads(ctx context.Context, ds *dayStores, rd *readData) {
	ctx = context.WithoutCancel(ctx)
	n, refused, reason, err := deleteKeys(ctx, ds.primaryCfg, rd.keys, false)
	for i := 0; i < len(rd.keys) && err == nil; i += 1000 {
		var del []string
		for _, k := range rd.keys[i:min(i+1000, len(rd.keys))] {
			del = append(del, k, digest.Key(k), digest.GenKey(k))
		}
		err = ds.cache.Delete(ctx, del...)
	}
	fmt.Fprintf(os.Stderr, "bench: reads: cleanup: %d objects deleted, %d refused %s; error: %v\n", n, len(refused), reason, err)
}

// parseIterations reads -reads-iterations: one count per range.
func parseIterations(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) != len(readRanges) {
		return nil, fmt.Errorf("-reads-iterations needs %d counts (for %v days), got %q", len(readRanges), readRanges, s)
	}
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-reads-iterations: %q is not a positive count", p)
		}
		out[i] = n
	}
	return out, nil
}
