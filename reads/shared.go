package reads

import (
	"context"
	"strings"
	"time"

	"heartlog/users"
)

// Concurrent Activity reads of one user's same days share one read of
// their day files: the dashboard asks for a year's stats, insights,
// summaries and heat map at once, and each would otherwise MGET and parse
// the same 365 digests (most of a warm read's CPU). Only the file days are
// shared. They are closed days, which change only when a late heartbeat is
// merged in, so a read that joins one begun a moment earlier sees what it
// would have seen then. The hot days (Postgres) are always read by each
// caller: one told that a heartbeat landed (today.Tracker's announcements)
// must see it. Heartbeats reads are not shared either: they hand out the
// day files' heartbeat messages themselves, which a caller may change.

// sharedReadBound bounds a shared read, which outlives a caller that gives
// up (another may still wait for it).
const sharedReadBound = time.Minute

// sharedActivityFiles is fromFiles with digests, shared with the
// concurrent calls for the same user and days.
func (r *Reader) sharedActivityFiles(ctx context.Context, u users.User, days []string) (fileDays, error) {
	key := u.ID + "/" + strings.Join(days, ",")
	ch := r.flights.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedReadBound)
		defer cancel()
		return r.fromFiles(fctx, u, days, true)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return fileDays{}, res.Err
		}
		if res.Shared {
			readsShared.Inc()
		}
		return res.Val.(fileDays), nil
	case <-ctx.Done():
		return fileDays{}, ctx.Err()
	}
}
