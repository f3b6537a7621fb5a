package dumps

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync/atomic"
)

// Format is the kind of file an import reads.
type Format int

const (
	// WakaTime is WakaTime's data dump of heartbeats: an object whose
	// "days" hold each a "date" and its "heartbeats" (a bare JSON array of
	// heartbeats is taken too).
	WakaTime Format = iota + 1
	// NDJSON is one heartbeat per line, as WakaTime's API names the fields
	// and as day files and Export write them; gzip or not.
	NDJSON
)

// String is the format's name on the command line.
func (f Format) String() string {
	switch f {
	case WakaTime:
		return "wakatime"
	case NDJSON:
		return "ndjson"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// record is one heartbeat of the file, not decoded yet, and where it is.
type record struct {
	raw    []byte
	index  int64  // 1-based, in file order
	line   int64  // NDJSON: 1-based line; 0 when unknown
	offset int64  // byte offset of the record in the (uncompressed) input
	date   string // WakaTime: the "date" of the day that holds it
	nth    int    // WakaTime: 1-based place in that day's heartbeats
}

// where says where a record is, for a person who opens the file.
func (r record) where() string {
	if r.line > 0 {
		return fmt.Sprintf("record %d (line %d, byte %d)", r.index, r.line, r.offset)
	}
	if r.date != "" {
		return fmt.Sprintf("record %d (day %s, heartbeat %d, byte %d)", r.index, r.date, r.nth, r.offset)
	}
	return fmt.Sprintf("record %d (byte %d)", r.index, r.offset)
}

// ErrNotDump means the file is not in the format asked for, or breaks off:
// a JSON syntax error in a dump ends it (what came before is imported).
var ErrNotDump = errors.New("dumps: not a heartbeats file")

// counter counts the bytes read through it (of the file as it is on disk,
// compressed or not), for the progress line.
type counter struct {
	r io.Reader
	n atomic.Int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// wakatimeRecords yields the heartbeats of a WakaTime dump one at a time,
// reading it with a scanner of its own: only one heartbeat is ever held,
// and a heartbeat's bytes are found without decoding them (fastjson then
// parses each once; encoding/json's Decoder scanned every value twice and
// was most of an import's CPU).
func wakatimeRecords(r io.Reader) iter.Seq2[record, error] {
	return recordsOf(r, func(br *bufio.Reader, yield func(record, error) bool) {
		w := &dumpWalker{sc: scanner{r: br}, yield: yield}
		if err := w.document(); err != nil && !errors.Is(err, errStopped) {
			yield(record{}, err)
		}
	})
}

// recordsOf yields what read finds in r, gunzipped when r starts with
// gzip's magic bytes: a dump or JSON lines may come compressed or not.
func recordsOf(r io.Reader, read func(*bufio.Reader, func(record, error) bool)) iter.Seq2[record, error] {
	return func(yield func(record, error) bool) {
		br := bufio.NewReaderSize(r, 1<<20)
		if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
			zr, err := gzip.NewReader(br)
			if err != nil {
				yield(record{}, fmt.Errorf("%w: gzip: %v", ErrNotDump, err))
				return
			}
			defer zr.Close()
			br = bufio.NewReaderSize(zr, 1<<20)
		}
		read(br, yield)
	}
}

// errStopped ends a walk whose consumer stopped.
var errStopped = errors.New("stopped")

type dumpWalker struct {
	sc    scanner
	yield func(record, error) bool
	n     int64
}

func (w *dumpWalker) fail(what string, err error) error {
	return fmt.Errorf("%w: %s at byte %d: %v", ErrNotDump, what, w.sc.offset, err)
}

func (w *dumpWalker) expect(want byte, what string) error {
	c, err := w.sc.next()
	if err != nil {
		return w.fail(what, err)
	}
	if c != want {
		return w.fail(what, fmt.Errorf("want %q, got %q", want, c))
	}
	return nil
}

// more reads past a ',' and reports whether another element follows, or
// reads the closing delimiter and reports false. first is whether no
// element was read yet.
func (w *dumpWalker) more(closing byte, first bool, what string) (bool, error) {
	c, err := w.sc.peek()
	if err != nil {
		return false, w.fail(what, err)
	}
	if c == closing {
		w.sc.skip()
		return false, nil
	}
	if first {
		return true, nil
	}
	if c != ',' {
		return false, w.fail(what, fmt.Errorf("want ',' or %q, got %q", closing, c))
	}
	w.sc.skip()
	return true, nil
}

func (w *dumpWalker) document() error {
	c, err := w.sc.peek()
	if err != nil {
		return w.fail("the start of the dump", err)
	}
	switch c {
	case '[': // a bare array of heartbeats
		w.sc.skip()
		if err := w.heartbeats(""); err != nil {
			return err
		}
		return w.end()
	case '{':
		w.sc.skip()
	default:
		return w.fail("the start of the dump", fmt.Errorf("want an object with \"days\", got %q", c))
	}
	sawDays := false
	for first := true; ; first = false {
		ok, err := w.more('}', first, "the dump's object")
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		key, err := w.key()
		if err != nil {
			return err
		}
		if key != "days" {
			if _, err := w.sc.value(nil); err != nil {
				return w.fail(fmt.Sprintf("%q", key), err)
			}
			continue
		}
		sawDays = true
		if err := w.expect('[', `"days"`); err != nil {
			return err
		}
		for first := true; ; first = false {
			ok, err := w.more(']', first, `"days"`)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := w.day(); err != nil {
				return err
			}
		}
	}
	if !sawDays {
		return fmt.Errorf("%w: the object has no \"days\": not WakaTime's heartbeats dump (its daily summaries export has no heartbeats)", ErrNotDump)
	}
	return w.end()
}

// end checks that nothing but space follows the document.
func (w *dumpWalker) end() error {
	if c, err := w.sc.peek(); err != io.EOF {
		return w.fail("the end of the dump", fmt.Errorf("%q follows the document", c))
	}
	return nil
}

// key reads an object's key and its ':'.
func (w *dumpWalker) key() (string, error) {
	raw, err := w.sc.value(nil)
	if err != nil {
		return "", w.fail("a key", err)
	}
	var k string
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", w.fail("a key", err)
	}
	return k, w.expect(':', "a key's ':'")
}

// day reads one element of "days". Its heartbeats may come before its
// date: records then carry no date.
func (w *dumpWalker) day() error {
	if err := w.expect('{', "a day"); err != nil {
		return err
	}
	date := ""
	for first := true; ; first = false {
		ok, err := w.more('}', first, "a day")
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "date":
			raw, err := w.sc.value(nil)
			if err == nil {
				err = json.Unmarshal(raw, &date)
			}
			if err != nil {
				return w.fail(`a day's "date"`, err)
			}
		case "heartbeats":
			if err := w.expect('[', `a day's "heartbeats"`); err != nil {
				return err
			}
			if err := w.heartbeats(date); err != nil {
				return err
			}
		default:
			if _, err := w.sc.value(nil); err != nil {
				return w.fail(fmt.Sprintf("a day's %q", key), err)
			}
		}
	}
}

// heartbeats yields the elements of an array whose '[' was read, and reads
// its ']'.
func (w *dumpWalker) heartbeats(date string) error {
	var buf []byte
	for first, nth := true, 1; ; first, nth = false, nth+1 {
		ok, err := w.more(']', first, "a day's heartbeats")
		if err != nil || !ok {
			return err
		}
		w.sc.space()
		offset := w.sc.offset
		if buf, err = w.sc.value(buf[:0]); err != nil {
			return w.fail(fmt.Sprintf("heartbeat %d", w.n+1), err)
		}
		w.n++
		if !w.yield(record{raw: buf, index: w.n, offset: offset, date: date, nth: nth}, nil) {
			return errStopped
		}
	}
}

// scanner reads JSON's structure off a buffered reader, counting bytes.
type scanner struct {
	r      *bufio.Reader
	offset int64
}

// space reads past white space.
func (s *scanner) space() {
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return
		}
		if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
			_ = s.r.UnreadByte()
			return
		}
		s.offset++
	}
}

// peek returns the next byte past white space without reading it.
func (s *scanner) peek() (byte, error) {
	s.space()
	b, err := s.r.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (s *scanner) skip() {
	_, _ = s.r.ReadByte()
	s.offset++
}

// next reads the next byte past white space.
func (s *scanner) next() (byte, error) {
	s.space()
	c, err := s.r.ReadByte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		s.offset++
	}
	return c, err
}

// maxValue bounds one value of a dump (a heartbeat, the user object).
const maxValue = 4 << 20

// value appends the bytes of the next JSON value (past white space) to
// dst: an object or array whole, by its brackets outside strings; a
// string; or a number or literal. It checks the structure only: the
// caller parses what it keeps.
func (s *scanner) value(dst []byte) ([]byte, error) {
	s.space()
	depth, inString, escaped := 0, false, false
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return dst, err
		}
		if !inString && depth == 0 && len(dst) > 0 && dst[0] != '"' && dst[0] != '{' && dst[0] != '[' {
			// The end of a number or literal is the byte after it.
			if c == ',' || c == '}' || c == ']' || c == ':' || c == ' ' || c == '\n' || c == '\r' || c == '\t' {
				_ = s.r.UnreadByte()
				return dst, nil
			}
		}
		s.offset++
		dst = append(dst, c)
		if len(dst) > maxValue {
			return dst, fmt.Errorf("a value longer than %d bytes", maxValue)
		}
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				if depth == 0 {
					return dst, nil
				}
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth < 0 {
				return dst, fmt.Errorf("unexpected %q", c)
			}
			if depth == 0 {
				return dst, nil
			}
		}
	}
}

// maxLine bounds one JSON line: a heartbeat at every field's limit (a
// thousand dependencies of 1 KiB) is under it.
const maxLine = 4 << 20

// ndjsonRecords yields the non-blank lines of r (gzip or not). A line
// over maxLine is yielded without its bytes (raw nil), to be refused.
func ndjsonRecords(r io.Reader) iter.Seq2[record, error] {
	return recordsOf(r, func(br *bufio.Reader, yield func(record, error) bool) {
		var (
			offset, line, index int64
			buf                 []byte // a line longer than br's buffer
			size                int64  // bytes of that line read so far
			tooLong             bool
		)
		for {
			chunk, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				size += int64(len(chunk))
				if size <= maxLine {
					buf = append(buf, chunk...)
				} else {
					tooLong, buf = true, buf[:0]
				}
				continue
			}
			data := chunk
			if size > 0 {
				data = append(buf, chunk...)
			}
			if size += int64(len(chunk)); size > maxLine {
				tooLong = true
			}
			if size > 0 {
				line++
				rec := record{raw: bytes.TrimSpace(data), line: line, offset: offset}
				if tooLong {
					rec.raw = nil
				}
				offset += size
				if tooLong || len(rec.raw) > 0 { // blank lines are no records
					index++
					rec.index = index
					if !yield(rec, nil) {
						return
					}
				}
			}
			buf, size, tooLong = buf[:0], 0, false
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(record{}, fmt.Errorf("%w: line %d: %v", ErrNotDump, line+1, err))
				return
			}
		}
	})
}
