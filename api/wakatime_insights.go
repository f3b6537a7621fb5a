package api

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"time"

	"heartlog/heartbeat"
	"heartlog/stats"
	"heartlog/users"
)

// heatMapDays is the length of the heat map: a year of local days.
const heatMapDays = 365

// insightRoutes are the lists and insights the dashboard reads, beside
// readRoutes, behind the same auth and limits.
func (s *Server) insightRoutes() {
	for _, root := range wakatimeRoots {
		s.mux.Handle("GET "+root+"/users/{user}/projects", s.user("projects", s.getProjects))
		s.mux.Handle("GET "+root+"/users/{user}/user_agents", s.user("user_agents", s.getUserAgents))
		s.mux.Handle("GET "+root+"/users/{user}/machine_names", s.user("machine_names", s.getMachineNames))
		s.mux.Handle("GET "+root+"/users/{user}/insights/{kind}/{range}", s.user("insights", s.getInsights))
		s.mux.Handle("GET "+root+"/users/{user}/insights/{kind}", s.user("insights", s.getInsights))
		s.mux.Handle("GET "+root+"/users/{user}/heatmap", s.user("heatmap", s.getHeatMap))
	}
}

// allTime sets o to the user's all-time range (allTimeStart .. today)
// and reads it, returning the instants it spans, for the lists that cover
// it.
func (s *Server) allTime(ctx context.Context, u users.User, o *stats.Options) (act stats.Activity, from, to time.Time, err error) {
	now := s.opts.Now()
	if o.Start, err = s.allTimeStart(ctx, u, now, o.Location); err != nil {
		return stats.Activity{}, time.Time{}, time.Time{}, err
	}
	o.End = stats.DateOf(now, o.Location)
	from, to = o.Start.Midnight(o.Location), o.End.AddDays(1).Midnight(o.Location)
	act, err = s.opts.Reader.Activity(ctx, u, stats.UTCDays(o.Start, o.End, o.Location))
	return act, from, to, err
}

// project is a project of the user's all-time range.
type project struct {
	stats.Seen
	Total time.Duration
}

// projects lists the projects of the all-time range, most recently active
// first, with their time (o's project filter does not apply).
func (s *Server) projects(ctx context.Context, u users.User, o stats.Options) ([]project, error) {
	act, from, to, err := s.allTime(ctx, u, &o)
	if err != nil {
		return nil, err
	}
	o.Project, o.OmitEntities = "", true
	days, err := stats.SummarizeBeats(act, o)
	if err != nil {
		return nil, err
	}
	secs := map[string]float64{}
	for _, it := range stats.Combine(days).Projects {
		secs[it.Name] = it.TotalSeconds
	}
	seen := stats.SeenIn(act, stats.FieldProject, from, to)
	out := make([]project, len(seen))
	for i, p := range seen {
		out[i] = project{p, time.Duration(secs[p.Value] * float64(time.Second))}
	}
	return out, nil
}

// machineNames lists the machines of the all-time range.
func (s *Server) machineNames(ctx context.Context, u users.User, o stats.Options) ([]stats.Seen, error) {
	act, from, to, err := s.allTime(ctx, u, &o)
	if err != nil {
		return nil, err
	}
	return stats.SeenIn(act, stats.FieldMachine, from, to), nil
}

// userAgents lists the user agents of the all-time range. They are not in
// an Activity, so this reads whole heartbeats.
func (s *Server) userAgents(ctx context.Context, u users.User, o stats.Options) ([]stats.Seen, error) {
	now := s.opts.Now()
	start, err := s.allTimeStart(ctx, u, now, o.Location)
	if err != nil {
		return nil, err
	}
	end := stats.DateOf(now, o.Location)
	from, to := start.Midnight(o.Location), end.AddDays(1).Midnight(o.Location)
	// A month at a time, as export reads: up to 400 days of whole
	// heartbeats are never held at once.
	days := stats.UTCDays(start, end, o.Location)
	var seen [][]stats.Seen
	for chunk := range slices.Chunk(days, userAgentDaysPerRead) {
		hbs, err := s.opts.Reader.Heartbeats(ctx, u, chunk)
		if err != nil {
			return nil, err
		}
		seen = append(seen, stats.UserAgentsIn(hbs, from, to))
	}
	return stats.MergeSeen(seen...), nil
}

// userAgentDaysPerRead is how many UTC days userAgents reads at a time.
const userAgentDaysPerRead = 31

// insight is every insight of one range.
type insight struct {
	days     []stats.Day
	weekdays [7]stats.WeekdayTotal
	hours    [24]time.Duration
	best     stats.Day
	hasBest  bool
	average  time.Duration
}

// insights reads the range o.Start..o.End once and derives each insight
// from it.
func (s *Server) insights(ctx context.Context, u users.User, o *stats.Options) (insight, error) {
	if n := o.Start.DaysUntil(o.End) + 1; n > maxRangeDays {
		return insight{}, badf("the range covers %d days; at most %d per request", n, maxRangeDays)
	}
	act, err := s.opts.Reader.Activity(ctx, u, stats.UTCDays(o.Start, o.End, o.Location))
	if err != nil {
		return insight{}, err
	}
	o.OmitEntities = true
	days, err := stats.SummarizeBeats(act, *o)
	if err != nil {
		return insight{}, err
	}
	return insightsOf(act, days, *o)
}

// insightsOf derives each insight from a range's activity and its days'
// summaries.
func insightsOf(act stats.Activity, days []stats.Day, o stats.Options) (insight, error) {
	o.OmitEntities = true
	durations, err := stats.DurationsOfBeats(act, o)
	if err != nil {
		return insight{}, err
	}
	in := insight{days: days, hours: stats.Hours(durations, o.Location), weekdays: stats.Weekdays(days)}
	in.best, in.hasBest = stats.BestDay(days)
	_, in.average = rangeTotals(days)
	return in, nil
}

// heatMap reads the heatMapDays local days ending at end ("": today): their
// grand totals only, which is most of a year's accounting saved.
func (s *Server) heatMap(ctx context.Context, u users.User, o stats.Options, end string) ([]stats.DayTotal, error) {
	now := s.opts.Now()
	o.End = stats.DateOf(now, o.Location)
	if end != "" {
		var err error
		if o.End, err = parseDay("end", end, now, o.Location); err != nil {
			return nil, err
		}
	}
	o.Start = o.End.AddDays(-(heatMapDays - 1))
	act, err := s.opts.Reader.Activity(ctx, u, stats.UTCDays(o.Start, o.End, o.Location))
	if err != nil {
		return nil, err
	}
	return stats.DayTotals(act, o)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Server) getProjects(w http.ResponseWriter, r *http.Request, u users.User) {
	o, err := s.readOptions(r, u)
	var list []project
	if err == nil {
		list, err = s.projects(r.Context(), u, o)
	}
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	data := make([]map[string]any, len(list))
	for i, p := range list {
		data[i] = map[string]any{
			"id": p.Value, "name": p.Value, "urlencoded_name": url.PathEscape(p.Value),
			"first_heartbeat_at": rfc3339(p.First), "last_heartbeat_at": rfc3339(p.Last),
			"created_at": rfc3339(p.First), "total_seconds": p.Total.Seconds(), "text": stats.Text(p.Total),
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (s *Server) getUserAgents(w http.ResponseWriter, r *http.Request, u users.User) {
	s.writeSeen(w, r, u, s.userAgents, func(v stats.Seen) map[string]any {
		c := heartbeat.ParseUserAgent(v.Value)
		return map[string]any{"id": v.Value, "value": v.Value, "editor": c.Editor, "os": c.OperatingSystem}
	})
}

func (s *Server) getMachineNames(w http.ResponseWriter, r *http.Request, u users.User) {
	s.writeSeen(w, r, u, s.machineNames, func(v stats.Seen) map[string]any {
		return map[string]any{"id": v.Value, "name": v.Value, "value": v.Value}
	})
}

// writeSeen answers a list of sightings, each in WakaTime's shape
// (shape) with its times added.
func (s *Server) writeSeen(w http.ResponseWriter, r *http.Request, u users.User,
	list func(context.Context, users.User, stats.Options) ([]stats.Seen, error), shape func(stats.Seen) map[string]any) {
	o, err := s.readOptions(r, u)
	var seen []stats.Seen
	if err == nil {
		seen, err = list(r.Context(), u, o)
	}
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	data := make([]map[string]any, len(seen))
	for i, v := range seen {
		m := shape(v)
		m["first_seen_at"], m["last_seen_at"], m["created_at"] = rfc3339(v.First), rfc3339(v.Last), rfc3339(v.First)
		data[i] = m
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "total": len(data), "total_pages": 1, "page": 1})
}

func (s *Server) getInsights(w http.ResponseWriter, r *http.Request, u users.User) {
	kind := r.PathValue("kind")
	if kind != "weekday" && kind != "weekdays" && kind != "hours" && kind != "best_day" && kind != "daily_average" {
		writeError(w, http.StatusNotFound, "unknown insight "+kind+"; have weekday, hours, best_day, daily_average")
		return
	}
	name := r.PathValue("range")
	if name == "" {
		name = stats.RangeLast7Days
	}
	o, err := s.readOptions(r, u)
	var in insight
	if err == nil {
		o.Start, o.End, err = s.namedRange(r.Context(), u, name, o.Location)
	}
	if err == nil {
		in, err = s.insights(r.Context(), u, &o)
	}
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	data := map[string]any{
		"range": name, "start": stats.NewRange(o.Start, o.Location).Start, "end": stats.NewRange(o.End, o.Location).End,
		"timezone": o.Location.String(), "status": "ok", "is_up_to_date": true,
	}
	switch kind {
	case "weekday", "weekdays":
		list := make([]map[string]any, len(in.weekdays))
		for i, wd := range in.weekdays {
			list[i] = map[string]any{"name": wd.Weekday.String(), "total_seconds": wd.Total.Seconds(), "text": stats.Text(wd.Total),
				"average": wd.Average.Seconds(), "human_readable_average": stats.Text(wd.Average)}
		}
		data["weekdays"] = list
	case "hours":
		list := make([]map[string]any, len(in.hours))
		for h, d := range in.hours {
			list[h] = map[string]any{"hour": h, "total_seconds": d.Seconds(), "text": stats.Text(d)}
		}
		data["hours"] = list
	case "best_day":
		best := map[string]any{"date": nil, "total_seconds": 0.0, "text": stats.Text(0)}
		if in.hasBest {
			best = map[string]any{"date": in.best.Date.String(), "total_seconds": in.best.GrandTotal.Total.Seconds(), "text": stats.Text(in.best.GrandTotal.Total)}
		}
		data["best_day"] = best
	case "daily_average":
		data["daily_average"] = map[string]any{"seconds": in.average.Seconds(), "text": stats.Text(in.average),
			"days_including_holidays": len(in.days), "days_minus_holidays": len(in.days), "holidays": 0}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (s *Server) getHeatMap(w http.ResponseWriter, r *http.Request, u users.User) {
	o, err := s.readOptions(r, u)
	var days []stats.DayTotal
	if err == nil {
		days, err = s.heatMap(r.Context(), u, o, r.URL.Query().Get("end"))
	}
	if err != nil {
		s.readFailed(w, u, err)
		return
	}
	data := make([]map[string]any, len(days))
	for i, d := range days {
		data[i] = map[string]any{"date": d.Date.String(), "total_seconds": d.Total.Seconds()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "timezone": o.Location.String()})
}
