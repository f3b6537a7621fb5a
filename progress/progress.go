// Package progress is the arithmetic of a long command's progress line
// (replay, import, restore, verify, rebuild): the rate so far and the time
// left at that rate. It holds no state and prints nothing; each command
// keeps its own counts and its own line.
package progress

import "time"

// Rate is done per second over elapsed; 0 before any time has passed.
func Rate(done float64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return done / elapsed.Seconds()
}

// ETA is the time left to reach total at the rate so far; 0 when the rate
// is not known yet or total is reached (or unknown: 0 or less).
func ETA(done, total float64, elapsed time.Duration) time.Duration {
	r := Rate(done, elapsed)
	if r <= 0 || total <= done {
		return 0
	}
	return time.Duration((total - done) / r * float64(time.Second))
}
