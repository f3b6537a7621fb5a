package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"heartlog/api"
	"heartlog/internal/wiring"
)

// runNoisy is the noisy-neighbour scenario: user B sends single heartbeats
// over 8 connections, paced below its own limits, first alone and then
// while user A sends at A's limits (the most heartbeats and distinct days
// a request may carry, as fast as it can over -noisy-conns connections).
// It serves its own API with the production limits (api.Options
// defaults), beside the stack's unlimited one, on the same log. Reported:
// B's latency in both phases, A's 429s and acknowledged heartbeats.
func runNoisy(ctx context.Context, st *stack, cfg config) ([]result, error) {
	base, stop, err := st.limitedAPI()
	if err != nil {
		return nil, err
	}
	defer stop()
	keys, err := st.newUsers(ctx, "bench-noisy", 2)
	if err != nil {
		return nil, fmt.Errorf("create users: %w", err)
	}
	keyA, keyB := keys[0], keys[1]
	const bConns = 8
	// Under B's own budgets: 20 heartbeats/s, 10 requests/s.
	bEvery := time.Second
	alone, err := paceSingles(ctx, base, keyB, bConns, bEvery, cfg.noisyPhase)
	if err != nil {
		return nil, err
	}

	actx, cancel := context.WithCancel(ctx)
	var a noisyCounts
	var wg sync.WaitGroup
	for c := range cfg.noisyConns {
		wg.Go(func() { a.flood(actx, base, keyA, c) })
	}
	with, err := paceSingles(ctx, base, keyB, bConns, bEvery, cfg.noisyPhase)
	cancel()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	row := func(name string, l latencies, notes ...string) result {
		return result{scenario: name, target: "—", result: fmt.Sprintf("%d requests, all 201", l.n), latency: l, cpuNote: "-", notes: notes}
	}
	ratio := "—"
	if alone.p99 > 0 {
		ratio = fmt.Sprintf("%.2f×", float64(with.p99)/float64(alone.p99))
	}
	return []result{
		row("noisy-neighbour: B alone", alone, fmt.Sprintf("%d conns, one heartbeat each per %s", bConns, bEvery)),
		row("noisy-neighbour: B with A", with,
			fmt.Sprintf("B's p99 %s of alone (target ≤ 2×)", ratio),
			fmt.Sprintf("A: %d conns × 1000 hb over 31 days; %d requests, %d answered 429, %d accepted (%s hb), %d other",
				cfg.noisyConns, a.requests.Load(), a.limited.Load(), a.accepted.Load(), thousands(float64(1000*a.accepted.Load())), a.other.Load())),
	}, nil
}

// limitedAPI serves the API with its default limits on a new loopback
// listener, over the stack's users and publisher.
func (st *stack) limitedAPI() (string, func(), error) {
	srv := api.New(st.accounts(), st.pub, api.Options{Log: st.log})
	hs, err := wiring.ListenAPI("127.0.0.1:0", srv)
	if err != nil {
		return "", nil, err
	}
	return hs.URL(), func() { _ = hs.Close(10 * time.Second) }, nil
}

// paceSingles sends one heartbeat per connection every interval for d and
// returns the latencies; anything but 201 is an error.
func paceSingles(ctx context.Context, base, key string, conns int, every, d time.Duration) (latencies, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var failed error
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := range conns {
		wg.Go(func() {
			client := oneConnClient()
			g := newGenerator(1000 + c)
			t := time.NewTicker(every)
			defer t.Stop()
			for time.Now().Before(end) && ctx.Err() == nil {
				body := g.appendHeartbeat(nil, time.Now(), 0)
				start := time.Now()
				code, err := post(ctx, client, base+"/api/v1/users/current/heartbeats", key, g.userAgent, body)
				took := time.Since(start)
				mu.Lock()
				switch {
				case err != nil && ctx.Err() == nil:
					failed = errors.Join(failed, err)
				case err == nil && code != http.StatusCreated:
					failed = errors.Join(failed, fmt.Errorf("user B answered %d", code))
				case err == nil:
					lat = append(lat, took)
				}
				mu.Unlock()
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return latencies{}, ctx.Err()
	}
	return summarize(lat), failed
}

// noisyCounts are user A's answers.
type noisyCounts struct {
	requests, limited, accepted, other atomic.Int64
}

// flood posts 1000 heartbeats over 31 UTC days per request, back to back,
// until ctx is done.
func (n *noisyCounts) flood(ctx context.Context, base, key string, c int) {
	client := oneConnClient()
	g := newGenerator(2000 + c)
	for r := 0; ctx.Err() == nil; r++ {
		code, err := post(ctx, client, base+"/api/v1/users/current/heartbeats.bulk", key, g.userAgent, spreadBulk(c, r))
		if err != nil {
			continue
		}
		n.requests.Add(1)
		switch code {
		case http.StatusTooManyRequests:
			n.limited.Add(1)
		case http.StatusCreated:
			n.accepted.Add(1)
		default:
			n.other.Add(1)
		}
	}
}

// spreadBulk is 1000 distinct heartbeats over the last 31 UTC days.
func spreadBulk(c, r int) []byte {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	items := make([]string, 1000)
	for i := range items {
		at := today.AddDate(0, 0, -1-i%31).Add(time.Duration(i) * time.Second)
		items[i] = fmt.Sprintf(`{"entity":"/home/a/noisy/%d/%d/%d.go","type":"file","category":"coding","time":%d,"project":"noisy","language":"Go"}`, c, r, i, at.Unix())
	}
	return []byte("[" + strings.Join(items, ",") + "]")
}

func oneConnClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true,
	}}
}

func post(ctx context.Context, client *http.Client, url, key, userAgent string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(key)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}
