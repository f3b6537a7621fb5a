package stats_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"heartlog/stats"
)

func TestParseRange(t *testing.T) {
	la := mustLoc(t, "America/Los_Angeles")
	// 05:00Z on March 1st is 21:00 PST on February 28th: today is 2026-02-28.
	now := at(t, time.UTC, "2026-03-01 05:00:00")
	cases := []struct {
		name       string
		start, end stats.Date
	}{
		// 7 days ending today: Feb 22 .. 28.
		{"last_7_days", date(2026, 2, 22), date(2026, 2, 28)},
		{"Last 7 Days", date(2026, 2, 22), date(2026, 2, 28)},
		// 30 days: Jan 30, 31 (2) + Feb 1 .. 28 (28).
		{"last_30_days", date(2026, 1, 30), date(2026, 2, 28)},
		// Feb 28 minus 6 months = Aug 28, plus one day.
		{"last_6_months", date(2025, 8, 29), date(2026, 2, 28)},
		// Feb 28 minus 12 months = 2025-02-28, plus one day = Mar 1.
		{"last_year", date(2025, 3, 1), date(2026, 2, 28)},
		{"2026", date(2026, 1, 1), date(2026, 12, 31)},
		{"2024", date(2024, 1, 1), date(2024, 12, 31)},
		{"2026-02", date(2026, 2, 1), date(2026, 2, 28)},
		{"2028-02", date(2028, 2, 1), date(2028, 2, 29)}, // leap year
		{"2025-12", date(2025, 12, 1), date(2025, 12, 31)},
		{"2026-04", date(2026, 4, 1), date(2026, 4, 30)},
	}
	for _, c := range cases {
		s, e, err := stats.ParseRange(c.name, now, la)
		if err != nil || s != c.start || e != c.end {
			t.Errorf("ParseRange(%q) = %v .. %v, %v; want %v .. %v", c.name, s, e, err, c.start, c.end)
		}
	}

	// The same instant in UTC is already March 1st.
	if s, e, _ := stats.ParseRange("last_7_days", now, time.UTC); s != date(2026, 2, 23) || e != date(2026, 3, 1) {
		t.Errorf("UTC last_7_days = %v .. %v, want 2026-02-23 .. 2026-03-01", s, e)
	}

	boundaries := []struct {
		today      string
		name       string
		start, end stats.Date
	}{
		// Across a month: Feb 25 .. 28 (4) + Mar 1 .. 3 (3) = 7.
		{"2026-03-03", "last_7_days", date(2026, 2, 25), date(2026, 3, 3)},
		// Across a year: Dec 12 .. 31 (20) + Jan 1 .. 10 (10) = 30.
		{"2026-01-10", "last_30_days", date(2025, 12, 12), date(2026, 1, 10)},
		// Aug 31 minus 6 months: Feb 31 does not exist, clamp to Feb 28,
		// plus one day: Mar 1 .. Aug 31, exactly six months.
		{"2026-08-31", "last_6_months", date(2026, 3, 1), date(2026, 8, 31)},
		// Across a year: Mar 15 minus 6 months = 2025-09-15, + 1.
		{"2026-03-15", "last_6_months", date(2025, 9, 16), date(2026, 3, 15)},
		// Leap day minus a year: 2027-02-29 clamps to Feb 28, + 1 = Mar 1.
		{"2028-02-29", "last_year", date(2027, 3, 1), date(2028, 2, 29)},
		// Dec 31 minus a year = 2025-12-31, + 1 = 2026-01-01: the calendar year.
		{"2026-12-31", "last_year", date(2026, 1, 1), date(2026, 12, 31)},
		// Jan 1: last_7_days reaches into the previous year.
		{"2026-01-01", "last_7_days", date(2025, 12, 26), date(2026, 1, 1)},
	}
	for _, c := range boundaries {
		s, e, err := stats.ParseRange(c.name, at(t, time.UTC, c.today+" 12:00:00"), time.UTC)
		if err != nil || s != c.start || e != c.end {
			t.Errorf("ParseRange(%q) on %s = %v .. %v, %v; want %v .. %v", c.name, c.today, s, e, err, c.start, c.end)
		}
	}

	s, e, err := stats.ParseRange("all_time", now, la)
	if !errors.Is(err, stats.ErrAllTime) || !s.IsZero() || e != date(2026, 2, 28) {
		t.Errorf("all_time = %v .. %v, %v; want zero .. 2026-02-28, ErrAllTime", s, e, err)
	}

	for _, bad := range []string{"", "last_week", "today", "2026-13", "2026-00", "2026-1", "2026-1a", "202", "20260", "abcd", "0999", "2026-02-01", "2026/02"} {
		_, _, err := stats.ParseRange(bad, now, la)
		if !errors.Is(err, stats.ErrUnknownRange) {
			t.Errorf("ParseRange(%q): err %v, want ErrUnknownRange", bad, err)
			continue
		}
		for _, name := range []string{"last_7_days", "last_30_days", "last_6_months", "last_year", "all_time", "YYYY", "YYYY-MM"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("ParseRange(%q) error %q does not list %s", bad, err, name)
			}
		}
	}
}

func TestUTCDays(t *testing.T) {
	cases := []struct {
		zone       string
		start, end stats.Date
		want       []string
	}{
		// UTC: the day is 00:00Z .. 24:00Z; the 60-minute margins reach
		// 23:00Z the day before and 01:00Z the day after.
		{"UTC", date(2026, 1, 10), date(2026, 1, 10), []string{"20260109", "20260110", "20260111"}},
		// East, Asia/Tokyo (UTC+9): 2026-03-10 is 15:00Z on the 9th ..
		// 15:00Z on the 10th; with margins 14:00Z on the 9th .. 16:00Z.
		{"Asia/Tokyo", date(2026, 3, 10), date(2026, 3, 10), []string{"20260309", "20260310"}},
		{"Asia/Tokyo", date(2026, 3, 10), date(2026, 3, 12), []string{"20260309", "20260310", "20260311", "20260312"}},
		// East, Europe/Berlin (UTC+1 in winter): 23:00Z on the 9th .. 23:00Z
		// on the 10th; margins 22:00Z .. 00:00Z on the 11th, exclusive (a
		// heartbeat at exactly 00:00Z is over 60 min from any heartbeat of
		// the 10th), so no 11th.
		{"Europe/Berlin", date(2026, 3, 10), date(2026, 3, 10), []string{"20260309", "20260310"}},
		// East, UTC+14: 10:00Z on the 9th .. 10:00Z on the 10th.
		{"Pacific/Kiritimati", date(2026, 3, 10), date(2026, 3, 10), []string{"20260309", "20260310"}},
		// West, America/Los_Angeles (PST, UTC-8): 08:00Z on the 10th ..
		// 08:00Z on the 11th; margins 07:00Z .. 09:00Z.
		{"America/Los_Angeles", date(2026, 1, 10), date(2026, 1, 10), []string{"20260110", "20260111"}},
		// West across the DST change: 2026-03-07 00:00 PST = 08:00Z on the
		// 7th .. 2026-03-09 00:00 PDT = 07:00Z on the 9th; margins 07:00Z on
		// the 7th .. 08:00Z on the 9th.
		{"America/Los_Angeles", date(2026, 3, 7), date(2026, 3, 8), []string{"20260307", "20260308", "20260309"}},
		// West, Atlantic/Azores (UTC-1 in winter): 01:00Z on the 10th ..
		// 01:00Z on the 11th; the start margin reaches exactly 00:00Z on the
		// 10th, exclusive, so no 9th.
		{"Atlantic/Azores", date(2026, 1, 10), date(2026, 1, 10), []string{"20260110", "20260111"}},
		// West, Pacific/Honolulu (UTC-10): 10:00Z on the 10th .. 10:00Z on the 11th.
		{"Pacific/Honolulu", date(2026, 3, 10), date(2026, 3, 10), []string{"20260310", "20260311"}},
		// Across a year.
		{"UTC", date(2025, 12, 31), date(2026, 1, 1), []string{"20251230", "20251231", "20260101", "20260102"}},
	}
	for _, c := range cases {
		got := stats.UTCDays(c.start, c.end, mustLoc(t, c.zone))
		if !slices.Equal(got, c.want) {
			t.Errorf("UTCDays(%v, %v, %s) = %v, want %v", c.start, c.end, c.zone, got, c.want)
		}
	}
	if got := stats.UTCDays(date(2026, 3, 10), date(2026, 3, 9), time.UTC); got != nil {
		t.Errorf("reversed range: %v, want nil", got)
	}
}

func TestDate(t *testing.T) {
	d, err := stats.ParseDate("2026-02-28")
	if err != nil || d != date(2026, 2, 28) || d.String() != "2026-02-28" {
		t.Fatalf("ParseDate = %v, %v", d, err)
	}
	for _, bad := range []string{"2026-02-30", "2026-2-28", "20260228", ""} {
		if _, err := stats.ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) accepted", bad)
		}
	}
	if got := d.AddDays(1); got != date(2026, 3, 1) {
		t.Errorf("AddDays(1) = %v", got)
	}
	if got := date(2026, 1, 1).AddDays(-1); got != date(2025, 12, 31) {
		t.Errorf("AddDays(-1) = %v", got)
	}
	// 2026-01-01 .. 2026-12-31 is 364 days apart; across the NY DST change
	// still whole days.
	if n := date(2026, 1, 1).DaysUntil(date(2026, 12, 31)); n != 364 {
		t.Errorf("DaysUntil = %d, want 364", n)
	}
	if n := date(2026, 3, 10).DaysUntil(date(2026, 3, 7)); n != -3 {
		t.Errorf("DaysUntil backwards = %d, want -3", n)
	}
	if !date(2026, 3, 1).After(d) || !d.Before(date(2026, 3, 1)) || d.Compare(d) != 0 {
		t.Error("Compare")
	}
	if stats.NewDate(2026, 2, 30) != date(2026, 3, 2) {
		t.Error("NewDate does not normalize")
	}
	var u stats.Date
	if !u.IsZero() || d.IsZero() {
		t.Error("IsZero")
	}
	if err := u.UnmarshalText([]byte("2026-11-01")); err != nil || u != date(2026, 11, 1) {
		t.Errorf("UnmarshalText = %v, %v", u, err)
	}
	if b, _ := u.MarshalText(); string(b) != "2026-11-01" {
		t.Errorf("MarshalText = %s", b)
	}
	ny := mustLoc(t, "America/New_York")
	// 2026-11-01 starts at 00:00 EDT = 04:00Z; 2026-11-02 at 00:00 EST = 05:00Z: 25 h.
	if m := date(2026, 11, 1).Midnight(ny); !m.Equal(at(t, time.UTC, "2026-11-01 04:00:00")) {
		t.Errorf("Midnight = %v", m)
	}
	if l := date(2026, 11, 2).Midnight(ny).Sub(date(2026, 11, 1).Midnight(ny)); l != 25*time.Hour {
		t.Errorf("2026-11-01 in New York lasts %v, want 25h", l)
	}
	if got := stats.DateOf(at(t, time.UTC, "2026-11-01 03:59:59"), ny); got != date(2026, 10, 31) {
		t.Errorf("DateOf = %v", got)
	}
}
