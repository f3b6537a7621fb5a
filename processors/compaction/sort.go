package compaction

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// entry is one heartbeat with the key prefix of its user's day file.
type entry struct {
	prefix string
	hb     *heartlogv1.Heartbeat
}

// compare orders entries by user, prefix, then (time, id): a user-day's
// heartbeats come together, in day-file order, and copies of one
// heartbeat (same id, so same time) come next to each other.
func compare(a, b entry) int {
	if c := strings.Compare(a.hb.UserId, b.hb.UserId); c != 0 {
		return c
	}
	if c := strings.Compare(a.prefix, b.prefix); c != 0 {
		return c
	}
	if c := cmp.Compare(a.hb.Time, b.hb.Time); c != 0 {
		return c
	}
	return strings.Compare(a.hb.Id, b.hb.Id)
}

// entryOverhead is what an entry costs in memory beyond its protobuf size:
// the Heartbeat struct, its string headers, the slice slot and allocator
// rounding. It is an estimate, on the high side, so that the budget bounds
// the real heap.
const entryOverhead = 512

// sorter is an external sort of a partition-day's heartbeats: it keeps
// entries in memory up to a budget, then sorts them and writes them to a
// run file in dir, and at the end merges the runs. Memory stays near the
// budget whatever the day's size; disk holds the day once.
type sorter struct {
	dir    string
	budget int64

	mem   []entry
	size  int64
	runs  []string // run files, each sorted
	count int
	buf   []byte
}

func newSorter(dir string, budget int64) *sorter {
	return &sorter{dir: dir, budget: budget}
}

// add takes one heartbeat; it may spill the entries in memory to a run.
func (s *sorter) add(prefix string, hb *heartlogv1.Heartbeat) error {
	s.mem = append(s.mem, entry{prefix: prefix, hb: hb})
	s.size += int64(proto.Size(hb)+len(prefix)) + entryOverhead
	s.count++
	if s.size >= s.budget {
		return s.spill()
	}
	return nil
}

// spill sorts the entries in memory and writes them as one run.
func (s *sorter) spill() error {
	if len(s.mem) == 0 {
		return nil
	}
	slices.SortFunc(s.mem, compare)
	path := filepath.Join(s.dir, fmt.Sprintf("run-%05d", len(s.runs)))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("compaction: spill: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	for _, e := range s.mem {
		if err := s.write(w, e); err != nil {
			f.Close()
			return fmt.Errorf("compaction: spill to %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("compaction: spill to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("compaction: spill to %s: %w", path, err)
	}
	s.runs = append(s.runs, path)
	clear(s.mem) // let the heartbeats go
	s.mem, s.size = s.mem[:0], 0
	return nil
}

// A run record is uvarint(len(prefix)) prefix uvarint(len(hb)) hb, the
// heartbeat in protobuf.
func (s *sorter) write(w *bufio.Writer, e entry) error {
	var err error
	if s.buf, err = (proto.MarshalOptions{Deterministic: true}).MarshalAppend(s.buf[:0], e.hb); err != nil {
		return err
	}
	var n [binary.MaxVarintLen64]byte
	w.Write(n[:binary.PutUvarint(n[:], uint64(len(e.prefix)))])
	w.WriteString(e.prefix)
	w.Write(n[:binary.PutUvarint(n[:], uint64(len(s.buf)))])
	_, err = w.Write(s.buf)
	return err
}

// finish ends the adding. After it, passes may iterate the sorted entries,
// several at once (one per sink), each from the start.
func (s *sorter) finish() error {
	if len(s.runs) == 0 {
		slices.SortFunc(s.mem, compare)
		return nil
	}
	return s.spill()
}

// Runs is how many run files the sort wrote (0: it stayed in memory).
func (s *sorter) Runs() int { return len(s.runs) }

// iterator yields entries in compare order. Next returns io.EOF at the end.
type iterator interface {
	Next() (entry, error)
	Close() error
}

// pass opens a fresh iterator over every entry.
func (s *sorter) pass() (iterator, error) {
	if len(s.runs) == 0 {
		return &memIter{entries: s.mem}, nil
	}
	m := &mergeIter{}
	for _, path := range s.runs {
		r, err := openRun(path)
		if err != nil {
			m.Close()
			return nil, err
		}
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			r.Close()
			continue
		}
		if err != nil {
			r.Close()
			m.Close()
			return nil, err
		}
		m.h = append(m.h, head{e, r})
	}
	heap.Init(&m.h)
	return m, nil
}

type memIter struct {
	entries []entry
	i       int
}

func (m *memIter) Next() (entry, error) {
	if m.i >= len(m.entries) {
		return entry{}, io.EOF
	}
	m.i++
	return m.entries[m.i-1], nil
}

func (m *memIter) Close() error { return nil }

// runReader reads one run file back.
type runReader struct {
	f    *os.File
	r    *bufio.Reader
	path string
	buf  []byte
}

func openRun(path string) (*runReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("compaction: open run: %w", err)
	}
	return &runReader{f: f, r: bufio.NewReaderSize(f, 64<<10), path: path}, nil
}

func (r *runReader) Next() (entry, error) {
	n, err := binary.ReadUvarint(r.r)
	if errors.Is(err, io.EOF) {
		return entry{}, io.EOF
	}
	if err != nil {
		return entry{}, r.corrupt(err)
	}
	prefix, err := r.read(n)
	if err != nil {
		return entry{}, err
	}
	p := string(prefix)
	if n, err = binary.ReadUvarint(r.r); err != nil {
		return entry{}, r.corrupt(err)
	}
	data, err := r.read(n)
	if err != nil {
		return entry{}, err
	}
	hb := &heartlogv1.Heartbeat{}
	if err := proto.Unmarshal(data, hb); err != nil {
		return entry{}, r.corrupt(err)
	}
	return entry{prefix: p, hb: hb}, nil
}

func (r *runReader) read(n uint64) ([]byte, error) {
	if n > 16<<20 {
		return nil, r.corrupt(fmt.Errorf("record of %d bytes", n))
	}
	if uint64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, r.corrupt(err)
	}
	return b, nil
}

// corrupt: the run was written by this process moments ago, so a bad one
// is a full or failing disk.
func (r *runReader) corrupt(err error) error {
	return fmt.Errorf("compaction: run %s unreadable (disk full or failing?): %w", r.path, err)
}

func (r *runReader) Close() error { return r.f.Close() }

// mergeIter is a k-way merge of runs.
type mergeIter struct{ h heads }

type head struct {
	e entry
	r *runReader
}

type heads []head

func (h heads) Len() int           { return len(h) }
func (h heads) Less(i, j int) bool { return compare(h[i].e, h[j].e) < 0 }
func (h heads) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *heads) Push(x any)        { *h = append(*h, x.(head)) }
func (h *heads) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (m *mergeIter) Next() (entry, error) {
	if len(m.h) == 0 {
		return entry{}, io.EOF
	}
	top := m.h[0]
	next, err := top.r.Next()
	switch {
	case errors.Is(err, io.EOF):
		top.r.Close()
		heap.Pop(&m.h)
	case err != nil:
		return entry{}, err
	default:
		m.h[0].e = next
		heap.Fix(&m.h, 0)
	}
	return top.e, nil
}

func (m *mergeIter) Close() error {
	for _, h := range m.h {
		h.r.Close()
	}
	m.h = nil
	return nil
}
