package stats_test

import (
	"testing"
	"time"

	"heartlog/stats"
)

func TestHoursSplitsAtTheHour(t *testing.T) {
	loc, _ := time.LoadLocation("Australia/Brisbane")
	at := time.Date(2026, 3, 4, 8, 50, 0, 0, loc)
	got := stats.Hours([]stats.Duration{
		{Start: at, Duration: 20 * time.Minute},                     // 08:50 .. 09:10
		{Start: at.Add(3 * time.Hour).UTC(), Duration: time.Minute}, // 11:50, given in UTC
	}, loc)
	want := map[int]time.Duration{8: 10 * time.Minute, 9: 10 * time.Minute, 11: time.Minute}
	for h, d := range got {
		if d != want[h] {
			t.Errorf("hour %d: %v, want %v", h, d, want[h])
		}
	}
}

func TestWeekdaysAndBestDay(t *testing.T) {
	day := func(date string, d time.Duration) stats.Day {
		var x stats.Day
		x.Date, _ = stats.ParseDate(date)
		x.GrandTotal.Total = d
		return x
	}
	// 2026-03-02 is a Monday.
	days := []stats.Day{day("2026-03-02", time.Hour), day("2026-03-08", 0), day("2026-03-09", 3*time.Hour), day("2026-03-10", 3*time.Hour)}
	w := stats.Weekdays(days)
	if w[0].Weekday != time.Monday || w[0].Total != 4*time.Hour || w[0].Average != 2*time.Hour || w[6].Weekday != time.Sunday || w[1].Total != 3*time.Hour {
		t.Fatalf("weekdays: %+v", w)
	}
	best, ok := stats.BestDay(days)
	if !ok || best.Date.String() != "2026-03-09" {
		t.Fatalf("best day: %v %v, want the earlier of two equal days", best.Date, ok)
	}
	if _, ok := stats.BestDay(days[1:2]); ok {
		t.Fatal("a range without time has a best day")
	}
}
