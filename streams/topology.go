package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config names and sizes the topology. Start from DefaultConfig.
type Config struct {
	// Stream is the stream's name (default HEARTBEATS).
	Stream string
	// DeadLetterStream holds the heartbeats a sink can never store, parked
	// by the processors (default HEARTBEATS_DLQ); see DeadLetters.
	DeadLetterStream string
	// Partitions is how many partitions users are hashed into (default 16).
	// It is fixed for the life of a stream; Ensure refuses a change.
	Partitions uint32
	// Replicas is 1 for a single server, 3 in a production cluster.
	Replicas int
	// MaxAge is how long the stream keeps messages (default 8 weeks): longer
	// than any Postgres shard lives, since S3 is the archive past it.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size (0, the default here: unbounded;
	// HEARTLOG_STREAM_MAX_BYTES sets it, 16 GiB by default).
	// Past it JetStream refuses new writes (DiscardNew) rather than drop
	// old messages that a sink may not have processed; ingest answers 503
	// before that (see WatchFill). The server reserves MaxBytes against its
	// max_file_store (20G in nats.conf) when the stream is created.
	MaxBytes int64
	// Duplicates is the window in which a repeated Nats-Msg-Id is dropped
	// (default 2 minutes). A first line only: the sinks are the real dedup.
	Duplicates time.Duration
	// ShardsBucket holds the state of each Postgres day shard (default shards).
	ShardsBucket string
	// LocksBucket holds cluster-wide locks with a per-key TTL (default locks).
	LocksBucket string
	// UsersBucket holds the user records ingest authenticates from, keyed
	// by API key hash (default users; see package users).
	UsersBucket string
	// SessionsBucket holds browser sessions by token hash, each key with
	// its own TTL (default sessions; see package sessions).
	SessionsBucket string
	// AckWait is how long a processor's consumer waits for an ack before
	// redelivering (default 30s). It is also how long the messages a killed
	// processor held wait before another gets them; processors signal
	// progress on long commits, so it need not cover the slowest commit.
	AckWait time.Duration
	// PinnedTTL is how long a partition stays pinned to a processor
	// instance that stopped pulling before another instance takes it over
	// (default 30s).
	PinnedTTL time.Duration
}

// DefaultConfig is the topology DESIGN.md describes, for one server.
func DefaultConfig() Config {
	return Config{
		Stream:           "HEARTBEATS",
		DeadLetterStream: "HEARTBEATS_DLQ",
		Partitions:       16,
		Replicas:         1,
		MaxAge:           8 * 7 * 24 * time.Hour,
		Duplicates:       2 * time.Minute,
		ShardsBucket:     "shards",
		LocksBucket:      "locks",
		UsersBucket:      "users",
		SessionsBucket:   "sessions",
		AckWait:          30 * time.Second,
		PinnedTTL:        30 * time.Second,
	}
}

// ErrPartitionsChanged means the stream was created with another partition
// count. Changing it would move users between partitions and break the
// one-writer-per-user-day rule, so it is refused rather than applied.
var ErrPartitionsChanged = errors.New("streams: partition count differs from the stream's")

const partitionsKey = "heartlog.partitions"

// StreamConfig is the HEARTBEATS stream as Ensure declares it.
//
// Discard is DiscardNew: a full stream refuses writes (the client is told
// to retry) instead of deleting the oldest messages, which a lagging sink
// may still need; MaxAge expiry happens either way. Updating a stream made
// with DiscardOld deletes nothing, and a MaxBytes below the stream's size
// under DiscardNew deletes nothing either: writes wait for room.
func (c Config) StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "heartlog heartbeats: one message is a batch of one UTC day and one partition",
		Subjects:    []string{SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      c.MaxAge,
		MaxBytes:    c.maxBytes(),
		Duplicates:  c.Duplicates,
		Replicas:    c.Replicas,
		MaxMsgSize:  1 << 20,
		Metadata:    map[string]string{partitionsKey: strconv.FormatUint(uint64(c.Partitions), 10)},
	}
}

func (c Config) maxBytes() int64 {
	if c.MaxBytes <= 0 {
		return -1
	}
	return c.MaxBytes
}

// Ensure creates or updates the stream and the KV buckets. It is safe to
// call from every instance at every start.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) error {
	if err := ensureStream(ctx, js, c); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, c.DeadLetterStreamConfig()); err != nil {
		return fmt.Errorf("streams: ensure stream %s: %w", c.DeadLetterStream, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      c.ShardsBucket,
		Description: "state of each Postgres day shard: active, draining, dropped",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}); err != nil {
		return fmt.Errorf("streams: ensure KV bucket %s: %w", c.ShardsBucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         c.LocksBucket,
		Description:    "cluster-wide locks; each key carries its own TTL",
		Storage:        jetstream.FileStorage,
		Replicas:       c.Replicas,
		LimitMarkerTTL: time.Minute,
	}); err != nil {
		return fmt.Errorf("streams: ensure KV bucket %s (per-key TTL needs nats-server 2.11+): %w", c.LocksBucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      c.UsersBucket,
		Description: "user records by API key hash, mirrored from Postgres: what ingest authenticates from",
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}); err != nil {
		return fmt.Errorf("streams: ensure KV bucket %s: %w", c.UsersBucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         c.SessionsBucket,
		Description:    "browser sessions by SHA-256 of their token; each key carries the session's TTL",
		Storage:        jetstream.FileStorage,
		Replicas:       c.Replicas,
		LimitMarkerTTL: time.Minute,
		// Bounded, so that a flood of sign-ins fills this bucket (new
		// sign-ins then fail) and never the store the log shares.
		MaxBytes: SessionsMaxBytes,
	}); err != nil {
		return fmt.Errorf("streams: ensure KV bucket %s: %w", c.SessionsBucket, err)
	}
	return nil
}

// SessionsMaxBytes bounds the sessions bucket: some 1,000,000 sessions.
const SessionsMaxBytes = 256 << 20

func ensureStream(ctx context.Context, js jetstream.JetStream, c Config) error {
	want := c.StreamConfig()
	s, err := js.Stream(ctx, c.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil {
			return fmt.Errorf("streams: create stream %s: %w%s", c.Stream, err, storageHint(err))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("streams: look up stream %s: %w", c.Stream, err)
	}
	if have := s.CachedInfo().Config.Metadata[partitionsKey]; have != "" && have != want.Metadata[partitionsKey] {
		return fmt.Errorf("%w: stream %s has %s, configured %d", ErrPartitionsChanged, c.Stream, have, c.Partitions)
	}
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("streams: update stream %s: %w%s", c.Stream, err, storageHint(err))
	}
	return nil
}

// jsInsufficientResources is JetStream's error code for a stream whose
// MaxBytes the server cannot reserve (nats-server's
// JSInsufficientResourcesErr; nats.go has no name for it).
const jsInsufficientResources = 10047

// storageHint says what to change when the server refused a stream for its
// size: the server reserves every stream's MaxBytes against its
// max_file_store, so the message alone ("insufficient storage resources
// available") leaves an operator guessing.
func storageHint(err error) string {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsInsufficientResources {
		return ""
	}
	return " (the server reserves the stream's MaxBytes against its jetstream max_file_store: lower HEARTLOG_STREAM_MAX_BYTES or raise max_file_store in the server's config)"
}

// Durable names of the processors' consumers.
const (
	DurablePostgres = "postgres"
	DurableObjects  = "objects"
	DurableCache    = "cache"
	DurableBackup   = "backup"
)

// ConsumerConfig is the durable pull consumer of one processor.
func (c Config) ConsumerConfig(durable string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "heartlog " + durable + " processor",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 20000,
		FilterSubject: SubjectPrefix + ".>",
	}
}

// EnsureConsumer creates or updates a processor's durable consumer.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, c Config, durable string) (jetstream.Consumer, error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.ConsumerConfig(durable))
	if err != nil {
		return nil, fmt.Errorf("streams: ensure consumer %s on %s: %w", durable, c.Stream, err)
	}
	return cons, nil
}

// PriorityGroup is the pinned priority group every partitioned consumer
// has; processors pull as members of it.
const PriorityGroup = "heartlog"

// PartitionDurable names one partition's consumer of a processor.
func PartitionDurable(processor string, partition uint32) string {
	return fmt.Sprintf("%s-p%02d", processor, partition)
}

// PartitionConsumerConfig is the durable consumer of one partition for a
// processor that reads, merges and writes per user-day (objects, cache,
// backup). The server pins it to one puller at a time, so with any number
// of instances each user-day has one writer per sink (DESIGN.md
// invariant 5); if that puller stops, another takes over after PinnedTTL.
func (c Config) PartitionConsumerConfig(processor string, partition uint32) jetstream.ConsumerConfig {
	cc := c.ConsumerConfig(PartitionDurable(processor, partition))
	cc.Description = fmt.Sprintf("heartlog %s processor, partition %d", processor, partition)
	cc.FilterSubject = PartitionSubjects(partition)
	cc.PriorityGroups = []string{PriorityGroup}
	cc.PriorityPolicy = jetstream.PriorityPolicyPinned
	cc.PinnedTTL = c.PinnedTTL
	return cc
}

// EnsurePartitionConsumers creates or updates a processor's consumer for
// every partition, in partition order.
func EnsurePartitionConsumers(ctx context.Context, js jetstream.JetStream, c Config, processor string) ([]jetstream.Consumer, error) {
	out := make([]jetstream.Consumer, c.Partitions)
	for p := range c.Partitions {
		cons, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.PartitionConsumerConfig(processor, p))
		if err != nil {
			return nil, fmt.Errorf("streams: ensure consumer %s on %s: %w", PartitionDurable(processor, p), c.Stream, err)
		}
		out[p] = cons
	}
	return out, nil
}
