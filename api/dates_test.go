package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
)

// TestOutOfRangeDatesAre400 asks every WakaTime read route, under both
// roots, for days outside 2000-01-01 .. tomorrow (in the read's time zone:
// UTC here): each is a 400 naming the parameter, never a store's 503. The
// bounds themselves are readable.
func TestOutOfRangeDatesAre400(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{NoProcessor: true})
	_, key := svc.CreateUser(t, "alice", "")
	today := time.Now().UTC()
	day := func(days int) string { return today.AddDate(0, 0, days).Format(time.DateOnly) }
	bad := []struct{ query, param string }{
		{"summaries?start=9999-12-31&end=9999-12-31", "start"},
		{"summaries?start=" + day(0) + "&end=9999-12-31", "end"},
		{"summaries?start=" + day(0) + "&end=" + day(2), "end"},
		{"summaries?start=1999-12-31&end=" + day(0), "start"},
		{"summaries?start=0000-01-01&end=0000-01-01", "start"},
		{"summaries?range=1999", "range"},
		{"summaries?range=9999-01", "range"},
		{"durations?date=0000-01-01", "date"},
		{"durations?date=" + day(2), "date"},
		{"heartbeats?date=0000-01-01", "date"},
		{"heartbeats?date=9999-12-31", "date"},
		{"heartbeats?date=1999-12-31", "date"},
		{"stats/9999", "range"},
		{"stats/1999", "range"},
		{"stats/3000-01", "range"},
		{"stats/1999-12", "range"},
	}
	good := []string{
		"summaries?start=2000-01-01&end=2000-01-01",
		"summaries?start=" + day(1) + "&end=" + day(1),
		"durations?date=" + day(1),
		"heartbeats?date=2000-01-01",
		"heartbeats?date=" + day(1),
		"stats/2000",
		"stats/" + today.Format("2006"),
		"stats/" + today.Format("2006-01"),
	}
	for _, root := range []string{"/api/v1/users/current/", "/api/compat/wakatime/v1/users/current/"} {
		for _, c := range bad {
			status, body := get(t, svc, root+c.query, key)
			msg, _ := body["error"].(string)
			if status != http.StatusBadRequest || !strings.HasPrefix(msg, c.param+" ") || !strings.Contains(msg, "tomorrow in UTC") {
				t.Errorf("GET %s: %d %v, want 400 naming %s and the bounds", root+c.query, status, body, c.param)
			}
		}
		for _, q := range good {
			if status, body := get(t, svc, root+q, key); status != http.StatusOK {
				t.Errorf("GET %s: %d %v, want 200 (within the bounds)", root+q, status, body)
			}
		}
	}
}

// TestOutOfRangeDatesConnect: the same bounds on every StatsService method
// that takes a date or a range (GetStatusBar takes neither).
func TestOutOfRangeDatesConnect(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{NoProcessor: true})
	_, key := svc.CreateUser(t, "alice", "")
	today := time.Now().UTC().Format(time.DateOnly)
	client := heartlogv1connect.NewStatsServiceClient(h2cClient(), svc.URL)
	ctx := context.Background()
	auth := func(h http.Header) { h.Set("Authorization", "Bearer "+key) }
	calls := map[string]struct {
		param string
		call  func() error
	}{
		"GetSummaries start": {"start", func() error {
			r := connect.NewRequest(&heartlogv1.GetSummariesRequest{Start: "9999-12-31", End: "9999-12-31"})
			auth(r.Header())
			_, err := client.GetSummaries(ctx, r)
			return err
		}},
		"GetSummaries end": {"end", func() error {
			r := connect.NewRequest(&heartlogv1.GetSummariesRequest{Start: today, End: "9999-12-31"})
			auth(r.Header())
			_, err := client.GetSummaries(ctx, r)
			return err
		}},
		"GetDurations date": {"date", func() error {
			r := connect.NewRequest(&heartlogv1.GetDurationsRequest{Date: "0000-01-01"})
			auth(r.Header())
			_, err := client.GetDurations(ctx, r)
			return err
		}},
		"GetStats year": {"range", func() error {
			r := connect.NewRequest(&heartlogv1.GetStatsRequest{Range: "9999"})
			auth(r.Header())
			_, err := client.GetStats(ctx, r)
			return err
		}},
		"GetStats month": {"range", func() error {
			r := connect.NewRequest(&heartlogv1.GetStatsRequest{Range: "1999-12"})
			auth(r.Header())
			_, err := client.GetStats(ctx, r)
			return err
		}},
	}
	for name, c := range calls {
		err := c.call()
		var ce *connect.Error
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !errors.As(err, &ce) || !strings.HasPrefix(ce.Message(), c.param+" ") {
			t.Errorf("%s: %v, want invalid_argument naming %s", name, err, c.param)
		}
	}
}
