package heartbeat_test

import (
	"testing"
	"time"

	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	"heartlog/schema/dayfile"
)

// A heartbeat written as a day-file line and decoded back with stored
// set is the same heartbeat, id and all: what lets an export import into
// the heartbeats it came from. Without stored, heartlog's own fields would
// be unknown fields, and the id another.
func TestDecodeValueStoredReadsDayFileLines(t *testing.T) {
	body := []byte(`{"entity":"/src/main.go","type":"file","time":1764547200.125,"project":"p","is_write":false,
		"lineno":0,"dependencies":["a"],"machine":"box","custom":{"z":1,"a":[true,"x"]},"other":"v"}`)
	d, err := heartbeat.DefaultLimits.DecodeOne(body)
	if err != nil || d.Err != nil {
		t.Fatal(err, d.Err)
	}
	hb := d.Heartbeat
	o := heartbeat.Origin{UserID: "8b0e5f43-51a4-4a57-9d58-2bf5b4ad46d1",
		UserAgent: "wakatime/v1.90.0 (linux-6.1) go1.22 vim/9.0 vim-wakatime/11.0", Now: time.Unix(1764547200, 0)}
	if err := heartbeat.DefaultLimits.Prepare(hb, o); err != nil {
		t.Fatal(err)
	}
	line, err := dayfile.AppendLine(nil, hb)
	if err != nil {
		t.Fatal(err)
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(line)
	if err != nil {
		t.Fatal(err)
	}
	back, err := heartbeat.DefaultLimits.DecodeValue(v, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := heartbeat.DefaultLimits.Prepare(back, heartbeat.Origin{UserID: o.UserID, Now: o.Now}); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, hb) {
		t.Fatalf("read back:\n%v\nwant\n%v\n(line %s)", back, hb, line)
	}

	plain, err := heartbeat.DefaultLimits.DecodeValue(v, false)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Editor != "" || string(plain.ExtraJson) == string(hb.ExtraJson) {
		t.Fatalf("without stored, editor %q and extra %s: heartlog's fields should be unknown ones", plain.Editor, plain.ExtraJson)
	}
}
