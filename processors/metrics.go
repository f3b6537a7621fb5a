package processors

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

var (
	messagesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_processor_messages_total",
		Help: "Log messages committed by a processor.",
	}, []string{"processor"})
	heartbeatsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_processor_heartbeats_total",
		Help: "Heartbeats committed by a processor (before deduplication).",
	}, []string{"processor"})
	batchMessages = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "heartlog_processor_batch_messages",
		Help:    "Messages per commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	}, []string{"processor"})
	commitSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "heartlog_processor_commit_seconds",
		Help:    "Time a sink took to commit one batch, failed attempts included.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"processor"})
	commitErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_processor_commit_errors_total",
		Help: "Failed commit attempts (each is retried).",
	}, []string{"processor"})
	parkedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_processor_parked_heartbeats_total",
		Help: "Heartbeats parked in the dead-letter stream because the sink can never store them, by reason (an undecodable message counts once).",
	}, []string{"processor", "reason"})
)

type metrics struct {
	processor                    string
	messages, heartbeats, errors prometheus.Counter
	batch, commit                prometheus.Observer
}

var (
	metricsMu    sync.Mutex
	metricsCache = map[string]*metrics{}
)

func metricsFor(processor string) *metrics {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if m, ok := metricsCache[processor]; ok {
		return m
	}
	m := &metrics{
		messages:   messagesTotal.WithLabelValues(processor),
		heartbeats: heartbeatsTotal.WithLabelValues(processor),
		errors:     commitErrors.WithLabelValues(processor),
		processor:  processor,
		batch:      batchMessages.WithLabelValues(processor),
		commit:     commitSeconds.WithLabelValues(processor),
	}
	metricsCache[processor] = m
	return m
}

// parked counts heartbeats parked for reason, a short stable label.
func (m *metrics) parked(reason string) prometheus.Counter {
	return parkedTotal.WithLabelValues(m.processor, reason)
}

func (m *metrics) observeCommit(d time.Duration, err error) {
	m.commit.Observe(d.Seconds())
	if err != nil {
		m.errors.Inc()
	}
}

func (m *metrics) observeBatch(batches []*heartlogv1.Batch) {
	n := 0
	for _, b := range batches {
		n += len(b.Heartbeats)
	}
	m.messages.Add(float64(len(batches)))
	m.heartbeats.Add(float64(n))
	m.batch.Observe(float64(len(batches)))
}

var (
	pendingMessages = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "heartlog_processor_pending_messages",
		Help: "Consumer lag: messages in the stream not yet delivered to the processor.",
	}, []string{"processor", "consumer"})
	ackPendingMessages = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "heartlog_processor_ack_pending_messages",
		Help: "Messages delivered to the processor and not yet committed and acked.",
	}, []string{"processor", "consumer"})
)

// watchLag publishes the consumer's lag every interval until ctx is done.
func watchLag(ctx context.Context, cons jetstream.Consumer, processor string, every time.Duration) {
	name := cons.CachedInfo().Name
	pending := pendingMessages.WithLabelValues(processor, name)
	ackPending := ackPendingMessages.WithLabelValues(processor, name)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if info, err := cons.Info(ctx); err == nil {
			pending.Set(float64(info.NumPending))
			ackPending.Set(float64(info.NumAckPending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
