package dumps_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"heartlog/api"
	"heartlog/dumps"
	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	"heartlog/pgheartbeats"
	"heartlog/processors/compaction"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
	"heartlog/users"
)

const grace = 48 * time.Hour

// The fixture's days, what they hold, and what WakaTime's accounting of
// them gives (beats two minutes apart, well inside the 15 minutes'
// timeout; the malformed record of 2024-02-29 leaves a 4-minute gap).
var fixtureDays = []struct {
	day      string // YYYYMMDD
	beats    int
	seconds  float64
	projects []string
	editors  []string
	machines []string
}{
	{"20190304", 6, 600, []string{"heartlog"}, []string{"VS Code"}, []string{"laptop"}},
	{"20210715", 7, 600, []string{"dotfiles", "heartlog"}, []string{"VS Code", "Vim"}, []string{"desktop", "laptop"}},
	{"20240229", 4, 480, []string{"wakapi"}, []string{"VS Code"}, []string{"laptop"}},
}

type env struct {
	svc    *heartlogtest.Service
	stores heartlogtest.Stores
	export *dumps.Exporter
}

// start runs a whole heartlog with a 48 h shard grace (the fixture's days
// are years old: no Postgres partition), the day-file processors (the late
// path of closed days) and the HTTP export.
func start(t *testing.T, stream func(*streams.Config)) env {
	t.Helper()
	st := heartlogtest.OpenStores(t)
	exp := &dumps.Exporter{Files: st.Primary, Grace: grace}
	s := heartlogtest.Start(t, heartlogtest.Options{ShardsGrace: grace, Stream: stream,
		API: func(o *api.Options) { o.Export = exp }})
	exp.Reader = s.Reader // before any request
	s.StartDayFiles(t, heartlogtest.DayFileOptions{})
	return env{svc: s, stores: st, export: exp}
}

func valuesOf(t *testing.T, name string) map[string]string {
	t.Helper()
	var doc struct {
		Data []struct{ ID, Value string }
	}
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range doc.Data {
		out[d.ID] = d.Value
	}
	return out
}

func importFixture(t *testing.T, e env, u users.User) (dumps.Result, []dumps.Refusal, error) {
	t.Helper()
	f, err := os.Open("testdata/wakatime-heartbeats.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var refused []dumps.Refusal
	res, err := dumps.Import(context.Background(), e.svc.JS, e.svc.Streams, f, dumps.Options{
		User: u, Format: dumps.WakaTime,
		UserAgents: valuesOf(t, "testdata/user_agents.json"), Machines: valuesOf(t, "testdata/machine_names.json"),
		Refused: func(r dumps.Refusal) { refused = append(refused, r) },
	})
	return res, refused, err
}

func importLines(t *testing.T, e env, u users.User, data []byte) (dumps.Result, []dumps.Refusal, error) {
	t.Helper()
	var refused []dumps.Refusal
	res, err := dumps.Import(context.Background(), e.svc.JS, e.svc.Streams, bytes.NewReader(data), dumps.Options{
		User: u, Format: dumps.NDJSON, Refused: func(r dumps.Refusal) { refused = append(refused, r) }})
	return res, refused, err
}

func streamMessages(t *testing.T, s *heartlogtest.Service) uint64 {
	t.Helper()
	st, err := s.JS.Stream(context.Background(), s.Streams.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func dayTime(t *testing.T, day string) time.Time {
	t.Helper()
	d, err := time.Parse("20060102", day)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// files returns the user's day files of the days in the primary bucket.
func files(t *testing.T, b objstore.Bucket, u users.User, days ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, d := range days {
		data, _, err := b.Get(context.Background(), dayfile.Key(u.ObjectPrefix, u.ID, d))
		if err != nil {
			t.Fatalf("day file %s of %s: %v", d, u.ID, err)
		}
		out[d] = data
	}
	return out
}

func decode(t *testing.T, data []byte) []*heartlogv1.Heartbeat {
	t.Helper()
	hbs, err := dayfile.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return hbs
}

func distinct(hbs []*heartlogv1.Heartbeat, field func(*heartlogv1.Heartbeat) string) []string {
	var out []string
	for _, hb := range hbs {
		if v := field(hb); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

func fixtureDayList() []string {
	var out []string
	for _, d := range fixtureDays {
		out = append(out, d.day)
	}
	return out
}

// summary is GET …/summaries of one UTC day, as the user sees it.
func summary(t *testing.T, s *heartlogtest.Service, key, day string) (seconds float64, projects, editors []string) {
	t.Helper()
	d := day[0:4] + "-" + day[4:6] + "-" + day[6:8]
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/users/current/summaries?timezone=UTC&start="+d+"&end="+d, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, body := s.Do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("summaries of %s: %d %s", d, resp.StatusCode, body)
	}
	var out struct {
		Data []struct {
			GrandTotal struct {
				TotalSeconds float64 `json:"total_seconds"`
			} `json:"grand_total"`
			Projects, Editors []struct{ Name string }
		}
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Data) != 1 {
		t.Fatalf("summaries of %s: %v: %s", d, err, body)
	}
	for _, p := range out.Data[0].Projects {
		projects = append(projects, p.Name)
	}
	for _, e := range out.Data[0].Editors {
		editors = append(editors, e.Name)
	}
	slices.Sort(projects)
	slices.Sort(editors)
	return out.Data[0].GrandTotal.TotalSeconds, projects, editors
}

// TestImportWakaTimeDump imports the fixture dump: the malformed record is
// reported where it is and the rest imports; the years-old days get no
// Postgres partition, are due for the day closer, and once closed their
// day files and summaries hold what the dump implies; running the import
// again adds nothing to the log, the rows or the files.
func TestImportWakaTimeDump(t *testing.T) {
	e := start(t, nil)
	s := e.svc
	u, key := s.CreateUser(t, "alice", "")

	res, refused, err := importFixture(t, e, u)
	if !errors.Is(err, dumps.ErrRefused) {
		t.Fatalf("import: %v, want ErrRefused for the malformed record", err)
	}
	if res.Read != 18 || res.Imported != 17 || res.Refused != 1 || res.Duplicates != 0 {
		t.Fatalf("import: %+v, want 18 read, 17 imported, 1 refused, 0 duplicates", res)
	}
	if len(refused) != 1 {
		t.Fatalf("refused %v, want the one malformed record", refused)
	}
	r := refused[0]
	if r.Record != 16 || r.Date != "2024-02-29" || r.Offset <= 0 || !strings.Contains(r.Reason, "time") ||
		!strings.Contains(r.Where, "record 16") || !strings.Contains(r.Where, "heartbeat 3") {
		t.Fatalf("refusal %+v: want record 16 (2024-02-29, heartbeat 3) with a byte offset, for its time", r)
	}
	// The bytes there are the record's.
	raw, _ := os.ReadFile("testdata/wakatime-heartbeats.json")
	if rest := string(raw[r.Offset:]); !strings.Contains(rest[:min(len(rest), 600)], `"2024-02-29T12:04:00Z"`) {
		t.Fatalf("byte %d does not start the malformed record: %.200q", r.Offset, rest)
	}

	heartlogtest.WaitPostgresAcked(t, s)
	ctx := context.Background()
	days := fixtureDayList()
	for _, pool := range s.DayPools() {
		got, err := pgheartbeats.Partitioned(ctx, pool, days)
		if err != nil {
			t.Fatal(err)
		}
		for d, ok := range got {
			if ok {
				t.Errorf("day %s, years past the shard grace, got a Postgres partition", d)
			}
		}
	}
	if n := s.Count(t, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID); n != 0 {
		t.Fatalf("%d Postgres rows for days past the grace, want 0", n)
	}
	if n := s.Count(t, "SELECT count(*) FROM users WHERE id = $1 AND first_day = '2019-03-04'", u.ID); n != 1 {
		t.Fatal("the user's first day is not the dump's first day, 2019-03-04")
	}
	// The day closer takes them like any day that is over.
	list, err := s.Compactor(t, compaction.Options{}).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if slices.Contains(days, d.Day) && !d.Due {
			t.Errorf("day %s is not due for the day closer: %+v", d.Day, d)
		}
	}
	for _, d := range days {
		s.CloseDay(t, dayTime(t, d), &e.stores)
	}

	before := files(t, e.stores.Primary, u, days...)
	for _, want := range fixtureDays {
		hbs := decode(t, before[want.day])
		if len(hbs) != want.beats {
			t.Errorf("day file %s holds %d heartbeats, want %d", want.day, len(hbs), want.beats)
		}
		for name, got := range map[string][]string{
			"projects": distinct(hbs, (*heartlogv1.Heartbeat).GetProject),
			"editors":  distinct(hbs, (*heartlogv1.Heartbeat).GetEditor),
			"machines": distinct(hbs, (*heartlogv1.Heartbeat).GetMachine),
		} {
			wantList := map[string][]string{"projects": want.projects, "editors": want.editors, "machines": want.machines}[name]
			if !slices.Equal(got, wantList) {
				t.Errorf("day file %s: %s %v, want %v", want.day, name, got, wantList)
			}
		}
		seconds, projects, editors := summary(t, s, key, want.day)
		if seconds != want.seconds || !slices.Equal(projects, want.projects) || !slices.Equal(editors, want.editors) {
			t.Errorf("summary of %s: %v s, projects %v, editors %v; want %v s, %v, %v",
				want.day, seconds, projects, editors, want.seconds, want.projects, want.editors)
		}
	}

	// Again: the log drops every message as a repeat, the files stay.
	msgs := streamMessages(t, s)
	res, _, err = importFixture(t, e, u)
	if !errors.Is(err, dumps.ErrRefused) || res.Imported != 0 || res.Duplicates != 17 || res.Refused != 1 {
		t.Fatalf("second import: %+v, %v; want nothing imported, 17 duplicates, the 1 refusal again", res, err)
	}
	if got := streamMessages(t, s); got != msgs {
		t.Fatalf("the second import stored %d messages, want none", got-msgs)
	}
	heartlogtest.WaitAcked(t, s, "objects", "cache", "backup")
	after := files(t, e.stores.Primary, u, days...)
	for _, d := range days {
		if !bytes.Equal(before[d], after[d]) {
			t.Errorf("day file %s changed on the second import", d)
		}
	}
}

// TestImportAgainPastTheDuplicateWindow runs an import twice, the second
// time after the log's duplicate window: the messages are stored again, and
// the sinks make nothing of them: the same Postgres rows for a hot day, the
// same day file and no new backup version for a closed one.
func TestImportAgainPastTheDuplicateWindow(t *testing.T) {
	e := start(t, func(c *streams.Config) { c.Duplicates = time.Second })
	s := e.svc
	u, _ := s.CreateUser(t, "bob", "")
	now := time.Now().UTC()
	hot := now.Add(-2 * time.Hour).Truncate(time.Hour) // inside the grace: Postgres rows
	old := time.Date(2020, 5, 17, 10, 0, 0, 0, time.UTC)
	var lines bytes.Buffer
	for i := range 5 {
		fmt.Fprintf(&lines, `{"entity":"/src/a%d.go","type":"file","time":%d,"project":"p","language":"Go","user_agent":"wakatime/v1.90.0 (linux-6.1) go1.22 vscode/1.85.0 vscode-wakatime/24.4.0"}`+"\n", i, hot.Unix()+int64(60*i))
		fmt.Fprintf(&lines, `{"entity":"/src/b%d.go","type":"file","time":%d.5,"project":"q","is_write":true}`+"\n", i, old.Unix()+int64(60*i))
	}
	if res, refused, err := importLines(t, e, u, lines.Bytes()); err != nil || res.Imported != 10 {
		t.Fatalf("import: %+v %v %v", res, refused, err)
	}
	heartlogtest.WaitPostgresAcked(t, s)
	s.CloseDay(t, old, &e.stores)
	oldDay := old.Format("20060102")
	key := dayfile.Key(u.ObjectPrefix, u.ID, oldDay)
	first := files(t, e.stores.Primary, u, oldDay)[oldDay]
	versions, err := e.stores.Backup.Versions(context.Background(), key)
	if err != nil || len(versions) != 1 {
		t.Fatalf("backup versions of %s: %v %v, want 1", key, versions, err)
	}
	rows := s.Count(t, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
	if rows != 5 {
		t.Fatalf("%d Postgres rows, want the 5 of the hot day", rows)
	}

	time.Sleep(1500 * time.Millisecond) // past the 1 s duplicate window: the log takes the messages again
	msgs := streamMessages(t, s)
	res, _, err := importLines(t, e, u, lines.Bytes())
	if err != nil || res.Read != 10 || res.Duplicates != 0 {
		t.Fatalf("second import: %+v %v; want all 10 sent and stored again", res, err)
	}
	if got := streamMessages(t, s); got <= msgs {
		t.Fatalf("the log stored no message of the second import (%d, then %d): the test proves nothing", msgs, got)
	}
	heartlogtest.WaitPostgresAcked(t, s)
	heartlogtest.WaitAcked(t, s, "objects", "cache", "backup")
	if n := s.Count(t, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID); n != rows {
		t.Fatalf("%d Postgres rows after the second import, want %d", n, rows)
	}
	if again := files(t, e.stores.Primary, u, oldDay)[oldDay]; !bytes.Equal(first, again) {
		t.Fatal("the day file changed on the second import")
	}
	if v, err := e.stores.Backup.Versions(context.Background(), key); err != nil || len(v) != 1 {
		t.Fatalf("backup versions after the second import: %v %v, want still 1", v, err)
	}
}

// TestImportNDJSONPlainAndGzip imports the same lines plain and gzipped,
// with a line that is not JSON and one that fails validation: both report
// them by line and byte, and import the rest.
func TestImportNDJSONPlainAndGzip(t *testing.T) {
	e := start(t, nil)
	s := e.svc
	at := time.Now().UTC().Add(-3 * time.Hour).Unix()
	lines := []string{
		fmt.Sprintf(`{"entity":"/src/a.go","type":"file","time":%d,"project":"p"}`, at),
		"",
		fmt.Sprintf(`{"entity":"/src/b.go","type":"file","time":%d,"project":"p"}`, at+60),
		`{"entity":"/src/c.go", "time": oops}`,
		fmt.Sprintf(`{"entity":"","type":"file","time":%d}`, at+90),
		fmt.Sprintf(`{"entity":"/src/d.go","type":"file","time":%d,"project":"p","editor":"Zed","extra":{"k":[1,2]}}`, at+120),
	}
	plain := []byte(strings.Join(lines, "\n") + "\n")
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(plain)
	zw.Close()
	for name, data := range map[string][]byte{"plain": plain, "gzip": zipped.Bytes()} {
		u, _ := s.CreateUser(t, name, "")
		res, refused, err := importLines(t, e, u, data)
		if !errors.Is(err, dumps.ErrRefused) || res.Read != 5 || res.Imported != 3 || res.Refused != 2 {
			t.Fatalf("%s: %+v %v; want 5 records read, 3 imported, 2 refused", name, res, err)
		}
		offset4 := int64(len(lines[0]) + 1 + len(lines[1]) + 1 + len(lines[2]) + 1)
		if refused[0].Line != 4 || refused[0].Record != 3 || refused[0].Offset != offset4 || !strings.Contains(refused[0].Reason, "not JSON") {
			t.Errorf("%s: first refusal %+v, want line 4 (record 3, byte %d), not JSON", name, refused[0], offset4)
		}
		if refused[1].Line != 5 || !strings.Contains(refused[1].Reason, "entity") {
			t.Errorf("%s: second refusal %+v, want line 5, for its entity", name, refused[1])
		}
		heartlogtest.WaitPostgresAcked(t, s)
		if n := s.Count(t, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID); n != 3 {
			t.Errorf("%s: %d rows, want 3", name, n)
		}
		if n := s.Count(t, "SELECT count(*) FROM heartbeats WHERE user_id = $1 AND editor = 'Zed' AND extra = '{\"k\":[1,2]}'::jsonb", u.ID); n != 1 {
			t.Errorf("%s: the line's editor and extra fields did not come in as a day file holds them", name)
		}
		// Exported from Postgres (a hot day; jsonb rewrites extra) and
		// imported again, every heartbeat has the id it had.
		full, err := s.Users.ByID(context.Background(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if res, err := e.export.Export(context.Background(), &out, full, time.Time{}, time.Time{}, nil); err != nil || res.Heartbeats != 3 {
			t.Fatalf("%s: export: %+v %v", name, res, err)
		}
		if res, _, err := importLines(t, e, u, out.Bytes()); err != nil || res.Imported != 0 || res.Duplicates != 3 {
			t.Errorf("%s: the export of a hot day imported again: %+v %v; want 3 duplicates", name, res, err)
		}
	}
}

// TestExportThenImport exports the imported dump and imports it into a new
// user: the new user's day files hold the same heartbeats (but for the
// owner and the ids, which hash it), and imported into the first user
// again the export is recognised heartbeat for heartbeat (the same ids).
// Over HTTP the export needs a key and gives only the key's own user.
func TestExportThenImport(t *testing.T) {
	e := start(t, nil)
	s := e.svc
	alice, aliceKey := s.CreateUser(t, "alice", "")
	if _, _, err := importFixture(t, e, alice); !errors.Is(err, dumps.ErrRefused) {
		t.Fatal(err)
	}
	heartlogtest.WaitPostgresAcked(t, s)
	days := fixtureDayList()
	for _, d := range days {
		s.CloseDay(t, dayTime(t, d), &e.stores)
	}
	alice, err := s.Users.ByID(context.Background(), alice.ID) // with its first day
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := e.export.Export(context.Background(), &out, alice, time.Time{}, time.Time{}, nil)
	if err != nil || res.Heartbeats != 17 {
		t.Fatalf("export: %+v %v, want 17 heartbeats", res, err)
	}

	// Into alice again: every heartbeat is one the log has.
	if res, _, err := importLines(t, e, alice, out.Bytes()); err != nil || res.Imported != 0 || res.Duplicates != 17 {
		t.Fatalf("export imported into its own user: %+v %v; want 17 duplicates, nothing new", res, err)
	}

	// Into bob: the days are closed, so the late path writes his files.
	bob, bobKey := s.CreateUser(t, "bob", "")
	if res, _, err := importLines(t, e, bob, out.Bytes()); err != nil || res.Imported != 17 {
		t.Fatalf("export imported into a new user: %+v %v", res, err)
	}
	heartlogtest.WaitAcked(t, s, "objects", "cache", "backup")
	af, bf := files(t, e.stores.Primary, alice, days...), files(t, e.stores.Primary, bob, days...)
	for _, d := range days {
		a, b := ownerless(t, af[d]), ownerless(t, bf[d])
		if a != b {
			t.Errorf("day %s: bob's file differs from alice's but for the owner:\n%s\n%s", d, a, b)
		}
	}

	// Over HTTP.
	get := func(path, key string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		return s.Do(t, req)
	}
	if resp, _ := get("/api/v1/users/current/heartbeats.ndjson", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("export without a key: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get("/api/v1/users/"+alice.ID+"/heartbeats.ndjson", bobKey); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob's key on alice's export: %d, want 403", resp.StatusCode)
	}
	if resp, body := get("/api/v1/users/current/heartbeats.ndjson?start=2024-13-01", aliceKey); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad start: %d %s, want 400", resp.StatusCode, body)
	}
	resp, body := get("/api/v1/users/current/heartbeats.ndjson", aliceKey)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("alice's export: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, out.Bytes()) {
		t.Fatalf("the HTTP export differs from heartlog export's (%d bytes, %d)", len(body), out.Len())
	}
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if !strings.Contains(line, `"user_id":"`+alice.ID+`"`) {
			t.Fatalf("alice's export holds a line of another user: %s", line)
		}
	}
	resp, body = get("/api/compat/wakatime/v1/users/current/heartbeats.ndjson?start=2021-07-15&end=2021-07-15", bobKey)
	if n := strings.Count(string(body), "\n"); resp.StatusCode != http.StatusOK || n != 7 || strings.Contains(string(body), alice.ID) {
		t.Fatalf("bob's export of 2021-07-15: %d, %d lines, want his 7", resp.StatusCode, n)
	}
}

// ownerless is a day file's lines without id and user_id, which hash and
// name the owner: what must be equal between two users' copies.
func ownerless(t *testing.T, data []byte) string {
	t.Helper()
	hbs := decode(t, data)
	var lines []string
	for _, hb := range hbs {
		hb.Id, hb.UserId = "x", ""
		line, err := dayfile.AppendLine(nil, hb)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(line))
	}
	slices.Sort(lines)
	return strings.Join(lines, "")
}

// TestImportCapsAUserDayInBytes: an import, like ingest, refuses the
// heartbeats that would grow a user-day's file past DayMaxBytes
// (HEARTLOG_DAY_MAX_BYTES), each with the reason, and imports the rest;
// another day is not held back.
func TestImportCapsAUserDayInBytes(t *testing.T) {
	e := start(t, nil)
	u, _ := e.svc.CreateUser(t, "big-days", "")
	at := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2).Add(9 * time.Hour).Unix()
	branch := strings.Repeat("b", 1000) // over 1 KB a day-file line
	var lines []string
	for i := range 5 {
		lines = append(lines, fmt.Sprintf(`{"entity":"/src/f%d.go","type":"file","time":%d,"branch":"%s"}`, i, at+int64(i)*60, branch))
	}
	lines = append(lines, fmt.Sprintf(`{"entity":"/src/other.go","type":"file","time":%d,"branch":"%s"}`, at-86400, branch))
	var refused []dumps.Refusal
	res, err := dumps.Import(context.Background(), e.svc.JS, e.svc.Streams, strings.NewReader(strings.Join(lines, "\n")), dumps.Options{
		User: u, Format: dumps.NDJSON, DayMaxBytes: 3700, Refused: func(r dumps.Refusal) { refused = append(refused, r) }})
	if !errors.Is(err, dumps.ErrRefused) || res.Imported != 4 || res.Refused != 2 {
		t.Fatalf("%+v %v: want 3 of the day's 5 heartbeats and the other day's imported, 2 refused", res, err)
	}
	for _, r := range refused {
		if r.Line < 4 || r.Line > 5 || !strings.Contains(r.Reason, "HEARTLOG_DAY_MAX_BYTES") {
			t.Errorf("refusal %+v: want lines 4 and 5, for the day's bytes", r)
		}
	}
}
