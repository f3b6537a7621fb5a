package streams

import (
	"context"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// noDay is the day of the subject a late consumer reads while no day is
// closed: a consumer with no filter would read everything, and no
// message is ever published for it (it is not a date).
const noDay = "00000000"

// LateConsumerConfig is a day-file processor's consumer of one partition
// as the late path of closed days: PartitionConsumerConfig reading only
// heartbeats.<day>.<partition> of each of days. The messages of open days
// are never delivered to it, so an open day costs the late path nothing;
// a day's compaction adds the day (compaction.SyncLateFilters) before it
// takes its bound, so every message past the bound is delivered.
func (c Config) LateConsumerConfig(processor string, partition uint32, days []string) jetstream.ConsumerConfig {
	cc := c.PartitionConsumerConfig(processor, partition)
	cc.FilterSubject = ""
	cc.FilterSubjects = LateSubjects(partition, days)
	return cc
}

// LateSubjects are the filter subjects of a late consumer of partition
// for days, sorted.
func LateSubjects(partition uint32, days []string) []string {
	days = slices.Sorted(slices.Values(days))
	days = slices.Compact(days)
	if len(days) == 0 {
		days = []string{noDay}
	}
	out := make([]string, len(days))
	for i, d := range days {
		out[i] = Subject(d, partition)
	}
	return out
}

// EnsureLateConsumers creates or updates every partition's late consumer
// of processor to read days, in partition order. Its position in the
// stream is kept: a day added now is delivered from here on.
func EnsureLateConsumers(ctx context.Context, js jetstream.JetStream, c Config, processor string, days []string) ([]jetstream.Consumer, error) {
	out := make([]jetstream.Consumer, c.Partitions)
	for p := range c.Partitions {
		cons, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.LateConsumerConfig(processor, p, days))
		if err != nil {
			return nil, fmt.Errorf("streams: ensure late consumer %s on %s: %w", PartitionDurable(processor, p), c.Stream, err)
		}
		out[p] = cons
	}
	return out, nil
}

// LateReads reports whether a partition consumer configured as cfg reads
// day's subject: a late consumer whose filter names the day, or one that
// reads every day of the partition (PartitionConsumerConfig).
func LateReads(cfg jetstream.ConsumerConfig, partition uint32, day string) bool {
	want := Subject(day, partition)
	return cfg.FilterSubject == PartitionSubjects(partition) || cfg.FilterSubject == want || slices.Contains(cfg.FilterSubjects, want)
}

// PartitionConsumers looks up a processor's consumer of every partition,
// in partition order, without changing them.
func PartitionConsumers(ctx context.Context, js jetstream.JetStream, c Config, processor string) ([]jetstream.Consumer, error) {
	out := make([]jetstream.Consumer, c.Partitions)
	for p := range c.Partitions {
		cons, err := js.Consumer(ctx, c.Stream, PartitionDurable(processor, p))
		if err != nil {
			return nil, fmt.Errorf("streams: consumer %s on %s: %w", PartitionDurable(processor, p), c.Stream, err)
		}
		out[p] = cons
	}
	return out, nil
}
