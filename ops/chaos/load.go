package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"heartlog/heartbeat"
	"heartlog/users"
)

// load is a row's bounded generator: users sending paced single
// heartbeats and now and then a bulk request, as wakatime-cli does, with
// every heartbeat the API acknowledged (201 for it) recorded by id.
type load struct {
	st    *stack
	users []loadUser
	// day is the UTC day the load sends for (YYYYMMDD): yesterday when the
	// row began. Every heartbeat is stamped 24 hours before it is sent, so
	// that the day files are written through the real paths: the day's
	// compaction when it is closed (today's files are never written while
	// today is open), and the late path for what arrives after.
	day string
	// oldDay, when not zero, is the start of an extra UTC day that part of
	// each bulk request is sent for (the janitor row).
	oldDay atomic.Int64
	client *http.Client
	seq    atomic.Int64

	mu       sync.Mutex
	acked    map[string]ack // heartbeat id -> where it belongs
	outcomes map[string]int // per request: "201", "503", "transport error", ...
	firstBad time.Time      // when the first request not answered 2xx was sent
	requests int
	items    int // heartbeats sent
}

type loadUser struct {
	users.User
	auth string
}

// ack is an acknowledged heartbeat.
type ack struct {
	user int    // index into load.users
	day  string // UTC day, YYYYMMDD
}

// newLoad creates n users for the row.
func newLoad(ctx context.Context, st *stack, n int) (*load, error) {
	l := &load{st: st, day: utcDay(float64(time.Now().Add(-sendLag).Unix())), acked: map[string]ack{}, outcomes: map[string]int{},
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			Proxy: nil, MaxIdleConnsPerHost: n + 8, IdleConnTimeout: 30 * time.Second,
		}}}
	// serve has created the users bucket by now; the records go to it as
	// they do from `heartlog users create`, so ingest can authenticate them.
	mirror, err := users.OpenMirror(ctx, st.js, st.sc.UsersBucket)
	if err != nil {
		return nil, err
	}
	store := users.NewStore(st.pool, mirror)
	for i := range n {
		u, key, err := store.Create(ctx, users.NewUser{Name: fmt.Sprintf("chaos-%s-%d", st.row, i)})
		if err != nil {
			return nil, fmt.Errorf("create user: %w", err)
		}
		l.users = append(l.users, loadUser{User: u, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(key))})
	}
	return l, nil
}

// run sends until ctx ends: every user one request each interval (a bulk of
// bulkSize every 8th). It returns when every request in flight is done.
func (l *load) run(ctx context.Context, interval time.Duration, bulkSize int) {
	var wg sync.WaitGroup
	for i := range l.users {
		wg.Go(func() {
			// Spread the users over the interval.
			if !sleepCtx(ctx, rand.N(interval)) {
				return
			}
			t := time.NewTicker(interval)
			defer t.Stop()
			for n := 0; ; n++ {
				size := 1
				if n%8 == 7 {
					size = bulkSize
				}
				l.send(ctx, i, size)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	wg.Wait()
}

// heartbeatJSON is one heartbeat as plugins send it.
type heartbeatJSON struct {
	Entity   string  `json:"entity"`
	Type     string  `json:"type"`
	Category string  `json:"category"`
	Language string  `json:"language"`
	Project  string  `json:"project"`
	Time     float64 `json:"time"`
	IsWrite  bool    `json:"is_write"`
	Lines    int     `json:"lines"`
}

func (l *load) heartbeat(user int, at time.Time) heartbeatJSON {
	n := l.seq.Add(1)
	return heartbeatJSON{
		Entity: fmt.Sprintf("/home/chaos/%s/u%d/f%d.go", l.st.row, user, n), Type: "file", Category: "coding",
		Language: "Go", Project: "chaos-" + l.st.row, Time: float64(at.UnixMicro()) / 1e6, IsWrite: n%2 == 0, Lines: int(n % 500),
	}
}

// sendLag is how long before it is sent a heartbeat of the load is stamped:
// a day, so that it belongs to yesterday (load.day).
const sendLag = 24 * time.Hour

// send makes one request of size heartbeats (size 1: the single route).
func (l *load) send(ctx context.Context, user, size int) {
	now := time.Now()
	hbs := make([]heartbeatJSON, size)
	old := l.oldDay.Load()
	for k := range hbs {
		at := now.Add(-sendLag - time.Duration(k)*time.Millisecond)
		if old != 0 && size > 1 && k%2 == 1 {
			// Same time of day, on the old day.
			at = time.Unix(old, 0).Add(time.Duration(now.UnixNano()%int64(24*time.Hour)) - time.Duration(k)*time.Millisecond)
		}
		hbs[k] = l.heartbeat(user, at)
	}
	l.submit(ctx, user, hbs, now)
}

// sendDay sends n heartbeats of user spread over the load's (past) day, in
// bulk requests of 25.
func (l *load) sendDay(ctx context.Context, user, n int) {
	start, _ := time.Parse(heartbeat.DayLayout, l.day)
	for n > 0 && ctx.Err() == nil {
		hbs := make([]heartbeatJSON, min(n, 25))
		for k := range hbs {
			hbs[k] = l.heartbeat(user, start.Add(rand.N(24*time.Hour)))
		}
		n -= len(hbs)
		l.submit(ctx, user, hbs, time.Now())
	}
}

// submit posts hbs (one: the single route, else bulk) and records what the
// answer acknowledged.
func (l *load) submit(ctx context.Context, user int, hbs []heartbeatJSON, now time.Time) {
	size := len(hbs)
	path := "/api/v1/users/current/heartbeats"
	var body []byte
	if size == 1 {
		body, _ = json.Marshal(hbs[0])
	} else {
		path += ".bulk"
		body, _ = json.Marshal(hbs)
	}
	outcome, items := l.post(ctx, user, path, body, size > 1)
	if ctx.Err() != nil && outcome == "transport error" {
		return // cut by the end of the load, not by a fault
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests++
	l.items += size
	l.outcomes[outcome]++
	if outcome != "201" && outcome != "202" && l.firstBad.IsZero() {
		l.firstBad = now
	}
	for _, it := range items {
		l.acked[it.ID] = ack{user: user, day: utcDay(it.Time)}
	}
}

// item is one heartbeat of an answer: {"data": {"id": ..., "time": ...}}.
type item struct {
	Data struct {
		ID   string  `json:"id"`
		Time float64 `json:"time"`
	} `json:"data"`
}

// acked is what the answer acknowledged of one heartbeat.
type acked struct {
	ID   string
	Time float64
}

func utcDay(t float64) string {
	return time.Unix(int64(t), 0).UTC().Format(heartbeat.DayLayout)
}

// post sends one request and returns its outcome and the ids the answer
// acknowledged (201, and for a bulk request 201 per item).
func (l *load) post(ctx context.Context, user int, path string, body []byte, bulk bool) (string, []acked) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.st.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return "request error", nil
	}
	req.Header.Set("Authorization", l.users[user].auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wakatime/v1.98.3 (linux-6.1.0-amd64) go1.22.0 vscode/1.90.0 vscode-wakatime/24.0.0")
	req.Header.Set("X-Machine-Name", "chaos-machine")
	resp, err := l.client.Do(req)
	if err != nil {
		return "transport error", nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "transport error", nil
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
		return strconv.Itoa(resp.StatusCode), nil
	}
	if !bulk {
		var one item
		if json.Unmarshal(data, &one) != nil || one.Data.ID == "" {
			return "201 without id", nil
		}
		return strconv.Itoa(resp.StatusCode), []acked{{one.Data.ID, one.Data.Time}}
	}
	var many struct {
		Responses [][2]json.RawMessage `json:"responses"`
	}
	if json.Unmarshal(data, &many) != nil {
		return "201 undecodable", nil
	}
	var ids []acked
	refused := 0
	for _, r := range many.Responses {
		var one item
		var code int
		_ = json.Unmarshal(r[1], &code)
		if code == http.StatusCreated && json.Unmarshal(r[0], &one) == nil && one.Data.ID != "" {
			ids = append(ids, acked{one.Data.ID, one.Data.Time})
		} else {
			refused++
		}
	}
	if refused > 0 {
		return "201 with refused items", ids
	}
	return strconv.Itoa(resp.StatusCode), ids
}
