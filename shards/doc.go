// Package shards drops Postgres day partitions once their days are safe in
// S3 and SSDB (DESIGN.md invariant 4, "Safe shard drop").
//
// Postgres holds the hot days: one partition heartbeats_YYYYMMDD per UTC
// day, created on demand by the Postgres processor. The objects and cache
// processors write the same heartbeats into S3 and SSDB day files, which is
// where reads of every non-active day come from. The Janitor drops a day's
// partition when the day is older than its grace period (48h after the day
// ends) and the log proves objects and cache have every heartbeat of it.
// Any number of janitors may run (one in every `heartlog process`); one at a
// time works, under a lock.
//
// # The lock
//
// Lock is a key in the locks KV bucket (streams.Config.LocksBucket), whose
// value is the owner (hostname:pid) and which carries its own TTL (the
// bucket has LimitMarkerTTL; nats-server 2.11+). Acquire is kv.Create with
// KeyTTL: it succeeds for exactly one owner. The lock remembers the
// revision of its last write, and every later operation is a
// compare-and-set on that revision:
//
//   - Check reads the key and fails with ErrLost unless it still holds our
//     owner at our revision. The janitor checks before every step.
//   - Renew rewrites the key with a fresh TTL only if it is still at our
//     revision. kv.Update cannot do it: in nats.go v1.55 Update takes no
//     options and writes the new revision without a TTL, so a renewed lock
//     would never expire and a crashed owner would hold it forever. Renew
//     publishes to the key's subject with both the expected last subject
//     sequence (our revision) and Nats-TTL, which is what kv.Create sends,
//     at our revision instead of zero: one atomic step. (Without the
//     JetStream at hand it falls back to Delete(LastRevision) + Create,
//     which is safe but lets another owner in between the two.)
//   - Release deletes the key only at our revision (LastRevision), so a
//     janitor that lost its lock never deletes its successor's.
//   - Keep renews every TTL/3 and cancels its context, with ErrLost as the
//     cause, when a renewal finds the key changed or renewals have failed
//     for most of the TTL.
//
// An owner that is paused (GC, SIGSTOP, a slow disk) past its TTL loses
// the key; when it wakes up, its renewal fails (the revision moved: the
// server wrote an expiry marker, or another owner created the key) and its
// Check fails, so it takes no further step. It may still be inside a step
// it began before the pause: the lock is no fence. Safety therefore does
// not rest on the lock alone but on the steps: each one's precondition is a
// fact that never goes back (proven acks, a state that only moves forward),
// and each one is idempotent, so the same step run twice, or by two
// janitors at once, ends in the same place. The lock keeps janitors from
// doing the work twice, and keeps the protocol's steps in order.
//
// # Dropping a day
//
// A day D is eligible once D+24h+Grace is past, when it has a partition
// table (attached, detach-pending or detached) or its shard is draining.
// For each eligible day, oldest first:
//
//  1. Hold the lock (Check before each step below).
//  2. Prove the day (Prove). The day's messages are on subjects
//     heartbeats.D.<p>. For each partition p that has a message of D, take
//     the stream sequence of the day's last message on heartbeats.D.<p>
//     (stream info filtered by heartbeats.D.*, then the last message per
//     subject). Partition p of a processor is read by the durable consumer
//     <processor>-pNN, filtered on heartbeats.*.<p>; its ack floor is the
//     stream sequence up to which it has acked every message it reads, and
//     processors ack only after their store committed (invariant 3). So if
//     objects-pNN's and cache-pNN's ack floors are at or past the day's last
//     message on p, every message of D on p is in S3 and in SSDB. A missing
//     consumer proves nothing. When some consumer is behind, the day is left
//     untouched and a *NotProvenError says which consumer has acked up to
//     which sequence and which sequence it waits for. (A day with no message
//     left in the stream is proven only if its table is empty: rows whose
//     messages aged out past the stream's MaxAge have nothing to prove them.)
//     This comes before step 3 because reads of a draining day come from
//     SSDB and S3: they must hold the day before it stops being active.
//  3. Mark the shard draining in the shards bucket (streams.PutShard with
//     the revision read: a concurrent writer makes it fail).
//  4. Settle: wait Settle (5s) after the draining write. The Postgres
//     processors keep a KV watch of the shards bucket (streams.ShardView)
//     and check a day's state at the start of every commit; a watch delivers
//     an update in milliseconds, so after Settle every Postgres writer skips
//     D: it neither writes rows of D nor creates D's partition again.
//  5. Prove again, then detach: ALTER TABLE heartbeats DETACH PARTITION ...
//     CONCURRENTLY (outside any transaction block: one simple-protocol
//     statement on the pool). The second proof covers every message the
//     Postgres processor may have written before it saw draining: such a
//     message was published before the settle ended, so it is at or below
//     the last sequences the second proof measures. A detach that was
//     interrupted (the janitor died or was cancelled while Postgres waited
//     for older snapshots) leaves the partition "detach pending"
//     (pg_inherits.inhdetachpending); it is completed with DETACH PARTITION
//     ... FINALIZE. The concurrent detach also waits for writes still in
//     flight on the partition, so no commit is cut in half.
//  6. DROP TABLE IF EXISTS heartbeats_D.
//  7. Mark the shard dropped (compare-and-set on the draining revision).
//
// # Resuming
//
// A janitor can die between any two steps; the state in the shards bucket
// and in Postgres says where, and the next janitor (once the dead one's
// lock has expired) takes it from there:
//
//   - active, table attached: nothing happened yet (or only the proof);
//     start at step 1.
//   - draining: resume at step 4 (the settle counts from the draining
//     write's time, so it is not waited twice), then prove and detach, or
//     finalize a pending detach, or skip to the drop if the table is
//     detached, or skip to step 7 if the table is gone.
//   - dropped, no table: done.
//   - dropped, table present: a Postgres writer whose view was stale
//     recreated the partition after the drop. Writers skip the day, so the
//     janitor proves and drops it again (without a settle: the state has
//     long been visible).
//
// # Late heartbeats
//
// A heartbeat for D that arrives while D is draining or dropped is stored
// in the stream like any other. The objects, cache and backup processors
// write it into S3, SSDB and the backup as usual; the Postgres processor
// skips it (processors/postgres: days whose shard is not active are not
// written, and their partitions are not created). Reads of D come from SSDB
// and S3, so the late heartbeat is visible once objects and cache have it.
// The janitor has nothing to do for it.
//
// # Assumptions
//
// The partition consumers are created with DeliverAll (streams
// PartitionConsumerConfig), so an ack floor is never ahead of what the
// consumer processed; heartbeats has no DEFAULT partition (it would block
// DETACH CONCURRENTLY); and the clocks of the janitor and the NATS server
// agree to within a fraction of Settle when a draining day is resumed. If
// a Postgres writer's watch is stale for longer than Settle, the worst case
// is a recreated partition, which the next run drops again after a proof.
package shards
