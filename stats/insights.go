package stats

import "time"

// Hours returns the time of durations in each local hour of the day in
// loc (nil: UTC), hour 0 first: a duration over an hour's end is split
// there.
func Hours(durations []Duration, loc *time.Location) [24]time.Duration {
	if loc == nil {
		loc = time.UTC
	}
	var out [24]time.Duration
	for _, d := range durations {
		t, end := d.Start.In(loc), d.Start.Add(d.Duration)
		for t.Before(end) {
			next := time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, loc)
			if !next.After(t) { // a zone's clock going back: the hour repeats
				next = t.Truncate(time.Hour).Add(time.Hour)
			}
			if next.After(end) {
				next = end
			}
			out[t.Hour()] += next.Sub(t)
			t = next.In(loc)
		}
	}
	return out
}

// WeekdayTotal is the time of one weekday over a range, and its average
// over the days of the range that are that weekday.
type WeekdayTotal struct {
	Weekday        time.Weekday
	Total, Average time.Duration
}

// Weekdays returns the time per weekday of days, Monday first.
func Weekdays(days []Day) [7]WeekdayTotal {
	var out [7]WeekdayTotal
	var n [7]int
	for _, d := range days {
		wd := d.Date.utc().Weekday()
		i := (int(wd) + 6) % 7 // Monday is 0
		out[i].Total += d.GrandTotal.Total
		n[i]++
	}
	for i := range out {
		out[i].Weekday = time.Weekday((i + 1) % 7)
		if n[i] > 0 {
			out[i].Average = out[i].Total / time.Duration(n[i])
		}
	}
	return out
}

// BestDay returns the day with the most time, the earliest of equals; ok
// is false when no day has any.
func BestDay(days []Day) (best Day, ok bool) {
	for _, d := range days {
		if d.GrandTotal.Total > 0 && (!ok || d.GrandTotal.Total > best.GrandTotal.Total) {
			best, ok = d, true
		}
	}
	return best, ok
}
