package stats_test

import (
	"testing"
	"time"

	"heartlog/stats"
)

func TestFormatTable(t *testing.T) {
	s := time.Second
	cases := []struct {
		d                  time.Duration
		text, digital, hms string
		decimal            string
		h, m, sec          int
	}{
		// 0 s: nothing.
		{0, "0 secs", "0:00", "0:00:00", "0.00", 0, 0, 0},
		{1 * s, "1 sec", "0:00", "0:00:01", "0.00", 0, 0, 1},
		// 59 s: under a minute, shown in seconds; 0 whole minutes → 0.00.
		{59 * s, "59 secs", "0:00", "0:00:59", "0.00", 0, 0, 59},
		// 60 s = 1 min: 1/60 = 0.0166.. → 0.02.
		{60 * s, "1 min", "0:01", "0:01:00", "0.02", 0, 1, 0},
		// 61 s = 1 min 1 s: seconds are not shown past a minute.
		{61 * s, "1 min", "0:01", "0:01:01", "0.02", 0, 1, 1},
		// 3599 s = 59 min 59 s: truncated, never rounded up to 1 hr;
		// 59/60 = 0.9833.. → 0.98.
		{3599 * s, "59 mins", "0:59", "0:59:59", "0.98", 0, 59, 59},
		// 3600 s = 1 hr exactly: no "0 mins".
		{3600 * s, "1 hr", "1:00", "1:00:00", "1.00", 1, 0, 0},
		// 3660 s = 1 hr 1 min: 1 + 1/60 → 1.02.
		{3660 * s, "1 hr 1 min", "1:01", "1:01:00", "1.02", 1, 1, 0},
		// 3900 s = 1 hr 5 mins: 5/60 = 0.0833.. → 1.08.
		{3900 * s, "1 hr 5 mins", "1:05", "1:05:00", "1.08", 1, 5, 0},
		// 5400 s = 1 hr 30 mins: 30/60 = 0.5 → 1.50.
		{5400 * s, "1 hr 30 mins", "1:30", "1:30:00", "1.50", 1, 30, 0},
		// 10800 s = 3 hrs.
		{10800 * s, "3 hrs", "3:00", "3:00:00", "3.00", 3, 0, 0},
		// 11100 s = 3 hrs 5 mins.
		{11100 * s, "3 hrs 5 mins", "3:05", "3:05:00", "3.08", 3, 5, 0},
		// 36000 s = 10 hrs.
		{36000 * s, "10 hrs", "10:00", "10:00:00", "10.00", 10, 0, 0},
		// From a real WakaTime response: 10602.609 s → 2 h 56 min 42 s,
		// "2 hrs 56 mins", decimal 2 + 56/60 = 2.9333.. → "2.93".
		{10602609 * time.Millisecond, "2 hrs 56 mins", "2:56", "2:56:42", "2.93", 2, 56, 42},
		// Also from WakaTime: 2254.391 s = 37 min 34 s → "0.62" (37/60 =
		// 0.6166..), where 2254.391/3600 = 0.626 would give "0.63".
		{2254391 * time.Millisecond, "37 mins", "0:37", "0:37:34", "0.62", 0, 37, 34},
		// 0.116 s is "0 secs".
		{116 * time.Millisecond, "0 secs", "0:00", "0:00:00", "0.00", 0, 0, 0},
		// 149 hrs 37 mins (538637.85 s): hours are not wrapped at 24;
		// 37/60 = 0.6166.. → "149.62", as WakaTime's cumulative total.
		{538637850 * time.Millisecond, "149 hrs 37 mins", "149:37", "149:37:17", "149.62", 149, 37, 17},
	}
	for _, c := range cases {
		if got := stats.Text(c.d); got != c.text {
			t.Errorf("Text(%v) = %q, want %q", c.d, got, c.text)
		}
		if got := stats.Digital(c.d); got != c.digital {
			t.Errorf("Digital(%v) = %q, want %q", c.d, got, c.digital)
		}
		if got := stats.DigitalHMS(c.d); got != c.hms {
			t.Errorf("DigitalHMS(%v) = %q, want %q", c.d, got, c.hms)
		}
		if got := stats.Decimal(c.d); got != c.decimal {
			t.Errorf("Decimal(%v) = %q, want %q", c.d, got, c.decimal)
		}
		it := stats.NewItem("x", c.d, 36000*s)
		if it.Hours != c.h || it.Minutes != c.m || it.Seconds != c.sec {
			t.Errorf("NewItem(%v): %d h %d m %d s, want %d h %d m %d s", c.d, it.Hours, it.Minutes, it.Seconds, c.h, c.m, c.sec)
		}
		if it.Text != c.text || it.Digital != c.hms || it.Decimal != c.decimal || it.TotalSeconds != c.d.Seconds() {
			t.Errorf("NewItem(%v) = %+v", c.d, it)
		}
		g := stats.NewGrandTotal(c.d)
		if g.Text != c.text || g.Digital != c.digital || g.Decimal != c.decimal || g.Hours != c.h || g.Minutes != c.m {
			t.Errorf("NewGrandTotal(%v) = %+v", c.d, g)
		}
	}
}

func TestPercent(t *testing.T) {
	s := time.Second
	cases := []struct {
		part, total time.Duration
		want        float64
	}{
		{0, 36000 * s, 0},
		{59 * s, 36000 * s, 0.16},                                // 59/36000 = 0.1638..% → 0.16
		{60 * s, 36000 * s, 0.17},                                // 0.1666..% → 0.17
		{61 * s, 36000 * s, 0.17},                                // 0.1694..% → 0.17
		{3599 * s, 36000 * s, 10},                                // 9.9972..% → 10.00
		{3600 * s, 36000 * s, 10},                                // 10 %
		{5400 * s, 36000 * s, 15},                                // 15 %
		{36000 * s, 36000 * s, 100},                              // all of it
		{900 * s, 1320 * s, 68.18},                               // 68.1818..%
		{420 * s, 1320 * s, 31.82},                               // 31.8181..%
		{1 * s, 3 * s, 33.33},                                    // 33.333..%
		{2 * s, 3 * s, 66.67},                                    // 66.666..%
		{116 * time.Millisecond, 10602609 * time.Millisecond, 0}, // 0.0011 %
		{5 * s, 0, 0},                                            // no total: 0, not NaN
	}
	for _, c := range cases {
		if got := stats.Percent(c.part, c.total); got != c.want {
			t.Errorf("Percent(%v, %v) = %v, want %v", c.part, c.total, got, c.want)
		}
		if c.total == 36000*s {
			if got := stats.NewItem("x", c.part, c.total).Percent; got != c.want {
				t.Errorf("NewItem(%v).Percent = %v, want %v", c.part, got, c.want)
			}
		}
	}
}
