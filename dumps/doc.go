// Package dumps moves one user's heartbeats in and out of heartlog as
// files: Import reads WakaTime's data dump (the JSON of its "heartbeats"
// export: {"user": …, "range": …, "days": [{"date": …, "heartbeats": […]}]})
// or JSON lines of heartbeats (a day file, or what Export writes) and
// appends them to the log as ingest does; Export writes a user's
// heartbeats as JSON lines, by UTC day, from wherever each day lives.
//
// An import goes through the log, not around it: every heartbeat is
// validated and prepared as a live one (heartbeat.Limits.Prepare, so it
// gets the id a live one would), batched per (UTC day, partition) into
// messages whose Nats-Msg-Id is the hash of their ids, and from the log it
// reaches every sink. A day inside the shard grace gets its Postgres rows;
// an older one is left to the day files by the Postgres processor, closed
// by the day closer like any day that is over, and compacted into S3, SSDB
// and the backup from the stream (a day already closed is merged by the
// late path). Because ids and batches are deterministic and every sink is
// idempotent, running an import again adds nothing: the server drops the
// repeated messages within the stream's duplicate window, and the sinks
// after it.
//
// Both directions stream: the dump is read token by token, JSON lines line
// by line, and an export holds a few days at a time, so a multi-gigabyte
// file needs no more memory than a small one.
package dumps
