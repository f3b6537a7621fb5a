// Package stats is heartlog's time accounting: how heartbeats become coding
// time, the way WakaTime computes it. It is pure: no I/O and no clock; every
// function takes the heartbeats, the instant and the time zone it needs.
//
// # The algorithm
//
// Take one user's heartbeats in time order (ties broken by id, the day-file
// order). If Options.WritesOnly is set, drop every heartbeat whose is_write
// is not true first; the rest never see them.
//
//  1. The gap from a heartbeat to the next one counts toward the earlier
//     heartbeat, with all its attributes: project, language, entity,
//     branch, editor, operating system, machine, category and each of its
//     dependencies.
//  2. A gap counts only if it is at most the timeout (the "keystroke
//     timeout": 15 minutes unless the user or the request says otherwise,
//     1 to 60). A longer gap counts nothing and ends the run; so the last
//     heartbeat of a run, and a lone heartbeat, contribute 0 seconds.
//  3. A day is a local day in the user's time zone, [00:00, next 00:00),
//     built with time.Date and so 23 or 25 hours long on DST days. Time
//     counted for a gap that crosses local midnight is split at midnight
//     between the two days.
//  4. Each day's grand total is the sum of its counted time; the total of a
//     project (language, ...) is the sum of the time counted toward
//     heartbeats with that project. A heartbeat with N dependencies credits
//     its full time to each of them.
//  5. Durations are the same time seen as intervals: consecutive heartbeats
//     joined while the key (the project, plus Options.SliceBy) stays the
//     same and every gap is within the timeout.
//
// # Worked example
//
// Timeout 15 min, time zone UTC, one day, 2026-03-10:
//
//	#  time      project  language    entity   gap to next  counted
//	1  09:00:00  api      Go          main.go  2m00s        120 s  api  Go          main.go
//	2  09:02:00  api      Go          db.go    5m00s        300 s  api  Go          db.go
//	3  09:07:00  web      TypeScript  app.ts   15m00s       900 s  web  TypeScript  app.ts  (= timeout: counts)
//	4  09:22:00  web      TypeScript  app.ts   20m00s         0 s  (> timeout: the run ends)
//	5  09:42:00  api      Go          main.go  (none)         0 s  (last heartbeat)
//
// Totals:
//
//	grand total  120 + 300 + 900 = 1320 s  text "22 mins", digital "0:22", decimal "0.37" (22/60 = 0.366..)
//	projects     web 900 s (900/1320 = 68.18 %), api 120 + 300 = 420 s (31.82 %)
//	languages    TypeScript 900 s, Go 420 s
//	entities     app.ts 900 s, db.go 300 s, main.go 120 s
//
// Durations (sliced by project):
//
//	09:00:00  api   7m00s  heartbeats 1-2, and the gap 2→3 (it counts toward 2)
//	09:07:00  web  15m00s  heartbeats 3-4; 4→5 is over the timeout
//	09:42:00  api     0s   heartbeat 5 alone
//
// Midnight: in Europe/Berlin, heartbeats at 23:50 and at 00:05 the next day
// (gap 15 min, counted) give 10 min to the first day and 5 min to the second.
// DST: in America/New_York on 2026-03-08 the clocks jump from 02:00 to
// 03:00, so 01:50 and 03:05 are 15 real minutes apart (counted, 900 s) and
// the day is 23 hours long; time arithmetic is always on instants, never on
// wall clocks.
//
// # Units and presentation
//
// Amounts are time.Duration (integer nanoseconds) throughout, so sums are
// exact and independent of order: the projects of a day add up to its grand
// total to the nanosecond. Heartbeat times (float seconds) are rounded to
// the microsecond on the way in. The WakaTime presentation fields (Item,
// GrandTotal) are derived at the end: total_seconds as a float, hours,
// minutes and seconds truncated, text ("1 hr 5 mins"), digital ("1:05" for
// a grand total, "1:05:00" for an item, as WakaTime's summaries show them),
// decimal (from whole hours and minutes: "1.08") and percent (2 decimals).
//
// # Reading a range
//
// ParseRange turns WakaTime's named ranges into local days; UTCDays lists the
// UTC day shards the read path must fetch for them (the heartbeats up to
// MaxTimeout on either side matter); Summarize, Durations and StatusBar do
// the rest. They work on an Activity (Beats: a heartbeat's time, is_write
// and the index of its attribute set; the sets as indexes into one table of
// strings and one of dependency lists, none of it holding pointers but the
// tables); SummarizeBeats and DurationsOfBeats take it as the read
// path makes them from day digests, without building heartbeats.
package stats
