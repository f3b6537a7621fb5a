package api

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
	"heartlog/users"
)

// ingestService implements heartlog.v1.IngestService.
type ingestService struct {
	heartlogv1connect.UnimplementedIngestServiceHandler
	s *Server
}

func (is *ingestService) SendHeartbeats(ctx context.Context, req *connect.Request[heartlogv1.SendHeartbeatsRequest]) (*connect.Response[heartlogv1.SendHeartbeatsResponse], error) {
	s := is.s
	u, err := userFrom(ctx)
	if err != nil {
		return nil, err
	}
	in := req.Msg.GetHeartbeats()
	if len(in) > s.ingest.limits.MaxHeartbeats {
		return nil, connect.NewError(connect.CodeInvalidArgument, heartbeat.ErrTooMany)
	}
	items := make([]heartbeat.Decoded, len(in))
	for i, hb := range in {
		items[i] = heartbeat.Decoded{Heartbeat: hb}
	}
	if err := s.ingest.ingest(ctx, u, items, int64(proto.Size(req.Msg)), req.Header().Get("User-Agent"), req.Msg.GetMachine()); err != nil {
		return nil, s.connectIngestError(u, len(items), err)
	}
	out := &heartlogv1.SendHeartbeatsResponse{Results: make([]*heartlogv1.HeartbeatResult, len(items))}
	for i, it := range items {
		if it.Err != nil {
			out.Results[i] = &heartlogv1.HeartbeatResult{Error: it.Err.Error()}
		} else {
			out.Results[i] = &heartlogv1.HeartbeatResult{Id: it.Heartbeat.Id}
		}
	}
	return connect.NewResponse(out), nil
}

// connectIngestError maps a failed ingest to the code a Connect client
// retries on, with Retry-After, as store does for REST.
func (s *Server) connectIngestError(u users.User, n int, err error) error {
	var ref *refusal
	if !errors.As(err, &ref) {
		s.logNotStored(u, n, err)
		cerr := connect.NewError(connect.CodeUnavailable, errors.New(msgNotStored))
		cerr.Meta().Set("Retry-After", retryAfterLogDown)
		return cerr
	}
	code := connect.CodeUnavailable
	if ref.code == http.StatusTooManyRequests {
		code = connect.CodeResourceExhausted
	}
	cerr := connect.NewError(code, errors.New(ref.msg))
	cerr.Meta().Set("Retry-After", retryAfter(ref.retryAfter))
	return cerr
}

// connectHandler is the IngestService behind the guard, by API key only:
// the request and its decompressed message are both capped at
// MaxBodyBytes, and a user with no ingest budget left is refused before
// the message is read.
func (s *Server) connectHandler() (string, http.Handler) {
	opts := handlerOptions(s.opts.MaxBodyBytes)
	path, h := heartlogv1connect.NewIngestServiceHandler(&ingestService{s: s}, opts...)
	return path, s.keyGuard(s.connectWorkReady(h, opts...), s.opts.MaxBodyBytes, opts...)
}

// connectWorkReady is workReady for the Connect ingest: a call whose user
// has no budget left for its declared size is refused ResourceExhausted,
// with Retry-After, before the message is read and decoded. It runs inside
// the guard, which has put the user in the context.
func (s *Server) connectWorkReady(h http.Handler, opts ...connect.HandlerOption) http.Handler {
	errW := connect.NewErrorWriter(opts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := userFrom(r.Context())
		if err == nil {
			if ok, wait := s.ingest.work.ready(u.ID, r.ContentLength); !ok {
				skipBody(w, r)
				_ = errW.Write(w, r, s.connectIngestError(u, 0, workRefusal(wait)))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
