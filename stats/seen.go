package stats

import (
	"cmp"
	"slices"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Seen is a value of one attribute (a project, a machine, a user agent)
// and the times of the first and last heartbeat carrying it.
type Seen struct {
	Value       string
	First, Last time.Time
}

// seenSet collects first and last sightings per value.
type seenSet map[string]*Seen

func (s seenSet) see(v string, at int64) {
	if v == "" {
		return
	}
	t := time.Unix(0, at).UTC()
	if e, ok := s[v]; ok {
		if t.Before(e.First) {
			e.First = t
		}
		if t.After(e.Last) {
			e.Last = t
		}
		return
	}
	s[v] = &Seen{Value: v, First: t, Last: t}
}

// list returns the sightings, most recently seen first, then by value.
func (s seenSet) list() []Seen {
	out := make([]Seen, 0, len(s))
	for _, e := range s {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Seen) int {
		return cmp.Or(b.Last.Compare(a.Last), cmp.Compare(a.Value, b.Value))
	})
	return out
}

// SeenIn returns the values of field (FieldProject, FieldMachine, ...) of
// act's beats in [from, to), with their first and last beat, most recently
// seen first. Empty values are left out.
func SeenIn(act Activity, field int, from, to time.Time) []Seen {
	lo, hi := from.UnixNano(), to.UnixNano()
	s := seenSet{}
	for _, b := range act.Beats {
		if b.Nanos >= lo && b.Nanos < hi {
			s.see(act.Strings[act.Sets[b.Set].Names[field]], b.Nanos)
		}
	}
	return s.list()
}

// UserAgentsIn returns the user agents of the heartbeats in [from, to),
// as SeenIn does for an Activity's fields (an Activity does not carry
// user agents, which no total reads).
func UserAgentsIn(hbs []*heartlogv1.Heartbeat, from, to time.Time) []Seen {
	lo, hi := from.UnixNano(), to.UnixNano()
	s := seenSet{}
	for _, hb := range hbs {
		if n := nanos(hb); n >= lo && n < hi {
			s.see(hb.GetUserAgent(), n)
		}
	}
	return s.list()
}

// MergeSeen combines sightings of several reads (a range read a month at a
// time): each value once, with its earliest First and latest Last, in
// SeenIn's order.
func MergeSeen(lists ...[]Seen) []Seen {
	s := seenSet{}
	for _, l := range lists {
		for _, e := range l {
			s.see(e.Value, e.First.UnixNano())
			s.see(e.Value, e.Last.UnixNano())
		}
	}
	return s.list()
}
