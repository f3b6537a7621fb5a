package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/rs/zerolog"

	"heartlog/api"
	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
	"heartlog/users"
)

const currentUser = "/api/v1/users/current"

// patch sends a settings change as JSON with the headers set sets.
func patch(t *testing.T, svc *heartlogtest.Service, path, body string, set func(http.Header)) (int, map[string]any) {
	t.Helper()
	resp, b := rawRequest(t, svc, http.MethodPatch, path, body, func(h http.Header) {
		h.Set("Content-Type", "application/json")
		set(h)
	})
	return resp.StatusCode, decodeObject(t, b)
}

func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body %s is not a JSON object", b)
	}
	return out
}

func withKey(key string) func(http.Header) {
	return func(h http.Header) { h.Set("Authorization", "Bearer "+key) }
}

// view is what the reads say about sam's days D and D+1 (see
// TestSettingsChangeEveryRead).
type view struct {
	day, next, statusBar, durations, stats, bestTotal, heatTotal float64
	statsEnd, bestDay, heatDay                                   string
}

func readAll(t *testing.T, svc *heartlogtest.Service, key, d, d1 string) view {
	t.Helper()
	var v view
	code, body := get(t, svc, currentUser+"/summaries?start="+d+"&end="+d1, key)
	if code != 200 {
		t.Fatalf("summaries: %d %v", code, body)
	}
	v.day, _ = dig(body, "data", 0, "grand_total", "total_seconds").(float64)
	v.next, _ = dig(body, "data", 1, "grand_total", "total_seconds").(float64)
	_, body = get(t, svc, currentUser+"/statusbar/today", key)
	v.statusBar, _ = dig(body, "data", "grand_total", "total_seconds").(float64)
	today := d
	if tz, _ := dig(body, "data", "range", "timezone").(string); tz != "UTC" {
		today = d1
	}
	_, body = get(t, svc, currentUser+"/durations?date="+today, key)
	for _, x := range dig(body, "data").([]any) {
		v.durations += dig(x, "duration").(float64)
	}
	_, body = get(t, svc, currentUser+"/stats/last_7_days", key)
	v.stats, _ = dig(body, "data", "total_seconds").(float64)
	v.statsEnd, _ = dig(body, "data", "end").(string)
	_, body = get(t, svc, currentUser+"/insights/best_day/last_7_days", key)
	v.bestDay, _ = dig(body, "data", "best_day", "date").(string)
	v.bestTotal, _ = dig(body, "data", "best_day", "total_seconds").(float64)

	client := heartlogv1connect.NewStatsServiceClient(http.DefaultClient, svc.URL, connect.WithProtoJSON())
	req := connect.NewRequest(&heartlogv1.GetHeatMapRequest{})
	withKey(key)(req.Header())
	resp, err := client.GetHeatMap(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	days := resp.Msg.GetDays()
	last := days[len(days)-1]
	v.heatDay, v.heatTotal = last.GetDate(), last.GetTotal().GetTotalSeconds()
	return v
}

// TestSettingsChangeEveryRead: sam, in UTC with the default 15-minute
// timeout, codes on day D from 21:00Z to 21:30Z every 5 minutes, then once
// more at 21:50Z (a 20-minute gap). The clock stands at 22:00Z on D, which
// is 08:00 on D+1 in Brisbane (UTC+10, no DST). In UTC with 15 minutes D
// has 1800 s; in Brisbane with 30 minutes it all falls on D+1 and the gap
// counts: 3000 s. Every read must follow the settings at once.
func TestSettingsChangeEveryRead(t *testing.T) {
	utcToday := time.Now().UTC().Truncate(24 * time.Hour)
	d := utcToday.AddDate(0, 0, -3)
	clock := d.Add(22 * time.Hour)
	svc := heartlogtest.Start(t, heartlogtest.Options{API: func(o *api.Options) { o.Now = func() time.Time { return clock } }})
	sam, key := svc.CreateUser(t, "sam", "")
	var beats []time.Time
	for m := 0; m <= 30; m += 5 {
		beats = append(beats, d.Add(21*time.Hour+time.Duration(m)*time.Minute))
	}
	beats = append(beats, d.Add(21*time.Hour+50*time.Minute))
	postAs(t, svc, key, "P", "desk", uaVim, beats...)
	svc.WaitCount(t, len(beats), "SELECT count(*) FROM heartbeats WHERE user_id = $1", sam.ID)
	D, D1 := d.Format(time.DateOnly), d.AddDate(0, 0, 1).Format(time.DateOnly)

	before := view{day: 1800, statusBar: 1800, durations: 1800, stats: 1800, bestTotal: 1800,
		statsEnd: d.AddDate(0, 0, 1).Add(-time.Second).Format(time.RFC3339), bestDay: D, heatDay: D, heatTotal: 1800}
	if got := readAll(t, svc, key, D, D1); got != before {
		t.Fatalf("before the change:\n got %+v\nwant %+v", got, before)
	}

	code, body := patch(t, svc, currentUser, `{"timezone": "Australia/Brisbane", "timeout": 30}`, withKey(key))
	if code != 200 || dig(body, "data", "timezone") != "Australia/Brisbane" || dig(body, "data", "timeout") != 30.0 ||
		dig(body, "data", "id") != sam.ID || dig(body, "data", "username") != "sam" {
		t.Fatalf("PATCH: %d %v", code, body)
	}
	// No waiting: the answer comes once this instance reads with it.
	brisbane, _ := time.LoadLocation("Australia/Brisbane")
	after := view{next: 3000, statusBar: 3000, durations: 3000, stats: 3000, bestTotal: 3000,
		statsEnd: time.Date(d.Year(), d.Month(), d.Day()+2, 0, 0, 0, 0, brisbane).Add(-time.Second).UTC().Format(time.RFC3339),
		bestDay:  D1, heatDay: D1, heatTotal: 3000}
	if got := readAll(t, svc, key, D, D1); got != after {
		t.Fatalf("after the change:\n got %+v\nwant %+v", got, after)
	}
	var tz string
	var timeout int
	if err := svc.Pool.QueryRow(context.Background(), "SELECT time_zone, timeout_minutes FROM users WHERE id = $1", sam.ID).Scan(&tz, &timeout); err != nil || tz != "Australia/Brisbane" || timeout != 30 {
		t.Fatalf("users row: %q %d %v", tz, timeout, err)
	}

	// Back through the Connect twin, by the dashboard's session cookie.
	_, _, cookie := signIn(t, svc, keyBody(key), nil)
	settings := heartlogv1connect.NewSettingsServiceClient(http.DefaultClient, svc.URL, connect.WithProtoJSON())
	utc, fifteen := "UTC", int32(15)
	req := connect.NewRequest(&heartlogv1.UpdateSettingsRequest{Timezone: &utc, TimeoutMinutes: &fifteen})
	pageHeaders(svc, cookie)(req.Header())
	resp, err := settings.UpdateSettings(context.Background(), req)
	if err != nil || resp.Msg.GetSettings().GetTimezone() != "UTC" || resp.Msg.GetSettings().GetTimeoutMinutes() != 15 {
		t.Fatalf("UpdateSettings: %v %v", resp, err)
	}
	if got := readAll(t, svc, key, D, D1); got != before {
		t.Fatalf("after changing back:\n got %+v\nwant %+v", got, before)
	}
	greq := connect.NewRequest(&heartlogv1.GetSettingsRequest{})
	pageHeaders(svc, cookie)(greq.Header())
	gresp, err := settings.GetSettings(context.Background(), greq)
	if err != nil || gresp.Msg.GetSettings().GetUsername() != "sam" || gresp.Msg.GetSettings().GetTimezone() != "UTC" {
		t.Fatalf("GetSettings: %v %v", gresp, err)
	}
}

// stored is a user's settings as Postgres and the users bucket hold them.
type stored struct {
	tz       string
	timeout  int
	revision uint64
	record   string
}

func storedSettings(t *testing.T, svc *heartlogtest.Service, id, key string) stored {
	t.Helper()
	var s stored
	if err := svc.Pool.QueryRow(context.Background(), "SELECT time_zone, timeout_minutes FROM users WHERE id = $1", id).Scan(&s.tz, &s.timeout); err != nil {
		t.Fatal(err)
	}
	kv, err := svc.JS.KeyValue(context.Background(), svc.Streams.UsersBucket)
	if err != nil {
		t.Fatal(err)
	}
	h, err := users.HashKey(key)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), h.String())
	if err != nil {
		t.Fatal(err)
	}
	s.revision, s.record = e.Revision(), string(e.Value())
	return s
}

func TestSettingsRefusals(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, aliceKey := svc.CreateUser(t, "alice", "")
	bob, bobKey := svc.CreateUser(t, "bob", "")
	_, _, cookie := signIn(t, svc, keyBody(aliceKey), nil)
	aliceWas, bobWas := storedSettings(t, svc, alice.ID, aliceKey), storedSettings(t, svc, bob.ID, bobKey)
	unchanged := func(t *testing.T) {
		t.Helper()
		if got := storedSettings(t, svc, alice.ID, aliceKey); got != aliceWas {
			t.Fatalf("alice's settings changed: %+v, were %+v", got, aliceWas)
		}
		if got := storedSettings(t, svc, bob.ID, bobKey); got != bobWas {
			t.Fatalf("bob's settings changed: %+v, were %+v", got, bobWas)
		}
	}
	page := pageHeaders(svc, cookie)

	for _, c := range []struct {
		name, body string
		want       int
		msg        string
	}{
		{"unknown zone", `{"timezone": "Mars/Olympus_Mons"}`, 400, `unknown time zone "Mars/Olympus_Mons"`},
		{"empty zone", `{"timezone": ""}`, 400, "timezone must not be empty"},
		{"Local", `{"timezone": "Local"}`, 400, `unknown time zone "Local"`},
		{"timeout 0", `{"timeout": 0}`, 400, "from 1 to 60, got 0"},
		{"timeout 61", `{"timeout": 61}`, 400, "from 1 to 60, got 61"},
		{"good zone, bad timeout", `{"timezone": "Europe/Berlin", "timeout": 90}`, 400, "got 90"},
		{"timeout as text", `{"timeout": "15"}`, 400, "malformed settings"},
		{"unknown field", `{"time_zone": "Europe/Berlin"}`, 400, `unknown field "time_zone"`},
		{"two objects", `{"timeout": 5} {"timeout": 6}`, 400, "more than one JSON value"},
		{"not JSON", `timeout=5`, 400, "malformed settings"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, who := range []func(http.Header){withKey(aliceKey), page} {
				code, body := patch(t, svc, currentUser, c.body, who)
				if msg, _ := dig(body, "error").(string); code != c.want || !strings.Contains(msg, c.msg) {
					t.Fatalf("%d %v, want %d with %q", code, body, c.want, c.msg)
				}
			}
			unchanged(t)
		})
	}

	t.Run("another user's settings", func(t *testing.T) {
		for _, path := range []string{"/api/v1/users/" + bob.ID, "/api/compat/wakatime/v1/users/" + bob.ID} {
			for _, who := range []func(http.Header){withKey(aliceKey), page} {
				if code, body := patch(t, svc, path, `{"timeout": 5}`, who); code != http.StatusForbidden {
					t.Fatalf("%s: %d %v, want 403", path, code, body)
				}
			}
		}
		unchanged(t)
	})
	t.Run("cookie from another site or as a form", func(t *testing.T) {
		code, _ := patch(t, svc, currentUser, `{"timeout": 5}`, func(h http.Header) {
			page(h)
			h.Set("Origin", "https://evil.example")
			h.Set("Sec-Fetch-Site", "cross-site")
		})
		if code != http.StatusForbidden {
			t.Fatalf("cross-site: %d, want 403", code)
		}
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
			resp, b := rawRequest(t, svc, http.MethodPatch, currentUser, `{"timeout": 5}`, func(h http.Header) {
				page(h)
				h.Set("Content-Type", ct)
			})
			if resp.StatusCode != http.StatusUnsupportedMediaType {
				t.Fatalf("Content-Type %q: %d %s, want 415", ct, resp.StatusCode, b)
			}
		}
		unchanged(t)
	})
	t.Run("no credentials", func(t *testing.T) {
		if code, body := patch(t, svc, currentUser, `{"timeout": 5}`, func(http.Header) {}); code != http.StatusUnauthorized {
			t.Fatalf("PATCH: %d %v, want 401", code, body)
		}
		settings := heartlogv1connect.NewSettingsServiceClient(http.DefaultClient, svc.URL, connect.WithProtoJSON())
		five := int32(5)
		_, err := settings.UpdateSettings(context.Background(), connect.NewRequest(&heartlogv1.UpdateSettingsRequest{TimeoutMinutes: &five}))
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("UpdateSettings: %v, want unauthenticated", err)
		}
		_, err = settings.GetSettings(context.Background(), connect.NewRequest(&heartlogv1.GetSettingsRequest{}))
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("GetSettings: %v, want unauthenticated", err)
		}
		unchanged(t)
	})
	t.Run("Connect refusals", func(t *testing.T) {
		settings := heartlogv1connect.NewSettingsServiceClient(http.DefaultClient, svc.URL, connect.WithProtoJSON())
		bad, berlin, zero := "Europe/Atlantis", "Europe/Berlin", int32(0)
		for _, m := range []*heartlogv1.UpdateSettingsRequest{{Timezone: &bad}, {Timezone: &berlin, TimeoutMinutes: &zero}} {
			req := connect.NewRequest(m)
			page(req.Header())
			_, err := settings.UpdateSettings(context.Background(), req)
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !strings.Contains(ce.Message(), "Europe/") && !strings.Contains(ce.Message(), "1 to 60") {
				t.Fatalf("UpdateSettings(%v): %v, want invalid_argument", m, err)
			}
		}
		unchanged(t)
	})
	t.Run("the users bucket follows a change", func(t *testing.T) {
		code, body := patch(t, svc, "/api/compat/wakatime/v1/users/"+alice.ID, `{"timezone": "America/New_York"}`, page)
		if code != 200 || dig(body, "data", "timezone") != "America/New_York" || dig(body, "data", "timeout") != 15.0 {
			t.Fatalf("PATCH: %d %v", code, body)
		}
		h, _ := users.HashKey(aliceKey)
		ok := heartlogtest.Eventually(10*time.Second, func() bool {
			u, err := svc.Directory.ByKey(context.Background(), h)
			return err == nil && u.TimeZone == "America/New_York" && u.TimeoutMinutes == 15
		})
		if !ok {
			t.Fatal("the Directory never saw alice's new time zone")
		}
		if got := storedSettings(t, svc, bob.ID, bobKey); got != bobWas {
			t.Fatalf("bob's settings changed: %+v", got)
		}
	})
}

// TestSettingsPostgresDown: a change that cannot be stored is 503 (REST)
// or unavailable (Connect) with a plain message; the cause is logged only.
func TestSettingsPostgresDown(t *testing.T) {
	pg := heartlogtest.StartPostgres(t)
	var logs heartlogtest.LogBuffer
	svc := heartlogtest.Start(t, heartlogtest.Options{Postgres: pg, API: func(o *api.Options) { o.Log = zerolog.New(&logs) }})
	_, key := svc.CreateUser(t, "pat", "")
	pg.Stop(t)
	defer pg.Start(t)

	code, body := patch(t, svc, currentUser, `{"timeout": 5}`, withKey(key))
	if msg, _ := dig(body, "error").(string); code != http.StatusServiceUnavailable || msg != "settings cannot be saved right now, retry later" {
		t.Fatalf("PATCH: %d %v", code, body)
	}
	settings := heartlogv1connect.NewSettingsServiceClient(http.DefaultClient, svc.URL, connect.WithProtoJSON())
	five := int32(5)
	req := connect.NewRequest(&heartlogv1.UpdateSettingsRequest{TimeoutMinutes: &five})
	withKey(key)(req.Header())
	_, err := settings.UpdateSettings(context.Background(), req)
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable || ce.Message() != "settings cannot be saved right now, retry later" {
		t.Fatalf("UpdateSettings: %v", err)
	}
	if !strings.Contains(logs.String(), "settings update failed") {
		t.Fatalf("the cause was not logged: %s", logs.String())
	}
	h, _ := users.HashKey(key)
	if u, err := svc.Directory.ByKey(context.Background(), h); err != nil || u.TimeoutMinutes != 15 {
		t.Fatalf("the users bucket changed: %+v %v", u, err)
	}
}
