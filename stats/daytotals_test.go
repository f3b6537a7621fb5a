package stats_test

import (
	"testing"
	"time"

	"heartlog/stats"
)

// TestDayTotalsAreSummariesGrandTotals: the heat map's totals are the
// summaries' grand totals, day by day, under every option that changes
// them: another time zone than the heartbeats' (days split at another
// midnight), a short timeout, writes only, a project, and a range that
// starts and ends inside the data.
func TestDayTotalsAreSummariesGrandTotals(t *testing.T) {
	berlin, tokyo := mustLoc(t, "Europe/Berlin"), mustLoc(t, "Asia/Tokyo")
	act := stats.ActivityOf(yearOfHeartbeats(berlin, 300, 4))
	for _, opts := range []stats.Options{
		{Location: berlin, Start: date(2025, 2, 20), End: date(2026, 3, 10)},
		{Location: tokyo, Start: date(2025, 6, 1), End: date(2025, 6, 30), Timeout: 1},
		{Location: tokyo, Start: date(2025, 3, 1), End: date(2025, 4, 30), WritesOnly: true, Project: "website"},
	} {
		days, err := stats.SummarizeBeats(act, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := stats.DayTotals(act, opts)
		if err != nil || len(got) != len(days) {
			t.Fatalf("%+v: %d days, %v; want %d", opts, len(got), err, len(days))
		}
		var sum time.Duration
		for i, d := range days {
			if got[i].Date != d.Date || got[i].Total != d.GrandTotal.Total {
				t.Fatalf("%+v: day %d is %v %v, summaries say %v %v", opts, i, got[i].Date, got[i].Total, d.Date, d.GrandTotal.Total)
			}
			sum += got[i].Total
		}
		if sum == 0 {
			t.Fatalf("%+v: no time at all: the comparison proves nothing", opts)
		}
	}
	if _, err := stats.DayTotals(act, stats.Options{Start: date(2025, 3, 2), End: date(2025, 3, 1)}); err == nil {
		t.Fatal("an end before the start was accepted")
	}
}
