package compaction

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// TestSorterSpillsAndMergesInOrder: with a budget a few entries wide the
// sorter spills many runs, and every pass yields exactly what an
// in-memory sort yields, in the same order.
func TestSorterSpillsAndMergesInOrder(t *testing.T) {
	var all []entry
	for range 5000 {
		hb := &heartlogv1.Heartbeat{
			Id:     fmt.Sprintf("id%05d", rand.N(4000)), // copies among them
			UserId: fmt.Sprintf("user%03d", rand.N(97)),
			Entity: "/src/main.go",
			Time:   float64(1_700_000_000 + rand.N(86400)),
		}
		all = append(all, entry{prefix: fmt.Sprintf("p%d", rand.N(2)), hb: hb})
	}
	for _, budget := range []int64{4 << 10, 1 << 30} {
		s := newSorter(t.TempDir(), budget)
		mem := newSorter("", 1<<40)
		for _, e := range all {
			if err := s.add(e.prefix, e.hb); err != nil {
				t.Fatal(err)
			}
			if err := mem.add(e.prefix, e.hb); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.finish(); err != nil {
			t.Fatal(err)
		}
		if err := mem.finish(); err != nil {
			t.Fatal(err)
		}
		if budget < 1<<20 && s.Runs() < 10 {
			t.Fatalf("budget %d: %d runs, want many", budget, s.Runs())
		}
		for range 2 { // passes are independent
			a, b := drain(t, s), drain(t, mem)
			if len(a) != len(all) || len(b) != len(all) {
				t.Fatalf("budget %d: %d and %d entries, want %d", budget, len(a), len(b), len(all))
			}
			for i := range a {
				if compare(a[i], b[i]) != 0 || a[i].hb.Entity != b[i].hb.Entity {
					t.Fatalf("budget %d: entry %d differs: %v vs %v", budget, i, a[i], b[i])
				}
				if i > 0 && compare(a[i-1], a[i]) > 0 {
					t.Fatalf("budget %d: entry %d out of order", budget, i)
				}
			}
		}
	}
}

func drain(t *testing.T, s *sorter) []entry {
	t.Helper()
	it, err := s.pass()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []entry
	for {
		e, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
}
