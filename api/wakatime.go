package api

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"heartlog/heartbeat"
	"heartlog/users"
)

// heartbeatData is what WakaTime answers for a stored heartbeat.
type heartbeatData struct {
	ID     string  `json:"id"`
	Entity string  `json:"entity"`
	Type   string  `json:"type"`
	Time   float64 `json:"time"`
}

// responses is the body wakatime-cli parses after a bulk POST: one
// [body, status] pair per heartbeat, in request order.
type responses struct {
	Responses [][2]any `json:"responses"`
}

type dataBody struct {
	Data heartbeatData `json:"data"`
}

func itemBody(d heartbeat.Decoded) (any, int) {
	var later *retryLater
	switch {
	case errors.As(d.Err, &later):
		return errorBody{Error: d.Err.Error()}, http.StatusTooManyRequests
	case d.Err != nil:
		return errorBody{Error: d.Err.Error()}, http.StatusBadRequest
	}
	hb := d.Heartbeat
	return dataBody{Data: heartbeatData{ID: hb.Id, Entity: hb.Entity, Type: hb.Type, Time: hb.Time}}, http.StatusCreated
}

// readBody reads the request body within the size limit, answering 413 or
// 400 itself when it cannot.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "request body is larger than "+byteSize(tooBig.Limit))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "could not read request body")
		return nil, false
	}
	return body, true
}

// postBulk serves POST .../users/{user}/heartbeats.bulk.
func (s *Server) postBulk(w http.ResponseWriter, r *http.Request, u users.User) {
	if !s.workReady(w, r, u) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	items, err := s.ingest.limits.DecodeBulk(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.store(w, r, u, items, len(body)) {
		return
	}
	out := responses{Responses: make([][2]any, len(items))}
	for i, it := range items {
		b, code := itemBody(it)
		out.Responses[i] = [2]any{b, code}
	}
	writeJSON(w, http.StatusCreated, out)
}

// postOne serves POST .../users/{user}/heartbeats.
func (s *Server) postOne(w http.ResponseWriter, r *http.Request, u users.User) {
	if !s.workReady(w, r, u) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	item, err := s.ingest.limits.DecodeOne(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	items := []heartbeat.Decoded{item}
	if !s.store(w, r, u, items, len(body)) {
		return
	}
	b, code := itemBody(items[0])
	writeJSON(w, code, b)
}

// workReady refuses, before the body is read, a request whose user has no
// ingest budget left for it (see workLimiter.ready), with 429 and
// Retry-After; the budget itself is taken after decoding, by ingest.
func (s *Server) workReady(w http.ResponseWriter, r *http.Request, u users.User) bool {
	ok, wait := s.ingest.work.ready(u.ID, r.ContentLength)
	if ok {
		return true
	}
	ref := workRefusal(wait)
	skipBody(w, r)
	w.Header().Set("Retry-After", retryAfter(ref.retryAfter))
	writeError(w, ref.code, ref.msg)
	return false
}

// store publishes the items, answering 429 or 503 itself when a limit
// refuses the request or the log is down.
func (s *Server) store(w http.ResponseWriter, r *http.Request, u users.User, items []heartbeat.Decoded, size int) bool {
	machine, err := url.QueryUnescape(r.Header.Get("X-Machine-Name"))
	if err != nil {
		machine = r.Header.Get("X-Machine-Name")
	}
	err = s.ingest.ingest(r.Context(), u, items, int64(size), r.Header.Get("User-Agent"), machine)
	var ref *refusal
	if errors.As(err, &ref) {
		w.Header().Set("Retry-After", retryAfter(ref.retryAfter))
		writeError(w, ref.code, ref.msg)
		return false
	}
	if err != nil {
		s.logNotStored(u, len(items), err)
		w.Header().Set("Retry-After", retryAfterLogDown)
		writeError(w, http.StatusServiceUnavailable, msgNotStored)
		return false
	}
	return true
}

// msgNotStored is the answer to a request the log did not store; the
// error itself goes to the log only. retryAfterLogDown is its Retry-After:
// the publisher reconnects to NATS within seconds.
const (
	msgNotStored      = "heartbeats not stored: the log is unavailable, retry later"
	retryAfterLogDown = "5"
)

func (s *Server) logNotStored(u users.User, n int, err error) {
	s.log.Warn().Err(err).Str("user_id", u.ID).Int("heartbeats", n).Msg("log did not store heartbeats; answered 503")
}

// retryAfter renders a wait as whole seconds for Retry-After, rounded up.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}
