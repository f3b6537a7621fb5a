package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"heartlog/internal/heartlogtest"
	"heartlog/streams"
)

// TestPoisonNumberIsRefusedAtTheAPI: the request of issue 7, a number in an
// unknown field that Postgres numeric cannot hold, answered 201 before and
// then blocking the Postgres processor for every user. Now that heartbeat
// gets a 400 naming the field, and the others of the request are stored.
func TestPoisonNumberIsRefusedAtTheAPI(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	u, key := svc.CreateUser(t, "alice", "")
	ts := now() - 60
	poison := []string{
		fmt.Sprintf(`{"entity":"/a.go","type":"file","time":%v,"x":1e200000}`, ts),
		fmt.Sprintf(`{"entity":"/b.go","type":"file","time":%v,"meta":{"sizes":[1,-1e400]}}`, ts),
		fmt.Sprintf(`{"entity":"/c.go","type":"file","time":%v,"tiny":1e-16384}`, ts),
	}
	body := "[" + hbJSON("before.go", ts) + "," + strings.Join(poison, ",") + "," + hbJSON("after.go", ts+1) + "]"
	resp, b := svc.Post(t, bulk, key, []byte(body))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d (%s), want 201 with per-heartbeat results", resp.StatusCode, b)
	}
	items := decodeBulk(t, b)
	for i, field := range []string{"x", "meta.sizes[1]", "tiny"} {
		if got := items[1+i].Error; !strings.HasPrefix(got, field+" is a number out of range") {
			t.Errorf("heartbeat %d: error %q, want a 400 naming %s", 1+i, got, field)
		}
	}
	if items[0].Data.ID == "" || items[4].Data.ID == "" {
		t.Fatalf("results %+v: the good heartbeats were not stored", items)
	}
	svc.WaitCount(t, 2, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
	// The extremes that do fit are stored as sent.
	edge := fmt.Sprintf(`[{"entity":"edge.go","type":"file","time":%v,"big":1.7976931348623157e308,"small":1e-16383}]`, ts)
	if resp, b := svc.Post(t, bulk, key, []byte(edge)); resp.StatusCode != http.StatusCreated || decodeBulk(t, b)[0].Data.ID == "" {
		t.Fatalf("edge values refused: %d %s", resp.StatusCode, b)
	}
	svc.WaitCount(t, 1, "SELECT count(*) FROM heartbeats WHERE user_id = $1 AND entity = 'edge.go' AND extra ? 'small'", u.ID)
	parked, err := streams.NewDeadLetters(svc.JS, svc.Streams).List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 0 {
		t.Fatalf("%d dead letters: validation let a poison heartbeat through", len(parked))
	}
}
