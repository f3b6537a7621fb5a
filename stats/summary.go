package stats

import (
	"slices"
	"strconv"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Totals is a grand total and its breakdowns, each sorted by time
// descending then name. The JSON field names are WakaTime's.
type Totals struct {
	GrandTotal       GrandTotal `json:"grand_total"`
	Projects         []Item     `json:"projects"`
	Languages        []Item     `json:"languages"`
	Editors          []Item     `json:"editors"`
	OperatingSystems []Item     `json:"operating_systems"`
	Machines         []Item     `json:"machines"`
	Branches         []Item     `json:"branches"`
	Categories       []Item     `json:"categories"`
	Entities         []Item     `json:"entities"`
	// Dependencies credits a heartbeat's time to each of its dependencies,
	// so these may add up to more than the grand total.
	Dependencies []Item `json:"dependencies"`
}

// Day is one local day of a summary.
type Day struct {
	Date  Date  `json:"-"`
	Range Range `json:"range"`
	Totals
}

// Range describes a local day in WakaTime's shape: start and end in UTC,
// end being the last second of the day.
type Range struct {
	Date     string    `json:"date"`  // 2021-08-30
	Start    time.Time `json:"start"` // 2021-08-29T18:30:00Z
	End      time.Time `json:"end"`   // 2021-08-30T18:29:59Z
	Text     string    `json:"text"`  // Mon Aug 30th 2021
	Timezone string    `json:"timezone"`
}

// NewRange returns the Range of local day d in loc (UTC when nil).
func NewRange(d Date, loc *time.Location) Range {
	if loc == nil {
		loc = time.UTC
	}
	start := d.Midnight(loc)
	return Range{
		Date:     d.String(),
		Start:    start.UTC(),
		End:      d.AddDays(1).Midnight(loc).Add(-time.Second).UTC(),
		Text:     start.Format("Mon Jan ") + strconv.Itoa(d.Day) + ordinal(d.Day) + start.Format(" 2006"),
		Timezone: loc.String(),
	}
}

func ordinal(n int) string {
	if n%100 >= 11 && n%100 <= 13 {
		return "th"
	}
	switch n % 10 {
	case 1:
		return "st"
	case 2:
		return "nd"
	case 3:
		return "rd"
	}
	return "th"
}

// Breakdown dimensions of Totals, in accumulator order: a Set's Names
// by Field, so that a set's name of dimension k is Names[k].
const (
	dimProject    = FieldProject
	dimLanguage   = FieldLanguage
	dimEditor     = FieldEditor
	dimOS         = FieldOS
	dimMachine    = FieldMachine
	dimBranch     = FieldBranch
	dimCategory   = FieldCategory
	dimEntity     = FieldEntity
	numSingle     = dimEntity + 1 // dimensions with one value per heartbeat
	dimDependency = numSingle
	numDims       = numSingle + 1
)

type dayAcc struct {
	total time.Duration
	sets  []entry // time per attribute set (id: the set's index)
	by    [numDims][]entry
}

// entry is a name's (or an attribute set's) time within one day, the
// name interned in a table.
type entry struct {
	id int32
	d  time.Duration
}

// table interns one dimension's names over the whole range, and remembers
// where each name's entry sits in the day being filled (valid while
// stamp[id] == day+1). Credits reach a dimension in day order, so one slot
// per name is enough.
type table struct {
	ids   map[string]int32
	names []string
	stamp []int32
	slot  []int32
}

// summer accumulates credited time per day and attribute set first, then
// spreads each set's total over its names (spread): attributes change at
// almost every heartbeat, so the per-heartbeat work is one slice update,
// and the name lookups are per set, not per heartbeat.
type summer struct {
	omitEntities bool
	days         []dayAcc
	tables       [numDims]table
	// where each set's entry sits in the day being filled, as in table
	setStamp, setSlot []int32
}

func newSummer(n, sets int) summer {
	s := summer{days: make([]dayAcc, n), setStamp: make([]int32, sets), setSlot: make([]int32, sets)}
	for k := range s.tables {
		s.tables[k].ids = make(map[string]int32)
	}
	return s
}

// credit adds d to set's time on day.
func (s *summer) credit(day int, set uint32, d time.Duration) {
	a := &s.days[day]
	a.total += d
	if s.setStamp[set] == int32(day+1) {
		a.sets[s.setSlot[set]].d += d
		return
	}
	s.setStamp[set], s.setSlot[set] = int32(day+1), int32(len(a.sets))
	a.sets = append(a.sets, entry{int32(set), d})
}

// nameIDs gives the name ids of an Activity's strings and dependency
// lists for spread, each looked up in its table once per request: a
// string is stored once per day, where sets are many a day.
type nameIDs struct {
	s   *summer
	act *Activity
	// single[k][i] is 1 + the id of string i in dimension k, 0 until
	// looked up.
	single [numSingle][]int32
	// lists[l] is the distinct non-empty dependencies of list l as
	// deps[from:to], valid when done.
	lists []struct {
		from, to int32
		done     bool
	}
	deps []int32
}

func newNameIDs(s *summer, act *Activity) *nameIDs {
	n := &nameIDs{s: s, act: act}
	for k := range n.single {
		n.single[k] = make([]int32, len(act.Strings))
	}
	n.lists = make([]struct {
		from, to int32
		done     bool
	}, len(act.Lists))
	return n
}

// name returns the id in dimension k of string str.
func (n *nameIDs) name(k int, str uint32) int32 {
	id := &n.single[k][str]
	if *id == 0 {
		*id = n.s.intern(k, n.act.Strings[str]) + 1
	}
	return *id - 1
}

// depIDs returns the ids of list l's distinct non-empty dependencies.
func (n *nameIDs) depIDs(l uint32) []int32 {
	e := &n.lists[l]
	if !e.done {
		list := n.act.Lists[l]
		e.from = int32(len(n.deps))
		for i, dep := range list {
			if dep != "" && !slices.Contains(list[:i], dep) {
				n.deps = append(n.deps, n.s.intern(dimDependency, dep))
			}
		}
		e.to, e.done = int32(len(n.deps)), true
	}
	return n.deps[e.from:e.to]
}

// spread adds each day's per-set time to the set's names.
func (s *summer) spread(act *Activity) {
	n := newNameIDs(s, act)
	singles := numSingle
	if s.omitEntities {
		singles = dimEntity
	}
	for day := range s.days {
		for _, e := range s.days[day].sets {
			set := &act.Sets[e.id]
			for k := range singles {
				s.addID(k, day, n.name(k, set.Names[k]), e.d)
			}
			for _, id := range n.depIDs(set.Deps) {
				s.addID(dimDependency, day, id, e.d)
			}
		}
	}
}

// intern returns name's id in dimension k's table ("" is UnknownName).
func (s *summer) intern(k int, name string) int32 {
	if name == "" {
		name = UnknownName
	}
	t := &s.tables[k]
	id, ok := t.ids[name]
	if !ok {
		id = int32(len(t.names))
		t.ids[name] = id
		t.names = append(t.names, name)
		t.stamp = append(t.stamp, 0)
		t.slot = append(t.slot, 0)
	}
	return id
}

func (s *summer) add(k, day int, name string, d time.Duration) {
	s.addID(k, day, s.intern(k, name), d)
}

// addID adds d to name id's time in dimension k on day.
func (s *summer) addID(k, day int, id int32, d time.Duration) {
	t := &s.tables[k]
	es := &s.days[day].by[k]
	if t.stamp[id] == int32(day+1) {
		(*es)[t.slot[id]].d += d
		return
	}
	t.stamp[id], t.slot[id] = int32(day+1), int32(len(*es))
	*es = append(*es, entry{id, d})
}

// Summarize returns one Day for every local day from opts.Start to opts.End
// (both included, in opts.Location), empty days included with zero totals.
//
// hbs are one user's heartbeats in any order (sorted input is used as is,
// anything else is sorted on a copy); they should include those up to
// MaxTimeout either side of the range, which is what fetching UTCDays
// gives. Time credited outside the range is dropped.
func Summarize(hbs []*heartlogv1.Heartbeat, opts Options) ([]Day, error) {
	return SummarizeBeats(ActivityOf(hbs), opts)
}

// SummarizeBeats is Summarize of heartbeats as an Activity (see
// ActivityOf; the read path makes it from day digests without building
// heartbeats).
func SummarizeBeats(act Activity, opts Options) ([]Day, error) {
	b, s := []int64(nil), summer{}
	err := credits(act, opts, func(bounds []int64) {
		b, s = bounds, newSummer(len(bounds)-1, len(act.Sets))
		s.omitEntities = opts.OmitEntities
	}, func(day int, set uint32, d time.Duration) { s.credit(day, set, d) })
	if err != nil {
		return nil, err
	}
	s.spread(&act)

	loc := opts.location()
	var p presenter
	out := make([]Day, len(b)-1)
	for i := range out {
		date := opts.Start.AddDays(i)
		out[i] = Day{Date: date, Range: NewRange(date, loc), Totals: s.totals(&s.days[i], &p)}
	}
	return out, nil
}

// DayTotal is a local day's grand total.
type DayTotal struct {
	Date  Date
	Total time.Duration
}

// DayTotals is SummarizeBeats' grand total of each day alone, as a heat
// map shows it: the same time to the nanosecond, without the breakdowns
// (most of the accounting's work).
func DayTotals(act Activity, opts Options) ([]DayTotal, error) {
	var out []DayTotal
	err := credits(act, opts, func(b []int64) {
		out = make([]DayTotal, len(b)-1)
		for i := range out {
			out[i].Date = opts.Start.AddDays(i)
		}
	}, func(day int, _ uint32, d time.Duration) { out[day].Total += d })
	return out, err
}

// credits calls credit with the time each beat earns on each day of opts'
// range (day 0 is opts.Start), after start with the days' bounds (day i
// is [bounds[i], bounds[i+1])).
func credits(act Activity, opts Options, start func(bounds []int64), credit func(day int, set uint32, d time.Duration)) error {
	timeout, err := opts.timeout()
	if err != nil {
		return err
	}
	b, err := opts.bounds()
	if err != nil {
		return err
	}
	start(b)
	n := len(b) - 1
	first, last := b[0], b[n]
	cur := 0 // index of the day of the current beat, when in range
	walk(act.Beats, opts.WritesOnly, timeout, func(hb *Beat, gap int64, _ bool) {
		t := hb.Nanos
		end := t + gap
		if t >= last || end < first || (end == first && t < first) {
			return // credits nothing inside the range
		}
		if opts.Project != "" && act.Strings[act.Sets[hb.Set].Names[FieldProject]] != opts.Project {
			return
		}
		from := t
		if t < first {
			from, cur = first, 0
		} else {
			for b[cur+1] <= t {
				cur++
			}
		}
		// [from, end) is at most MaxTimeout long and a day at least 23 h,
		// but a loop costs nothing and assumes neither.
		for day := cur; day < n; day++ {
			to := min(end, b[day+1])
			credit(day, hb.Set, time.Duration(to-from))
			if end <= b[day+1] {
				break
			}
			from = b[day+1]
		}
	})
	return nil
}

// totals presents one day's (or a combination's) accumulated time.
func (s *summer) totals(a *dayAcc, p *presenter) Totals {
	list := func(k int) []Item { return p.items(a.by[k], s.tables[k].names, a.total) }
	t := Totals{
		GrandTotal:       NewGrandTotal(a.total),
		Projects:         list(dimProject),
		Languages:        list(dimLanguage),
		Editors:          list(dimEditor),
		OperatingSystems: list(dimOS),
		Machines:         list(dimMachine),
		Branches:         list(dimBranch),
		Categories:       list(dimCategory),
		Entities:         list(dimEntity),
		Dependencies:     list(dimDependency),
	}
	p.done()
	return t
}

// Combine adds up days into one Totals (WakaTime's stats over a range, or a
// summaries response's cumulative total): the same names summed across
// days, percentages recomputed against the combined grand total.
func Combine(days []Day) Totals {
	s := newSummer(1, 0)
	for i := range days {
		t := &days[i].Totals
		s.days[0].total += t.GrandTotal.Total
		for k, list := range [numDims][]Item{
			t.Projects, t.Languages, t.Editors, t.OperatingSystems, t.Machines,
			t.Branches, t.Categories, t.Entities, t.Dependencies,
		} {
			for _, it := range list {
				s.add(k, 0, it.Name, it.Total)
			}
		}
	}
	var p presenter
	return s.totals(&s.days[0], &p)
}

// StatusBar returns today's Day, today being DateOf(now, opts.Location): what
// WakaTime's status_bar/today shows (grand_total.text such as
// "3 hrs 5 mins", and the items sorted so the top ones come first).
// opts.Start and opts.End are ignored. The last heartbeat so far counts 0 s
// until the next one arrives, exactly as in Summarize.
func StatusBar(hbs []*heartlogv1.Heartbeat, now time.Time, opts Options) (Day, error) {
	today := DateOf(now, opts.location())
	opts.Start, opts.End = today, today
	days, err := Summarize(hbs, opts)
	if err != nil {
		return Day{}, err
	}
	return days[0], nil
}
