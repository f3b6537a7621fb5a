package heartbeat

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ID returns the heartbeat's deterministic id: a hash of its user and every
// content field. Plugins resend heartbeats from their offline queue days
// later; the same heartbeat always gets the same id, which is what lets every
// sink deduplicate.
//
// The encoding is written out field by field (not proto.Marshal) so that the
// id never changes with a protobuf library upgrade. Changing it would make
// every resent heartbeat a duplicate: append new fields at the end, never
// reorder.
func ID(hb *heartlogv1.Heartbeat) string {
	e := idEncoder{buf: make([]byte, 0, 512)}
	e.str(hb.GetUserId())
	e.str(hb.GetEntity())
	e.str(hb.GetType())
	e.str(hb.GetCategory())
	e.u64(math.Float64bits(hb.GetTime()))
	e.str(hb.GetProject())
	e.opt(hb.ProjectRootCount)
	e.str(hb.GetBranch())
	e.str(hb.GetLanguage())
	e.u64(uint64(len(hb.GetDependencies())))
	for _, d := range hb.GetDependencies() {
		e.str(d)
	}
	e.opt(hb.Lines)
	e.opt(hb.LineAdditions)
	e.opt(hb.LineDeletions)
	e.opt(hb.Lineno)
	e.opt(hb.Cursorpos)
	switch {
	case hb.IsWrite == nil:
		e.u64(0)
	case *hb.IsWrite:
		e.u64(2)
	default:
		e.u64(1)
	}
	e.opt(hb.AiLineChanges)
	e.opt(hb.HumanLineChanges)
	e.str(hb.GetMachine())
	e.str(hb.GetUserAgent())
	e.str(string(hb.GetExtraJson()))
	sum := sha256.Sum256(e.buf)
	return hex.EncodeToString(sum[:16])
}

type idEncoder struct{ buf []byte }

func (e *idEncoder) u64(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

func (e *idEncoder) str(s string) {
	e.u64(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// opt encodes presence as well as the value: an absent lineno and lineno 0
// are different heartbeats.
func (e *idEncoder) opt(p *int32) {
	if p == nil {
		e.u64(0)
		return
	}
	e.u64(1)
	e.u64(uint64(uint32(*p)))
}

// DayLayout is the form of a day in subjects and KV keys.
const DayLayout = "20060102"

// Day returns the UTC day a heartbeat belongs to, as YYYYMMDD.
func Day(hb *heartlogv1.Heartbeat) string {
	return TimeOf(hb).Format(DayLayout)
}

// TimeOf converts the heartbeat's fractional seconds to a UTC time.
func TimeOf(hb *heartlogv1.Heartbeat) time.Time {
	sec, frac := math.Modf(hb.GetTime())
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}
