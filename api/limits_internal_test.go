package api

import (
	"fmt"
	"testing"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

func dayBeats(day time.Time, ids ...string) []*heartlogv1.Heartbeat {
	out := make([]*heartlogv1.Heartbeat, len(ids))
	for i, id := range ids {
		out[i] = &heartlogv1.Heartbeat{Id: id, Time: float64(day.Add(time.Duration(i) * time.Minute).Unix())}
	}
	return out
}

func refused(errs []error) (n int) {
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}

func TestDayCounterCountsDistinctIDsAndGivesBack(t *testing.T) {
	c := newDayCounter(3, 1<<20, 1000)
	day := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	sizes := []int{100, 100, 100, 100}
	errs := make([]error, 4)
	c.admit("u", dayBeats(day, "a", "b", "a", "c"), sizes, errs)
	if refused(errs) != 0 {
		t.Fatalf("a, b, a, c under a cap of 3: %v", errs)
	}
	// d is a fourth distinct id; a is a resend.
	errs = make([]error, 2)
	a := c.admit("u", dayBeats(day, "a", "d"), sizes, errs)
	if errs[0] != nil || errs[1] == nil {
		t.Fatalf("resend a, new d: %v, want a taken and d refused", errs)
	}
	// Another user's day, and the same user's next day, count apart.
	errs = make([]error, 1)
	c.admit("v", dayBeats(day, "d"), sizes, errs)
	c.admit("u", dayBeats(day.Add(24*time.Hour), "d"), sizes, errs)
	if errs[0] != nil {
		t.Fatalf("other user-days: %v", errs)
	}
	// What a failed publish gives back can be taken again.
	c2 := newDayCounter(1, 1<<20, 1000)
	errs = make([]error, 1)
	a = c2.admit("u", dayBeats(day, "x"), sizes, errs)
	c2.release(a)
	c2.admit("u", dayBeats(day, "y"), sizes, errs)
	if errs[0] != nil {
		t.Fatalf("after release: %v", errs[0])
	}
}

func TestDayCounterBoundsBytesAndMemory(t *testing.T) {
	c := newDayCounter(1000, 250, 10)
	day := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	errs := make([]error, 3)
	c.admit("u", dayBeats(day, "a", "b", "c"), []int{100, 100, 100}, errs)
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Fatalf("300 bytes under a cap of 250: %v", errs)
	}
	// Past 10 remembered ids the least recently used user-days go.
	for i := range 20 {
		c.admit(fmt.Sprintf("user%d", i), dayBeats(day, "z"), []int{1}, make([]error, 1))
	}
	if c.ids > 10 || len(c.days) > 10 {
		t.Fatalf("%d ids in %d user-days remembered, want at most 10", c.ids, len(c.days))
	}
}
