package dayfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ErrInvalid means Encode was given heartbeats it cannot write: not in
// merged form, or with a field the format cannot hold.
var ErrInvalid = errors.New("dayfile: cannot encode")

// level is the gzip level of every day file. On a realistic day
// (BenchmarkGzipLevels, 127 KB of JSON) klauspost's level 3 writes about
// 9.6 KB in about 0.25 ms; its default, 5, is 4% smaller and twice as slow;
// 6 is 12% smaller and three times as slow. Encode runs thousands of times a
// second in the objects processor, so the time wins. Changing the level
// changes the bytes of every file (see the golden test).
const level = 3

// Encode writes heartbeats as a day file. hbs must be in the form Merge
// returns, strictly increasing by (time, id); Encode checks this rather
// than sorting, because a caller that skipped Merge has skipped the dedup
// too. It also returns an error wrapping ErrInvalid for a nil heartbeat, an
// empty id, a time that is NaN or infinite, or extra_json that is not a JSON
// object. An empty hbs gives a valid file with no lines.
//
// The same set of heartbeats always gives the same bytes.
func Encode(hbs []*heartlogv1.Heartbeat) ([]byte, error) {
	for i, hb := range hbs {
		if err := check(hb); err != nil {
			return nil, fmt.Errorf("%w: heartbeat %d: %w", ErrInvalid, i, err)
		}
		if i > 0 && compare(hbs[i-1], hb) >= 0 {
			return nil, fmt.Errorf("%w: heartbeat %d (id %s) does not come after %d (id %s) in (time, id) order: merge first",
				ErrInvalid, i, hb.Id, i-1, hbs[i-1].Id)
		}
	}

	jb := getBuf(&jsonBufs)
	defer putBuf(&jsonBufs, jb)
	b := (*jb)[:0]
	var err error
	for i, hb := range hbs {
		if b, err = appendHeartbeat(b, hb); err != nil {
			return nil, fmt.Errorf("%w: heartbeat %d (id %s): %w", ErrInvalid, i, hb.Id, err)
		}
	}
	*jb = b

	gb := getBuf(&gzipBufs)
	defer putBuf(&gzipBufs, gb)
	out := bytes.NewBuffer((*gb)[:0])
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(out) // also clears the header: no name, no comment, mtime 0, OS 255
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("dayfile: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("dayfile: gzip: %w", err)
	}
	*gb = out.Bytes()
	return bytes.Clone(out.Bytes()), nil
}

func check(hb *heartlogv1.Heartbeat) error {
	switch {
	case hb == nil:
		return errors.New("is nil")
	case hb.Id == "":
		return errors.New("has no id")
	case math.IsNaN(hb.Time) || math.IsInf(hb.Time, 0):
		return fmt.Errorf("has time %v, not a finite number", hb.Time)
	}
	return nil
}

var gzipWriters = sync.Pool{New: func() any {
	zw, err := gzip.NewWriterLevel(nil, level)
	if err != nil {
		panic(err) // level is a constant that NewWriterLevel takes
	}
	return zw
}}

// Buffers are pooled; one that grew past maxPooled (a day of a very busy
// user) is left to the garbage collector rather than kept.
const maxPooled = 4 << 20

var jsonBufs, gzipBufs sync.Pool

func getBuf(p *sync.Pool) *[]byte {
	if b, ok := p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func putBuf(p *sync.Pool, b *[]byte) {
	if cap(*b) <= maxPooled {
		p.Put(b)
	}
}

// AppendLine appends hb as one line of a day file, its JSON object and the
// "\n", exactly as Encode writes it: what `heartlog export` writes, so that
// an export reads like the day files it came from (and imports back into
// the same heartbeats, see heartbeat.Limits.DecodeValue).
func AppendLine(b []byte, hb *heartlogv1.Heartbeat) ([]byte, error) {
	if err := check(hb); err != nil {
		return b, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	out, err := appendHeartbeat(b, hb)
	if err != nil {
		return b, fmt.Errorf("%w: heartbeat %s: %w", ErrInvalid, hb.Id, err)
	}
	return out, nil
}

// appendHeartbeat appends one line. The order of the fields is the format:
// never reorder them (see the package documentation).
func appendHeartbeat(b []byte, hb *heartlogv1.Heartbeat) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, hb.Id)
	b = appendStringField(b, `,"user_id":`, hb.UserId)
	b = appendStringField(b, `,"entity":`, hb.Entity)
	b = appendStringField(b, `,"type":`, hb.Type)
	b = appendStringField(b, `,"category":`, hb.Category)
	b = append(b, `,"time":`...)
	b = appendFloat(b, hb.Time)
	b = appendStringField(b, `,"project":`, hb.Project)
	b = appendIntField(b, `,"project_root_count":`, hb.ProjectRootCount)
	b = appendStringField(b, `,"branch":`, hb.Branch)
	b = appendStringField(b, `,"language":`, hb.Language)
	if len(hb.Dependencies) > 0 {
		b = append(b, `,"dependencies":[`...)
		for i, d := range hb.Dependencies {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, d)
		}
		b = append(b, ']')
	}
	b = appendIntField(b, `,"lines":`, hb.Lines)
	b = appendIntField(b, `,"line_additions":`, hb.LineAdditions)
	b = appendIntField(b, `,"line_deletions":`, hb.LineDeletions)
	b = appendIntField(b, `,"lineno":`, hb.Lineno)
	b = appendIntField(b, `,"cursorpos":`, hb.Cursorpos)
	if hb.IsWrite != nil {
		b = append(b, `,"is_write":`...)
		b = strconv.AppendBool(b, *hb.IsWrite)
	}
	b = appendIntField(b, `,"ai_line_changes":`, hb.AiLineChanges)
	b = appendIntField(b, `,"human_line_changes":`, hb.HumanLineChanges)
	b = appendStringField(b, `,"editor":`, hb.Editor)
	b = appendStringField(b, `,"plugin":`, hb.Plugin)
	b = appendStringField(b, `,"operating_system":`, hb.OperatingSystem)
	b = appendStringField(b, `,"machine":`, hb.Machine)
	b = appendStringField(b, `,"user_agent":`, hb.UserAgent)
	if len(hb.ExtraJson) > 0 {
		b = append(b, `,"extra":`...)
		var err error
		if b, err = appendExtra(b, hb.ExtraJson); err != nil {
			return b, err
		}
	}
	return append(b, "}\n"...), nil
}

func appendStringField(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

func appendIntField(b []byte, key string, p *int32) []byte {
	if p == nil {
		return b
	}
	return strconv.AppendInt(append(b, key...), int64(*p), 10)
}

// appendExtra appends extra_json compacted, as encoding/json writes a
// json.RawMessage with HTML escaping off. It must be a JSON object: a
// newline in it would split the line, and anything else would not read
// back into extra_json.
func appendExtra(b []byte, extra []byte) ([]byte, error) {
	if first := bytes.TrimLeft(extra, " \t\r\n"); len(first) == 0 || first[0] != '{' {
		return b, errors.New("extra_json is not a JSON object")
	}
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, extra); err != nil {
		return b, fmt.Errorf("extra_json is not a JSON object: %w", err)
	}
	return buf.Bytes(), nil
}

// appendFloat appends f as encoding/json writes a float64: like strconv
// 'f' with the shortest precision, switching to 'e' (with a one-digit
// negative exponent for 1e-7) outside [1e-6, 1e21).
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hex = "0123456789abcdef"

// safe marks the ASCII bytes that go into a JSON string as they are
// (encoding/json's safeSet: all but control characters, '"' and '\\').
var safe = func() (s [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		s[c] = c != '"' && c != '\\'
	}
	return s
}()

// appendString appends s quoted exactly as encoding/json does with HTML
// escaping off: short escapes for \b \f \n \r \t " and \\, \u00XX for
// other control characters, \u2028 and \u2029 escaped, and each byte of
// invalid UTF-8 as \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
