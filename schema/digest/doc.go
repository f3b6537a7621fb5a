// Package digest is the day digest: one user-day's heartbeats reduced to
// the fields that accounting (package stats) reads, in the columnar
// protobuf message heartlog.v1.DayDigest, for the read path. SSDB holds
// each day file's digest beside it, under
//
//	<prefix>/<user id>/<YYYY-MM-DD>.digest.v1
//
// (Key; the version is that of this encoding), with the same TTL. A warm
// summary reads digests instead of day files: a day of 1,000 heartbeats is
// some 13 KB of protobuf that decodes in 0.1 to 0.2 ms, where its day file
// is 20 to 45 KB of gzip and 600 KB of JSON that take about 2 ms
// (BenchmarkDecode).
//
// # What a digest holds
//
// Per heartbeat, in day-file order (time, id): the time rounded to the
// microsecond (exactly as stats counts time), entity, type, category,
// project, branch, language, editor, operating system, machine,
// dependencies and is_write (absent read as false). Not the id, the user
// id, the line and cursor numbers, plugin, user agent nor extra: Decode's
// heartbeats are for accounting only, and a route that returns heartbeats
// reads the day file. Per heartbeat the digest holds only the time, is_write
// and the index of its attribute set; each distinct set (entity ..
// dependencies) is stored once per day, each string once in a dictionary,
// each dependency list once.
//
// Decode gives the form stats consumes directly, a stats.Activity (per
// heartbeat the time, the index of its attribute set and is_write; the
// sets as indexes into the day's dictionary and dependency lists;
// stats.SummarizeBeats, stats.DurationsOfBeats), not heartbeats: 16 bytes
// per heartbeat and 40 per set, none of it pointers, where a
// heartlogv1.Heartbeat is 376 bytes of pointers for the garbage collector
// to scan (a year of them was 137 MB a request). A reader of many days
// Parses each, sizes one Activity for all (Day.Size) and decodes each day
// into its part (Day.DecodeInto), with no concatenation.
//
// Beats have no id: they keep the day file's (time, id) order, which is
// what stats credits by, so a digest and its day file give the same
// totals and durations (the tests check that).
//
// # Consistency rule
//
// A digest is derived from its day file and must never describe another
// version of it. So whoever writes a day file into SSDB (the cache
// processor's store, merge.CacheStore, and the read path's fill from S3 or
// write-back, package reads) writes it with Write (or Put), which sends, in
// ONE pipeline and in this order:
//
//	DEL digest; SETEX day file; SETEX digest; INCR generation; EXPIRE generation
//
// SSDB has no transactions, but it runs a connection's commands in order,
// so a crash or a lost connection after any prefix leaves the digest
// missing (or the old pair intact), never stale; the read path decodes the
// day file of a day whose digest is missing (and writes the pair back).
// A day file whose heartbeats cannot be digested (a time too far from 1970
// to round-trip through microseconds) gets no digest: only the DEL, the day
// file and the generation are written. Drop removes a day (DEL digest, DEL
// day file, INCR generation).
//
// # Generations
//
// Two writers can race on one day (SSDB has no conditional write): the
// cache processor, a replay into the cache, the read path's fills. The
// generation (GenKey) is how they notice: every write counts it up, so a
// writer that read generation g with the file and whose own INCR returns
// g+1 knows no other write came in between, and one that gets more knows
// its write may have overwritten another, or been overwritten. What each
// writer then does, and why no reader or later merge sees less than S3
// had, is in package processors/cache and in reads' fill.
package digest
