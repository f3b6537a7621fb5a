package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"heartlog/objstore"
	"heartlog/schema/dayfile"
)

// lag is how far a processor is behind: messages not yet delivered plus
// messages delivered and not acked, over all its consumers.
func (st *stack) lag(ctx context.Context, proc string) (pending, ackPending uint64, delivered uint64, err error) {
	for _, name := range st.consumerNames(proc) {
		c, err := st.js.Consumer(ctx, st.sc.Stream, name)
		if err != nil {
			return 0, 0, 0, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return 0, 0, 0, err
		}
		pending += info.NumPending
		ackPending += uint64(info.NumAckPending)
		delivered += info.Delivered.Consumer
	}
	return pending, ackPending, delivered, nil
}

// settle waits until every processor has acked everything in the stream,
// or until timeout. It returns "" when they caught up, else who is behind.
func (st *stack) settle(ctx context.Context, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	behind := ""
	for {
		behind = ""
		for _, p := range processorProcs {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			pending, ackPending, _, err := st.lag(qctx, p)
			cancel()
			switch {
			case err != nil:
				behind += fmt.Sprintf(" %s: %v;", p, err)
			case pending+ackPending > 0:
				behind += fmt.Sprintf(" %s %d pending, %d unacked;", p, pending, ackPending)
			}
		}
		if behind == "" || time.Now().After(deadline) || ctx.Err() != nil {
			return strings.TrimSuffix(strings.TrimSpace(behind), ";")
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

// sinkCount is what one sink holds of the row's acknowledged heartbeats.
type sinkCount struct {
	expected int // acknowledged heartbeats that belong in this sink
	found    int // of those, present
	dup      int // ids present more than once
	corrupt  []string
	ids      map[string]int
}

func (c *sinkCount) lost() int { return c.expected - c.found }

// tally counts every sink against the acknowledged heartbeats.
type tally struct {
	acked                 int
	pg, s3, cache, backup sinkCount
	lostAny               int // acknowledged and missing from at least one sink it belongs in
	missingSample         []string
}

// count reads every sink for the row's users. skip leaves heartbeats out of
// every sink (the poison heartbeat); inPG says whether a day is expected in
// Postgres (not once the janitor dropped it).
func (st *stack) count(ctx context.Context, l *load, skip map[string]bool, inPG func(day string) bool) (tally, error) {
	l.mu.Lock()
	acks := make(map[string]ack, len(l.acked))
	for id, a := range l.acked {
		if !skip[id] {
			acks[id] = a
		}
	}
	l.mu.Unlock()
	t := tally{acked: len(acks)}
	var err error
	if t.pg, err = st.countPostgres(ctx, l); err != nil {
		return t, err
	}
	// Every day file key of the row's users: those listed in S3 and those
	// the acknowledged heartbeats belong in.
	keys := map[string]bool{}
	for _, a := range acks {
		u := l.users[a.user]
		keys[dayfile.Key(u.ObjectPrefix, u.ID, a.day)] = true
	}
	for _, u := range l.users {
		listed, err := objstore.ListAll(ctx, st.primary, u.ObjectPrefix+"/"+u.ID+"/")
		if err != nil {
			return t, fmt.Errorf("list S3: %w", err)
		}
		for _, k := range listed {
			keys[k] = true
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	if t.s3, err = countFiles(sorted, func(k string) ([]byte, bool, error) { return getObject(ctx, st.primary, k) }); err != nil {
		return t, fmt.Errorf("S3: %w", err)
	}
	if t.backup, err = countFiles(sorted, func(k string) ([]byte, bool, error) { return getObject(ctx, st.backup, k) }); err != nil {
		return t, fmt.Errorf("backup: %w", err)
	}
	if t.cache, err = countFiles(sorted, func(k string) ([]byte, bool, error) {
		b, err := st.rdb.Get(ctx, k).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil, false, nil
		}
		return b, err == nil, err
	}); err != nil {
		return t, fmt.Errorf("cache: %w", err)
	}
	for id, a := range acks {
		missing := ""
		check := func(name string, c *sinkCount, expected bool) {
			if !expected {
				return
			}
			c.expected++
			if c.ids[id] > 0 {
				c.found++
			} else {
				missing += " " + name
			}
		}
		check("postgres", &t.pg, inPG(a.day))
		check("s3", &t.s3, true)
		check("cache", &t.cache, true)
		check("backup", &t.backup, true)
		if missing != "" {
			t.lostAny++
			if len(t.missingSample) < 3 {
				t.missingSample = append(t.missingSample, fmt.Sprintf("%s (day %s, user %s) not in%s", id, a.day, l.users[a.user].ID, missing))
			}
		}
	}
	return t, nil
}

func (st *stack) countPostgres(ctx context.Context, l *load) (sinkCount, error) {
	c := sinkCount{ids: map[string]int{}}
	ids := make([]string, len(l.users))
	for i, u := range l.users {
		ids[i] = u.ID
	}
	rows, err := st.pool.Query(ctx, `SELECT id, count(*) FROM heartbeats WHERE user_id = ANY($1::uuid[]) GROUP BY id`, ids)
	if err != nil {
		return c, fmt.Errorf("postgres: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return c, err
		}
		c.ids[id] = n
		if n > 1 {
			c.dup++
		}
	}
	return c, rows.Err()
}

func getObject(ctx context.Context, b objstore.Bucket, key string) ([]byte, bool, error) {
	data, _, err := b.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, false, nil
	}
	return data, err == nil, err
}

// countFiles decodes every day file get finds and counts its ids.
func countFiles(keys []string, get func(string) ([]byte, bool, error)) (sinkCount, error) {
	c := sinkCount{ids: map[string]int{}}
	for _, k := range keys {
		data, ok, err := get(k)
		if err != nil {
			return c, err
		}
		if !ok {
			continue
		}
		hbs, err := dayfile.Decode(data)
		if err != nil {
			c.corrupt = append(c.corrupt, k)
			continue
		}
		for _, hb := range hbs {
			c.ids[hb.Id]++
			if c.ids[hb.Id] == 2 {
				c.dup++
			}
		}
	}
	return c, nil
}

// dlqCount is the messages in the dead-letter stream, -1 when there is none.
func (st *stack) dlqCount(ctx context.Context) int64 {
	s, err := st.js.Stream(ctx, "HEARTBEATS_DLQ")
	if errors.Is(err, jetstream.ErrStreamNotFound) || err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	return int64(info.State.Msgs)
}
