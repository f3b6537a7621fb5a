package stats_test

import (
	"reflect"
	"testing"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
)

// TestMergeSeenEqualsOneRead: the user agents of a range read in two
// parts and merged are those of the range read at once.
func TestMergeSeenEqualsOneRead(t *testing.T) {
	t0 := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	hb := func(days int, ua string) *heartlogv1.Heartbeat {
		return &heartlogv1.Heartbeat{Entity: "a.go", Type: "file", UserAgent: ua, Time: float64(t0.AddDate(0, 0, days).Unix())}
	}
	first := []*heartlogv1.Heartbeat{hb(0, "vim"), hb(3, "code"), hb(20, "vim")}
	second := []*heartlogv1.Heartbeat{hb(40, "vim"), hb(41, "zed"), hb(50, "code")}
	from, to := t0.AddDate(0, 0, -1), t0.AddDate(0, 0, 60)
	want := stats.UserAgentsIn(append(append([]*heartlogv1.Heartbeat{}, first...), second...), from, to)
	got := stats.MergeSeen(stats.UserAgentsIn(first, from, to), stats.UserAgentsIn(second, from, to))
	if !reflect.DeepEqual(got, want) || len(got) != 3 || got[0].Value != "code" || !got[2].First.Equal(t0) {
		t.Fatalf("merged %+v\nwant %+v", got, want)
	}
}
