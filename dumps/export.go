package dumps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"heartlog/heartbeat"
	"heartlog/objstore"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/users"
)

// HeartbeatReader reads a user's heartbeats of UTC days (YYYYMMDD) from
// wherever each lives: Postgres for the hot days, else SSDB, else S3.
// *reads.Reader implements it.
type HeartbeatReader interface {
	Heartbeats(ctx context.Context, u users.User, days []string) ([]*heartlogv1.Heartbeat, error)
}

// Exporter writes users' heartbeats out as JSON lines.
type Exporter struct {
	// Reader reads the days.
	Reader HeartbeatReader
	// Files is the primary bucket: its listing of a user's day files
	// names the days that are not hot.
	Files objstore.Bucket
	// Grace is the shard grace (HEARTLOG_SHARDS_GRACE): days that ended
	// within it, and today, may be in Postgres alone (not closed yet),
	// so they are read whether or not they have a file. Zero: every day
	// since the user's first may be.
	Grace time.Duration
	// DaysPerRead is how many days are read (and held) at once (default
	// 31).
	DaysPerRead int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ExportResult sums up an export.
type ExportResult struct {
	Days, Heartbeats int
	Bytes            int64
}

// Days returns the UTC days (YYYYMMDD) from since to until (inclusive;
// zero: unbounded) that may hold u's heartbeats, ascending: those with a
// day file, and the hot days from the user's first day on (u.FirstDay, as
// users.Store reads it). A day past the grace that is not closed yet (an
// import's, before the day closer compacts it) has neither and is left
// out until it is.
func (e *Exporter) Days(ctx context.Context, u users.User, since, until time.Time) ([]string, error) {
	now := e.now()
	first, last := dayOf(since), dayOf(until)
	tomorrow := now.UTC().AddDate(0, 0, 1).Format(heartbeat.DayLayout)
	if last == "" || last > tomorrow {
		last = tomorrow
	}
	seen := map[string]bool{}
	var out []string
	prefix := dayfile.Key(u.ObjectPrefix, u.ID, "20000101")
	prefix = prefix[:len(prefix)-len("2000-01-01.ndjson.gz")]
	for key, err := range e.Files.List(ctx, prefix) {
		if err != nil {
			return nil, fmt.Errorf("dumps: list %s: %w", prefix, err)
		}
		_, _, day, err := dayfile.ParseKey(key)
		if err != nil || day < first || day > last {
			continue
		}
		seen[day] = true
		out = append(out, day)
	}
	if !u.FirstDay.IsZero() {
		hot := u.FirstDay.UTC()
		if e.Grace > 0 {
			// A day is hot until Grace after it ended; a day more back
			// may still wait for its close (the delay is under the grace).
			hot = later(hot, now.Add(-e.Grace).AddDate(0, 0, -2))
		}
		if !since.IsZero() {
			hot = later(hot, since)
		}
		for d := hot.UTC(); d.Format(heartbeat.DayLayout) <= last; d = d.AddDate(0, 0, 1) {
			day := d.Format(heartbeat.DayLayout)
			if !seen[day] {
				out = append(out, day)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Export writes u's heartbeats of the days from since to until (as Days)
// to w: one JSON object per line, in the fields and form of a day file
// (WakaTime's field names), by UTC day ascending and within a day by
// (time, id). It holds DaysPerRead days at a time. before, if set, is
// called before each read with the read's number (0 first): the API paces
// a long download against the user's read budget there. When w can be
// flushed (http.Flusher, or Flush() error as bufio and gzip writers), it
// is after each read, so the bytes go out as they are read.
func (e *Exporter) Export(ctx context.Context, w io.Writer, u users.User, since, until time.Time, before func(read int) error) (ExportResult, error) {
	var res ExportResult
	days, err := e.Days(ctx, u, since, until)
	if err != nil {
		return res, err
	}
	per := e.DaysPerRead
	if per <= 0 {
		per = 31
	}
	var buf []byte
	for read, chunk := 0, days; len(chunk) > 0; read++ {
		n := min(per, len(chunk))
		batch := chunk[:n]
		chunk = chunk[n:]
		if before != nil {
			if err := before(read); err != nil {
				return res, err
			}
		}
		hbs, err := e.Reader.Heartbeats(ctx, u, batch)
		if err != nil {
			return res, fmt.Errorf("dumps: read %s to %s: %w", batch[0], batch[len(batch)-1], err)
		}
		// The lines go out a MiB at a time: the read's heartbeats are held
		// once, not also as one buffer of their JSON.
		buf = buf[:0]
		for i, hb := range hbs {
			if buf, err = dayfile.AppendLine(buf, hb); err != nil {
				return res, err
			}
			if len(buf) >= writeBytes || i == len(hbs)-1 {
				if _, err := w.Write(buf); err != nil {
					return res, err
				}
				res.Bytes += int64(len(buf))
				buf = buf[:0]
			}
		}
		if err := flush(w); err != nil {
			return res, err
		}
		res.Days += n
		res.Heartbeats += len(hbs)
	}
	return res, nil
}

// writeBytes is how much of an export's JSON is buffered before a write.
const writeBytes = 1 << 20

func flush(w io.Writer) error {
	switch f := w.(type) {
	case http.Flusher:
		f.Flush()
	case interface{ Flush() error }:
		return f.Flush()
	}
	return nil
}

func (e *Exporter) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// ParseDay reads a YYYY-MM-DD day (UTC) of an export's range; "" is no
// bound (the zero time).
func ParseDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a day as YYYY-MM-DD", s)
	}
	if t.Before(heartbeat.Earliest) {
		return time.Time{}, errors.New(s + " is before 2000-01-01, the earliest heartbeat heartlog keeps")
	}
	return t, nil
}

func dayOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(heartbeat.DayLayout)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
