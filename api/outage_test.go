package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"

	"github.com/jackc/pgx/v5"
)

// outage is how long the Postgres outage lasts: 90 s, as the issue tried
// it; HEARTLOG_TEST_OUTAGE shortens it for a local run.
func outage(t *testing.T) time.Duration {
	v := os.Getenv("HEARTLOG_TEST_OUTAGE")
	if v == "" {
		return 90 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("HEARTLOG_TEST_OUTAGE=%q: want a duration such as 20s", v)
	}
	return d
}

// readiness is /readyz's body.
type readiness struct {
	Status, Ingest, Reads string
	Affected              []string
	Checks                map[string]string
}

func TestIngestGoesOnThroughAPostgresOutage(t *testing.T) {
	pg := heartlogtest.StartPostgres(t)
	svc := heartlogtest.Start(t, heartlogtest.Options{Postgres: pg})
	type sender struct {
		name, id, key string
		acked         []string
	}
	send := func(s *sender, n int) {
		t.Helper()
		resp, body := svc.Post(t, bulk, s.key, []byte("["+hbJSON(fmt.Sprintf("%s-%d.go", s.name, n), now()-1)+"]"))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s's heartbeat %d: status %d (%s), want 201", s.name, n, resp.StatusCode, body)
		}
		items := decodeBulk(t, body)
		if len(items) != 1 || items[0].Data.ID == "" {
			t.Fatalf("%s's heartbeat %d: %s, want it stored", s.name, n, body)
		}
		s.acked = append(s.acked, items[0].Data.ID)
	}
	newSender := func(name string) *sender {
		u, key := svc.CreateUser(t, name, "")
		return &sender{name: name, id: u.ID, key: key}
	}

	// used sends before the outage; unused was created long before it but
	// first sends during it; fresh is created the moment before it.
	used, unused := newSender("used"), newSender("unused")
	send(used, 0)
	svc.WaitCount(t, 1, "SELECT count(*) FROM heartbeats WHERE user_id = $1", used.id)
	fresh := newSender("fresh")
	senders := []*sender{used, unused, fresh}

	d := outage(t)
	pg.Stop(t)
	start, n := time.Now(), 1
	sawDegraded := false
	for time.Since(start) < d {
		for _, s := range senders {
			send(s, n)
		}
		n++
		if r, ok := checkReadyz(t, svc, pg); ok {
			sawDegraded = sawDegraded || r.Checks["postgres"] == "unreachable"
		}
		time.Sleep(3 * time.Second)
	}
	if !sawDegraded {
		t.Fatal("/readyz never reported Postgres unreachable during the outage")
	}
	pg.Start(t)

	// Exactly the acknowledged heartbeats land, once each.
	for _, s := range senders {
		svc.WaitCount(t, len(s.acked), "SELECT count(*) FROM heartbeats WHERE user_id = $1", s.id)
		var got []string
		for _, pool := range svc.DayPools() {
			rows, err := pool.Query(context.Background(), "SELECT id FROM heartbeats WHERE user_id = $1", s.id)
			if err != nil {
				t.Fatal(err)
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids...)
		}
		slices.Sort(got)
		want := slices.Clone(s.acked)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %d rows in Postgres, %d acknowledged; they differ", s.name, len(got), len(want))
		}
	}
	t.Logf("Postgres down %s: %d heartbeats acknowledged with 201, every one in Postgres after it returned", d.Round(time.Second), 3*(n-1))
}

// checkReadyz asserts what /readyz may say during a Postgres outage: 200
// (ingest works), reads degraded once the probe has seen it, and no detail
// an unauthenticated caller could use. ok is false while the probe still
// reports the time before the outage.
func checkReadyz(t *testing.T, svc *heartlogtest.Service, pg *heartlogtest.Postgres) (readiness, bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, svc.URL+"/readyz", nil)
	resp, body := svc.Do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz during a Postgres outage: %d (%s), want 200: ingest works", resp.StatusCode, body)
	}
	text := strings.ToLower(string(body))
	for _, leak := range []string{"postgres://", "127.0.0.1", "localhost", strconv.Itoa(pg.Port), "heartlog@", "user=", "database=", "dial", "refused", "error", "failed"} {
		if strings.Contains(text, leak) {
			t.Fatalf("/readyz shows %q to anyone: %s", leak, body)
		}
	}
	var r readiness
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("/readyz: %s: %v", body, err)
	}
	if r.Checks["postgres"] != "unreachable" {
		return r, false
	}
	if r.Status != "degraded" || r.Ingest != "ok" || r.Reads != "degraded" || !slices.Contains(r.Affected, "reads of hot days") ||
		slices.Contains(r.Affected, "ingest") || r.Checks["nats"] != "ok" || r.Checks["users"] != "ok" || r.Checks["stream"] != "ok" {
		t.Fatalf("/readyz with Postgres down: %s; want degraded, ingest ok, reads of hot days affected", body)
	}
	return r, true
}
