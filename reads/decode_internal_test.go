package reads

import (
	"fmt"
	"testing"
	"time"

	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
)

// BenchmarkDecodeYear decodes a year of day files of 1,000 heartbeats as a
// warm 365-day read did, and their digests as it does now (run with -cpu 1,2 to see what the cores buy).
func BenchmarkDecodeYear(b *testing.B) {
	files := make([][]byte, 365)
	for d := range files {
		hbs := make([]*heartlogv1.Heartbeat, 1000)
		for i := range hbs {
			lines, write := int32(100+i%300), i%5 == 0
			hbs[i] = &heartlogv1.Heartbeat{
				Id: fmt.Sprintf("%032x", d*1000+i), UserId: "9a4b3547-0a09-4942-9796-c1545cc7d62c",
				Entity: fmt.Sprintf("/home/dev/src/heartlog/internal/pkg%d/file%d.go", i/50%7, i/4%30),
				Type:   "file", Category: "coding", Time: float64(1.7e9 + d*86400 + i*30),
				Project: "heartlog", Branch: "main", Language: "Go", Lines: &lines, IsWrite: &write,
				Editor: "VS Code", Plugin: "vscode-wakatime/24.5.0", OperatingSystem: "Linux", Machine: "workstation",
				UserAgent:    "wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 vscode/1.90.0 vscode-wakatime/24.5.0",
				Dependencies: []string{"fmt", "time"},
			}
		}
		var err error
		if files[d], err = dayfile.Encode(hbs); err != nil {
			b.Fatal(err)
		}
	}
	out := make([][]*heartlogv1.Heartbeat, len(files))
	b.Run("dayfile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, err := range decodeAll(files, out, dayfile.Decode) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	// The same year from the days' digests, as Activity reads it.
	digests := make([][]byte, len(files))
	for d, f := range files {
		hbs, err := dayfile.Decode(f)
		if err != nil {
			b.Fatal(err)
		}
		if digests[d], err = digest.Encode(hbs); err != nil {
			b.Fatal(err)
		}
	}
	beats := make([]stats.Activity, len(files))
	b.Run("digest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, err := range decodeAll(digests, beats, digest.Decode) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkSummarizeYear is the CPU of a warm 365-day summary after the
// MGET: a year of digests decoded, joined and summarized. Its days are
// like the reads benchmark's (ops/bench): the category drawn at random
// for each heartbeat, so attribute sets change at almost every heartbeat.
func BenchmarkSummarizeYear(b *testing.B) {
	categories := []string{"coding", "debugging", "building", "code reviewing", "writing tests"}
	digests := make([][]byte, 365)
	for d := range digests {
		hbs := make([]*heartlogv1.Heartbeat, 1000)
		for i := range hbs {
			n := d*1000 + i
			hbs[i] = &heartlogv1.Heartbeat{
				Entity: fmt.Sprintf("/home/dev/src/heartlog/internal/pkg%d/file%d.go", i/50%7, i/4%30),
				Type:   "file", Category: categories[(n*7919)%97%len(categories)], Time: float64(1.7e9 + d*86400 + i*30),
				Project: fmt.Sprintf("project%d", i/200), Branch: "main", Language: "Go", Editor: "VS Code",
				OperatingSystem: "Linux", Machine: "workstation", Dependencies: []string{"fmt", "time"},
			}
		}
		var err error
		if digests[d], err = digest.Encode(hbs); err != nil {
			b.Fatal(err)
		}
	}
	first := stats.DateOf(time.Unix(1.7e9, 0), time.UTC)
	opts := stats.Options{Start: first, End: first.AddDays(364), OmitEntities: true}
	b.ReportAllocs()
	for b.Loop() {
		fd := fileDays{hbs: make([][]*heartlogv1.Heartbeat, len(digests)), digests: make([]*digest.Day, len(digests))}
		for _, err := range decodeAll(digests, fd.digests, digest.Parse) {
			if err != nil {
				b.Fatal(err)
			}
		}
		if _, err := stats.SummarizeBeats(fd.activity(stats.Activity{}), opts); err != nil {
			b.Fatal(err)
		}
	}
}
