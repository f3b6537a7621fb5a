package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	settings "heartlog/config"
	"heartlog/heartbeat"
	"heartlog/processors"
	"heartlog/processors/catalog"
	"heartlog/processors/compaction"
	"heartlog/schema/dayfile"
	"heartlog/shards"
	"heartlog/streams"
	"heartlog/users"
)

// paced: -paced-users users, each sending one heartbeat every
// -paced-min-interval to -paced-max-interval (uniform), as editor plugins
// do through wakatime-cli (a new connection for each, single-heartbeat
// route), through the API with the production limits, for
// -paced-duration, while every processor and the day closer run as
// `heartlog dev` runs them. The heartbeats are of yesterday (UTC),
// at the clock time they are sent, so that the day is open while they
// arrive and can be closed afterwards; the closer's CloseDelay
// (-paced-close-delay) keeps it from closing yesterday meanwhile. The
// day is then closed as `heartlog days close` closes it, and
// -paced-late-users users send a few late heartbeats.

// pacedUser is one simulated user's traffic.
type pacedUser struct {
	key    string
	sent   int
	acked  int
	errors map[string]int
	lat    []time.Duration
}

// pacedLateBeats is the heartbeats of each late request (one bulk, as an
// offline queue sends them).
const pacedLateBeats = 3

// onDay is now's clock time on day (midnight UTC), so that paced
// heartbeats stay on day however long the run.
func onDay(day, now time.Time) time.Time {
	now = now.UTC()
	return day.Add(max(now.Sub(now.Truncate(24*time.Hour)), 10*time.Second))
}

// cliClient is a client that opens a connection for each request, as
// wakatime-cli, a new process for each heartbeat, does.
var cliClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}, Timeout: 30 * time.Second}

// sendAs posts body for user u (its generator g) and records the outcome.
func (u *pacedUser) send(ctx context.Context, url string, g *generator, body []byte, n int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		panic(err) // a bad URL is a bug here
	}
	req.Header = cliHeader(u.key, g.userAgent, g.machine)
	start := time.Now()
	resp, err := cliClient.Do(req)
	u.sent++
	if err != nil {
		if ctx.Err() == nil {
			u.errors["transport"]++
		}
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		u.errors["transport"]++
	case resp.StatusCode != http.StatusCreated:
		u.errors[strconv.Itoa(resp.StatusCode)]++
	case n > 1 && bytes.Count(b, []byte(",201]")) != n:
		u.errors["201 with refused items"]++
	default:
		u.acked++
		u.lat = append(u.lat, time.Since(start))
	}
}

// pace runs every user until end and returns them.
func pace(ctx context.Context, cfg config, base string, keys []string, day time.Time, end time.Time) []*pacedUser {
	url := base + "/api/v1/users/current/heartbeats"
	out := make([]*pacedUser, len(keys))
	var wg sync.WaitGroup
	labelled(ctx, "loadgen", func(lctx context.Context) {
		for i, key := range keys {
			u := &pacedUser{key: key, errors: map[string]int{}}
			out[i] = u
			wg.Add(1)
			go func() {
				defer wg.Done()
				g := newGenerator(i)
				g.offset = 0
				rng := rand.New(rand.NewPCG(uint64(i), 0x70616365))
				span := cfg.pacedMaxInterval - cfg.pacedMinInterval
				every := func() time.Duration { return cfg.pacedMinInterval + time.Duration(rng.Int64N(int64(span)+1)) }
				// Plugins start at any moment: the first heartbeat comes
				// somewhere within the first interval.
				next := time.Now().Add(time.Duration(rng.Int64N(int64(every()) + 1)))
				var body []byte
				for next.Before(end) && sleepUntil(lctx, next) {
					body = g.appendHeartbeat(body[:0], onDay(day, time.Now()), 0)
					u.send(lctx, url, g, body, 1)
					next = next.Add(every())
				}
			}()
		}
	})
	wg.Wait()
	return out
}

// sendLate posts one bulk of pacedLateBeats heartbeats of day for each
// user and returns the users and user-day keys acknowledged.
func sendLate(ctx context.Context, base string, us []users.User, keys []string, day time.Time) ([]*pacedUser, []string) {
	url := base + "/api/v1/users/current/heartbeats.bulk"
	var out []*pacedUser
	var acked []string
	dayName := day.Format(heartbeat.DayLayout)
	for i, key := range keys {
		u := &pacedUser{key: key, errors: map[string]int{}}
		g := newGenerator(1_000_000 + i)
		g.offset = 0
		u.send(ctx, url, g, g.appendBulk(nil, onDay(day, time.Now()), pacedLateBeats), pacedLateBeats)
		out = append(out, u)
		if u.acked > 0 {
			acked = append(acked, dayfile.Key(us[i].ObjectPrefix, us[i].ID, dayName))
		}
	}
	return out, acked
}

// admissions are the late path's decisions so far, by processor and
// admission (heartlog_processor_admissions_total).
func admissions() map[string]float64 {
	m := gatherMetrics()
	out := map[string]float64{}
	for _, p := range dayfileProcessors {
		for _, a := range []string{"admitted", "passed", "held"} {
			out[p+"/"+a] = m.sum("heartlog_processor_admissions_total", map[string]string{"processor": p, "admission": a})
		}
	}
	return out
}

func admissionsNote(before, after map[string]float64) string {
	s := ""
	for i, p := range dayfileProcessors {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %s/%s/%s", p, thousands(after[p+"/admitted"]-before[p+"/admitted"]),
			thousands(after[p+"/passed"]-before[p+"/passed"]), thousands(after[p+"/held"]-before[p+"/held"]))
	}
	return "late path admitted/passed/held: " + s
}

// loadAvg is /proc/loadavg's three averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func runPaced(ctx context.Context, st *stack, cfg config) (rows []result, err error) {
	ds, err := openDayStores(ctx)
	if err != nil {
		return nil, err
	}
	defer ds.close()
	c, us, keys, err := lifecycleStart(ctx, st, "paced", cfg.pacedUsers)
	if err != nil {
		return nil, err
	}
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	dayName := day.Format(heartbeat.DayLayout)
	fileKeys := make([]string, len(us))
	for i, u := range us {
		fileKeys[i] = dayfile.Key(u.ObjectPrefix, u.ID, dayName)
	}
	if !cfg.dfKeep {
		defer func() {
			rows = append(rows, cleanupDayfiles(context.WithoutCancel(ctx), ds, "paced-cleanup", fileKeys,
				map[string]bool{"primary": true, "backup": true, "cache": true}))
		}()
	}
	base, closeAPI, err := st.devAPI(ctx, c)
	if err != nil {
		return nil, err
	}
	defer closeAPI()

	started := watchStores(c, "paced")
	dp, err := startDevProcessors(ctx, st, c, "paced", catalog.Names(nil), cfg.pacedCloseDelay)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := dp.stop(); err == nil {
			err = serr
		}
	}()
	// The sinks and the closer probe each bucket for conditional writes
	// as they start (a probe object, not a day file): counted apart.
	probes := started.since()["all"]
	open := watchStores(c, "paced")
	adm0 := admissions()
	writes0 := gatherMetrics().sum("heartlog_dayfile_writes_total", nil)

	// The open day.
	fmt.Fprintf(os.Stderr, "bench: paced: %d users, one heartbeat of %s every %s-%s each, for %s\n",
		len(keys), day.Format(time.DateOnly), cfg.pacedMinInterval, cfg.pacedMaxInterval, cfg.pacedDuration)
	cpu0, wall0 := cpuTime(), time.Now()
	pu := pace(ctx, cfg, base, keys, day, wall0.Add(cfg.pacedDuration))
	wall, cpu := time.Since(wall0), cpuTime()-cpu0
	loadTraffic := loadAvg()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	idleIn, left, err := waitIdle(ctx, st, catalog.Names(nil), cfg.idleTimeout)
	if err != nil {
		return nil, err
	}
	openRow := pacedOpenRow(cfg, pu, wall, cpu, loadTraffic)
	openReqs := open.since()
	openCache, err := cacheWrites(ctx, ds.cache, fileKeys)
	if err != nil {
		return nil, err
	}
	openWrites := gatherMetrics().sum("heartlog_dayfile_writes_total", nil) - writes0
	adm1 := admissions()
	a := openReqs["all"]
	openTotal := a.primary.puts + a.primary.gets + a.backup.puts + a.backup.gets + float64(openCache) + openWrites
	openRow.result = fmt.Sprintf("%s day-file requests and writes %s", thousands(openTotal), okMark(openTotal == 0))
	openRow.notes = append(openRow.notes,
		fmt.Sprintf("while open: %s; cache writes %d (generations in Redis); day-file writes %s (heartlog_dayfile_writes_total)",
			requestsNote(openReqs), openCache, thousands(openWrites)),
		admissionsNote(adm0, adm1),
		fmt.Sprintf("not counted: the conditional-write probes at start, %s PUTs and %s GETs", thousands(probes.primary.puts+probes.backup.puts), thousands(probes.primary.gets+probes.backup.gets)),
		fmt.Sprintf("processors idle %s after the traffic (%s messages left)", idleIn.Round(time.Millisecond), thousands(float64(left))))
	rows = append(rows, openRow)
	userDays := 0
	for _, u := range pu {
		if u.acked > 0 {
			userDays++
		}
	}
	if userDays == 0 {
		return rows, errors.New("paced: no heartbeat was acknowledged")
	}

	// The close, as `heartlog days close` does it, beside the closer.
	closeRow, closeCache, err := pacedClose(ctx, st, cfg, c, ds, dayName, fileKeys, userDays, openCache)
	rows = append(rows, closeRow)
	if err != nil {
		return rows, err
	}

	// Late heartbeats of the closed day.
	n := min(cfg.pacedLateUsers, len(us))
	if n == 0 {
		return rows, nil
	}
	late := watchStores(c, "paced")
	adm2 := admissions()
	lu, lateKeys := sendLate(ctx, base, us[:n], keys[:n], day)
	idleIn, left, err = waitIdle(ctx, st, catalog.Names(nil), cfg.idleTimeout)
	if err != nil {
		return rows, err
	}
	lateReqs := late.since()
	lateCache, err := cacheWrites(ctx, ds.cache, fileKeys[:n])
	if err != nil {
		return rows, err
	}
	rows = append(rows, pacedLateRow(c, lu, lateKeys, lateReqs, lateCache-closeCache[:n].sum(), admissionsNote(adm2, admissions()), idleIn, left))
	return rows, nil
}

func okMark(ok bool) string {
	if ok {
		return "✅"
	}
	return "❌"
}

// pacedOpenRow is the traffic's row, its result filled in by the caller.
func pacedOpenRow(cfg config, pu []*pacedUser, wall, cpu time.Duration, load string) result {
	r := result{scenario: "paced (open day)", target: "0 day-file requests and writes", unit: "", seconds: wall.Seconds()}
	var lat []time.Duration
	errs := map[string]int{}
	sent, acked, active := 0, 0, 0
	for _, u := range pu {
		sent += u.sent
		acked += u.acked
		if u.acked > 0 {
			active++
		}
		lat = append(lat, u.lat...)
		for k, v := range u.errors {
			errs[k] += v
		}
	}
	r.latency = summarize(lat)
	r.requests, r.okRequests, r.heartbeats = sent, acked, acked
	r.notes = []string{
		fmt.Sprintf("%d users (%d sent one or more), every %s-%s, %s: %s heartbeats acknowledged of %s sent (%.1f/s; a new connection each, production API limits); errors: %s",
			len(pu), active, cfg.pacedMinInterval, cfg.pacedMaxInterval, cfg.pacedDuration, thousands(float64(acked)), thousands(float64(sent)),
			float64(acked)/wall.Seconds(), formatErrors(errs)),
		"load average at the traffic's end " + load,
	}
	r.cpuNote = fmt.Sprintf("cpu %.2f cores (this process)", cpu.Seconds()/wall.Seconds())
	return r
}

// generations are cache write counts of keys, by key.
type generations []int

func (g generations) sum() int {
	n := 0
	for _, v := range g {
		n += v
	}
	return n
}

// keyWrites are each key's cache writes (its generation in Redis).
func keyWrites(ctx context.Context, ds *dayStores, keys []string) (generations, error) {
	out := make(generations, len(keys))
	for i, k := range keys {
		n, err := cacheWrites(ctx, ds.cache, []string{k})
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// pacedClose closes day with the compaction sinks of `heartlog days
// close` (catalog.CompactionSinks), each over stores of its own counted
// under paced-close/<name>, while the closer keeps running (its requests
// count too: it may take partitions of the day once it is closed). It
// returns the row and each key's cache writes after the close.
func pacedClose(ctx context.Context, st *stack, cfg config, c settings.Config, ds *dayStores, day string, fileKeys []string, userDays, openCache int) (result, generations, error) {
	r := result{scenario: "paced (close)", target: "≤1.05 per user-day: S3 PUTs, backup writes, cache writes", cpuNote: "-"}
	fail := func(err error) (result, generations, error) {
		r.failed = err.Error()
		return r, nil, err
	}
	var sinksBy devProcessors
	defer func() {
		for _, f := range sinksBy.cleanups {
			f()
		}
	}()
	var sinks []processors.Sink
	for _, name := range dayfileProcessors {
		s, err := sinksBy.stores(ctx, st, c, "closer", "paced-close/"+name)
		if err != nil {
			return fail(err)
		}
		sinks = append(sinks, catalog.CompactionSinks(catalog.Env{Config: c, Log: st.log, Stores: s}, createFirst(ctx, st, s), name)...)
	}
	co := catalog.CompactorOptions(c, "bench-days-close", st.log)
	co.TempDir = cfg.workDir
	comp := compaction.New(st.js, st.sc, co)
	running := watchStores(c, "paced")
	closing := watchStores(c, "paced-close")
	fmt.Fprintf(os.Stderr, "bench: paced: closing %s\n", shards.DisplayDay(day))
	cpu0, start := cpuTime(), time.Now()
	var res []compaction.Result
	var err error
	// The closer may hold a partition of the day once it sees it closed:
	// then this close is tried again, as an operator would, and skips what
	// either recorded.
	for try := 0; ; try++ {
		res, err = comp.CloseDay(ctx, day, sinks...)
		if !errors.Is(err, shards.ErrHeld) || try == 20 || !sleepUntil(ctx, time.Now().Add(time.Second)) {
			break
		}
	}
	wall, cpu := time.Since(start), cpuTime()-cpu0
	load := loadAvg()
	if err != nil {
		return fail(err)
	}
	by := closing.since()
	run := running.since()
	all := by["all"].plus(run["closer"])
	gens, err := keyWrites(ctx, ds, fileKeys)
	if err != nil {
		return fail(err)
	}
	cache := gens.sum() - openCache
	recorded := 0
	var hbs int
	for _, x := range res {
		recorded += x.UserDays
		hbs += x.Heartbeats
	}
	per := func(n float64) float64 { return n / float64(userDays) }
	s3, bk, ch := per(all.primary.puts), per(all.backup.puts), per(float64(cache))
	r.result = fmt.Sprintf("S3 PUTs %.2f %s, backup writes %.2f %s, cache writes %.2f %s per user-day",
		s3, okMark(s3 <= 1.05), bk, okMark(bk <= 1.05), ch, okMark(ch <= 1.05))
	lp := run["all"].minus(run["closer"])
	r.seconds = wall.Seconds()
	r.notes = []string{
		fmt.Sprintf("CloseDay took %.1fs (its settle, compaction.Options' default 5s, included), cpu %.2f cores (this process); load average after it %s",
			wall.Seconds(), cpu.Seconds()/wall.Seconds(), load),
		fmt.Sprintf("%s user-days with acknowledged heartbeats; the compaction records %s user-days, %s heartbeats, over %d partitions",
			thousands(float64(userDays)), thousands(float64(recorded)), thousands(float64(hbs)), len(res)),
		fmt.Sprintf("S3: %s PUTs (%s refused as existing), %s GETs; backup: %s PUTs (%s refused), %s GETs; cache writes %d; the running closer's share: %s PUTs, %s GETs",
			thousands(all.primary.puts), thousands(all.primary.conflicts), thousands(all.primary.gets),
			thousands(all.backup.puts), thousands(all.backup.conflicts), thousands(all.backup.gets), cache,
			thousands(run["closer"].primary.puts+run["closer"].backup.puts), thousands(run["closer"].primary.gets+run["closer"].backup.gets)),
		"requests of `days close`: " + requestsNote(by),
		fmt.Sprintf("late path during the close: %s requests", thousands(lp.primary.http()+lp.backup.http())),
	}
	return r, gens, nil
}

// pacedLateRow is the late heartbeats' row: their writes per user-day per
// sink (each late user-day's heartbeats arrive in one request, so in one
// flush).
func pacedLateRow(c settings.Config, lu []*pacedUser, lateKeys []string, reqs map[string]storeCounts, cache int, adm string, idle time.Duration, left uint64) result {
	r := result{scenario: "paced (late)", target: "1 write per user-day per sink per flush", cpuNote: "-"}
	errs := map[string]int{}
	for _, u := range lu {
		for k, v := range u.errors {
			errs[k] += v
		}
	}
	n := len(lateKeys)
	if n == 0 {
		r.failed = "no late request was acknowledged (errors: " + formatErrors(errs) + ")"
		return r
	}
	o, b := reqs[streams.DurableObjects], reqs[streams.DurableBackup]
	per := func(v float64) float64 { return v / float64(n) }
	r.result = fmt.Sprintf("objects %.2f, backup %.2f, cache %.2f writes per user-day", per(o.primary.puts), per(b.backup.puts), per(float64(cache)))
	r.notes = []string{
		fmt.Sprintf("%d users sent one bulk of %d heartbeats each (%d acknowledged; errors: %s)", len(lu), pacedLateBeats, n, formatErrors(errs)),
		"late path requests: " + requestsNote(reqs),
		adm,
		fmt.Sprintf("processors idle %s after the requests (%s messages left; flush ages objects %s, cache %s, backup %s)",
			idle.Round(time.Millisecond), thousands(float64(left)), c.Objects.Age, c.Cache.Age, c.BackupFlush.Age),
	}
	return r
}
