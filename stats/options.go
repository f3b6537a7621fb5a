package stats

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Timeouts, in minutes as WakaTime's keystroke timeout setting counts them.
const (
	DefaultTimeoutMinutes = 15
	MinTimeoutMinutes     = 1
	MaxTimeoutMinutes     = 60

	// MaxTimeout is the longest gap that can ever be counted; UTCDays widens
	// a range by this much on each side.
	MaxTimeout = MaxTimeoutMinutes * time.Minute
)

var (
	// ErrTimeout is wrapped by the error for a timeout outside 1..60 minutes.
	ErrTimeout = errors.New("stats: timeout must be 1 to 60 minutes")
	// ErrRange is wrapped by the error for a missing or reversed day range.
	ErrRange = errors.New("stats: invalid day range")
	// ErrSliceBy is wrapped by the error for an unknown Options.SliceBy.
	ErrSliceBy = errors.New("stats: unknown slice_by")
)

// UnknownName labels time whose heartbeats left a field empty (no project,
// no branch, ...), in summary items. Empty dependencies are simply skipped.
const UnknownName = "Unknown"

// Dimension names a heartbeat attribute durations can be sliced by. The
// values are WakaTime's slice_by values.
type Dimension string

const (
	ByProject      Dimension = "project"
	ByEntity       Dimension = "entity"
	ByLanguage     Dimension = "language"
	ByDependencies Dimension = "dependencies"
	ByOS           Dimension = "os"
	ByEditor       Dimension = "editor"
	ByCategory     Dimension = "category"
	ByMachine      Dimension = "machine"
	ByBranch       Dimension = "branch"
)

// Options says which heartbeats count, how they join, and over which local
// days. The zero Options is valid for Durations (whole input, UTC, 15-minute
// timeout, sliced by project); Summarize needs Start and End.
type Options struct {
	// Location defines local days (nil: UTC).
	Location *time.Location
	// Start and End are the local days, both included. Required by
	// Summarize; optional for Durations (zero: no clipping to days).
	Start, End Date
	// Timeout is the keystroke timeout in minutes: the longest gap between
	// two heartbeats that still counts. 0 means DefaultTimeoutMinutes (15);
	// anything else outside 1..60 is an error (ErrTimeout).
	Timeout int
	// WritesOnly counts only heartbeats with is_write true: the others are
	// dropped before gaps are measured, as WakaTime does.
	WritesOnly bool
	// Project, when set, counts only time credited to heartbeats of that
	// project. Gaps are still measured across all heartbeats, so a project's
	// time is the same whether or not the filter is on.
	Project string
	// OmitEntities leaves Totals.Entities empty in Summarize (and
	// StatusBar). WakaTime's summaries carry entities only when a project
	// is asked for; over long ranges the per-file breakdown is most of the
	// work and of the memory.
	OmitEntities bool
	// SliceBy is the attribute on which Durations starts a new duration
	// besides the project ("" or ByProject: project only).
	SliceBy Dimension
}

// ValidateTimeout checks a timeout in minutes, as a user setting or a
// request's timeout parameter gives it: 1..60, no default.
func ValidateTimeout(minutes int) error {
	if minutes < MinTimeoutMinutes || minutes > MaxTimeoutMinutes {
		return fmt.Errorf("%w, got %d", ErrTimeout, minutes)
	}
	return nil
}

// ParseTimeout parses a timeout parameter in whole minutes ("15") and
// validates it.
func ParseTimeout(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%w, got %q", ErrTimeout, s)
	}
	return n, ValidateTimeout(n)
}

func (o Options) timeout() (int64, error) {
	if o.Timeout == 0 {
		return int64(DefaultTimeoutMinutes * time.Minute), nil
	}
	if err := ValidateTimeout(o.Timeout); err != nil {
		return 0, err
	}
	return int64(time.Duration(o.Timeout) * time.Minute), nil
}

func (o Options) location() *time.Location {
	if o.Location == nil {
		return time.UTC
	}
	return o.Location
}

// bounds returns the local midnights of Start .. End+1 as Unix nanoseconds:
// day i is [b[i], b[i+1]).
func (o Options) bounds() ([]int64, error) {
	if o.Start.IsZero() || o.End.IsZero() || o.End.Before(o.Start) {
		return nil, fmt.Errorf("%w: start %v, end %v", ErrRange, o.Start, o.End)
	}
	loc := o.location()
	n := o.Start.DaysUntil(o.End) + 1
	b := make([]int64, n+1)
	for i := range b {
		b[i] = time.Date(o.Start.Year, o.Start.Month, o.Start.Day+i, 0, 0, 0, 0, loc).UnixNano()
	}
	return b, nil
}

// nanos is a heartbeat's time as Unix nanoseconds, rounded to the
// microsecond. Plugins send fractional seconds with at most microsecond
// precision; rounding there keeps a gap between 1700000000.1 and
// 1700000060.1 at exactly 60 s, where converting the float directly (as
// heartbeat.TimeOf does, truncating) can land a few hundred nanoseconds
// short and show "59 secs".
func nanos(hb *heartlogv1.Heartbeat) int64 {
	return int64(math.Round(hb.GetTime()*1e6)) * 1000
}

// sortedCopy returns the heartbeats sorted by (time, id) in a new slice; the
// caller's slice is never modified.
func sortedCopy(hbs []*heartlogv1.Heartbeat) []*heartlogv1.Heartbeat {
	c := slices.Clone(hbs)
	slices.SortStableFunc(c, compareHB)
	return c
}

func compareHB(a, b *heartlogv1.Heartbeat) int {
	ta, tb := a.GetTime(), b.GetTime()
	switch {
	case ta < tb:
		return -1
	case ta > tb:
		return 1
	}
	return strings.Compare(a.GetId(), b.GetId())
}

// walk calls fn for every counted beat in time order, with the time
// credited to it: the gap to the next counted beat when that gap is at
// most timeout, else 0. joined reports whether the gap was counted (the
// next beat continues the same run). beats out of time order are sorted
// on a copy first (stably: beats of one time keep their order).
func walk(beats []Beat, writesOnly bool, timeout int64, fn func(b *Beat, gap int64, joined bool)) {
	beats = sortedBeats(beats)
	var prev *Beat
	for i := range beats {
		b := &beats[i]
		if writesOnly && !b.IsWrite {
			continue
		}
		if prev != nil {
			if gap := b.Nanos - prev.Nanos; gap <= timeout {
				fn(prev, gap, true)
			} else {
				fn(prev, 0, false)
			}
		}
		prev = b
	}
	if prev != nil {
		fn(prev, 0, false)
	}
}
