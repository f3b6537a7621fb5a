package heartbeat_test

import (
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// fullHeartbeat sets every field of the message, so that changing any one
// of them is a change from a set value.
func fullHeartbeat() *heartlogv1.Heartbeat {
	return &heartlogv1.Heartbeat{
		Id:               "ignored-by-id",
		UserId:           "00000000-0000-4000-8000-000000000001",
		Entity:           "/home/dev/proj/myrepo/main.go",
		Type:             "file",
		Category:         "coding",
		Time:             1795630654.4452016,
		Project:          "myrepo",
		ProjectRootCount: ptr[int32](4),
		Branch:           "feature/x",
		Language:         "Go",
		Dependencies:     []string{"requests", "flask"},
		Lines:            ptr[int32](5),
		LineAdditions:    ptr[int32](2),
		LineDeletions:    ptr[int32](1),
		Lineno:           ptr[int32](3),
		Cursorpos:        ptr[int32](7),
		IsWrite:          ptr(true),
		AiLineChanges:    ptr[int32](12),
		HumanLineChanges: ptr[int32](3),
		Editor:           "VS Code",
		Plugin:           "vscode-wakatime/24.5.0",
		OperatingSystem:  "Linux",
		Machine:          "devbox",
		UserAgent:        uaVSCode,
		ExtraJson:        []byte(`{"new_field":{"a":1}}`),
	}
}

// Fields that do not take part in the id: the id itself, and what Prepare
// derives from the user agent (which does take part).
var notInID = map[protoreflect.Name]bool{"id": true, "editor": true, "plugin": true, "operating_system": true}

func TestIDFormatAndDeterminism(t *testing.T) {
	a, b := fullHeartbeat(), fullHeartbeat()
	id := heartbeat.ID(a)
	if !isHexID(id) {
		t.Fatalf("ID = %q, want 32 lower-case hex characters", id)
	}
	if got := heartbeat.ID(b); got != id {
		t.Errorf("equal heartbeats got ids %s and %s", id, got)
	}
	if got := heartbeat.ID(a); got != id {
		t.Errorf("second ID of the same heartbeat %s, first %s", got, id)
	}
	wire, err := proto.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back heartlogv1.Heartbeat
	if err := proto.Unmarshal(wire, &back); err != nil {
		t.Fatal(err)
	}
	if got := heartbeat.ID(&back); got != id {
		t.Errorf("id changed through the log's protobuf encoding: %s, was %s", got, id)
	}
}

// Changing any content field, one at a time, gives a new id; walking the
// message descriptor means a field added to the schema later is covered
// too, and fails here until ID encodes it.
func TestIDChangesWithEveryContentField(t *testing.T) {
	base := fullHeartbeat()
	baseID := heartbeat.ID(base)
	fields := base.ProtoReflect().Descriptor().Fields()
	ids := map[string]protoreflect.Name{baseID: "(unchanged)"}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !base.ProtoReflect().Has(fd) {
			t.Fatalf("fullHeartbeat does not set %s; set it so this test covers it", fd.Name())
		}
		t.Run(string(fd.Name()), func(t *testing.T) {
			hb := proto.Clone(base).(*heartlogv1.Heartbeat)
			changeField(t, hb.ProtoReflect(), fd)
			got := heartbeat.ID(hb)
			if notInID[fd.Name()] {
				if got != baseID {
					t.Errorf("changing %s changed the id; it is not meant to be part of it", fd.Name())
				}
				return
			}
			if got == baseID {
				t.Fatalf("changing %s kept id %s", fd.Name(), got)
			}
			if other, dup := ids[got]; dup {
				t.Errorf("changing %s gives the same id as changing %s", fd.Name(), other)
			}
			ids[got] = fd.Name()
		})
	}
}

// changeField changes one set field to another value of its kind, keeping
// it present.
func changeField(t *testing.T, m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	t.Helper()
	v := m.Get(fd)
	switch {
	case fd.IsList() && fd.Kind() == protoreflect.StringKind:
		m.Mutable(fd).List().Append(protoreflect.ValueOfString("numpy"))
	case fd.IsList() || fd.IsMap():
		t.Fatalf("no way to change field %s; teach this test about it", fd.Name())
	case fd.Kind() == protoreflect.StringKind:
		m.Set(fd, protoreflect.ValueOfString(v.String()+"x"))
	case fd.Kind() == protoreflect.BytesKind:
		m.Set(fd, protoreflect.ValueOfBytes([]byte(`{"new_field":{"a":2}}`)))
	case fd.Kind() == protoreflect.DoubleKind:
		// The smallest representable step: a microsecond's difference in
		// time is a different heartbeat.
		m.Set(fd, protoreflect.ValueOfFloat64(math.Nextafter(v.Float(), math.Inf(1))))
	case fd.Kind() == protoreflect.Int32Kind:
		m.Set(fd, protoreflect.ValueOfInt32(int32(v.Int())+1))
	case fd.Kind() == protoreflect.BoolKind:
		m.Set(fd, protoreflect.ValueOfBool(!v.Bool()))
	default:
		t.Fatalf("no way to change field %s of kind %s; teach this test about it", fd.Name(), fd.Kind())
	}
}

func TestIDDistinguishesAbsentFromZero(t *testing.T) {
	optional := []struct {
		name string
		set  func(hb *heartlogv1.Heartbeat, v *int32)
	}{
		{"project_root_count", func(hb *heartlogv1.Heartbeat, v *int32) { hb.ProjectRootCount = v }},
		{"lines", func(hb *heartlogv1.Heartbeat, v *int32) { hb.Lines = v }},
		{"line_additions", func(hb *heartlogv1.Heartbeat, v *int32) { hb.LineAdditions = v }},
		{"line_deletions", func(hb *heartlogv1.Heartbeat, v *int32) { hb.LineDeletions = v }},
		{"lineno", func(hb *heartlogv1.Heartbeat, v *int32) { hb.Lineno = v }},
		{"cursorpos", func(hb *heartlogv1.Heartbeat, v *int32) { hb.Cursorpos = v }},
		{"ai_line_changes", func(hb *heartlogv1.Heartbeat, v *int32) { hb.AiLineChanges = v }},
		{"human_line_changes", func(hb *heartlogv1.Heartbeat, v *int32) { hb.HumanLineChanges = v }},
	}
	for _, f := range optional {
		t.Run(f.name, func(t *testing.T) {
			absent, zero := minimalHeartbeat(), minimalHeartbeat()
			f.set(absent, nil)
			f.set(zero, ptr[int32](0))
			if heartbeat.ID(absent) == heartbeat.ID(zero) {
				t.Errorf("absent %s and %s 0 share an id", f.name, f.name)
			}
		})
	}
	t.Run("is_write", func(t *testing.T) {
		ids := map[string]string{}
		for name, v := range map[string]*bool{"absent": nil, "false": ptr(false), "true": ptr(true)} {
			hb := minimalHeartbeat()
			hb.IsWrite = v
			id := heartbeat.ID(hb)
			if other, dup := ids[id]; dup {
				t.Errorf("is_write %s and %s share an id", name, other)
			}
			ids[id] = name
		}
	})
	t.Run("one optional field is not another", func(t *testing.T) {
		a, b := minimalHeartbeat(), minimalHeartbeat()
		a.Lines = ptr[int32](1)
		b.Lineno = ptr[int32](1)
		if heartbeat.ID(a) == heartbeat.ID(b) {
			t.Error("lines 1 and lineno 1 share an id")
		}
	})
}

// Values that would run together if fields were simply concatenated.
func TestIDFieldBoundaries(t *testing.T) {
	tests := []struct {
		name string
		a, b func(hb *heartlogv1.Heartbeat)
	}{
		{"project and branch",
			func(hb *heartlogv1.Heartbeat) { hb.Project, hb.Branch = "ab", "" },
			func(hb *heartlogv1.Heartbeat) { hb.Project, hb.Branch = "a", "b" }},
		{"one dependency or two",
			func(hb *heartlogv1.Heartbeat) { hb.Dependencies = []string{"ab"} },
			func(hb *heartlogv1.Heartbeat) { hb.Dependencies = []string{"a", "b"} }},
		{"no dependency or an empty one",
			func(hb *heartlogv1.Heartbeat) { hb.Dependencies = nil },
			func(hb *heartlogv1.Heartbeat) { hb.Dependencies = []string{""} }},
		{"dependency or language",
			func(hb *heartlogv1.Heartbeat) { hb.Dependencies, hb.Language = []string{"Go"}, "" },
			func(hb *heartlogv1.Heartbeat) { hb.Dependencies, hb.Language = nil, "Go" }},
		{"machine and user agent",
			func(hb *heartlogv1.Heartbeat) { hb.Machine, hb.UserAgent = "devbox", "" },
			func(hb *heartlogv1.Heartbeat) { hb.Machine, hb.UserAgent = "", "devbox" }},
		{"negative and large line numbers",
			func(hb *heartlogv1.Heartbeat) { hb.Lineno = ptr[int32](-1) },
			func(hb *heartlogv1.Heartbeat) { hb.Lineno = ptr[int32](math.MaxInt32) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := minimalHeartbeat(), minimalHeartbeat()
			tt.a(a)
			tt.b(b)
			if heartbeat.ID(a) == heartbeat.ID(b) {
				t.Errorf("different heartbeats share id %s", heartbeat.ID(a))
			}
		})
	}
}

func TestIDIncludesUser(t *testing.T) {
	alice, bob := fullHeartbeat(), fullHeartbeat()
	alice.UserId = "00000000-0000-4000-8000-00000000000a"
	bob.UserId = "00000000-0000-4000-8000-00000000000b"
	if heartbeat.ID(alice) == heartbeat.ID(bob) {
		t.Error("the same heartbeat from two users shares an id; one user's heartbeat would hide the other's")
	}
}

func minimalHeartbeat() *heartlogv1.Heartbeat {
	return &heartlogv1.Heartbeat{
		UserId: "00000000-0000-4000-8000-000000000001",
		Entity: "/home/dev/proj/myrepo/main.go", Type: "file", Category: "coding",
		Time: 1795630654.4452016,
	}
}

// The ids of these heartbeats are pinned. They must never change: plugins
// resend heartbeats from their offline queue days later, and every sink
// deduplicates by id, so an id that changes with a refactoring of ID (field
// order, integer encoding, hash) turns every resent heartbeat into a
// duplicate in Postgres, S3 and the caches. If this test fails, the encoding
// changed: restore it. A new field must be appended so that heartbeats
// without it keep their id; do not update these values.
func TestIDGolden(t *testing.T) {
	tests := []struct {
		name string
		hb   *heartlogv1.Heartbeat
		want string
	}{
		{"every field set", fullHeartbeat(), "e5cd1d86fbc120534d09a8a110b58144"},
		{"required fields only", minimalHeartbeat(), "6a93407aca93bc7aaf6740fd08b1de57"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := heartbeat.ID(tt.hb); got != tt.want {
				t.Errorf("ID = %s, pinned %s: the id encoding changed", got, tt.want)
			}
		})
	}
}

func TestDayAtUTCBoundaries(t *testing.T) {
	at := func(s string) float64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return unix(tm)
	}
	tests := []struct {
		name string
		time float64
		want string
	}{
		{"fixture heartbeat", 1795630654.4452016, "20261125"},
		{"last millisecond of a day", at("2026-11-25T23:59:59.999Z"), "20261125"},
		{"midnight UTC", at("2026-11-26T00:00:00Z"), "20261126"},
		{"just after midnight UTC", at("2026-11-26T00:00:00.001Z"), "20261126"},
		{"evening in New York is the next UTC day", at("2026-11-25T20:30:00-05:00"), "20261126"},
		{"morning in Tokyo is the previous UTC day", at("2026-11-26T08:00:00+09:00"), "20261125"},
		{"last second of a year", at("2026-12-31T23:59:59.5Z"), "20261231"},
		{"first second of a year", at("2027-01-01T00:00:00Z"), "20270101"},
		{"leap day", at("2028-02-29T12:00:00Z"), "20280229"},
		{"earliest accepted", unix(heartbeat.Earliest), "20000101"},
	}
	// The server's local zone must not matter.
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.FixedZone("UTC+14", 14*60*60)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := &heartlogv1.Heartbeat{Time: tt.time}
			if got := heartbeat.Day(hb); got != tt.want {
				t.Errorf("Day(%v) = %s, want %s", tt.time, got, tt.want)
			}
		})
	}
}

func TestTimeOfKeepsFraction(t *testing.T) {
	got := heartbeat.TimeOf(&heartlogv1.Heartbeat{Time: 1795630654.4452016})
	want := time.Date(2026, 11, 25, 18, 17, 34, 445201600, time.UTC)
	if d := got.Sub(want); d < -time.Microsecond || d > time.Microsecond || got.Location() != time.UTC {
		t.Errorf("TimeOf = %v, want %v", got, want)
	}
}
