package processors_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/processors"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// holdingSink commits every batch except those of the day it holds back
// (as the Postgres sink does with a shard database that is down), for
// holds commits. It tests the loop's contract, not a store.
type holdingSink struct {
	mu        sync.Mutex
	day       string
	holds     int
	calls     [][]string // the days of each commit
	committed map[string]int
}

func (s *holdingSink) Name() string { return "holding" }

func (s *holdingSink) Commit(_ context.Context, batches []*heartlogv1.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var days []string
	var held []*heartlogv1.Batch
	for _, b := range batches {
		days = append(days, b.Day)
		if b.Day == s.day && s.holds > 0 {
			held = append(held, b)
			continue
		}
		for _, hb := range b.Heartbeats {
			s.committed[hb.Id]++
		}
	}
	s.calls = append(s.calls, days)
	if len(held) > 0 {
		s.holds--
		return &processors.Held{Batches: held, Err: errors.New("shard down")}
	}
	return nil
}

func (s *holdingSink) stored() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.committed)
}

func beatsOn(t *testing.T, day time.Time, n int) []*heartlogv1.Heartbeat {
	var hbs []*heartlogv1.Heartbeat
	for i := range n {
		hbs = append(hbs, heartlogtest.Heartbeat(t, "6f1e2a3b-0000-4000-8000-000000000009", "f.go", day.Add(time.Duration(i)*time.Second)))
	}
	return hbs
}

// TestRunAcksAllButTheHeld: Run acks the messages of the committed batches
// at once and delivers the held ones again, alone; each heartbeat is
// committed once.
func TestRunAcksAllButTheHeld(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	ctx := context.Background()
	cfg, pub := heartlogtest.Publisher(t, nc, js)
	day1, day2 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	if err := pub.Publish(ctx, append(beatsOn(t, day1, 3), beatsOn(t, day2, 4)...), nil); err != nil {
		t.Fatal(err)
	}
	sink := &holdingSink{day: "20261102", holds: 2, committed: map[string]int{}}
	cons, err := streams.EnsureConsumer(ctx, js, cfg, "holding")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- processors.Run(runCtx, cons, sink, processors.Options{Linger: 200 * time.Millisecond, HoldDelay: 100 * time.Millisecond,
			DeadLetters: streams.NewDeadLetters(js, cfg), Log: heartlogtest.Logger(t)})
	}()
	defer func() { stop(); <-done }()
	if !heartlogtest.Eventually(20*time.Second, func() bool { return sink.stored() == 7 }) {
		t.Fatalf("%d heartbeats committed, want 7", sink.stored())
	}
	if !heartlogtest.Eventually(20*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	}) {
		t.Fatal("messages left unacked")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for id, c := range sink.committed {
		if c != 1 {
			t.Errorf("heartbeat %s committed %d times", id, c)
		}
	}
	// The first commit had both days; every one after it the held day alone.
	for _, call := range sink.calls[1:] {
		if len(call) != 1 || call[0] != "20261102" {
			t.Errorf("commits %v: after the first, want the held day alone", sink.calls)
		}
	}
}

// TestCommitterRetriesOnlyTheHeld: without messages to give back, a
// Committer commits the held batches again, alone, until they commit.
func TestCommitterRetriesOnlyTheHeld(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	cfg, _ := heartlogtest.Publisher(t, nc, js)
	sink := &holdingSink{day: "20261102", holds: 2, committed: map[string]int{}}
	c := processors.NewCommitter(sink, streams.NewDeadLetters(js, cfg), processors.CommitterOptions{RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond})
	a := &heartlogv1.Batch{Day: "20261101", Heartbeats: beatsOn(t, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), 2)}
	b := &heartlogv1.Batch{Day: "20261102", Heartbeats: beatsOn(t, time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC), 2)}
	if err := c.Commit(context.Background(), []*heartlogv1.Batch{a, b}); err != nil {
		t.Fatal(err)
	}
	if len(sink.calls) != 3 || len(sink.calls[1]) != 1 || len(sink.calls[2]) != 1 || len(sink.committed) != 4 {
		t.Fatalf("commits %v, %d heartbeats: want both days, then the held one twice, 4 heartbeats", sink.calls, len(sink.committed))
	}
	for id, n := range sink.committed {
		if n != 1 {
			t.Errorf("heartbeat %s committed %d times", id, n)
		}
	}
}
