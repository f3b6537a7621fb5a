package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ShardState is the life stage of one Postgres day partition. A day with no
// key in the shards bucket is active.
type ShardState string

const (
	// ShardActive: Postgres holds the day and takes its writes.
	ShardActive ShardState = "active"
	// ShardDraining: the janitor is dropping the day; writers must skip it.
	ShardDraining ShardState = "draining"
	// ShardDropped: the partition is gone; reads come from SSDB and S3.
	ShardDropped ShardState = "dropped"
)

// Writable reports whether the Postgres processor may write the day.
func (s ShardState) Writable() bool { return s == "" || s == ShardActive }

// Shard is the value stored under a day's key in the shards bucket.
type Shard struct {
	State     ShardState `json:"state"`
	UpdatedAt time.Time  `json:"updated_at"`
	// By names the janitor that set the state, for the operator's eye.
	By string `json:"by,omitempty"`
}

// ShardView is an in-memory copy of the shards bucket, kept current by a
// KV watch, so that the hot path asks no server per message.
type ShardView struct {
	mu     sync.RWMutex
	states map[string]ShardState
	w      jetstream.KeyWatcher
}

// WatchShards opens the bucket and returns once the view holds every key's
// current value.
func WatchShards(ctx context.Context, js jetstream.JetStream, cfg Config) (*ShardView, error) {
	v := &ShardView{states: map[string]ShardState{}}
	w, err := watchShardsBucket(ctx, js, cfg, v.apply)
	if err != nil {
		return nil, err
	}
	v.w = w
	return v, nil
}

// watchShardsBucket watches every key of the shards bucket into apply and
// returns once apply has had every key's current value; it goes on
// applying updates until the watcher is stopped.
func watchShardsBucket(ctx context.Context, js jetstream.JetStream, cfg Config, apply func(jetstream.KeyValueEntry)) (jetstream.KeyWatcher, error) {
	kv, err := js.KeyValue(ctx, cfg.ShardsBucket)
	if err != nil {
		return nil, fmt.Errorf("streams: open KV bucket %s: %w", cfg.ShardsBucket, err)
	}
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("streams: watch KV bucket %s: %w", cfg.ShardsBucket, err)
	}
	for {
		select {
		case e := <-w.Updates():
			if e == nil { // every current value has been delivered
				go func() {
					for e := range w.Updates() {
						if e != nil {
							apply(e)
						}
					}
				}()
				return w, nil
			}
			apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		}
	}
}

func (v *ShardView) apply(e jetstream.KeyValueEntry) {
	if !isDayKey(e.Key()) {
		return // a day's lifecycle or compaction key (days.go)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(v.states, e.Key())
		return
	}
	var s Shard
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		// A value we cannot read must not let writes into a day that may be
		// gone: treat it as draining.
		s.State = ShardDraining
	}
	v.states[e.Key()] = s.State
}

// State is the day's state (YYYYMMDD); ShardActive when the bucket has none.
func (v *ShardView) State(day string) ShardState {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if s, ok := v.states[day]; ok {
		return s
	}
	return ShardActive
}

// Stop ends the watch.
func (v *ShardView) Stop() error { return v.w.Stop() }

// PutShard sets a day's state. revision 0 creates the key; otherwise the
// write succeeds only if the key is still at that revision.
func PutShard(ctx context.Context, kv jetstream.KeyValue, day string, s Shard, revision uint64) (uint64, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return 0, err
	}
	if revision == 0 {
		rev, err := kv.Create(ctx, day, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("streams: shard %s changed under us: %w", day, err)
		}
		return rev, err
	}
	return kv.Update(ctx, day, data, revision)
}

// PastGrace reports whether the UTC day (YYYYMMDD) ended grace or more
// before now: the shard janitor may drop such a day's partition, and the
// Postgres processor creates none for it (its heartbeats go to the day
// files alone). A zero grace means no day is past it. A day that does not
// parse is not past grace.
func PastGrace(day string, grace time.Duration, now time.Time) bool {
	if grace <= 0 {
		return false
	}
	t, err := time.Parse("20060102", day)
	if err != nil {
		return false
	}
	return !t.AddDate(0, 0, 1).Add(grace).After(now)
}
