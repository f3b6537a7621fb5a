package main_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"heartlog/daydb"
	"heartlog/daymove"
	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/pgheartbeats"
	pgsink "heartlog/processors/postgres"
	"heartlog/reads"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
	"heartlog/streams"
	"heartlog/users"
)

// placementTTL is the cache TTL of every process in these tests, the
// test's own reader included: the move settles for twice it.
const placementTTL = 200 * time.Millisecond

type active struct{}

func (active) State(string) streams.ShardState { return streams.ShardActive }

// moveRig is a catalog, two shard databases and NATS, with a day of
// heartbeats of two users written, and a reader over them.
type moveRig struct {
	t      *testing.T
	nats   *heartlogtest.NATS
	dbs    heartlogtest.Databases
	env    []string
	reader *reads.Reader
	users  []users.User
	first  time.Time
	day    string   // the day moved (YYYYMMDD)
	days   []string // the day and the next, which stays put
	ids    []string // every heartbeat id of day written
}

func newMoveRig(t *testing.T, perUser int) *moveRig {
	t.Helper()
	r := &moveRig{t: t, nats: heartlogtest.StartNATS(t), dbs: heartlogtest.NewDatabases(t, 2)}
	r.dbs.Days.SetCacheTTL(placementTTL)
	r.env = []string{"HEARTLOG_NATS_URL=" + r.nats.URL, "HEARTLOG_POSTGRES_URL=" + r.dbs.CatalogURL,
		"HEARTLOG_POSTGRES_SHARD_URLS=" + strings.Join(r.dbs.ShardURLs, ","), "HEARTLOG_LOG_LEVEL=warn",
		"HEARTLOG_SHARDS_GRACE=87600h", "HEARTLOG_PLACEMENT_TTL=" + placementTTL.String()}
	r.reader = reads.New(r.dbs.Days, active{}, nil, nil, 4, heartlogtest.Logger(t))
	r.first = time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	r.day = r.first.Format(heartbeat.DayLayout)
	r.days = []string{r.day, r.first.AddDate(0, 0, 1).Format(heartbeat.DayLayout)}
	sink := pgsink.New(r.dbs.Days, active{}, heartlogtest.Logger(t), pgsink.Options{})
	var batches []*heartlogv1.Batch
	for u := range 2 {
		r.users = append(r.users, users.User{ID: uuid.NewString(), ObjectPrefix: "p"})
		for d, day := range r.days {
			b := &heartlogv1.Batch{Day: day}
			for i := range perUser {
				hb := heartlogtest.Heartbeat(t, r.users[u].ID, fmt.Sprintf("f%d.go", i%7), r.first.AddDate(0, 0, d).Add(9*time.Hour+time.Duration(i)*37*time.Second))
				hb.Project = fmt.Sprintf("p%d", i%3)
				b.Heartbeats = append(b.Heartbeats, hb)
				if d == 0 {
					r.ids = append(r.ids, hb.Id)
				}
			}
			batches = append(batches, b)
		}
	}
	if err := sink.Commit(context.Background(), batches); err != nil {
		t.Fatal(err)
	}
	return r
}

// totals is what summaries and durations reads give for both users over
// both days, or the error of the read.
func (r *moveRig) totals() string {
	r.t.Helper()
	var out strings.Builder
	start := stats.DateOf(r.first, time.UTC)
	opts := stats.Options{Start: start, End: start.AddDays(len(r.days) - 1)}
	for _, u := range r.users {
		act, err := r.reader.Activity(context.Background(), u, r.days)
		if err != nil {
			return "read: " + err.Error()
		}
		sum, err := stats.SummarizeBeats(act, opts)
		if err != nil {
			r.t.Fatal(err)
		}
		durs, err := stats.DurationsOfBeats(act, opts)
		if err != nil {
			r.t.Fatal(err)
		}
		fmt.Fprintf(&out, "%v\n%d durations %v\n", stats.Combine(sum), len(durs), durs)
	}
	return out.String()
}

// placedOn is the index (1-based) of the shard the catalog places the day on.
func (r *moveRig) placedOn() int {
	r.t.Helper()
	name, _, ok, err := r.dbs.Days.PlacedFor(context.Background(), r.day)
	if err != nil || !ok {
		r.t.Fatalf("placement of %s: %v, %v", r.day, ok, err)
	}
	for i, p := range r.dbs.Shards {
		if daydb.NameOf(p) == name {
			return i + 1
		}
	}
	r.t.Fatalf("%s placed on %s, no shard of the test", r.day, name)
	return 0
}

// move runs `heartlog shards move` for the day with extra env.
func (r *moveRig) move(to string, env ...string) (string, error) {
	cmd := command(append(append([]string{}, r.env...), env...), "shards", "move", shardsDay(r.day), "--to", to,
		"--lock-ttl", "1s", "--wait", "30s", "--chunk", "100")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func shardsDay(day string) string { return day[:4] + "-" + day[4:6] + "-" + day[6:] }

func dayIDs(t *testing.T, p *pgxpool.Pool, day string) (map[string]int, bool) {
	t.Helper()
	var has bool
	if err := p.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", pgheartbeats.PartitionName(day)).Scan(&has); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	if !has {
		return out, false
	}
	rows, err := p.Query(context.Background(), "SELECT id FROM "+pgheartbeats.PartitionName(day))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		out[id]++
	}
	return out, true
}

// checkMoved: the day is placed on shard to (1-based), its table there
// holds every id of want once, and the other shard has no table of it.
func (r *moveRig) checkMoved(to int, want []string) {
	r.t.Helper()
	if got := r.placedOn(); got != to {
		r.t.Errorf("day placed on shard %d, want %d", got, to)
	}
	on, _ := dayIDs(r.t, r.dbs.Shards[to-1], r.day)
	for _, id := range want {
		if on[id] != 1 {
			r.t.Errorf("heartbeat %s: %d rows on the target", id, on[id])
		}
	}
	if len(on) != len(want) {
		r.t.Errorf("%d rows on the target, want %d", len(on), len(want))
	}
	if left, has := dayIDs(r.t, r.dbs.Shards[2-to], r.day); has {
		r.t.Errorf("the source still has the day's table (%d rows)", len(left))
	}
}

// TestShardsMove moves a day of heartbeats from its shard to the other:
// every row ends on the target, none on the source, the placement is
// switched, and summaries and durations read the same before and after.
// Run again, it says the day is there already and exits 0.
func TestShardsMove(t *testing.T) {
	r := newMoveRig(t, 300)
	before := r.totals()
	if strings.HasPrefix(before, "read:") || !strings.Contains(before, "p2") {
		t.Fatalf("totals before the move: %s", before)
	}
	to := 3 - r.placedOn()
	// The target server prints dates another way (its own DateStyle): the
	// rows' text differs, their content does not, and verify must see that.
	if _, err := r.dbs.Shards[to-1].Exec(context.Background(),
		`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET DateStyle = %L', current_database(), 'SQL, DMY'); END $$`); err != nil {
		t.Fatal(err)
	}
	out, err := r.move(strconv.Itoa(to))
	if err != nil {
		t.Fatalf("shards move: %v\n%s", err, out)
	}
	if !strings.Contains(out, "600 rows copied") || !strings.Contains(out, "600 verified") || !strings.Contains(out, "rows/s") {
		t.Errorf("the move's output does not tell what it did:\n%s", out)
	}
	r.checkMoved(to, r.ids)
	if after := r.totals(); after != before {
		t.Errorf("totals after the move:\n%s\nwant, as before:\n%s", after, before)
	}
	out, err = r.move(daydb.NameOf(r.dbs.Shards[to-1]))
	if err != nil || !strings.Contains(out, "already") {
		t.Errorf("moving the day where it is: %v\n%s", err, out)
	}
}

// TestShardsMoveKilledAtEachStep kills the move (SIGKILL, through the
// test-only HEARTLOG_DEBUG_MOVE_KILL_AT) right after each of its steps in
// turn, moving the day back and forth; after every kill the reads give the
// same totals, and running the same command again finishes the move.
func TestShardsMoveKilledAtEachStep(t *testing.T) {
	r := newMoveRig(t, 150)
	want := r.totals()
	for _, step := range daymove.Steps {
		to := 3 - r.placedOn()
		out, err := r.move(strconv.Itoa(to), "HEARTLOG_DEBUG_MOVE_KILL_AT="+string(step))
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("killed after %s: %v, want SIGKILL\n%s", step, err, out)
		}
		if got := r.totals(); got != want {
			t.Errorf("reads after a kill at %s:\n%s\nwant\n%s", step, got, want)
		}
		out, err = r.move(strconv.Itoa(to))
		if err != nil {
			t.Fatalf("re-run after a kill at %s: %v\n%s", step, err, out)
		}
		r.checkMoved(to, r.ids)
		if got := r.totals(); got != want {
			t.Errorf("reads after the re-run of a kill at %s:\n%s\nwant\n%s", step, got, want)
		}
		if t.Failed() {
			t.Fatalf("after a kill at %s; the re-run said:\n%s", step, out)
		}
	}
}

// TestShardsMoveWhileWriting runs `heartlog process` whose placement cache
// lives an hour (a process that has not seen the move: it writes the day
// to the source until the fence turns it away) while heartbeats of the day
// keep coming during the move: every one ends on the target, once.
func TestShardsMoveWhileWriting(t *testing.T) {
	r := newMoveRig(t, 100)
	nc, js := heartlogtest.Connect(t, r.nats.URL)
	_, pub := heartlogtest.Publisher(t, nc, js)
	env := append(append([]string{}, r.env...), "HEARTLOG_PLACEMENT_TTL=1h")
	startHeartlog(t, env, "process", "--only", "postgres")
	ctx := context.Background()
	var (
		mu   sync.Mutex
		sent = append([]string{}, r.ids...)
		n    int
	)
	publish := func() {
		hb := heartlogtest.Heartbeat(t, r.users[n%2].ID, fmt.Sprintf("live%d.go", n), r.first.Add(20*time.Hour+time.Duration(n)*time.Second))
		n++
		if err := pub.Publish(ctx, []*heartlogv1.Heartbeat{hb}, nil); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		sent = append(sent, hb.Id)
		mu.Unlock()
	}
	for range 20 { // the process caches the day's placement
		publish()
	}
	from := r.placedOn()
	if !heartlogtest.Eventually(60*time.Second, func() bool {
		ids, _ := dayIDs(t, r.dbs.Shards[from-1], r.day)
		return len(ids) == len(r.ids)+20
	}) {
		t.Fatal("the process did not write the day's first heartbeats")
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
				publish()
			}
		}
	})
	out, err := r.move(strconv.Itoa(3 - from))
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatalf("shards move while writing: %v\n%s", err, out)
	}
	// The process wrote to the source between the switch and the fence,
	// and the move copied that after the fence.
	if m := regexp.MustCompile(`(\d+) more after the fence`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("no heartbeat of the stale process was copied after the fence:\n%s", out)
	}
	for range 20 {
		publish()
	}
	mu.Lock()
	defer mu.Unlock()
	var got map[string]int
	if !heartlogtest.Eventually(60*time.Second, func() bool {
		got, _ = dayIDs(t, r.dbs.Shards[2-from], r.day)
		return len(got) >= len(sent)
	}) {
		t.Errorf("%d heartbeats of the day on the target, %d sent", len(got), len(sent))
	}
	r.checkMoved(3-from, sent)
}

// TestShardsMoveRefuses: a day nobody wrote, a target out of range or not
// in the list, and a day the janitor is dropping get clear errors and
// change nothing.
func TestShardsMoveRefuses(t *testing.T) {
	r := newMoveRig(t, 10)
	from := r.placedOn()
	cases := []struct {
		name, day, to, want string
	}{
		{"unplaced", "2026-01-01", "1", "not placed"},
		{"out of range", shardsDay(r.day), "3", "has 2 databases (1 to 2)"},
		{"zero", shardsDay(r.day), "0", "has 2 databases (1 to 2)"},
		{"unknown name", shardsDay(r.day), "db.example:5432/nope", "is no database of HEARTLOG_POSTGRES_SHARD_URLS"},
		{"bad day", "yesterday", "1", "is not a day"},
	}
	for _, c := range cases {
		out, err := command(r.env, "shards", "move", c.day, "--to", c.to, "--wait", "0s").CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: %v, want an error saying %q:\n%s", c.name, err, c.want, out)
		}
	}
	// A day the janitor is draining.
	_, js := heartlogtest.Connect(t, r.nats.URL)
	kv, err := js.KeyValue(context.Background(), streams.DefaultConfig().ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.PutShard(context.Background(), kv, r.day, streams.Shard{State: streams.ShardDraining, By: "test"}, 0); err != nil {
		t.Fatal(err)
	}
	out, err := command(r.env, "shards", "move", shardsDay(r.day), "--to", strconv.Itoa(3-from), "--wait", "0s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "draining") {
		t.Errorf("moving a draining day: %v\n%s", err, out)
	}
	r.checkMoved(from, r.ids)
}

// TestShardsMoveBackBeforeItFinished: a move killed after its fence is
// not undone by moving the day back (the old source may hold rows the
// target lacks): that is refused, naming the move to finish, which then
// finishes.
func TestShardsMoveBackBeforeItFinished(t *testing.T) {
	r := newMoveRig(t, 50)
	from := r.placedOn()
	want := r.totals()
	out, err := r.move(strconv.Itoa(3-from), "HEARTLOG_DEBUG_MOVE_KILL_AT=fence")
	if err == nil {
		t.Fatalf("the move was not killed:\n%s", out)
	}
	out, err = r.move(strconv.Itoa(from))
	if err == nil || !strings.Contains(out, "--to "+daydb.NameOf(r.dbs.Shards[2-from])) {
		t.Fatalf("moving back an unfinished move: %v, want a refusal naming the move to finish\n%s", err, out)
	}
	if out, err := r.move(strconv.Itoa(3 - from)); err != nil {
		t.Fatalf("finishing the move: %v\n%s", err, out)
	}
	r.checkMoved(3-from, r.ids)
	if got := r.totals(); got != want {
		t.Errorf("reads after the move:\n%s\nwant\n%s", got, want)
	}
}

// TestShardsMoveStopsOnAMismatch: a row whose copy on the target differs
// from the source (changed there between a killed run and its re-run)
// stops the move at the verification with an error saying so, and the
// source keeps its table and every row.
func TestShardsMoveStopsOnAMismatch(t *testing.T) {
	r := newMoveRig(t, 50)
	from := r.placedOn()
	if out, err := r.move(strconv.Itoa(3-from), "HEARTLOG_DEBUG_MOVE_KILL_AT=recopy"); err == nil {
		t.Fatalf("the move was not killed:\n%s", out)
	}
	target := r.dbs.Shards[2-from]
	if _, err := target.Exec(context.Background(), "UPDATE "+pgheartbeats.PartitionName(r.day)+" SET entity = 'changed.go' WHERE id = $1", r.ids[7]); err != nil {
		t.Fatal(err)
	}
	out, err := r.move(strconv.Itoa(3 - from))
	if err == nil || !strings.Contains(out, "1 differ") || !strings.Contains(out, "nothing dropped") {
		t.Fatalf("a move whose copy differs: %v, want a mismatch\n%s", err, out)
	}
	left, has := dayIDs(t, r.dbs.Shards[from-1], r.day)
	if !has || len(left) != len(r.ids) {
		t.Errorf("the source has %d rows (table: %t) after the mismatch, want all %d", len(left), has, len(r.ids))
	}
}
