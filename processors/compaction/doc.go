// Package compaction writes a closed UTC day's day files once: for each
// (day, partition) it reads the day's subject, heartbeats.<day>.<p>, back
// from the stream up to the subject's last sequence when it began (its
// bound), sorts the heartbeats by user with bounded memory (spilling sorted
// runs to a temporary directory past a budget, then merging them), and
// commits each user-day exactly once to each day-file sink (objects, cache,
// backup). A sink writes a file only if its bytes change, so a compaction
// run again writes nothing new and adds no backup version.
//
// After a sink has committed the whole partition, the compaction records in
// the shards bucket (streams.Compaction) that the sink holds the partition
// up to the bound. That record is the hand-over: every message of the day
// on the partition after it is the late path's, every message up to it the
// compaction's. A (day, partition, sink) is compacted once; a re-run skips
// what is recorded and redoes the rest from the start, which the sinks'
// idempotent writes make safe (files already complete are read, found
// unchanged and not written).
//
// A compaction runs under a per-(day, partition) lock in the locks bucket
// (shards.Lock), and only for a day whose lifecycle state is closed
// (CloseDay marks it, then waits Settle before any bound is taken, so that
// every reader of the state has seen it).
//
// It must never write a day file other than through a sink's merge (that
// would drop heartbeats another writer stored), never record a bound
// before its sink committed everything up to it, never move a recorded
// bound, and never hold a partition-day in memory past its budget.
package compaction
