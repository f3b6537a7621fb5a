package compaction

import (
	"heartlog/processors"
	"heartlog/streams"
)

// LatePath is the admission of a day-file processor (processors.Options
// Admit): it writes only what its day's compaction did not.
//
//   - A message of an open day is passed over: the day's compaction will
//     read it from the stream. This is why an open day costs no day-file
//     write at all.
//   - A message of a closed day whose (partition, processor) compaction is
//     not recorded yet is held: the compaction is running or was stopped,
//     and only its record says which messages it covered.
//   - A message at or below the recorded sequence is passed over (the
//     compaction wrote it); one past it is admitted: a late heartbeat,
//     merged into the file written at close.
//
// view must be current to within CloseDay's Settle (streams.WatchDays):
// a message passed over as open was seen before its day's bound was
// taken, so the compaction reads it.
func LatePath(view *streams.DayView, processor string) processors.AdmitFunc {
	return func(day string, partition uint32, seq uint64) processors.Admission {
		if view.Lifecycle(day).State != streams.DayClosed {
			return processors.Pass
		}
		rec, ok := view.Compacted(day, partition, processor)
		switch {
		case !ok:
			return processors.Hold
		case seq <= rec.Seq:
			return processors.Pass
		}
		return processors.Admit
	}
}

// ClosedDays admits every message of a closed day and passes over those
// of open days: what `heartlog replay` feeds a day-file sink, which must
// not write the files of a day before it closes.
func ClosedDays(view *streams.DayView) processors.AdmitFunc {
	return func(day string, _ uint32, _ uint64) processors.Admission {
		if view.Lifecycle(day).State == streams.DayClosed {
			return processors.Admit
		}
		return processors.Pass
	}
}
