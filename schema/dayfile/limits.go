package dayfile

import (
	"errors"
	"fmt"
	"slices"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ErrTooLarge means a day file is, or would grow, past its Limits. It is not
// ErrCorrupt: the file is sound, only too big, so a sink must neither
// overwrite it nor quarantine it because of it (see Limits).
var ErrTooLarge = errors.New("dayfile: day file too large")

// Default limits of a day file. A realistic day is 200 heartbeats and some
// 130 KB uncompressed; a heartbeat line is 350 to 650 bytes, so
// DefaultMaxHeartbeats of them are about DefaultMaxBytes.
const (
	DefaultMaxBytes      = MaxDecodedSize
	DefaultMaxHeartbeats = 400_000
)

// Limits bound one day file: its uncompressed (NDJSON) size and its count
// of heartbeats. They bound what a sink holds in memory to merge one file.
// Zero fields take the defaults.
//
// A file over its limits when read (written by an older version, or the
// limits were lowered since) is refused by Decode with ErrTooLarge, and
// left as it is: no write, no quarantine. A merge that would grow a file
// past them keeps it within them (Merge) and names the heartbeats it left
// out.
type Limits struct {
	MaxBytes      int
	MaxHeartbeats int
}

// DefaultLimits are the limits with every field at its default.
var DefaultLimits = Limits{MaxBytes: DefaultMaxBytes, MaxHeartbeats: DefaultMaxHeartbeats}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxHeartbeats <= 0 {
		l.MaxHeartbeats = DefaultMaxHeartbeats
	}
	return l
}

// Decode is the package's Decode within l: more than l.MaxBytes of content
// or more than l.MaxHeartbeats lines is an error wrapping ErrTooLarge. It
// also returns the file's uncompressed size, for Merge.
func (l Limits) Decode(data []byte) (hbs []*heartlogv1.Heartbeat, size int, err error) {
	return decode(data, l.withDefaults(), true)
}

// Refusal is a heartbeat that Merge left out, and why: an error wrapping
// ErrTooLarge (the file is full) or ErrInvalid (the format cannot hold it).
type Refusal struct {
	Heartbeat *heartlogv1.Heartbeat
	Err       error
}

// Merged is what Limits.Merge returns.
type Merged struct {
	// Heartbeats and Changed are as Merge returns them.
	Heartbeats []*heartlogv1.Heartbeat
	Changed    bool
	// Size is the uncompressed size of Heartbeats as a file, counted from
	// the size given for existing.
	Size int
	// Refused are the heartbeats of incoming left out, in (time, id) order.
	Refused []Refusal
}

// Merge is the package's Merge within l: existing is a file's heartbeats
// and size its uncompressed size (what Decode returned; 0 for a new file).
// The heartbeats of incoming that existing lacks are taken in (time, id)
// order while the file stays within l; from the first that does not fit,
// they and all after it are refused (wrapping ErrTooLarge). A heartbeat that
// Encode could not write is refused (wrapping ErrInvalid) and the others go
// on.
//
// Filling in (time, id) order, rather than refusing every new heartbeat of
// a file that would overflow, keeps as much of the day as fits, and keeps
// the earliest heartbeats, which is what a day that grows in time order
// would have kept anyway; what is refused is a contiguous tail, so a
// replay of the same heartbeats is refused the same tail, and the sinks
// park it rather than lose it.
func (l Limits) Merge(existing []*heartlogv1.Heartbeat, size int, incoming []*heartlogv1.Heartbeat) Merged {
	l = l.withDefaults()
	var refused []Refusal
	fresh := newHeartbeats(existing, incoming)
	count := len(existing)
	var line []byte
	accepted := fresh[:0:0]
	for i, hb := range fresh {
		var err error
		if err = check(hb); err == nil {
			line, err = appendHeartbeat(line[:0], hb)
		}
		if err != nil {
			refused = append(refused, Refusal{hb, fmt.Errorf("%w: heartbeat %s: %w", ErrInvalid, hb.Id, err)})
			continue
		}
		if count+1 > l.MaxHeartbeats || size+len(line) > l.MaxBytes {
			for _, hb := range fresh[i:] {
				if check(hb) == nil {
					refused = append(refused, Refusal{hb, fmt.Errorf("%w: %d heartbeats and %d bytes, limits %d and %d",
						ErrTooLarge, count, size, l.MaxHeartbeats, l.MaxBytes)})
				}
			}
			break
		}
		count++
		size += len(line)
		accepted = append(accepted, hb)
	}
	merged, changed := Merge(existing, accepted)
	return Merged{Heartbeats: merged, Changed: changed, Size: size, Refused: refused}
}

// newHeartbeats returns the heartbeats of incoming whose ids existing
// lacks, once each, sorted by (time, id).
func newHeartbeats(existing, incoming []*heartlogv1.Heartbeat) []*heartlogv1.Heartbeat {
	seen := make(map[string]struct{}, len(existing)+len(incoming))
	for _, hb := range existing {
		if hb != nil {
			seen[hb.Id] = struct{}{}
		}
	}
	var out []*heartlogv1.Heartbeat
	for _, hb := range incoming {
		if hb == nil {
			continue
		}
		if _, dup := seen[hb.Id]; dup {
			continue
		}
		seen[hb.Id] = struct{}{}
		out = append(out, hb)
	}
	slices.SortFunc(out, compare)
	return out
}
