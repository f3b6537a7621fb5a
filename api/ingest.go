package api

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"heartlog/heartbeat"
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
}

// ingest prepares every decoded heartbeat of one request for the user and
// publishes the valid ones together. On return, items[i].Err is set for each
// refused heartbeat; an error means nothing was acknowledged.
func (in *ingestor) ingest(ctx context.Context, u users.User, items []heartbeat.Decoded, userAgent, machine string) error {
	origin := heartbeat.Origin{UserID: u.ID, UserAgent: userAgent, Machine: machine, Now: in.now()}
	valid := make([]*heartlogv1.Heartbeat, 0, len(items))
	for i := range items {
		if items[i].Err != nil {
			continue
		}
		if err := in.limits.Prepare(items[i].Heartbeat, origin); err != nil {
			items[i].Err = err
			continue
		}
		valid = append(valid, items[i].Heartbeat)
	}
	heartbeatsRefused.Add(float64(len(items) - len(valid)))
	if len(valid) == 0 {
		return nil
	}
	start := time.Now()
	if err := in.pub.Publish(ctx, valid, map[string]string{u.ID: u.ObjectPrefix}); err != nil {
		return err
	}
	publishSeconds.Observe(time.Since(start).Seconds())
	heartbeatsAccepted.Add(float64(len(valid)))
	return nil
}
