package progress_test

import (
	"testing"
	"time"

	"heartlog/progress"
)

func TestRateAndETA(t *testing.T) {
	if r := progress.Rate(50, 10*time.Second); r != 5 {
		t.Errorf("rate %v, want 5", r)
	}
	if r := progress.Rate(50, 0); r != 0 {
		t.Errorf("rate with no time passed %v, want 0", r)
	}
	for _, c := range []struct {
		done, total float64
		elapsed     time.Duration
		want        time.Duration
	}{
		{50, 150, 10 * time.Second, 20 * time.Second},
		{0, 150, 10 * time.Second, 0},   // no rate yet
		{50, 150, 0, 0},                 // no time yet
		{150, 150, 10 * time.Second, 0}, // done
		{50, 0, 10 * time.Second, 0},    // total unknown
	} {
		if got := progress.ETA(c.done, c.total, c.elapsed); got != c.want {
			t.Errorf("ETA(%v, %v, %s) = %s, want %s", c.done, c.total, c.elapsed, got, c.want)
		}
	}
}
