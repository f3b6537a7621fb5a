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

// Breakdown dimensions of Totals, in accumulator order.
const (
	dimProject = iota
	dimLanguage
	dimEditor
	dimOS
	dimMachine
	dimBranch
	dimCategory
	dimEntity
	numSingle     // dimensions with one value per heartbeat
	dimDependency = numSingle
	numDims       = numSingle + 1
)

type dayAcc struct {
	total time.Duration
	by    [numDims][]entry
}

// entry is a name's time within one day, the name interned in a table.
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

// summer accumulates credited time per day and dimension. Consecutive
// heartbeats mostly share their attributes, so each dimension keeps a
// running (day, name, amount) and only looks its name up when the name or
// the day changes: a few string compares per heartbeat instead of nine map
// updates.
type summer struct {
	omitEntities bool
	days         []dayAcc
	tables       [numDims]table
	run          [numSingle]struct {
		day  int
		name string
		d    time.Duration
		set  bool
	}
	deps struct {
		day  int
		list []string
		d    time.Duration
		set  bool
	}
	last struct { // the run of one Attrs
		attrs *Attrs
		day   int
		d     time.Duration
		set   bool
	}
}

func newSummer(n int) summer {
	s := summer{days: make([]dayAcc, n)}
	for k := range s.tables {
		s.tables[k].ids = make(map[string]int32)
	}
	return s
}

func (s *summer) credit(day int, a *Attrs, d time.Duration) {
	s.days[day].total += d
	// A run of beats sharing their Attrs (the usual case) adds up without
	// a string compare.
	if s.last.set && s.last.attrs == a && s.last.day == day {
		s.last.d += d
		return
	}
	s.flushLast()
	s.last.attrs, s.last.day, s.last.d, s.last.set = a, day, d, true
}

// flushLast passes the run of one Attrs on to the dimensions' runs.
func (s *summer) flushLast() {
	if !s.last.set {
		return
	}
	a, day, d := s.last.attrs, s.last.day, s.last.d
	s.last.set = false
	s.step(dimProject, day, a.Project, d)
	s.step(dimLanguage, day, a.Language, d)
	s.step(dimEditor, day, a.Editor, d)
	s.step(dimOS, day, a.OperatingSystem, d)
	s.step(dimMachine, day, a.Machine, d)
	s.step(dimBranch, day, a.Branch, d)
	s.step(dimCategory, day, a.Category, d)
	if !s.omitEntities {
		s.step(dimEntity, day, a.Entity, d)
	}
	deps := a.Dependencies
	if s.deps.set && s.deps.day == day && slices.Equal(s.deps.list, deps) {
		s.deps.d += d
		return
	}
	s.flushDeps()
	s.deps.day, s.deps.list, s.deps.d, s.deps.set = day, deps, d, true
}

func (s *summer) step(k, day int, name string, d time.Duration) {
	r := &s.run[k]
	if r.set && r.day == day && r.name == name {
		r.d += d
		return
	}
	if r.set {
		s.add(k, r.day, r.name, r.d)
	}
	r.day, r.name, r.d, r.set = day, name, d, true
}

func (s *summer) flushDeps() {
	if !s.deps.set {
		return
	}
	list := s.deps.list
	for i, dep := range list {
		if dep == "" || slices.Contains(list[:i], dep) {
			continue
		}
		s.add(dimDependency, s.deps.day, dep, s.deps.d)
	}
	s.deps.set = false
}

func (s *summer) add(k, day int, name string, d time.Duration) {
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
	es := &s.days[day].by[k]
	if t.stamp[id] == int32(day+1) {
		(*es)[t.slot[id]].d += d
		return
	}
	t.stamp[id], t.slot[id] = int32(day+1), int32(len(*es))
	*es = append(*es, entry{id, d})
}

func (s *summer) flush() {
	s.flushLast()
	for k := range numSingle {
		if r := &s.run[k]; r.set {
			s.add(k, r.day, r.name, r.d)
			r.set = false
		}
	}
	s.flushDeps()
}

// Summarize returns one Day for every local day from opts.Start to opts.End
// (both included, in opts.Location), empty days included with zero totals.
//
// hbs are one user's heartbeats in any order (sorted input is used as is,
// anything else is sorted on a copy); they should include those up to
// MaxTimeout either side of the range, which is what fetching UTCDays
// gives. Time credited outside the range is dropped.
func Summarize(hbs []*heartlogv1.Heartbeat, opts Options) ([]Day, error) {
	return SummarizeBeats(Beats(hbs), opts)
}

// SummarizeBeats is Summarize of heartbeats as Beats (see Beats; the read
// path makes them from day digests without building heartbeats).
func SummarizeBeats(beats []Beat, opts Options) ([]Day, error) {
	timeout, err := opts.timeout()
	if err != nil {
		return nil, err
	}
	b, err := opts.bounds()
	if err != nil {
		return nil, err
	}
	n := len(b) - 1
	s := newSummer(n)
	s.omitEntities = opts.OmitEntities
	first, last := b[0], b[n]
	cur := 0 // index of the day of the current beat, when in range
	walk(beats, opts.WritesOnly, timeout, func(hb *Beat, gap int64, _ bool) {
		t := hb.Nanos
		end := t + gap
		if t >= last || end < first || (end == first && t < first) {
			return // credits nothing inside the range
		}
		if opts.Project != "" && hb.Attrs.Project != opts.Project {
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
			s.credit(day, hb.Attrs, time.Duration(to-from))
			if end <= b[day+1] {
				break
			}
			from = b[day+1]
		}
	})
	s.flush()

	loc := opts.location()
	var p presenter
	out := make([]Day, n)
	for i := range out {
		date := opts.Start.AddDays(i)
		out[i] = Day{Date: date, Range: NewRange(date, loc), Totals: s.totals(&s.days[i], &p)}
	}
	return out, nil
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
	s := newSummer(1)
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
