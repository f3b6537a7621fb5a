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
// reading it token by token: only one heartbeat is ever held.
func wakatimeRecords(r io.Reader) iter.Seq2[record, error] {
	return func(yield func(record, error) bool) {
		dec := json.NewDecoder(r)
		w := &dumpWalker{dec: dec, yield: yield}
		err := w.document()
		if err != nil && !errors.Is(err, errStopped) {
			yield(record{}, err)
		}
	}
}

// errStopped ends a walk whose consumer stopped.
var errStopped = errors.New("stopped")

type dumpWalker struct {
	dec   *json.Decoder
	yield func(record, error) bool
	n     int64
}

func (w *dumpWalker) fail(what string, err error) error {
	return fmt.Errorf("%w: %s at byte %d: %v", ErrNotDump, what, w.dec.InputOffset(), err)
}

func (w *dumpWalker) delim(want json.Delim, what string) error {
	t, err := w.dec.Token()
	if err != nil {
		return w.fail(what, err)
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return w.fail(what, fmt.Errorf("want %q, got %v", want, t))
	}
	return nil
}

func (w *dumpWalker) document() error {
	t, err := w.dec.Token()
	if err != nil {
		return w.fail("the start of the dump", err)
	}
	switch t {
	case json.Delim('['): // a bare array of heartbeats
		if err := w.heartbeats(""); err != nil {
			return err
		}
		return w.end()
	case json.Delim('{'):
	default:
		return w.fail("the start of the dump", fmt.Errorf("want an object with \"days\", got %v", t))
	}
	sawDays := false
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		if key != "days" {
			if err := w.skip(key); err != nil {
				return err
			}
			continue
		}
		sawDays = true
		if err := w.delim('[', `"days"`); err != nil {
			return err
		}
		for w.dec.More() {
			if err := w.day(); err != nil {
				return err
			}
		}
		if err := w.delim(']', `the end of "days"`); err != nil {
			return err
		}
	}
	if err := w.delim('}', "the end of the dump"); err != nil {
		return err
	}
	if !sawDays {
		return fmt.Errorf("%w: the object has no \"days\": not WakaTime's heartbeats dump (its daily summaries export has no heartbeats)", ErrNotDump)
	}
	return w.end()
}

// end checks that nothing but space follows the document.
func (w *dumpWalker) end() error {
	if _, err := w.dec.Token(); err != io.EOF {
		return w.fail("the end of the dump", errors.New("more follows the document"))
	}
	return nil
}

func (w *dumpWalker) key() (string, error) {
	t, err := w.dec.Token()
	if err != nil {
		return "", w.fail("a key", err)
	}
	k, ok := t.(string)
	if !ok {
		return "", w.fail("a key", fmt.Errorf("got %v", t))
	}
	return k, nil
}

// skip reads past one value (user, range: small objects).
func (w *dumpWalker) skip(key string) error {
	var v json.RawMessage
	if err := w.dec.Decode(&v); err != nil {
		return w.fail(fmt.Sprintf("%q", key), err)
	}
	return nil
}

// day reads one element of "days". Its heartbeats may come before its
// date: records then carry no date.
func (w *dumpWalker) day() error {
	if err := w.delim('{', "a day"); err != nil {
		return err
	}
	date := ""
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "date":
			if err := w.dec.Decode(&date); err != nil {
				return w.fail(`a day's "date"`, err)
			}
		case "heartbeats":
			if err := w.delim('[', `a day's "heartbeats"`); err != nil {
				return err
			}
			if err := w.heartbeats(date); err != nil {
				return err
			}
		default:
			if err := w.skip(key); err != nil {
				return err
			}
		}
	}
	return w.delim('}', "the end of a day")
}

// heartbeats yields the elements of an array whose '[' was read, and reads
// its ']'.
func (w *dumpWalker) heartbeats(date string) error {
	nth := 0
	for w.dec.More() {
		offset := w.dec.InputOffset()
		var raw json.RawMessage
		if err := w.dec.Decode(&raw); err != nil {
			return w.fail(fmt.Sprintf("heartbeat %d", w.n+1), err)
		}
		w.n++
		nth++
		if !w.yield(record{raw: raw, index: w.n, offset: offset, date: date, nth: nth}, nil) {
			return errStopped
		}
	}
	return w.delim(']', "the end of a day's heartbeats")
}

// maxLine bounds one JSON line: a heartbeat at every field's limit (a
// thousand dependencies of 1 KiB) is under it.
const maxLine = 4 << 20

// ndjsonRecords yields the non-blank lines of r, gunzipped when r starts
// with gzip's magic bytes. A line over maxLine is yielded without its
// bytes (raw nil), to be refused.
func ndjsonRecords(r io.Reader) iter.Seq2[record, error] {
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
			size += int64(len(chunk))
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
	}
}
