package dayfile_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/klauspost/compress/gzip"

	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// BenchmarkEncode writes a realistic day of 200 heartbeats: "full" with
// every field the API stores, "wakatime" with only the fields a plugin sends
// (DESIGN.md's measure: about 73 KB of JSON, 4-6 KB gzipped). It reports the
// sizes and their ratio.
func BenchmarkEncode(b *testing.B) {
	for _, c := range []struct {
		name string
		day  []*heartlogv1.Heartbeat
	}{{"full", realisticDay(200, 7)}, {"wakatime", wakatimeDay(200, 7)}} {
		b.Run(c.name, func(b *testing.B) {
			day := mustMerge(c.day)
			data := mustEncode(b, day)
			jsonBytes := len(gunzip(b, data))
			b.SetBytes(int64(jsonBytes))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := dayfile.Encode(day); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(jsonBytes), "json-bytes")
			b.ReportMetric(float64(len(data)), "gzip-bytes")
			b.ReportMetric(float64(jsonBytes)/float64(len(data)), "ratio")
		})
	}
}

// BenchmarkDecode reads the same day back.
func BenchmarkDecode(b *testing.B) {
	data := mustEncode(b, mustMerge(realisticDay(200, 7)))
	b.SetBytes(int64(len(gunzip(b, data))))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dayfile.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMerge merges a batch into a day of 200 heartbeats: new ones (the
// usual case) and ones the file holds already (a replay or redelivery).
func BenchmarkMerge(b *testing.B) {
	day := realisticDay(220, 7)
	existing := mustMerge(day[:200])
	for _, c := range []struct {
		name     string
		incoming []*heartlogv1.Heartbeat
	}{
		{"new-20", day[200:]},
		{"replay-20", existing[90:110]},
		{"interleaved-20", mustMerge(realisticDay(20, 8))}, // times fall between existing ones
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				dayfile.Merge(existing, c.incoming)
			}
		})
	}
}

// BenchmarkReadMergeWrite is a sink's work per user-day: Decode, Merge,
// Encode.
func BenchmarkReadMergeWrite(b *testing.B) {
	day := realisticDay(201, 7)
	data := mustEncode(b, mustMerge(day[:200]))
	b.ReportAllocs()
	for b.Loop() {
		existing, err := dayfile.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		merged, _ := dayfile.Merge(existing, day[200:])
		if _, err := dayfile.Encode(merged); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGzipLevels compresses a realistic day at each klauspost level:
// the numbers behind dayfile.Level.
func BenchmarkGzipLevels(b *testing.B) {
	content := gunzip(b, mustEncode(b, mustMerge(realisticDay(200, 7))))
	for _, level := range []int{gzip.StatelessCompression, 1, 2, 3, 4, 5, 6, 7, 9} {
		b.Run(fmt.Sprintf("level%d", level), func(b *testing.B) {
			zw, _ := gzip.NewWriterLevel(nil, level)
			var buf bytes.Buffer
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				buf.Reset()
				zw.Reset(&buf)
				zw.Write(content)
				zw.Close()
			}
			b.ReportMetric(float64(buf.Len()), "gzip-bytes")
			b.ReportMetric(float64(len(content))/float64(buf.Len()), "ratio")
		})
	}
}
