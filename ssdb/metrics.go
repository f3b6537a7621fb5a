package ssdb

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Label values of the command label: the Redis command each method sends.
const (
	cmdGet      = "get"
	cmdMGet     = "mget"
	cmdSetEx    = "setex"
	cmdPipeline = "setex_pipeline" // SetMany: one pipeline of SETEX
	cmdDel      = "del"
	cmdPing     = "ping"
)

var (
	hitsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_cache_hits_total",
		Help: "Keys read from the SSDB cache and found (GET and MGET).",
	})
	missesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_cache_misses_total",
		Help: "Keys read from the SSDB cache and not found (GET and MGET).",
	})
	setsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_cache_sets_total",
		Help: "Keys written to the SSDB cache with SETEX.",
	})
	errorsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_cache_errors_total",
		Help: "Failed SSDB cache calls (a miss is not an error), by command.",
	}, []string{"command"})
	commandSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "heartlog_cache_command_seconds",
		Help:    "Latency of SSDB cache calls, failures included, by command.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs .. ~3.3s
	}, []string{"command"})
	refusedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_cache_refused_commands_total",
		Help: "Commands the guard refused because SSDB does not support them (a bug if not zero).",
	}, []string{"command"})
)

// observe records one call's latency and, if it failed, an error.
func observe(command string, start time.Time, err error) {
	commandSeconds.WithLabelValues(command).Observe(time.Since(start).Seconds())
	if err != nil {
		errorsTotal.WithLabelValues(command).Inc()
	}
}
