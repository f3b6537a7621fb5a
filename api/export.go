package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"heartlog/dumps"
	"heartlog/users"
)

func (s *Server) exportRoutes() {
	for _, root := range wakatimeRoots {
		s.mux.Handle("GET "+root+"/users/{user}/heartbeats.ndjson", s.user("heartbeats_export", s.getExport))
	}
}

// getExport streams the user's own heartbeats as JSON lines (what
// `heartlog export` writes), from start to end (UTC days, YYYY-MM-DD,
// both optional). The body is written as the days are read, a month at a
// time, never built whole; each read after the first takes a token of
// the user's request budget, waiting for it, so a long download is paced
// like the reads it amounts to. A store failing before the first byte is
// a 503; after it the connection is cut, so that a download that broke
// off never looks complete.
func (s *Server) getExport(w http.ResponseWriter, r *http.Request, u users.User) {
	q := r.URL.Query()
	since, until, err := exportRange(q.Get("start"), q.Get("end"), s.opts.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	full, err := s.users.ByID(r.Context(), u.ID) // the first day: the bucket's record lacks it
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="heartbeats-%s.ndjson"`, u.ID))
	h.Set("Cache-Control", "no-store")
	out := &startedWriter{ResponseWriter: w}
	_, err = s.opts.Export.Export(r.Context(), out, full, since, until, func(read int) error {
		if read == 0 {
			return nil // the request's own token
		}
		return s.awaitToken(r.Context(), u.ID)
	})
	switch {
	case err == nil && !out.started:
		w.WriteHeader(http.StatusOK) // no heartbeats: an empty body
	case err == nil:
	case !out.started:
		s.readFailed(w, u, err)
	default:
		if r.Context().Err() == nil {
			s.log.Error().Err(err).Str("user_id", u.ID).Msg("export broke off; connection cut")
		}
		panic(http.ErrAbortHandler)
	}
}

// awaitToken waits until the user's request budget holds a token and takes it.
func (s *Server) awaitToken(ctx context.Context, user string) error {
	for {
		ok, wait := s.limit.allow(user)
		if ok {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// exportRange reads an export's start and end days: from 2000-01-01 to
// tomorrow (UTC), start not after end.
func exportRange(start, end string, now time.Time) (since, until time.Time, err error) {
	if since, err = dumps.ParseDay(start); err != nil {
		return since, until, fmt.Errorf("start: %w", err)
	}
	if until, err = dumps.ParseDay(end); err != nil {
		return since, until, fmt.Errorf("end: %w", err)
	}
	tomorrow := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	for name, d := range map[string]time.Time{"start": since, "end": until} {
		if d.After(tomorrow) {
			return since, until, fmt.Errorf("%s: %s is after tomorrow", name, d.Format(time.DateOnly))
		}
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return since, until, fmt.Errorf("end %s is before start %s", end, start)
	}
	return since, until, nil
}

// startedWriter notes whether the body has begun.
type startedWriter struct {
	http.ResponseWriter
	started bool
}

func (w *startedWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		w.started = true
	}
	return w.ResponseWriter.Write(p)
}

// Flush sends what was written; before the first byte it sends nothing,
// so that a failure there can still be answered with a status.
func (w *startedWriter) Flush() {
	if !w.started {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
