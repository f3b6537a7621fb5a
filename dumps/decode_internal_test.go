package dumps

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"heartlog/heartbeat"
	"heartlog/users"
)

// TestChunksAreBoundedInBytes: records of 300 KB go to the decoders a few
// at a time (under 1 MiB a chunk, plus the one that passes it), not 256
// at a time, and every record comes out once, in order.
func TestChunksAreBoundedInBytes(t *testing.T) {
	const n = 40
	big := strings.Repeat("x", 300<<10)
	records := func(yield func(record, error) bool) {
		for i := range n {
			raw := fmt.Appendf(nil, `{"entity":"f%d.go","type":"file","time":%d,"branch":"%s"}`, i, time.Now().Unix()-int64(n-i), big)
			if !yield(record{raw: raw, index: int64(i + 1)}, nil) {
				return
			}
		}
	}
	o := Options{User: users.User{ID: "00000000-0000-4000-8000-000000000001", ObjectPrefix: "abcd1234"}, Limits: heartbeat.DefaultLimits, Now: time.Now}
	var readErr error
	seen := 0
	for ch := range decodeParallel(context.Background(), records, o, &readErr) {
		if ch.bytes > chunkBytes+400<<10 || len(ch.recs) > 4 {
			t.Fatalf("a chunk of %d records, %d bytes: want at most 1 MiB and one record", len(ch.recs), ch.bytes)
		}
		for _, rec := range ch.recs {
			if seen++; rec.index != int64(seen) {
				t.Fatalf("record %d came as the %dth", rec.index, seen)
			}
		}
	}
	if readErr != nil || seen != n {
		t.Fatalf("%d records out of %d (%v)", seen, n, readErr)
	}
}
