package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"
)

// httpScenarioSpec is one HTTP load shape: arrays of size heartbeats to
// the bulk route, or single heartbeats to the single-object route.
type httpScenarioSpec struct {
	name  string
	conns int
	size  int
	bulk  bool // the bulk route (else size must be 1)

	// keys are the users' API keys, which connection w takes in turn
	// (keys w, w+conns, ...), one a request; nil: a new user for each
	// connection.
	keys []string
	// base is the API's URL (empty: the stack's unlimited API).
	base string
}

// sample is one finished request.
type sample struct {
	end     time.Time
	latency time.Duration
	status  int // 0: transport error; -1: 201 with a refused item
}

// runHTTP runs one HTTP scenario for warmup+duration and measures the
// window after the warm-up.
func runHTTP(ctx context.Context, st *stack, cfg config, spec httpScenarioSpec) (result, error) {
	res := result{scenario: spec.name, target: targetFor(spec.name)}
	keys := spec.keys
	if keys == nil {
		var err error
		if keys, err = st.newUsers(ctx, "bench-"+spec.name, spec.conns); err != nil {
			return res, fmt.Errorf("create users: %w", err)
		}
	}
	if len(keys) < spec.conns {
		return res, fmt.Errorf("%d users for %d connections", len(keys), spec.conns)
	}
	path := "/api/v1/users/current/heartbeats"
	bulk := spec.bulk
	if bulk {
		path += ".bulk"
	}
	base := spec.base
	if base == "" {
		base = st.baseURL
	}
	target := base + path

	start := time.Now()
	t0 := start.Add(cfg.warmup)
	t1 := t0.Add(cfg.duration)
	samples := make([][]sample, spec.conns)
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	labelled(wctx, "loadgen", func(lctx context.Context) {
		for w := range spec.conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []string
				for k := w; k < len(keys); k += spec.conns {
					mine = append(mine, keys[k])
				}
				samples[w] = worker(lctx, w, target, mine, spec.size, bulk, t1)
			}()
		}
	})

	// The measured window: stream count, CPU time and profile at each end.
	if !sleepUntil(ctx, t0) {
		cancel()
		wg.Wait()
		return res, ctx.Err()
	}
	msgs0, err := st.streamMsgs(ctx)
	if err != nil {
		cancel()
		wg.Wait()
		return res, err
	}
	stopProfile, err := startProfile(cfg, spec.name)
	if err != nil {
		cancel()
		wg.Wait()
		return res, err
	}
	cpu0 := cpuTime()
	wall0 := time.Now()
	ok := sleepUntil(ctx, t1)
	cpu1 := cpuTime()
	wall1 := time.Now()
	msgs1, merr := st.streamMsgs(ctx)
	perr := stopProfile()
	wg.Wait()
	if !ok {
		return res, ctx.Err()
	}
	if merr != nil {
		return res, merr
	}
	if perr != nil {
		return res, perr
	}

	window := wall1.Sub(wall0).Seconds()
	var lat []time.Duration
	errorsBy := map[string]int{}
	total := 0
	for _, ws := range samples {
		for _, s := range ws {
			if s.end.Before(t0) || s.end.After(t1) {
				continue
			}
			total++
			switch s.status {
			case http.StatusCreated:
				lat = append(lat, s.latency)
			case 0:
				errorsBy["transport"]++
			case -1:
				errorsBy["201 with refused items"]++
			default:
				errorsBy[strconv.Itoa(s.status)]++
			}
		}
	}
	res.requests = total
	res.okRequests = len(lat)
	res.heartbeats = len(lat) * spec.size
	res.seconds = window
	res.msgs = msgs1 - msgs0
	res.cpuCores = (cpu1 - cpu0).Seconds() / window
	res.errors = errorsBy
	res.latency = summarize(lat)
	res.conns = spec.conns
	res.size = spec.size
	if res.okRequests == 0 {
		return res, fmt.Errorf("no request was acknowledged (errors: %s)", formatErrors(errorsBy))
	}
	return res, nil
}

// worker posts sequentially on its own keep-alive connection until t1, for
// each of keys' users in turn.
func worker(ctx context.Context, w int, target string, keys []string, size int, bulk bool, t1 time.Time) []sample {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	g := newGenerator(w)
	headers := make([]http.Header, len(keys))
	for i, key := range keys {
		headers[i] = cliHeader(key, g.userAgent, g.machine)
	}
	out := make([]sample, 0, 4096)
	var body []byte
	var resp bytes.Buffer
	for ctx.Err() == nil {
		now := time.Now()
		if now.After(t1) {
			break
		}
		body = body[:0]
		if bulk {
			body = g.appendBulk(body, now, size)
		} else {
			body = g.appendHeartbeat(body, now, 0)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			panic(err) // a bad URL is a bug here
		}
		req.Header = headers[len(out)%len(headers)]
		start := time.Now()
		r, err := client.Do(req)
		status := 0
		if err == nil {
			resp.Reset()
			_, err = io.Copy(&resp, r.Body)
			r.Body.Close()
			if err == nil {
				status = r.StatusCode
				if bulk && status == http.StatusCreated && bytes.Count(resp.Bytes(), []byte(",201]")) != size {
					status = -1
				}
			}
		}
		end := time.Now()
		if err != nil && ctx.Err() != nil {
			break
		}
		out = append(out, sample{end: end, latency: end.Sub(start), status: status})
		if status == 0 {
			time.Sleep(10 * time.Millisecond) // do not spin on a dead server
		}
	}
	return out
}

// cliHeader is what wakatime-cli sends with a heartbeat request.
func cliHeader(key, userAgent, machine string) http.Header {
	return http.Header{
		"Accept":          {"application/json"},
		"Accept-Encoding": {"gzip"},
		// wakatime-cli sends base64(key), without the colon of RFC 7617.
		"Authorization":  {"Basic " + base64.StdEncoding.EncodeToString([]byte(key))},
		"Content-Type":   {"application/json"},
		"Timezone":       {"Etc/UTC"},
		"User-Agent":     {userAgent},
		"X-Machine-Name": {machine},
	}
}

// generator writes WakaTime heartbeats shaped like wakatime-cli's, distinct
// from each other: one client (editor, machine) per connection.
type generator struct {
	rng       *rand.Rand
	userAgent string
	machine   string
	offset    float64 // seconds back from now, so that clients do not share times
	seq       int
}

var (
	userAgents = []string{
		"wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 vscode/1.90.0 vscode-wakatime/24.5.0",
		"wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 vim/9.0 vim-wakatime/11.0.0",
		"wakatime/v1.90.0 (darwin-23.4.0-arm64) go1.26.8 JetBrains/GoLand-2024.1 jetbrains-wakatime/15.0.2",
		"wakatime/v1.90.0 (windows-10.0.22631-amd64) go1.26.8 emacs/29.3 wakatime-mode/1.0.2",
	}
	projects = []struct{ name, lang, ext string }{
		{"heartlog", "Go", "go"}, {"webshop", "TypeScript", "ts"}, {"ml-pipeline", "Python", "py"},
		{"kernel-patches", "C", "c"}, {"dotfiles", "Bash", "sh"}, {"api-gateway", "Rust", "rs"},
	}
	dirs       = []string{"api", "internal/store", "cmd/server", "pkg/util", "src/components", "tests"}
	files      = []string{"main", "server", "handler", "store", "util", "config", "index", "model"}
	branches   = []string{"main", "feature/x", "fix/login-timeout", "develop"}
	categories = []string{"coding", "coding", "coding", "debugging", "building", "code reviewing"}
	apps       = []string{"Slack", "Firefox", "Terminal", "Zoom"}
	domains    = []string{"github.com", "pkg.go.dev", "stackoverflow.com", "developer.mozilla.org"}
	deps       = [][]string{nil, {"requests", "flask"}, {"github.com/nats-io/nats.go", "github.com/jackc/pgx/v5"}, {"react", "lodash"}}
)

func newGenerator(w int) *generator {
	return &generator{
		rng:       rand.New(rand.NewPCG(uint64(w), 0x6865617274)),
		userAgent: userAgents[w%len(userAgents)],
		machine:   "bench-host-" + strconv.Itoa(w),
		offset:    float64(w%50) * 60,
	}
}

func (g *generator) appendBulk(b []byte, now time.Time, n int) []byte {
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = g.appendHeartbeat(b, now, i)
	}
	return append(b, ']')
}

// appendHeartbeat writes one heartbeat, the i-th of a request sent at now:
// times step back from now (within the last hour), with microseconds that
// keep every heartbeat of this client distinct.
func (g *generator) appendHeartbeat(b []byte, now time.Time, i int) []byte {
	g.seq++
	r := g.rng
	p := projects[r.IntN(len(projects))]
	t := float64(now.UnixMicro())/1e6 - g.offset - float64(i)*2.5
	b = append(b, `{"branch":"`...)
	b = append(b, branches[r.IntN(len(branches))]...)
	b = append(b, `","category":"`...)
	b = append(b, categories[r.IntN(len(categories))]...)
	b = append(b, '"')
	switch k := r.IntN(20); {
	case k < 17: // files, mostly
		b = append(b, `,"cursorpos":`...)
		b = strconv.AppendInt(b, int64(r.IntN(120)), 10)
		if d := deps[r.IntN(len(deps))]; d != nil {
			b = append(b, `,"dependencies":[`...)
			for j, s := range d {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendQuote(b, s)
			}
			b = append(b, ']')
		}
		b = append(b, `,"entity":"/home/dev/src/`...)
		b = append(b, p.name...)
		b = append(b, '/')
		b = append(b, dirs[r.IntN(len(dirs))]...)
		b = append(b, '/')
		b = append(b, files[r.IntN(len(files))]...)
		b = strconv.AppendInt(b, int64(g.seq%97), 10)
		b = append(b, '.')
		b = append(b, p.ext...)
		b = append(b, `","type":"file","is_write":`...)
		b = strconv.AppendBool(b, r.IntN(4) == 0)
		b = append(b, `,"language":"`...)
		b = append(b, p.lang...)
		b = append(b, `","line_additions":`...)
		b = strconv.AppendInt(b, int64(r.IntN(5)), 10)
		b = append(b, `,"line_deletions":`...)
		b = strconv.AppendInt(b, int64(r.IntN(3)), 10)
		b = append(b, `,"lineno":`...)
		b = strconv.AppendInt(b, int64(1+r.IntN(800)), 10)
		b = append(b, `,"lines":`...)
		b = strconv.AppendInt(b, int64(800+r.IntN(400)), 10)
	case k < 19:
		b = append(b, `,"entity":"`...)
		b = append(b, apps[r.IntN(len(apps))]...)
		b = append(b, `","type":"app"`...)
	default:
		b = append(b, `,"entity":"`...)
		b = append(b, domains[r.IntN(len(domains))]...)
		b = append(b, `","type":"domain"`...)
	}
	b = append(b, `,"project":"`...)
	b = append(b, p.name...)
	b = append(b, `","project_root_count":`...)
	b = strconv.AppendInt(b, int64(3+r.IntN(3)), 10)
	b = append(b, `,"time":`...)
	b = strconv.AppendFloat(b, t, 'f', 6, 64)
	b = append(b, `,"user_agent":"`...)
	b = append(b, g.userAgent...)
	return append(b, `"}`...)
}

// sleepUntil waits for t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// startHeapProfile, when -cpuprofile is set, samples the Go heap every
// 250 ms until stopped and writes <name>-heap.pprof as it was at the
// largest heap seen: what held the memory at the peak (heartlog's code or
// the embedded NATS server's, by the stacks).
func startHeapProfile(cfg config, name string) func() error {
	if cfg.cpuProfile == "" {
		return func() error { return nil }
	}
	done, finished := make(chan struct{}), make(chan error, 1)
	go func() {
		var peak uint64
		var best bytes.Buffer
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				finished <- os.WriteFile(cfg.cpuProfile+"/"+name+"-heap.pprof", best.Bytes(), 0o644)
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak {
				peak = ms.HeapInuse
				best.Reset()
				_ = pprof.Lookup("heap").WriteTo(&best, 0)
			}
		}
	}()
	return func() error {
		close(done)
		return <-finished
	}
}

// startProfile starts a CPU profile for the scenario when -cpuprofile is
// set; the returned func stops it.
func startProfile(cfg config, name string) (func() error, error) {
	if cfg.cpuProfile == "" {
		return func() error { return nil }, nil
	}
	path := cfg.cpuProfile + "/" + name + ".pprof"
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
