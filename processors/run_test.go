package processors_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/processors"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// flakySink records what it commits and fails its first failures commits.
// It tests the loop's contract, not a store.
type flakySink struct {
	mu        sync.Mutex
	failures  int
	attempts  int
	committed map[string]int
}

func (s *flakySink) Name() string { return "flaky" }

func (s *flakySink) Commit(_ context.Context, batches []*heartlogv1.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.attempts <= s.failures {
		return errors.New("store unavailable")
	}
	for _, b := range batches {
		for _, hb := range b.Heartbeats {
			s.committed[hb.Id]++
		}
	}
	return nil
}

func (s *flakySink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.committed)
}

func TestRunRetriesThenAcks(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	ctx := context.Background()
	cfg, pub := heartlogtest.Publisher(t, nc, js)

	// A message that is not a batch must not block the ones after it, nor
	// vanish: it is parked as it was.
	garbage := []byte("not a protobuf batch \xff\xff")
	if _, err := js.Publish(ctx, streams.Subject("20261125", 0), garbage); err != nil {
		t.Fatal(err)
	}
	const total = 300
	for i := range total {
		hb := heartlogtest.Heartbeat(t, fmt.Sprintf("u%d", i%7), fmt.Sprintf("f%d.go", i), time.Now().Add(-time.Duration(i)*time.Second))
		if err := pub.Publish(ctx, []*heartlogv1.Heartbeat{hb}, nil); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := streams.EnsureConsumer(ctx, js, cfg, "flaky")
	if err != nil {
		t.Fatal(err)
	}
	sink := &flakySink{failures: 3, committed: map[string]int{}}
	dead := streams.NewDeadLetters(js, cfg)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- processors.Run(runCtx, cons, sink, processors.Options{
			BatchMessages: 50, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, Log: heartlogtest.Logger(t), DeadLetters: dead,
		})
	}()
	ok := heartlogtest.Eventually(30*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && sink.count() == total && info.NumPending == 0 && info.NumAckPending == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("committed %d of %d; consumer pending %d, ack pending %d", sink.count(), total, info.NumPending, info.NumAckPending)
	}
	if sink.attempts <= sink.failures {
		t.Fatalf("%d attempts: the failing commits were not retried", sink.attempts)
	}
	if info.AckFloor.Stream != info.Delivered.Stream {
		t.Fatalf("ack floor %d behind delivered %d", info.AckFloor.Stream, info.Delivered.Stream)
	}
	// The failed commits were transient: retried, never parked. Only the
	// undecodable message is in the dead-letter stream.
	parked, err := dead.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || parked[0].Reason != streams.ReasonUndecodable || string(parked[0].Raw) != string(garbage) ||
		parked[0].StreamSeq != 1 || parked[0].Processor != "flaky" || parked[0].Subject != streams.Subject("20261125", 0) {
		t.Fatalf("dead letters: %+v, want the undecodable message alone", parked)
	}
}

// slowSink takes longer than the consumer's AckWait to commit.
type slowSink struct {
	flakySink
	delay time.Duration
}

func (s *slowSink) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	time.Sleep(s.delay)
	return s.flakySink.Commit(ctx, batches)
}

func TestLongCommitIsNotRedelivered(t *testing.T) {
	ctx := context.Background()
	cfg := streams.DefaultConfig()
	cfg.AckWait = time.Second
	top := heartlogtest.StartTopology(t, cfg)
	nc, js := top.NC, top.JS
	pub := streams.NewPublisher(nc, js, cfg, streams.PublisherOptions{})
	defer pub.Close()
	for i := range 20 {
		hb := heartlogtest.Heartbeat(t, "u", fmt.Sprintf("f%d.go", i), time.Now().Add(-time.Duration(i)*time.Second))
		if err := pub.Publish(ctx, []*heartlogv1.Heartbeat{hb}, nil); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := streams.EnsureConsumer(ctx, js, cfg, "slow")
	if err != nil {
		t.Fatal(err)
	}
	sink := &slowSink{flakySink: flakySink{committed: map[string]int{}}, delay: 3 * time.Second}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- processors.Run(runCtx, cons, sink, processors.Options{BatchMessages: 100, Linger: 200 * time.Millisecond, ProgressEvery: 250 * time.Millisecond, Log: heartlogtest.Logger(t), DeadLetters: streams.NewDeadLetters(js, cfg)})
	}()
	ok := heartlogtest.Eventually(30*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && sink.count() == 20 && info.NumAckPending == 0 && info.NumPending == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("committed %d of 20", sink.count())
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for id, n := range sink.committed {
		if n != 1 {
			t.Fatalf("heartbeat %s committed %d times: redelivered while a 3 s commit ran under a 1 s AckWait", id, n)
		}
	}
}
