package api

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/users"
)

// Publisher appends prepared heartbeats to the log and returns once they
// are durable. *streams.Publisher implements it.
type Publisher interface {
	Publish(ctx context.Context, hbs []*heartlogv1.Heartbeat, prefixes map[string]string) error
}

var (
	heartbeatsAccepted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_api_heartbeats_accepted_total",
		Help: "Heartbeats stored in the log and acknowledged to a client.",
	})
	heartbeatsRefused = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_api_heartbeats_refused_total",
		Help: "Heartbeats refused by validation (answered 400 each).",
	})
	workRefused = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_api_work_limited_total",
		Help: "Ingest requests refused (429) by a user's heartbeats/s or bytes/s budget.",
	})
	fullRefused = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_api_log_full_total",
		Help: "Ingest requests refused (503) because the stream was nearly full.",
	})
	publishSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "heartlog_api_publish_seconds",
		Help:    "Time from handing heartbeats to the log until it acked them.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
)

// ingestor turns decoded heartbeats into log entries.
type ingestor struct {
	limits heartbeat.Limits
	pub    Publisher
	now    func() time.Time

	work     *workLimiter
	maxDays  int
	days     *dayCounter
	capacity Capacity
	log      zerolog.Logger
	fullLog  atomic.Int64 // unix nanos of the last "stream full" line
}

func newIngestor(pub Publisher, opts Options) *ingestor {
	return &ingestor{limits: opts.Limits, pub: pub, now: opts.Now, log: opts.Log,
		work: &workLimiter{
			heartbeats: newLimiter(opts.HeartbeatRate, opts.HeartbeatBurst),
			bytes:      newLimiter(opts.ByteRate, opts.ByteBurst),
		},
		maxDays:  opts.MaxDaysPerRequest,
		days:     newDayCounter(opts.MaxDayHeartbeats, opts.MaxDayBytes, opts.DayCounterIDs),
		capacity: opts.Capacity,
	}
}

// Capacity says whether the log has room; *streams.Fill implements it.
type Capacity interface {
	Full() (full bool, used, max int64)
}

// refusal is a whole request refused before anything was stored: the
// client should send it all again after RetryAfter.
type refusal struct {
	code       int // 429 or 503
	retryAfter time.Duration
	msg        string
}

func (r *refusal) Error() string { return r.msg }

// retryLater is a heartbeat refused for now though it is valid: sent again
// in a later request it fits (wakatime-cli requeues a heartbeat answered
// with any status but 201, 202 and 400).
type retryLater struct{ msg string }

func (e *retryLater) Error() string { return e.msg }

// fullRetryAfter is what a client is told to wait while the stream is
// nearly full: room comes back only as messages age out or an operator
// acts, so asking often helps nobody.
const fullRetryAfter = time.Minute

// workRefusal is the answer to a request over its user's ingest budget,
// counted.
func workRefusal(wait time.Duration) *refusal {
	workRefused.Inc()
	return &refusal{code: http.StatusTooManyRequests, retryAfter: wait,
		msg: "heartbeat rate limit exceeded; retry after " + wait.Round(time.Millisecond).String()}
}

// ingest prepares every decoded heartbeat of one request for the user and
// publishes the valid ones together. size is the request's body bytes. On
// return, items[i].Err is set for each refused heartbeat; an error means
// nothing was acknowledged (a *refusal when a limit refused the request).
func (in *ingestor) ingest(ctx context.Context, u users.User, items []heartbeat.Decoded, size int64, userAgent, machine string) error {
	if err := in.checkRoom(u); err != nil {
		return err
	}
	if ok, wait := in.work.allowN(u.ID, len(items), size); !ok {
		return workRefusal(wait)
	}
	origin := heartbeat.Origin{UserID: u.ID, UserAgent: userAgent, Machine: machine, Now: in.now()}
	valid := make([]int, 0, len(items)) // indexes into items
	days := map[string]bool{}
	for i := range items {
		if items[i].Err != nil {
			continue
		}
		if err := in.limits.Prepare(items[i].Heartbeat, origin); err != nil {
			items[i].Err = err
			continue
		}
		// The first maxDays distinct days are taken, in request order;
		// every day is a write per sink, and in Postgres a partition.
		if day := heartbeat.Day(items[i].Heartbeat); !days[day] {
			if len(days) >= in.maxDays {
				items[i].Err = &retryLater{msg: fmt.Sprintf("time falls on a UTC day beyond the %d UTC days one request may carry (HEARTLOG_MAX_DAYS_PER_REQUEST); send it again in another request", in.maxDays)}
				continue
			}
			days[day] = true
		}
		valid = append(valid, i)
	}
	hbs, adm := in.admitDays(u, items, valid)
	heartbeatsRefused.Add(float64(len(items) - len(hbs)))
	if len(hbs) == 0 {
		return nil
	}
	start := time.Now()
	if err := in.pub.Publish(ctx, hbs, map[string]string{u.ID: u.ObjectPrefix}); err != nil {
		in.days.release(adm)
		return err
	}
	publishSeconds.Observe(time.Since(start).Seconds())
	heartbeatsAccepted.Add(float64(len(hbs)))
	return nil
}

// checkRoom refuses the request while the log is nearly full, saying so
// in the log at most once every 10 seconds.
func (in *ingestor) checkRoom(u users.User) error {
	if in.capacity == nil {
		return nil
	}
	full, used, limit := in.capacity.Full()
	if !full {
		return nil
	}
	fullRefused.Inc()
	now := time.Now().UnixNano()
	if last := in.fullLog.Load(); now-last >= int64(10*time.Second) && in.fullLog.CompareAndSwap(last, now) {
		in.log.Warn().Str("user_id", u.ID).Int64("stream_bytes", used).Int64("stream_max_bytes", limit).
			Str("retry_after", fullRetryAfter.String()).
			Msg("the log is nearly full: ingest answers 503 before JetStream refuses writes")
	}
	return &refusal{code: http.StatusServiceUnavailable, retryAfter: fullRetryAfter,
		msg: "heartbeats not stored: the log is nearly full, retry later"}
}

// admitDays counts the valid heartbeats into their user-days and returns
// those within the caps, setting Err on the others.
func (in *ingestor) admitDays(u users.User, items []heartbeat.Decoded, valid []int) ([]*heartlogv1.Heartbeat, admission) {
	hbs := make([]*heartlogv1.Heartbeat, len(valid))
	sizes := make([]int, len(valid))
	errs := make([]error, len(valid))
	for j, i := range valid {
		hbs[j] = items[i].Heartbeat
		n, err := dayfile.LineSize(hbs[j])
		if err != nil {
			// Validation lets through nothing a day file cannot hold; should
			// it, the sinks park the heartbeat. Count it at its proto size.
			n = proto.Size(hbs[j])
		}
		sizes[j] = n
	}
	adm := in.days.admit(u.ID, hbs, sizes, errs)
	kept := hbs[:0]
	for j, i := range valid {
		if errs[j] != nil {
			items[i].Err = errs[j]
			continue
		}
		kept = append(kept, hbs[j])
	}
	return kept, adm
}
