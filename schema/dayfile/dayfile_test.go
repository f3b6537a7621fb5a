package dayfile_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.ndjson.gz from the current encoder")

// edgeCases are heartbeats that between them set every field, leave every
// optional field absent, set it to its zero value, and carry the strings,
// numbers and extra JSON that are hardest to write.
func edgeCases() []*heartlogv1.Heartbeat {
	id := func(i int) string { return fmt.Sprintf("%032x", 0xe0+i) }
	return []*heartlogv1.Heartbeat{
		{ // every field set
			Id: id(1), UserId: userA, Entity: "/home/dev/proj/myrepo/main.go", Type: "file",
			Category: "coding", Time: 1795630654.4452016, Project: "myrepo",
			ProjectRootCount: ptr[int32](4), Branch: "feature/x", Language: "Go",
			Dependencies: []string{"requests", "flask"}, Lines: ptr[int32](5),
			LineAdditions: ptr[int32](2), LineDeletions: ptr[int32](1), Lineno: ptr[int32](3),
			Cursorpos: ptr[int32](7), IsWrite: ptr(true), AiLineChanges: ptr[int32](12),
			HumanLineChanges: ptr[int32](3), Editor: "VS Code", Plugin: "vscode-wakatime/24.5.0",
			OperatingSystem: "Linux", Machine: "devbox", UserAgent: uaVSCode,
			ExtraJson: []byte(`{"new_field":{"a":1}}`),
		},
		{Id: id(2), Time: 1795630654}, // only what is always written
		{ // every optional set to its zero value
			Id: id(3), UserId: userA, Entity: "zero.go", Time: 1795630655.5,
			ProjectRootCount: ptr[int32](0), Lines: ptr[int32](0), LineAdditions: ptr[int32](0),
			LineDeletions: ptr[int32](0), Lineno: ptr[int32](0), Cursorpos: ptr[int32](0),
			IsWrite: ptr(false), AiLineChanges: ptr[int32](0), HumanLineChanges: ptr[int32](0),
		},
		{ // int32 extremes; is_write absent; one empty dependency
			Id: id(4), UserId: userA, Entity: "big.go", Time: 1795630656.25,
			Lines: ptr[int32](math.MaxInt32), Lineno: ptr[int32](math.MinInt32),
			Cursorpos: ptr[int32](-1), Dependencies: []string{""},
		},
		{ // every escape encoding/json writes, and characters it leaves alone
			Id: id(5), UserId: userA, Time: 1795630657.125,
			Entity:       "quote\" back\\slash /slash tab\t nl\n cr\r bs\b ff\f nul\x00 us\x1f del\x7f",
			Project:      "<html> & 'apos' é ü 中文 😀 \u2028 \u2029 \ufeff \ufffd",
			Branch:       "feature/ñ",
			Dependencies: []string{"a\"b", "c\\d", "\u2028", "😀"},
			ExtraJson:    []byte(`{"a":{"b":[1,2.50,-0,1e400,{"c":null}]},"esc":"\u00e9\ud83d\ude00\n\/","z":true,"é":""}`),
		},
		{Id: id(6), Entity: "tiny", Time: 1e-7},   // encoding/json's 'e' form, small
		{Id: id(7), Entity: "huge", Time: 1.5e21}, // encoding/json's 'e' form, large
		{Id: id(8), Entity: "negative-zero", Time: math.Copysign(0, -1)},
		{Id: id(9), Entity: "negative", Time: -1795630654.5},
		{Id: id(10), Entity: "max", Time: math.MaxFloat64},
		{Id: id(11), Entity: "smallest", Time: math.SmallestNonzeroFloat64},
		{Id: id(12), Entity: "same time as 1, id after", Time: 1795630654.4452016, ExtraJson: []byte(`{}`)},
	}
}

// goldenSet is the fixed set of testdata/golden.ndjson.gz: the edge cases
// and a stretch of ordinary heartbeats, built without randomness so that it
// never changes.
func goldenSet() []*heartlogv1.Heartbeat {
	hbs := edgeCases()
	for i := range 24 {
		hbs = append(hbs, &heartlogv1.Heartbeat{
			Id: fmt.Sprintf("%032x", 0x1000+i*7919), UserId: userA,
			Entity: fmt.Sprintf("/home/dev/src/heartlog/file%d.go", i%5),
			Type:   "file", Category: "coding",
			Time:    1795600000 + float64(i*47) + float64(i%10)/8,
			Project: "heartlog", ProjectRootCount: ptr[int32](6), Branch: "main", Language: "Go",
			Lines: ptr(int32(100 + i)), Lineno: ptr(int32(i * 3)), Cursorpos: ptr(int32(i % 80)),
			IsWrite: ptr(i%3 == 0), Editor: "VS Code", Plugin: "vscode-wakatime/24.5.0",
			OperatingSystem: "Linux", Machine: "devbox", UserAgent: uaVSCode,
		})
	}
	merged, _ := dayfile.Merge(nil, hbs)
	return merged
}

func mustEncode(t testing.TB, hbs []*heartlogv1.Heartbeat) []byte {
	t.Helper()
	data, err := dayfile.Encode(hbs)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return data
}

func mustDecode(t testing.TB, data []byte) []*heartlogv1.Heartbeat {
	t.Helper()
	hbs, err := dayfile.Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return hbs
}

func TestRoundTripEveryField(t *testing.T) {
	want, _ := dayfile.Merge(nil, edgeCases())
	data := mustEncode(t, want)
	equalSets(t, mustDecode(t, data), want)

	// The lines are what encoding/json writes for the same fields.
	if got, ref := gunzip(t, data), refNDJSON(t, want); !bytes.Equal(got, ref) {
		t.Fatalf("Encode differs from encoding/json:\n got %s\nwant %s", got, ref)
	}
	// Absent and zero optional fields stay apart, and null is never written.
	content := string(gunzip(t, data))
	lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	if strings.Contains(content, "null,") || strings.Contains(content, ":null}\n") {
		t.Errorf("null written:\n%s", content)
	}
	for _, line := range lines {
		switch {
		case strings.Contains(line, `"id":"`+fmt.Sprintf("%032x", 0xe2)+`"`):
			if line != `{"id":"000000000000000000000000000000e2","time":1795630654}` {
				t.Errorf("minimal line %s", line)
			}
		case strings.Contains(line, `"zero.go"`):
			for _, f := range []string{`"project_root_count":0`, `"lines":0`, `"line_additions":0`, `"line_deletions":0`,
				`"lineno":0`, `"cursorpos":0`, `"is_write":false`, `"ai_line_changes":0`, `"human_line_changes":0`} {
				if !strings.Contains(line, f) {
					t.Errorf("zero line lacks %s: %s", f, line)
				}
			}
		case strings.Contains(line, `"tiny"`):
			if !strings.Contains(line, `"time":1e-7`) {
				t.Errorf("tiny time not in encoding/json form: %s", line)
			}
		case strings.Contains(line, `"negative-zero"`):
			if !strings.Contains(line, `"time":-0`) {
				t.Errorf("negative zero time lost its sign: %s", line)
			}
		}
	}
	got := mustDecode(t, data)
	for _, hb := range got {
		if hb.Entity == "negative-zero" && !math.Signbit(hb.Time) {
			t.Errorf("-0 time read back as %v", hb.Time)
		}
	}
}

// TestEncodeMatchesEncodingJSON writes random strings, times and numbers and
// compares the lines with encoding/json's.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "/", "<", ">", "&", "\x00", "\x01", "\b", "\f", "\n", "\r", "\t",
		"\x1f", "\x7f", "\x80", "\xff", "\xc3", "é", "\u2028", "\u2029", "😀", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\ufffd"}
	str := func() string {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	var hbs []*heartlogv1.Heartbeat
	for i := range 2000 {
		hb := &heartlogv1.Heartbeat{
			Id: fmt.Sprintf("%08d%s", i, str()), UserId: str(), Entity: str(), Type: str(), Category: str(),
			Time:    math.Float64frombits(r.Uint64()),
			Project: str(), Branch: str(), Language: str(), Editor: str(), Plugin: str(),
			OperatingSystem: str(), Machine: str(), UserAgent: str(),
		}
		if math.IsNaN(hb.Time) || math.IsInf(hb.Time, 0) {
			hb.Time = float64(i)
		}
		if i%3 == 0 {
			hb.Time = float64(int64(r.Uint64())) / float64(int64(1)<<r.IntN(60))
		}
		for range r.IntN(3) {
			hb.Dependencies = append(hb.Dependencies, str())
		}
		if r.IntN(2) == 0 {
			hb.Lineno = ptr(int32(r.Uint32()))
		}
		hbs = append(hbs, hb)
	}
	merged, _ := dayfile.Merge(nil, hbs)
	if got, ref := gunzip(t, mustEncode(t, merged)), refNDJSON(t, merged); !bytes.Equal(got, ref) {
		gl, rl := strings.Split(string(got), "\n"), strings.Split(string(ref), "\n")
		for i := range min(len(gl), len(rl)) {
			if gl[i] != rl[i] {
				t.Fatalf("line %d differs from encoding/json:\n got %s\nwant %s", i+1, gl[i], rl[i])
			}
		}
		t.Fatalf("output differs from encoding/json in length: %d, %d lines", len(gl), len(rl))
	}
}

func TestInvalidUTF8(t *testing.T) {
	hb := &heartlogv1.Heartbeat{Id: "x", Entity: "a\xffb\xc3", Dependencies: []string{"\xed\xa0\x80"}}
	data := mustEncode(t, []*heartlogv1.Heartbeat{hb})
	if got, ref := gunzip(t, data), refNDJSON(t, []*heartlogv1.Heartbeat{hb}); !bytes.Equal(got, ref) {
		t.Fatalf("got %s, encoding/json writes %s", got, ref)
	}
	got := mustDecode(t, data)
	if got[0].Entity != "a\ufffdb\ufffd" || got[0].Dependencies[0] != "\ufffd\ufffd\ufffd" {
		t.Fatalf("invalid UTF-8 read back as %q %q", got[0].Entity, got[0].Dependencies)
	}
	// From there on it is stable.
	if again := mustEncode(t, got); !bytes.Equal(mustEncode(t, mustDecode(t, again)), again) {
		t.Fatal("invalid UTF-8 does not settle after one round")
	}
}

func TestExtraIsCompacted(t *testing.T) {
	hb := &heartlogv1.Heartbeat{Id: "x", ExtraJson: []byte(" {\n \"b\" : [1, 2],\t\"a\":\"x y\\u0041\" }\n")}
	data := mustEncode(t, []*heartlogv1.Heartbeat{hb})
	want := `{"id":"x","time":0,"extra":{"b":[1,2],"a":"x y\u0041"}}` + "\n"
	if got := string(gunzip(t, data)); got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if got := mustDecode(t, data); string(got[0].ExtraJson) != `{"b":[1,2],"a":"x y\u0041"}` {
		t.Fatalf("extra read back as %s", got[0].ExtraJson)
	}
}

func TestEncodeRefuses(t *testing.T) {
	a := &heartlogv1.Heartbeat{Id: "a", Time: 1}
	b := &heartlogv1.Heartbeat{Id: "b", Time: 1}
	c := &heartlogv1.Heartbeat{Id: "a", Time: 0.5}
	for name, hbs := range map[string][]*heartlogv1.Heartbeat{
		"unsorted by id":   {b, a},
		"unsorted by time": {a, c},
		"duplicate":        {a, a},
		"nil":              {a, nil},
		"no id":            {{Time: 1}},
		"NaN time":         {{Id: "a", Time: math.NaN()}},
		"infinite time":    {{Id: "a", Time: math.Inf(1)}},
		"extra not object": {{Id: "a", ExtraJson: []byte(`[1]`)}},
		"extra invalid":    {{Id: "a", ExtraJson: []byte(`{"a":}`)}},
		"extra two values": {{Id: "a", ExtraJson: []byte(`{} {}`)}},
		"extra null":       {{Id: "a", ExtraJson: []byte(`null`)}},
	} {
		if _, err := dayfile.Encode(hbs); !errors.Is(err, dayfile.ErrInvalid) {
			t.Errorf("%s: Encode error %v, want ErrInvalid", name, err)
		}
	}
	data := mustEncode(t, nil)
	if got := mustDecode(t, data); len(got) != 0 {
		t.Fatalf("empty file read back %d heartbeats", len(got))
	}
}

// TestDeterminism replays one day's heartbeats in many orders, with many
// duplicates, through many merges, and wants the same bytes every time.
func TestDeterminism(t *testing.T) {
	set := realisticDay(200, 7)
	want := mustEncode(t, mustMerge(set))
	r := rand.New(rand.NewPCG(3, 4))
	rounds := 30
	if testing.Short() {
		rounds = 5
	}
	for round := range rounds {
		// The log delivers each heartbeat at least once, in any order.
		var stream []*heartlogv1.Heartbeat
		for _, hb := range set {
			for range 1 + r.IntN(3) {
				stream = append(stream, cloneHB(hb))
			}
		}
		r.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
		// A sink merges batches of it into the file, writing and reading
		// the file whenever something changed.
		var file []byte
		for len(stream) > 0 {
			k := min(len(stream), 1+r.IntN(80))
			var existing []*heartlogv1.Heartbeat
			if file != nil {
				existing = mustDecode(t, file)
			}
			merged, changed := dayfile.Merge(existing, stream[:k])
			if changed {
				file = mustEncode(t, merged)
			}
			stream = stream[k:]
		}
		if !bytes.Equal(file, want) {
			t.Fatalf("round %d: bytes differ from the first encoding", round)
		}
	}

	// Concurrent encodes share pooled gzip writers and buffers.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if got, err := dayfile.Encode(mustMerge(set)); err != nil || !bytes.Equal(got, want) {
					t.Errorf("concurrent Encode: %v, equal %v", err, bytes.Equal(got, want))
					return
				}
			}
		})
	}
	wg.Wait()
}

func mustMerge(hbs []*heartlogv1.Heartbeat) []*heartlogv1.Heartbeat {
	m, _ := dayfile.Merge(nil, hbs)
	return m
}

func cloneHB(hb *heartlogv1.Heartbeat) *heartlogv1.Heartbeat {
	return protoClone(hb)
}

func TestMerge(t *testing.T) {
	day := realisticDay(50, 9)
	existing := mustMerge(day[:40])

	// Nothing new: not changed, and merged is existing itself.
	sub := []*heartlogv1.Heartbeat{cloneHB(existing[3]), cloneHB(existing[0]), cloneHB(existing[3])}
	merged, changed := dayfile.Merge(existing, sub)
	if changed || len(merged) != len(existing) || &merged[0] != &existing[0] {
		t.Fatalf("incoming ⊆ existing: changed %v, %d heartbeats, same slice %v", changed, len(merged), &merged[0] == &existing[0])
	}
	if _, changed := dayfile.Merge(existing, nil); changed {
		t.Fatal("no incoming: changed")
	}
	if m, changed := dayfile.Merge(nil, nil); changed || len(m) != 0 {
		t.Fatal("empty merge changed")
	}

	// Something new: changed, union, sorted, existing copies kept.
	before := slices.Clone(existing)
	incoming := []*heartlogv1.Heartbeat{day[45], cloneHB(existing[5]), day[41], day[45]}
	incomingBefore := slices.Clone(incoming)
	merged, changed = dayfile.Merge(existing, incoming)
	if !changed || len(merged) != 42 {
		t.Fatalf("changed %v, %d heartbeats, want true, 42", changed, len(merged))
	}
	if !slices.IsSortedFunc(merged, func(a, b *heartlogv1.Heartbeat) int {
		if a.Time != b.Time {
			return map[bool]int{true: -1, false: 1}[a.Time < b.Time]
		}
		return strings.Compare(a.Id, b.Id)
	}) {
		t.Fatal("merged is not sorted by (time, id)")
	}
	if !slices.Contains(merged, existing[5]) || slices.Contains(merged, incoming[1]) {
		t.Fatal("on a shared id the existing heartbeat was not the one kept")
	}
	if !slices.Equal(existing, before) || !slices.Equal(incoming, incomingBefore) {
		t.Fatal("Merge modified its arguments")
	}
	equalSets(t, merged, mustMerge(append(slices.Clone(day[:40]), day[41], day[45])))

	// Existing not in merged form: changed, and repaired.
	shuffled := slices.Clone(existing)
	shuffled[0], shuffled[1] = shuffled[1], shuffled[0]
	if m, changed := dayfile.Merge(shuffled, nil); !changed || !slices.Equal(m, existing) {
		t.Fatalf("unsorted existing: changed %v, repaired %v", changed, slices.Equal(m, existing))
	}
	dup := append(slices.Clone(existing), cloneHB(existing[7]))
	if m, changed := dayfile.Merge(dup, nil); !changed || !slices.Equal(m, existing) {
		t.Fatalf("existing with a duplicate: changed %v, repaired %v", changed, slices.Equal(m, existing))
	}
	withNil := append(slices.Clone(existing), nil)
	if m, changed := dayfile.Merge(withNil, []*heartlogv1.Heartbeat{nil}); !changed || !slices.Equal(m, existing) {
		t.Fatalf("nil in existing: changed %v, dropped %v", changed, slices.Equal(m, existing))
	}
	if _, changed := dayfile.Merge(existing, []*heartlogv1.Heartbeat{nil}); changed {
		t.Fatal("a nil incoming heartbeat changed the file")
	}

	// Same time, ids decide.
	x := &heartlogv1.Heartbeat{Id: "b", Time: 5}
	y := &heartlogv1.Heartbeat{Id: "a", Time: 5}
	if m, _ := dayfile.Merge([]*heartlogv1.Heartbeat{x}, []*heartlogv1.Heartbeat{y}); m[0] != y || m[1] != x {
		t.Fatal("equal times not ordered by id")
	}
}

func TestGolden(t *testing.T) {
	path := filepath.Join("testdata", "golden.ndjson.gz")
	set := goldenSet()
	data := mustEncode(t, set)
	if *update {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to write it)", err)
	}
	if !bytes.Equal(data, golden) {
		content := gunzip(t, golden)
		if bytes.Equal(gunzip(t, data), content) {
			t.Fatalf("Encode compresses the golden set to other bytes with the same content: " +
				"a klauspost/compress upgrade or a change of Level. Every day file rewritten from now on " +
				"changes its bytes; if that is accepted, run go test -run TestGolden -update")
		}
		t.Fatalf("Encode no longer writes the golden set as %s: the format changed.\n got %s\nwant %s",
			path, gunzip(t, data), content)
	}
	equalSets(t, mustDecode(t, golden), set)
	// The header is zeroed: no name, no mtime, OS unknown.
	if want := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}; !bytes.Equal(golden[:8], want) || golden[9] != 255 {
		t.Fatalf("gzip header % x", golden[:10])
	}
}

// TestDecodeOtherVersions reads a file that another version could have
// written: a field missing, fields this version does not know, other key
// order, nulls, blank lines, CRLF, no final newline, and the standard
// library's gzip.
func TestDecodeOtherVersions(t *testing.T) {
	content := "" +
		`{"id":"a1","user_id":"u","entity":"a.go","type":"file","time":1795630654.5,"lineno":3,"is_write":true,"future_field":{"x":[1,2]},"also_new":"v"}` + "\n" +
		"\n" +
		`   ` + "\r\n" +
		`{"time":1795630655,"entity":"b.go","id":"b2","lines":null,"branch":null,"dependencies":null,"extra":null,"is_write":null}` + "\r\n" +
		`{"id":"c3","time":1795630656,"dependencies":[],"extra":{"k":"v"}}`
	got := mustDecode(t, gzipBytes(t, []byte(content)))
	want := []*heartlogv1.Heartbeat{
		{Id: "a1", UserId: "u", Entity: "a.go", Type: "file", Time: 1795630654.5, Lineno: ptr[int32](3), IsWrite: ptr(true)},
		{Id: "b2", Entity: "b.go", Time: 1795630655},
		{Id: "c3", Time: 1795630656, ExtraJson: []byte(`{"k":"v"}`)},
	}
	equalSets(t, got, want)
	// Written again, unknown keys are gone and the form is this version's.
	merged, _ := dayfile.Merge(got, nil)
	equalSets(t, mustDecode(t, mustEncode(t, merged)), want)
}

func TestDecodeCorrupt(t *testing.T) {
	valid := mustEncode(t, mustMerge(realisticDay(30, 11)))

	// Truncated anywhere: an error that wraps ErrCorrupt, never a panic and
	// never a silently shorter day.
	for n := range len(valid) {
		hbs, err := dayfile.Decode(valid[:n])
		if !errors.Is(err, dayfile.ErrCorrupt) || hbs != nil {
			t.Fatalf("truncated at %d of %d bytes: %d heartbeats, error %v", n, len(valid), len(hbs), err)
		}
	}
	// Any flipped byte: an error, or the same content (the gzip header's
	// mtime, XFL and OS bytes and the last byte's padding bits are ignored).
	want := mustDecode(t, valid)
	for i := range valid {
		bad := slices.Clone(valid)
		bad[i] ^= 0x40
		hbs, err := dayfile.Decode(bad)
		if err == nil {
			equalSets(t, hbs, want)
		} else if !errors.Is(err, dayfile.ErrCorrupt) {
			t.Fatalf("byte %d flipped: error %v does not wrap ErrCorrupt", i, err)
		}
	}
	for name, data := range map[string][]byte{
		"empty":            nil,
		"not gzip":         []byte(`{"id":"a","time":1}` + "\n"),
		"trailing garbage": append(slices.Clone(valid), "garbage"...),
		"two files":        append(slices.Clone(valid), valid...), // gzip members concatenate: fine
	} {
		_, err := dayfile.Decode(data)
		if name == "two files" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, dayfile.ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", name, err)
		}
	}

	// Lines that are not heartbeats: the error names the line and the field.
	good := `{"id":"a","time":1}`
	for _, c := range []struct{ line, want string }{
		{`{"id":"a","time":1`, "line 2: not JSON"},
		{`[1,2]`, "line 2: a array, not a heartbeat object"},
		{`"x"`, "line 2: a string, not a heartbeat object"},
		{`{"id":"a","time":1}{}`, "line 2: not JSON"},
		{`{"time":1}`, `line 2: no "id"`},
		{`{"id":"","time":1}`, `line 2: no "id"`},
		{`{"id":7,"time":1}`, `line 2: "id" is a number, not a string`},
		{`{"id":"a","time":"1"}`, `line 2: "time" is a string, not a number`},
		{`{"id":"a","time":1e400}`, `line 2: "time" is "1e400", out of range`},
		{`{"id":"a","time":nan}`, `line 2: "time" is "nan", not a JSON number`},
		{`{"id":"a","time":-inf}`, `line 2: "time" is "-inf", not a JSON number`},
		{`{"id":"a","time":1.2.3}`, `line 2: "time" is "1.2.3", not a JSON number`},
		{`{"id":"a","time":+1}`, `line 2: "time" is "+1", not a JSON number`},
		{`{"id":"a","time":01}`, `line 2: "time" is "01", not a JSON number`},
		{`{"id":"a","time":1,"lineno":2147483648}`, `line 2: "lineno" is "2147483648", not an integer in int32 range`},
		{`{"id":"a","time":1,"lineno":1.5}`, `line 2: "lineno" is "1.5", not an integer`},
		{`{"id":"a","time":1,"lineno":true}`, `line 2: "lineno" is a true, not a number`},
		{`{"id":"a","time":1,"is_write":1}`, `line 2: "is_write" is a number, not true or false`},
		{`{"id":"a","time":1,"dependencies":"x"}`, `line 2: "dependencies" is a string, not an array of strings`},
		{`{"id":"a","time":1,"dependencies":["x",1]}`, `line 2: "dependencies" item 1 is a number, not a string`},
		{`{"id":"a","time":1,"extra":[1]}`, `line 2: "extra" is a array, not an object`},
		{`{"id":"a","time":1,"extra":{"a":+1}}`, `line 2: "extra" is not valid JSON`},
		{`{"id":"a","time":1,"extra":{"a":nan}}`, `line 2: "extra" is not valid JSON`},
	} {
		_, err := dayfile.Decode(gzipBytes(t, []byte(good+"\n"+c.line+"\n"+good+"\n")))
		if !errors.Is(err, dayfile.ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrCorrupt with %q", c.line, err, c.want)
		}
	}
}

func TestDecodeSizeBound(t *testing.T) {
	// A small file that inflates past the bound: refused, whatever it holds.
	bomb := gzipBytes(t, bytes.Repeat([]byte("\n"), 1<<20+1))
	if _, err := dayfile.DecodeLimit(bomb, 1<<20); !errors.Is(err, dayfile.ErrTooLarge) || errors.Is(err, dayfile.ErrCorrupt) ||
		!strings.Contains(err.Error(), "more than 1048576 bytes uncompressed") {
		t.Fatalf("error %v", err)
	}
	if got, err := dayfile.DecodeLimit(gzipBytes(t, bytes.Repeat([]byte("\n"), 1<<20)), 1<<20); err != nil || len(got) != 0 {
		t.Fatalf("at the bound: %d heartbeats, %v", len(got), err)
	}
	if testing.Short() {
		t.Skip("inflates 256 MiB")
	}
	// gzip members concatenate: 257 copies of 1 MiB of spaces inflate to
	// more than MaxDecodedSize.
	member := gzipBytes(t, bytes.Repeat([]byte(" "), 1<<20))
	big := bytes.Repeat(member, dayfile.MaxDecodedSize>>20+1)
	if _, err := dayfile.Decode(big); !errors.Is(err, dayfile.ErrTooLarge) ||
		!strings.Contains(err.Error(), "uncompressed") {
		t.Fatalf("%d byte gzip bomb: error %v", len(big), err)
	}
}

func TestKey(t *testing.T) {
	key := dayfile.Key("k3x9q", userA, "20260314")
	if want := "k3x9q/" + userA + "/2026-03-14.ndjson.gz"; key != want {
		t.Fatalf("Key = %s, want %s", key, want)
	}
	prefix, user, day, err := dayfile.ParseKey(key)
	if err != nil || prefix != "k3x9q" || user != userA || day != "20260314" {
		t.Fatalf("ParseKey(%s) = %q %q %q %v", key, prefix, user, day, err)
	}
	for _, bad := range []string{
		"", "k3x9q", "k3x9q/u/2026-03-14.ndjson", "k3x9q/u/2026-03-14.json.gz", "k3x9q/u/20260314.ndjson.gz",
		"k3x9q/u/2026-02-30.ndjson.gz", "k3x9q/u/2026-3-14.ndjson.gz", "/u/2026-03-14.ndjson.gz",
		"k3x9q//2026-03-14.ndjson.gz", "a/k3x9q/u/2026-03-14.ndjson.gz", "k3x9q/u/x/2026-03-14.ndjson.gz",
		"k3x9q/u/+2026-03-14.ndjson.gz",
	} {
		if p, u, d, err := dayfile.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) = %q %q %q, want an error", bad, p, u, d)
		}
	}
	for _, args := range [][3]string{
		{"", userA, "20260314"}, {"a/b", userA, "20260314"}, {"p", "", "20260314"}, {"p", "u/v", "20260314"},
		{"p", userA, "2026-03-14"}, {"p", userA, "20260230"}, {"p", userA, "2026031"}, {"p", userA, ""},
	} {
		if err := dayfile.CheckKeyParts(args[0], args[1], args[2]); err == nil {
			t.Errorf("CheckKeyParts%q: no error", args)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Key%q did not panic", args)
				}
			}()
			dayfile.Key(args[0], args[1], args[2])
		}()
	}
	// Every day of a few years round-trips.
	for d := range 3 * 366 {
		day := fmt.Sprintf("%04d%02d%02d", 2024+d/366, 1+d/31%12, 1+d%28)
		_, _, got, err := dayfile.ParseKey(dayfile.Key("p", "u", day))
		if err != nil || got != day {
			t.Fatalf("day %s: %s %v", day, got, err)
		}
	}
}
