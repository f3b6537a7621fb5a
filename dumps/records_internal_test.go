package dumps

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

// The dump scanner finds each heartbeat's bytes whatever its strings hold,
// takes the date wherever it is, and breaks off with ErrNotDump (after
// what came before) at a structure it cannot read.
func TestWakaTimeRecords(t *testing.T) {
	dump := `{"user": {"id": "u", "tricky": "}]\"{["}, "days": [
	  {"heartbeats": [{"entity": "a \"quoted\" ]}", "time": 1.5, "dependencies": ["x", "y"], "n": {"deep": [1, {"k": null}]}}], "date": "2024-01-02"},
	  {"date": "2024-01-03", "grand_total": {"total_seconds": 3}, "heartbeats": [ {"entity":"b","time":2} , {"entity":"c","time":3}]},
	  {"date": "2024-01-04", "heartbeats": []}
	], "range": {"start": 1, "end": 2}}`
	var got []record
	for rec, err := range wakatimeRecords(strings.NewReader(dump)) {
		if err != nil {
			t.Fatal(err)
		}
		rec.raw = bytes.Clone(rec.raw)
		got = append(got, rec)
	}
	want := []string{
		`{"entity": "a \"quoted\" ]}", "time": 1.5, "dependencies": ["x", "y"], "n": {"deep": [1, {"k": null}]}}`,
		`{"entity":"b","time":2}`, `{"entity":"c","time":3}`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if string(got[i].raw) != w || got[i].index != int64(i+1) || dump[got[i].offset:got[i].offset+int64(len(w))] != w {
			t.Errorf("record %d: %+v (%s), want %s at its offset", i, got[i], got[i].raw, w)
		}
	}
	if got[0].date != "" || got[1].date != "2024-01-03" || got[2].nth != 2 {
		t.Errorf("dates and places: %+v", got)
	}

	for name, bad := range map[string]string{
		"truncated":   `{"days": [{"date": "2024-01-02", "heartbeats": [{"entity": "a", "time": 1}, {"entity": "b"`,
		"no days":     `{"user": {}, "range": {}}`,
		"not json":    `hello`,
		"trailing":    `{"days": []} {}`,
		"bad between": `{"days": [{"heartbeats": [{"entity": "a", "time": 1} {"entity": "b"}]}]}`,
	} {
		var n int
		var last error
		for _, err := range wakatimeRecords(strings.NewReader(bad)) {
			if err != nil {
				last = err
				break
			}
			n++
		}
		if !errors.Is(last, ErrNotDump) {
			t.Errorf("%s: %v, want ErrNotDump", name, last)
		}
		if name == "truncated" && n != 1 {
			t.Errorf("truncated: %d records before the break, want 1", n)
		}
	}
	// A bare array of heartbeats, plain and gzipped.
	bare := ` [{"entity":"a"},{"entity":"b"}] `
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write([]byte(bare))
	zw.Close()
	for name, data := range map[string][]byte{"plain": []byte(bare), "gzip": zipped.Bytes()} {
		n := 0
		for _, err := range wakatimeRecords(bytes.NewReader(data)) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 2 {
			t.Errorf("bare array, %s: %d records, want 2", name, n)
		}
	}
}

// JSON lines: blank lines are skipped but counted as lines, CRLF and a last
// line without its newline read, a line over maxLine is a record without
// bytes (refused), and gzip is found by its magic bytes.
func TestNDJSONRecords(t *testing.T) {
	long := `{"entity":"` + strings.Repeat("x", maxLine) + `"}`
	text := "{\"a\":1}\r\n\n  \n" + long + "\n{\"b\":2}"
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write([]byte(text))
	zw.Close()
	for name, data := range map[string][]byte{"plain": []byte(text), "gzip": zipped.Bytes()} {
		var got []record
		for rec, err := range ndjsonRecords(bytes.NewReader(data)) {
			if err != nil {
				t.Fatal(err)
			}
			rec.raw = bytes.Clone(rec.raw)
			got = append(got, rec)
		}
		if len(got) != 3 {
			t.Fatalf("%s: %d records, want 3", name, len(got))
		}
		if string(got[0].raw) != `{"a":1}` || got[0].line != 1 || got[0].offset != 0 {
			t.Errorf("%s: first %+v", name, got[0])
		}
		if got[1].raw != nil || got[1].line != 4 || got[1].index != 2 || got[1].offset != int64(len("{\"a\":1}\r\n\n  \n")) {
			t.Errorf("%s: the long line: line %d, index %d, offset %d, %d bytes kept", name, got[1].line, got[1].index, got[1].offset, len(got[1].raw))
		}
		if string(got[2].raw) != `{"b":2}` || got[2].line != 5 || got[2].offset != int64(len(text)-len(`{"b":2}`)) {
			t.Errorf("%s: last %+v", name, got[2])
		}
	}
}

// BenchmarkWakaTimeRecords reads a dump of 10,000 heartbeats shaped like
// WakaTime's (what an import's reading costs before any decoding).
func BenchmarkWakaTimeRecords(b *testing.B) {
	var dump bytes.Buffer
	dump.WriteString(`{"user": {"id": "u"}, "range": {"start": 1, "end": 2}, "days": [`)
	for d := range 100 {
		if d > 0 {
			dump.WriteString(",")
		}
		dump.WriteString(`{"date": "2024-01-02", "heartbeats": [`)
		for h := range 100 {
			if h > 0 {
				dump.WriteString(",")
			}
			dump.WriteString(`{"entity": "/home/u/src/heartlog/processors/postgres/postgres.go", "type": "file", "category": "coding", "time": 1704153600.123456, "project": "heartlog", "branch": "main", "language": "Go", "dependencies": ["context", "errors", "fmt"], "lines": 512, "lineno": 42, "cursorpos": 7, "is_write": false, "user_agent_id": "5f7c", "machine_name_id": "9a1b", "created_at": "2024-01-02T00:00:01Z"}`)
		}
		dump.WriteString(`]}`)
	}
	dump.WriteString(`]}`)
	data := dump.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		n := 0
		for _, err := range wakatimeRecords(bytes.NewReader(data)) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 10_000 {
			b.Fatalf("%d records", n)
		}
	}
}

// TestAHugeValueInADumpIsRefusedEarly: a dump whose "user" (or any value
// the walker skips) is one string of 40 MiB breaks off with ErrNotDump
// once the decoder holds 16 MiB of it, not after reading it whole.
func TestAHugeValueInADumpIsRefusedEarly(t *testing.T) {
	dump := `{"user": "` + strings.Repeat("x", 40<<20) + `", "days": [{"date": "2024-01-02", "heartbeats": [{"entity":"a","time":1}]}]}`
	var err error
	n := 0
	for _, e := range wakatimeRecords(strings.NewReader(dump)) {
		if e != nil {
			err = e
			break
		}
		n++
	}
	if !errors.Is(err, ErrNotDump) || !strings.Contains(err.Error(), "longer than") || n != 0 {
		t.Fatalf("%d records, %v: want ErrNotDump for a value too long", n, err)
	}
}
