package streams_test

import (
	"testing"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

func TestBatchHasUser(t *testing.T) {
	b := &heartlogv1.Batch{Day: "20261202", Partition: 3, ObjectPrefixes: map[string]string{"u1": "p1", "u2": "p2"},
		Heartbeats: []*heartlogv1.Heartbeat{
			{Id: "a", UserId: "u1", Entity: "x.go", Time: 1.5, Dependencies: []string{"d"}},
			{Id: "b", UserId: "u2", Entity: "y.go", Time: 2.5},
		}}
	data, err := streams.EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]bool{"u1": true, "u2": true, "u3": false, "p1": false, "": false} {
		got, err := streams.BatchHasUser(data, func(id string) bool { return id == user })
		if err != nil || got != want {
			t.Errorf("user %q: %v %v, want %v", user, got, err, want)
		}
	}
	if _, err := streams.BatchHasUser(data[:len(data)-3], func(string) bool { return false }); err == nil {
		t.Error("a truncated batch decoded")
	}
}
