package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"

	"github.com/jackc/pgx/v5/pgxpool"
)

// fixtureKey is the API key in the fixtures' Authorization header.
const fixtureKey = "00000000-0000-4000-8000-000000000001"

type bulkResponse struct {
	Responses [][2]json.RawMessage `json:"responses"`
}

type itemData struct {
	Data struct {
		ID     string  `json:"id"`
		Entity string  `json:"entity"`
		Type   string  `json:"type"`
		Time   float64 `json:"time"`
	} `json:"data"`
	Error string `json:"error"`
}

func decodeBulk(t *testing.T, body []byte) []itemData {
	t.Helper()
	var br bulkResponse
	if err := json.Unmarshal(body, &br); err != nil {
		t.Fatalf("response %s is not {\"responses\": [...]}: %v", body, err)
	}
	out := make([]itemData, len(br.Responses))
	for i, pair := range br.Responses {
		var code int
		if err := json.Unmarshal(pair[1], &code); err != nil {
			t.Fatalf("responses[%d][1] = %s, want a status code", i, pair[1])
		}
		if err := json.Unmarshal(pair[0], &out[i]); err != nil {
			t.Fatalf("responses[%d][0] = %s: %v", i, pair[0], err)
		}
		if (code == http.StatusCreated) != (out[i].Data.ID != "") || (code == http.StatusBadRequest) != (out[i].Error != "") {
			t.Fatalf("responses[%d] = [%s, %d]: status and body disagree", i, pair[0], code)
		}
	}
	return out
}

// row is a stored heartbeat as a dashboard would read it back.
type row struct {
	Partition, ID, Entity, Type, Category, Project, Branch, Language string
	Editor, Plugin, OS, Machine, UserAgent                           string
	Time                                                             float64
	Dependencies                                                     []string
	Lines, Lineno, Cursorpos, Additions, Deletions, RootCount        *int32
	IsWrite                                                          *bool
}

func readRows(t *testing.T, svc *heartlogtest.Service, userID string) map[string]row {
	t.Helper()
	out := map[string]row{}
	for _, pool := range svc.DayPools() {
		readRowsOf(t, pool, userID, out)
	}
	return out
}

// readRowsOf adds the user's rows in one database to out.
func readRowsOf(t *testing.T, pool *pgxpool.Pool, userID string, out map[string]row) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT tableoid::regclass::text, id, entity, type, category,
		project, branch, language, editor, plugin, operating_system, machine, user_agent, time, dependencies,
		lines, lineno, cursorpos, line_additions, line_deletions, project_root_count, is_write
		FROM heartbeats WHERE user_id = $1`, userID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.Partition, &r.ID, &r.Entity, &r.Type, &r.Category, &r.Project, &r.Branch, &r.Language,
			&r.Editor, &r.Plugin, &r.OS, &r.Machine, &r.UserAgent, &r.Time, &r.Dependencies,
			&r.Lines, &r.Lineno, &r.Cursorpos, &r.Additions, &r.Deletions, &r.RootCount, &r.IsWrite); err != nil {
			t.Fatal(err)
		}
		out[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// sent is a heartbeat as the fixture carries it.
type sent struct {
	Entity           string   `json:"entity"`
	Type             string   `json:"type"`
	Category         string   `json:"category"`
	Time             float64  `json:"time"`
	Project          string   `json:"project"`
	Branch           string   `json:"branch"`
	Language         string   `json:"language"`
	Dependencies     []string `json:"dependencies"`
	Lines            *int32   `json:"lines"`
	Lineno           *int32   `json:"lineno"`
	Cursorpos        *int32   `json:"cursorpos"`
	LineAdditions    *int32   `json:"line_additions"`
	LineDeletions    *int32   `json:"line_deletions"`
	ProjectRootCount *int32   `json:"project_root_count"`
	IsWrite          *bool    `json:"is_write"`
	UserAgent        string   `json:"user_agent"`
}

func TestFixturesAreStoredWithEveryField(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	u, _ := svc.CreateUser(t, "fixture", fixtureKey)

	total := 0
	for _, fx := range heartlogtest.LoadFixtures(t) {
		t.Run(fx.Name, func(t *testing.T) {
			req, err := http.NewRequest(fx.Method, svc.URL+fx.Path, bytes.NewReader(fx.Body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = fx.Header.Clone()
			resp, body := svc.Do(t, req)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d, body %s; want 201", resp.StatusCode, body)
			}
			var want []sent
			if err := json.Unmarshal(fx.Body, &want); err != nil {
				t.Fatal(err)
			}
			items := decodeBulk(t, body)
			if len(items) != len(want) {
				t.Fatalf("%d responses for %d heartbeats", len(items), len(want))
			}
			total += len(want)
			svc.WaitCount(t, total, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
			stored := readRows(t, svc, u.ID)
			for i, w := range want {
				got := items[i].Data
				if got.Entity != w.Entity || got.Time != w.Time || got.Type != w.Type {
					t.Errorf("responses[%d] = %+v, want entity %q type %q time %v (request order)", i, got, w.Entity, w.Type, w.Time)
				}
				r, ok := stored[got.ID]
				if !ok {
					t.Fatalf("heartbeat %d (id %s) not in Postgres", i, got.ID)
				}
				checkRow(t, r, w, fx)
			}
		})
	}
}

func checkRow(t *testing.T, r row, w sent, fx heartlogtest.Fixture) {
	t.Helper()
	day := time.Unix(int64(w.Time), 0).UTC().Format("20060102")
	if r.Partition != "heartbeats_"+day {
		t.Errorf("%s: stored in %s, want heartbeats_%s", w.Entity, r.Partition, day)
	}
	category := w.Category
	if category == "" {
		category = "coding"
	}
	eq := func(field string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %s = %v, want %v", w.Entity, field, got, want)
		}
	}
	eq("entity", r.Entity, w.Entity)
	eq("type", r.Type, w.Type)
	eq("category", r.Category, category)
	eq("project", r.Project, w.Project)
	eq("branch", r.Branch, w.Branch)
	eq("language", r.Language, w.Language)
	eq("user_agent", r.UserAgent, w.UserAgent)
	eq("machine", r.Machine, fx.Header.Get("X-Machine-Name"))
	if math.Abs(r.Time-w.Time) != 0 {
		t.Errorf("%s: time = %v, want %v exactly", w.Entity, r.Time, w.Time)
	}
	if len(w.Dependencies) > 0 || len(r.Dependencies) > 0 {
		eq("dependencies", r.Dependencies, w.Dependencies)
	}
	for _, f := range []struct {
		name      string
		got, want *int32
	}{
		{"lines", r.Lines, w.Lines}, {"lineno", r.Lineno, w.Lineno}, {"cursorpos", r.Cursorpos, w.Cursorpos},
		{"line_additions", r.Additions, w.LineAdditions}, {"line_deletions", r.Deletions, w.LineDeletions},
		{"project_root_count", r.RootCount, w.ProjectRootCount},
	} {
		if (f.got == nil) != (f.want == nil) || (f.got != nil && *f.got != *f.want) {
			t.Errorf("%s: %s = %v, want %v", w.Entity, f.name, ptr(f.got), ptr(f.want))
		}
	}
	if (r.IsWrite == nil) != (w.IsWrite == nil) || (r.IsWrite != nil && *r.IsWrite != *w.IsWrite) {
		t.Errorf("%s: is_write = %v, want %v", w.Entity, ptr(r.IsWrite), ptr(w.IsWrite))
	}
	ua := fx.Header.Get("User-Agent")
	if strings.Contains(ua, "vscode/") && (r.Editor != "VS Code" || r.Plugin != "vscode-wakatime/24.5.0") {
		t.Errorf("editor, plugin = %q, %q; want VS Code, vscode-wakatime/24.5.0", r.Editor, r.Plugin)
	}
	if strings.Contains(ua, "vim/") && (r.Editor != "Vim" || r.Plugin != "vim-wakatime/11.0.0") {
		t.Errorf("editor, plugin = %q, %q; want Vim, vim-wakatime/11.0.0", r.Editor, r.Plugin)
	}
	if r.OS != "Linux" {
		t.Errorf("operating_system = %q, want Linux", r.OS)
	}
}

func ptr[T any](p *T) any {
	if p == nil {
		return "absent"
	}
	return *p
}
