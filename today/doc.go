// Package today keeps today's live totals for the users who are reading
// them: per active user, the heartbeats of their current local day and the
// status bar rendered from them (the stats accounting GetStatusBar uses),
// fed by the HEARTBEATS stream, so that a status-bar read is a lookup and a
// watcher hears of every new batch of its user's heartbeats.
//
// It is a read-side view of the log, never a store or a processor: it must
// never write, ack or create a durable consumer on the stream (its
// consumers are in-memory ordered ones), never decide what a sink keeps,
// and never answer with a figure it cannot show to be exact. Where it
// cannot (a user it could not activate, one past its caps), it says so with
// an error and the caller computes the status bar from the read path.
//
// # Exactness at activation
//
// A user becomes active on their first status-bar read or watch. Their
// day is then the union, deduplicated by heartbeat id, of three reads:
//
//  1. the read path (Postgres for today's hot days), read after taking F,
//     the ack floor of the Postgres projector's durable: the projector
//     acks a message only after its rows are committed, so every message
//     at or below F is in that read (and maybe some above it);
//  2. the stream from F+1 up to R, the last message the partition's feed
//     had handled when the user joined it (a catch-up read of the user's
//     subjects, only when R > F);
//  3. every message the feed handles after R, which it hands to the user
//     from then on (held back while 1 and 2 run, applied after them).
//
// The feed takes R and adds the user under the same lock under which it
// handles each message, so each message is in 2 or in 3, never in neither;
// everything below F+1 is in 1. A heartbeat in two of them (a row above F
// already committed, a client's resend) has one id and counts once, as
// Postgres keeps it once (first stored wins, as its ON CONFLICT DO NOTHING).
//
// The feed filters on the partition's subjects of the UTC days from two
// before today to one after, which contain the UTC days of every time
// zone's local today (UTC-12 to UTC+14) with stats.MaxTimeout either side;
// each user keeps only stats.UTCDays of their own local day.
//
// # When watchers hear
//
// The status bar a read returns moves as soon as the feed has a message;
// a watcher is told of it only once the Postgres projector has it too (or
// after Options.MaxAnnounceDelay), because a watcher then reads the other
// views again from the read path (announce.go).
package today
