package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"heartlog/schema/dayfile"
)

// The day lifecycle in the rows: the load sends for yesterday (load.day),
// which stays open (HEARTLOG_DAY_CLOSE_DELAY is a year here, so no day
// closer closes it by itself) until the row closes it with `heartlog days
// close`, as an operator would. A row that closes early makes its traffic
// after that the late path's under the fault; one that closes at the end
// lets the fault hit ingest and Postgres and the compaction write the day
// files. Every row closes each day it sent for again at its end (quick
// when done: what is recorded is skipped), so that the counts see the day
// files of everything acknowledged.

// closeProc declares a `heartlog days close day` process of the row.
func (r *rowRun) closeProc(day string, extra map[string]string) *daemon {
	return r.st.heartlogProc("days-close", []string{"days", "close", day}, extra)
}

// closeDay closes day and waits for the command to end.
func (r *rowRun) closeDay(ctx context.Context, day, why string) error {
	return r.startClose(ctx, day, why)()
}

// startClose starts `heartlog days close day` and returns a function that
// waits (up to 3 minutes) for it to end and returns its failure.
func (r *rowRun) startClose(ctx context.Context, day, why string) func() error {
	d := r.closeProc(day, nil)
	start := time.Now()
	r.progress("heartlog days close %s (%s)", day, why)
	if err := d.start(); err != nil {
		return func() error { return err }
	}
	r.closed[day] = true
	return func() error {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		at, err := d.wait(wctx)
		if err != nil {
			_ = d.kill()
			return fmt.Errorf("heartlog days close %s: %v; see %s", day, err, d.logPath)
		}
		r.progress("closed %s in %s", day, at.Sub(start).Round(100*time.Millisecond))
		return nil
	}
}

// closeAtEnd closes every day the row's acknowledged heartbeats belong to
// (again, for those the row closed already). A day the row had not closed
// must have no day file yet: an open day is written by no one.
func (r *rowRun) closeAtEnd(ctx context.Context) error {
	for _, day := range r.ackedDays() {
		if !r.closed[day] {
			n, err := r.dayFiles(ctx, day)
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%d day files of %s were written while it was open", n, day)
			}
			r.note("%s closed at the end (no day file before)", day)
		}
		if err := r.closeDay(ctx, day, "end of the row"); err != nil {
			return err
		}
	}
	return nil
}

// ackedDays are the days of the acknowledged heartbeats, oldest first.
func (r *rowRun) ackedDays() []string {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	var days []string
	for _, a := range r.l.acked {
		if !slices.Contains(days, a.day) {
			days = append(days, a.day)
		}
	}
	slices.Sort(days)
	return days
}

// dayFiles counts the row's users' day files of day in S3, the cache and
// the backup.
func (r *rowRun) dayFiles(ctx context.Context, day string) (int, error) {
	st := r.st
	n := 0
	for _, u := range r.l.users {
		key := dayfile.Key(u.ObjectPrefix, u.ID, day)
		if _, ok, err := getObject(ctx, st.primary, key); err != nil {
			return 0, err
		} else if ok {
			n++
		}
		if vs, err := st.backup.Versions(ctx, key); err != nil {
			return 0, err
		} else if len(vs) > 0 {
			n++
		}
		if c, err := st.rdb.Exists(ctx, key).Result(); err != nil {
			return 0, err
		} else if c > 0 {
			n++
		}
	}
	return n, nil
}
