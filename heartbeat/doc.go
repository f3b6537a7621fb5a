// Package heartbeat holds what heartlog knows about a heartbeat before it
// enters the log: decoding the WakaTime JSON that plugins send, validation,
// the deterministic id, the UTC day, and the editor, plugin and operating
// system read from a User-Agent.
//
// The type itself is the protobuf message heartlogv1.Heartbeat, so that the
// API, the log and every sink share one definition.
//
// This package must never do I/O: everything here is pure and cheap enough to
// run on the ingest hot path.
package heartbeat
