package stats

import (
	"cmp"
	"slices"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Attrs are the attributes of a heartbeat that accounting reads. Beats
// that share their attributes share one Attrs (consecutive heartbeats
// mostly do), which is what keeps a year of Beats small and lets
// Summarize add up a run of them without comparing strings. An Attrs is
// never modified once a Beat points to it.
type Attrs struct {
	Entity, Type, Category, Project, Branch, Language string
	Editor, OperatingSystem, Machine                  string
	Dependencies                                      []string
}

// Beat is a heartbeat as accounting reads it: its time, in Unix
// nanoseconds rounded to the microsecond (see nanos), its attributes and
// is_write. A Beat has no id: a slice of Beats is in (time, id) order
// already, and Beats of one time keep their order.
type Beat struct {
	Nanos   int64
	Attrs   *Attrs
	IsWrite bool
}

// Beats converts heartbeats (in any order; nil ones are skipped) into
// Beats in (time, id) order, consecutive ones with the same attributes
// sharing an Attrs. The Beats share the heartbeats' strings and
// dependency lists.
func Beats(hbs []*heartlogv1.Heartbeat) []Beat {
	if !slices.IsSortedFunc(hbs, compareHB) {
		hbs = sortedCopy(hbs)
	}
	out := make([]Beat, 0, len(hbs))
	var a *Attrs
	for _, hb := range hbs {
		if hb == nil {
			continue
		}
		if a == nil || !a.of(hb) {
			a = &Attrs{
				Entity: hb.GetEntity(), Type: hb.GetType(), Category: hb.GetCategory(),
				Project: hb.GetProject(), Branch: hb.GetBranch(), Language: hb.GetLanguage(),
				Editor: hb.GetEditor(), OperatingSystem: hb.GetOperatingSystem(), Machine: hb.GetMachine(),
				Dependencies: hb.GetDependencies(),
			}
		}
		out = append(out, Beat{Nanos: nanos(hb), Attrs: a, IsWrite: hb.GetIsWrite()})
	}
	return out
}

// of reports whether a are hb's attributes.
func (a *Attrs) of(hb *heartlogv1.Heartbeat) bool {
	return a.Entity == hb.GetEntity() && a.Type == hb.GetType() && a.Category == hb.GetCategory() &&
		a.Project == hb.GetProject() && a.Branch == hb.GetBranch() && a.Language == hb.GetLanguage() &&
		a.Editor == hb.GetEditor() && a.OperatingSystem == hb.GetOperatingSystem() &&
		a.Machine == hb.GetMachine() && slices.Equal(a.Dependencies, hb.GetDependencies())
}

// sortedBeats returns beats in time order: beats itself when it is,
// else a copy sorted stably (Beats of one time keep their order).
func sortedBeats(beats []Beat) []Beat {
	byTime := func(a, b Beat) int { return cmp.Compare(a.Nanos, b.Nanos) }
	if slices.IsSortedFunc(beats, byTime) {
		return beats
	}
	c := slices.Clone(beats)
	slices.SortStableFunc(c, byTime)
	return c
}
