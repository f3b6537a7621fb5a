package heartbeat_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// testNow is the server's clock in these tests: shortly after the fixtures
// were recorded.
var testNow = time.Date(2026, 11, 25, 18, 30, 0, 0, time.UTC)

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// validHeartbeat is a heartbeat Validate accepts; each case changes one thing.
func validHeartbeat() *heartlogv1.Heartbeat {
	return &heartlogv1.Heartbeat{
		Entity: "/home/dev/proj/myrepo/main.go", Type: "file", Category: "coding",
		Time: unix(testNow.Add(-time.Minute)), Project: "myrepo", Branch: "main",
		Language: "Go", Dependencies: []string{"fmt"}, Machine: "devbox", UserAgent: uaVSCode,
	}
}

func TestValidate(t *testing.T) {
	kib := strings.Repeat("x", 1024)
	deps := func(n int) []string {
		d := make([]string, n)
		for i := range d {
			d[i] = "dep"
		}
		return d
	}
	tests := []struct {
		name   string
		change func(hb *heartlogv1.Heartbeat)
		field  string // "" when the heartbeat is accepted
		msg    string // the whole error message, when it matters
	}{
		{name: "valid", change: func(*heartlogv1.Heartbeat) {}},

		{name: "missing entity", change: func(hb *heartlogv1.Heartbeat) { hb.Entity = "" },
			field: "entity", msg: "entity is required"},
		{name: "entity of exactly 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Entity = kib }},
		{name: "entity over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Entity = kib + "x" },
			field: "entity", msg: "entity is longer than 1024 bytes"},
		{name: "NUL in entity", change: func(hb *heartlogv1.Heartbeat) { hb.Entity = "main\x00.go" }, field: "entity"},

		{name: "unknown type", change: func(hb *heartlogv1.Heartbeat) { hb.Type = "folder" }, field: "type"},
		{name: "type in upper case", change: func(hb *heartlogv1.Heartbeat) { hb.Type = "FILE" }, field: "type"},
		{name: "type app", change: func(hb *heartlogv1.Heartbeat) { hb.Type = "app" }},
		{name: "type domain", change: func(hb *heartlogv1.Heartbeat) { hb.Type = "domain" }},
		{name: "type url", change: func(hb *heartlogv1.Heartbeat) { hb.Type = "url" }},
		{name: "type event", change: func(hb *heartlogv1.Heartbeat) { hb.Type = "event" }},

		{name: "missing time", change: func(hb *heartlogv1.Heartbeat) { hb.Time = 0 },
			field: "time", msg: "time is required"},
		{name: "time NaN", change: func(hb *heartlogv1.Heartbeat) { hb.Time = math.NaN() }, field: "time"},
		{name: "time +Inf", change: func(hb *heartlogv1.Heartbeat) { hb.Time = math.Inf(1) }, field: "time"},
		{name: "time -Inf", change: func(hb *heartlogv1.Heartbeat) { hb.Time = math.Inf(-1) }, field: "time"},
		{name: "time far in the future", change: func(hb *heartlogv1.Heartbeat) { hb.Time = 1e300 },
			field: "time", msg: "time is more than one day in the future"},
		{name: "time a day and a second ahead", change: func(hb *heartlogv1.Heartbeat) { hb.Time = unix(testNow.Add(24*time.Hour + time.Second)) },
			field: "time", msg: "time is more than one day in the future"},
		{name: "time exactly a day ahead", change: func(hb *heartlogv1.Heartbeat) { hb.Time = unix(testNow.Add(24 * time.Hour)) }},
		{name: "time an hour ahead", change: func(hb *heartlogv1.Heartbeat) { hb.Time = unix(testNow.Add(time.Hour)) }},
		{name: "time a year ago", change: func(hb *heartlogv1.Heartbeat) { hb.Time = unix(testNow.AddDate(-1, 0, 0)) }},
		{name: "time at 2000-01-01", change: func(hb *heartlogv1.Heartbeat) { hb.Time = unix(heartbeat.Earliest) }},
		{name: "time a second before 2000", change: func(hb *heartlogv1.Heartbeat) { hb.Time = unix(heartbeat.Earliest) - 1 },
			field: "time", msg: "time is before 2000"},
		{name: "time in milliseconds", change: func(hb *heartlogv1.Heartbeat) { hb.Time = 1795630654445 },
			field: "time", msg: "time is more than one day in the future"},
		{name: "negative time", change: func(hb *heartlogv1.Heartbeat) { hb.Time = -1 }, field: "time"},

		{name: "category over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Category = kib + "x" }, field: "category"},
		{name: "project over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Project = kib + "x" },
			field: "project", msg: "project is longer than 1024 bytes"},
		{name: "project of exactly 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Project = kib }},
		{name: "branch over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Branch = kib + "x" }, field: "branch"},
		{name: "language over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Language = kib + "x" }, field: "language"},
		{name: "machine over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Machine = kib + "x" }, field: "machine"},
		{name: "user_agent over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.UserAgent = kib + "x" }, field: "user_agent"},
		{name: "editor over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Editor = kib + "x" }, field: "editor"},
		{name: "plugin over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Plugin = kib + "x" }, field: "plugin"},
		{name: "operating_system over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.OperatingSystem = kib + "x" }, field: "operating_system"},

		{name: "NUL in project", change: func(hb *heartlogv1.Heartbeat) { hb.Project = "my\x00repo" }, field: "project"},
		{name: "NUL in branch", change: func(hb *heartlogv1.Heartbeat) { hb.Branch = "\x00" }, field: "branch"},
		{name: "NUL in machine", change: func(hb *heartlogv1.Heartbeat) { hb.Machine = "dev\x00box" }, field: "machine"},
		{name: "NUL in user_agent", change: func(hb *heartlogv1.Heartbeat) { hb.UserAgent = "wakatime\x00" }, field: "user_agent"},
		{name: "invalid UTF-8 in machine", change: func(hb *heartlogv1.Heartbeat) { hb.Machine = "dev\xffbox" },
			field: "machine", msg: "machine must be valid UTF-8 without NUL characters"},
		{name: "invalid UTF-8 in user_agent", change: func(hb *heartlogv1.Heartbeat) { hb.UserAgent = "\xc3\x28" }, field: "user_agent"},
		{name: "non-ASCII machine", change: func(hb *heartlogv1.Heartbeat) { hb.Machine = "Jürgens-MacBook" }},

		{name: "1000 dependencies", change: func(hb *heartlogv1.Heartbeat) { hb.Dependencies = deps(1000) }},
		{name: "too many dependencies", change: func(hb *heartlogv1.Heartbeat) { hb.Dependencies = deps(1001) },
			field: "dependencies", msg: "dependencies has more than 1000 items"},
		{name: "dependency over 1 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.Dependencies = []string{"ok", kib + "x"} }, field: "dependencies"},
		{name: "NUL in a dependency", change: func(hb *heartlogv1.Heartbeat) { hb.Dependencies = []string{"fl\x00ask"} }, field: "dependencies"},

		{name: "extra JSON object", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"new_field":{"a":1}}`) }},
		{name: "extra JSON not JSON", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"a":`) }, field: "extra_json"},
		{name: "extra JSON an array", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`[1]`) }, field: "extra_json"},
		{name: "extra JSON a string", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`"a"`) }, field: "extra_json"},
		{name: "extra JSON null", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`null`) }, field: "extra_json"},
		{name: "extra JSON with escaped NUL", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"a":"x\u0000"}`) }, field: "extra_json"},
		{name: "extra JSON with escaped backslash before u0000", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"a":"C:\\u0000"}`) }},
		{name: "extra JSON with invalid UTF-8", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte("{\"a\":\"\xff\"}") }, field: "extra_json"},
		{name: "extra JSON with lone high surrogate", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"a":"\ud800"}`) }, field: "extra_json"},
		{name: "extra JSON with lone low surrogate", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"a":"x\udc00"}`) }, field: "extra_json"},
		{name: "extra JSON with reversed surrogates", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"a":"\ude00\ud83d"}`) }, field: "extra_json"},
		{name: "extra JSON with surrogate pair", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"a":"\ud83d\ude00"}`) }},
		{name: "extra number overflowing numeric", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"a":1,"x":1e200000}`) },
			field: "x", msg: "x is a number out of range: at most 131072 digits before the decimal point and 16383 after, and within ±1.8e+308"},
		{name: "extra number beyond float64", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"x":{"y":[0,-1e400]}}`) }, field: "x.y[1]"},
		{name: "extra number at float64's edge", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"x":1.7976931348623157e308}`) }},
		{name: "extra number with numeric's largest scale", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"x":1e-16383,"y":0.5e-16382}`) }},
		{name: "extra number over numeric's scale", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"x":1e-16384}`) }, field: "x"},
		{name: "extra zero over numeric's scale", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"x":0e-20000}`) }, field: "x"},
		{name: "extra number with a huge exponent", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = []byte(`{"x":0e99999999999}`) }, field: "x"},
		{name: "extra nested 64 levels", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = nested(63) }},
		{name: "extra nested 65 levels", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = nested(64) }, field: "x" + strings.Repeat("[0]", 63)},
		{name: "extra JSON of 4 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = extraOfSize(4096) }},
		{name: "extra JSON over 4 KiB", change: func(hb *heartlogv1.Heartbeat) { hb.ExtraJson = extraOfSize(4097) },
			field: "heartbeat", msg: "heartbeat carries more than 4096 bytes of unknown fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := validHeartbeat()
			tt.change(hb)
			err := heartbeat.DefaultLimits.Validate(hb, testNow)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate refused a valid heartbeat: %v", err)
				}
				return
			}
			assertFieldError(t, err, tt.field)
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("error message = %q, want %q", err, tt.msg)
			}
		})
	}
}

// nested is {"x":[[...[1]...]]} with n arrays: n+1 levels deep.
func nested(n int) []byte {
	return []byte(`{"x":` + strings.Repeat("[", n) + "1" + strings.Repeat("]", n) + "}")
}

// extraOfSize is a JSON object of exactly n bytes (n >= 8).
func extraOfSize(n int) []byte {
	b := []byte(`{"a":"` + strings.Repeat("x", n-8) + `"}`)
	if len(b) != n {
		panic("extraOfSize: wrong size")
	}
	return b
}

func TestValidateDefaults(t *testing.T) {
	tests := []struct {
		name                   string
		typ, category          string
		wantType, wantCategory string
	}{
		{"type and category missing", "", "", "file", "coding"},
		{"type given", "app", "", "app", "coding"},
		{"category given", "", "debugging", "file", "debugging"},
		{"both given", "domain", "browsing", "domain", "browsing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := validHeartbeat()
			hb.Type, hb.Category = tt.typ, tt.category
			if err := heartbeat.DefaultLimits.Validate(hb, testNow); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if hb.Type != tt.wantType || hb.Category != tt.wantCategory {
				t.Errorf("type %q, category %q; want %q, %q", hb.Type, hb.Category, tt.wantType, tt.wantCategory)
			}
		})
	}
}

func TestValidateCustomLimits(t *testing.T) {
	l := heartbeat.DefaultLimits
	l.MaxEntityBytes = 8
	l.MaxFuture = time.Hour
	hb := validHeartbeat()
	hb.Entity = "12345678"
	if err := l.Validate(hb, testNow); err != nil {
		t.Fatalf("entity at the custom limit refused: %v", err)
	}
	hb.Entity = "123456789"
	assertFieldError(t, l.Validate(hb, testNow), "entity")

	hb = validHeartbeat()
	hb.Entity = "a.go"
	hb.Time = unix(testNow.Add(2 * time.Hour))
	assertFieldError(t, l.Validate(hb, testNow), "time")
}

// The message the WakaTime fixture shows for a heartbeat from the future is
// the one Validate gives: response-201.json is what clients receive.
func TestValidateFutureMessageMatchesFixtureResponse(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fixturesDir(t), "response-201.json"))
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Responses [][2]json.RawMessage `json:"responses"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatalf("response-201.json: %v", err)
	}
	var want string
	for _, r := range resp.Responses {
		var body struct {
			Error string `json:"error"`
		}
		if string(r[1]) == "400" && json.Unmarshal(r[0], &body) == nil {
			want = body.Error
		}
	}
	if want == "" {
		t.Fatal("response-201.json has no 400 item with an error")
	}
	hb := validHeartbeat()
	hb.Time = unix(testNow.Add(48 * time.Hour))
	err = heartbeat.DefaultLimits.Validate(hb, testNow)
	var fe *heartbeat.FieldError
	if !errors.As(err, &fe) || err.Error() != want {
		t.Errorf("Validate error = %v, want %q", err, want)
	}
}
