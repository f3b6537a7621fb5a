package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
)

func TestConnectStatsService(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, key := svc.CreateUser(t, "alice", "")
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	sendDay(t, svc, key, day) // A 600 s, B 60 s: see sendDay
	svc.WaitCount(t, 5, "SELECT count(*) FROM heartbeats WHERE user_id = $1", alice.ID)
	date := day.Format(time.DateOnly)
	client := heartlogv1connect.NewStatsServiceClient(h2cClient(), svc.URL, connect.WithGRPC())
	ctx := context.Background()

	sreq := connect.NewRequest(&heartlogv1.GetSummariesRequest{Start: date, End: date})
	sreq.Header().Set("Authorization", "Bearer "+key)
	sum, err := client.GetSummaries(ctx, sreq)
	if err != nil {
		t.Fatal(err)
	}
	d := sum.Msg.Days
	if len(d) != 1 || d[0].GrandTotal.TotalSeconds != 660 || d[0].GrandTotal.Text != "11 mins" ||
		len(d[0].Breakdown.Projects) != 2 || d[0].Breakdown.Projects[0].Name != "A" || d[0].Breakdown.Projects[0].TotalSeconds != 600 {
		t.Fatalf("summaries: %v", sum.Msg)
	}
	if len(d[0].Breakdown.Languages) == 0 {
		t.Fatalf("summaries: no languages in %v", d[0].Breakdown)
	}
	// Asked for projects alone, each day carries them and no other breakdown.
	preq := connect.NewRequest(&heartlogv1.GetSummariesRequest{Start: date, End: date, Breakdowns: []string{"projects"}})
	preq.Header().Set("Authorization", "Bearer "+key)
	proj, err := client.GetSummaries(ctx, preq)
	if err != nil {
		t.Fatal(err)
	}
	if p := proj.Msg.Days; len(p) != 1 || p[0].GrandTotal.TotalSeconds != 660 || len(p[0].Breakdown.Projects) != 2 ||
		p[0].Breakdown.Projects[1].TotalSeconds != 60 || len(p[0].Breakdown.Languages)+len(p[0].Breakdown.Editors)+
		len(p[0].Breakdown.Categories)+len(p[0].Breakdown.Branches)+len(p[0].Breakdown.Machines) != 0 {
		t.Fatalf("summaries of projects: %v", proj.Msg)
	}
	breq := connect.NewRequest(&heartlogv1.GetSummariesRequest{Start: date, End: date, Breakdowns: []string{"project"}})
	breq.Header().Set("Authorization", "Bearer "+key)
	if _, err := client.GetSummaries(ctx, breq); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("summaries of an unknown breakdown: %v, want invalid_argument", err)
	}
	dreq := connect.NewRequest(&heartlogv1.GetDurationsRequest{Date: date})
	dreq.Header().Set("Authorization", "Bearer "+key)
	dur, err := client.GetDurations(ctx, dreq)
	if err != nil || len(dur.Msg.Durations) != 2 || dur.Msg.Durations[0].DurationSeconds != 600 {
		t.Fatalf("durations: %v %v", dur, err)
	}
	streq := connect.NewRequest(&heartlogv1.GetStatsRequest{Range: "last_7_days"})
	streq.Header().Set("Authorization", "Bearer "+key)
	st, err := client.GetStats(ctx, streq)
	if err != nil || st.Msg.Total.TotalSeconds != 660 {
		t.Fatalf("stats: %v %v", st, err)
	}
	bad := connect.NewRequest(&heartlogv1.GetStatsRequest{Range: "last_2_days"})
	bad.Header().Set("Authorization", "Bearer "+key)
	if _, err := client.GetStats(ctx, bad); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("unknown range: %v, want invalid_argument", err)
	}
	anon := connect.NewRequest(&heartlogv1.GetStatusBarRequest{})
	if _, err := client.GetStatusBar(ctx, anon); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("no key: %v, want unauthenticated", err)
	}
	sb := connect.NewRequest(&heartlogv1.GetStatusBarRequest{Options: &heartlogv1.ReadOptions{Timezone: "Asia/Tokyo"}})
	sb.Header().Set("Authorization", "Bearer "+key)
	if _, err := client.GetStatusBar(ctx, sb); err != nil {
		t.Fatalf("status bar: %v", err)
	}
}

// A custom range (start and end instead of a name) counts exactly its
// days, in GetStats and GetInsights alike; a request naming both, or a
// range reversed or too long, is refused.
func TestConnectCustomRange(t *testing.T) {
	key, client, date := aliceYesterday(t)
	ctx := context.Background()
	utc := &heartlogv1.ReadOptions{Timezone: "UTC"}

	for _, c := range []struct {
		start, end string
		want       float64
	}{{date(0), date(0), 660}, {date(-3), date(1), 660}, {date(-3), date(-1), 0}, {date(1), date(1), 0}} {
		req := connect.NewRequest(&heartlogv1.GetStatsRequest{Start: c.start, End: c.end, Options: utc})
		req.Header().Set("Authorization", "Bearer "+key)
		st, err := client.GetStats(ctx, req)
		if err != nil {
			t.Fatalf("stats %s..%s: %v", c.start, c.end, err)
		}
		if st.Msg.Total.TotalSeconds != c.want || st.Msg.Start != c.start || st.Msg.End != c.end || st.Msg.Range != "" {
			t.Errorf("stats %s..%s: total %v from %s to %s (range %q), want %v", c.start, c.end,
				st.Msg.Total.TotalSeconds, st.Msg.Start, st.Msg.End, st.Msg.Range, c.want)
		}
	}
	ireq := connect.NewRequest(&heartlogv1.GetInsightsRequest{Start: date(-2), End: date(0), Options: utc})
	ireq.Header().Set("Authorization", "Bearer "+key)
	in, err := client.GetInsights(ctx, ireq)
	if err != nil {
		t.Fatal(err)
	}
	if in.Msg.BestDay.Date != date(0) || in.Msg.BestDay.Total.TotalSeconds != 660 || in.Msg.DailyAverage.TotalSeconds != 220 {
		t.Errorf("insights %s..%s: best %v, average %v; want %s with 660 s, average 220 s", date(-2), date(0),
			in.Msg.BestDay, in.Msg.DailyAverage, date(0))
	}

	// Summaries by range name cover the range's dates, as stats reports them.
	sreq := connect.NewRequest(&heartlogv1.GetStatsRequest{Range: "last_7_days", Options: utc})
	sreq.Header().Set("Authorization", "Bearer "+key)
	week, err := client.GetStats(ctx, sreq)
	if err != nil {
		t.Fatal(err)
	}
	for name, msg := range map[string]*heartlogv1.GetSummariesRequest{
		"by range": {Range: "last_7_days", Options: utc},
		"by dates": {Start: week.Msg.Start, End: week.Msg.End, Options: utc},
	} {
		req := connect.NewRequest(msg)
		req.Header().Set("Authorization", "Bearer "+key)
		sum, err := client.GetSummaries(ctx, req)
		if err != nil {
			t.Fatalf("summaries %s: %v", name, err)
		}
		days := sum.Msg.Days
		if len(days) != 7 || days[0].Date != week.Msg.Start || days[6].Date != week.Msg.End || sum.Msg.CumulativeTotal.TotalSeconds != 660 {
			t.Errorf("summaries %s: %d days, %v to %v, total %v; want 7 days from %s to %s, 660 s", name, len(days),
				days[0].GetDate(), days[len(days)-1].GetDate(), sum.Msg.CumulativeTotal.GetTotalSeconds(), week.Msg.Start, week.Msg.End)
		}
	}
	for name, msg := range map[string]*heartlogv1.GetSummariesRequest{
		"both":    {Range: "last_7_days", Start: date(0), End: date(0)},
		"neither": {},
		"unknown": {Range: "last_fortnight"},
	} {
		req := connect.NewRequest(msg)
		req.Header().Set("Authorization", "Bearer "+key)
		if _, err := client.GetSummaries(ctx, req); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("summaries %s: %v, want invalid_argument", name, err)
		}
	}

	for name, msg := range map[string]*heartlogv1.GetStatsRequest{
		"both":     {Range: "last_7_days", Start: date(0), End: date(0)},
		"neither":  {},
		"reversed": {Start: date(0), End: date(-1)},
		"too long": {Start: date(-400), End: date(0)},
		"bad date": {Start: "yesterday", End: date(0)},
	} {
		req := connect.NewRequest(msg)
		req.Header().Set("Authorization", "Bearer "+key)
		if _, err := client.GetStats(ctx, req); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want invalid_argument", name, err)
		}
	}
}

// GetRange answers for a range exactly what GetStats, GetSummaries and
// GetInsights answer for it, by name or by dates, with or without a
// project; its breakdowns trim the days as GetSummaries' do.
func TestConnectGetRange(t *testing.T) {
	key, client, date := aliceYesterday(t)
	ctx := context.Background()
	authed := func(r interface{ Header() http.Header }) { r.Header().Set("Authorization", "Bearer "+key) }

	for name, c := range map[string]struct {
		rng, start, end string
		opts            *heartlogv1.ReadOptions
		breakdowns      []string
	}{
		"last 7 days":       {rng: "last_7_days", opts: &heartlogv1.ReadOptions{Timezone: "UTC"}},
		"dates, projects":   {start: date(-3), end: date(1), opts: &heartlogv1.ReadOptions{Timezone: "UTC"}, breakdowns: []string{"projects"}},
		"project A, Tokyo":  {rng: "last_30_days", opts: &heartlogv1.ReadOptions{Timezone: "Asia/Tokyo", Project: "A"}},
		"the user's own tz": {rng: "last_year"},
	} {
		rr := connect.NewRequest(&heartlogv1.GetRangeRequest{Range: c.rng, Start: c.start, End: c.end, Options: c.opts, Breakdowns: c.breakdowns})
		authed(rr)
		got, err := client.GetRange(ctx, rr)
		if err != nil {
			t.Fatalf("%s: GetRange: %v", name, err)
		}
		sr := connect.NewRequest(&heartlogv1.GetStatsRequest{Range: c.rng, Start: c.start, End: c.end, Options: c.opts})
		authed(sr)
		st, err := client.GetStats(ctx, sr)
		if err != nil {
			t.Fatal(err)
		}
		mr := connect.NewRequest(&heartlogv1.GetSummariesRequest{Range: c.rng, Start: c.start, End: c.end, Options: c.opts, Breakdowns: c.breakdowns})
		authed(mr)
		sum, err := client.GetSummaries(ctx, mr)
		if err != nil {
			t.Fatal(err)
		}
		ir := connect.NewRequest(&heartlogv1.GetInsightsRequest{Range: c.rng, Start: c.start, End: c.end, Options: c.opts})
		authed(ir)
		in, err := client.GetInsights(ctx, ir)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.Msg.Stats, st.Msg) {
			t.Errorf("%s: GetRange's stats %v, GetStats %v", name, got.Msg.Stats, st.Msg)
		}
		if !proto.Equal(got.Msg.Summaries, sum.Msg) {
			t.Errorf("%s: GetRange's summaries %v, GetSummaries %v", name, got.Msg.Summaries, sum.Msg)
		}
		if !proto.Equal(got.Msg.Insights, in.Msg) {
			t.Errorf("%s: GetRange's insights %v, GetInsights %v", name, got.Msg.Insights, in.Msg)
		}
		if got.Msg.Stats.GetTotal().GetTotalSeconds() == 0 && c.opts.GetProject() != "B" {
			t.Errorf("%s: no time in %v", name, got.Msg.Stats)
		}
	}
	for name, msg := range map[string]*heartlogv1.GetRangeRequest{
		"both":       {Range: "last_7_days", Start: date(0), End: date(0)},
		"unknown":    {Range: "last_fortnight"},
		"reversed":   {Start: date(0), End: date(-1)},
		"breakdowns": {Range: "last_7_days", Breakdowns: []string{"files"}},
	} {
		req := connect.NewRequest(msg)
		authed(req)
		if _, err := client.GetRange(ctx, req); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("GetRange %s: %v, want invalid_argument", name, err)
		}
	}
	if _, err := client.GetRange(ctx, connect.NewRequest(&heartlogv1.GetRangeRequest{Range: "last_7_days"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("GetRange without a key: %v, want unauthenticated", err)
	}
}

// aliceYesterday starts a service with alice's heartbeats of yesterday
// (UTC; A 600 s, B 60 s: see sendDay) stored, and returns her key, a
// StatsService client and the date offset days from yesterday.
func aliceYesterday(t *testing.T) (string, heartlogv1connect.StatsServiceClient, func(offset int) string) {
	t.Helper()
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, key := svc.CreateUser(t, "alice", "")
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	sendDay(t, svc, key, day)
	svc.WaitCount(t, 5, "SELECT count(*) FROM heartbeats WHERE user_id = $1", alice.ID)
	client := heartlogv1connect.NewStatsServiceClient(h2cClient(), svc.URL, connect.WithGRPC())
	return key, client, func(offset int) string { return day.AddDate(0, 0, offset).Format(time.DateOnly) }
}
