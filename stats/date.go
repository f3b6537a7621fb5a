package stats

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Date is a civil date (a local day), independent of any time zone. The zero
// Date means "unset".
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateLayout is the form of a Date in text: YYYY-MM-DD.
const DateLayout = "2006-01-02"

// NewDate returns the date y-m-d, normalized the way time.Date normalizes
// (2026-02-30 is 2026-03-02).
func NewDate(y int, m time.Month, d int) Date {
	return dateOfUTC(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
}

// DateOf returns the local date of t in loc (UTC when loc is nil).
func DateOf(t time.Time, loc *time.Location) Date {
	if loc == nil {
		loc = time.UTC
	}
	y, m, d := t.In(loc).Date()
	return Date{y, m, d}
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(DateLayout, s)
	if err != nil {
		return Date{}, fmt.Errorf("stats: date %q: want YYYY-MM-DD", s)
	}
	return dateOfUTC(t), nil
}

func dateOfUTC(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// String returns YYYY-MM-DD.
func (d Date) String() string { return d.utc().Format(DateLayout) }

// MarshalText implements encoding.TextMarshaler (YYYY-MM-DD).
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (YYYY-MM-DD).
func (d *Date) UnmarshalText(b []byte) error {
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// AddDays returns the date n days after d (before, for negative n).
func (d Date) AddDays(n int) Date {
	return dateOfUTC(time.Date(d.Year, d.Month, d.Day+n, 0, 0, 0, 0, time.UTC))
}

// Compare returns -1, 0 or +1 as d is before, equal to or after o.
func (d Date) Compare(o Date) int { return d.utc().Compare(o.utc()) }

// Before reports whether d is before o.
func (d Date) Before(o Date) bool { return d.Compare(o) < 0 }

// After reports whether d is after o.
func (d Date) After(o Date) bool { return d.Compare(o) > 0 }

// DaysUntil returns the number of days from d to o (negative if o is before
// d). Civil days: computed in UTC, so DST plays no part.
func (d Date) DaysUntil(o Date) int {
	return int(o.utc().Sub(d.utc()) / (24 * time.Hour))
}

// Midnight returns the instant the local day d begins in loc (UTC when loc
// is nil): time.Date(y, m, d, 0, 0, 0, 0, loc). A local day lasts from its
// Midnight to the next day's Midnight: 23, 24 or 25 hours. (Where a zone's
// clocks skip midnight itself, Go picks a valid instant and the day starts
// there.)
func (d Date) Midnight(loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

func (d Date) utc() time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC) }

// Named ranges understood by ParseRange (WakaTime's stats ranges).
const (
	RangeLast7Days   = "last_7_days"
	RangeLast30Days  = "last_30_days"
	RangeLast6Months = "last_6_months"
	RangeLastYear    = "last_year"
	RangeAllTime     = "all_time"
)

var (
	// ErrAllTime is returned by ParseRange for "all_time", together with end
	// (today): the start is the user's first day, which only the caller
	// knows (for example the day of the first heartbeat, or the account's
	// creation).
	ErrAllTime = errors.New("stats: all_time starts at the user's first day")
	// ErrUnknownRange is wrapped by ParseRange's error for a name it does not
	// know; the message lists the valid ones.
	ErrUnknownRange = errors.New("stats: unknown range")
)

const validRanges = "last_7_days, last_30_days, last_6_months, last_year, all_time, YYYY (a year), YYYY-MM (a month)"

// ParseRange returns the inclusive local days [start, end] a named range
// covers, for a user in loc at instant now. Today is DateOf(now, loc).
//
//   - last_7_days, last_30_days: the N days ending today, today included
//     (last_7_days on 2026-02-28 is 2026-02-22 .. 2026-02-28).
//   - last_6_months, last_year: the day after today minus 6 (12) calendar
//     months, through today; "today minus months" clamps to the end of a
//     shorter month (last_6_months on 2026-08-31 starts 2026-03-01: Feb 28
//     plus one day).
//   - all_time: end is today, start is zero, and the error is ErrAllTime.
//   - YYYY: that calendar year; YYYY-MM: that calendar month. Both may reach
//     past today (days to come are simply empty).
//
// Names are matched case-insensitively, with spaces read as underscores, so
// "Last 7 Days" works too. Anything else is an error wrapping
// ErrUnknownRange that lists the valid names.
func ParseRange(name string, now time.Time, loc *time.Location) (start, end Date, err error) {
	today := DateOf(now, loc)
	key := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), " ", "_")
	switch key {
	case RangeLast7Days:
		return today.AddDays(-6), today, nil
	case RangeLast30Days:
		return today.AddDays(-29), today, nil
	case RangeLast6Months:
		return monthsBack(today, 6).AddDays(1), today, nil
	case RangeLastYear:
		return monthsBack(today, 12).AddDays(1), today, nil
	case RangeAllTime:
		return Date{}, today, ErrAllTime
	}
	if y, ok := year(key); ok && len(key) == 4 {
		return Date{y, time.January, 1}, Date{y, time.December, 31}, nil
	}
	if len(key) == 7 && key[4] == '-' {
		y, okY := year(key[:4])
		m, errM := strconv.Atoi(key[5:])
		if okY && errM == nil && key[5] >= '0' && key[5] <= '9' && m >= 1 && m <= 12 {
			first := Date{y, time.Month(m), 1}
			return first, Date{y, time.Month(m), daysIn(y, time.Month(m))}, nil
		}
	}
	return Date{}, Date{}, fmt.Errorf("%w %q: valid ranges are %s", ErrUnknownRange, name, validRanges)
}

// year parses exactly four digits, 1000..9999.
func year(s string) (int, bool) {
	if len(s) < 4 {
		return 0, false
	}
	for i := range 4 {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	y, _ := strconv.Atoi(s[:4])
	return y, y >= 1000
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// monthsBack returns d minus n calendar months, clamping the day to the
// length of the target month (2026-08-31 minus 6 months is 2026-02-28).
func monthsBack(d Date, n int) Date {
	first := time.Date(d.Year, d.Month-time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	y, m, _ := first.Date()
	return Date{y, m, min(d.Day, daysIn(y, m))}
}

// UTCDays returns the UTC days (YYYYMMDD, ascending) whose heartbeats can
// count toward the local days [start, end] in loc: the read path fetches
// exactly these day shards.
//
// Time is credited to the earlier heartbeat of a gap of at most MaxTimeout,
// so the heartbeats that matter lie in the open interval
// (Midnight(start) - MaxTimeout, Midnight(end+1) + MaxTimeout): one just
// before the range can credit time after its first midnight, and one just
// after the range tells the range's last heartbeat how long its gap was.
// That margin adds a UTC day on a side only when it crosses a UTC midnight:
// for UTC itself both neighbours come in; for Europe/Berlin (UTC+1 in
// winter) the range's local midnight is 23:00Z the day before, the margin
// reaches 22:00Z, and the end margin stops just short of 00:00Z, so a single
// Berlin day needs two UTC days.
//
// It returns nil when end is before start.
func UTCDays(start, end Date, loc *time.Location) []string {
	if end.Before(start) {
		return nil
	}
	lo := start.Midnight(loc).Add(-MaxTimeout).UTC()
	hi := end.AddDays(1).Midnight(loc).Add(MaxTimeout).Add(-time.Nanosecond).UTC()
	first, last := dateOfUTC(lo), dateOfUTC(hi)
	out := make([]string, 0, first.DaysUntil(last)+1)
	for d := first; !d.After(last); d = d.AddDays(1) {
		out = append(out, d.utc().Format("20060102"))
	}
	return out
}
