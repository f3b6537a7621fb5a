package heartbeat_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// The real wakatime-cli requests in shared/fixtures/wakatime are contract
// data: heartlog must accept each of them exactly as sent.
var fixtureFiles = []string{"bulk-single.http", "bulk-dependencies.http", "bulk-offline-sync.http"}

// fixture is one recorded request: its headers and its JSON body.
type fixture struct {
	name   string
	header http.Header
	body   []byte
}

// fixturesDir finds shared/fixtures/wakatime: $HEARTLOG_FIXTURES if set,
// else ../shared/fixtures/wakatime next to the directory that holds go.mod.
// The fixtures are the contract these tests check, so not finding them is a
// failure, never a skip.
func fixturesDir(tb testing.TB) string {
	tb.Helper()
	if dir := os.Getenv("HEARTLOG_FIXTURES"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, fixtureFiles[0])); err != nil {
			tb.Fatalf("HEARTLOG_FIXTURES=%s does not hold the WakaTime fixtures: %v", dir, err)
		}
		return dir
	}
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatalf("cannot find the WakaTime fixtures: %v", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			fixtures := filepath.Join(dir, "..", "shared", "fixtures", "wakatime")
			if _, err := os.Stat(filepath.Join(fixtures, fixtureFiles[0])); err != nil {
				tb.Fatalf("WakaTime fixtures not found at %s (found go.mod in %s); set HEARTLOG_FIXTURES to their directory: %v", fixtures, dir, err)
			}
			return fixtures
		}
		if filepath.Dir(dir) == dir {
			tb.Fatalf("WakaTime fixtures not found: no go.mod above %s; set HEARTLOG_FIXTURES to their directory", wd)
		}
	}
}

// loadFixture reads one recorded request: request line, headers, a blank
// line, then the body. It accepts CRLF as well as LF line ends.
func loadFixture(tb testing.TB, name string) fixture {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(fixturesDir(tb), name))
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	head, body, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		tb.Fatalf("fixture %s: no blank line between headers and body", name)
	}
	lines := strings.Split(string(head), "\n")
	if !strings.HasPrefix(lines[0], "POST ") {
		tb.Fatalf("fixture %s: request line %q is not a POST", name, lines[0])
	}
	header := http.Header{}
	for _, line := range lines[1:] {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			tb.Fatalf("fixture %s: bad header line %q", name, line)
		}
		header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		tb.Fatalf("fixture %s: empty body", name)
	}
	return fixture{name: name, header: header, body: body}
}

func ptr[T any](v T) *T { return &v }

const (
	uaVSCode  = "wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 vscode/1.90.0 vscode-wakatime/24.5.0"
	uaVim     = "wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 vim/9.0 vim-wakatime/11.0.0"
	uaUnknown = "wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 Unknown/0"
)

// wantFixtures is every field of every heartbeat in the fixtures, as the
// client sent it.
var wantFixtures = map[string][]*heartlogv1.Heartbeat{
	"bulk-single.http": {{
		Entity: "/home/dev/proj/myrepo/main.go", Type: "file", Category: "coding",
		Time: 1795630654.4452016, Project: "myrepo", ProjectRootCount: ptr[int32](4),
		Branch: "feature/x", Language: "Go", Lines: ptr[int32](5),
		LineAdditions: ptr[int32](2), LineDeletions: ptr[int32](1),
		Lineno: ptr[int32](3), Cursorpos: ptr[int32](7), IsWrite: ptr(true),
		UserAgent: uaVSCode,
	}},
	"bulk-dependencies.http": {{
		Entity: "/home/dev/proj/myrepo/app.py", Type: "file", Category: "coding",
		Time: 1795630675.620797, Project: "myrepo", ProjectRootCount: ptr[int32](4),
		Branch: "feature/x", Language: "Python", Dependencies: []string{"requests", "flask"},
		Lines: ptr[int32](3), UserAgent: uaUnknown,
	}},
	"bulk-offline-sync.http": {
		{
			Entity: "/home/dev/proj/myrepo/main.go", Type: "file", Category: "coding",
			Time: 1795630671, Project: "myrepo", ProjectRootCount: ptr[int32](4),
			Branch: "feature/x", Language: "Go", Lines: ptr[int32](5), UserAgent: uaVim,
		},
		{
			Entity: "/home/dev/proj/myrepo/main.go", Type: "file", Category: "debugging",
			Time: 1795630611, Project: "myrepo", ProjectRootCount: ptr[int32](4),
			Branch: "feature/x", Language: "Go", Lines: ptr[int32](5), Lineno: ptr[int32](1),
			IsWrite: ptr(false), UserAgent: uaVim,
		},
		{Entity: "github.com", Type: "domain", Category: "browsing", Time: 1795630641, UserAgent: uaVim},
		{Entity: "Slack", Type: "app", Category: "communicating", Project: "p2", Time: 1795630651, UserAgent: uaVim},
	},
}

func TestDecodeBulkFixturesKeepEveryField(t *testing.T) {
	for _, name := range fixtureFiles {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			got, err := heartbeat.DefaultLimits.DecodeBulk(fx.body)
			if err != nil {
				t.Fatalf("DecodeBulk: %v", err)
			}
			want := wantFixtures[name]
			if len(got) != len(want) {
				t.Fatalf("decoded %d heartbeats, want %d", len(got), len(want))
			}
			for i, d := range got {
				if d.Err != nil {
					t.Errorf("heartbeat %d: unexpected error %v", i, d.Err)
					continue
				}
				assertHeartbeat(t, i, d.Heartbeat, want[i])
			}
		})
	}
}

// A fixture's heartbeats sent one at a time to POST .../heartbeats decode
// exactly as they do in the bulk array.
func TestDecodeOneFixtureItems(t *testing.T) {
	for _, name := range fixtureFiles {
		t.Run(name, func(t *testing.T) {
			var items []json.RawMessage
			if err := json.Unmarshal(loadFixture(t, name).body, &items); err != nil {
				t.Fatalf("fixture body is not a JSON array: %v", err)
			}
			for i, item := range items {
				d, err := heartbeat.DefaultLimits.DecodeOne(item)
				if err != nil {
					t.Fatalf("heartbeat %d: DecodeOne: %v", i, err)
				}
				if d.Err != nil {
					t.Fatalf("heartbeat %d: unexpected error %v", i, d.Err)
				}
				assertHeartbeat(t, i, d.Heartbeat, wantFixtures[name][i])
			}
		})
	}
}

func assertHeartbeat(t *testing.T, i int, got, want *heartlogv1.Heartbeat) {
	t.Helper()
	if got == nil {
		t.Errorf("heartbeat %d: nil heartbeat without an error", i)
		return
	}
	// proto.Equal compares optional fields by presence too: an absent
	// is_write or lineno differs from false or 0.
	if !proto.Equal(got, want) {
		t.Errorf("heartbeat %d:\n got: %s\nwant: %s", i, prototext.Format(got), prototext.Format(want))
	}
}

func TestDecodePresenceOfOptionalFields(t *testing.T) {
	tests := []struct {
		name      string
		fields    string
		isWrite   *bool
		lineno    *int32
		lines     *int32
		cursorpos *int32
	}{
		{name: "absent", fields: ``},
		{name: "null", fields: `,"is_write":null,"lineno":null,"lines":null,"cursorpos":null`},
		{name: "false and zero", fields: `,"is_write":false,"lineno":0,"lines":0,"cursorpos":0`,
			isWrite: ptr(false), lineno: ptr[int32](0), lines: ptr[int32](0), cursorpos: ptr[int32](0)},
		{name: "true and values", fields: `,"is_write":true,"lineno":12,"lines":300,"cursorpos":-1`,
			isWrite: ptr(true), lineno: ptr[int32](12), lines: ptr[int32](300), cursorpos: ptr[int32](-1)},
		{name: "integral floats", fields: `,"lineno":12.0,"lines":3e2`,
			lineno: ptr[int32](12), lines: ptr[int32](300)},
		{name: "int32 bounds", fields: `,"lineno":2147483647,"cursorpos":-2147483648`,
			lineno: ptr[int32](2147483647), cursorpos: ptr[int32](-2147483648)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := decodeOK(t, `{"entity":"a.go","time":1795630654`+tt.fields+`}`)
			checkOpt(t, "is_write", hb.IsWrite, tt.isWrite)
			checkOpt(t, "lineno", hb.Lineno, tt.lineno)
			checkOpt(t, "lines", hb.Lines, tt.lines)
			checkOpt(t, "cursorpos", hb.Cursorpos, tt.cursorpos)
		})
	}
}

func checkOpt[T comparable](t *testing.T, field string, got, want *T) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil:
		t.Errorf("%s: absent, want %v", field, *want)
	case want == nil:
		t.Errorf("%s: %v, want absent", field, *got)
	case *got != *want:
		t.Errorf("%s: %v, want %v", field, *got, *want)
	}
}

// decodeOK decodes one heartbeat through the bulk endpoint and fails the
// test if it is refused.
func decodeOK(t *testing.T, item string) *heartlogv1.Heartbeat {
	t.Helper()
	got, err := heartbeat.DefaultLimits.DecodeBulk([]byte("[" + item + "]"))
	if err != nil {
		t.Fatalf("DecodeBulk(%s): %v", item, err)
	}
	if len(got) != 1 {
		t.Fatalf("DecodeBulk(%s): %d heartbeats, want 1", item, len(got))
	}
	if got[0].Err != nil {
		t.Fatalf("DecodeBulk(%s): unexpected error %v", item, got[0].Err)
	}
	return got[0].Heartbeat
}

func TestDecodeKnownAIFields(t *testing.T) {
	hb := decodeOK(t, `{"entity":"a.go","time":1795630654,"ai_line_changes":12,"human_line_changes":3}`)
	checkOpt(t, "ai_line_changes", hb.AiLineChanges, ptr[int32](12))
	checkOpt(t, "human_line_changes", hb.HumanLineChanges, ptr[int32](3))
	if hb.ExtraJson != nil {
		t.Errorf("known AI fields leaked into ExtraJson: %s", hb.ExtraJson)
	}
}

func TestDecodeKeepsUnknownFieldsAsCanonicalJSON(t *testing.T) {
	tests := []struct {
		name   string
		fields string // appended to a valid heartbeat
		want   string // ExtraJson; "" for none
	}{
		{name: "none", fields: ``, want: ``},
		{name: "object value", fields: `,"new_field": {"a":1}`, want: `{"new_field":{"a":1}}`},
		{name: "keys sorted", fields: `,"zeta":"z","alpha":[1, 2],"mid":null`,
			want: `{"alpha":[1,2],"mid":null,"zeta":"z"}`},
		{name: "whitespace removed at every level", fields: `,"new_field" :  { "a" : [ 1 , { "b" : true } ] }`,
			want: `{"new_field":{"a":[1,{"b":true}]}}`},
		{name: "numbers and strings kept as sent", fields: `,"n":1.50,"big":12345678901234567890,"s":"é<&"`,
			want: `{"big":12345678901234567890,"n":1.50,"s":"é<&"}`},
		{name: "id and user_id are not kept", fields: `,"id":"x","user_id":"y","other":1`, want: `{"other":1}`},
		{name: "nested keys sorted", fields: `,"f":{"b":1,"a":{"d":2,"c":3}}`, want: `{"f":{"a":{"c":3,"d":2},"b":1}}`},
		{name: "lone surrogate becomes U+FFFD", fields: `,"s":"x\ud800y"`, want: "{\"s\":\"x\uFFFDy\"}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := decodeOK(t, `{"entity":"a.go","time":1795630654`+tt.fields+`}`)
			if string(hb.ExtraJson) != tt.want {
				t.Errorf("ExtraJson = %q, want %q", hb.ExtraJson, tt.want)
			}
			if hb.Entity != "a.go" || hb.Time != 1795630654 {
				t.Errorf("known fields lost next to unknown ones: entity %q, time %v", hb.Entity, hb.Time)
			}
		})
	}
}

// The same heartbeat resent with another key order or other whitespace
// keeps the same ExtraJson and so the same id.
func TestDecodeUnknownFieldsIndependentOfKeyOrderAndWhitespace(t *testing.T) {
	bodies := []string{
		`[{"entity":"a.go","time":1795630654,"new_field":{"a":1},"tool":"x","list":[1,2]}]`,
		`[{"list":[1,2],"tool":"x","new_field":{"a":1},"time":1795630654,"entity":"a.go"}]`,
		"[ {\n  \"tool\" : \"x\",\n  \"new_field\" : { \"a\" : 1 },\n  \"entity\" : \"a.go\",\n  \"list\" : [ 1 ,2 ],\n  \"time\" : 1795630654\n} ]\n",
	}
	const want = `{"list":[1,2],"new_field":{"a":1},"tool":"x"}`
	var ids []string
	for _, body := range bodies {
		got, err := heartbeat.DefaultLimits.DecodeBulk([]byte(body))
		if err != nil || len(got) != 1 || got[0].Err != nil {
			t.Fatalf("DecodeBulk(%s) = %v, %v", body, got, err)
		}
		hb := got[0].Heartbeat
		if string(hb.ExtraJson) != want {
			t.Errorf("DecodeBulk(%s): ExtraJson = %s, want %s", body, hb.ExtraJson, want)
		}
		if err := heartbeat.DefaultLimits.Prepare(hb, testOrigin); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		ids = append(ids, hb.Id)
	}
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Errorf("ids differ for the same heartbeat: %v", ids)
			break
		}
	}
}

func TestDecodeIgnoresClientIDAndUserID(t *testing.T) {
	const item = `{"id":"0123456789abcdef0123456789abcdef","user_id":"mallory","entity":"a.go","time":1795630654}`
	hb := decodeOK(t, item)
	if hb.Id != "" || hb.UserId != "" {
		t.Errorf("client chose id %q and user %q; both must be ignored", hb.Id, hb.UserId)
	}
	if hb.ExtraJson != nil {
		t.Errorf("id/user_id kept in ExtraJson: %s", hb.ExtraJson)
	}
	d, err := heartbeat.DefaultLimits.DecodeOne([]byte(item))
	if err != nil || d.Err != nil {
		t.Fatalf("DecodeOne: %v, %v", err, d.Err)
	}
	if d.Heartbeat.Id != "" || d.Heartbeat.UserId != "" {
		t.Errorf("DecodeOne: client chose id %q and user %q", d.Heartbeat.Id, d.Heartbeat.UserId)
	}
}

func TestDecodeBulkRefusesMalformedBody(t *testing.T) {
	tests := []struct{ name, body string }{
		{"empty", ``},
		{"whitespace", " \n"},
		{"truncated array", `[{"entity":"a.go"}`},
		{"truncated object", `[{"entity":`},
		{"trailing comma", `[{"entity":"a.go"},]`},
		{"object instead of array", `{"entity":"a.go","time":1795630654}`},
		{"string", `"heartbeats"`},
		{"number", `42`},
		{"null", `null`},
		{"two arrays", `[] []`},
		{"not JSON", `entity=a.go&time=1795630654`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := heartbeat.DefaultLimits.DecodeBulk([]byte(tt.body))
			if !errors.Is(err, heartbeat.ErrMalformed) {
				t.Fatalf("DecodeBulk(%q) error = %v, want ErrMalformed", tt.body, err)
			}
			if got != nil {
				t.Errorf("DecodeBulk(%q) returned %d heartbeats with a whole-request error", tt.body, len(got))
			}
		})
	}
}

func TestDecodeOneRefusesMalformedBody(t *testing.T) {
	tests := []struct{ name, body string }{
		{"empty", ``},
		{"array", `[{"entity":"a.go","time":1795630654}]`},
		{"truncated object", `{"entity":"a.go"`},
		{"trailing garbage", `{"entity":"a.go"} x`},
		{"two objects", `{}{}`},
		{"null", `null`},
		{"string", `"a.go"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := heartbeat.DefaultLimits.DecodeOne([]byte(tt.body)); !errors.Is(err, heartbeat.ErrMalformed) {
				t.Fatalf("DecodeOne(%q) error = %v, want ErrMalformed", tt.body, err)
			}
		})
	}
}

func TestDecodeBulkEmptyArray(t *testing.T) {
	got, err := heartbeat.DefaultLimits.DecodeBulk([]byte(` [ ] `))
	if err != nil || len(got) != 0 {
		t.Fatalf("DecodeBulk([]) = %d heartbeats, %v; want none and no error", len(got), err)
	}
}

func TestDecodeBulkTooMany(t *testing.T) {
	bulk := func(n int) []byte {
		return []byte("[" + strings.TrimSuffix(strings.Repeat(`{"entity":"a.go","time":1795630654},`, n), ",") + "]")
	}
	small := heartbeat.DefaultLimits
	small.MaxHeartbeats = 3
	tests := []struct {
		name    string
		limits  heartbeat.Limits
		n       int
		tooMany bool
	}{
		{"default limit reached", heartbeat.DefaultLimits, 1000, false},
		{"default limit exceeded", heartbeat.DefaultLimits, 1001, true},
		{"custom limit reached", small, 3, false},
		{"custom limit exceeded", small, 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.limits.DecodeBulk(bulk(tt.n))
			if !tt.tooMany {
				if err != nil || len(got) != tt.n {
					t.Fatalf("DecodeBulk(%d heartbeats) = %d, %v", tt.n, len(got), err)
				}
				return
			}
			if !errors.Is(err, heartbeat.ErrTooMany) {
				t.Fatalf("DecodeBulk(%d heartbeats) error = %v, want ErrTooMany", tt.n, err)
			}
			if errors.Is(err, heartbeat.ErrMalformed) {
				t.Errorf("too many heartbeats reported as malformed: %v", err)
			}
		})
	}
}

// A heartbeat with a field of the wrong type is refused on its own, with
// an error that names the field; the rest of the request still decodes.
func TestDecodeRefusesWrongFieldTypes(t *testing.T) {
	tests := []struct {
		name  string
		item  string
		field string
	}{
		{"lineno string", `{"entity":"a.go","time":1795630654,"lineno":"x"}`, "lineno"},
		{"lineno fraction", `{"entity":"a.go","time":1795630654,"lineno":1.5}`, "lineno"},
		{"lineno over int32", `{"entity":"a.go","time":1795630654,"lineno":2147483648}`, "lineno"},
		{"lines under int32", `{"entity":"a.go","time":1795630654,"lines":-2147483649}`, "lines"},
		{"cursorpos object", `{"entity":"a.go","time":1795630654,"cursorpos":{}}`, "cursorpos"},
		{"project_root_count string", `{"entity":"a.go","time":1795630654,"project_root_count":"4"}`, "project_root_count"},
		{"line_additions bool", `{"entity":"a.go","time":1795630654,"line_additions":true}`, "line_additions"},
		{"ai_line_changes string", `{"entity":"a.go","time":1795630654,"ai_line_changes":"3"}`, "ai_line_changes"},
		{"is_write string", `{"entity":"a.go","time":1795630654,"is_write":"yes"}`, "is_write"},
		{"is_write number", `{"entity":"a.go","time":1795630654,"is_write":1}`, "is_write"},
		{"time string", `{"entity":"a.go","time":"abc"}`, "time"},
		{"time numeric string", `{"entity":"a.go","time":"1795630654"}`, "time"},
		{"time bool", `{"entity":"a.go","time":true}`, "time"},
		{"dependencies number", `{"entity":"a.go","time":1795630654,"dependencies":5}`, "dependencies"},
		{"dependencies of numbers", `{"entity":"a.go","time":1795630654,"dependencies":[1,2]}`, "dependencies"},
		{"dependencies string", `{"entity":"a.go","time":1795630654,"dependencies":"flask"}`, "dependencies"},
		{"entity number", `{"entity":3,"time":1795630654}`, "entity"},
		{"project array", `{"entity":"a.go","time":1795630654,"project":["p"]}`, "project"},
		{"branch bool", `{"entity":"a.go","time":1795630654,"branch":false}`, "branch"},
		{"user_agent object", `{"entity":"a.go","time":1795630654,"user_agent":{}}`, "user_agent"},
		{"item is a number", `5`, "heartbeat"},
		{"item is a string", `"a.go"`, "heartbeat"},
		{"item is an array", `[{"entity":"a.go"}]`, "heartbeat"},
		{"item is null", `null`, "heartbeat"},
		{"item is a bool", `true`, "heartbeat"},
	}
	const good = `{"entity":"b.go","time":1795630654}`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := heartbeat.DefaultLimits.DecodeBulk([]byte("[" + tt.item + "," + good + "]"))
			if err != nil {
				t.Fatalf("one bad heartbeat failed the whole request: %v", err)
			}
			if len(got) != 2 {
				t.Fatalf("decoded %d heartbeats, want 2", len(got))
			}
			assertFieldError(t, got[0].Err, tt.field)
			if got[0].Heartbeat != nil {
				t.Errorf("refused heartbeat also returned: %v", got[0].Heartbeat)
			}
			if got[1].Err != nil || got[1].Heartbeat.GetEntity() != "b.go" {
				t.Errorf("good heartbeat after a bad one: %v, %v", got[1].Heartbeat, got[1].Err)
			}
			if !strings.HasPrefix(tt.item, "{") {
				return
			}
			d, err := heartbeat.DefaultLimits.DecodeOne([]byte(tt.item))
			if err != nil {
				t.Fatalf("DecodeOne: whole-request error %v for a field error", err)
			}
			assertFieldError(t, d.Err, tt.field)
		})
	}
}

// assertFieldError checks that err is a *FieldError for field and that its
// message, which is all a plugin author sees, starts with the field name.
func assertFieldError(t *testing.T, err error, field string) {
	t.Helper()
	var fe *heartbeat.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want a *heartbeat.FieldError for %q", err, err, field)
	}
	if fe.Field != field {
		t.Errorf("error %q is for field %q, want %q", err, fe.Field, field)
	}
	if !strings.HasPrefix(err.Error(), field+" ") || fe.Reason == "" {
		t.Errorf("error message %q does not name the field %q and a reason", err, field)
	}
}
