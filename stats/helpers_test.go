package stats_test

import (
	"testing"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

// at parses "2006-01-02 15:04:05" (optionally with fractional seconds) as a
// wall-clock time in loc. Use a UTC instant for the wall clocks a DST change
// makes ambiguous.
func at(t testing.TB, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, loc)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}

func secs(v time.Time) float64 {
	return float64(v.Unix()) + float64(v.Nanosecond())/1e9
}

// beat returns a heartbeat at v with a project and fixed other attributes.
func beat(v time.Time, project string) *heartlogv1.Heartbeat {
	return &heartlogv1.Heartbeat{
		Time:            secs(v),
		Project:         project,
		Language:        "Go",
		Entity:          "/src/" + project + "/main.go",
		Type:            "file",
		Category:        "coding",
		Branch:          "main",
		Editor:          "vim",
		OperatingSystem: "Linux",
		Machine:         "box",
	}
}

func date(y int, m time.Month, d int) stats.Date { return stats.Date{Year: y, Month: m, Day: d} }

// summarize runs Summarize and fails the test on error.
func summarize(t *testing.T, hbs []*heartlogv1.Heartbeat, opts stats.Options) []stats.Day {
	t.Helper()
	days, err := stats.Summarize(hbs, opts)
	if err != nil {
		t.Fatalf("Summarize: %v", err)
	}
	return days
}

func oneDay(t *testing.T, hbs []*heartlogv1.Heartbeat, opts stats.Options) stats.Day {
	t.Helper()
	days := summarize(t, hbs, opts)
	if len(days) != 1 {
		t.Fatalf("got %d days, want 1", len(days))
	}
	return days[0]
}

// totals maps item names to their totals, for compact comparisons.
func totals(list []stats.Item) map[string]time.Duration {
	m := make(map[string]time.Duration, len(list))
	for _, it := range list {
		m[it.Name] = it.Total
	}
	return m
}

func sameTotals(t *testing.T, what string, got []stats.Item, want map[string]time.Duration) {
	t.Helper()
	g := totals(got)
	if len(g) != len(want) {
		t.Errorf("%s: got %v, want %v", what, g, want)
		return
	}
	for k, v := range want {
		if g[k] != v {
			t.Errorf("%s[%q]: got %v, want %v (all: %v)", what, k, g[k], v, g)
		}
	}
}

func ptr[T any](v T) *T { return &v }
