package digest_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
)

func ptr[T any](v T) *T { return &v }

// day returns n heartbeats of one UTC day in day-file order, with what
// can go wrong in a digest: empty fields, shared and distinct dependency
// lists (one with an empty and a repeated entry), is_write absent, false
// and true, times with sub-microsecond digits and times shared by
// several heartbeats, gaps over the timeout.
func day(n int) []*heartlogv1.Heartbeat {
	projects := []string{"heartlog", "website", "", "infra", "notes"}
	deps := [][]string{nil, {"fmt", "time"}, {"react", "", "react", "zod"}, {"fmt", "time"}, {"os"}}
	hbs := make([]*heartlogv1.Heartbeat, n)
	t := float64(time.Date(2026, 3, 10, 0, 0, 1, 0, time.UTC).Unix())
	for i := range hbs {
		switch {
		case i%97 == 0:
			t += 1200 // over the timeout
		case i%13 == 0:
			// same time as the one before
		default:
			t += float64(5+(i*7)%50) + 0.1234567
		}
		hb := &heartlogv1.Heartbeat{
			Id:       fmt.Sprintf("%032x", i),
			UserId:   "9a4b3547-0a09-4942-9796-c1545cc7d62c",
			Time:     t,
			Entity:   fmt.Sprintf("/src/p%d/file%d.go", i/50%5, i/4%30),
			Type:     []string{"file", "app", "domain"}[i/100%3],
			Category: []string{"coding", "debugging", ""}[i/70%3],
			Project:  projects[i/60%len(projects)],
			Branch:   []string{"main", "", "feature/x"}[i/80%3],
			Language: []string{"Go", "TypeScript", ""}[i/9%3],
			Editor:   "VS Code", OperatingSystem: []string{"Linux", "Mac"}[i/300%2],
			Machine: []string{"workstation", "laptop", ""}[i/200%3], Plugin: "vscode-wakatime/24.5.0",
			Dependencies: slices.Clone(deps[i/7%len(deps)]),
			Lineno:       ptr(int32(i)),
		}
		switch i % 3 {
		case 1:
			hb.IsWrite = ptr(true)
		case 2:
			hb.IsWrite = ptr(false)
		}
		hbs[i] = hb
	}
	return hbs
}

// view is what stats reads of beats.
func view(act stats.Activity, i int) string {
	b := act.Beats[i]
	a := act.Attrs(b.Set)
	return fmt.Sprintf("%d|%q|%q|%q|%q|%q|%q|%q|%q|%q|%q|%v", b.Nanos, a.Entity, a.Type, a.Category, a.Project,
		a.Branch, a.Language, a.Editor, a.OperatingSystem, a.Machine, a.Dependencies, b.IsWrite)
}

// TestRoundTripAgainstDayFile encodes a day file, decodes it as readers
// do, digests that, and checks that the digest gives back every field
// stats reads, and the same summaries and durations.
func TestRoundTripAgainstDayFile(t *testing.T) {
	file, err := dayfile.Encode(day(1000))
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := dayfile.Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	data, err := digest.Encode(fromFile)
	if err != nil {
		t.Fatal(err)
	}
	fromDigest, err := digest.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("day file %d bytes, digest %d bytes", len(file), len(data))
	if len(fromDigest.Beats) != len(fromFile) {
		t.Fatalf("%d heartbeats from the digest, %d from the day file", len(fromDigest.Beats), len(fromFile))
	}
	beats := stats.ActivityOf(fromFile)
	for i := range beats.Beats {
		if a, b := view(beats, i), view(fromDigest, i); a != b {
			t.Fatalf("heartbeat %d:\nday file %s\ndigest   %s", i, a, b)
		}
	}
	date := stats.NewDate(2026, 3, 10)
	for _, o := range []stats.Options{
		{Start: date, End: date},
		{Start: date.AddDays(-1), End: date, Location: time.FixedZone("x", 5*3600), Timeout: 1},
		{Start: date, End: date, WritesOnly: true},
		{Start: date, End: date, Project: "website"},
		{Start: date, End: date, OmitEntities: true, Timeout: 60},
	} {
		a, err := stats.Summarize(fromFile, o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := stats.SummarizeBeats(fromDigest, o)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("summaries differ for %+v", o)
		}
		if a[len(a)-1].GrandTotal.Total == 0 {
			t.Fatalf("nothing counted for %+v", o)
		}
		for _, by := range []stats.Dimension{stats.ByProject, stats.ByEntity, stats.ByDependencies, stats.ByMachine} {
			o.SliceBy = by
			a, err := stats.Durations(fromFile, o)
			if err != nil {
				t.Fatal(err)
			}
			b, err := stats.DurationsOfBeats(fromDigest, o)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("durations by %s differ for %+v", by, o)
			}
		}
	}
}

func TestEmptyDay(t *testing.T) {
	data, err := digest.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	act, err := digest.Decode(data)
	if err != nil || len(act.Beats) != 0 {
		t.Fatalf("empty day: %d heartbeats, %v", len(act.Beats), err)
	}
}

func TestTimeOutOfRange(t *testing.T) {
	if _, err := digest.Encode([]*heartlogv1.Heartbeat{{Time: 1e17}}); !errors.Is(err, digest.ErrTime) {
		t.Fatalf("time 1e17: %v, want ErrTime", err)
	}
}

func TestCorrupt(t *testing.T) {
	data, err := digest.Encode(day(50))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{data[:len(data)/2], append([]byte{0xff}, data...), {0x12, 0x01, 0x02, 0x1a, 0x01, 0x09}} {
		if _, err := digest.Decode(bad); !errors.Is(err, digest.ErrCorrupt) {
			t.Errorf("Decode(%x...): %v, want ErrCorrupt", bad[:min(8, len(bad))], err)
		}
	}
}

func TestKey(t *testing.T) {
	k := dayfile.Key("p1", "9a4b3547-0a09-4942-9796-c1545cc7d62c", "20260310")
	if got, want := digest.Key(k), "p1/9a4b3547-0a09-4942-9796-c1545cc7d62c/2026-03-10.digest.v1"; got != want {
		t.Fatalf("Key(%q) = %q, want %q", k, got, want)
	}
}

// BenchmarkDecode decodes the digest of a day of 1,000 heartbeats into
// Beats, beside the day file it comes from (what a warm read decoded
// before; into heartbeats).
func BenchmarkDecode(b *testing.B) {
	hbs := day(1000)
	data, err := digest.Encode(hbs)
	if err != nil {
		b.Fatal(err)
	}
	file, err := dayfile.Encode(hbs)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("digest", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := digest.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dayfile", func(b *testing.B) {
		b.SetBytes(int64(len(file)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dayfile.Decode(file); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	hbs := day(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := digest.Encode(hbs); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnmarshal checks the hand-written unmarshal against proto.Unmarshal:
// on Encode's output, on unpacked repeated fields and unknown fields, and
// on cut-off input.
func TestUnmarshal(t *testing.T) {
	data, err := digest.Encode(day(300))
	if err != nil {
		t.Fatal(err)
	}
	// Unpacked values of fields 3 and 2, and unknown fields 99 and 100.
	extra := protowire.AppendTag(nil, 3, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 7)
	extra = protowire.AppendTag(extra, 2, protowire.VarintType)
	extra = protowire.AppendVarint(extra, protowire.EncodeZigZag(-5))
	extra = protowire.AppendTag(extra, 99, protowire.BytesType)
	extra = protowire.AppendBytes(extra, []byte("later"))
	extra = protowire.AppendTag(extra, 100, protowire.Fixed64Type)
	extra = protowire.AppendFixed64(extra, 1)
	for i, in := range [][]byte{data, append(slices.Clone(data), extra...), data[:len(data)-3], data[:1]} {
		var want heartlogv1.DayDigest
		wantErr := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(in, &want)
		got, err := digest.Unmarshal(in)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("input %d: error %v, proto.Unmarshal's %v", i, err, wantErr)
		}
		if err == nil && !proto.Equal(got, &want) {
			t.Fatalf("input %d: differs from proto.Unmarshal", i)
		}
	}
}
