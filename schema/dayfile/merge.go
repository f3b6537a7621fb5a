package dayfile

import (
	"cmp"
	"slices"
	"strings"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Merge returns the union by id of existing (the heartbeats a day file
// holds) and incoming (heartbeats that arrived), sorted by (time, id): the
// form Encode writes.
//
// When an id is in both, or more than once in either, the first one is kept,
// looking at existing before incoming. Ids are hashes of the content, so the
// copies are equal and which one is kept does not matter; it does make the
// result depend on the order of its inputs only for ids that break that rule.
//
// changed reports whether merged differs from existing: incoming added a
// heartbeat, or existing was not in merged form (out of order or with
// duplicates, as a file written by another version could be). When changed
// is false, merged is existing itself and a sink can skip the write: the
// file's bytes would be the same. Nil heartbeats are dropped.
//
// Merge neither modifies its arguments nor copies the heartbeats: merged
// shares them with existing and incoming.
func Merge(existing, incoming []*heartlogv1.Heartbeat) (merged []*heartlogv1.Heartbeat, changed bool) {
	n := len(existing) + len(incoming)
	seen := make(map[string]struct{}, n)
	out := make([]*heartlogv1.Heartbeat, 0, n)
	sorted := true
	for _, hb := range existing {
		if hb == nil {
			changed = true
			continue
		}
		if _, dup := seen[hb.Id]; dup {
			changed = true
			continue
		}
		seen[hb.Id] = struct{}{}
		if len(out) > 0 && compare(out[len(out)-1], hb) >= 0 {
			sorted = false
		}
		out = append(out, hb)
	}
	if !sorted {
		changed = true
	}
	for _, hb := range incoming {
		if hb == nil {
			continue
		}
		if _, dup := seen[hb.Id]; dup {
			continue
		}
		seen[hb.Id] = struct{}{}
		if len(out) > 0 && compare(out[len(out)-1], hb) >= 0 {
			sorted = false
		}
		out = append(out, hb)
		changed = true
	}
	if !changed {
		return existing, false
	}
	if !sorted {
		// Ids are unique now, so (time, id) is a total order and an unstable
		// sort gives one result.
		slices.SortFunc(out, compare)
	}
	return out, true
}

// compare orders heartbeats by time, then id. cmp.Compare orders NaN first
// and -0 equal to 0, so this is a total order on (time, id) even for times
// that Encode refuses.
func compare(a, b *heartlogv1.Heartbeat) int {
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	return strings.Compare(a.Id, b.Id)
}
