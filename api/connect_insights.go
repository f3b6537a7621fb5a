package api

import (
	"context"
	"time"

	"connectrpc.com/connect"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
	"heartlog/users"
)

func unix(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

func (ss *statsService) GetProjects(ctx context.Context, req *connect.Request[heartlogv1.GetProjectsRequest]) (*connect.Response[heartlogv1.GetProjectsResponse], error) {
	u, o, err := ss.begin(ctx, req.Msg.GetOptions())
	if err != nil {
		return nil, err
	}
	list, err := ss.s.projects(ctx, u, o)
	if err != nil {
		return nil, ss.readError(u, err)
	}
	out := &heartlogv1.GetProjectsResponse{}
	for _, p := range list {
		out.Projects = append(out.Projects, &heartlogv1.Project{
			Name: p.Value, FirstHeartbeatAt: unix(p.First), LastHeartbeatAt: unix(p.Last), Total: totalMsg(p.Total),
		})
	}
	return connect.NewResponse(out), nil
}

func (ss *statsService) GetUserAgents(ctx context.Context, req *connect.Request[heartlogv1.GetUserAgentsRequest]) (*connect.Response[heartlogv1.GetSeenResponse], error) {
	return ss.seen(ctx, req.Msg.GetOptions(), ss.s.userAgents)
}

func (ss *statsService) GetMachineNames(ctx context.Context, req *connect.Request[heartlogv1.GetMachineNamesRequest]) (*connect.Response[heartlogv1.GetSeenResponse], error) {
	return ss.seen(ctx, req.Msg.GetOptions(), ss.s.machineNames)
}

func (ss *statsService) seen(ctx context.Context, ro *heartlogv1.ReadOptions,
	list func(context.Context, users.User, stats.Options) ([]stats.Seen, error)) (*connect.Response[heartlogv1.GetSeenResponse], error) {
	u, o, err := ss.begin(ctx, ro)
	if err != nil {
		return nil, err
	}
	seen, err := list(ctx, u, o)
	if err != nil {
		return nil, ss.readError(u, err)
	}
	out := &heartlogv1.GetSeenResponse{}
	for _, v := range seen {
		out.Seen = append(out.Seen, &heartlogv1.Seen{Value: v.Value, FirstSeenAt: unix(v.First), LastSeenAt: unix(v.Last)})
	}
	return connect.NewResponse(out), nil
}

func (ss *statsService) GetInsights(ctx context.Context, req *connect.Request[heartlogv1.GetInsightsRequest]) (*connect.Response[heartlogv1.GetInsightsResponse], error) {
	u, o, err := ss.begin(ctx, req.Msg.GetOptions())
	if err != nil {
		return nil, err
	}
	name := req.Msg.GetRange()
	o.Start, o.End, err = ss.s.statsRange(ctx, u, name, req.Msg.GetStart(), req.Msg.GetEnd(), o.Location)
	var in insight
	if err == nil {
		in, err = ss.s.insights(ctx, u, &o)
	}
	if err != nil {
		return nil, ss.readError(u, err)
	}
	return connect.NewResponse(insightsResponse(name, o, in)), nil
}

// insightsResponse is GetInsights' answer for the range name
// (o.Start..o.End).
func insightsResponse(name string, o stats.Options, in insight) *heartlogv1.GetInsightsResponse {
	out := &heartlogv1.GetInsightsResponse{
		Range: name, Start: o.Start.String(), End: o.End.String(),
		BestDay: &heartlogv1.DayTotal{Total: totalMsg(0)}, DailyAverage: totalMsg(in.average),
	}
	if in.hasBest {
		out.BestDay = &heartlogv1.DayTotal{Date: in.best.Date.String(), Total: totalMsg(in.best.GrandTotal.Total)}
	}
	for _, wd := range in.weekdays {
		out.Weekdays = append(out.Weekdays, &heartlogv1.Weekday{Name: wd.Weekday.String(), Total: totalMsg(wd.Total), Average: totalMsg(wd.Average)})
	}
	for _, d := range in.hours {
		out.Hours = append(out.Hours, totalMsg(d))
	}
	return out
}

func (ss *statsService) GetHeatMap(ctx context.Context, req *connect.Request[heartlogv1.GetHeatMapRequest]) (*connect.Response[heartlogv1.GetHeatMapResponse], error) {
	u, o, err := ss.begin(ctx, req.Msg.GetOptions())
	if err != nil {
		return nil, err
	}
	days, err := ss.s.heatMap(ctx, u, o, req.Msg.GetEnd())
	if err != nil {
		return nil, ss.readError(u, err)
	}
	out := &heartlogv1.GetHeatMapResponse{}
	for _, d := range days {
		out.Days = append(out.Days, &heartlogv1.DayTotal{Date: d.Date.String(), Total: totalMsg(d.Total)})
	}
	return connect.NewResponse(out), nil
}
