package dayfile_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

func ptr[T any](v T) *T { return &v }

const (
	userA    = "00000000-0000-4000-8000-000000000001"
	uaVSCode = "wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 vscode/1.90.0 vscode-wakatime/24.5.0"
)

// withID sets the heartbeat's id as the API does.
func withID(hb *heartlogv1.Heartbeat) *heartlogv1.Heartbeat {
	hb.Id = heartbeat.ID(hb)
	return hb
}

// realisticDay is n heartbeats of one user's day, as the API stores them:
// a few files of one project edited through the day, every field a WakaTime
// plugin sends and the fields the API adds (id, user, editor, plugin,
// operating system, machine). The lines average about 640 bytes.
func realisticDay(n int, seed uint64) []*heartlogv1.Heartbeat {
	r := rand.New(rand.NewPCG(seed, 1))
	files := []string{"main.go", "internal/store/store.go", "internal/store/store_test.go", "cmd/heartlog/serve.go",
		"api/wakatime/routes.go", "README.md", "go.mod", "processors/objects/objects.go", "schema/dayfile/encode.go"}
	langs := map[string]string{"go": "Go", "md": "Markdown", "mod": "Go Module"}
	// Each file keeps its length, and the cursor wanders near where it was.
	lines := make([]int32, len(files))
	linenos := make([]int32, len(files))
	for i := range files {
		lines[i] = int32(100 + r.IntN(900))
		linenos[i] = 1 + r.Int32N(lines[i])
	}
	t := 1795564800.0 + 8*3600 // 08:00 UTC
	out := make([]*heartlogv1.Heartbeat, n)
	for i := range out {
		t += float64(r.IntN(120)) + float64(r.IntN(1_000_000))/1e6
		fi := r.IntN(len(files))
		f := files[fi]
		linenos[fi] = max(1, min(lines[fi], linenos[fi]+r.Int32N(21)-10))
		ext := f[bytes.LastIndexByte([]byte(f), '.')+1:]
		hb := &heartlogv1.Heartbeat{
			UserId:           userA,
			Entity:           "/home/dev/src/github.com/example/heartlog/" + f,
			Type:             "file",
			Category:         "coding",
			Time:             t,
			Project:          "heartlog",
			ProjectRootCount: ptr[int32](6),
			Branch:           "feature/day-files",
			Language:         langs[ext],
			Lines:            ptr(lines[fi]),
			Lineno:           ptr(linenos[fi]),
			Cursorpos:        ptr(int32(1 + r.IntN(80))),
			IsWrite:          ptr(r.IntN(4) == 0),
			Editor:           "VS Code",
			Plugin:           "vscode-wakatime/24.5.0",
			OperatingSystem:  "Linux",
			Machine:          "devbox",
			UserAgent:        uaVSCode,
		}
		if ext == "go" {
			hb.Dependencies = []string{"github.com/nats-io/nats.go", "github.com/klauspost/compress"}
		}
		if *hb.IsWrite {
			hb.LineAdditions = ptr(int32(r.IntN(10)))
			hb.LineDeletions = ptr(int32(r.IntN(5)))
			lines[fi] += *hb.LineAdditions - *hb.LineDeletions
		}
		out[i] = withID(hb)
	}
	return out
}

// wakatimeDay is realisticDay with only what a plugin sends, and no
// dependencies, plus the id: some 365 bytes a line, the size DESIGN.md
// measured (200 heartbeats, about 73 KB of JSON).
func wakatimeDay(n int, seed uint64) []*heartlogv1.Heartbeat {
	out := realisticDay(n, seed)
	for _, hb := range out {
		hb.UserId, hb.Editor, hb.Plugin, hb.OperatingSystem, hb.Machine = "", "", "", "", ""
		hb.Dependencies = nil
		hb.Entity = strings.TrimPrefix(hb.Entity, "/home/dev/src/github.com/example")
	}
	return out
}

// refHeartbeat is the format written with encoding/json: the reference that
// Encode's hand-written encoder must match byte for byte.
type refHeartbeat struct {
	ID               string          `json:"id"`
	UserID           string          `json:"user_id,omitempty"`
	Entity           string          `json:"entity,omitempty"`
	Type             string          `json:"type,omitempty"`
	Category         string          `json:"category,omitempty"`
	Time             float64         `json:"time"`
	Project          string          `json:"project,omitempty"`
	ProjectRootCount *int32          `json:"project_root_count,omitempty"`
	Branch           string          `json:"branch,omitempty"`
	Language         string          `json:"language,omitempty"`
	Dependencies     []string        `json:"dependencies,omitempty"`
	Lines            *int32          `json:"lines,omitempty"`
	LineAdditions    *int32          `json:"line_additions,omitempty"`
	LineDeletions    *int32          `json:"line_deletions,omitempty"`
	Lineno           *int32          `json:"lineno,omitempty"`
	Cursorpos        *int32          `json:"cursorpos,omitempty"`
	IsWrite          *bool           `json:"is_write,omitempty"`
	AiLineChanges    *int32          `json:"ai_line_changes,omitempty"`
	HumanLineChanges *int32          `json:"human_line_changes,omitempty"`
	Editor           string          `json:"editor,omitempty"`
	Plugin           string          `json:"plugin,omitempty"`
	OperatingSystem  string          `json:"operating_system,omitempty"`
	Machine          string          `json:"machine,omitempty"`
	UserAgent        string          `json:"user_agent,omitempty"`
	Extra            json.RawMessage `json:"extra,omitempty"`
}

// refNDJSON encodes hbs with encoding/json (HTML escaping off), one line each.
func refNDJSON(t testing.TB, hbs []*heartlogv1.Heartbeat) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, hb := range hbs {
		r := refHeartbeat{
			ID: hb.Id, UserID: hb.UserId, Entity: hb.Entity, Type: hb.Type, Category: hb.Category,
			Time: hb.Time, Project: hb.Project, ProjectRootCount: hb.ProjectRootCount, Branch: hb.Branch,
			Language: hb.Language, Dependencies: hb.Dependencies, Lines: hb.Lines,
			LineAdditions: hb.LineAdditions, LineDeletions: hb.LineDeletions, Lineno: hb.Lineno,
			Cursorpos: hb.Cursorpos, IsWrite: hb.IsWrite, AiLineChanges: hb.AiLineChanges,
			HumanLineChanges: hb.HumanLineChanges, Editor: hb.Editor, Plugin: hb.Plugin,
			OperatingSystem: hb.OperatingSystem, Machine: hb.Machine, UserAgent: hb.UserAgent,
			Extra: hb.ExtraJson,
		}
		if err := enc.Encode(r); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
	}
	return buf.Bytes()
}

// gunzip returns the content of a day file.
func gunzip(t testing.TB, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gzipWriters are reused: a new compressor allocates about a megabyte, which
// made the fuzz target slow.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// gzipBytes compresses b with the standard library, as another writer of
// day files would.
func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// equalSets fails unless got and want hold equal heartbeats in one order.
func equalSets(t testing.TB, got, want []*heartlogv1.Heartbeat) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d heartbeats, want %d", len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("heartbeat %d:\n got %v\nwant %v", i, describe(got[i]), describe(want[i]))
		}
	}
}

func describe(hb *heartlogv1.Heartbeat) string {
	if hb == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%v (extra %q)", hb, hb.ExtraJson)
}
