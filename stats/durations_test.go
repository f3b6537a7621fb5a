package stats_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
)

type span struct {
	start string // local "15:04:05" or "2006-01-02 15:04:05"
	d     time.Duration
	key   string
}

func checkDurations(t *testing.T, what string, got []stats.Duration, loc *time.Location, layout string, key func(stats.Duration) string, want []span) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d durations, want %d: %+v", what, len(got), len(want), got)
		return
	}
	for i, w := range want {
		g := got[i]
		if s := g.Start.In(loc).Format(layout); s != w.start || g.Duration != w.d || key(g) != w.key {
			t.Errorf("%s[%d] = %s %v %s, want %s %v %s", what, i, s, g.Duration, key(g), w.start, w.d, w.key)
		}
		if g.Start.Location() != loc {
			t.Errorf("%s[%d] start in %v, want %v", what, i, g.Start.Location(), loc)
		}
	}
}

func TestDurationsWorkedExample(t *testing.T) {
	hbs := workedExample(t)
	got, err := stats.Durations(hbs, stats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	project := func(d stats.Duration) string { return d.Project }
	// api 09:00 → 09:07 (heartbeats 1-2 and the gap 2→3); web 09:07 →
	// 09:22 (3-4; 4→5 is 20 min, over the timeout); api 09:42 alone: 0.
	checkDurations(t, "by project", got, time.UTC, "15:04:05", project, []span{
		{"09:00:00", 7 * mn, "api"},
		{"09:07:00", 15 * mn, "web"},
		{"09:42:00", 0, "api"},
	})
	// Attributes are the first heartbeat's.
	if got[0].Entity != "main.go" || got[0].Language != "Go" || got[1].Entity != "app.ts" {
		t.Errorf("attributes %+v", got[:2])
	}

	got, err = stats.Durations(hbs, stats.Options{SliceBy: stats.ByEntity})
	if err != nil {
		t.Fatal(err)
	}
	entity := func(d stats.Duration) string { return d.Entity }
	// main.go 09:00 → 09:02, db.go 09:02 → 09:07, app.ts 09:07 → 09:22
	// (two heartbeats, one duration), main.go 09:42: 0.
	checkDurations(t, "by entity", got, time.UTC, "15:04:05", entity, []span{
		{"09:00:00", 2 * mn, "main.go"},
		{"09:02:00", 5 * mn, "db.go"},
		{"09:07:00", 15 * mn, "app.ts"},
		{"09:42:00", 0, "main.go"},
	})

	got, err = stats.Durations(hbs, stats.Options{SliceBy: stats.ByLanguage, Project: "api"})
	if err != nil {
		t.Fatal(err)
	}
	checkDurations(t, "api only", got, time.UTC, "15:04:05", project, []span{
		{"09:00:00", 7 * mn, "api"},
		{"09:42:00", 0, "api"},
	})
}

func TestDurationsSliceKeys(t *testing.T) {
	u := time.UTC
	mk := func(clock, project, language string, deps ...string) *heartlogv1.Heartbeat {
		hb := beat(at(t, u, "2026-03-10 "+clock), project)
		hb.Language, hb.Dependencies = language, deps
		return hb
	}
	hbs := []*heartlogv1.Heartbeat{
		mk("10:00:00", "p", "Go", "x"),
		mk("10:01:00", "p", "Go", "x"),
		mk("10:02:00", "p", "Python", "x"),
		mk("10:03:00", "q", "Python", "y"),
		mk("10:04:00", "q", "Python", "y"),
	}
	lang := func(d stats.Duration) string { return d.Project + "/" + d.Language }
	got, err := stats.Durations(hbs, stats.Options{SliceBy: stats.ByLanguage})
	if err != nil {
		t.Fatal(err)
	}
	// p/Go 10:00 → 10:02, p/Python 10:02 → 10:03 (the project changes even
	// though the language does not), q/Python 10:03 → 10:04.
	checkDurations(t, "by language", got, u, "15:04", lang, []span{
		{"10:00", 2 * mn, "p/Go"},
		{"10:02", 1 * mn, "p/Python"},
		{"10:03", 1 * mn, "q/Python"},
	})
	deps := func(d stats.Duration) string { return fmt.Sprint(d.Dependencies) }
	got, err = stats.Durations(hbs, stats.Options{SliceBy: stats.ByDependencies})
	if err != nil {
		t.Fatal(err)
	}
	checkDurations(t, "by dependencies", got, u, "15:04", deps, []span{
		{"10:00", 3 * mn, "[x]"},
		{"10:03", 1 * mn, "[y]"},
	})
	if _, err := stats.Durations(hbs, stats.Options{SliceBy: "colour"}); !errors.Is(err, stats.ErrSliceBy) {
		t.Errorf("slice_by colour: %v, want ErrSliceBy", err)
	}
}

func TestDurationsMidnight(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	hbs := []*heartlogv1.Heartbeat{
		beat(at(t, berlin, "2026-01-15 23:50:00"), "p"),
		beat(at(t, berlin, "2026-01-16 00:05:00"), "p"),
		beat(at(t, berlin, "2026-01-16 00:08:00"), "p"),
	}
	project := func(d stats.Duration) string { return d.Project }
	const layout = "2006-01-02 15:04:05"
	// Whole: 23:50 → 00:08 = 18 min.
	got, err := stats.Durations(hbs, stats.Options{Location: berlin})
	if err != nil {
		t.Fatal(err)
	}
	checkDurations(t, "whole", got, berlin, layout, project, []span{{"2026-01-15 23:50:00", 18 * mn, "p"}})
	// Both days: split at midnight into 10 + 8 minutes.
	got, err = stats.Durations(hbs, stats.Options{Location: berlin, Start: date(2026, 1, 15), End: date(2026, 1, 16)})
	if err != nil {
		t.Fatal(err)
	}
	checkDurations(t, "two days", got, berlin, layout, project, []span{
		{"2026-01-15 23:50:00", 10 * mn, "p"},
		{"2026-01-16 00:00:00", 8 * mn, "p"},
	})
	// The 16th only: the part from midnight.
	got, err = stats.Durations(hbs, stats.Options{Location: berlin, Start: date(2026, 1, 16), End: date(2026, 1, 16)})
	if err != nil {
		t.Fatal(err)
	}
	checkDurations(t, "16th", got, berlin, layout, project, []span{{"2026-01-16 00:00:00", 8 * mn, "p"}})
}

// TestDurationsAddUpToSummaries checks the two views against each other on
// irregular input: for every day, the durations clipped to that day add up
// to its grand total, with and without filters.
func TestDurationsAddUpToSummaries(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	var hbs []*heartlogv1.Heartbeat
	v := at(t, ny, "2026-03-06 20:00:00")
	projects := []string{"a", "b", "c"}
	for i := range 3000 {
		// Gaps cycle through 37 s .. 25 min, so some exceed the timeout.
		v = v.Add(time.Duration(37+(i*7919)%1500) * sec)
		hb := beat(v, projects[(i/5)%3])
		hb.IsWrite = ptr(i%3 != 0)
		hbs = append(hbs, hb)
	}
	for _, o := range []stats.Options{
		{Location: ny, Start: date(2026, 3, 7), End: date(2026, 3, 12)},
		{Location: ny, Start: date(2026, 3, 7), End: date(2026, 3, 12), WritesOnly: true},
		{Location: ny, Start: date(2026, 3, 7), End: date(2026, 3, 12), Project: "b", Timeout: 5},
		{Location: ny, Start: date(2026, 3, 8), End: date(2026, 3, 8), SliceBy: stats.ByEntity, Timeout: 60},
	} {
		days := summarize(t, hbs, o)
		durs, err := stats.Durations(hbs, o)
		if err != nil {
			t.Fatal(err)
		}
		sum := map[stats.Date]time.Duration{}
		for _, d := range durs {
			sum[stats.DateOf(d.Start, ny)] += d.Duration
		}
		var any time.Duration
		for _, d := range days {
			any += d.GrandTotal.Total
			if sum[d.Date] != d.GrandTotal.Total {
				t.Errorf("%+v: %v: durations %v, summary %v", o, d.Date, sum[d.Date], d.GrandTotal.Total)
			}
		}
		if any == 0 {
			t.Errorf("%+v: no time at all; the check is empty", o)
		}
	}
}
