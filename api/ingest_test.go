package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"heartlog/api"
	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
	"heartlog/streams"
)

func now() float64 { return float64(time.Now().Unix()) }

func hbJSON(entity string, t float64) string {
	return fmt.Sprintf(`{"entity":%q,"type":"file","category":"coding","time":%v,"project":"p","language":"Go"}`, entity, t)
}

const bulk = "/api/v1/users/current/heartbeats.bulk"

func TestBadInputIsRefusedAndTheRestStored(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	u, key := svc.CreateUser(t, "alice", "")
	ts := now() - 60
	cases := []struct {
		name, item, wantErr string
	}{
		{"wrong type for lineno", `{"entity":"a.go","type":"file","time":%v,"lineno":"x"}`, "lineno must be an integer"},
		{"wrong type for is_write", `{"entity":"a.go","type":"file","time":%v,"is_write":"yes"}`, "is_write must be true or false"},
		{"missing entity", `{"type":"file","time":%v}`, "entity is required"},
		{"unknown type", `{"entity":"a.go","type":"folder","time":%v}`, "type must be one of"},
		{"far future", `{"entity":"a.go","type":"file","time":4102444800}`, "time is more than one day in the future"},
		{"before 2000", `{"entity":"a.go","type":"file","time":946684799}`, "time is before 2000"},
		{"oversized entity", `{"entity":"` + strings.Repeat("x", 1025) + `","type":"file","time":%v}`, "entity is longer than 1024 bytes"},
		{"not an object", `[1,2]`, "heartbeat must be a JSON object"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := c.item
			if strings.Contains(bad, "%v") {
				bad = fmt.Sprintf(bad, ts)
			}
			good := hbJSON(fmt.Sprintf("good-%d.go", i), ts)
			resp, body := svc.Post(t, bulk, key, []byte("["+good+","+bad+"]"))
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d (%s), want 201 with per-item results", resp.StatusCode, body)
			}
			items := decodeBulk(t, body)
			if items[0].Data.ID == "" || !strings.Contains(items[1].Error, c.wantErr) {
				t.Fatalf("results %+v; want the good one stored and the bad one refused with %q", items, c.wantErr)
			}
			svc.WaitCount(t, 1, "SELECT count(*) FROM heartbeats WHERE user_id = $1 AND entity = $2", u.ID, fmt.Sprintf("good-%d.go", i))
		})
	}
	// Every good heartbeat arrived, so the processor has passed every bad
	// one's request: none of them may be there.
	svc.WaitCount(t, len(cases), "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
}

func TestBadRequestsStoreNothing(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{API: func(o *api.Options) { o.MaxBodyBytes = 64 << 10 }})
	u, key := svc.CreateUser(t, "alice", "")
	many := make([]string, 1001)
	for i := range many {
		many[i] = hbJSON(fmt.Sprintf("f%d.go", i), now())
	}
	cases := []struct {
		name       string
		body       string
		wantStatus int
		wantErr    string
	}{
		{"malformed JSON", `[{"entity": "a.go",`, 400, "malformed request"},
		{"object where an array is due", hbJSON("a.go", now()), 400, "must be a JSON array"},
		{"body over the limit", "[" + hbJSON(strings.Repeat("y", 1000), now()) + strings.Repeat(" ", 64<<10) + "]", 413, "larger than 64 KiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := svc.Post(t, bulk, key, []byte(c.body))
			var eb struct{ Error string }
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
				t.Fatalf("body %s is not a JSON error", body)
			}
			if resp.StatusCode != c.wantStatus || !strings.Contains(eb.Error, c.wantErr) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, eb.Error, c.wantStatus, c.wantErr)
			}
		})
	}
	// 1001 heartbeats are over 64 KiB: check the count limit on a service
	// with the default 4 MiB body limit.
	svc2 := heartlogtest.Start(t, heartlogtest.Options{})
	_, key2 := svc2.CreateUser(t, "bob", "")
	resp, body := svc2.Post(t, bulk, key2, []byte("["+strings.Join(many, ",")+"]"))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "1001 heartbeats in one request, at most 1000") {
		t.Fatalf("1001 heartbeats: got %d %s", resp.StatusCode, body)
	}
	// A marker sent last proves the processor has seen everything before it.
	resp, _ = svc.Post(t, bulk, key, []byte("["+hbJSON("marker.go", now())+"]"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("marker: %d", resp.StatusCode)
	}
	svc.WaitCount(t, 1, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
}

func TestAuth(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, aliceKey := svc.CreateUser(t, "alice", "")
	bob, bobKey := svc.CreateUser(t, "bob", "")
	body := []byte("[" + hbJSON("secret.go", now()) + "]")

	for _, c := range []struct {
		name, key string
		want      int
	}{
		{"missing key", "", 401},
		{"malformed key", "not-a-uuid", 401},
		{"uuid v1 is not a key", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", 401},
		{"unknown key", "waka_11111111-2222-4333-8444-555555555555", 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, b := svc.Post(t, bulk, c.key, body)
			if resp.StatusCode != c.want || !strings.Contains(string(b), `"error"`) {
				t.Fatalf("got %d %s, want %d with a JSON error", resp.StatusCode, b, c.want)
			}
		})
	}
	t.Run("bearer and api_key query work too", func(t *testing.T) {
		req, _ := http.NewRequest("POST", svc.URL+bulk, bytes.NewReader([]byte("["+hbJSON("bearer.go", now())+"]")))
		req.Header.Set("Authorization", "Bearer "+aliceKey)
		if resp, b := svc.Do(t, req); resp.StatusCode != 201 {
			t.Fatalf("bearer: %d %s", resp.StatusCode, b)
		}
		resp, b := svc.Post(t, bulk+"?api_key="+aliceKey, "", []byte("["+hbJSON("query.go", now())+"]"))
		if resp.StatusCode != 201 {
			t.Fatalf("api_key: %d %s", resp.StatusCode, b)
		}
	})
	t.Run("a key never writes as another user", func(t *testing.T) {
		resp, b := svc.Post(t, "/api/v1/users/"+bob.ID+"/heartbeats.bulk", aliceKey, body)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("alice writing to bob's path: %d %s, want 403", resp.StatusCode, b)
		}
		resp, b = svc.Post(t, "/api/compat/wakatime/v1/users/"+alice.ID+"/heartbeats.bulk", aliceKey, body)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("alice writing to her own id: %d %s", resp.StatusCode, b)
		}
		// A user_id inside the heartbeat is ignored, not obeyed.
		sneaky := fmt.Sprintf(`[{"entity":"sneaky.go","type":"file","time":%v,"user_id":%q}]`, now(), bob.ID)
		if resp, b := svc.Post(t, bulk, aliceKey, []byte(sneaky)); resp.StatusCode != 201 {
			t.Fatalf("sneaky: %d %s", resp.StatusCode, b)
		}
		svc.WaitCount(t, 4, "SELECT count(*) FROM heartbeats WHERE user_id = $1", alice.ID)
		if n := svc.Count(t, "SELECT count(*) FROM heartbeats WHERE user_id = $1", bob.ID); n != 0 {
			t.Fatalf("bob has %d heartbeats written with alice's key", n)
		}
		_ = bobKey
	})
}

func TestRateLimit(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{API: func(o *api.Options) { o.RateLimit, o.RateBurst = 0.01, 2 }})
	_, alice := svc.CreateUser(t, "alice", "")
	_, bob := svc.CreateUser(t, "bob", "")
	body := []byte("[" + hbJSON("a.go", now()) + "]")
	for i := range 2 {
		if resp, b := svc.Post(t, bulk, alice, body); resp.StatusCode != 201 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
	}
	resp, b := svc.Post(t, bulk, alice, body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "rate limit") {
		t.Fatalf("third request: %d %s (Retry-After %q), want 429", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	if resp, b := svc.Post(t, bulk, bob, body); resp.StatusCode != 201 {
		t.Fatalf("bob is limited by alice's traffic: %d %s", resp.StatusCode, b)
	}
}

func TestSingleHeartbeatRoute(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	u, key := svc.CreateUser(t, "alice", "")
	resp, b := svc.Post(t, "/api/v1/users/current/heartbeats", key, []byte(hbJSON("one.go", now())))
	var d itemData
	if resp.StatusCode != 201 || json.Unmarshal(b, &d) != nil || d.Data.ID == "" || d.Data.Entity != "one.go" {
		t.Fatalf("got %d %s, want 201 {\"data\": {...}}", resp.StatusCode, b)
	}
	resp, b = svc.Post(t, "/api/v1/users/current/heartbeats", key, []byte(`{"type":"file","time":1}`))
	if resp.StatusCode != 400 || !strings.Contains(string(b), "entity is required") {
		t.Fatalf("bad single heartbeat: %d %s", resp.StatusCode, b)
	}
	svc.WaitCount(t, 1, "SELECT count(*) FROM heartbeats WHERE user_id = $1 AND id = $2", u.ID, d.Data.ID)
}

func TestDuplicatesGiveOneRow(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{Stream: func(c *streams.Config) { c.Duplicates = time.Second }})
	u, key := svc.CreateUser(t, "alice", "")
	ts := now() - 30
	body := []byte("[" + hbJSON("a.go", ts) + "," + hbJSON("b.go", ts+1) + "," + hbJSON("c.go", ts+2) + "]")
	msgs := func() uint64 {
		s, err := svc.JS.Stream(context.Background(), svc.Streams.Stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	for range 2 {
		if resp, b := svc.Post(t, bulk, key, body); resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	if n := msgs(); n != 1 {
		t.Fatalf("stream holds %d messages after a retry inside the window, want 1 (Nats-Msg-Id dedup)", n)
	}
	time.Sleep(1500 * time.Millisecond) // let the stream's duplicate window pass
	if resp, b := svc.Post(t, bulk, key, body); resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if n := msgs(); n != 2 {
		t.Fatalf("stream holds %d messages after the window, want 2", n)
	}
	// Wait for the processor to pass the last message, then count.
	marker := []byte("[" + hbJSON("marker.go", ts+3) + "]")
	svc.Post(t, bulk, key, marker)
	svc.WaitCount(t, 1, "SELECT count(*) FROM heartbeats WHERE user_id = $1 AND entity = 'marker.go'", u.ID)
	if n := svc.Count(t, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID); n != 4 {
		t.Fatalf("%d rows, want 4: one per distinct heartbeat", n)
	}
}

func TestConnectIngest(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	u, key := svc.CreateUser(t, "alice", "")
	for _, proto := range []struct {
		name string
		opt  []connect.ClientOption
	}{{"connect", nil}, {"grpc", []connect.ClientOption{connect.WithGRPC()}}, {"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}}} {
		t.Run(proto.name, func(t *testing.T) {
			client := heartlogv1connect.NewIngestServiceClient(h2cClient(), svc.URL, proto.opt...)
			req := connect.NewRequest(&heartlogv1.SendHeartbeatsRequest{
				Machine: "box",
				Heartbeats: []*heartlogv1.Heartbeat{
					{Entity: proto.name + ".go", Type: "file", Time: now(), Language: "Go"},
					{Entity: "", Type: "file", Time: now()},
				},
			})
			req.Header().Set("Authorization", "Bearer "+key)
			resp, err := client.SendHeartbeats(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			r := resp.Msg.Results
			if len(r) != 2 || r[0].Id == "" || r[1].Error != "entity is required" {
				t.Fatalf("results %v", r)
			}
			svc.WaitCount(t, 1, "SELECT count(*) FROM heartbeats WHERE user_id = $1 AND entity = $2 AND machine = 'box'", u.ID, proto.name+".go")

			bad := connect.NewRequest(&heartlogv1.SendHeartbeatsRequest{})
			bad.Header().Set("Authorization", "Bearer waka_11111111-2222-4333-8444-555555555555")
			if _, err := client.SendHeartbeats(context.Background(), bad); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("unknown key: %v, want unauthenticated", err)
			}
		})
	}
}

func TestNATSDownAnswers503(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	_, key := svc.CreateUser(t, "alice", "")
	svc.NATS.Shutdown()
	resp, b := svc.Post(t, bulk, key, []byte("["+hbJSON("lost.go", now())+"]"))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "not stored") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with NATS down: %d %s (Retry-After %q), want 503 with Retry-After", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	// Connect says the same, with the Retry-After a client backs off by.
	client := heartlogv1connect.NewIngestServiceClient(h2cClient(), svc.URL)
	req := connect.NewRequest(&heartlogv1.SendHeartbeatsRequest{Heartbeats: []*heartlogv1.Heartbeat{{Entity: "/lost.go", Type: "file", Time: float64(time.Now().Unix())}}})
	req.Header().Set("Authorization", "Bearer "+key)
	_, err := client.SendHeartbeats(context.Background(), req)
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeUnavailable || cerr.Meta().Get("Retry-After") == "" {
		t.Fatalf("Connect with NATS down: %v, want unavailable with Retry-After", err)
	}
}

func TestPostgresDownIngestStillAcknowledges(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{PostgresProxy: true})
	u, key := svc.CreateUser(t, "alice", "")
	svc.PostgresProxy.Cut()
	const n = 20
	for i := range n {
		resp, b := svc.Post(t, bulk, key, []byte("["+hbJSON(fmt.Sprintf("f%d.go", i), now())+"]"))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("request %d with Postgres down: %d %s, want 201 (the log holds it)", i, resp.StatusCode, b)
		}
	}
	time.Sleep(time.Second) // the processor fails and retries meanwhile
	if got := svc.Count(t, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID); got != 0 {
		t.Fatalf("%d rows reached Postgres through a cut connection", got)
	}
	svc.PostgresProxy.Restore(t)
	svc.WaitCount(t, n, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
	// Connection errors are transient: retried, never parked.
	if parked, err := streams.NewDeadLetters(svc.JS, svc.Streams).List(context.Background(), ""); err != nil || len(parked) != 0 {
		t.Fatalf("dead letters after an outage: %d (%v), want none", len(parked), err)
	}
}

// h2cClient speaks HTTP/2 without TLS, as gRPC needs.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}
