package api

import (
	"time"

	"heartlog/heartbeat"
	"heartlog/stats"
)

// firstDay is the earliest local day a read may name: ingest refuses
// heartbeats before heartbeat.Earliest, so nothing older exists.
var firstDay = stats.DateOf(heartbeat.Earliest, time.UTC)

// lastDay is the latest local day a read may name: tomorrow in the read's
// time zone (loc: the request's timezone, else the user's), one day past
// today for clocks ahead of ours. Ingest refuses heartbeats more than a day
// in the future, so nothing newer exists.
func lastDay(now time.Time, loc *time.Location) stats.Date {
	return stats.DateOf(now, loc).AddDays(1)
}

// parseDay reads the date parameter param (YYYY-MM-DD) and refuses a day
// outside firstDay .. lastDay with an error naming param, so that no store is
// asked for a day it cannot have (year 0 or 9999 used to reach them and
// fail as an outage).
func parseDay(param, value string, now time.Time, loc *time.Location) (stats.Date, error) {
	d, err := stats.ParseDate(value)
	if err != nil {
		return stats.Date{}, badf("%s must be YYYY-MM-DD, got %q", param, value)
	}
	if last := lastDay(now, loc); d.Before(firstDay) || d.After(last) {
		return stats.Date{}, badf("%s must be from %s to %s (tomorrow in %s), got %s", param, firstDay, last, loc, value)
	}
	return d, nil
}

// checkRange refuses a named range (YYYY, YYYY-MM) that has no day within
// firstDay .. lastDay. One that overlaps them is kept whole: stats/2026
// covers the year, its days to come simply empty.
func checkRange(param, name string, start, end stats.Date, now time.Time, loc *time.Location) error {
	if last := lastDay(now, loc); end.Before(firstDay) || start.After(last) {
		return badf("%s %q has no day from %s to %s (tomorrow in %s)", param, name, firstDay, last, loc)
	}
	return nil
}
