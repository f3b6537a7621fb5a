package stats_test

import (
	"fmt"
	"testing"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
)

// yearOfHeartbeats returns perDay heartbeats a day for 365 days from
// 2025-03-01 in loc: a working day from 09:00, one heartbeat every 20-40 s
// with a 20-minute break every 200 heartbeats, over 5 projects, 40 files,
// 4 languages and 3 dependencies per heartbeat. entityEvery is how many
// consecutive heartbeats share a file (1: every heartbeat changes file).
func yearOfHeartbeats(loc *time.Location, perDay, entityEvery int) []*heartlogv1.Heartbeat {
	projects := []string{"heartlog", "website", "dotfiles", "infra", "notes"}
	languages := []string{"Go", "TypeScript", "Markdown", "YAML"}
	deps := [][]string{{"fmt", "time", "github.com/nats-io/nats.go"}, {"react", "react-dom", "zod"}, {"os", "io", "strings"}}
	hbs := make([]*heartlogv1.Heartbeat, 0, 365*perDay)
	first := time.Date(2025, 3, 1, 9, 0, 0, 0, loc)
	n := 0
	for day := range 365 {
		v := time.Date(first.Year(), first.Month(), first.Day()+day, 9, 0, 0, 0, loc)
		for i := range perDay {
			step := time.Duration(20+(n*7)%21) * time.Second
			if i > 0 && i%200 == 0 {
				step = 20 * time.Minute
			}
			v = v.Add(step)
			p := (n / 300) % len(projects)
			f := (n / entityEvery) % 40
			hbs = append(hbs, &heartlogv1.Heartbeat{
				Id:              fmt.Sprintf("%032x", n),
				Time:            float64(v.UnixMicro()) / 1e6,
				Project:         projects[p],
				Entity:          fmt.Sprintf("/home/dev/src/%s/internal/pkg%d/file%d.go", projects[p], f%7, f),
				Type:            "file",
				Category:        "coding",
				Language:        languages[f%len(languages)],
				Branch:          "main",
				Dependencies:    deps[f%len(deps)],
				Editor:          "VS Code",
				OperatingSystem: "Linux",
				Machine:         "workstation",
				IsWrite:         ptr(n%4 == 0),
			})
			n++
		}
	}
	return hbs
}

func benchSummarize(b *testing.B, entityEvery int, opts stats.Options) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	hbs := yearOfHeartbeats(loc, 1000, entityEvery)
	opts.Location, opts.Start, opts.End = loc, stats.NewDate(2025, 3, 1), stats.NewDate(2026, 2, 28)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		days, err := stats.Summarize(hbs, opts)
		if err != nil || len(days) != 365 {
			b.Fatal(len(days), err)
		}
	}
}

// BenchmarkSummarize365Days: summaries over 365 days of 1,000 heartbeats a
// day (365,000 heartbeats), the dashboard's hot path.
func BenchmarkSummarize365Days(b *testing.B) { benchSummarize(b, 4, stats.Options{}) }

// BenchmarkSummarize365DaysOmitEntities: the same without the per-file
// breakdown (WakaTime's summaries without a project filter).
func BenchmarkSummarize365DaysOmitEntities(b *testing.B) {
	benchSummarize(b, 4, stats.Options{OmitEntities: true})
}

// BenchmarkSummarize365DaysEntityChurn: the same, with every heartbeat on a
// different file than the one before (the worst case for the running
// accumulators).
func BenchmarkSummarize365DaysEntityChurn(b *testing.B) { benchSummarize(b, 1, stats.Options{}) }

// BenchmarkSummarize365DaysWritesOnlyProject: with both filters on.
func BenchmarkSummarize365DaysWritesOnlyProject(b *testing.B) {
	benchSummarize(b, 4, stats.Options{WritesOnly: true, Project: "heartlog"})
}

// BenchmarkSummarize365DaysUnsorted: input in reverse order, so Summarize
// sorts a copy first.
func BenchmarkSummarize365DaysUnsorted(b *testing.B) {
	loc := time.UTC
	hbs := yearOfHeartbeats(loc, 1000, 4)
	for i, j := 0, len(hbs)-1; i < j; i, j = i+1, j-1 {
		hbs[i], hbs[j] = hbs[j], hbs[i]
	}
	opts := stats.Options{Location: loc, Start: stats.NewDate(2025, 3, 1), End: stats.NewDate(2026, 2, 28)}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := stats.Summarize(hbs, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDurationsOneDay: one day's durations (1,000 heartbeats) by entity.
func BenchmarkDurationsOneDay(b *testing.B) {
	hbs := yearOfHeartbeats(time.UTC, 1000, 4)[:1000]
	opts := stats.Options{Start: stats.NewDate(2025, 3, 1), End: stats.NewDate(2025, 3, 1), SliceBy: stats.ByEntity}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := stats.Durations(hbs, opts); err != nil {
			b.Fatal(err)
		}
	}
}
