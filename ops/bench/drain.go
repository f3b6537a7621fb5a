package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// runDrain publishes a backlog through the Publisher with no processor
// running, then times the Postgres processor draining it. It returns the
// drain-publish and drain results.
func runDrain(ctx context.Context, st *stack, cfg config) ([]result, error) {
	// Start from an empty stream and no postgres consumer, so that the
	// processor sees exactly the backlog (earlier scenarios also publish).
	if err := freshStream(ctx, st); err != nil {
		return nil, err
	}
	var baseRows int64
	if err := st.pool.QueryRow(ctx, "SELECT count(*) FROM heartbeats").Scan(&baseRows); err != nil {
		return nil, err
	}

	pubRes, distinct, err := publishDrainBacklog(ctx, st, cfg, "drain-publish", cfg.drainDays)
	if err != nil {
		return nil, err
	}
	results := []result{pubRes}

	// Drain it into Postgres.
	drainRes := result{scenario: "drain", target: targetFor("drain"), msgs: pubRes.msgs, distinct: distinct}
	stopProfile, err := startProfile(cfg, "drain")
	if err != nil {
		return results, err
	}
	want := baseRows + int64(distinct)
	cpu0, wall0 := cpuTime(), time.Now()
	if err := st.startProcessor(ctx, cfg.drainFetch); err != nil {
		_ = stopProfile()
		return results, err
	}
	sink := st.proc.sink
	done, err := waitRows(ctx, cfg, sink, int64(distinct), want, func(ctx context.Context) (int64, error) {
		var n int64
		err := st.pool.QueryRow(ctx, "SELECT count(*) FROM heartbeats").Scan(&n)
		return n, err
	})
	wall1, cpu1 := time.Now(), cpuTime()
	perr := stopProfile()
	st.stopProcessor()
	if err != nil {
		return results, err
	}
	if perr != nil {
		return results, perr
	}
	drainRes.seconds = done.Sub(wall0).Seconds()
	drainRes.heartbeats = distinct
	drainRes.cpuCores = (cpu1 - cpu0).Seconds() / wall1.Sub(wall0).Seconds()
	sink.mu.Lock()
	drainRes.latency = summarize(sink.commits)
	drainRes.requests = len(sink.commits)
	drainRes.okRequests = len(sink.commits)
	for _, n := range sink.sizes {
		drainRes.maxCommitRows = max(drainRes.maxCommitRows, n)
	}
	sink.mu.Unlock()
	return append(results, drainRes), nil
}

// publishDrainBacklog builds the backlog of -drain-heartbeats over
// -drain-users and days UTC days, publishes it (publishBacklog) and returns
// the publish row and how many distinct heartbeats it holds.
func publishDrainBacklog(ctx context.Context, st *stack, cfg config, name string, days int) (result, int, error) {
	fmt.Fprintf(os.Stderr, "bench: preparing %d heartbeats for %d users over %d UTC days\n", cfg.drainHeartbeats, cfg.drainUsers, days)
	hbs, prefixes, err := backlog(cfg.drainHeartbeats, cfg.drainUsers, days, time.Now())
	if err != nil {
		return result{}, 0, err
	}
	distinct := distinctIDs(hbs)
	pubRes, err := publishBacklog(ctx, st, cfg, name, hbs, prefixes)
	runtime.GC() // the backlog is published: let the processor phase have its memory
	return pubRes, distinct, err
}

// publishBacklog publishes hbs through a fresh Publisher from
// -drain-publishers goroutines, -drain-batch heartbeats per Publish call,
// and returns the publish row (scenario name, which is also the CPU
// profile's name).
func publishBacklog(ctx context.Context, st *stack, cfg config, name string, hbs []*heartlogv1.Heartbeat, prefixes map[string]string) (result, error) {
	pubRes := result{scenario: name, target: "—", conns: cfg.drainPublishers, size: cfg.drainBatch}
	msgs0, err := st.streamMsgs(ctx)
	if err != nil {
		return pubRes, err
	}
	var pub *streams.Publisher
	labelled(ctx, "publisher", func(context.Context) {
		pub = streams.NewPublisher(st.nc, st.js, st.sc, st.publisherOptions())
	})
	stopProfile, err := startProfile(cfg, name)
	if err != nil {
		pub.Close()
		return pubRes, err
	}
	batches := make(chan []*heartlogv1.Heartbeat)
	lat := make([][]time.Duration, cfg.drainPublishers)
	var pubErr error
	var errOnce sync.Once
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	cpu0, wall0 := cpuTime(), time.Now()
	labelled(pctx, "loadgen", func(lctx context.Context) {
		for w := range cfg.drainPublishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					start := time.Now()
					if err := pub.Publish(lctx, b, prefixes); err != nil {
						errOnce.Do(func() { pubErr = err; cancel() })
						continue
					}
					lat[w] = append(lat[w], time.Since(start))
				}
			}()
		}
	})
feed:
	for i := 0; i < len(hbs); i += cfg.drainBatch {
		select {
		case batches <- hbs[i:min(i+cfg.drainBatch, len(hbs))]:
		case <-pctx.Done():
			break feed
		}
	}
	close(batches)
	wg.Wait()
	wall1, cpu1 := time.Now(), cpuTime()
	cancel()
	pub.Close()
	perr := stopProfile()
	if pubErr != nil {
		return pubRes, fmt.Errorf("publish: %w", pubErr)
	}
	if ctx.Err() != nil {
		return pubRes, ctx.Err()
	}
	if perr != nil {
		return pubRes, perr
	}
	msgs1, err := st.streamMsgs(ctx)
	if err != nil {
		return pubRes, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	pubRes.seconds = wall1.Sub(wall0).Seconds()
	pubRes.heartbeats = len(hbs)
	pubRes.requests = len(all)
	pubRes.okRequests = len(all)
	pubRes.msgs = msgs1 - msgs0
	pubRes.cpuCores = (cpu1 - cpu0).Seconds() / pubRes.seconds
	pubRes.latency = summarize(all)
	return pubRes, nil
}

// deletePostgresConsumer deletes the Postgres processor's durable consumer,
// if any: the next one starts from the stream's first message.
func (st *stack) deletePostgresConsumer(ctx context.Context) error {
	if err := st.js.DeleteConsumer(ctx, st.sc.Stream, streams.DurablePostgres); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer: %w", err)
	}
	return nil
}

// waitRows polls until count says want rows are stored and returns when
// it saw them. The processor's own count of committed heartbeats is free
// to read, so it is what is polled; once it says the backlog is in, count
// (a SELECT count(*)) confirms it (and is polled from then on if it does
// not).
func waitRows(ctx context.Context, cfg config, sink *countingSink, backlog, want int64, count func(context.Context) (int64, error)) (time.Time, error) {
	tick := time.NewTicker(cfg.drainPoll)
	defer tick.Stop()
	deadline := time.NewTimer(cfg.drainTimeout)
	defer deadline.Stop()
	var rows int64
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("the processor committed %d of %d heartbeats (%d rows counted) within -drain-timeout %s", sink.heartbeats.Load(), backlog, rows, cfg.drainTimeout)
		case now := <-tick.C:
			if sink.heartbeats.Load() < backlog {
				if now.Sub(last) >= 5*time.Second {
					fmt.Fprintf(os.Stderr, "bench: drain: %d of %d heartbeats committed\n", sink.heartbeats.Load(), backlog)
					last = now
				}
				continue
			}
			var err error
			if rows, err = count(ctx); err != nil {
				return time.Time{}, err
			}
			if rows >= want {
				return now, nil
			}
		}
	}
}

// backlog builds n prepared heartbeats: heartbeat k belongs to user k mod
// nu, on day (k / nu) mod nd, so that consecutive Publish batches hold many
// users of one day, as coalesced requests do. Every user gets a fresh
// random id and a random 8-character [a-z0-9] object prefix, as
// users.Create would give them (the users are not created in Postgres: no
// processor needs them there).
func backlog(n, nu, nd int, now time.Time) ([]*heartlogv1.Heartbeat, map[string]string, error) {
	ids, prefixes := benchUsers(nu)
	hbs, err := backlogFor(ids, n, nd, now, 0)
	return hbs, prefixes, err
}

// benchUsers makes nu user ids and their object prefixes.
func benchUsers(nu int) ([]string, map[string]string) {
	ids := make([]string, nu)
	prefixes := make(map[string]string, nu)
	for i := range ids {
		ids[i] = uuid.NewString()
		prefixes[ids[i]] = randomPrefix()
	}
	return ids, prefixes
}

// backlogFor is backlog for given users. Each round r (0 to 7) gives other
// heartbeats (times shifted by r/16 of the gap) on the same user-days, as
// a later flush of the same day files would see.
func backlogFor(ids []string, n, nd int, now time.Time, round int) ([]*heartlogv1.Heartbeat, error) {
	nu := len(ids)
	today := now.UTC().Truncate(24 * time.Hour)
	starts := make([]float64, nd)
	spans := make([]float64, nd)
	for d := range nd {
		starts[d] = float64(today.AddDate(0, 0, -d).Unix())
		spans[d] = 86400
	}
	spans[0] = max(now.Sub(today).Seconds(), 60) // today: up to now
	perUserDay := (n + nu*nd - 1) / (nu * nd)

	hbs := make([]*heartlogv1.Heartbeat, n)
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < n; k += workers {
				u := k % nu
				d := (k / nu) % nd
				j := k / (nu * nd)
				p := projects[(u+j/50)%len(projects)]
				lines := int32(200 + j%800)
				lineno := int32(1 + j%200)
				write := j%5 == 0
				hb := &heartlogv1.Heartbeat{
					Entity:       fmt.Sprintf("/home/dev/src/%s/%s/%s%d.%s", p.name, dirs[j%len(dirs)], files[(u+j)%len(files)], j%97, p.ext),
					Type:         "file",
					Category:     categories[j%len(categories)],
					Time:         starts[d] + (float64(j)+0.5+float64(round)/16)*spans[d]/float64(perUserDay) + float64(u%1000)*1e-6,
					Project:      p.name,
					Branch:       branches[(u+j/100)%len(branches)],
					Language:     p.lang,
					Dependencies: deps[j%len(deps)],
					Lines:        &lines,
					Lineno:       &lineno,
					IsWrite:      &write,
					UserAgent:    userAgents[u%len(userAgents)],
				}
				if err := prepare(hb, ids[u], "", "bench-host-"+strconv.Itoa(u%7), now); err != nil {
					errs[w] = fmt.Errorf("prepare heartbeat %d: %w", k, err)
					return
				}
				hbs[k] = hb
			}
		}()
	}
	wg.Wait()
	return hbs, errors.Join(errs...)
}

// randomPrefix is a random 8-character [a-z0-9] object prefix.
func randomPrefix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}

func distinctIDs(hbs []*heartlogv1.Heartbeat) int {
	seen := make(map[string]struct{}, len(hbs))
	for _, hb := range hbs {
		seen[hb.Id] = struct{}{}
	}
	return len(seen)
}
