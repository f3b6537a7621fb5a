package digest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/proto"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
)

// ErrCorrupt is wrapped by Decode's error for bytes that are not a valid
// digest.
var ErrCorrupt = errors.New("digest: corrupt day digest")

// ErrTime is wrapped by Encode's error for a heartbeat whose time does not
// survive the round trip through microseconds.
var ErrTime = errors.New("digest: heartbeat time cannot be stored")

const (
	dayFileSuffix = ".ndjson.gz"
	keySuffix     = ".digest.v1"
	genSuffix     = ".gen"
)

// GenKey returns the cache key of the generation of the day file under
// dayKey: <prefix>/<user id>/<YYYY-MM-DD>.gen, a counter (INCR) that every
// write of the day file into the cache (Write, Put, Drop) counts up in the
// same pipeline, after the file, with the cache's TTL. A writer that read
// generation g and whose write counted up to g+1 knows that no other write
// came between its read and its own (package comment).
func GenKey(dayKey string) string {
	return strings.TrimSuffix(dayKey, dayFileSuffix) + genSuffix
}

// Key returns the cache key of the digest of the day file under dayKey
// (dayfile.Key): <prefix>/<user id>/<YYYY-MM-DD>.digest.v1.
func Key(dayKey string) string {
	return strings.TrimSuffix(dayKey, dayFileSuffix) + keySuffix
}

// micros is the heartbeat's time as stats counts it: rounded to the
// microsecond.
func micros(t float64) int64 { return int64(math.Round(t * 1e6)) }

// Encode returns the digest of heartbeats (a day file's, in its order).
// It fails (ErrTime) when a time would not decode to the same microsecond.
func Encode(hbs []*heartlogv1.Heartbeat) ([]byte, error) {
	n := len(hbs)
	d := &heartlogv1.DayDigest{
		TimeDeltaMicros: make([]int64, n), Attrs: make([]uint32, n), IsWrite: make([]bool, n),
	}
	ids := map[string]uint32{"": 0}
	d.Strings = []string{""}
	str := func(s string) uint32 {
		id, ok := ids[s]
		if !ok {
			id = uint32(len(d.Strings))
			ids[s] = id
			d.Strings = append(d.Strings, s)
		}
		return id
	}
	lists := map[string]uint32{}
	sets := map[[10]uint32]uint32{}
	var listKey []byte
	var prev int64
	for i, hb := range hbs {
		if hb == nil {
			return nil, fmt.Errorf("digest: heartbeat %d is nil", i)
		}
		us := micros(hb.GetTime())
		if math.IsNaN(hb.GetTime()) || math.Abs(hb.GetTime()) > 1<<52/1e6 || micros(float64(us)/1e6) != us {
			return nil, fmt.Errorf("%w: %v", ErrTime, hb.GetTime())
		}
		d.TimeDeltaMicros[i], prev = us-prev, us
		d.IsWrite[i] = hb.GetIsWrite()
		var list uint32
		if deps := hb.GetDependencies(); len(deps) > 0 {
			listKey = listKey[:0]
			for _, dep := range deps {
				listKey = binary.AppendUvarint(listKey, uint64(str(dep)))
			}
			var ok bool
			if list, ok = lists[string(listKey)]; !ok {
				for _, dep := range deps {
					d.DependencyItems = append(d.DependencyItems, ids[dep])
				}
				d.DependencyListEnds = append(d.DependencyListEnds, uint32(len(d.DependencyItems)))
				list = uint32(len(d.DependencyListEnds))
				lists[string(listKey)] = list
			}
		}
		key := [10]uint32{str(hb.GetEntity()), str(hb.GetType()), str(hb.GetCategory()), str(hb.GetProject()),
			str(hb.GetBranch()), str(hb.GetLanguage()), str(hb.GetEditor()), str(hb.GetOperatingSystem()),
			str(hb.GetMachine()), list}
		set, ok := sets[key]
		if !ok {
			set = uint32(len(d.Entity))
			sets[key] = set
			d.Entity, d.Type, d.Category = append(d.Entity, key[0]), append(d.Type, key[1]), append(d.Category, key[2])
			d.Project, d.Branch, d.Language = append(d.Project, key[3]), append(d.Branch, key[4]), append(d.Language, key[5])
			d.Editor, d.OperatingSystem = append(d.Editor, key[6]), append(d.OperatingSystem, key[7])
			d.Machine, d.Dependencies = append(d.Machine, key[8]), append(d.Dependencies, key[9])
		}
		d.Attrs[i] = set
	}
	if n == 0 {
		d.Strings = nil
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(d)
}

// Decode returns the heartbeats of a digest as a stats.Activity: its
// Beats in the digest's order, its Sets, Strings and Lists the digest's
// attribute sets, dictionary and dependency lists.
func Decode(data []byte) (stats.Activity, error) {
	d, err := Parse(data)
	if err != nil {
		return stats.Activity{}, err
	}
	act := stats.MakeActivity(d.Size())
	d.DecodeInto(act, stats.Sizes{})
	return act, nil
}

// Day is a digest parsed and checked, to be decoded with DecodeInto: a
// reader of many days sizes one Activity for all of them from their Size
// and decodes each day into its part, with no copy.
type Day struct {
	d     heartlogv1.DayDigest
	strs  []string
	lists [][]string
}

// Parse parses and checks a digest; its error wraps ErrCorrupt.
func Parse(data []byte) (*Day, error) {
	day := &Day{}
	d := &day.d
	if err := unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	n := len(d.TimeDeltaMicros)
	if len(d.Attrs) != n || len(d.IsWrite) != n {
		return nil, fmt.Errorf("%w: %d times, %d attribute sets, %d is_write", ErrCorrupt, n, len(d.Attrs), len(d.IsWrite))
	}
	if n == 0 {
		*d = heartlogv1.DayDigest{} // no sets either: an empty day
		return day, nil
	}
	day.strs = d.Strings
	if len(day.strs) == 0 {
		day.strs = []string{""}
	}
	if err := day.checkSets(); err != nil {
		return nil, err
	}
	var err error
	if day.lists, err = depLists(d, day.strs); err != nil {
		return nil, err
	}
	for k, list := range d.Dependencies {
		if int(list) >= len(day.lists) {
			return nil, fmt.Errorf("%w: dependency list %d of set %d, of %d", ErrCorrupt, list, k, len(day.lists)-1)
		}
	}
	nsets := uint32(len(d.Entity))
	for _, set := range d.Attrs {
		if set >= nsets {
			return nil, fmt.Errorf("%w: attribute set %d of %d", ErrCorrupt, set, nsets)
		}
	}
	return day, nil
}

// checkSets checks that every set column has one entry per set, and the
// string columns ids within the dictionary.
func (day *Day) checkSets() error {
	d := &day.d
	nsets := len(d.Entity)
	cols := [...][]uint32{d.Entity, d.Type, d.Category, d.Project, d.Branch, d.Language,
		d.Editor, d.OperatingSystem, d.Machine}
	for c, col := range cols {
		if len(col) != nsets {
			return fmt.Errorf("%w: set column %d has %d entries for %d sets", ErrCorrupt, c, len(col), nsets)
		}
		for _, id := range col {
			if int(id) >= len(day.strs) {
				return fmt.Errorf("%w: string %d of %d", ErrCorrupt, id, len(day.strs))
			}
		}
	}
	if len(d.Dependencies) != nsets {
		return fmt.Errorf("%w: %d dependency lists for %d sets", ErrCorrupt, len(d.Dependencies), nsets)
	}
	return nil
}

// Size returns the sizes of the day's Activity.
func (day *Day) Size() stats.Sizes {
	return stats.Sizes{Beats: len(day.d.Attrs), Sets: len(day.d.Entity), Strings: len(day.strs), Lists: len(day.lists)}
}

// DecodeInto writes the day's Activity into dst, a Part of a larger
// Activity starting at at (of the sizes Size returns): its indexes point
// into the larger one.
func (day *Day) DecodeInto(dst stats.Activity, at stats.Sizes) {
	d := &day.d
	copy(dst.Strings, day.strs)
	copy(dst.Lists, day.lists)
	str, list := uint32(at.Strings), uint32(at.Lists)
	for k := range dst.Sets {
		set := &dst.Sets[k]
		set.Names = [stats.NumFields]uint32{
			stats.FieldProject: str + d.Project[k], stats.FieldLanguage: str + d.Language[k],
			stats.FieldEditor: str + d.Editor[k], stats.FieldOS: str + d.OperatingSystem[k],
			stats.FieldMachine: str + d.Machine[k], stats.FieldBranch: str + d.Branch[k],
			stats.FieldCategory: str + d.Category[k], stats.FieldEntity: str + d.Entity[k],
			stats.FieldType: str + d.Type[k],
		}
		set.Deps = list + d.Dependencies[k]
	}
	base := uint32(at.Sets)
	var us int64
	for i, set := range d.Attrs {
		us += d.TimeDeltaMicros[i]
		dst.Beats[i] = stats.Beat{Nanos: us * 1000, Set: base + set, IsWrite: d.IsWrite[i]}
	}
}

// depLists returns the digest's dependency lists, list 0 being none.
func depLists(d *heartlogv1.DayDigest, strs []string) ([][]string, error) {
	flat := make([]string, len(d.DependencyItems))
	for i, id := range d.DependencyItems {
		if int(id) >= len(strs) {
			return nil, fmt.Errorf("%w: dependency string %d of %d", ErrCorrupt, id, len(strs))
		}
		flat[i] = strs[id]
	}
	lists := make([][]string, len(d.DependencyListEnds)+1)
	from := uint32(0)
	for k, end := range d.DependencyListEnds {
		if end <= from || int(end) > len(flat) {
			return nil, fmt.Errorf("%w: dependency list %d ends at %d", ErrCorrupt, k+1, end)
		}
		lists[k+1] = flat[from:end:end] // capped: an append copies
		from = end
	}
	return lists, nil
}
