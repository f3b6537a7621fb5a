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
	return DurationsOfBeats(ActivityOf(hbs), opts)
}

// DurationsOfBeats is Durations of heartbeats as an Activity (see
// ActivityOf).
func DurationsOfBeats(act Activity, opts Options) ([]Duration, error) {
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
	emit := func(first *Attrs, start, end int64) {
		if opts.Project != "" && first.Project != opts.Project {
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
		first      *Attrs // attributes of the open duration's first beat
		firstSet   uint32
		start, end int64
		open       bool // the open duration's last gap was counted
	)
	walk(act.Beats, opts.WritesOnly, timeout, func(hb *Beat, gap int64, joined bool) {
		t := hb.Nanos
		if first != nil && open && sameKey(&act, firstSet, hb.Set, slice) {
			end = t + gap
		} else {
			if first != nil {
				emit(first, start, end)
			}
			a := act.Attrs(hb.Set)
			first, firstSet, start, end = &a, hb.Set, t, t+gap
		}
		open = joined
	})
	if first != nil {
		emit(first, start, end)
	}
	return out, nil
}

func newDuration(a *Attrs, start, end int64, loc *time.Location) Duration {
	return Duration{
		Start:        time.Unix(0, start).In(loc),
		Duration:     time.Duration(end - start),
		Project:      a.Project,
		Language:     a.Language,
		Entity:       a.Entity,
		Type:         a.Type,
		Branch:       a.Branch,
		Category:     a.Category,
		Editor:       a.Editor,
		OS:           a.OperatingSystem,
		Machine:      a.Machine,
		Dependencies: slices.Clone(a.Dependencies),
	}
}

// sameKey reports whether sets a and b of act have the same key.
func sameKey(act *Activity, a, b uint32, slice Dimension) bool {
	if a == b {
		return true
	}
	sa, sb := &act.Sets[a], &act.Sets[b]
	eq := func(f int) bool { return act.Strings[sa.Names[f]] == act.Strings[sb.Names[f]] }
	if !eq(FieldProject) {
		return false
	}
	switch slice {
	case ByEntity:
		return eq(FieldEntity)
	case ByLanguage:
		return eq(FieldLanguage)
	case ByDependencies:
		return slices.Equal(act.Lists[sa.Deps], act.Lists[sb.Deps])
	case ByOS:
		return eq(FieldOS)
	case ByEditor:
		return eq(FieldEditor)
	case ByCategory:
		return eq(FieldCategory)
	case ByMachine:
		return eq(FieldMachine)
	case ByBranch:
		return eq(FieldBranch)
	}
	return true
}
