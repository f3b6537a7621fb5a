package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"heartlog/api"
	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
)

const sessionPath = "/api/v1/session"

// signIn posts key as the dashboard does and returns the answer and its
// session cookie (nil if none was set).
func signIn(t *testing.T, svc *heartlogtest.Service, body string, set func(http.Header)) (*http.Response, []byte, *http.Cookie) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, svc.URL+sessionPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", svc.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if set != nil {
		set(req.Header)
	}
	resp, b := svc.Do(t, req)
	for _, c := range resp.Cookies() {
		if c.Name == api.SessionCookie {
			return resp, b, c
		}
	}
	return resp, b, nil
}

func keyBody(key string) string { return fmt.Sprintf(`{"api_key":%q}`, key) }

// pageHeaders are what a browser sends with a fetch from the dashboard.
func pageHeaders(svc *heartlogtest.Service, c *http.Cookie) func(http.Header) {
	return func(h http.Header) {
		h.Set("Cookie", c.Name+"="+c.Value)
		h.Set("Origin", svc.URL)
		h.Set("Sec-Fetch-Site", "same-origin")
	}
}

// summaries calls StatsService.GetSummaries for date over the Connect
// protocol with JSON, as connect-web does, with only the headers set sets.
func summaries(t *testing.T, svc *heartlogtest.Service, date string, set func(http.Header)) (*heartlogv1.GetSummariesResponse, error) {
	t.Helper()
	client := heartlogv1connect.NewStatsServiceClient(http.DefaultClient, svc.URL, connect.WithProtoJSON())
	req := connect.NewRequest(&heartlogv1.GetSummariesRequest{Start: date, End: date})
	if set != nil {
		set(req.Header())
	}
	resp, err := client.GetSummaries(context.Background(), req)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func rawRequest(t *testing.T, svc *heartlogtest.Service, method, path, body string, set func(http.Header)) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, svc.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	set(req.Header)
	return svc.Do(t, req)
}

func TestSessionSignInReadsOwnDataAndSignsOut(t *testing.T) {
	var logs heartlogtest.LogBuffer
	svc := heartlogtest.Start(t, heartlogtest.Options{API: func(o *api.Options) {
		o.Log = zerolog.New(&logs).Level(zerolog.DebugLevel)
	}})
	alice, aliceKey := svc.CreateUser(t, "alice", "")
	bob, bobKey := svc.CreateUser(t, "bob", "")
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	date := day.Format(time.DateOnly)
	sendDay(t, svc, aliceKey, day) // A 600 s, B 60 s
	bobBeats := fmt.Sprintf(`[{"entity":"/x/secret.go","type":"file","time":%d,"project":"bob-secret"},{"entity":"/x/secret.go","type":"file","time":%d,"project":"bob-secret"}]`,
		day.Add(12*time.Hour).Unix(), day.Add(12*time.Hour+4*time.Minute).Unix())
	if resp, b := svc.Post(t, bulk, bobKey, []byte(bobBeats)); resp.StatusCode != 201 {
		t.Fatalf("bob's heartbeats: %d %s", resp.StatusCode, b)
	}
	svc.WaitCount(t, 5, "SELECT count(*) FROM heartbeats WHERE user_id = $1", alice.ID)
	svc.WaitCount(t, 2, "SELECT count(*) FROM heartbeats WHERE user_id = $1", bob.ID)

	resp, body, cookie := signIn(t, svc, keyBody(aliceKey), nil)
	if resp.StatusCode != 200 || cookie == nil {
		t.Fatalf("sign-in: %d %s, cookie %v", resp.StatusCode, body, cookie)
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" ||
		cookie.MaxAge != int((7*24*time.Hour).Seconds()) || cookie.Secure {
		t.Fatalf("cookie attributes over plain HTTP: %s", resp.Header.Get("Set-Cookie"))
	}
	if strings.Contains(string(body), cookie.Value) || !strings.Contains(string(body), alice.ID) {
		t.Fatalf("sign-in body must name the user and never carry the token: %s", body)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Fatalf("sign-in Cache-Control %q", got)
	}

	// The cookie alone reads alice's data, and only hers.
	msg, err := summaries(t, svc, date, pageHeaders(svc, cookie))
	if err != nil {
		t.Fatalf("StatsService with the session cookie: %v", err)
	}
	if d := msg.Days; len(d) != 1 || d[0].GrandTotal.TotalSeconds != 660 || len(d[0].Breakdown.Projects) != 2 {
		t.Fatalf("alice's summaries by cookie: %v", msg)
	}
	for _, p := range msg.Days[0].Breakdown.Projects {
		if p.Name == "bob-secret" {
			t.Fatalf("alice's cookie read bob's project: %v", msg)
		}
	}
	resp, body = rawRequest(t, svc, http.MethodGet, "/api/v1/users/current/summaries?start="+date+"&end="+date, "", pageHeaders(svc, cookie))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name":"A"`) || strings.Contains(string(body), "bob-secret") {
		t.Fatalf("WakaTime summaries by cookie: %d %s", resp.StatusCode, body)
	}
	resp, body = rawRequest(t, svc, http.MethodGet, "/api/v1/users/"+bob.ID+"/summaries?start="+date+"&end="+date, "", pageHeaders(svc, cookie))
	if resp.StatusCode != 403 || strings.Contains(string(body), "bob-secret") {
		t.Fatalf("bob's summaries with alice's cookie: %d %s", resp.StatusCode, body)
	}

	// Ingest takes keys only: a script in the page cannot write heartbeats.
	hb := fmt.Sprintf(`[{"entity":"/src/C.go","type":"file","time":%d,"project":"C"}]`, day.Add(15*time.Hour).Unix())
	resp, body = rawRequest(t, svc, http.MethodPost, bulk, hb, func(h http.Header) {
		pageHeaders(svc, cookie)(h)
		h.Set("Content-Type", "application/json")
	})
	if resp.StatusCode != 401 {
		t.Fatalf("ingest by cookie: %d %s, want 401", resp.StatusCode, body)
	}
	ingest := heartlogv1connect.NewIngestServiceClient(http.DefaultClient, svc.URL, connect.WithProtoJSON())
	ireq := connect.NewRequest(&heartlogv1.SendHeartbeatsRequest{})
	pageHeaders(svc, cookie)(ireq.Header())
	if _, err := ingest.SendHeartbeats(context.Background(), ireq); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("IngestService by cookie: %v, want unauthenticated", err)
	}

	// Neither cookie nor key: 401, for Connect and REST alike.
	if _, err := summaries(t, svc, date, nil); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("no credentials: %v, want unauthenticated", err)
	}
	resp, _ = rawRequest(t, svc, http.MethodGet, "/api/v1/users/current/summaries?start="+date+"&end="+date, "", func(http.Header) {})
	if resp.StatusCode != 401 {
		t.Fatalf("REST without credentials: %d", resp.StatusCode)
	}

	// Stored hashed: the bucket has the token's SHA-256 as a key and the
	// token nowhere, in keys or values.
	kv, err := svc.JS.KeyValue(context.Background(), svc.Streams.SessionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(cookie.Value))
	assertBucketHidesToken(t, kv, cookie.Value, hex.EncodeToString(sum[:]), true)

	// Sign-out ends the session everywhere and expires the cookie.
	resp, body = rawRequest(t, svc, http.MethodDelete, sessionPath, "", pageHeaders(svc, cookie))
	if resp.StatusCode != 204 {
		t.Fatalf("sign-out: %d %s", resp.StatusCode, body)
	}
	if cs := resp.Cookies(); len(cs) != 1 || cs[0].Name != api.SessionCookie || cs[0].MaxAge >= 0 || cs[0].Value != "" {
		t.Fatalf("sign-out must expire the cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	if _, err := summaries(t, svc, date, pageHeaders(svc, cookie)); connect.CodeOf(err) != connect.CodeUnauthenticated ||
		!strings.Contains(err.Error(), "sign in again") {
		t.Fatalf("cookie after sign-out: %v, want unauthenticated", err)
	}
	assertBucketHidesToken(t, kv, cookie.Value, hex.EncodeToString(sum[:]), false)

	if strings.Contains(logs.String(), cookie.Value) {
		t.Fatal("the session token is in the log")
	}
}

// assertBucketHidesToken checks that no key or value of the sessions
// bucket holds token, and that hashed is (or, after sign-out, is not) a key.
func assertBucketHidesToken(t *testing.T, kv jetstream.KeyValue, token, hashed string, wantHashed bool) {
	t.Helper()
	ctx := context.Background()
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for k := range keys.Keys() {
		found = found || k == hashed
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, token) || strings.Contains(string(e.Value()), token) {
			t.Fatalf("the sessions bucket holds the raw token under %s", k)
		}
	}
	if found != wantHashed {
		t.Fatalf("token hash in the bucket: %v, want %v", found, wantHashed)
	}
}

func TestSessionRefusesCrossOriginRequests(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	_, key := svc.CreateUser(t, "alice", "")
	date := time.Now().UTC().Format(time.DateOnly)
	_, body, cookie := signIn(t, svc, keyBody(key), nil)
	if cookie == nil {
		t.Fatalf("sign-in: %s", body)
	}
	if _, err := summaries(t, svc, date, pageHeaders(svc, cookie)); err != nil {
		t.Fatalf("same-origin call: %v", err)
	}
	foreign := func(name, value string) func(http.Header) {
		return func(h http.Header) {
			pageHeaders(svc, cookie)(h)
			h.Set(name, value)
		}
	}
	for _, c := range []struct{ name, value string }{
		{"Origin", "http://evil.example"},
		{"Origin", "null"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		if _, err := summaries(t, svc, date, foreign(c.name, c.value)); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("Connect with %s: %s: %v, want permission_denied", c.name, c.value, err)
		}
		resp, _ := rawRequest(t, svc, http.MethodGet, "/api/v1/users/current/statusbar/today", "", foreign(c.name, c.value))
		if resp.StatusCode != 403 {
			t.Errorf("REST with %s: %s: %d, want 403", c.name, c.value, resp.StatusCode)
		}
	}
	// What a cross-origin page can send without a preflight: a simple
	// content type, no Connect-Protocol-Version.
	for _, ct := range []string{"text/plain", "application/json"} {
		resp, body := rawRequest(t, svc, http.MethodPost, "/heartlog.v1.StatsService/GetStatusBar", "{}", func(h http.Header) {
			h.Set("Cookie", cookie.Name+"="+cookie.Value)
			h.Set("Content-Type", ct)
		})
		if resp.StatusCode != 403 {
			t.Errorf("Connect POST %s without Connect-Protocol-Version: %d %s, want 403", ct, resp.StatusCode, body)
		}
	}
	// Sign-in and sign-out from another origin are refused too (no login
	// CSRF, no forced sign-out), and the session lives on.
	if resp, body, c := signIn(t, svc, keyBody(key), foreign("Origin", "http://evil.example")); resp.StatusCode != 403 || c != nil {
		t.Errorf("cross-origin sign-in: %d %s", resp.StatusCode, body)
	}
	if resp, _ := rawRequest(t, svc, http.MethodDelete, sessionPath, "", foreign("Sec-Fetch-Site", "cross-site")); resp.StatusCode != 403 {
		t.Errorf("cross-origin sign-out: %d", resp.StatusCode)
	}
	if _, err := summaries(t, svc, date, pageHeaders(svc, cookie)); err != nil {
		t.Fatalf("session after refused sign-out: %v", err)
	}
}

func TestSessionExpires(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{SessionTTL: time.Second})
	_, key := svc.CreateUser(t, "alice", "")
	resp, body, cookie := signIn(t, svc, keyBody(key), nil)
	if cookie == nil || cookie.MaxAge != 1 {
		t.Fatalf("sign-in: %d %s, cookie %v", resp.StatusCode, body, cookie)
	}
	date := time.Now().UTC().Format(time.DateOnly)
	var err error
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		_, err = summaries(t, svc, date, pageHeaders(svc, cookie))
		return err != nil
	}) || connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "session expired") {
		t.Fatalf("expired session: %v, want unauthenticated", err)
	}
}

func TestSignInRefusals(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{API: func(o *api.Options) { o.AuthFailureBurst = 3 }})
	_, key := svc.CreateUser(t, "alice", "")

	// The header forms work as for the API, and Secure follows TLS.
	resp, body, cookie := signIn(t, svc, "", func(h http.Header) {
		h.Set("Authorization", "Bearer "+key)
		h.Set("X-Forwarded-Proto", "https")
	})
	if resp.StatusCode != 200 || cookie == nil || !cookie.Secure {
		t.Fatalf("sign-in by Bearer behind TLS: %d %s %v", resp.StatusCode, body, cookie)
	}
	resp, body, _ = signIn(t, svc, `api_key=`+key, func(h http.Header) { h.Set("Content-Type", "application/x-www-form-urlencoded") })
	if resp.StatusCode != 400 {
		t.Fatalf("form sign-in: %d %s, want 400", resp.StatusCode, body)
	}
	// Wrong keys: 401 with a JSON error, then 429 once the address has
	// failed AuthFailureBurst times; the right key still signs in (behind
	// a load balancer every client shares the address).
	for i := range 3 {
		resp, body, c := signIn(t, svc, keyBody("waka_00000000-0000-4000-8000-00000000000"+fmt.Sprint(i)), nil)
		var e struct{ Error string }
		if resp.StatusCode != 401 || c != nil || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "unknown API key") {
			t.Fatalf("wrong key %d: %d %s", i, resp.StatusCode, body)
		}
		if resp.Header.Get("WWW-Authenticate") != "" {
			t.Fatal("a sign-in refusal must not ask the browser for a password")
		}
	}
	resp, body, _ = signIn(t, svc, keyBody("waka_00000000-0000-4000-8000-000000000009"), nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a wrong key after 3 failures: %d %s, want 429", resp.StatusCode, body)
	}
	resp, body, cookie = signIn(t, svc, keyBody(key), nil)
	if resp.StatusCode != 200 || cookie == nil {
		t.Fatalf("the right key after 3 failures from the address: %d %s, want 200", resp.StatusCode, body)
	}
	if _, err := summaries(t, svc, time.Now().UTC().Format(time.DateOnly), pageHeaders(svc, cookie)); err != nil {
		t.Fatalf("a valid session from the throttled address: %v", err)
	}
	if _, err := summaries(t, svc, time.Now().UTC().Format(time.DateOnly), pageHeaders(svc, &http.Cookie{Name: api.SessionCookie, Value: "forged"})); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("a forged session from the throttled address: %v, want resource exhausted", err)
	}
}

// TestSignInsAreLimitedPerUser: a user who signs in past SignInBurst gets
// 429 with a Retry-After and opens no session; the sessions it has keep
// working, and another user still signs in.
func TestSignInsAreLimitedPerUser(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{API: func(o *api.Options) { o.SignInBurst = 3 }})
	_, alice := svc.CreateUser(t, "alice", "")
	_, bob := svc.CreateUser(t, "bob", "")
	var first *http.Cookie
	for i := range 3 {
		resp, body, c := signIn(t, svc, keyBody(alice), nil)
		if resp.StatusCode != 200 || c == nil {
			t.Fatalf("sign-in %d: %d %s", i, resp.StatusCode, body)
		}
		if first == nil {
			first = c
		}
	}
	resp, body, c := signIn(t, svc, keyBody(alice), nil)
	if resp.StatusCode != 429 || c != nil || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too many sign-ins of this user") {
		t.Fatalf("a fourth sign-in: %d %s (cookie %v), want 429 and no session", resp.StatusCode, body, c)
	}
	if _, err := summaries(t, svc, time.Now().UTC().Format(time.DateOnly), pageHeaders(svc, first)); err != nil {
		t.Fatalf("a session opened before the limit: %v", err)
	}
	if resp, body, c := signIn(t, svc, keyBody(bob), nil); resp.StatusCode != 200 || c == nil {
		t.Fatalf("another user's sign-in: %d %s", resp.StatusCode, body)
	}
}

func TestSecurityHeadersOnEverything(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	_, key := svc.CreateUser(t, "alice", "")
	const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	for _, path := range []string{"/", "/livez", "/api/v1/users/current/statusbar/today", "/heartlog.v1.StatsService/GetStatusBar"} {
		resp, _ := rawRequest(t, svc, http.MethodGet, path, "", func(h http.Header) { h.Set("Authorization", "Bearer "+key) })
		if got := resp.Header.Get("Content-Security-Policy"); got != csp {
			t.Errorf("%s: Content-Security-Policy %q", path, got)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
	}
}

// A session lives no longer than its key: rotating the key ends it.
func TestSessionEndsWithItsKey(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, key := svc.CreateUser(t, "alice", "")
	_, body, cookie := signIn(t, svc, keyBody(key), nil)
	if cookie == nil {
		t.Fatalf("sign-in: %s", body)
	}
	date := time.Now().UTC().Format(time.DateOnly)
	if _, err := summaries(t, svc, date, pageHeaders(svc, cookie)); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	if _, err := svc.Users.RotateKey(context.Background(), alice.ID, ""); err != nil {
		t.Fatal(err)
	}
	var err error
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		_, err = summaries(t, svc, date, pageHeaders(svc, cookie))
		return err != nil
	}) || connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("session after its key was rotated: %v, want unauthenticated", err)
	}
}
