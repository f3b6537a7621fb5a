package dumps

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync/atomic"

	"github.com/go-json-experiment/json/jsontext"
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
// reading its structure token by token with jsontext (the JSON tokenizer
// of Go's encoding/json/v2): only one heartbeat is ever held, and its
// bytes are found in one pass without decoding them (fastjson then parses
// each once; encoding/json's Decoder scanned every value twice and was
// most of an import's CPU).
func wakatimeRecords(r io.Reader) iter.Seq2[record, error] {
	return recordsOf(r, func(br *bufio.Reader, yield func(record, error) bool) {
		guard := &tokenGuard{r: br}
		w := &dumpWalker{dec: jsontext.NewDecoder(guard,
			// A heartbeat's own faults (a key twice, bad UTF-8) refuse
			// that heartbeat at validation, not the rest of the dump.
			jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)), yield: yield}
		guard.dec = w.dec
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

// maxValue bounds one heartbeat of a dump: one at every field's limit (a
// thousand dependencies of 1 KiB) is under it.
const maxValue = 4 << 20

// tokenGuard is the dump walker's input. jsontext holds a whole token or
// value in memory before the walker can look at its length, so a dump with
// one string of gigabytes would be read whole; the guard fails the read
// once the decoder holds more than guardBytes it has not consumed.
type tokenGuard struct {
	r    io.Reader
	dec  *jsontext.Decoder
	read int64
}

// guardBytes leaves room for the decoder's read-ahead, which grows with the
// largest value it has held (up to maxValue, then twice that).
const guardBytes = 4 * maxValue

func (g *tokenGuard) Read(p []byte) (int, error) {
	if g.dec != nil && g.read-g.dec.InputOffset() > guardBytes {
		return 0, fmt.Errorf("a value longer than %d bytes", maxValue)
	}
	n, err := g.r.Read(p)
	g.read += int64(n)
	return n, err
}

type dumpWalker struct {
	dec   *jsontext.Decoder
	yield func(record, error) bool
	n     int64
}

func (w *dumpWalker) fail(what string, err error) error {
	return fmt.Errorf("%w: %s at byte %d: %v", ErrNotDump, what, w.dec.InputOffset(), err)
}

// open reads the token that opens an object or array.
func (w *dumpWalker) open(kind jsontext.Kind, what string) error {
	tok, err := w.dec.ReadToken()
	if err != nil {
		return w.fail(what, err)
	}
	if tok.Kind() != kind {
		return w.fail(what, fmt.Errorf("want %v, got %v", kind, tok.Kind()))
	}
	return nil
}

// more reports whether the object or array being read has another
// element, and reads its closing token when it has none.
func (w *dumpWalker) more(what string) (bool, error) {
	switch w.dec.PeekKind() {
	case '}', ']':
		if _, err := w.dec.ReadToken(); err != nil {
			return false, w.fail(what, err)
		}
		return false, nil
	case 0:
		_, err := w.dec.ReadToken() // the error PeekKind saw
		return false, w.fail(what, err)
	}
	return true, nil
}

// key reads an object's key.
func (w *dumpWalker) key(what string) (string, error) {
	tok, err := w.dec.ReadToken()
	if err != nil {
		return "", w.fail(what, err)
	}
	return tok.String(), nil
}

func (w *dumpWalker) skip(what string) error {
	if err := w.dec.SkipValue(); err != nil {
		return w.fail(what, err)
	}
	return nil
}

func (w *dumpWalker) document() error {
	switch w.dec.PeekKind() {
	case '[': // a bare array of heartbeats
		if err := w.heartbeats(""); err != nil {
			return err
		}
		return w.end()
	case '{':
	default:
		_, err := w.dec.ReadToken()
		if err == nil {
			err = errors.New(`want an object with "days"`)
		}
		return w.fail("the start of the dump", err)
	}
	if err := w.open('{', "the dump's object"); err != nil {
		return err
	}
	sawDays := false
	for {
		ok, err := w.more("the dump's object")
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		key, err := w.key("the dump's object")
		if err != nil {
			return err
		}
		if key != "days" {
			if err := w.skip(fmt.Sprintf("%q", key)); err != nil {
				return err
			}
			continue
		}
		sawDays = true
		if err := w.days(); err != nil {
			return err
		}
	}
	if !sawDays {
		return fmt.Errorf("%w: the object has no \"days\": not WakaTime's heartbeats dump (its daily summaries export has no heartbeats)", ErrNotDump)
	}
	return w.end()
}

func (w *dumpWalker) days() error {
	if err := w.open('[', `"days"`); err != nil {
		return err
	}
	for {
		ok, err := w.more(`"days"`)
		if err != nil || !ok {
			return err
		}
		if err := w.day(); err != nil {
			return err
		}
	}
}

// end checks that nothing but space follows the document.
func (w *dumpWalker) end() error {
	if _, err := w.dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = errors.New("more follows the document")
		}
		return w.fail("the end of the dump", err)
	}
	return nil
}

// day reads one element of "days". Its heartbeats may come before its
// date: records then carry no date.
func (w *dumpWalker) day() error {
	if err := w.open('{', "a day"); err != nil {
		return err
	}
	date := ""
	for {
		ok, err := w.more("a day")
		if err != nil || !ok {
			return err
		}
		key, err := w.key("a day")
		if err != nil {
			return err
		}
		switch key {
		case "date":
			tok, err := w.dec.ReadToken()
			if err == nil && tok.Kind() != '"' {
				err = fmt.Errorf("want a string, got %v", tok.Kind())
			}
			if err != nil {
				return w.fail(`a day's "date"`, err)
			}
			date = tok.String()
		case "heartbeats":
			if err := w.heartbeats(date); err != nil {
				return err
			}
		default:
			if err := w.skip(fmt.Sprintf("a day's %q", key)); err != nil {
				return err
			}
		}
	}
}

// heartbeats yields the elements of the array that comes next.
func (w *dumpWalker) heartbeats(date string) error {
	if err := w.open('[', `a day's "heartbeats"`); err != nil {
		return err
	}
	for nth := 1; ; nth++ {
		ok, err := w.more("a day's heartbeats")
		if err != nil || !ok {
			return err
		}
		raw, err := w.dec.ReadValue()
		if err == nil && len(raw) > maxValue {
			err = fmt.Errorf("a value longer than %d bytes", maxValue)
		}
		if err != nil {
			return w.fail(fmt.Sprintf("heartbeat %d", w.n+1), err)
		}
		w.n++
		offset := w.dec.InputOffset() - int64(len(raw))
		if !w.yield(record{raw: raw, index: w.n, offset: offset, date: date, nth: nth}, nil) {
			return errStopped
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
