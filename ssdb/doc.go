// Package ssdb is the SSDB read cache of day files (DESIGN.md, "SSDB" and
// "Day files"): one string key per user-day, `<prefix>/<user id>/<YYYY-MM-DD>.ndjson.gz`,
// holding the gzipped NDJSON day file as opaque binary bytes, and beside it
// the day's digest for accounting (`<…>/<YYYY-MM-DD>.digest.v1`, package
// heartlog/schema/digest, which also says in which order the two are
// written: Apply's ordered pipeline), and the day's generation
// (`<…>/<YYYY-MM-DD>.gen`, an INCR counter that every write counts up, so
// that writers that race see it without MULTI or SET NX). The cache
// processor writes day files into it as heartbeats arrive; reads of days whose
// Postgres shard is gone take them from here (one MGET for all the days of a
// range) and, on a miss, read S3 and fill the cache with SETEX.
//
// It speaks the Redis protocol through go-redis and is tested against Redis,
// but production runs SSDB, which implements only part of that protocol and
// does not always fail loudly outside it: SSDB answers OK to
// `SET key value EX n` and sets no TTL, and treats `SET ... NX` as a plain
// SET. So this package must never send a command outside the subset that
// DESIGN.md lists as verified against SSDB 1.9.8:
//
//	GET key
//	SET key value            (plain: no EX, PX, NX, XX, KEEPTTL, GET options)
//	SETEX key seconds value  (the only way to set a value with a TTL)
//	MGET key [key ...]
//	MSET key value [key value ...]
//	DEL key [key ...]        (string keys)
//	EXPIRE key seconds       (no NX, XX, GT, LT options)
//	TTL key
//	INCR key
//	pipelines of the above
//
// plus PING (SSDB's Redis adapter answers it with +PONG) and the one-argument
// AUTH password (SSDB's `auth`), which go-redis sends on connect only when the
// URL carries a password.
//
// Never: SET with EX/PX/NX/XX options, MULTI/EXEC (TxPipeline), WATCH, EVAL,
// EVALSHA or any Lua, SELECT (the URL must name DB 0, or none), multi-field
// HSET or any hash, list, set or sorted-set command, client-side caching and
// other RESP3 features, and the CLIENT SETNAME / CLIENT SETINFO / HELLO
// handshake that go-redis does by default and SSDB may not answer.
//
// Guard enforces this: it is a go-redis hook, installed on the client before
// its first connection, that refuses every command outside the subset (with
// ErrNotInSubset, before anything is written to the socket) and answers
// go-redis's connection-time HELLO itself with an "unknown command" error, so
// that go-redis falls back to RESP2 without a HELLO ever reaching the server.
// Setting Protocol: 2 is not enough for that: go-redis v9 sends `HELLO 2`
// on every new connection regardless.
//
// The cache is a cache: every error is returned to the caller, who falls back
// to S3, and every operation is bounded by the configured dial, read and write
// timeouts and by the context's deadline.
package ssdb
