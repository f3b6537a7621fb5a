package api_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

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
