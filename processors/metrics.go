package processors

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

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

var (
	oldestAge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "heartlog_processor_oldest_unprocessed_seconds",
		Help: "Age of the oldest message the processor has not committed yet (0 when caught up).",
	}, []string{"processor", "consumer"})
	oldestAgeRatio = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "heartlog_processor_oldest_unprocessed_max_age_ratio",
		Help: "Age of the oldest unprocessed message over the stream's MaxAge: past 1 it is deleted before the processor gets to it (warning logged past 0.5, error past 0.75).",
	}, []string{"processor", "consumer"})
)

// Thresholds of the oldest unprocessed message's age over MaxAge.
const (
	lagWarnRatio  = 0.5
	lagErrorRatio = 0.75
	// lagLogEvery bounds the lag lines while a consumer stays behind.
	lagLogEvery = 10 * time.Minute
)

// watchLag publishes the consumer's lag every interval until ctx is done,
// and, given the stream, how old its oldest unprocessed message is against
// the stream's MaxAge: a sink that falls that far behind loses messages to
// age, so it is logged well before (warn past half of MaxAge, error past
// three quarters).
func watchLag(ctx context.Context, cons jetstream.Consumer, stream jetstream.Stream, processor string, log zerolog.Logger, every time.Duration) {
	name := cons.CachedInfo().Name
	pending := pendingMessages.WithLabelValues(processor, name)
	ackPending := ackPendingMessages.WithLabelValues(processor, name)
	age := ageWatch{stream: stream, age: oldestAge.WithLabelValues(processor, name),
		ratio: oldestAgeRatio.WithLabelValues(processor, name), log: log.With().Str("consumer", name).Logger()}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if info, err := cons.Info(ctx); err == nil {
			pending.Set(float64(info.NumPending))
			ackPending.Set(float64(info.NumAckPending))
			age.observe(ctx, info)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ageWatch tracks one consumer's oldest unprocessed message.
type ageWatch struct {
	stream     jetstream.Stream
	age, ratio prometheus.Gauge
	log        zerolog.Logger
	level      int // 0 fine, 1 warned, 2 errored
	logged     time.Time
}

// observe asks for the first message after the ack floor that the
// consumer's filter takes (one direct get), when anything is unprocessed.
func (a *ageWatch) observe(ctx context.Context, info *jetstream.ConsumerInfo) {
	if a.stream == nil {
		return
	}
	maxAge := a.stream.CachedInfo().Config.MaxAge
	var age time.Duration
	if info.NumPending+uint64(info.NumAckPending) > 0 {
		opts := []jetstream.GetMsgOpt{}
		if f := info.Config.FilterSubject; f != "" {
			opts = append(opts, jetstream.WithGetMsgSubject(f))
		}
		msg, err := a.stream.GetMsg(ctx, info.AckFloor.Stream+1, opts...)
		if err != nil {
			return // deleted meanwhile, or NATS away: next time
		}
		age = max(time.Since(msg.Time), 0)
	}
	a.age.Set(age.Seconds())
	if maxAge <= 0 {
		return
	}
	r := float64(age) / float64(maxAge)
	a.ratio.Set(r)
	level := 0
	switch {
	case r >= lagErrorRatio:
		level = 2
	case r >= lagWarnRatio:
		level = 1
	}
	if level == a.level && (level == 0 || time.Since(a.logged) < lagLogEvery) {
		return
	}
	a.level, a.logged = level, time.Now()
	ev := a.log.Info()
	msg := "processor caught up with the stream's MaxAge again"
	switch level {
	case 1:
		ev, msg = a.log.Warn(), "processor is behind: its oldest unprocessed message is past half the stream's MaxAge; past MaxAge it is deleted unprocessed"
	case 2:
		ev, msg = a.log.Error(), "processor is far behind: its oldest unprocessed message is past three quarters of the stream's MaxAge; past MaxAge it is deleted unprocessed"
	}
	ev.Str("oldest_unprocessed_age", age.Round(time.Second).String()).Str("max_age", maxAge.String()).Msg(msg)
}
