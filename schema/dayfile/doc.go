// Package dayfile is the format of a day file: the set of one user's
// heartbeats of one UTC day, as the objects (S3), cache (SSDB) and backup
// (Spaces) sinks store it, under the key
//
//	<prefix>/<user id>/<YYYY-MM-DD>.ndjson.gz
//
// (see Key and ParseKey).
//
// # Format
//
// A day file is gzip (RFC 1952) of NDJSON: one heartbeat per line, each line
// a JSON object ending in "\n", with the WakaTime field names in this fixed
// order:
//
//	id, user_id, entity, type, category, time, project, project_root_count,
//	branch, language, dependencies, lines, line_additions, line_deletions,
//	lineno, cursorpos, is_write, ai_line_changes, human_line_changes,
//	editor, plugin, operating_system, machine, user_agent, extra
//
// id and time are always written. Every other field is omitted when it is
// absent: an unset optional number or is_write, an empty string, an empty
// dependency list. null is never written, and an optional number that is
// set to 0, or is_write set to false, is written. time is seconds since 1970
// written exactly as encoding/json writes a float64 (the shortest decimal
// that reads back to the same bits). Strings are escaped exactly as
// encoding/json escapes them with HTML escaping off. extra holds the unknown
// fields a client sent (the heartbeat's extra_json) as one compact JSON
// object under its own key, so that they can never collide with a field of
// the format. Lines are sorted by (time, id), and ids are unique.
//
// Anyone can read a day file with zcat, jq, DuckDB (read_ndjson) or Athena.
//
// # Determinism
//
// A day file is a set. Merge takes the union by id of the heartbeats a file
// holds and the heartbeats that arrive, and sorts it by (time, id); Encode
// writes that set as bytes that depend on nothing but the set: the fixed
// field order and number and string forms above, then gzip at a fixed level
// with a zeroed header (no name, no comment, mtime 0, OS byte 255). Because
// a heartbeat's id is a hash of its content, replaying any part of the log,
// in any order, any number of times, gives byte-identical files (DESIGN.md,
// invariant 2), and Merge's changed result tells a sink when a write, and a
// new version in the versioned backup bucket, can be skipped.
//
// The compressed bytes also depend on the version of
// github.com/klauspost/compress. The golden test (testdata/golden.ndjson.gz)
// fails when an upgrade changes them; the content is unchanged then, but a
// file rewritten after the upgrade differs in its bytes from one written
// before it.
//
// # Compatibility
//
// Decode ignores keys it does not know, takes a missing key as absent, skips
// blank lines and takes a null as absent, so files written by older or newer
// versions read. A key Decode does not know is dropped when the file is
// written again: teach Decode a new field one release before Encode writes
// it. A file that is not gzip, is truncated, or has a line that is not a
// heartbeat returns an error that wraps ErrCorrupt and says what is wrong
// and on which line.
//
// This package must never do I/O: it turns heartbeats into bytes and back,
// and the sinks store the bytes. Everything here is pure, safe for
// concurrent use, and cheap enough for the processors' hot path.
package dayfile
