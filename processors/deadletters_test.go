package processors_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"heartlog/internal/heartlogtest"
	"heartlog/processors"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// pickySink stands in for a transactional store that refuses some
// heartbeats for good: a batch holding a "poison" entity fails as a whole
// with a permanent error (nothing committed), and a "reject" entity is
// refused alone with *Rejected while the rest commit. fixed makes it take
// everything, as after an operator fixed the cause.
type pickySink struct {
	mu        sync.Mutex
	fixed     bool
	commits   int
	committed map[string]string // heartbeat id -> entity
}

func (s *pickySink) Name() string { return "picky" }

func (s *pickySink) Commit(_ context.Context, batches []*heartlogv1.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits++
	for _, b := range batches {
		for _, hb := range b.Heartbeats {
			if !s.fixed && strings.HasPrefix(hb.Entity, "poison") {
				return processors.Permanent("test poison", errors.New("value overflows numeric format"))
			}
		}
	}
	var rejected []processors.Rejection
	for _, b := range batches {
		for _, hb := range b.Heartbeats {
			if !s.fixed && strings.HasPrefix(hb.Entity, "reject") {
				rejected = append(rejected, processors.Rejection{Batch: b, Heartbeat: hb, Reason: "test reject", Err: errors.New("too large")})
				continue
			}
			s.committed[hb.Id] = hb.Entity
		}
	}
	if len(rejected) > 0 {
		return &processors.Rejected{Heartbeats: rejected}
	}
	return nil
}

func (s *pickySink) entities() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.committed {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// publishMixed publishes three batches of one user and day: 40 good
// heartbeats with a poison one in the middle, 20 good with a reject, and
// 10 good with a second poison. It returns the good entities, sorted.
func publishMixed(t *testing.T, pub *streams.Publisher, user string) []string {
	t.Helper()
	at := time.Now().Add(-time.Hour).Truncate(time.Hour)
	var good []string
	n := 0
	for _, spec := range []struct {
		size int
		bad  string
	}{{40, "poison-1.go"}, {20, "reject-1.go"}, {10, "poison-2.go"}} {
		var hbs []*heartlogv1.Heartbeat
		for i := range spec.size {
			if i == spec.size/2 {
				hbs = append(hbs, heartlogtest.Heartbeat(t, user, spec.bad, at.Add(time.Duration(n)*time.Second)))
				n++
			}
			e := fmt.Sprintf("good-%03d.go", n)
			good = append(good, e)
			hbs = append(hbs, heartlogtest.Heartbeat(t, user, e, at.Add(time.Duration(n)*time.Second)))
			n++
		}
		if err := pub.Publish(context.Background(), hbs, map[string]string{user: "pfx1"}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(good)
	return good
}

func startStream(t *testing.T) (jetstream.JetStream, streams.Config, *streams.Publisher) {
	t.Helper()
	top := heartlogtest.StartTopology(t, streams.DefaultConfig())
	js, cfg := top.JS, top.Config
	pub := streams.NewPublisher(top.NC, js, cfg, streams.PublisherOptions{})
	t.Cleanup(pub.Close)
	return js, cfg, pub
}

// parkedEntities is what the dead-letter stream holds for processor:
// entity -> reason.
func parkedEntities(t *testing.T, dead *streams.DeadLetters, processor string) map[string]string {
	t.Helper()
	entries, err := dead.List(context.Background(), processor)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range entries {
		if d.Batch == nil || len(d.Batch.Heartbeats) != 1 {
			t.Fatalf("entry %d holds %v, want one heartbeat", d.Seq, d.Batch)
		}
		out[d.Batch.Heartbeats[0].Entity] = d.Reason
	}
	return out
}

// parkedMetric reads heartlog_processor_parked_heartbeats_total as /metrics
// shows it.
func parkedMetric(t *testing.T, processor, reason string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "heartlog_processor_parked_heartbeats_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["processor"] == processor && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestPermanentErrorsAreParkedAndTheRestCommitted(t *testing.T) {
	js, cfg, pub := startStream(t)
	ctx := context.Background()
	poisonBefore, rejectBefore := parkedMetric(t, "picky", "test poison"), parkedMetric(t, "picky", "test reject")
	const user = "6f1e2a3b-0000-4000-8000-0000000000aa"
	good := publishMixed(t, pub, user)
	dead := streams.NewDeadLetters(js, cfg)
	cons, err := streams.EnsureConsumer(ctx, js, cfg, "picky")
	if err != nil {
		t.Fatal(err)
	}
	sink := &pickySink{committed: map[string]string{}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- processors.Run(runCtx, cons, sink, processors.Options{
			RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, Log: heartlogtest.Logger(t), DeadLetters: dead,
		})
	}()
	ok := heartlogtest.Eventually(20*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && len(sink.entities()) == len(good)
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("committed %d of %d good heartbeats, or messages left unacked", len(sink.entities()), len(good))
	}
	if got := sink.entities(); !slices.Equal(got, good) {
		t.Fatalf("committed %v\nwant %v", got, good)
	}
	want := map[string]string{"poison-1.go": "test poison", "poison-2.go": "test poison", "reject-1.go": "test reject"}
	if got := parkedEntities(t, dead, "picky"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("parked %v, want %v", got, want)
	}
	if p, r := parkedMetric(t, "picky", "test poison")-poisonBefore, parkedMetric(t, "picky", "test reject")-rejectBefore; p != 2 || r != 1 {
		t.Fatalf("parked heartbeats metric grew by %v poison and %v reject, want 2 and 1", p, r)
	}
	entries, _ := dead.List(ctx, "picky")
	for _, d := range entries {
		if d.User() != user || d.Day() != time.Now().Add(-time.Hour).UTC().Format("20060102") || d.StreamSeq == 0 ||
			d.Subject == "" || d.Error == "" || d.ParkedAt.IsZero() || d.Batch.ObjectPrefixes[user] != "pfx1" {
			t.Fatalf("entry %d lacks what a retry needs: %+v", d.Seq, d)
		}
	}

	// Retried before the cause is fixed: parked again, nothing lost.
	res, err := processors.RetryDeadLetters(ctx, dead, sink, processors.RetryOptions{Log: heartlogtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Retried != 3 || res.Reparked != 3 {
		t.Fatalf("retry while still bad: %+v, want 3 retried and 3 parked again", res)
	}
	again, _ := dead.List(ctx, "picky")
	if len(again) != 3 || again[0].RetryOf != entries[0].Seq || again[0].StreamSeq != entries[0].StreamSeq {
		t.Fatalf("after a failed retry the entries are %+v", again)
	}

	// Fixed: the retry stores them and empties the dead-letter stream.
	sink.mu.Lock()
	sink.fixed = true
	sink.mu.Unlock()
	if res, err = processors.RetryDeadLetters(ctx, dead, sink, processors.RetryOptions{}); err != nil || res.Retried != 3 || res.Reparked != 0 {
		t.Fatalf("retry after the fix: %+v, %v", res, err)
	}
	if got := parkedEntities(t, dead, "picky"); len(got) != 0 {
		t.Fatalf("still parked after a successful retry: %v", got)
	}
	if n := len(sink.entities()); n != len(good)+3 {
		t.Fatalf("%d heartbeats committed, want %d", n, len(good)+3)
	}
}

func TestReplayParksPoisonInsteadOfLooping(t *testing.T) {
	js, cfg, pub := startStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	good := publishMixed(t, pub, "6f1e2a3b-0000-4000-8000-0000000000bb")
	if _, err := js.Publish(ctx, streams.Subject("20261125", 0), []byte("\xff\xfe not a batch")); err != nil {
		t.Fatal(err)
	}
	sink := &pickySink{committed: map[string]string{}}
	if err := processors.Replay(ctx, js, cfg, sink, processors.ReplayOptions{BatchMessages: 2, Log: heartlogtest.Logger(t)}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if got := sink.entities(); !slices.Equal(got, good) {
		t.Fatalf("replay committed %v\nwant %v", got, good)
	}
	entries, err := streams.NewDeadLetters(js, cfg).List(ctx, "picky")
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, d := range entries {
		reasons[d.Reason]++
	}
	if reasons["test poison"] != 2 || reasons["test reject"] != 1 || reasons[streams.ReasonUndecodable] != 1 || len(entries) != 4 {
		t.Fatalf("replay parked %v", reasons)
	}
}

// TestParkingWaitsForTheDeadLetterStream: a dead-letter stream that cannot
// take the entry is a transient failure: the message stays unacked until
// it can, and is then parked.
func TestParkingWaitsForTheDeadLetterStream(t *testing.T) {
	js, cfg, pub := startStream(t)
	ctx := context.Background()
	if err := js.DeleteStream(ctx, cfg.DeadLetterStream); err != nil {
		t.Fatal(err)
	}
	good := publishMixed(t, pub, "6f1e2a3b-0000-4000-8000-0000000000cc")
	cons, err := streams.EnsureConsumer(ctx, js, cfg, "picky")
	if err != nil {
		t.Fatal(err)
	}
	sink := &pickySink{committed: map[string]string{}}
	dead := streams.NewDeadLetters(js, cfg)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- processors.Run(runCtx, cons, sink, processors.Options{
			RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond, Log: heartlogtest.Logger(t), DeadLetters: dead,
		})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The good heartbeats of the first batch commit before its poison is
	// found; the poison's message must stay unacked while parking fails.
	if !heartlogtest.Eventually(10*time.Second, func() bool { return len(sink.entities()) >= 20 }) {
		t.Fatalf("only %d heartbeats committed", len(sink.entities()))
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 0 {
		t.Fatalf("ack floor %d: a message was acked before its poison was parked", info.AckFloor.Stream)
	}
	if err := streams.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	ok := heartlogtest.Eventually(20*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if !ok || len(parkedEntities(t, dead, "picky")) != 3 || len(sink.entities()) != len(good) {
		t.Fatalf("after the stream came back: parked %v, %d of %d committed", parkedEntities(t, dead, "picky"), len(sink.entities()), len(good))
	}
}
