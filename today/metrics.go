package today

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are on the default registry, as every heartlog metric (package
// admin serves it). Gauges move by deltas, so that trackers of one process
// add up.
var (
	usersGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "heartlog_today_users",
		Help: "Users whose today is kept live.",
	})
	feedsGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "heartlog_today_partition_feeds",
		Help: "Partitions with a live feed (one ordered consumer each).",
	})
	watchersGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "heartlog_today_watchers",
		Help: "Open watches of today's status bar.",
	})
	activationsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_today_activations_total",
		Help: "Users made live, by result (ok, error, too_large, dropped).",
	}, []string{"result"})
	activationSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "heartlog_today_activation_seconds",
		Help:    "Time to make a user live: their day's read and the stream's catch-up.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	droppedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_today_dropped_total",
		Help: "Users no longer kept live, by reason (idle, lru, heartbeats_cap, midnight, changed, failed, closed).",
	}, []string{"reason"})
	messagesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_today_messages_total",
		Help: "Stream messages the feeds handled, by outcome (skipped: no live user in it; applied; undecodable).",
	}, []string{"outcome"})
)

var heartbeatsGauge = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "heartlog_today_heartbeats",
	Help: "Heartbeats kept for the live users (bounded by the tracker's MaxHeartbeats).",
})

// addKept counts n more heartbeats kept (n < 0: fewer) and returns the
// new total.
func (t *Tracker) addKept(n int64) int64 {
	heartbeatsGauge.Add(float64(n))
	return t.kept.Add(n)
}
