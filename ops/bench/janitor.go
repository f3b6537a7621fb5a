package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"heartlog/daydb"
	"heartlog/pgheartbeats"
	pgsink "heartlog/processors/postgres"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/shards"
	"heartlog/streams"
)

// The janitor scenario times the shard janitor (shards.Janitor.DropNow, what
// `heartlog shards drop` runs) dropping one UTC day of -janitor-rows rows.
// The rows are COPYed into the day's partition through the Postgres sink
// (1,000 heartbeats per user); one message of the day is published on each
// partition and acked by every objects and cache partition consumer, which
// is what the janitor's proof asks for (shards.Janitor.Prove). The day is
// 400 days back, away from the reads scenario's days.

func runJanitor(ctx context.Context, st *stack, cfg config) ([]result, error) {
	now := time.Now().UTC()
	date := now.Truncate(24*time.Hour).AddDate(0, 0, -400)
	day := date.Format("20060102")
	load, err := loadJanitorDay(ctx, st, cfg, date, now)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, proc := range []string{streams.DurableObjects, streams.DurableCache} {
			if err := deletePartitionConsumers(context.WithoutCancel(ctx), st, proc); err != nil {
				fmt.Fprintf(os.Stderr, "bench: janitor: %v\n", err)
			}
		}
	}()
	if err := ackDay(ctx, st, day); err != nil {
		return nil, err
	}
	stop, err := startProfile(cfg, "janitor")
	if err != nil {
		return nil, err
	}
	steps := map[shards.Step]time.Time{}
	j := shards.New(st.js, st.sc, daydb.One(st.pool), shards.Options{
		Owner: "bench", Log: st.log,
		AfterStep: func(_ string, s shards.Step) error { steps[s] = time.Now(); return nil },
	})
	start := time.Now()
	err = j.DropNow(ctx, day)
	total := time.Since(start)
	if perr := stop(); err == nil {
		err = perr
	}
	if err != nil {
		return nil, fmt.Errorf("drop %s: %w", day, err)
	}
	var left bool
	if err := st.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgheartbeats.PartitionName(day)).Scan(&left); err != nil {
		return nil, err
	}
	return []result{janitorRow(cfg, load, total, start, steps, left)}, nil
}

// loadJanitorDay COPYs the rows into the day's partition, 100 users (100,000
// rows) per commit, and returns how long that took.
func loadJanitorDay(ctx context.Context, st *stack, cfg config, date, now time.Time) (time.Duration, error) {
	sink := pgsink.New(daydb.One(st.pool), alwaysActive{}, st.log, pgsink.Options{})
	const perUser, perCommit = 1000, 100
	users := (cfg.janitorRows + perUser - 1) / perUser
	var copying time.Duration
	for u := 0; u < users; u += perCommit {
		var batches []*heartlogv1.Batch
		for v := u; v < min(u+perCommit, users); v++ {
			n := min(perUser, cfg.janitorRows-v*perUser)
			// workday starts at 08:30 or later and may run past midnight
			// UTC: start it 8 hours earlier to keep every row in the day.
			hbs, err := workday(rand.New(rand.NewPCG(uint64(v), 400)), fmt.Sprintf("00000000-0000-4000-8000-%012d", v), date.Add(-8*time.Hour), n, now)
			if err != nil {
				return 0, err
			}
			batches = append(batches, &heartlogv1.Batch{Day: date.Format("20060102"), Heartbeats: hbs})
		}
		t0 := time.Now()
		if err := sink.Commit(ctx, batches); err != nil {
			return 0, err
		}
		copying += time.Since(t0)
	}
	var rows int
	name := pgx.Identifier{pgheartbeats.PartitionName(date.Format("20060102"))}.Sanitize()
	if err := st.pool.QueryRow(ctx, "SELECT count(*) FROM "+name).Scan(&rows); err != nil {
		return 0, err
	}
	if rows != cfg.janitorRows {
		return 0, fmt.Errorf("%s holds %d rows, want %d", name, rows, cfg.janitorRows)
	}
	fmt.Fprintf(os.Stderr, "bench: janitor: %d rows COPYed into %s in %s\n", rows, name, copying.Round(time.Millisecond))
	return copying, nil
}

// ackDay publishes one message of the day on every partition and has each
// objects and cache partition consumer ack everything up to it.
func ackDay(ctx context.Context, st *stack, day string) error {
	last := make([]uint64, st.sc.Partitions)
	for p := range st.sc.Partitions {
		ack, err := st.js.Publish(ctx, streams.Subject(day, p), []byte("bench"))
		if err != nil {
			return err
		}
		last[p] = ack.Sequence
	}
	for _, proc := range []string{streams.DurableObjects, streams.DurableCache} {
		cs, err := streams.EnsurePartitionConsumers(ctx, st.js, st.sc, proc)
		if err != nil {
			return err
		}
		for p, cons := range cs {
			if err := ackUpTo(ctx, cons, last[p]); err != nil {
				return fmt.Errorf("%s: %w", streams.PartitionDurable(proc, uint32(p)), err)
			}
		}
	}
	return nil
}

// ackUpTo pulls and acks a pinned partition consumer's messages until its
// ack floor reaches seq.
func ackUpTo(ctx context.Context, cons jetstream.Consumer, seq uint64) error {
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream >= seq {
			return nil
		}
		batch, err := cons.Fetch(int(min(max(info.NumPending, 1), 1000)), jetstream.FetchMaxWait(2*time.Second), jetstream.FetchPriorityGroup(streams.PriorityGroup))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				return err
			}
		}
		// A pin that ran out between pulls is renewed by the next pull.
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrPinIDMismatch) &&
			!errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

func janitorRow(cfg config, load time.Duration, total time.Duration, start time.Time, steps map[shards.Step]time.Time, left bool) result {
	r := result{scenario: "janitor", target: "—", result: fmt.Sprintf("%.2f s", total.Seconds()), cpuNote: "-"}
	var split []string
	prev := start
	for _, s := range []shards.Step{shards.StepProve, shards.StepDrain, shards.StepSettle, shards.StepDetach, shards.StepDrop, shards.StepMarkDropped} {
		t, ok := steps[s]
		if !ok {
			continue
		}
		split = append(split, fmt.Sprintf("%s %s", s, ms(t.Sub(prev))))
		prev = t
	}
	r.notes = []string{
		fmt.Sprintf("DropNow of a day of %s rows (COPYed in %.1f s, %s rows/s); steps: %s; table left: %t",
			thousands(float64(cfg.janitorRows)), load.Seconds(), thousands(float64(cfg.janitorRows)/load.Seconds()), strings.Join(split, ", "), left),
	}
	return r
}
