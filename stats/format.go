package stats

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Item is one row of a breakdown (a project, a language, ...) in WakaTime's
// summaries shape. Total is the exact amount; every other field is derived
// from it by NewItem and is what the JSON carries.
type Item struct {
	Name  string        `json:"name"`
	Total time.Duration `json:"-"`

	TotalSeconds float64 `json:"total_seconds"`
	// Percent of the day's (or range's) grand total, rounded to 2 decimals.
	Percent float64 `json:"percent"`
	// Digital is "H:MM:SS", as WakaTime's summaries items carry it (the
	// grand total's digital has no seconds; see Digital).
	Digital string `json:"digital"`
	Decimal string `json:"decimal"`
	Text    string `json:"text"`
	Hours   int    `json:"hours"`
	Minutes int    `json:"minutes"`
	Seconds int    `json:"seconds"`
}

// GrandTotal is the total of a day or range in WakaTime's grand_total shape.
type GrandTotal struct {
	Total time.Duration `json:"-"`

	TotalSeconds float64 `json:"total_seconds"`
	// Digital is "H:MM".
	Digital string `json:"digital"`
	Decimal string `json:"decimal"`
	Text    string `json:"text"`
	Hours   int    `json:"hours"`
	Minutes int    `json:"minutes"`
}

// NewItem returns the presentation of d under name, as a share of total.
func NewItem(name string, d, total time.Duration) Item {
	h, m, sec := clock(d)
	var buf [64]byte // the three strings share one allocation
	b := appendText(buf[:0], h, m, sec)
	nt := len(b)
	b = appendDigital(b, h, m, sec, true)
	nd := len(b)
	b = appendDecimal(b, h, m)
	s := string(b)
	return Item{
		Name:         name,
		Total:        d,
		TotalSeconds: d.Seconds(),
		Percent:      Percent(d, total),
		Text:         s[:nt],
		Digital:      s[nt:nd],
		Decimal:      s[nd:],
		Hours:        int(h),
		Minutes:      int(m),
		Seconds:      int(sec),
	}
}

// NewGrandTotal returns the presentation of a grand total d.
func NewGrandTotal(d time.Duration) GrandTotal {
	h, m, sec := clock(d)
	var buf [64]byte
	b := appendText(buf[:0], h, m, sec)
	nt := len(b)
	b = appendDigital(b, h, m, sec, false)
	nd := len(b)
	b = appendDecimal(b, h, m)
	s := string(b)
	return GrandTotal{
		Total:        d,
		TotalSeconds: d.Seconds(),
		Text:         s[:nt],
		Digital:      s[nt:nd],
		Decimal:      s[nd:],
		Hours:        int(h),
		Minutes:      int(m),
	}
}

// clock splits d into whole hours, minutes (0-59) and seconds (0-59),
// truncating: 10602.609 s is 2 h 56 min 42 s, as WakaTime shows it.
// Negative durations count as zero.
func clock(d time.Duration) (h, m, s int64) {
	if d < 0 {
		d = 0
	}
	sec := int64(d / time.Second)
	return sec / 3600, sec % 3600 / 60, sec % 60
}

// Text is WakaTime's human form of a duration: "0 secs", "1 sec", "59 secs",
// "1 min", "59 mins", "1 hr", "1 hr 5 mins", "3 hrs". Seconds are shown only
// under a minute; every unit is truncated, never rounded.
func Text(d time.Duration) string {
	h, m, s := clock(d)
	return string(appendText(nil, h, m, s))
}

func appendText(b []byte, h, m, s int64) []byte {
	switch {
	case h == 0 && m == 0:
		return appendUnit(b, s, "sec")
	case h == 0:
		return appendUnit(b, m, "min")
	case m == 0:
		return appendUnit(b, h, "hr")
	default:
		b = appendUnit(b, h, "hr")
		b = append(b, ' ')
		return appendUnit(b, m, "min")
	}
}

func appendUnit(b []byte, n int64, unit string) []byte {
	b = strconv.AppendInt(b, n, 10)
	b = append(b, ' ')
	b = append(b, unit...)
	if n != 1 {
		b = append(b, 's')
	}
	return b
}

// Digital is "H:MM" (hours unbounded, minutes truncated): 5400 s is "1:30".
func Digital(d time.Duration) string {
	h, m, s := clock(d)
	return string(appendDigital(nil, h, m, s, false))
}

// DigitalHMS is "H:MM:SS": 5400 s is "1:30:00".
func DigitalHMS(d time.Duration) string {
	h, m, s := clock(d)
	return string(appendDigital(nil, h, m, s, true))
}

func appendDigital(b []byte, h, m, s int64, withSeconds bool) []byte {
	b = strconv.AppendInt(b, h, 10)
	b = append(b, ':')
	b = append2(b, m)
	if withSeconds {
		b = append(b, ':')
		b = append2(b, s)
	}
	return b
}

// Decimal is hours as a decimal with two places, computed from whole hours
// and whole minutes the way WakaTime does (2254 s = 37 min is "0.62", not
// 2254/3600 = "0.63"): hours + round(minutes*100/60)/100. No half-way case
// exists (100*m/60 never ends in .5), so the rounding is unambiguous.
func Decimal(d time.Duration) string {
	h, m, _ := clock(d)
	return string(appendDecimal(nil, h, m))
}

func appendDecimal(b []byte, h, m int64) []byte {
	b = strconv.AppendInt(b, h, 10)
	b = append(b, '.')
	return append2(b, (m*100+30)/60) // round(m*100/60); at most 98 for m = 59
}

// Percent is part as a percentage of total, rounded to 2 decimals; 0 when
// total is not positive.
func Percent(part, total time.Duration) float64 {
	if total <= 0 {
		return 0
	}
	return math.Round(float64(part)/float64(total)*10000) / 100
}

// append2 appends n (0..99) as two digits.
func append2(b []byte, n int64) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

// presenter builds the Items of one day. All the strings of a day's items
// share one allocation: a year of summaries has tens of thousands of items,
// built next to a large heap of heartbeats, where every allocation brings
// the next garbage collection closer.
type presenter struct {
	buf  []byte  // text, digital and decimal of every pending item, in order
	ends []int   // end of each of those strings in buf
	refs []*Item // the pending items
	tmp  []entry // sort scratch
}

// items returns the Items of entries (ids into names), sorted by total
// descending, then name ascending. It never returns nil, so that JSON shows
// [] for an empty list. Text, Digital and Decimal are set by done.
func (p *presenter) items(es []entry, names []string, total time.Duration) []Item {
	p.tmp = append(p.tmp[:0], es...)
	slices.SortFunc(p.tmp, func(a, b entry) int {
		if c := cmp.Compare(b.d, a.d); c != 0 {
			return c
		}
		return strings.Compare(names[a.id], names[b.id])
	})
	out := make([]Item, len(p.tmp))
	for i, e := range p.tmp {
		h, m, sec := clock(e.d)
		out[i] = Item{
			Name:         names[e.id],
			Total:        e.d,
			TotalSeconds: e.d.Seconds(),
			Percent:      Percent(e.d, total),
			Hours:        int(h),
			Minutes:      int(m),
			Seconds:      int(sec),
		}
		p.refs = append(p.refs, &out[i])
	}
	return out
}

// done builds the strings of every item since the last done.
func (p *presenter) done() {
	p.buf, p.ends = p.buf[:0], p.ends[:0]
	for _, it := range p.refs {
		h, m, sec := clock(it.Total)
		p.buf = appendText(p.buf, h, m, sec)
		p.ends = append(p.ends, len(p.buf))
		p.buf = appendDigital(p.buf, h, m, sec, true)
		p.ends = append(p.ends, len(p.buf))
		p.buf = appendDecimal(p.buf, h, m)
		p.ends = append(p.ends, len(p.buf))
	}
	all := string(p.buf)
	from := 0
	for i, it := range p.refs {
		e := p.ends[3*i : 3*i+3]
		it.Text, it.Digital, it.Decimal = all[from:e[0]], all[e[0]:e[1]], all[e[1]:e[2]]
		from = e[2]
	}
	clear(p.refs)
	p.refs = p.refs[:0]
}
