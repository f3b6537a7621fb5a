package stats_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
)

const (
	sec = time.Second
	mn  = time.Minute
)

// workedExample is the table of the package documentation.
func workedExample(t *testing.T) []*heartlogv1.Heartbeat {
	u := time.UTC
	mk := func(clock, project, language, entity string) *heartlogv1.Heartbeat {
		hb := beat(at(t, u, "2026-03-10 "+clock), project)
		hb.Language, hb.Entity = language, entity
		return hb
	}
	return []*heartlogv1.Heartbeat{
		mk("09:00:00", "api", "Go", "main.go"),
		mk("09:02:00", "api", "Go", "db.go"),
		mk("09:07:00", "web", "TypeScript", "app.ts"),
		mk("09:22:00", "web", "TypeScript", "app.ts"),
		mk("09:42:00", "api", "Go", "main.go"),
	}
}

func TestSummarizeWorkedExample(t *testing.T) {
	d := oneDay(t, workedExample(t), stats.Options{Start: date(2026, 3, 10), End: date(2026, 3, 10)})
	// 120 + 300 + 900 (gap = timeout, counts) + 0 (gap 20 min) + 0 (last).
	if d.GrandTotal.Total != 1320*sec {
		t.Fatalf("grand total %v, want 1320 s", d.GrandTotal.Total)
	}
	if g := d.GrandTotal; g.Text != "22 mins" || g.Digital != "0:22" || g.Decimal != "0.37" || g.TotalSeconds != 1320 {
		t.Errorf("grand total presentation %+v", g)
	}
	// web 900, api 120 + 300 = 420; sorted by time descending.
	want := []struct {
		name    string
		total   time.Duration
		percent float64
	}{{"web", 900 * sec, 68.18}, {"api", 420 * sec, 31.82}} // 900/1320, 420/1320
	if len(d.Projects) != 2 {
		t.Fatalf("projects %+v", d.Projects)
	}
	for i, w := range want {
		p := d.Projects[i]
		if p.Name != w.name || p.Total != w.total || p.Percent != w.percent {
			t.Errorf("projects[%d] = %s %v %v%%, want %s %v %v%%", i, p.Name, p.Total, p.Percent, w.name, w.total, w.percent)
		}
	}
	sameTotals(t, "languages", d.Languages, map[string]time.Duration{"TypeScript": 900 * sec, "Go": 420 * sec})
	sameTotals(t, "entities", d.Entities, map[string]time.Duration{"app.ts": 900 * sec, "db.go": 300 * sec, "main.go": 120 * sec})
	if d.Entities[0].Name != "app.ts" || d.Entities[1].Name != "db.go" || d.Entities[2].Name != "main.go" {
		t.Errorf("entities not sorted by time: %+v", d.Entities)
	}
	sameTotals(t, "editors", d.Editors, map[string]time.Duration{"vim": 1320 * sec})
	sameTotals(t, "operating_systems", d.OperatingSystems, map[string]time.Duration{"Linux": 1320 * sec})
	sameTotals(t, "machines", d.Machines, map[string]time.Duration{"box": 1320 * sec})
	sameTotals(t, "branches", d.Branches, map[string]time.Duration{"main": 1320 * sec})
	sameTotals(t, "categories", d.Categories, map[string]time.Duration{"coding": 1320 * sec})
	sameTotals(t, "dependencies", d.Dependencies, map[string]time.Duration{})
	if d.Editors[0].Percent != 100 {
		t.Errorf("editor percent %v, want 100", d.Editors[0].Percent)
	}

	// Without entities: the same totals, an empty (non-nil) entity list.
	d = oneDay(t, workedExample(t), stats.Options{Start: date(2026, 3, 10), End: date(2026, 3, 10), OmitEntities: true})
	if d.GrandTotal.Total != 1320*sec || d.Entities == nil || len(d.Entities) != 0 {
		t.Errorf("OmitEntities: total %v, entities %#v", d.GrandTotal.Total, d.Entities)
	}
	sameTotals(t, "projects without entities", d.Projects, map[string]time.Duration{"web": 900 * sec, "api": 420 * sec})
}

func TestTimeoutEdges(t *testing.T) {
	u := time.UTC
	opts := stats.Options{Start: date(2026, 3, 10), End: date(2026, 3, 10)}
	cases := []struct {
		name   string
		second string // time of the second heartbeat; the first is 10:00:00
		want   time.Duration
	}{
		{"just under", "10:14:59", 899 * sec},                                 // 14 min 59 s = 899 s < 900
		{"exactly at", "10:15:00", 900 * sec},                                 // 900 s = timeout: counts
		{"just over", "10:15:00.000001", 0},                                   // 900.000001 s > timeout: nothing
		{"sub-second under", "10:14:59.999999", 899999999 * time.Microsecond}, // 899.999999 s
	}
	for _, c := range cases {
		hbs := []*heartlogv1.Heartbeat{beat(at(t, u, "2026-03-10 10:00:00"), "p"), beat(at(t, u, "2026-03-10 "+c.second), "p")}
		d := oneDay(t, hbs, opts)
		if d.GrandTotal.Total != c.want {
			t.Errorf("%s: total %v, want %v", c.name, d.GrandTotal.Total, c.want)
		}
	}
}

func TestFractionalSecondsAreExact(t *testing.T) {
	// 1773000000.1 and 1773000060.1 are 60 s apart; as floats their
	// difference is not exactly 60, which must not show as "59 secs".
	hbs := []*heartlogv1.Heartbeat{{Time: 1773000000.1, Project: "p"}, {Time: 1773000060.1, Project: "p"}}
	d := oneDay(t, hbs, stats.Options{Start: date(2026, 3, 8), End: date(2026, 3, 8)}) // 1773000000 = 2026-03-08T20:00:00Z
	if d.GrandTotal.Total != 60*sec || d.GrandTotal.Text != "1 min" {
		t.Errorf("total %v %q, want 60 s \"1 min\"", d.GrandTotal.Total, d.GrandTotal.Text)
	}
}

func TestSingleHeartbeat(t *testing.T) {
	hbs := []*heartlogv1.Heartbeat{beat(at(t, time.UTC, "2026-03-10 10:00:00"), "solo")}
	d := oneDay(t, hbs, stats.Options{Start: date(2026, 3, 10), End: date(2026, 3, 10)})
	if d.GrandTotal.Total != 0 || d.GrandTotal.Text != "0 secs" {
		t.Errorf("grand total %+v, want 0", d.GrandTotal)
	}
	// The project was seen, for 0 s.
	if len(d.Projects) != 1 || d.Projects[0].Name != "solo" || d.Projects[0].Total != 0 || d.Projects[0].Percent != 0 {
		t.Errorf("projects %+v, want solo 0 s", d.Projects)
	}
}

func TestTimeoutSetting(t *testing.T) {
	u := time.UTC
	day := date(2026, 3, 10)
	mk := func(clocks ...string) []*heartlogv1.Heartbeat {
		var hbs []*heartlogv1.Heartbeat
		for _, c := range clocks {
			hbs = append(hbs, beat(at(t, u, "2026-03-10 "+c), "p"))
		}
		return hbs
	}
	cases := []struct {
		timeout int
		hbs     []*heartlogv1.Heartbeat
		want    time.Duration
	}{
		// Timeout 1 min: 10:00→10:01 is 60 s (counts), 10:01→10:02:01 is 61 s (does not).
		{1, mk("10:00:00", "10:01:00", "10:02:01"), 60 * sec},
		// Timeout 60 min: 10:00→11:00 is 3600 s (counts), 11:00→12:00:01 is 3601 s (does not).
		{60, mk("10:00:00", "11:00:00", "12:00:01"), 3600 * sec},
		// Default (0 → 15 min): 10:00→10:15 counts (900), 10:15→10:45 (1800) does not.
		{0, mk("10:00:00", "10:15:00", "10:45:00"), 900 * sec},
		// Timeout 30: both of those count: 900 + 1800 = 2700.
		{30, mk("10:00:00", "10:15:00", "10:45:00"), 2700 * sec},
	}
	for _, c := range cases {
		d := oneDay(t, c.hbs, stats.Options{Start: day, End: day, Timeout: c.timeout})
		if d.GrandTotal.Total != c.want {
			t.Errorf("timeout %d: total %v, want %v", c.timeout, d.GrandTotal.Total, c.want)
		}
	}
	for _, bad := range []int{-1, 61, 1000} {
		if _, err := stats.Summarize(nil, stats.Options{Start: day, End: day, Timeout: bad}); !errors.Is(err, stats.ErrTimeout) {
			t.Errorf("Summarize timeout %d: err %v, want ErrTimeout", bad, err)
		}
		if _, err := stats.Durations(nil, stats.Options{Timeout: bad}); !errors.Is(err, stats.ErrTimeout) {
			t.Errorf("Durations timeout %d: err %v, want ErrTimeout", bad, err)
		}
	}
	// As a setting or request parameter, 0 is invalid like 61.
	for _, bad := range []int{0, 61, -5} {
		if err := stats.ValidateTimeout(bad); !errors.Is(err, stats.ErrTimeout) {
			t.Errorf("ValidateTimeout(%d) = %v, want ErrTimeout", bad, err)
		}
	}
	for _, ok := range []int{1, 15, 60} {
		if err := stats.ValidateTimeout(ok); err != nil {
			t.Errorf("ValidateTimeout(%d) = %v", ok, err)
		}
	}
	for _, s := range []string{"0", "61", "", "15m", "1.5"} {
		if _, err := stats.ParseTimeout(s); !errors.Is(err, stats.ErrTimeout) {
			t.Errorf("ParseTimeout(%q): err %v, want ErrTimeout", s, err)
		}
	}
	if n, err := stats.ParseTimeout("60"); n != 60 || err != nil {
		t.Errorf("ParseTimeout(60) = %d, %v", n, err)
	}
}

func TestMidnightSplit(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	hbs := []*heartlogv1.Heartbeat{
		beat(at(t, berlin, "2026-01-15 23:50:00"), "p"), // 22:50Z
		beat(at(t, berlin, "2026-01-16 00:05:00"), "p"), // 23:05Z: same UTC day, next local day
	}
	days := summarize(t, hbs, stats.Options{Location: berlin, Start: date(2026, 1, 15), End: date(2026, 1, 16)})
	// The 15-minute gap (= timeout, counts) is split at local midnight:
	// 23:50 → 24:00 = 600 s on the 15th, 00:00 → 00:05 = 300 s on the 16th.
	if days[0].GrandTotal.Total != 600*sec || days[1].GrandTotal.Total != 300*sec {
		t.Errorf("totals %v / %v, want 600 s / 300 s", days[0].GrandTotal.Total, days[1].GrandTotal.Total)
	}
	// The second day's time is credited to the earlier heartbeat's project.
	sameTotals(t, "16th projects", days[1].Projects, map[string]time.Duration{"p": 300 * sec})

	// Only the 16th asked for: the 23:50 heartbeat (from the range's
	// previous day) still credits the 5 minutes after midnight.
	d := oneDay(t, hbs, stats.Options{Location: berlin, Start: date(2026, 1, 16), End: date(2026, 1, 16)})
	if d.GrandTotal.Total != 300*sec {
		t.Errorf("16th alone: %v, want 300 s", d.GrandTotal.Total)
	}
	// Only the 15th asked for: the 00:05 heartbeat, after the range, tells
	// the 23:50 one its gap; the 5 minutes past midnight are dropped.
	d = oneDay(t, hbs, stats.Options{Location: berlin, Start: date(2026, 1, 15), End: date(2026, 1, 15)})
	if d.GrandTotal.Total != 600*sec {
		t.Errorf("15th alone: %v, want 600 s", d.GrandTotal.Total)
	}
}

func TestLocalDayAcrossUTCDays(t *testing.T) {
	la := mustLoc(t, "America/Los_Angeles")
	// 2026-01-10 in Los Angeles (PST, UTC-8) is 08:00Z on the 10th to
	// 08:00Z on the 11th. A session 15:50 → 16:05 PST is 23:50Z → 00:05Z:
	// it crosses UTC midnight but stays inside one local day.
	hbs := []*heartlogv1.Heartbeat{
		beat(at(t, time.UTC, "2026-01-10 23:50:00"), "p"), // from UTC day file 20260110
		beat(at(t, time.UTC, "2026-01-11 00:05:00"), "p"), // from UTC day file 20260111
	}
	days := summarize(t, hbs, stats.Options{Location: la, Start: date(2026, 1, 9), End: date(2026, 1, 11)})
	// 900 s on the 10th (15 min = timeout), none on the 9th or 11th.
	got := []time.Duration{days[0].GrandTotal.Total, days[1].GrandTotal.Total, days[2].GrandTotal.Total}
	if !slices.Equal(got, []time.Duration{0, 900 * sec, 0}) {
		t.Errorf("totals %v, want [0 900s 0]", got)
	}
}

// everyTenMinutes returns heartbeats every 10 minutes of real time from
// from (included) to to (included).
func everyTenMinutes(from, to time.Time) []*heartlogv1.Heartbeat {
	var hbs []*heartlogv1.Heartbeat
	for v := from; !v.After(to); v = v.Add(10 * mn) {
		hbs = append(hbs, beat(v, "p"))
	}
	return hbs
}

func TestDSTDays(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	berlin := mustLoc(t, "Europe/Berlin")
	cases := []struct {
		name      string
		loc       *time.Location
		day       stats.Date
		from, to  time.Time     // continuous activity, every 10 minutes
		dayLength time.Duration // what the middle day must total
		prevNext  time.Duration // the day before and after (2 h of activity each)
	}{
		// Spring forward 02:00 EST → 03:00 EDT: 23 h = 82800 s.
		{"new york spring", ny, date(2026, 3, 8), at(t, ny, "2026-03-07 22:00:00"), at(t, ny, "2026-03-09 02:00:00"), 82800 * sec, 7200 * sec},
		// Fall back 02:00 EDT → 01:00 EST: 25 h = 90000 s.
		{"new york fall", ny, date(2026, 11, 1), at(t, ny, "2026-10-31 22:00:00"), at(t, ny, "2026-11-02 02:00:00"), 90000 * sec, 7200 * sec},
		// Spring forward 02:00 CET → 03:00 CEST: 23 h.
		{"berlin spring", berlin, date(2026, 3, 29), at(t, berlin, "2026-03-28 22:00:00"), at(t, berlin, "2026-03-30 02:00:00"), 82800 * sec, 7200 * sec},
	}
	for _, c := range cases {
		// Activity every 10 minutes from 22:00 the day before to 02:00 the
		// day after: the day before gets 22:00 → 24:00 = 7200 s, the day
		// itself all of its real length, the day after 00:00 → 02:00 =
		// 7200 s (the 02:00 heartbeat is last and counts 0).
		hbs := everyTenMinutes(c.from, c.to)
		days := summarize(t, hbs, stats.Options{Location: c.loc, Start: c.day.AddDays(-1), End: c.day.AddDays(1)})
		got := []time.Duration{days[0].GrandTotal.Total, days[1].GrandTotal.Total, days[2].GrandTotal.Total}
		want := []time.Duration{c.prevNext, c.dayLength, c.prevNext}
		if !slices.Equal(got, want) {
			t.Errorf("%s: totals %v, want %v", c.name, got, want)
		}
	}

	// Sessions across the jump: real minutes count, not wall-clock ones.
	jumps := []struct {
		name   string
		loc    *time.Location
		day    stats.Date
		a, b   time.Time
		want   time.Duration
		wallAB string
	}{
		// 01:50 EST = 06:50Z, 03:05 EDT = 07:05Z: 15 min real (1 h 15 min
		// on the wall clock) = 900 s, within the timeout.
		{"new york spring", ny, date(2026, 3, 8), at(t, ny, "2026-03-08 01:50:00"), at(t, ny, "2026-03-08 03:05:00"), 900 * sec, "01:50 EST → 03:05 EDT"},
		// 01:55 EDT = 05:55Z, 01:05 EST = 06:05Z: 10 min real (the wall
		// clock goes back 50 min) = 600 s.
		{"new york fall", ny, date(2026, 11, 1), at(t, time.UTC, "2026-11-01 05:55:00"), at(t, time.UTC, "2026-11-01 06:05:00"), 600 * sec, "01:55 EDT → 01:05 EST"},
		// 01:58 CET = 00:58Z, 03:03 CEST = 01:03Z: 5 min real = 300 s.
		{"berlin spring", berlin, date(2026, 3, 29), at(t, berlin, "2026-03-29 01:58:00"), at(t, berlin, "2026-03-29 03:03:00"), 300 * sec, "01:58 CET → 03:03 CEST"},
	}
	for _, c := range jumps {
		d := oneDay(t, []*heartlogv1.Heartbeat{beat(c.a, "p"), beat(c.b, "p")}, stats.Options{Location: c.loc, Start: c.day, End: c.day})
		if d.GrandTotal.Total != c.want {
			t.Errorf("%s (%s): %v, want %v", c.name, c.wallAB, d.GrandTotal.Total, c.want)
		}
	}
}

func TestWritesOnly(t *testing.T) {
	u := time.UTC
	mk := func(clock, project string, write bool) *heartlogv1.Heartbeat {
		hb := beat(at(t, u, "2026-03-10 "+clock), project)
		hb.IsWrite = ptr(write)
		return hb
	}
	day := date(2026, 3, 10)
	hbs := []*heartlogv1.Heartbeat{
		mk("10:00:00", "a", true),
		mk("10:05:00", "b", false),
		mk("10:10:00", "a", true),
		mk("10:20:00", "b", false),
	}
	// All heartbeats: a 300 (10:00→10:05) + b 300 (10:05→10:10) + a 600
	// (10:10→10:20) + b 0 (last) = 1200; a 900, b 300.
	d := oneDay(t, hbs, stats.Options{Start: day, End: day})
	if d.GrandTotal.Total != 1200*sec {
		t.Errorf("all: %v, want 1200 s", d.GrandTotal.Total)
	}
	sameTotals(t, "all projects", d.Projects, map[string]time.Duration{"a": 900 * sec, "b": 300 * sec})
	// Writes only: the heartbeats are a@10:00 and a@10:10: 600 s, all a.
	d = oneDay(t, hbs, stats.Options{Start: day, End: day, WritesOnly: true})
	if d.GrandTotal.Total != 600*sec {
		t.Errorf("writes only: %v, want 600 s", d.GrandTotal.Total)
	}
	sameTotals(t, "writes-only projects", d.Projects, map[string]time.Duration{"a": 600 * sec})

	// Writes 30 minutes apart with reads in between: all heartbeats give
	// 3 × 600 = 1800 s; writes only, the single gap is 1800 s > 900: 0.
	hbs = []*heartlogv1.Heartbeat{mk("10:00:00", "a", true), mk("10:10:00", "a", false), mk("10:20:00", "a", false), mk("10:30:00", "a", true)}
	if d := oneDay(t, hbs, stats.Options{Start: day, End: day}); d.GrandTotal.Total != 1800*sec {
		t.Errorf("reads between: %v, want 1800 s", d.GrandTotal.Total)
	}
	if d := oneDay(t, hbs, stats.Options{Start: day, End: day, WritesOnly: true}); d.GrandTotal.Total != 0 {
		t.Errorf("reads between, writes only: %v, want 0", d.GrandTotal.Total)
	}
	// An unset is_write is not a write.
	hbs = []*heartlogv1.Heartbeat{beat(at(t, u, "2026-03-10 10:00:00"), "a"), beat(at(t, u, "2026-03-10 10:05:00"), "a")}
	if d := oneDay(t, hbs, stats.Options{Start: day, End: day, WritesOnly: true}); d.GrandTotal.Total != 0 || len(d.Projects) != 0 {
		t.Errorf("unset is_write counted: %+v", d.Totals)
	}
}

func TestProjectFilter(t *testing.T) {
	u := time.UTC
	day := date(2026, 3, 10)
	hbs := []*heartlogv1.Heartbeat{
		beat(at(t, u, "2026-03-10 10:00:00"), "a"),
		beat(at(t, u, "2026-03-10 10:01:00"), "b"),
		beat(at(t, u, "2026-03-10 10:03:00"), "a"),
	}
	// a: 10:00→10:01 = 60 s (+ 0 for the last heartbeat); b: 10:01→10:03 = 120 s.
	cases := []struct {
		project string
		want    time.Duration
	}{{"", 180 * sec}, {"a", 60 * sec}, {"b", 120 * sec}, {"c", 0}}
	for _, c := range cases {
		d := oneDay(t, hbs, stats.Options{Start: day, End: day, Project: c.project})
		if d.GrandTotal.Total != c.want {
			// Filtering heartbeats before measuring would give a
			// 10:00→10:03 = 180 s; the filter applies to credited time.
			t.Errorf("project %q: %v, want %v", c.project, d.GrandTotal.Total, c.want)
		}
		if c.project != "" && c.want > 0 {
			sameTotals(t, "projects "+c.project, d.Projects, map[string]time.Duration{c.project: c.want})
		}
	}
}

func TestDependencies(t *testing.T) {
	u := time.UTC
	day := date(2026, 3, 10)
	mk := func(clock string, deps ...string) *heartlogv1.Heartbeat {
		hb := beat(at(t, u, "2026-03-10 "+clock), "p")
		hb.Dependencies = deps
		return hb
	}
	hbs := []*heartlogv1.Heartbeat{
		mk("10:00:00", "x", "y"),     // 600 s to x and to y
		mk("10:10:00", "y"),          // 300 s to y
		mk("10:15:00", "z", "z", ""), // 60 s to z once; "" is skipped
		mk("10:16:00"),               // 240 s, no dependency
		mk("10:20:00", "x", "y"),     // last: 0 s, but seen
	}
	d := oneDay(t, hbs, stats.Options{Start: day, End: day})
	// Grand total 600 + 300 + 60 + 240 + 0 = 1200.
	if d.GrandTotal.Total != 1200*sec {
		t.Errorf("total %v, want 1200 s", d.GrandTotal.Total)
	}
	// x 600 + 0; y 600 + 300 + 0 = 900; z 60. They add up to more than the
	// grand total on purpose.
	sameTotals(t, "dependencies", d.Dependencies, map[string]time.Duration{"x": 600 * sec, "y": 900 * sec, "z": 60 * sec})
	if d.Dependencies[0].Name != "y" || d.Dependencies[0].Percent != 75 { // 900/1200
		t.Errorf("top dependency %+v, want y 75%%", d.Dependencies[0])
	}
}

func TestEmptyDays(t *testing.T) {
	u := time.UTC
	hbs := []*heartlogv1.Heartbeat{beat(at(t, u, "2026-03-11 10:00:00"), "p"), beat(at(t, u, "2026-03-11 10:01:00"), "p")}
	days := summarize(t, hbs, stats.Options{Start: date(2026, 3, 10), End: date(2026, 3, 12)})
	if len(days) != 3 {
		t.Fatalf("%d days, want 3", len(days))
	}
	for i, want := range []time.Duration{0, 60 * sec, 0} {
		if days[i].GrandTotal.Total != want {
			t.Errorf("day %d: %v, want %v", i, days[i].GrandTotal.Total, want)
		}
		if days[i].Date != date(2026, 3, 10+i) || days[i].Range.Date != date(2026, 3, 10+i).String() {
			t.Errorf("day %d is %v / %q", i, days[i].Date, days[i].Range.Date)
		}
	}
	if d := days[0]; d.GrandTotal.Text != "0 secs" || d.GrandTotal.Digital != "0:00" || d.GrandTotal.Decimal != "0.00" {
		t.Errorf("empty grand total %+v", d.GrandTotal)
	}
	// Empty lists are [] in JSON, never null.
	b, err := json.Marshal(days[0])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "null") || !strings.Contains(string(b), `"projects":[]`) {
		t.Errorf("empty day JSON: %s", b)
	}
	// No heartbeats at all.
	days = summarize(t, nil, stats.Options{Start: date(2026, 3, 10), End: date(2026, 3, 16)})
	if len(days) != 7 || days[6].GrandTotal.Total != 0 {
		t.Errorf("no heartbeats: %d days", len(days))
	}
}

func TestRangeErrors(t *testing.T) {
	for _, o := range []stats.Options{
		{},
		{Start: date(2026, 3, 10)},
		{End: date(2026, 3, 10)},
		{Start: date(2026, 3, 11), End: date(2026, 3, 10)},
	} {
		if _, err := stats.Summarize(nil, o); !errors.Is(err, stats.ErrRange) {
			t.Errorf("Summarize(%v..%v): err %v, want ErrRange", o.Start, o.End, err)
		}
	}
}

func TestUnsortedInputAndNames(t *testing.T) {
	u := time.UTC
	day := date(2026, 3, 10)
	a := beat(at(t, u, "2026-03-10 10:00:00"), "")
	a.Branch = ""
	b := beat(at(t, u, "2026-03-10 10:02:00"), "zeta")
	c := beat(at(t, u, "2026-03-10 10:04:00"), "alpha")
	e := beat(at(t, u, "2026-03-10 10:06:00"), "alpha")
	in := []*heartlogv1.Heartbeat{e, nil, c, a, b}
	orig := slices.Clone(in)
	d := oneDay(t, in, stats.Options{Start: day, End: day})
	if !slices.Equal(in, orig) {
		t.Error("Summarize reordered the caller's slice")
	}
	// Sorted: ""@10:00 120 s, zeta@10:02 120 s, alpha@10:04 120 s, alpha@10:06 0.
	// Ties on time sort by name; the empty project is "Unknown".
	var names []string
	for _, p := range d.Projects {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"Unknown", "alpha", "zeta"}) {
		t.Errorf("project order %v, want [Unknown alpha zeta]", names)
	}
	sameTotals(t, "branches", d.Branches, map[string]time.Duration{"Unknown": 120 * sec, "main": 240 * sec})
}

func TestSameTimeHeartbeats(t *testing.T) {
	u := time.UTC
	day := date(2026, 3, 10)
	// Two heartbeats at 10:00 (ids "a" < "b"), one at 10:05. Ordered by id,
	// "a" gets 0 s and "b" gets the 300 s, whatever the input order.
	x := beat(at(t, u, "2026-03-10 10:00:00"), "first")
	x.Id = "a"
	y := beat(at(t, u, "2026-03-10 10:00:00"), "second")
	y.Id = "b"
	z := beat(at(t, u, "2026-03-10 10:05:00"), "third")
	for _, in := range [][]*heartlogv1.Heartbeat{{x, y, z}, {y, x, z}, {z, y, x}} {
		d := oneDay(t, in, stats.Options{Start: day, End: day})
		sameTotals(t, "projects", d.Projects, map[string]time.Duration{"first": 0, "second": 300 * sec, "third": 0})
	}
}

func TestRangeFields(t *testing.T) {
	kolkata := mustLoc(t, "Asia/Kolkata")
	// As in a real WakaTime response for Asia/Kolkata (UTC+5:30).
	r := stats.NewRange(date(2021, 8, 30), kolkata)
	if r.Date != "2021-08-30" || r.Text != "Mon Aug 30th 2021" || r.Timezone != "Asia/Kolkata" ||
		!r.Start.Equal(at(t, time.UTC, "2021-08-29 18:30:00")) || !r.End.Equal(at(t, time.UTC, "2021-08-30 18:29:59")) {
		t.Errorf("range %+v", r)
	}
	b, _ := json.Marshal(r)
	if want := `{"date":"2021-08-30","start":"2021-08-29T18:30:00Z","end":"2021-08-30T18:29:59Z","text":"Mon Aug 30th 2021","timezone":"Asia/Kolkata"}`; string(b) != want {
		t.Errorf("range JSON %s, want %s", b, want)
	}
	texts := map[stats.Date]string{
		date(2026, 3, 1):  "Sun Mar 1st 2026",
		date(2026, 3, 2):  "Mon Mar 2nd 2026",
		date(2026, 3, 3):  "Tue Mar 3rd 2026",
		date(2026, 3, 4):  "Wed Mar 4th 2026",
		date(2026, 3, 11): "Wed Mar 11th 2026",
		date(2026, 3, 12): "Thu Mar 12th 2026",
		date(2026, 3, 13): "Fri Mar 13th 2026",
		date(2026, 3, 21): "Sat Mar 21st 2026",
		date(2026, 3, 22): "Sun Mar 22nd 2026",
		date(2026, 3, 23): "Mon Mar 23rd 2026",
		date(2026, 3, 31): "Tue Mar 31st 2026",
	}
	for d, want := range texts {
		if got := stats.NewRange(d, nil).Text; got != want {
			t.Errorf("text of %v = %q, want %q", d, got, want)
		}
	}
	// A 23-hour day: New York 2026-03-08 is 05:00Z .. 03:59:59Z next day.
	r = stats.NewRange(date(2026, 3, 8), mustLoc(t, "America/New_York"))
	if !r.Start.Equal(at(t, time.UTC, "2026-03-08 05:00:00")) || !r.End.Equal(at(t, time.UTC, "2026-03-09 03:59:59")) {
		t.Errorf("NY DST range %v .. %v", r.Start, r.End)
	}
}

func TestCombine(t *testing.T) {
	u := time.UTC
	hbs := []*heartlogv1.Heartbeat{
		beat(at(t, u, "2026-03-10 10:00:00"), "a"), // a 600
		beat(at(t, u, "2026-03-10 10:10:00"), "a"), // last of the day: 0
		beat(at(t, u, "2026-03-11 10:00:00"), "a"), // a 300
		beat(at(t, u, "2026-03-11 10:05:00"), "b"), // b 900
		beat(at(t, u, "2026-03-11 10:20:00"), "b"), // last: 0
	}
	days := summarize(t, hbs, stats.Options{Start: date(2026, 3, 10), End: date(2026, 3, 11)})
	all := stats.Combine(days)
	// a 600 + 300 = 900, b 900: total 1800; 50 % each; ties by name.
	if all.GrandTotal.Total != 1800*sec || all.GrandTotal.Text != "30 mins" {
		t.Errorf("combined total %+v", all.GrandTotal)
	}
	if len(all.Projects) != 2 || all.Projects[0].Name != "a" || all.Projects[0].Total != 900*sec || all.Projects[0].Percent != 50 || all.Projects[1].Name != "b" {
		t.Errorf("combined projects %+v", all.Projects)
	}
	sameTotals(t, "combined languages", all.Languages, map[string]time.Duration{"Go": 1800 * sec})
}

func TestStatusBar(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	var hbs []*heartlogv1.Heartbeat
	// Yesterday: not today's time.
	hbs = append(hbs, beat(at(t, berlin, "2026-03-09 20:00:00"), "old"), beat(at(t, berlin, "2026-03-09 20:10:00"), "old"))
	// Today: every 5 minutes from 09:00 to 12:05, 38 heartbeats, 37 gaps of
	// 300 s = 11100 s = 3 h 5 min; the 12:05 one is last and counts 0.
	for v := at(t, berlin, "2026-03-10 09:00:00"); !v.After(at(t, berlin, "2026-03-10 12:05:00")); v = v.Add(5 * mn) {
		hbs = append(hbs, beat(v, "today"))
	}
	// now = 22:30Z on the 10th = 23:30 in Berlin (UTC+1): still the 10th there.
	now := at(t, time.UTC, "2026-03-10 22:30:00")
	d, err := stats.StatusBar(hbs, now, stats.Options{Location: berlin})
	if err != nil {
		t.Fatal(err)
	}
	if d.Date != date(2026, 3, 10) {
		t.Fatalf("status bar day %v, want 2026-03-10", d.Date)
	}
	if d.GrandTotal.Text != "3 hrs 5 mins" || d.GrandTotal.Total != 11100*sec || d.GrandTotal.Digital != "3:05" {
		t.Errorf("status bar grand total %+v", d.GrandTotal)
	}
	if len(d.Projects) != 1 || d.Projects[0].Name != "today" || d.Projects[0].Percent != 100 {
		t.Errorf("status bar projects %+v", d.Projects)
	}
	// 23:30Z in Berlin (UTC+1) is already the 11th: an empty day.
	d, err = stats.StatusBar(hbs, at(t, time.UTC, "2026-03-10 23:30:00"), stats.Options{Location: berlin})
	if err != nil || d.Date != date(2026, 3, 11) || d.GrandTotal.Text != "0 secs" {
		t.Errorf("next day: %v %+v %v", d.Date, d.GrandTotal, err)
	}
	if _, err := stats.StatusBar(hbs, now, stats.Options{Timeout: 61}); !errors.Is(err, stats.ErrTimeout) {
		t.Errorf("StatusBar timeout 61: %v", err)
	}
}

// TestItemsMatchNewItem: every item Summarize and Combine build is exactly
// what NewItem gives for its name and total (they share no code path for
// the strings), and the grand totals are NewGrandTotal's.
func TestItemsMatchNewItem(t *testing.T) {
	loc := mustLoc(t, "Asia/Kolkata")
	hbs := yearOfHeartbeats(loc, 60, 3)
	days := summarize(t, hbs, stats.Options{Location: loc, Start: date(2025, 3, 1), End: date(2025, 4, 30)})
	all := stats.Combine(days)
	check := func(what string, tot stats.Totals) {
		if g := stats.NewGrandTotal(tot.GrandTotal.Total); g != tot.GrandTotal {
			t.Errorf("%s grand total %+v, want %+v", what, tot.GrandTotal, g)
		}
		for _, list := range [][]stats.Item{tot.Projects, tot.Languages, tot.Editors, tot.OperatingSystems, tot.Machines, tot.Branches, tot.Categories, tot.Entities, tot.Dependencies} {
			for i, it := range list {
				if want := stats.NewItem(it.Name, it.Total, tot.GrandTotal.Total); it != want {
					t.Errorf("%s item %+v, want %+v", what, it, want)
				}
				if i > 0 && (list[i-1].Total < it.Total || list[i-1].Total == it.Total && list[i-1].Name >= it.Name) {
					t.Errorf("%s: %q before %q", what, list[i-1].Name, it.Name)
				}
			}
		}
	}
	for _, d := range days {
		check(d.Date.String(), d.Totals)
	}
	check("combined", all)
	if all.GrandTotal.Total == 0 || len(all.Entities) == 0 {
		t.Error("no data: the check is empty")
	}
}
