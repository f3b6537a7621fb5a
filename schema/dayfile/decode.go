package dayfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fastjson"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ErrCorrupt means a day file cannot be read: it is not gzip, it is
// truncated, or a line is not a heartbeat. Decode's errors wrap it and say
// what is wrong and where.
var ErrCorrupt = errors.New("dayfile: corrupt day file")

// MaxDecodedSize bounds a day file's uncompressed size in Decode, so that a
// gzip bomb cannot exhaust memory. A realistic day is 200 heartbeats, about
// 130 KB as the API stores them; the limit is some 2,000 times that. It is
// also DefaultLimits.MaxBytes.
const MaxDecodedSize = 256 << 20

// Decode reads a day file. It returns the heartbeats in the order of the
// file, which for a file Encode wrote is merged form; pass them to Merge as
// existing, which also puts a file from another writer into merged form.
//
// Decode is lenient where a file from another version of the format could
// differ, and strict where the data could be lost or changed: keys it does
// not know are ignored, a missing key or a null is an absent field, blank
// lines are skipped; but a line that is not a JSON object, a known field of
// the wrong type, an integer out of int32 range, a time that is not a finite
// number, a missing id, or an extra that is not a JSON object is an error
// wrapping ErrCorrupt, as are a gzip stream that is not valid or ends early
// and more than MaxDecodedSize bytes of content wraps ErrTooLarge (not
// ErrCorrupt: the file may be sound, only too big to read). Strings with invalid UTF-8
// get U+FFFD for each bad byte, as encoding/json would write them.
//
// Whatever Decode returns, Merge and then Encode write. Equal strings and
// equal dependency lists of one file may share their memory: do not modify
// a returned Dependencies slice in place (an append copies).
func Decode(data []byte) ([]*heartlogv1.Heartbeat, error) {
	hbs, _, err := decode(data, Limits{MaxBytes: MaxDecodedSize}, true)
	return hbs, err
}

// decode reads a day file within limits (zero fields: no bound, except
// MaxBytes, which must be set) and returns its uncompressed size; fast
// tries the fast path (fastdecode.go) on each line first.
func decode(data []byte, limits Limits, fast bool) ([]*heartlogv1.Heartbeat, int, error) {
	rb := getBuf(&jsonBufs)
	defer putBuf(&jsonBufs, rb)
	raw, err := gunzip((*rb)[:0], data, limits.MaxBytes)
	*rb = raw
	if err != nil {
		return nil, 0, err
	}
	size := len(raw)

	p := parsers.Get()
	defer parsers.Put(p)
	d := decoder{intern: make(map[string]string)}
	// Heartbeats are allocated in slabs. The first is sized by the count of
	// lines, but bounded by the size (a real line is 350 to 650 bytes), so
	// that a file of blank lines cannot make it huge.
	estimate := min(bytes.Count(raw, []byte{'\n'})+1, len(raw)/64+1)
	hbs := make([]*heartlogv1.Heartbeat, 0, estimate)
	var slab []heartlogv1.Heartbeat
	for n := 1; len(raw) > 0; n++ {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(bytes.TrimLeft(line, " \t\r")) == 0 {
			continue
		}
		if len(slab) == 0 {
			slab = make([]heartlogv1.Heartbeat, max(estimate-len(hbs), 64))
		}
		hb := &slab[0]
		slab = slab[1:]
		if !fast || !d.fastLine(line, hb) {
			*hb = heartlogv1.Heartbeat{} // what the fast path set before it gave up
			if err := d.line(p, line, hb); err != nil {
				return nil, 0, fmt.Errorf("%w: line %d: %w", ErrCorrupt, n, err)
			}
		}
		hbs = append(hbs, hb)
		if limits.MaxHeartbeats > 0 && len(hbs) > limits.MaxHeartbeats {
			return nil, 0, fmt.Errorf("%w: more than %d heartbeats", ErrTooLarge, limits.MaxHeartbeats)
		}
	}
	return hbs, size, nil
}

var (
	gzipReaders sync.Pool // of *gzip.Reader
	parsers     fastjson.ParserPool
)

// gunzip appends the content of the gzip stream data to dst.
func gunzip(dst, data []byte, limit int) ([]byte, error) {
	br := bytes.NewReader(data)
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(br)
	} else {
		err = zr.Reset(br)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return dst, fmt.Errorf("%w: gzip header: %w", ErrCorrupt, err)
	}
	defer gzipReaders.Put(zr)

	// The gzip trailer holds the size modulo 4 GiB: a hint for the buffer,
	// not trusted past the limit or past a ratio that day files reach (they
	// compress some 15 times), since a damaged file's last bytes are noise.
	if n := len(data); n >= 18 {
		hint := int(uint32(data[n-4]) | uint32(data[n-3])<<8 | uint32(data[n-2])<<16 | uint32(data[n-1])<<24)
		if hint <= limit && hint <= 64*n {
			dst = growTo(dst, hint+1)
		}
	}
	for {
		if len(dst) == cap(dst) {
			dst = growTo(dst, min(2*cap(dst)+512, limit+1))
		}
		n, err := zr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, fmt.Errorf("%w: more than %d bytes uncompressed", ErrTooLarge, limit)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, fmt.Errorf("%w: gzip: %w", ErrCorrupt, err)
		}
	}
}

// growTo returns b with a capacity of at least n.
func growTo(b []byte, n int) []byte {
	if n <= cap(b) {
		return b
	}
	c := make([]byte, len(b), n)
	copy(c, b)
	return c
}

// decoder holds what one Decode call shares between lines.
type decoder struct {
	// intern keeps one copy of each string value: user, type, category,
	// project, editor and the like repeat on nearly every line of a day.
	intern map[string]string
	lists  map[string][]string // dependency lists, by their JSON (fast path)
	last   [numSlots]string    // each string field's value on the line before (fast path)
	ints   []int32             // optional numbers are allocated from here
	bools  []bool
	num    []byte // scratch for a number's text
}

func (d *decoder) line(p *fastjson.Parser, line []byte, hb *heartlogv1.Heartbeat) error {
	v, err := p.ParseBytes(line)
	if err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	obj, err := v.Object()
	if err != nil {
		return fmt.Errorf("a %s, not a heartbeat object", v.Type())
	}
	var failed error
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if failed != nil {
			return
		}
		if err := d.field(hb, string(key), v); err != nil {
			failed = fmt.Errorf("%q %w", key, err)
		}
	})
	if failed != nil {
		return failed
	}
	if hb.Id == "" {
		return errors.New(`no "id"`)
	}
	return nil
}

// field sets one field from its value; a null leaves it absent, and an
// unknown key is ignored.
func (d *decoder) field(hb *heartlogv1.Heartbeat, key string, v *fastjson.Value) error {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	var err error
	switch key {
	case "id":
		hb.Id, err = d.str(v, false)
	case "user_id":
		hb.UserId, err = d.str(v, true)
	case "entity":
		hb.Entity, err = d.str(v, true)
	case "type":
		hb.Type, err = d.str(v, true)
	case "category":
		hb.Category, err = d.str(v, true)
	case "time":
		hb.Time, err = d.float(v)
	case "project":
		hb.Project, err = d.str(v, true)
	case "project_root_count":
		hb.ProjectRootCount, err = d.int(v)
	case "branch":
		hb.Branch, err = d.str(v, true)
	case "language":
		hb.Language, err = d.str(v, true)
	case "dependencies":
		hb.Dependencies, err = d.strs(v)
	case "lines":
		hb.Lines, err = d.int(v)
	case "line_additions":
		hb.LineAdditions, err = d.int(v)
	case "line_deletions":
		hb.LineDeletions, err = d.int(v)
	case "lineno":
		hb.Lineno, err = d.int(v)
	case "cursorpos":
		hb.Cursorpos, err = d.int(v)
	case "is_write":
		hb.IsWrite, err = d.bool(v)
	case "ai_line_changes":
		hb.AiLineChanges, err = d.int(v)
	case "human_line_changes":
		hb.HumanLineChanges, err = d.int(v)
	case "editor":
		hb.Editor, err = d.str(v, true)
	case "plugin":
		hb.Plugin, err = d.str(v, true)
	case "operating_system":
		hb.OperatingSystem, err = d.str(v, true)
	case "machine":
		hb.Machine, err = d.str(v, true)
	case "user_agent":
		hb.UserAgent, err = d.str(v, true)
	case "extra":
		hb.ExtraJson, err = d.extra(v)
	}
	return err
}

func (d *decoder) str(v *fastjson.Value, intern bool) (string, error) {
	b, err := v.StringBytes()
	if err != nil {
		return "", fmt.Errorf("is a %s, not a string", v.Type())
	}
	return d.text(b, intern), nil
}

// text is a string's content as a Go string: interned if asked, with
// U+FFFD for each byte of invalid UTF-8.
func (d *decoder) text(b []byte, intern bool) string {
	if !utf8.Valid(b) {
		return toValidUTF8(b)
	}
	if !intern {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	d.intern[s] = s
	return s
}

// toValidUTF8 replaces each byte of invalid UTF-8 with U+FFFD, the string
// that encoding/json's \ufffd for that byte reads back as.
func toValidUTF8(b []byte) string {
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return string(out)
}

func (d *decoder) strs(v *fastjson.Value) ([]string, error) {
	items, err := v.Array()
	if err != nil {
		return nil, fmt.Errorf("is a %s, not an array of strings", v.Type())
	}
	if len(items) == 0 {
		return nil, nil
	}
	out := make([]string, len(items))
	for i, item := range items {
		if out[i], err = d.str(item, true); err != nil {
			return nil, fmt.Errorf("item %d %w", i, err)
		}
	}
	return out, nil
}

// number returns the text of a JSON number. fastjson's parser takes
// things like "1.2.3", "+1" or "nan" as numbers, and its float parsing is
// not correctly rounded for exponent forms (about 1 in 40 of the 'e' forms
// encoding/json writes below 1e-6 and from 1e21 comes back a bit off), so
// the text is checked against the JSON grammar here and parsed by strconv.
func (d *decoder) number(v *fastjson.Value) ([]byte, error) {
	if v.Type() != fastjson.TypeNumber {
		return nil, fmt.Errorf("is a %s, not a number", v.Type())
	}
	d.num = v.MarshalTo(d.num[:0])
	if !validNumber(d.num) {
		return nil, fmt.Errorf("is %.40q, not a JSON number", d.num)
	}
	return d.num, nil
}

func (d *decoder) float(v *fastjson.Value) (float64, error) {
	b, err := d.number(v)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("is %.40q, out of range", b)
	}
	return f, nil
}

func (d *decoder) int(v *fastjson.Value) (*int32, error) {
	b, err := d.number(v)
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseInt(string(b), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("is %.40q, not an integer in int32 range", b)
	}
	return d.newInt(int32(n)), nil
}

// newInt returns a pointer to n, allocated from a slab.
func (d *decoder) newInt(n int32) *int32 {
	if len(d.ints) == 0 {
		d.ints = make([]int32, 256)
	}
	p := &d.ints[0]
	d.ints = d.ints[1:]
	*p = n
	return p
}

func (d *decoder) bool(v *fastjson.Value) (*bool, error) {
	var b bool
	switch v.Type() {
	case fastjson.TypeTrue:
		b = true
	case fastjson.TypeFalse:
	default:
		return nil, fmt.Errorf("is a %s, not true or false", v.Type())
	}
	return d.newBool(b), nil
}

// newBool returns a pointer to b, allocated from a slab.
func (d *decoder) newBool(b bool) *bool {
	if len(d.bools) == 0 {
		d.bools = make([]bool, 256)
	}
	p := &d.bools[0]
	d.bools = d.bools[1:]
	*p = b
	return p
}

// extra returns the object compacted, exactly as Encode will write it
// again: fastjson keeps the text of strings and numbers that are not
// looked at, and appendExtra checks the grammar that fastjson's parser
// does not.
func (d *decoder) extra(v *fastjson.Value) ([]byte, error) {
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("is a %s, not an object", v.Type())
	}
	d.num = v.MarshalTo(d.num[:0])
	out, err := appendExtra(nil, d.num)
	if err != nil {
		return nil, fmt.Errorf("is not valid JSON: %w", err)
	}
	return out, nil
}

// validNumber reports whether b is a number in the JSON grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		j := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(b)
}
