package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
	"heartlog/users"
)

// HeartbeatReader reads a user's heartbeats of UTC days (YYYYMMDD), from
// wherever each day lives. *reads.Reader implements it.
type HeartbeatReader interface {
	// Heartbeats returns whole heartbeats, for routes that return them.
	Heartbeats(ctx context.Context, u users.User, days []string) ([]*heartlogv1.Heartbeat, error)
	// Activity returns the heartbeats as a stats.Activity, for accounting (read
	// from day digests where the cache has them).
	Activity(ctx context.Context, u users.User, days []string) (stats.Activity, error)
}

// maxRangeDays bounds one summaries request (a year and a bit): each day
// read is a Postgres query share, an SSDB key or an S3 object.
const maxRangeDays = 400

func (s *Server) readRoutes() {
	for _, root := range wakatimeRoots {
		s.mux.Handle("GET "+root+"/users/{user}", s.user("user", s.getUser))
		s.mux.Handle("GET "+root+"/users/{user}/summaries", s.user("summaries", s.getSummaries))
		s.mux.Handle("GET "+root+"/users/{user}/statusbar/today", s.user("statusbar", s.getStatusBar))
		s.mux.Handle("GET "+root+"/users/{user}/status_bar/today", s.user("statusbar", s.getStatusBar))
		s.mux.Handle("GET "+root+"/users/{user}/durations", s.user("durations", s.getDurations))
		s.mux.Handle("GET "+root+"/users/{user}/stats/{range}", s.user("stats", s.getStats))
		s.mux.Handle("GET "+root+"/users/{user}/stats", s.user("stats", s.getStats))
		s.mux.Handle("GET "+root+"/users/{user}/all_time_since_today", s.user("all_time", s.getAllTime))
		s.mux.Handle("GET "+root+"/users/{user}/heartbeats", s.user("heartbeats_read", s.getHeartbeats))
	}
	s.insightRoutes()
}

// badParam is a 400 with a message for the client.
type badParam struct{ msg string }

func (e *badParam) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badParam{fmt.Sprintf(format, args...)} }

// readOptions are the query parameters every read route shares.
func (s *Server) readOptions(r *http.Request, u users.User) (stats.Options, error) {
	q := r.URL.Query()
	timeout := 0
	if v := q.Get("timeout"); v != "" {
		var err error
		if timeout, err = stats.ParseTimeout(v); err != nil {
			return stats.Options{}, badf("timeout must be a whole number of minutes from 1 to 60, got %q", v)
		}
	}
	writesOnly := false
	if v := q.Get("writes_only"); v != "" {
		var err error
		if writesOnly, err = strconv.ParseBool(v); err != nil {
			return stats.Options{}, badf("writes_only must be true or false, got %q", v)
		}
	}
	return optionsFor(u, q.Get("timezone"), timeout, writesOnly, q.Get("project"))
}

// optionsFor builds the accounting options of a read: the request's time
// zone and timeout where given (timeout 0: not given), else the user's.
func optionsFor(u users.User, tz string, timeout int, writesOnly bool, project string) (stats.Options, error) {
	if tz == "" {
		tz = u.TimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return stats.Options{}, badf("unknown time zone %q", tz)
	}
	if timeout == 0 {
		timeout = u.TimeoutMinutes
	}
	if err := stats.ValidateTimeout(timeout); err != nil {
		return stats.Options{}, badf("timeout must be a whole number of minutes from 1 to 60, got %d", timeout)
	}
	return stats.Options{Location: loc, Timeout: timeout, WritesOnly: writesOnly, Project: project}, nil
}

// summarize reads and accounts the local days [start, end].
func (s *Server) summarize(ctx context.Context, u users.User, o stats.Options) ([]stats.Day, error) {
	beats, err := s.rangeActivity(ctx, u, o)
	if err != nil {
		return nil, err
	}
	o.OmitEntities = o.Project == "" // WakaTime lists entities only within a project
	return stats.SummarizeBeats(beats, o)
}

// rangeActivity reads the UTC days of the local range o.Start..o.End,
// refused when reversed or too long.
func (s *Server) rangeActivity(ctx context.Context, u users.User, o stats.Options) (stats.Activity, error) {
	if o.End.Before(o.Start) {
		return stats.Activity{}, badf("end %s is before start %s", o.End, o.Start)
	}
	if n := o.Start.DaysUntil(o.End) + 1; n > maxRangeDays {
		return stats.Activity{}, badf("the range covers %d days; at most %d per request", n, maxRangeDays)
	}
	return s.opts.Reader.Activity(ctx, u, stats.UTCDays(o.Start, o.End, o.Location))
}

// isBadRead reports whether a read failed on the client's parameters
// rather than on a store.
func isBadRead(err error) bool {
	var bad *badParam
	return errors.As(err, &bad) || errors.Is(err, stats.ErrTimeout) || errors.Is(err, stats.ErrRange) ||
		errors.Is(err, stats.ErrUnknownRange) || errors.Is(err, stats.ErrSliceBy)
}

// readFailed answers a read error: 400 for bad parameters, 503 otherwise.
func (s *Server) readFailed(w http.ResponseWriter, u users.User, err error) {
	if isBadRead(err) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.log.Error().Err(err).Str("user_id", u.ID).Msg("read failed")
	writeError(w, http.StatusServiceUnavailable, "stats are unavailable right now, retry later")
}

func (s *Server) getUser(w http.ResponseWriter, _ *http.Request, u users.User) {
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"id": u.ID, "username": u.Name, "display_name": u.Name, "full_name": u.Name,
		"timezone": u.TimeZone, "timeout": u.TimeoutMinutes, "writes_only": false,
		"created_at": u.CreatedAt.UTC().Format(time.RFC3339),
	}})
}

func (s *Server) getSummaries(w http.ResponseWriter, r *http.Request, u users.User) {
	o, err := s.readOptions(r, u)
	if err == nil {
		o.Start, o.End, err = dateRange(r, o.Location, s.opts.Now())
	}
	var days []stats.Day
	if err == nil {
		days, err = s.summarize(r.Context(), u, o)
	}
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	t, avg := rangeTotals(days)
	total := t.GrandTotal.Total
	writeJSON(w, http.StatusOK, map[string]any{
		"data":             days,
		"start":            stats.NewRange(o.Start, o.Location).Start,
		"end":              stats.NewRange(o.End, o.Location).End,
		"cumulative_total": totalShape(total),
		"daily_average": map[string]any{
			"holidays": 0, "days_including_holidays": len(days), "days_minus_holidays": len(days),
			"seconds": avg.Seconds(), "text": stats.Text(avg),
			"seconds_including_other_language": avg.Seconds(), "text_including_other_language": stats.Text(avg),
		},
	})
}

// dateRange reads start and end (YYYY-MM-DD), or a named range.
func dateRange(r *http.Request, loc *time.Location, now time.Time) (stats.Date, stats.Date, error) {
	q := r.URL.Query()
	if name := q.Get("range"); name != "" {
		start, end, err := stats.ParseRange(name, now, loc)
		if errors.Is(err, stats.ErrAllTime) {
			return stats.Date{}, stats.Date{}, badf("all_time is not a summaries range; use /all_time_since_today or /stats/all_time")
		}
		if err == nil {
			err = checkRange("range", name, start, end, now, loc)
		}
		return start, end, err
	}
	if q.Get("start") == "" || q.Get("end") == "" {
		return stats.Date{}, stats.Date{}, badf("start and end (YYYY-MM-DD) are required, or range")
	}
	return parseDates(q.Get("start"), q.Get("end"), now, loc)
}

// parseDates reads the start and end parameters of a summaries read.
func parseDates(start, end string, now time.Time, loc *time.Location) (stats.Date, stats.Date, error) {
	s, err := parseDay("start", start, now, loc)
	if err != nil {
		return stats.Date{}, stats.Date{}, err
	}
	e, err := parseDay("end", end, now, loc)
	if err != nil {
		return stats.Date{}, stats.Date{}, err
	}
	return s, e, nil
}

func totalShape(d time.Duration) map[string]any {
	return map[string]any{"seconds": d.Seconds(), "text": stats.Text(d), "decimal": stats.Decimal(d), "digital": stats.Digital(d)}
}

func (s *Server) getStatusBar(w http.ResponseWriter, r *http.Request, u users.User) {
	o, err := s.readOptions(r, u)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	now := s.opts.Now()
	bar, err := s.statusBar(r.Context(), u, o, now, false)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": bar.day, "cached_at": now.UTC().Format(time.RFC3339)})
}

func (s *Server) getDurations(w http.ResponseWriter, r *http.Request, u users.User) {
	o, err := s.readOptions(r, u)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	q := r.URL.Query()
	day, err := parseDay("date", q.Get("date"), s.opts.Now(), o.Location)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	o.Start, o.End = day, day
	o.SliceBy = stats.Dimension(q.Get("slice_by")) // Durations refuses an unknown one
	beats, err := s.opts.Reader.Activity(r.Context(), u, stats.UTCDays(day, day, o.Location))
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	durations, err := stats.DurationsOfBeats(beats, o)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	data := make([]map[string]any, len(durations))
	for i, d := range durations {
		data[i] = map[string]any{
			"time": float64(d.Start.UnixMicro()) / 1e6, "duration": d.Duration.Seconds(),
			"project": d.Project, "language": d.Language, "entity": d.Entity, "type": d.Type,
			"branch": d.Branch, "category": d.Category, "editor": d.Editor,
			"operating_system": d.OS, "machine": d.Machine, "dependencies": d.Dependencies,
		}
	}
	rng := stats.NewRange(day, o.Location)
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "start": rng.Start, "end": rng.End, "timezone": o.Location.String()})
}

func (s *Server) getStats(w http.ResponseWriter, r *http.Request, u users.User) {
	o, err := s.readOptions(r, u)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	name := r.PathValue("range")
	if name == "" {
		name = "last_7_days"
	}
	o.Start, o.End, err = s.namedRange(r.Context(), u, name, o.Location)
	var days []stats.Day
	if err == nil {
		days, err = s.summarize(r.Context(), u, o)
	}
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	t, avg := rangeTotals(days)
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"range": name, "start": stats.NewRange(o.Start, o.Location).Start, "end": stats.NewRange(o.End, o.Location).End,
		"timezone": o.Location.String(), "timeout": o.Timeout, "writes_only": o.WritesOnly,
		"total_seconds": t.GrandTotal.Total.Seconds(), "human_readable_total": stats.Text(t.GrandTotal.Total),
		"daily_average": avg.Seconds(), "human_readable_daily_average": stats.Text(avg),
		"days_including_holidays": len(days), "is_up_to_date": true, "status": "ok",
		"projects": t.Projects, "languages": t.Languages, "editors": t.Editors,
		"operating_systems": t.OperatingSystems, "machines": t.Machines, "categories": t.Categories,
		"branches": t.Branches, "dependencies": t.Dependencies,
	}})
}

// rangeTotals combines the days of a range, and averages its grand total
// over every day of it, idle days included, as WakaTime does.
func rangeTotals(days []stats.Day) (stats.Totals, time.Duration) {
	t := stats.Combine(days)
	if len(days) == 0 {
		return t, 0
	}
	return t, t.GrandTotal.Total / time.Duration(len(days))
}

// namedRange resolves a stats range name (last_7_days, all_time, 2026, ...)
// for u; all_time runs from the user's first heartbeat (allTimeStart).
func (s *Server) namedRange(ctx context.Context, u users.User, name string, loc *time.Location) (stats.Date, stats.Date, error) {
	now := s.opts.Now()
	start, end, err := stats.ParseRange(name, now, loc)
	switch {
	case errors.Is(err, stats.ErrAllTime):
		start, err = s.allTimeStart(ctx, u, now, loc)
	case err == nil:
		err = checkRange("range", name, start, end, now, loc)
	}
	return start, end, err
}

// statsRange resolves a Connect request's range: a name (namedRange), or
// a custom start and end, never both. A custom range is bounded like
// summaries (maxRangeDays, start not after end).
func (s *Server) statsRange(ctx context.Context, u users.User, name, start, end string, loc *time.Location) (stats.Date, stats.Date, error) {
	switch {
	case name != "" && (start != "" || end != ""):
		return stats.Date{}, stats.Date{}, badf("give a range name or start and end, not both (got range %q, start %q, end %q)", name, start, end)
	case name != "":
		return s.namedRange(ctx, u, name, loc)
	case start == "" && end == "":
		return stats.Date{}, stats.Date{}, badf("give a range name (last_7_days, ...) or start and end (YYYY-MM-DD)")
	}
	from, to, err := parseDates(start, end, s.opts.Now(), loc)
	if err != nil {
		return stats.Date{}, stats.Date{}, err
	}
	if to.Before(from) {
		return stats.Date{}, stats.Date{}, badf("end %s is before start %s", to, from)
	}
	if n := from.DaysUntil(to) + 1; n > maxRangeDays {
		return stats.Date{}, stats.Date{}, badf("the range covers %d days; at most %d per request", n, maxRangeDays)
	}
	return from, to, nil
}

// allTimeStart is the local day of the user's first heartbeat (kept by the
// postgres processor), or today for a user without one, but no more than
// maxRangeDays before today: all_time is bounded like any range (see the
// README's limits).
func (s *Server) allTimeStart(ctx context.Context, u users.User, now time.Time, loc *time.Location) (stats.Date, error) {
	u, err := s.users.ByID(ctx, u.ID) // the cached user's first day may be stale
	if err != nil {
		return stats.Date{}, err
	}
	today := stats.DateOf(now, loc)
	earliest := today.AddDays(-(maxRangeDays - 1))
	if u.FirstDay.IsZero() {
		return today, nil
	}
	if first := stats.DateOf(u.FirstDay, loc); earliest.DaysUntil(first) > 0 {
		return first, nil
	}
	return earliest, nil
}

func (s *Server) getAllTime(w http.ResponseWriter, r *http.Request, u users.User) {
	o, err := s.readOptions(r, u)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	now := s.opts.Now()
	o.Start, err = s.allTimeStart(r.Context(), u, now, o.Location)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	o.End = stats.DateOf(now, o.Location)
	days, err := s.summarize(r.Context(), u, o)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	total := stats.Combine(days).GrandTotal.Total
	shape := totalShape(total)
	shape["total_seconds"] = total.Seconds()
	shape["is_up_to_date"] = true
	shape["range"] = map[string]any{"start": stats.NewRange(o.Start, o.Location).Start, "end": now.UTC(), "start_date": o.Start.String(), "end_date": o.End.String(), "timezone": o.Location.String()}
	writeJSON(w, http.StatusOK, map[string]any{"data": shape})
}

func (s *Server) getHeartbeats(w http.ResponseWriter, r *http.Request, u users.User) {
	o, err := s.readOptions(r, u)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	day, err := parseDay("date", r.URL.Query().Get("date"), s.opts.Now(), o.Location)
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	hbs, err := s.opts.Reader.Heartbeats(r.Context(), u, stats.UTCDays(day, day, o.Location))
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	from, to := day.Midnight(o.Location), day.AddDays(1).Midnight(o.Location)
	data := make([]map[string]any, 0, len(hbs))
	for _, hb := range hbs {
		at := time.UnixMicro(int64(hb.Time * 1e6))
		if at.Before(from) || !at.Before(to) {
			continue
		}
		data = append(data, heartbeatJSON(hb))
	}
	rng := stats.NewRange(day, o.Location)
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "start": rng.Start, "end": rng.End, "timezone": o.Location.String()})
}

// heartbeatJSON is a stored heartbeat with WakaTime's field names.
func heartbeatJSON(hb *heartlogv1.Heartbeat) map[string]any {
	m := map[string]any{
		"id": hb.Id, "user_id": hb.UserId, "entity": hb.Entity, "type": hb.Type, "category": hb.Category,
		"time": hb.Time, "project": hb.Project, "branch": hb.Branch, "language": hb.Language,
		"dependencies": hb.Dependencies, "editor": hb.Editor, "plugin": hb.Plugin,
		"operating_system": hb.OperatingSystem, "machine": hb.Machine, "user_agent": hb.UserAgent,
	}
	if hb.Dependencies == nil {
		m["dependencies"] = []string{}
	}
	for name, p := range map[string]*int32{
		"project_root_count": hb.ProjectRootCount, "lines": hb.Lines, "line_additions": hb.LineAdditions,
		"line_deletions": hb.LineDeletions, "lineno": hb.Lineno, "cursorpos": hb.Cursorpos,
		"ai_line_changes": hb.AiLineChanges, "human_line_changes": hb.HumanLineChanges,
	} {
		if p != nil {
			m[name] = *p
		}
	}
	if hb.IsWrite != nil {
		m["is_write"] = *hb.IsWrite
	}
	return m
}
