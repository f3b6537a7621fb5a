package streams_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

func setup(t *testing.T) (*heartlogtest.NATS, jetstream.JetStream, streams.Config, *streams.Publisher, func(streams.PublisherOptions) *streams.Publisher) {
	t.Helper()
	top := heartlogtest.StartTopology(t, streams.DefaultConfig())
	n, nc, js, cfg := top.NATS, top.NC, top.JS, top.Config
	newPub := func(o streams.PublisherOptions) *streams.Publisher {
		p := streams.NewPublisher(nc, js, cfg, o)
		t.Cleanup(p.Close)
		return p
	}
	return n, js, cfg, newPub(streams.PublisherOptions{}), newPub
}

// readAll returns every message in the stream, decoded, with its subject.
func readAll(t *testing.T, js jetstream.JetStream, cfg streams.Config) (subjects []string, batches []*heartlogv1.Batch) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		b, err := streams.DecodeBatch(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, m.Subject)
		batches = append(batches, b)
	}
	return subjects, batches
}

func TestPublishBatchesByDayAndPartition(t *testing.T) {
	_, js, cfg, pub, _ := setup(t)
	day1 := time.Date(2026, 11, 24, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute)
	var hbs []*heartlogv1.Heartbeat
	want := map[string]bool{}
	for u := range 20 {
		user := fmt.Sprintf("user-%d", u)
		for _, at := range []time.Time{day1, day2} {
			hb := heartlogtest.Heartbeat(t, user, fmt.Sprintf("f%d.go", u), at)
			hbs = append(hbs, hb)
			want[hb.Id] = true
		}
	}
	prefixes := map[string]string{}
	for u := range 20 {
		prefixes[fmt.Sprintf("user-%d", u)] = fmt.Sprintf("prefix%d", u)
	}
	if err := pub.Publish(context.Background(), hbs, prefixes); err != nil {
		t.Fatal(err)
	}
	subjects, batches := readAll(t, js, cfg)
	got := map[string]bool{}
	for i, b := range batches {
		if subjects[i] != streams.Subject(b.Day, b.Partition) {
			t.Errorf("message on %s carries day %s partition %d", subjects[i], b.Day, b.Partition)
		}
		for _, hb := range b.Heartbeats {
			if heartbeat.Day(hb) != b.Day || streams.Partition(hb.UserId, cfg.Partitions) != b.Partition {
				t.Errorf("heartbeat of %s on %s in batch %s/%d", hb.UserId, heartbeat.Day(hb), b.Day, b.Partition)
			}
			if b.ObjectPrefixes[hb.UserId] != prefixes[hb.UserId] {
				t.Errorf("batch prefix of %s = %q, want %q", hb.UserId, b.ObjectPrefixes[hb.UserId], prefixes[hb.UserId])
			}
			if got[hb.Id] {
				t.Errorf("heartbeat %s published twice", hb.Id)
			}
			got[hb.Id] = true
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d heartbeats in the stream, want %d", len(got), len(want))
	}
	keys := map[string]bool{}
	for _, b := range batches {
		keys[fmt.Sprint(b.Day, b.Partition)] = true
	}
	if len(batches) != len(keys) {
		t.Fatalf("%d messages for %d (day, partition) pairs: one request must give one message per pair", len(batches), len(keys))
	}
}

func TestConcurrentRequestsShareMessages(t *testing.T) {
	_, js, cfg, _, newPub := setup(t)
	// A long linger makes the coalescing certain rather than likely.
	pub := newPub(streams.PublisherOptions{Linger: 300 * time.Millisecond})
	const requests = 200
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	now := time.Now().Add(-time.Minute)
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hb := heartlogtest.Heartbeat(t, "same-user", fmt.Sprintf("f%d.go", i), now)
			errs <- pub.Publish(context.Background(), []*heartlogv1.Heartbeat{hb}, nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, batches := readAll(t, js, cfg)
	n := 0
	for _, b := range batches {
		n += len(b.Heartbeats)
	}
	if n != requests {
		t.Fatalf("%d heartbeats stored, want %d", n, requests)
	}
	if len(batches) > requests/10 {
		t.Fatalf("%d requests became %d messages: group commit is not coalescing", requests, len(batches))
	}
}

func TestLargeBatchesAreSplit(t *testing.T) {
	_, js, cfg, _, newPub := setup(t)
	pub := newPub(streams.PublisherOptions{MaxMessageBytes: 4 << 10})
	var hbs []*heartlogv1.Heartbeat
	at := time.Now().Add(-time.Minute)
	for i := range 500 {
		hbs = append(hbs, heartlogtest.Heartbeat(t, "u", fmt.Sprintf("/some/long/path/to/file-%04d.go", i), at))
	}
	if err := pub.Publish(context.Background(), hbs, nil); err != nil {
		t.Fatal(err)
	}
	_, batches := readAll(t, js, cfg)
	n := 0
	for _, b := range batches {
		data, _ := streams.EncodeBatch(b)
		if len(data) > 5<<10 {
			t.Errorf("message of %d bytes over a 4 KiB limit", len(data))
		}
		n += len(b.Heartbeats)
	}
	if n != 500 || len(batches) < 5 {
		t.Fatalf("%d heartbeats in %d messages; want 500 split into several", n, len(batches))
	}
}

func TestPublishFailsWithoutServer(t *testing.T) {
	n, _, _, pub, _ := setup(t)
	n.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := pub.Publish(ctx, []*heartlogv1.Heartbeat{heartlogtest.Heartbeat(t, "u", "a.go", time.Now())}, nil)
	if !errors.Is(err, streams.ErrUnavailable) {
		t.Fatalf("publish with the server down: %v, want ErrUnavailable", err)
	}
}

func TestEnsureIsIdempotentAndKeepsPartitions(t *testing.T) {
	_, js, cfg, _, _ := setup(t)
	ctx := context.Background()
	if err := streams.Ensure(ctx, js, cfg); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	changed := cfg
	changed.Partitions = 32
	if err := streams.Ensure(ctx, js, changed); !errors.Is(err, streams.ErrPartitionsChanged) {
		t.Fatalf("Ensure with another partition count: %v, want ErrPartitionsChanged", err)
	}
	locks, err := js.KeyValue(ctx, cfg.LocksBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locks.Create(ctx, "janitor", []byte("me"), jetstream.KeyTTL(time.Second)); err != nil {
		t.Fatalf("lock bucket refuses a per-key TTL: %v", err)
	}
}

func TestSubjects(t *testing.T) {
	day, p, err := streams.ParseSubject(streams.Subject("20261125", 7))
	if err != nil || day != "20261125" || p != 7 {
		t.Fatalf("round trip: %s %d %v", day, p, err)
	}
	for _, bad := range []string{"heartbeats.2026-11-25.1", "heartbeats.20261125", "other.20261125.1", "heartbeats.20261125.x"} {
		if _, _, err := streams.ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
	counts := make([]int, 16)
	for i := range 16000 {
		counts[streams.Partition(fmt.Sprintf("%08x-user", i), 16)]++
	}
	for p, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("partition %d holds %d of 16000 users: the hash does not spread", p, c)
		}
	}
}

// TestPartitionConsumerHasOneWriter checks the mechanism behind one writer
// per user-day: two instances pull the same partition's consumer, only the
// pinned one gets messages, and the other takes over once it stops.
func TestPartitionConsumerHasOneWriter(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	_, js := heartlogtest.Connect(t, n.URL)
	ctx := context.Background()
	cfg := streams.DefaultConfig()
	cfg.PinnedTTL = time.Second
	if err := streams.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	conss, err := streams.EnsurePartitionConsumers(ctx, js, cfg, "objects")
	if err != nil {
		t.Fatal(err)
	}
	if len(conss) != int(cfg.Partitions) {
		t.Fatalf("%d consumers for %d partitions", len(conss), cfg.Partitions)
	}
	publish := func(i int) {
		if _, err := js.Publish(ctx, streams.Subject("20261125", 3), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Each instance has its own connection, as separate processes would.
	pull := func() (jetstream.MessagesContext, chan string) {
		_, js := heartlogtest.Connect(t, n.URL)
		cons, err := js.Consumer(ctx, cfg.Stream, streams.PartitionDurable("objects", 3))
		if err != nil {
			t.Fatal(err)
		}
		it, err := cons.Messages(jetstream.PullPriorityGroup(streams.PriorityGroup))
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 100)
		go func() {
			for {
				m, err := it.Next()
				if err != nil {
					return
				}
				_ = m.Ack()
				got <- string(m.Data())
			}
		}()
		return it, got
	}
	itA, gotA := pull()
	publish(0)
	first := <-gotA // A is pinned now
	_, gotB := pull()
	for i := 1; i <= 20; i++ {
		publish(i)
	}
	for range 20 {
		select {
		case <-gotA:
		case m := <-gotB:
			t.Fatalf("the second instance got message %s while the first is pinned", m)
		case <-time.After(10 * time.Second):
			t.Fatal("the pinned instance stopped getting messages")
		}
	}
	itA.Stop()
	publish(21)
	select {
	case m := <-gotB:
		if m != "21" {
			t.Fatalf("after takeover got %s, want 21", m)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the second instance did not take over after the first stopped")
	}
	_ = first
}
