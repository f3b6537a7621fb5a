package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
	"heartlog/users"
)

// settingsMaxBytes bounds a settings change: a time zone and a number.
const settingsMaxBytes = 4 << 10

// errSettingsUnavailable is what a caller sees when a change cannot be
// stored; the cause goes to the log only.
var errSettingsUnavailable = errors.New("settings cannot be saved right now, retry later")

// settingsRoutes serve the caller's settings: SettingsService, and PATCH
// of the WakaTime user, behind the reads' auth and limits.
func (s *Server) settingsRoutes() {
	opts := handlerOptions(settingsMaxBytes)
	path, h := heartlogv1connect.NewSettingsServiceHandler(&settingsService{s: s}, opts...)
	s.mux.Handle(path, instrument("connect_settings", s.guard(h, settingsMaxBytes, opts...)))
	for _, root := range wakatimeRoots {
		s.mux.Handle("PATCH "+root+"/users/{user}", s.user("user_update", s.patchUser))
	}
}

// settingsService implements heartlog.v1.SettingsService.
type settingsService struct {
	heartlogv1connect.UnimplementedSettingsServiceHandler
	s *Server
}

func settingsMsg(u users.User) *heartlogv1.Settings {
	return &heartlogv1.Settings{Username: u.Name, Timezone: u.TimeZone, TimeoutMinutes: int32(u.TimeoutMinutes)}
}

func (ss *settingsService) GetSettings(ctx context.Context, _ *connect.Request[heartlogv1.GetSettingsRequest]) (*connect.Response[heartlogv1.GetSettingsResponse], error) {
	u, err := userFrom(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&heartlogv1.GetSettingsResponse{Settings: settingsMsg(u)}), nil
}

func (ss *settingsService) UpdateSettings(ctx context.Context, req *connect.Request[heartlogv1.UpdateSettingsRequest]) (*connect.Response[heartlogv1.UpdateSettingsResponse], error) {
	u, err := userFrom(ctx)
	if err != nil {
		return nil, err
	}
	var timeout *int
	if req.Msg.TimeoutMinutes != nil {
		t := int(req.Msg.GetTimeoutMinutes())
		timeout = &t
	}
	u, err = ss.s.updateSettings(ctx, u, req.Msg.Timezone, timeout)
	var bad *badParam
	switch {
	case errors.As(err, &bad):
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, users.ErrNotFound):
		return nil, connect.NewError(connect.CodeNotFound, err)
	case err != nil:
		return nil, connect.NewError(connect.CodeUnavailable, errSettingsUnavailable)
	}
	return connect.NewResponse(&heartlogv1.UpdateSettingsResponse{Settings: settingsMsg(u)}), nil
}

// settingsBody is a PATCH of the WakaTime user: the fields set change.
type settingsBody struct {
	Timezone *string `json:"timezone"`
	Timeout  *int    `json:"timeout"`
}

// patchUser changes the caller's time zone and timeout and answers as GET
// of the user does, with the new values. JSON only: with a session
// cookie, a Content-Type that no HTML form can send is what keeps another
// site from changing them (see sameOrigin for the rest).
func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, u users.User) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, `send the settings as JSON with Content-Type: application/json, e.g. {"timezone": "Europe/Berlin", "timeout": 15}`)
		return
	}
	var body settingsBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, settingsMaxBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(&body)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, `malformed settings (`+strings.TrimPrefix(err.Error(), "json: ")+
			`): want a JSON object with "timezone" (an IANA time zone) and/or "timeout" (minutes, 1 to 60)`)
		return
	}
	u, err = s.updateSettings(r.Context(), u, body.Timezone, body.Timeout)
	var bad *badParam
	switch {
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, users.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such user")
	case err != nil:
		w.Header().Set("Retry-After", retryAfterUnavailable)
		writeError(w, http.StatusServiceUnavailable, errSettingsUnavailable.Error())
	default:
		s.getUser(w, r, u)
	}
}

// updateSettings validates a change (nil fields stay) and stores it. A
// *badParam is the caller's mistake, with nothing written; users.ErrNotFound
// a user deleted meanwhile; any other error is logged here and means the
// store could not be reached.
func (s *Server) updateSettings(ctx context.Context, u users.User, tz *string, timeout *int) (users.User, error) {
	if tz != nil {
		if err := checkZone(*tz); err != nil {
			return users.User{}, err
		}
	}
	if timeout != nil && (*timeout < 1 || *timeout > 60) {
		return users.User{}, badf("timeout must be a whole number of minutes from 1 to 60, got %d", *timeout)
	}
	if tz == nil && timeout == nil {
		return u, nil
	}
	n, err := s.users.Update(ctx, u.ID, users.Change{TimeZone: tz, TimeoutMinutes: timeout})
	if err != nil && !errors.Is(err, users.ErrNotFound) {
		s.log.Error().Err(err).Str("user_id", u.ID).Msg("settings update failed")
	}
	return n, err
}

// checkZone is users.CheckTimeZone, with a message for the caller.
func checkZone(tz string) error {
	const hint = `give an IANA time zone such as "Europe/Berlin" or "UTC"`
	switch err := users.CheckTimeZone(tz); {
	case err == nil:
		return nil
	case tz == "":
		return badf("timezone must not be empty: %s", hint)
	default:
		return badf("unknown time zone %q: %s", tz, hint)
	}
}
