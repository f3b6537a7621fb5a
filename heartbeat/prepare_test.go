package heartbeat_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

var testOrigin = heartbeat.Origin{
	UserID:    "00000000-0000-4000-8000-000000000001",
	UserAgent: uaVSCode,
	Machine:   "devbox",
	Now:       testNow,
}

// Each fixture request, prepared with its own headers, gives heartbeats
// owned by the user, with the machine from X-Machine-Name and the editor,
// plugin and operating system from the User-Agent.
func TestPrepareFixtures(t *testing.T) {
	tests := []struct {
		file            string
		editor, plugin  string
		operatingSystem string
	}{
		{"bulk-single.http", "VS Code", "vscode-wakatime/24.5.0", "Linux"},
		{"bulk-dependencies.http", "Unknown", "", "Linux"},
		{"bulk-offline-sync.http", "Vim", "vim-wakatime/11.0.0", "Linux"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			fx := loadFixture(t, tt.file)
			o := heartbeat.Origin{
				UserID:    "00000000-0000-4000-8000-000000000001",
				UserAgent: fx.header.Get("User-Agent"),
				Machine:   fx.header.Get("X-Machine-Name"),
				Now:       testNow,
			}
			if o.UserAgent == "" || o.Machine == "" {
				t.Fatalf("fixture lacks User-Agent or X-Machine-Name: %v", fx.header)
			}
			items, err := heartbeat.DefaultLimits.DecodeBulk(fx.body)
			if err != nil {
				t.Fatalf("DecodeBulk: %v", err)
			}
			seen := map[string]bool{}
			for i, d := range items {
				if d.Err != nil {
					t.Fatalf("heartbeat %d: %v", i, d.Err)
				}
				hb := d.Heartbeat
				if err := heartbeat.DefaultLimits.Prepare(hb, o); err != nil {
					t.Fatalf("heartbeat %d: Prepare refused a real client heartbeat: %v", i, err)
				}
				if hb.UserId != o.UserID || hb.Machine != o.Machine {
					t.Errorf("heartbeat %d: user %q machine %q, want %q %q", i, hb.UserId, hb.Machine, o.UserID, o.Machine)
				}
				if hb.Editor != tt.editor || hb.Plugin != tt.plugin || hb.OperatingSystem != tt.operatingSystem {
					t.Errorf("heartbeat %d: editor %q plugin %q os %q, want %q %q %q", i,
						hb.Editor, hb.Plugin, hb.OperatingSystem, tt.editor, tt.plugin, tt.operatingSystem)
				}
				if !isHexID(hb.Id) || hb.Id != heartbeat.ID(hb) {
					t.Errorf("heartbeat %d: id %q, want ID() = %q", i, hb.Id, heartbeat.ID(hb))
				}
				if seen[hb.Id] {
					t.Errorf("heartbeat %d: id %s shared with another heartbeat of the request", i, hb.Id)
				}
				seen[hb.Id] = true
			}
		})
	}
}

func TestPrepareFillsFromOriginOnlyWhenAbsent(t *testing.T) {
	tests := []struct {
		name                string
		machine, userAgent  string // carried by the heartbeat
		wantMachine, wantUA string
		wantEditor, wantOS  string
	}{
		{name: "heartbeat carries neither", wantMachine: "devbox", wantUA: uaVSCode, wantEditor: "VS Code", wantOS: "Linux"},
		{name: "heartbeat carries both", machine: "laptop", userAgent: uaVim,
			wantMachine: "laptop", wantUA: uaVim, wantEditor: "Vim", wantOS: "Linux"},
		{name: "heartbeat carries machine only", machine: "laptop",
			wantMachine: "laptop", wantUA: uaVSCode, wantEditor: "VS Code", wantOS: "Linux"},
		{name: "heartbeat carries user agent only", userAgent: "wakatime/v1.90.0 (darwin-23.4.0-arm64) go1.26.8 vim/9.0 vim-wakatime/11.0.0",
			wantMachine: "devbox", wantUA: "wakatime/v1.90.0 (darwin-23.4.0-arm64) go1.26.8 vim/9.0 vim-wakatime/11.0.0",
			wantEditor: "Vim", wantOS: "Mac"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := &heartlogv1.Heartbeat{Entity: "a.go", Time: 1795630654, Machine: tt.machine, UserAgent: tt.userAgent}
			if err := heartbeat.DefaultLimits.Prepare(hb, testOrigin); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if hb.Machine != tt.wantMachine || hb.UserAgent != tt.wantUA {
				t.Errorf("machine %q user agent %q, want %q %q", hb.Machine, hb.UserAgent, tt.wantMachine, tt.wantUA)
			}
			if hb.Editor != tt.wantEditor || hb.OperatingSystem != tt.wantOS {
				t.Errorf("editor %q os %q, want %q %q", hb.Editor, hb.OperatingSystem, tt.wantEditor, tt.wantOS)
			}
		})
	}
}

func TestPrepareSetsOwnerOverClientValue(t *testing.T) {
	hb := &heartlogv1.Heartbeat{UserId: "mallory", Id: "chosen-by-client", Entity: "a.go", Time: 1795630654}
	if err := heartbeat.DefaultLimits.Prepare(hb, testOrigin); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if hb.UserId != testOrigin.UserID {
		t.Errorf("user id %q, want the request's user %q", hb.UserId, testOrigin.UserID)
	}
	if hb.Id == "chosen-by-client" || hb.Id != heartbeat.ID(hb) {
		t.Errorf("id %q is not the computed %q", hb.Id, heartbeat.ID(hb))
	}
}

func TestPrepareKeepsEditorPluginAndOSTheClientNamed(t *testing.T) {
	hb := &heartlogv1.Heartbeat{Entity: "a.go", Time: 1795630654, Editor: "Kakoune", Plugin: "kak-wakatime/1.0", OperatingSystem: "Plan 9"}
	if err := heartbeat.DefaultLimits.Prepare(hb, testOrigin); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if hb.Editor != "Kakoune" || hb.Plugin != "kak-wakatime/1.0" || hb.OperatingSystem != "Plan 9" {
		t.Errorf("client's editor/plugin/os overwritten: %q %q %q", hb.Editor, hb.Plugin, hb.OperatingSystem)
	}
}

func TestPrepareIDIsStable(t *testing.T) {
	const body = `[{"entity":"a.go","time":1795630654.25,"lineno":3,"new_field":{"a":1}}]`
	prepare := func(body string, o heartbeat.Origin) *heartlogv1.Heartbeat {
		t.Helper()
		items, err := heartbeat.DefaultLimits.DecodeBulk([]byte(body))
		if err != nil || items[0].Err != nil {
			t.Fatalf("decode %s: %v %v", body, err, items[0].Err)
		}
		if err := heartbeat.DefaultLimits.Prepare(items[0].Heartbeat, o); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		return items[0].Heartbeat
	}
	first := prepare(body, testOrigin)
	if !isHexID(first.Id) {
		t.Fatalf("id %q is not 32 hex characters", first.Id)
	}

	t.Run("resent days later", func(t *testing.T) {
		later := testOrigin
		later.Now = testNow.Add(5 * 24 * time.Hour)
		if got := prepare(body, later).Id; got != first.Id {
			t.Errorf("id %s, first sent as %s", got, first.Id)
		}
	})
	t.Run("resent with defaults spelled out", func(t *testing.T) {
		const explicit = `[{"new_field":{"a":1},"lineno":3,"category":"coding","type":"file","time":1795630654.25,"entity":"a.go"}]`
		if got := prepare(explicit, testOrigin).Id; got != first.Id {
			t.Errorf("id %s, first sent as %s", got, first.Id)
		}
	})
	t.Run("prepared twice", func(t *testing.T) {
		again := proto.Clone(first).(*heartlogv1.Heartbeat)
		if err := heartbeat.DefaultLimits.Prepare(again, testOrigin); err != nil {
			t.Fatalf("Prepare of a prepared heartbeat: %v", err)
		}
		if again.Id != first.Id {
			t.Errorf("id changed from %s to %s", first.Id, again.Id)
		}
	})
	t.Run("other user", func(t *testing.T) {
		other := testOrigin
		other.UserID = "00000000-0000-4000-8000-000000000002"
		if got := prepare(body, other).Id; got == first.Id {
			t.Errorf("two users share id %s", got)
		}
	})
	t.Run("other machine", func(t *testing.T) {
		other := testOrigin
		other.Machine = "laptop"
		if got := prepare(body, other).Id; got == first.Id {
			t.Errorf("heartbeats from two machines share id %s", got)
		}
	})
}

func TestPrepareRefusesInvalidHeartbeat(t *testing.T) {
	tests := []struct {
		name   string
		hb     *heartlogv1.Heartbeat
		origin func(o *heartbeat.Origin)
		field  string
	}{
		{name: "missing entity", hb: &heartlogv1.Heartbeat{Time: 1795630654}, field: "entity"},
		{name: "unknown type", hb: &heartlogv1.Heartbeat{Entity: "a.go", Type: "folder", Time: 1795630654}, field: "type"},
		{name: "from the future by the origin's clock", hb: &heartlogv1.Heartbeat{Entity: "a.go", Time: 1795630654},
			origin: func(o *heartbeat.Origin) { o.Now = time.Unix(1795630654, 0).Add(-48 * time.Hour) }, field: "time"},
		{name: "invalid UTF-8 machine from the header", hb: &heartlogv1.Heartbeat{Entity: "a.go", Time: 1795630654},
			origin: func(o *heartbeat.Origin) { o.Machine = "dev\xffbox" }, field: "machine"},
		{name: "oversized user agent header", hb: &heartlogv1.Heartbeat{Entity: "a.go", Time: 1795630654},
			origin: func(o *heartbeat.Origin) { o.UserAgent = strings.Repeat("x", 2000) }, field: "user_agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOrigin
			if tt.origin != nil {
				tt.origin(&o)
			}
			err := heartbeat.DefaultLimits.Prepare(tt.hb, o)
			var fe *heartbeat.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Prepare error = %v (%T), want *heartbeat.FieldError", err, err)
			}
			if fe.Field != tt.field {
				t.Errorf("refused for %q (%v), want %q", fe.Field, err, tt.field)
			}
			if tt.hb.Id != "" {
				t.Errorf("refused heartbeat got id %q", tt.hb.Id)
			}
		})
	}
}

func isHexID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
