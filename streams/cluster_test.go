package streams_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// TestClusterLosesStreamLeaderWithoutLosingAckedHeartbeats is DESIGN.md's
// scale-out claim: on a three-node cluster with R3 streams (ops/cluster),
// killing the stream leader while publishers are busy loses no heartbeat
// whose Publish returned nil. Publishes may fail during the election;
// those heartbeats were never acknowledged, and a client would resend them.
// Every acknowledged one must be readable with each surviving node as the
// stream leader, and the killed node must catch up when it comes back.
func TestClusterLosesStreamLeaderWithoutLosingAckedHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	c := heartlogtest.StartCluster(t, 3)
	nc, js := heartlogtest.Connect(t, c.URLs())
	cfg := streams.DefaultConfig()
	cfg.Replicas = 3
	var err error
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		err = streams.Ensure(context.Background(), js, cfg)
		return err == nil
	}) {
		t.Fatalf("Ensure on the cluster: %v", err)
	}
	leader := waitStreamLeader(t, js, cfg, "")
	pub := streams.NewPublisher(nc, js, cfg, streams.PublisherOptions{})
	t.Cleanup(pub.Close)

	l := startLoad(pub, 6)
	defer l.stop()
	if !heartlogtest.Eventually(30*time.Second, func() bool { return l.acked[0].Load() >= 100 }) {
		t.Fatalf("only %d requests acknowledged on the healthy cluster within 30s", l.acked[0].Load())
	}

	// Kill the leader mid-publish: its followers have to elect a new one,
	// and clients connected to it reconnect to another node.
	killed := c.Node(leader)
	l.phase.Store(1)
	killedAt := time.Now()
	killed.Shutdown()
	survivor := waitStreamLeader(t, js, cfg, leader)
	l.phase.Store(2)
	t.Logf("shut down stream leader %s after %d acknowledged requests; %s leads %v later",
		leader, l.acked[0].Load(), survivor, time.Since(killedAt).Round(time.Millisecond))
	if !heartlogtest.Eventually(30*time.Second, func() bool { return l.acked[2].Load() >= 100 }) {
		t.Fatalf("only %d requests acknowledged within 30s of %s becoming leader", l.acked[2].Load(), survivor)
	}
	acked := l.ackedIDs(t)
	t.Logf("%d heartbeats acknowledged (requests: %d before the kill, %d until a new leader was seen, %d after); %d requests failed",
		len(acked), l.acked[0].Load(), l.acked[1].Load(), l.acked[2].Load(), l.failed.Load())

	// Read the whole stream with each survivor as the leader in turn: the
	// reads go to the leader, so each survivor's copy is checked.
	checkAckedStored(t, js, cfg, acked, survivor)
	var other string
	for _, n := range c.Nodes {
		if n.Name != leader && n.Name != survivor {
			other = n.Name
		}
	}
	stepDownTo(t, nc, js, cfg, other)
	checkAckedStored(t, js, cfg, acked, other)

	// The killed node comes back from its store and catches up.
	c.Restart(t, killed)
	ref := c.Node(other).Server
	var have, want server.StreamState
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		have, want = localStreamState(killed.Server, cfg.Stream), localStreamState(ref, cfg.Stream)
		return killed.Server.JetStreamIsStreamCurrent(server.DEFAULT_GLOBAL_ACCOUNT, cfg.Stream) &&
			have.Msgs == want.Msgs && have.LastSeq == want.LastSeq && want.Msgs > 0
	}) {
		t.Fatalf("restarted %s has %d messages up to seq %d, %s has %d up to %d", leader, have.Msgs, have.LastSeq, other, want.Msgs, want.LastSeq)
	}
	stepDownTo(t, nc, js, cfg, leader)
	checkAckedStored(t, js, cfg, acked, leader)
}

// load publishes from several goroutines until stopped and records the id
// of every heartbeat whose Publish returned nil.
type load struct {
	phase  atomic.Int32 // 0 healthy, 1 leader killed, 2 new leader seen
	acked  [3]atomic.Int64
	failed atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	ids map[string]bool
	err error // the first error a request must not give
}

func startLoad(pub *streams.Publisher, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, ids: map[string]bool{}}
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				// Two users a request, so requests span partitions and a
				// flush writes several messages.
				var hbs []*heartlogv1.Heartbeat
				for u := range 2 {
					hb := &heartlogv1.Heartbeat{Entity: fmt.Sprintf("w%d/r%d.go", w, i), Type: "file", Time: float64(at.Unix())}
					origin := heartbeat.Origin{UserID: fmt.Sprintf("user-%d-%d", w, u), Now: time.Now()}
					if err := heartbeat.DefaultLimits.Prepare(hb, origin); err != nil {
						l.fail(err)
						return
					}
					hbs = append(hbs, hb)
				}
				phase := l.phase.Load()
				if err := pub.Publish(ctx, hbs, nil); err != nil {
					l.failed.Add(1)
					if !errors.Is(err, streams.ErrUnavailable) && ctx.Err() == nil {
						l.fail(err)
						return
					}
					time.Sleep(50 * time.Millisecond)
					continue
				}
				l.mu.Lock()
				for _, hb := range hbs {
					l.ids[hb.Id] = true
				}
				l.mu.Unlock()
				l.acked[phase].Add(1)
			}
		}()
	}
	return l
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// ackedIDs stops the load and returns what it acknowledged.
func (l *load) ackedIDs(t *testing.T) map[string]bool {
	t.Helper()
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		t.Fatalf("publish: %v, want nil or ErrUnavailable", l.err)
	}
	return l.ids
}

// waitStreamLeader waits until the stream has a leader other than not and
// names it.
func waitStreamLeader(t *testing.T, js jetstream.JetStream, cfg streams.Config, not string) string {
	t.Helper()
	var leader string
	var err error
	ok := heartlogtest.Eventually(45*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var s jetstream.Stream
		if s, err = js.Stream(ctx, cfg.Stream); err != nil {
			return false
		}
		if c := s.CachedInfo().Cluster; c != nil && c.Leader != not {
			leader = c.Leader
		}
		return leader != ""
	})
	if !ok {
		t.Fatalf("stream %s has no leader other than %q after 45s (last error: %v): with %d replica(s) the acknowledged heartbeats may be on no surviving node",
			cfg.Stream, not, err, cfg.Replicas)
	}
	return leader
}

// stepDownTo makes the named server the stream's leader.
func stepDownTo(t *testing.T, nc *nats.Conn, js jetstream.JetStream, cfg streams.Config, name string) {
	t.Helper()
	req, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: name}})
	var err error
	ok := heartlogtest.Eventually(30*time.Second, func() bool {
		var msg *nats.Msg
		if msg, err = nc.Request(fmt.Sprintf(server.JSApiStreamLeaderStepDownT, cfg.Stream), req, 5*time.Second); err != nil {
			return false
		}
		var resp server.JSApiStreamLeaderStepDownResponse
		if err = json.Unmarshal(msg.Data, &resp); err != nil {
			return false
		}
		if resp.Error != nil {
			err = resp.Error
			return false
		}
		return true
	})
	if !ok {
		t.Fatalf("step the stream leader down to %s: %v", name, err)
	}
	if got := waitStreamLeader(t, js, cfg, ""); got != name {
		t.Fatalf("stream leader after stepping down to %s is %s", name, got)
	}
}

// checkAckedStored reads every message of the stream through its leader,
// which must be the named node, and fails for each acknowledged heartbeat
// it lacks.
func checkAckedStored(t *testing.T, js jetstream.JetStream, cfg streams.Config, acked map[string]bool, leader string) {
	t.Helper()
	stored := map[string]bool{}
	var messages uint64
	var err error
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		stored, messages, err = storedIDs(js, cfg, leader)
		return err == nil
	}) {
		t.Fatalf("read the stream from %s: %v", leader, err)
	}
	missing := 0
	for id := range acked {
		if !stored[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged heartbeats are not in the stream read from %s", missing, len(acked), leader)
	}
	t.Logf("%s as leader: %d messages, all %d acknowledged heartbeats among their %d", leader, messages, len(acked), len(stored))
}

func storedIDs(js jetstream.JetStream, cfg streams.Config, leader string) (map[string]bool, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return nil, 0, err
	}
	info := s.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader != leader {
		return nil, 0, fmt.Errorf("the stream's leader is %v, not %s", info.Cluster, leader)
	}
	ids := map[string]bool{}
	var n uint64
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			return nil, 0, fmt.Errorf("message %d: %w", seq, err)
		}
		b, err := streams.DecodeBatch(m.Data)
		if err != nil {
			return nil, 0, fmt.Errorf("message %d: %w", seq, err)
		}
		for _, hb := range b.Heartbeats {
			ids[hb.Id] = true
		}
		n++
	}
	return ids, n, nil
}

// localStreamState is the state of the stream's replica on one server.
func localStreamState(s *server.Server, stream string) server.StreamState {
	jsz, err := s.Jsz(&server.JSzOptions{Streams: true})
	if err != nil {
		return server.StreamState{}
	}
	for _, a := range jsz.AccountDetails {
		for _, sd := range a.Streams {
			if sd.Name == stream {
				return sd.State
			}
		}
	}
	return server.StreamState{}
}

// TestClusterExampleConfigs keeps ops/cluster's example configs valid and
// alike: three nodes with distinct names, routed to each other, JetStream
// fsyncing every write.
func TestClusterExampleConfigs(t *testing.T) {
	names := map[string]bool{}
	for i := 1; i <= 3; i++ {
		path := fmt.Sprintf("../ops/cluster/nats-%d.conf", i)
		o, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !o.JetStream || !o.SyncAlways {
			t.Errorf("%s: jetstream %v, sync_interval always %v; want both", path, o.JetStream, o.SyncAlways)
		}
		if o.Cluster.Name != "heartlog" || o.Cluster.Port == 0 || len(o.Routes) != 3 {
			t.Errorf("%s: cluster %q on port %d with %d routes; want heartlog, a port, 3 routes", path, o.Cluster.Name, o.Cluster.Port, len(o.Routes))
		}
		if o.MaxPayload != 1<<20 {
			t.Errorf("%s: max_payload %d, want 1MB (heartlog's largest message)", path, o.MaxPayload)
		}
		names[o.ServerName] = true
	}
	if len(names) != 3 {
		t.Errorf("server names %v: want three distinct", names)
	}
}
