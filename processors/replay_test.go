package processors_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/processors"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

func TestReplayFeedsTheRangeWithoutTouchingDurables(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	ctx := context.Background()
	cfg, pub := heartlogtest.Publisher(t, nc, js)
	users := []string{"00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"}
	perUser := map[string]int{}
	for i := range 120 {
		user := users[i%2]
		hb := heartlogtest.Heartbeat(t, user, fmt.Sprintf("f%d.go", i), time.Now().Add(-time.Duration(i)*time.Second))
		if err := pub.Publish(ctx, []*heartlogv1.Heartbeat{hb}, nil); err != nil {
			t.Fatal(err)
		}
		perUser[user]++
	}
	if _, err := streams.EnsureConsumer(ctx, js, cfg, "untouched"); err != nil {
		t.Fatal(err)
	}

	all := &flakySink{committed: map[string]int{}}
	var last processors.ReplayProgress
	err := processors.Replay(ctx, js, cfg, all, processors.ReplayOptions{BatchMessages: 16, Progress: func(p processors.ReplayProgress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if all.count() != 120 || !last.Done || last.Messages != 120 || last.Heartbeats != 120 {
		t.Fatalf("replayed %d heartbeats, progress %+v; want all 120 messages", all.count(), last)
	}

	one := &flakySink{committed: map[string]int{}}
	if err := processors.Replay(ctx, js, cfg, one, processors.ReplayOptions{User: users[1]}); err != nil {
		t.Fatal(err)
	}
	if one.count() != perUser[users[1]] {
		t.Fatalf("--user replay gave %d heartbeats, want %d", one.count(), perUser[users[1]])
	}

	tail := &flakySink{committed: map[string]int{}}
	if err := processors.Replay(ctx, js, cfg, tail, processors.ReplayOptions{SinceSeq: 101}); err != nil {
		t.Fatal(err)
	}
	if tail.count() != 20 {
		t.Fatalf("--since-seq 101 gave %d heartbeats, want 20", tail.count())
	}
	if err := processors.Replay(ctx, js, cfg, tail, processors.ReplayOptions{SinceSeq: 500}); !errors.Is(err, processors.ErrNothingToReplay) {
		t.Fatalf("a range past the end: %v, want ErrNothingToReplay", err)
	}

	cons, err := js.Consumer(ctx, cfg.Stream, "untouched")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 120 || info.Delivered.Stream != 0 {
		t.Fatalf("a durable consumer moved during replay: pending %d, delivered %d", info.NumPending, info.Delivered.Stream)
	}
}
