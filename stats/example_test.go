package stats_test

import (
	"fmt"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
)

// The worked example of the package documentation.
func ExampleSummarize() {
	at := func(clock string) float64 {
		v, _ := time.Parse("2006-01-02 15:04:05", "2026-03-10 "+clock)
		return float64(v.Unix())
	}
	hbs := []*heartlogv1.Heartbeat{
		{Time: at("09:00:00"), Project: "api", Language: "Go", Entity: "main.go"},
		{Time: at("09:02:00"), Project: "api", Language: "Go", Entity: "db.go"},
		{Time: at("09:07:00"), Project: "web", Language: "TypeScript", Entity: "app.ts"},
		{Time: at("09:22:00"), Project: "web", Language: "TypeScript", Entity: "app.ts"},
		{Time: at("09:42:00"), Project: "api", Language: "Go", Entity: "main.go"},
	}
	day := stats.Date{Year: 2026, Month: time.March, Day: 10}
	days, err := stats.Summarize(hbs, stats.Options{Start: day, End: day})
	if err != nil {
		panic(err)
	}
	g := days[0].GrandTotal
	fmt.Printf("total %v s, %q, %s, %s\n", g.TotalSeconds, g.Text, g.Digital, g.Decimal)
	for _, p := range days[0].Projects {
		fmt.Printf("%s %v s %v%% %q\n", p.Name, p.TotalSeconds, p.Percent, p.Text)
	}
	durations, _ := stats.Durations(hbs, stats.Options{})
	for _, d := range durations {
		fmt.Println(d.Start.Format("15:04:05"), d.Project, d.Duration)
	}
	// Output:
	// total 1320 s, "22 mins", 0:22, 0.37
	// web 900 s 68.18% "15 mins"
	// api 420 s 31.82% "7 mins"
	// 09:00:00 api 7m0s
	// 09:07:00 web 15m0s
	// 09:42:00 api 0s
}
