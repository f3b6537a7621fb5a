package stats

import (
	"cmp"
	"slices"
	"unsafe"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Attrs are the attributes of a heartbeat that accounting reads, as
// strings (Activity.Attrs).
type Attrs struct {
	Entity, Type, Category, Project, Branch, Language string
	Editor, OperatingSystem, Machine                  string
	Dependencies                                      []string
}

// Beat is a heartbeat as accounting reads it: its time, in Unix
// nanoseconds rounded to the microsecond (see nanos), the index of its
// attribute set in its Activity's Sets and is_write. A Beat has no id: a
// slice of Beats is in (time, id) order already, and Beats of one time
// keep their order.
type Beat struct {
	Nanos   int64
	Set     uint32
	IsWrite bool
}

// Fields of a Set's Names: the single-valued dimensions first, in
// summer's order (dimProject ..), then the type, which no total reads.
const (
	FieldProject = iota
	FieldLanguage
	FieldEditor
	FieldOS
	FieldMachine
	FieldBranch
	FieldCategory
	FieldEntity
	FieldType
	NumFields
)

// Set is an attribute set: its names as indexes into its Activity's
// Strings (by Field) and its dependency list as an index into Lists.
type Set struct {
	Names [NumFields]uint32
	Deps  uint32
}

// Activity is heartbeats as accounting reads them. Beats and Sets hold
// no pointers, so a year of them (365,000 beats, and as many sets when
// attributes change at every heartbeat) is memory the garbage collector
// does not scan; the strings and lists are stored once each per day.
// Beats sharing their attributes mostly share a set, which is what lets
// Summarize add up per set and look names up per set, not per beat.
type Activity struct {
	Beats   []Beat
	Sets    []Set
	Strings []string
	Lists   [][]string
}

// Attrs returns the attributes of set as strings.
func (a *Activity) Attrs(set uint32) Attrs {
	s := &a.Sets[set]
	str := func(f int) string { return a.Strings[s.Names[f]] }
	return Attrs{
		Entity: str(FieldEntity), Type: str(FieldType), Category: str(FieldCategory),
		Project: str(FieldProject), Branch: str(FieldBranch), Language: str(FieldLanguage),
		Editor: str(FieldEditor), OperatingSystem: str(FieldOS), Machine: str(FieldMachine),
		Dependencies: a.Lists[s.Deps],
	}
}

// Sizes are the lengths of an Activity's slices, or where a part of one
// starts in a larger one.
type Sizes struct{ Beats, Sets, Strings, Lists int }

// Size returns the lengths of a's slices.
func (a *Activity) Size() Sizes {
	return Sizes{len(a.Beats), len(a.Sets), len(a.Strings), len(a.Lists)}
}

// Add returns the sum of s and t.
func (s Sizes) Add(t Sizes) Sizes {
	return Sizes{s.Beats + t.Beats, s.Sets + t.Sets, s.Strings + t.Strings, s.Lists + t.Lists}
}

// MakeActivity allocates an Activity of the given sizes, for parts to be
// written into (Part): one allocation per slice whatever the number of
// parts.
func MakeActivity(n Sizes) Activity {
	return Activity{Beats: make([]Beat, n.Beats), Sets: make([]Set, n.Sets),
		Strings: make([]string, n.Strings), Lists: make([][]string, n.Lists)}
}

// Part returns the window [from, to) of each of a's slices.
func (a *Activity) Part(from, to Sizes) Activity {
	return Activity{Beats: a.Beats[from.Beats:to.Beats], Sets: a.Sets[from.Sets:to.Sets],
		Strings: a.Strings[from.Strings:to.Strings], Lists: a.Lists[from.Lists:to.Lists]}
}

// CopyTo copies a into dst, a Part of a larger Activity starting at at,
// shifting the indexes so that they point into the larger one.
func (a *Activity) CopyTo(dst Activity, at Sizes) {
	copy(dst.Strings, a.Strings)
	copy(dst.Lists, a.Lists)
	for i, s := range a.Sets {
		for f := range s.Names {
			s.Names[f] += uint32(at.Strings)
		}
		s.Deps += uint32(at.Lists)
		dst.Sets[i] = s
	}
	for i, b := range a.Beats {
		b.Set += uint32(at.Sets)
		dst.Beats[i] = b
	}
}

// ActivityOf converts heartbeats (in any order; nil ones are skipped)
// into an Activity in (time, id) order, consecutive heartbeats with the
// same attributes sharing a set. The Activity shares the heartbeats'
// strings and dependency lists.
func ActivityOf(hbs []*heartlogv1.Heartbeat) Activity {
	if !slices.IsSortedFunc(hbs, compareHB) {
		hbs = sortedCopy(hbs)
	}
	out := Activity{Beats: make([]Beat, 0, len(hbs)), Lists: [][]string{nil}}
	strs := newInterner[string](&out.Strings)
	str := func(s string) uint32 { return strs.id(s, s) }
	// Lists are interned by identity: decoded heartbeats share their
	// lists (dayfile.Decode interns them), and a list stored twice is only
	// a little more work.
	type listKey struct {
		first *string
		n     int
	}
	lists := newInterner[listKey](&out.Lists)
	list := func(deps []string) uint32 {
		if len(deps) == 0 {
			return 0
		}
		return lists.id(listKey{unsafe.SliceData(deps), len(deps)}, deps)
	}
	var prev *heartlogv1.Heartbeat
	for _, hb := range hbs {
		if hb == nil {
			continue
		}
		if prev == nil || !sameAttrs(prev, hb) {
			out.Sets = append(out.Sets, out.setOf(hb, prev, str, list))
		}
		prev = hb
		set := uint32(len(out.Sets) - 1)
		out.Beats = append(out.Beats, Beat{Nanos: nanos(hb), Set: set, IsWrite: hb.GetIsWrite()})
	}
	return out
}

// setOf returns hb's attribute set, its strings interned with str and its
// dependency list with list. A name equal to
// prev's (consecutive heartbeats mostly differ in one or two) takes the
// last set's id without a lookup.
func (a *Activity) setOf(hb, prev *heartlogv1.Heartbeat, str func(string) uint32, list func([]string) uint32) Set {
	names := [NumFields]string{
		FieldProject: hb.GetProject(), FieldLanguage: hb.GetLanguage(), FieldEditor: hb.GetEditor(),
		FieldOS: hb.GetOperatingSystem(), FieldMachine: hb.GetMachine(), FieldBranch: hb.GetBranch(),
		FieldCategory: hb.GetCategory(), FieldEntity: hb.GetEntity(), FieldType: hb.GetType(),
	}
	var s Set
	if prev != nil {
		s = a.Sets[len(a.Sets)-1]
	}
	for f, name := range names {
		if prev == nil || name != a.Strings[s.Names[f]] {
			s.Names[f] = str(name)
		}
	}
	s.Deps = list(hb.GetDependencies())
	return s
}

// interner gives each distinct key the index of its value in a table,
// appending the value the first time the key is seen.
type interner[K comparable, V any] struct {
	ids   map[K]uint32
	table *[]V
}

func newInterner[K comparable, V any](table *[]V) interner[K, V] {
	return interner[K, V]{ids: make(map[K]uint32), table: table}
}

func (in interner[K, V]) id(k K, v V) uint32 {
	id, ok := in.ids[k]
	if !ok {
		id = uint32(len(*in.table))
		in.ids[k] = id
		*in.table = append(*in.table, v)
	}
	return id
}

// sameAttrs reports whether a and b have the same attributes.
func sameAttrs(a, b *heartlogv1.Heartbeat) bool {
	return a.GetEntity() == b.GetEntity() && a.GetType() == b.GetType() && a.GetCategory() == b.GetCategory() &&
		a.GetProject() == b.GetProject() && a.GetBranch() == b.GetBranch() && a.GetLanguage() == b.GetLanguage() &&
		a.GetEditor() == b.GetEditor() && a.GetOperatingSystem() == b.GetOperatingSystem() &&
		a.GetMachine() == b.GetMachine() && slices.Equal(a.GetDependencies(), b.GetDependencies())
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
