// Package catalog is the table of heartlog's processors: for each, its
// name, how it consumes the stream, its flush settings, whether the shard
// janitor waits for it, and how its sink is built from the stores and the
// settings. cmd/heartlog, replay, the test kit and the benchmarks read it;
// a new sink is one row here and one file of its own.
//
// It builds sinks; it never opens a connection (the caller hands it the
// stores) and never runs one (processors.Run does).
package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"heartlog/config"
	"heartlog/daydb"
	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/backup"
	cachesink "heartlog/processors/cache"
	"heartlog/processors/compaction"
	"heartlog/processors/objects"
	pgsink "heartlog/processors/postgres"
	"heartlog/schema/dayfile"
	"heartlog/ssdb"
	"heartlog/streams"
)

// Consumption is how a processor reads the stream.
type Consumption int

const (
	// Shared: one durable consumer that every instance pulls from; the
	// sink's writes are idempotent inserts, so any instance may take any
	// message.
	Shared Consumption = iota
	// LatePath: one pinned consumer per partition (one writer per
	// user-day at a time), admitting only what its day's compaction did
	// not cover (compaction.LatePath); the day's files are written by the
	// compaction when the day closes.
	LatePath
)

// Processor is one row of the table.
type Processor struct {
	Name     string
	Consumes Consumption
	// GuardsDrops: the shard janitor drops a day's Postgres shard only
	// once this processor holds the whole day (shards.Options.Processors).
	GuardsDrops bool
	// Flush is the processor's batching from the settings (for a late
	// path, the batching of late heartbeats).
	Flush func(config.Config) config.Flush
	// Build makes the processor's sink.
	Build func(ctx context.Context, e Env) (processors.Sink, error)
}

// Env is what sinks are built from.
type Env struct {
	Config config.Config
	Log    zerolog.Logger
	Stores Stores
	// Standby builds the cache sink for a replay beside the live
	// processor (dayfiles.Options.Standby).
	Standby bool
	// Deleted tells the users whose heartbeats every sink drops (deleted
	// users: users.Directory.Deleted); nil drops none.
	Deleted processors.DeletedFunc
}

// Sink builds the processor's sink from e: Build's, without the
// heartbeats of deleted users (processors.WithoutDeleted).
func (p Processor) Sink(ctx context.Context, e Env) (processors.Sink, error) {
	s, err := p.Build(ctx, e)
	if err != nil {
		return nil, err
	}
	return processors.WithoutDeleted(s, e.Deleted, e.Log), nil
}

// Stores are the connections sinks write through; each sink needs some.
type Stores struct {
	Days    *daydb.Set         // the Postgres databases and the placement of days
	Shards  *streams.ShardView // the Postgres sink's view of shard states
	Primary objstore.Bucket    // S3
	Backup  objstore.Bucket    // the versioned backup bucket; may be nil for objects
	Cache   *ssdb.Cache
}

// Processors is the table, in the order they start.
var Processors = []Processor{
	{
		Name: streams.DurablePostgres, Consumes: Shared,
		Flush: func(c config.Config) config.Flush { return config.Flush{Messages: c.FetchBatch} },
		Build: func(_ context.Context, e Env) (processors.Sink, error) {
			return pgsink.New(e.Stores.Days, e.Stores.Shards, e.Log, pgsink.Options{Writers: e.Config.PostgresWriters, Grace: e.Config.ShardsGrace}), nil
		},
	},
	{
		Name: streams.DurableObjects, Consumes: LatePath, GuardsDrops: true,
		Flush: func(c config.Config) config.Flush { return c.Objects },
		Build: func(ctx context.Context, e Env) (processors.Sink, error) {
			c := e.Config
			return objects.New(ctx, e.Stores.Primary, objects.Options{
				Concurrency: c.Objects.Concurrency, MemoBytes: c.Objects.MemoBytes, AssumeNew: -1,
				Limits: Limits(c), MergeBytes: c.MergeBytes, Backup: e.Stores.Backup, Log: e.Log,
			}), nil
		},
	},
	{
		Name: streams.DurableCache, Consumes: LatePath, GuardsDrops: true,
		Flush: func(c config.Config) config.Flush { return c.Cache },
		Build: func(_ context.Context, e Env) (processors.Sink, error) {
			c := e.Config
			return cachesink.New(e.Stores.Cache, e.Stores.Primary, cachesink.Options{
				Concurrency: c.Cache.Concurrency, MemoBytes: c.Cache.MemoBytes,
				Limits: Limits(c), MergeBytes: c.MergeBytes, Standby: e.Standby, Log: e.Log,
			}), nil
		},
	},
	{
		Name: streams.DurableBackup, Consumes: LatePath,
		Flush: func(c config.Config) config.Flush { return c.BackupFlush },
		Build: func(ctx context.Context, e Env) (processors.Sink, error) {
			c := e.Config
			return backup.New(ctx, e.Stores.Backup, backup.Options{
				Concurrency: c.BackupFlush.Concurrency, RequestsPerSecond: c.BackupRequestsPerSec, AssumeNew: -1,
				MemoBytes: c.BackupFlush.MemoBytes, Limits: Limits(c), MergeBytes: c.MergeBytes, Log: e.Log,
			}), nil
		},
	},
}

// Lookup returns the named row, or an error that lists the names.
func Lookup(name string) (Processor, error) {
	for _, p := range Processors {
		if p.Name == name {
			return p, nil
		}
	}
	return Processor{}, fmt.Errorf("unknown processor %q; this release has: %s", name, strings.Join(Names(nil), ", "))
}

// Names are the processors' names, those for which keep is true (all
// for nil), in table order.
func Names(keep func(Processor) bool) []string {
	var out []string
	for _, p := range Processors {
		if keep == nil || keep(p) {
			out = append(out, p.Name)
		}
	}
	return out
}

// GuardingDrops are the processors the shard janitor waits for.
func GuardingDrops() []string { return Names(func(p Processor) bool { return p.GuardsDrops }) }

// DayFiles are the processors whose files a day's compaction writes.
func DayFiles() []string { return Names(func(p Processor) bool { return p.Consumes == LatePath }) }

// Limits are the day-file limits from the settings.
func Limits(c config.Config) dayfile.Limits {
	return dayfile.Limits{MaxBytes: c.DayFileMaxBytes, MaxHeartbeats: c.DayFileMaxHeartbeats}
}

// CompactionSinks are the sinks a compaction writes for the named
// day-file processors (all of them for none) whose stores e holds, from
// compaction.Sinks with the settings, without the heartbeats of deleted
// users (Env.Deleted). createFirst is compaction.SinkOptions.CreateFirst.
func CompactionSinks(e Env, createFirst bool, names ...string) []processors.Sink {
	c := e.Config
	all := compaction.Sinks(compaction.Stores{Primary: e.Stores.Primary, Cache: e.Stores.Cache, Backup: e.Stores.Backup}, compaction.SinkOptions{
		Concurrency: c.Objects.Concurrency, BackupConcurrency: c.BackupFlush.Concurrency,
		BackupRequestsPerSecond: c.BackupRequestsPerSec, Limits: Limits(c), MergeBytes: c.MergeBytes,
		CreateFirst: createFirst, Log: e.Log,
	})
	var out []processors.Sink
	for _, s := range all {
		if len(names) == 0 || slices.Contains(names, s.Name()) {
			out = append(out, processors.WithoutDeleted(s, e.Deleted, e.Log))
		}
	}
	return out
}

// CompactorOptions are compaction.Options from the settings.
func CompactorOptions(c config.Config, owner string, log zerolog.Logger) compaction.Options {
	return compaction.Options{
		MemoryBytes: c.CompactionMemoryBytes, TempDir: c.CompactionDir, Partitions: c.CompactionPartitions,
		CloseDelay: c.DayCloseDelay, Owner: owner, Log: log,
	}
}
