package digest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/proto"

	"heartlog/cache"
	"heartlog/schema/dayfile"
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
)

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

// Decode returns the heartbeats of a digest as stats.Beats, in the
// digest's order. Beats with the same attributes share one stats.Attrs
// (all of them allocated in one block), and the strings and dependency
// lists are allocated once per digest.
func Decode(data []byte) ([]stats.Beat, error) {
	var d heartlogv1.DayDigest
	if err := unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	n := len(d.TimeDeltaMicros)
	if len(d.Attrs) != n || len(d.IsWrite) != n {
		return nil, fmt.Errorf("%w: %d times, %d attribute sets, %d is_write", ErrCorrupt, n, len(d.Attrs), len(d.IsWrite))
	}
	if n == 0 {
		return nil, nil
	}
	strs := d.Strings
	if len(strs) == 0 {
		strs = []string{""}
	}
	nsets := len(d.Entity)
	cols := [...][]uint32{d.Entity, d.Type, d.Category, d.Project, d.Branch, d.Language,
		d.Editor, d.OperatingSystem, d.Machine}
	for c, col := range cols {
		if len(col) != nsets {
			return nil, fmt.Errorf("%w: set column %d has %d entries for %d sets", ErrCorrupt, c, len(col), nsets)
		}
		for _, id := range col {
			if int(id) >= len(strs) {
				return nil, fmt.Errorf("%w: string %d of %d", ErrCorrupt, id, len(strs))
			}
		}
	}
	if len(d.Dependencies) != nsets {
		return nil, fmt.Errorf("%w: %d dependency lists for %d sets", ErrCorrupt, len(d.Dependencies), nsets)
	}
	lists, err := depLists(&d, strs)
	if err != nil {
		return nil, err
	}
	sets := make([]stats.Attrs, nsets)
	for k := range sets {
		if int(d.Dependencies[k]) >= len(lists) {
			return nil, fmt.Errorf("%w: dependency list %d of %d", ErrCorrupt, d.Dependencies[k], len(lists)-1)
		}
		sets[k] = stats.Attrs{
			Entity: strs[d.Entity[k]], Type: strs[d.Type[k]], Category: strs[d.Category[k]],
			Project: strs[d.Project[k]], Branch: strs[d.Branch[k]], Language: strs[d.Language[k]],
			Editor: strs[d.Editor[k]], OperatingSystem: strs[d.OperatingSystem[k]], Machine: strs[d.Machine[k]],
			Dependencies: lists[d.Dependencies[k]],
		}
	}
	out := make([]stats.Beat, n)
	var us int64
	for i, set := range d.Attrs {
		if int(set) >= nsets {
			return nil, fmt.Errorf("%w: attribute set %d of %d", ErrCorrupt, set, nsets)
		}
		us += d.TimeDeltaMicros[i]
		out[i] = stats.Beat{Nanos: us * 1000, Attrs: &sets[set], IsWrite: d.IsWrite[i]}
	}
	return out, nil
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

// File is a day file to write into the cache with its digest.
type File struct {
	Key  string // the day file's key (dayfile.Key)
	Data []byte // the day file
	// Heartbeats are Data decoded, if the caller has them (else Put
	// decodes Data).
	Heartbeats []*heartlogv1.Heartbeat
	Decoded    bool // Heartbeats are set (an empty day has none)
}

// Put writes day files and their digests into the cache following the
// consistency rule (package comment): one pipeline of, per file, DEL
// digest, SETEX day file, SETEX digest. A file that does not decode or
// cannot be digested is written without a digest (its digest is still
// deleted); that is an error only for a file that does not decode.
func Put(ctx context.Context, c *cache.Cache, files []File) error {
	ops := make([]cache.Op, 0, 3*len(files))
	var errs []error
	for _, f := range files {
		dkey := Key(f.Key)
		ops = append(ops, cache.Op{Key: dkey, Delete: true}, cache.Op{Key: f.Key, Value: f.Data})
		hbs := f.Heartbeats
		if !f.Decoded {
			var err error
			if hbs, err = dayfile.Decode(f.Data); err != nil {
				errs = append(errs, fmt.Errorf("digest: day file %s: %w", f.Key, err))
				continue
			}
		}
		digest, err := Encode(hbs)
		if err != nil {
			continue // no digest: readers decode the day file
		}
		ops = append(ops, cache.Op{Key: dkey, Value: digest})
	}
	if err := c.Apply(ctx, ops); err != nil {
		return err
	}
	return errors.Join(errs...)
}
