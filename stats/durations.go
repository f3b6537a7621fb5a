package stats

import (
	"fmt"
	"slices"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Duration is a stretch of continuous activity on one key: consecutive
// heartbeats with the same project (and the same SliceBy attribute), each
// within the timeout of the next. Its attributes are those of its first
// heartbeat; fields are raw heartbeat values (an empty project stays "").
type Duration struct {
	Start    time.Time // in Options.Location
	Duration time.Duration

	Project      string
	Language     string
	Entity       string
	Type         string
	Branch       string
	Category     string
	Editor       string
	OS           string
	Machine      string
	Dependencies []string
}

// Durations joins heartbeats into durations, WakaTime's durations endpoint.
//
// A duration runs from its first heartbeat to the end of its last one's
// credited gap: when the next heartbeat has another key but is within the
// timeout, the duration ends at that heartbeat (the gap counts toward the
// earlier one); when the next heartbeat is beyond the timeout, it ends at
// its own last heartbeat. A lone heartbeat gives a duration of 0.
//
// Keys: the project always (a duration carries a project in WakaTime), and
// SliceBy when it is not ByProject. With opts.Start and opts.End set,
// durations are clipped to those local days and split at each local
// midnight, so that one day's durations add up to that day's Summarize
// grand total; otherwise they are returned whole. opts.Project keeps only
// that project's durations; WritesOnly and Timeout act as in Summarize.
func Durations(hbs []*heartlogv1.Heartbeat, opts Options) ([]Duration, error) {
	timeout, err := opts.timeout()
	if err != nil {
		return nil, err
	}
	slice := opts.SliceBy
	if slice == "" {
		slice = ByProject
	}
	if !slices.Contains([]Dimension{ByProject, ByEntity, ByLanguage, ByDependencies, ByOS, ByEditor, ByCategory, ByMachine, ByBranch}, slice) {
		return nil, fmt.Errorf("%w %q", ErrSliceBy, slice)
	}
	var b []int64
	if !opts.Start.IsZero() || !opts.End.IsZero() {
		if b, err = opts.bounds(); err != nil {
			return nil, err
		}
	}
	loc := opts.location()

	var out []Duration
	emit := func(first *heartlogv1.Heartbeat, start, end int64) {
		if opts.Project != "" && first.GetProject() != opts.Project {
			return
		}
		if b == nil {
			out = append(out, newDuration(first, start, end, loc))
			return
		}
		n := len(b) - 1
		if start == end {
			if start >= b[0] && start < b[n] {
				out = append(out, newDuration(first, start, end, loc))
			}
			return
		}
		for day := range n {
			from, to := max(start, b[day]), min(end, b[day+1])
			if from < to {
				out = append(out, newDuration(first, from, to, loc))
			}
		}
	}

	var (
		first      *heartlogv1.Heartbeat // first heartbeat of the open duration
		start, end int64
		open       bool // the open duration's last gap was counted
	)
	reset := func() { out, first, open = nil, nil, false }
	walk(hbs, opts.WritesOnly, timeout, reset, func(hb *heartlogv1.Heartbeat, t, gap int64, joined bool) {
		if first != nil && open && sameKey(first, hb, slice) {
			end = t + gap
		} else {
			if first != nil {
				emit(first, start, end)
			}
			first, start, end = hb, t, t+gap
		}
		open = joined
	})
	if first != nil {
		emit(first, start, end)
	}
	return out, nil
}

func newDuration(hb *heartlogv1.Heartbeat, start, end int64, loc *time.Location) Duration {
	return Duration{
		Start:        time.Unix(0, start).In(loc),
		Duration:     time.Duration(end - start),
		Project:      hb.GetProject(),
		Language:     hb.GetLanguage(),
		Entity:       hb.GetEntity(),
		Type:         hb.GetType(),
		Branch:       hb.GetBranch(),
		Category:     hb.GetCategory(),
		Editor:       hb.GetEditor(),
		OS:           hb.GetOperatingSystem(),
		Machine:      hb.GetMachine(),
		Dependencies: slices.Clone(hb.GetDependencies()),
	}
}

func sameKey(a, b *heartlogv1.Heartbeat, slice Dimension) bool {
	if a.GetProject() != b.GetProject() {
		return false
	}
	switch slice {
	case ByEntity:
		return a.GetEntity() == b.GetEntity()
	case ByLanguage:
		return a.GetLanguage() == b.GetLanguage()
	case ByDependencies:
		return slices.Equal(a.GetDependencies(), b.GetDependencies())
	case ByOS:
		return a.GetOperatingSystem() == b.GetOperatingSystem()
	case ByEditor:
		return a.GetEditor() == b.GetEditor()
	case ByCategory:
		return a.GetCategory() == b.GetCategory()
	case ByMachine:
		return a.GetMachine() == b.GetMachine()
	case ByBranch:
		return a.GetBranch() == b.GetBranch()
	}
	return true
}
