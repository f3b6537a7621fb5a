package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
	"heartlog/stats"
	"heartlog/users"
)

var statusBarReads = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "heartlog_api_statusbar_reads_total",
	Help: "Status bars served, by source: live (package today's state) or computed (the read path).",
}, []string{"source"})

// todayBar is a status bar and what the tracker knows of it.
type todayBar struct {
	day stats.Day
	// last is the newest heartbeat of the user's own local day, when the
	// tracker knows it.
	last time.Time
	// live: the tracker holds the user, so that a watch of them wakes.
	live bool
}

// statusBar is today's status bar of u with options o (today being
// DateOf(now)): from the live state when o are u's own time zone and
// timeout without filters and the tracker can tell, else computed. A
// watch keeps u live whatever o are: the live state is what wakes it.
func (s *Server) statusBar(ctx context.Context, u users.User, o stats.Options, now time.Time, watch bool) (todayBar, error) {
	o.Start = stats.DateOf(now, o.Location)
	o.End = o.Start
	var out todayBar
	if own, ok := s.ownOptions(u, now); ok && s.opts.Today != nil && (watch || plain(o, own)) {
		bar, err := s.opts.Today.StatusBar(ctx, u, own)
		switch {
		case err == nil:
			out.last, out.live = bar.Last, true
			if plain(o, own) {
				statusBarReads.WithLabelValues("live").Inc()
				out.day = bar.Day
				return out, nil
			}
		case ctx.Err() != nil:
			return todayBar{}, err
		default:
			s.log.Debug().Err(err).Str("user_id", u.ID).Msg("live status bar unavailable: computing it")
		}
	}
	statusBarReads.WithLabelValues("computed").Inc()
	days, err := s.summarize(ctx, u, o)
	if err != nil {
		return todayBar{}, err
	}
	out.day = days[0]
	return out, nil
}

// ownOptions are the status bar's options in u's own settings; false if
// those do not resolve (an unknown zone on the record).
func (s *Server) ownOptions(u users.User, now time.Time) (stats.Options, bool) {
	o, err := optionsFor(u, "", 0, false, "")
	if err != nil {
		return stats.Options{}, false
	}
	o.Start = stats.DateOf(now, o.Location)
	o.End = o.Start
	return o, true
}

// plain reports whether o asks for what the live state holds: own's zone
// and timeout, every heartbeat, every project.
func plain(o, own stats.Options) bool {
	return o.Location.String() == own.Location.String() && o.Timeout == own.Timeout && !o.WritesOnly && o.Project == ""
}

type reauthKey struct{}

// withReauth is ctx carrying how to authenticate the request again.
func withReauth(ctx context.Context, f func(context.Context) (users.User, error)) context.Context {
	return context.WithValue(ctx, reauthKey{}, f)
}

// liveStream prepares a guarded stream request: the read deadline of the
// connection (the server's ReadTimeout) is lifted, since net/http ends an
// HTTP/1 request's context when a background read of a fully read body
// meets it (defensive: connect-go clients were not seen to trigger it),
// and the request's credentials are checked again at each update, so that
// a revoked key or an ended session ends the stream.
func (s *Server) liveStream(w http.ResponseWriter, r *http.Request, creds credentials) *http.Request {
	if r.URL.Path != heartlogv1connect.StatsServiceWatchTodayProcedure {
		return r
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{}) // HTTP/2 has none to clear
	return r.WithContext(withReauth(r.Context(), func(ctx context.Context) (users.User, error) {
		u, _, err := s.authenticate(r.WithContext(ctx), creds, false)
		return u, err
	}))
}

// errShuttingDown ends the open watches when the server stops.
var errShuttingDown = errors.New("the server is shutting down; reconnect")

func (ss *statsService) WatchToday(ctx context.Context, req *connect.Request[heartlogv1.WatchTodayRequest], stream *connect.ServerStream[heartlogv1.WatchTodayResponse]) error {
	u, err := userFrom(ctx)
	if err != nil {
		return err
	}
	tr := ss.s.opts.Today
	if tr == nil {
		return connect.NewError(connect.CodeUnimplemented, errors.New("live updates are not enabled on this server"))
	}
	reauth, _ := ctx.Value(reauthKey{}).(func(context.Context) (users.User, error))
	if n := tr.Watchers(u.ID); n >= ss.s.opts.MaxWatches {
		return connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("%d live updates are open for this user, the most allowed: close one (a tab) and retry", n))
	}
	w := tr.Watch(u.ID)
	defer w.Stop()
	for {
		// The options are resolved again each time: the user's settings
		// may have changed, and today may have.
		o, err := connectOptions(u, req.Msg.GetOptions())
		if err != nil {
			return ss.readError(u, err)
		}
		bar, err := ss.s.statusBar(ctx, u, o, ss.s.opts.Now(), true)
		if ctx.Err() != nil {
			return nil // the client left
		}
		if err != nil {
			return ss.readError(u, err)
		}
		if !bar.live {
			// Nothing would wake this watch: let the client retry.
			return connect.NewError(connect.CodeUnavailable, errors.New("live updates are unavailable right now, retry later"))
		}
		msg := &heartlogv1.WatchTodayResponse{Today: daySummary(bar.day)}
		if !bar.last.IsZero() {
			msg.LastHeartbeatAt = unix(bar.last)
		}
		if err := stream.Send(msg); err != nil {
			return err // the client left
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tr.Done():
			return connect.NewError(connect.CodeUnavailable, errShuttingDown)
		case <-w.C:
		}
		if reauth != nil {
			if u, err = reauth(ctx); err != nil {
				return ss.s.connectAuthError(err)
			}
		}
	}
}
