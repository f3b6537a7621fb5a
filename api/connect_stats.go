package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
	"heartlog/stats"
	"heartlog/users"
)

// statsService implements heartlog.v1.StatsService on the same read path
// and accounting as the WakaTime routes.
type statsService struct {
	heartlogv1connect.UnimplementedStatsServiceHandler
	s *Server
}

// statsHandler is the StatsService behind the guard.
func (s *Server) statsHandler() (string, http.Handler) {
	opts := handlerOptions(statsMaxBytes)
	path, h := heartlogv1connect.NewStatsServiceHandler(&statsService{s: s}, opts...)
	return path, s.guard(h, statsMaxBytes, opts...)
}

func connectOptions(u users.User, o *heartlogv1.ReadOptions) (stats.Options, error) {
	return optionsFor(u, o.GetTimezone(), int(o.GetTimeoutMinutes()), o.GetWritesOnly(), o.GetProject())
}

// begin is the start of every read: the caller and its options.
func (ss *statsService) begin(ctx context.Context, ro *heartlogv1.ReadOptions) (users.User, stats.Options, error) {
	u, err := userFrom(ctx)
	if err != nil {
		return users.User{}, stats.Options{}, err
	}
	o, err := connectOptions(u, ro)
	if err != nil {
		return users.User{}, stats.Options{}, ss.readError(u, err)
	}
	return u, o, nil
}

// readError maps a read failure to a Connect code.
func (ss *statsService) readError(u users.User, err error) error {
	if isBadRead(err) {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	ss.s.log.Error().Err(err).Str("user_id", u.ID).Msg("read failed")
	return connect.NewError(connect.CodeUnavailable, errors.New("stats are unavailable right now, retry later"))
}

func (ss *statsService) GetSummaries(ctx context.Context, req *connect.Request[heartlogv1.GetSummariesRequest]) (*connect.Response[heartlogv1.GetSummariesResponse], error) {
	u, err := userFrom(ctx)
	if err != nil {
		return nil, err
	}
	o, err := connectOptions(u, req.Msg.GetOptions())
	if err == nil {
		o.Start, o.End, err = ss.s.statsRange(ctx, u, req.Msg.GetRange(), req.Msg.GetStart(), req.Msg.GetEnd(), o.Location)
	}
	var keep func(*heartlogv1.Breakdown)
	if err == nil {
		keep, err = keepBreakdowns(req.Msg.GetBreakdowns())
	}
	var days []stats.Day
	if err == nil {
		days, err = ss.s.summarize(ctx, u, o)
	}
	if err != nil {
		return nil, ss.readError(u, err)
	}
	return connect.NewResponse(summariesResponse(days, keep)), nil
}

// summariesResponse is GetSummaries' answer for the days, their breakdowns
// trimmed by keep.
func summariesResponse(days []stats.Day, keep func(*heartlogv1.Breakdown)) *heartlogv1.GetSummariesResponse {
	t, avg := rangeTotals(days)
	out := &heartlogv1.GetSummariesResponse{
		CumulativeTotal: totalMsg(t.GrandTotal.Total),
		DailyAverage:    totalMsg(avg),
	}
	for _, d := range days {
		s := daySummary(d)
		keep(s.Breakdown)
		out.Days = append(out.Days, s)
	}
	return out
}

// breakdownFields are the Breakdown fields by name, for
// GetSummariesRequest.breakdowns.
var breakdownFields = map[string]func(*heartlogv1.Breakdown) *[]*heartlogv1.Item{
	"projects":          func(b *heartlogv1.Breakdown) *[]*heartlogv1.Item { return &b.Projects },
	"languages":         func(b *heartlogv1.Breakdown) *[]*heartlogv1.Item { return &b.Languages },
	"editors":           func(b *heartlogv1.Breakdown) *[]*heartlogv1.Item { return &b.Editors },
	"operating_systems": func(b *heartlogv1.Breakdown) *[]*heartlogv1.Item { return &b.OperatingSystems },
	"machines":          func(b *heartlogv1.Breakdown) *[]*heartlogv1.Item { return &b.Machines },
	"branches":          func(b *heartlogv1.Breakdown) *[]*heartlogv1.Item { return &b.Branches },
	"categories":        func(b *heartlogv1.Breakdown) *[]*heartlogv1.Item { return &b.Categories },
	"entities":          func(b *heartlogv1.Breakdown) *[]*heartlogv1.Item { return &b.Entities },
	"dependencies":      func(b *heartlogv1.Breakdown) *[]*heartlogv1.Item { return &b.Dependencies },
}

// keepBreakdowns returns what empties a day's breakdowns other than
// names (all of them kept when names is empty); an unknown name is a bad
// read.
func keepBreakdowns(names []string) (func(*heartlogv1.Breakdown), error) {
	if len(names) == 0 {
		return func(*heartlogv1.Breakdown) {}, nil
	}
	kept := map[string]bool{}
	for _, n := range names {
		if breakdownFields[n] == nil {
			return nil, badf("breakdowns: %q is none of projects, languages, editors, operating_systems, machines, branches, categories, entities, dependencies", n)
		}
		kept[n] = true
	}
	return func(b *heartlogv1.Breakdown) {
		for n, field := range breakdownFields {
			if !kept[n] {
				*field(b) = nil
			}
		}
	}, nil
}

func (ss *statsService) GetDurations(ctx context.Context, req *connect.Request[heartlogv1.GetDurationsRequest]) (*connect.Response[heartlogv1.GetDurationsResponse], error) {
	u, o, err := ss.begin(ctx, req.Msg.GetOptions())
	if err != nil {
		return nil, err
	}
	day, err := parseDay("date", req.Msg.GetDate(), ss.s.opts.Now(), o.Location)
	if err != nil {
		return nil, ss.readError(u, err)
	}
	o.Start, o.End, o.SliceBy = day, day, stats.Dimension(req.Msg.GetSliceBy())
	beats, err := ss.s.opts.Reader.Activity(ctx, u, stats.UTCDays(day, day, o.Location))
	if err != nil {
		return nil, ss.readError(u, err)
	}
	durations, err := stats.DurationsOfBeats(beats, o)
	if err != nil {
		return nil, ss.readError(u, err)
	}
	out := &heartlogv1.GetDurationsResponse{}
	for _, d := range durations {
		out.Durations = append(out.Durations, &heartlogv1.Duration{
			Start: unix(d.Start), DurationSeconds: d.Duration.Seconds(),
			Project: d.Project, Language: d.Language, Entity: d.Entity, Branch: d.Branch,
			Category: d.Category, Editor: d.Editor, OperatingSystem: d.OS, Machine: d.Machine,
			Dependencies: d.Dependencies,
		})
	}
	return connect.NewResponse(out), nil
}

func (ss *statsService) GetStatusBar(ctx context.Context, req *connect.Request[heartlogv1.GetStatusBarRequest]) (*connect.Response[heartlogv1.GetStatusBarResponse], error) {
	u, o, err := ss.begin(ctx, req.Msg.GetOptions())
	if err != nil {
		return nil, err
	}
	bar, err := ss.s.statusBar(ctx, u, o, ss.s.opts.Now(), false)
	if err != nil {
		return nil, ss.readError(u, err)
	}
	return connect.NewResponse(&heartlogv1.GetStatusBarResponse{Today: daySummary(bar.day)}), nil
}

func (ss *statsService) GetStats(ctx context.Context, req *connect.Request[heartlogv1.GetStatsRequest]) (*connect.Response[heartlogv1.GetStatsResponse], error) {
	u, o, err := ss.begin(ctx, req.Msg.GetOptions())
	if err != nil {
		return nil, err
	}
	name := req.Msg.GetRange()
	o.Start, o.End, err = ss.s.statsRange(ctx, u, name, req.Msg.GetStart(), req.Msg.GetEnd(), o.Location)
	var days []stats.Day
	if err == nil {
		days, err = ss.s.summarize(ctx, u, o)
	}
	if err != nil {
		return nil, ss.readError(u, err)
	}
	return connect.NewResponse(statsResponse(name, o, days)), nil
}

// statsResponse is GetStats' answer for the range name (o.Start..o.End)
// and its days.
func statsResponse(name string, o stats.Options, days []stats.Day) *heartlogv1.GetStatsResponse {
	t, avg := rangeTotals(days)
	return &heartlogv1.GetStatsResponse{
		Range: name, Start: o.Start.String(), End: o.End.String(),
		Total:        totalMsg(t.GrandTotal.Total),
		DailyAverage: totalMsg(avg),
		Breakdown:    breakdown(t),
	}
}

// GetRange reads the range once, accounts its days once, and answers
// with what GetStats, GetSummaries and GetInsights would.
func (ss *statsService) GetRange(ctx context.Context, req *connect.Request[heartlogv1.GetRangeRequest]) (*connect.Response[heartlogv1.GetRangeResponse], error) {
	u, o, err := ss.begin(ctx, req.Msg.GetOptions())
	if err != nil {
		return nil, err
	}
	name := req.Msg.GetRange()
	o.Start, o.End, err = ss.s.statsRange(ctx, u, name, req.Msg.GetStart(), req.Msg.GetEnd(), o.Location)
	var keep func(*heartlogv1.Breakdown)
	if err == nil {
		keep, err = keepBreakdowns(req.Msg.GetBreakdowns())
	}
	var act stats.Activity
	if err == nil {
		act, err = ss.s.rangeActivity(ctx, u, o)
	}
	var days []stats.Day
	if err == nil {
		o.OmitEntities = o.Project == "" // as summarize
		days, err = stats.SummarizeBeats(act, o)
	}
	var in insight
	if err == nil {
		// The insights' days are these: entities change no day's total.
		in, err = insightsOf(act, days, o)
	}
	if err != nil {
		return nil, ss.readError(u, err)
	}
	return connect.NewResponse(&heartlogv1.GetRangeResponse{
		Stats:     statsResponse(name, o, days),
		Summaries: summariesResponse(days, keep),
		Insights:  insightsResponse(name, o, in),
	}), nil
}

func totalMsg(d time.Duration) *heartlogv1.Total {
	return &heartlogv1.Total{TotalSeconds: d.Seconds(), Text: stats.Text(d), Digital: stats.Digital(d), Decimal: stats.Decimal(d)}
}

func daySummary(d stats.Day) *heartlogv1.DaySummary {
	return &heartlogv1.DaySummary{Date: d.Date.String(), GrandTotal: totalMsg(d.GrandTotal.Total), Breakdown: breakdown(d.Totals)}
}

func breakdown(t stats.Totals) *heartlogv1.Breakdown {
	items := func(list []stats.Item) []*heartlogv1.Item {
		out := make([]*heartlogv1.Item, len(list))
		for i, it := range list {
			out[i] = &heartlogv1.Item{Name: it.Name, TotalSeconds: it.TotalSeconds, Percent: it.Percent, Text: it.Text, Digital: it.Digital, Decimal: it.Decimal}
		}
		return out
	}
	return &heartlogv1.Breakdown{
		Projects: items(t.Projects), Languages: items(t.Languages), Editors: items(t.Editors),
		OperatingSystems: items(t.OperatingSystems), Machines: items(t.Machines), Branches: items(t.Branches),
		Categories: items(t.Categories), Entities: items(t.Entities), Dependencies: items(t.Dependencies),
	}
}
