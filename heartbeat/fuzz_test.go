package heartbeat_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// fuzzEdgeCases are seeds besides the fixture bodies; the committed corpus
// in testdata/fuzz/FuzzDecodeWakaTime holds the same inputs.
var fuzzEdgeCases = []string{
	`[]`,
	`{}`,
	`null`,
	`[null,1,"x",[],{}]`,
	`{"entity":"a.go","time":1795630654,"new_field":{"b":[1,{"c":null}],"a":"\u00e9"},"id":"x","user_id":"y"}`,
	`[{"entity":"a.go","time":1e400,"lineno":2147483648,"is_write":"yes"}]`,
	`[{"entity":"a\u0000.go","time":1795630654,"dependencies":["x\u0000"]}]`,
	`[{"entity":"a.go","time":1795630654,"z":"\ud800","y":"\udc00\ud83d\ude00"}]`,
	"[{\"entity\":\"a.go\",\"time\":1795630654,\"machine\":\"\xff\",\"z\":\"\xfe\"}]",
	`[{"entity":"a.go","type":"event","category":"","time":-1795630654.5,"branch":null,"project_root_count":-0}]`,
}

var fuzzOrigin = heartbeat.Origin{
	UserID:    "00000000-0000-4000-8000-000000000001",
	UserAgent: uaVSCode,
	Machine:   "devbox",
	Now:       testNow,
}

func FuzzDecodeWakaTime(f *testing.F) {
	for _, name := range fixtureFiles {
		f.Add(loadFixture(f, name).body)
	}
	for _, s := range fuzzEdgeCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		l := heartbeat.DefaultLimits
		items, err := l.DecodeBulk(body)
		if err != nil {
			if !errors.Is(err, heartbeat.ErrMalformed) && !errors.Is(err, heartbeat.ErrTooMany) {
				t.Fatalf("DecodeBulk error %v is neither ErrMalformed nor ErrTooMany", err)
			}
			if items != nil {
				t.Fatalf("DecodeBulk returned %d heartbeats with error %v", len(items), err)
			}
		}
		for _, d := range items {
			checkDecoded(t, l, d)
		}

		one, err := l.DecodeOne(body)
		if err != nil {
			if !errors.Is(err, heartbeat.ErrMalformed) {
				t.Fatalf("DecodeOne error %v is not ErrMalformed", err)
			}
			return
		}
		checkDecoded(t, l, one)
	})
}

// checkDecoded checks one decoded heartbeat: it was refused with a field
// error, or Prepare refuses it with a field error, or it is fit for the log.
func checkDecoded(t *testing.T, l heartbeat.Limits, d heartbeat.Decoded) {
	t.Helper()
	if (d.Heartbeat == nil) == (d.Err == nil) {
		t.Fatalf("want exactly one of Heartbeat and Err: %v, %v", d.Heartbeat, d.Err)
	}
	if d.Err != nil {
		checkFieldError(t, d.Err)
		return
	}
	hb := d.Heartbeat
	if hb.Id != "" || hb.UserId != "" {
		t.Fatalf("decoding set id %q or user %q", hb.Id, hb.UserId)
	}
	if err := l.Prepare(hb, fuzzOrigin); err != nil {
		checkFieldError(t, err)
		return
	}
	if !isHexID(hb.Id) || hb.Id != heartbeat.ID(hb) {
		t.Fatalf("id %q is not ID() = %q", hb.Id, heartbeat.ID(hb))
	}
	if hb.UserId != fuzzOrigin.UserID {
		t.Fatalf("user id %q, want %q", hb.UserId, fuzzOrigin.UserID)
	}
	if day := heartbeat.Day(hb); len(day) != 8 || day < "20000101" {
		t.Fatalf("accepted heartbeat has day %q", day)
	}
	strs := map[string]string{
		"entity": hb.Entity, "type": hb.Type, "category": hb.Category, "project": hb.Project,
		"branch": hb.Branch, "language": hb.Language, "machine": hb.Machine,
		"user_agent": hb.UserAgent, "editor": hb.Editor, "plugin": hb.Plugin,
		"operating_system": hb.OperatingSystem,
	}
	for i, dep := range hb.Dependencies {
		strs[fmt.Sprintf("dependencies[%d]", i)] = dep
	}
	for name, s := range strs {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("accepted heartbeat has %s %q: not valid UTF-8 without NUL", name, s)
		}
	}
	if hb.Entity == "" || hb.Type == "" || hb.Category == "" {
		t.Fatalf("accepted heartbeat lacks entity %q, type %q or category %q", hb.Entity, hb.Type, hb.Category)
	}
	if hb.ExtraJson != nil {
		checkExtraJSON(t, hb.ExtraJson)
	}
	if _, err := proto.Marshal(hb); err != nil {
		t.Fatalf("accepted heartbeat cannot go into the log: %v", err)
	}

	again := proto.Clone(hb).(*heartlogv1.Heartbeat)
	if err := l.Prepare(again, fuzzOrigin); err != nil {
		t.Fatalf("Prepare refused a heartbeat it had prepared: %v", err)
	}
	if again.Id != hb.Id {
		t.Fatalf("preparing again changed the id from %s to %s", hb.Id, again.Id)
	}
}

// checkExtraJSON checks that kept unknown fields are a compact JSON object
// that Postgres jsonb accepts: valid UTF-8, no \u0000, no unpaired UTF-16
// surrogate escapes (see the extra_json cases of TestValidate).
func checkExtraJSON(t *testing.T, extra []byte) {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(extra, &obj); err != nil || obj == nil {
		t.Fatalf("ExtraJson %q is not a JSON object: %v", extra, err)
	}
	if !utf8.Valid(extra) {
		t.Fatalf("ExtraJson %q is not valid UTF-8", extra)
	}
	s := string(extra)
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if s[i] != 'u' {
			continue
		}
		r := hex4(s[i+1 : i+5])
		i += 4
		switch {
		case r == 0:
			t.Fatalf("ExtraJson %q holds \\u0000", extra)
		case r >= 0xdc00 && r <= 0xdfff:
			t.Fatalf("ExtraJson %q holds an unpaired low surrogate", extra)
		case r >= 0xd800 && r <= 0xdbff:
			if len(s) < i+7 || !strings.HasPrefix(s[i+1:], `\u`) {
				t.Fatalf("ExtraJson %q holds an unpaired high surrogate", extra)
			}
			if lo := hex4(s[i+3 : i+7]); lo < 0xdc00 || lo > 0xdfff {
				t.Fatalf("ExtraJson %q holds an unpaired high surrogate", extra)
			}
			i += 6
		}
	}
}

func hex4(s string) rune {
	var r rune
	for _, c := range s {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= c - '0'
		case 'a' <= c && c <= 'f':
			r |= c - 'a' + 10
		case 'A' <= c && c <= 'F':
			r |= c - 'A' + 10
		}
	}
	return r
}

func checkFieldError(t *testing.T, err error) {
	t.Helper()
	var fe *heartbeat.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *heartbeat.FieldError", err, err)
	}
	if fe.Field == "" || !strings.HasPrefix(err.Error(), fe.Field+" ") {
		t.Fatalf("error %q does not name its field %q", err, fe.Field)
	}
}
