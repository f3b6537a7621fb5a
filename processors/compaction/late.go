package compaction

import (
	"context"
	"time"

	"heartlog/heartbeat"
	"heartlog/processors"
	"heartlog/streams"
)

// LatePath is the admission of a day-file processor (processors.Options
// Admit): it writes only what its day's compaction did not.
//
//   - A message at or below the (day, partition, processor) compaction's
//     recorded sequence is passed over (the compaction wrote it); one past
//     it is admitted: a late heartbeat, merged into the file written at
//     close. The record decides whatever the lifecycle key says (a day
//     reopened by hand keeps its records, and its late path).
//   - Without a record, a message of a closed day is held: the compaction
//     is running or was stopped, and only its record says which messages
//     it covered.
//   - A message of an open day is passed over: the day's compaction will
//     read it from the stream. This is why an open day costs no day-file
//     write at all. The view's word is enough for a day that is not over
//     (CloseDay refuses those); for a day that is over, or ends within
//     minutes (clocks differ), it is confirmed by a read of the server
//     (streams.DayView.ConfirmOpen): a message passed over as open was
//     then stored before the day was marked closed, hence before the
//     compaction's bound, so the compaction reads it. Until confirmed, it
//     is held.
//   - A message without a sequence (its metadata did not parse) is
//     admitted: the sink's merge is idempotent, a skip would not be.
func LatePath(view *streams.DayView, processor string) processors.AdmitFunc {
	return func(day string, partition uint32, seq uint64) processors.Admission {
		if seq == 0 {
			return processors.Admit
		}
		if rec, ok := view.Compacted(day, partition, processor); ok {
			if seq <= rec.Seq {
				return processors.Pass
			}
			return processors.Admit
		}
		if view.Lifecycle(day).State == streams.DayClosed {
			return processors.Hold
		}
		if !mayBeOver(day, time.Now()) {
			return processors.Pass
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if view.ConfirmOpen(ctx, day) {
			return processors.Pass
		}
		return processors.Hold
	}
}

// clockMargin is how far another host's clock may be ahead of ours when
// it judges a day over.
const clockMargin = 10 * time.Minute

// mayBeOver reports whether some host may already see day (YYYYMMDD) as
// over, and so may close it.
func mayBeOver(day string, now time.Time) bool {
	start, err := time.Parse(heartbeat.DayLayout, day)
	return err != nil || !start.AddDate(0, 0, 1).After(now.Add(clockMargin))
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
