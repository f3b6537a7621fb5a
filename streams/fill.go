package streams

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"
)

var (
	streamBytes = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "heartlog_stream_bytes",
		Help: "Bytes the stream holds (from stream info, every few seconds).",
	}, []string{"stream"})
	streamMaxBytes = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "heartlog_stream_max_bytes",
		Help: "The stream's MaxBytes (-1: unbounded); past it JetStream refuses writes.",
	}, []string{"stream"})
)

// FillOptions tune WatchFill. Zero fields take the defaults.
type FillOptions struct {
	// Every is how often stream info is asked for (default 5s): a request
	// never waits for it.
	Every time.Duration
	// Threshold is the fill ratio from which Full reports true (default
	// 0.95): ingest refuses before JetStream does, so a client is told to
	// retry rather than get a publish error half-way through a batch.
	Threshold float64
	// Log receives a line when the stream crosses the threshold, and one a
	// minute while it stays above it.
	Log zerolog.Logger
}

// Fill is how full the stream was when last asked. It is safe for
// concurrent use; the zero value reports "not full".
type Fill struct {
	used, max atomic.Int64
	full      atomic.Bool
}

// Full reports whether the stream is over the threshold, with its size and
// limit in bytes at the last look.
func (f *Fill) Full() (full bool, used, max int64) {
	return f.full.Load(), f.used.Load(), f.max.Load()
}

// WatchFill looks at the stream every opts.Every until ctx is done. The
// first look happens before it returns, so a restart onto a full stream
// refuses at once. When stream info fails (NATS down), the last answer
// stands: publishing then fails anyway, and says so.
func WatchFill(ctx context.Context, js jetstream.JetStream, cfg Config, opts FillOptions) *Fill {
	if opts.Every <= 0 {
		opts.Every = 5 * time.Second
	}
	if opts.Threshold <= 0 || opts.Threshold > 1 {
		opts.Threshold = 0.95
	}
	f := &Fill{}
	w := fillWatch{f: f, js: js, stream: cfg.Stream, opts: opts,
		bytes: streamBytes.WithLabelValues(cfg.Stream), maxBytes: streamMaxBytes.WithLabelValues(cfg.Stream)}
	w.look(ctx)
	go func() {
		t := time.NewTicker(opts.Every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.look(ctx)
			}
		}
	}()
	return f
}

type fillWatch struct {
	f               *Fill
	js              jetstream.JetStream
	stream          string
	opts            FillOptions
	bytes, maxBytes prometheus.Gauge
	logged          time.Time
}

func (w *fillWatch) look(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.Every)
	defer cancel()
	s, err := w.js.Stream(ctx, w.stream)
	if err != nil {
		return
	}
	info := s.CachedInfo()
	used, limit := int64(info.State.Bytes), info.Config.MaxBytes
	w.f.used.Store(used)
	w.f.max.Store(limit)
	w.bytes.Set(float64(used))
	w.maxBytes.Set(float64(limit))
	full := limit > 0 && float64(used) >= w.opts.Threshold*float64(limit)
	was := w.f.full.Swap(full)
	switch {
	case full && (!was || time.Since(w.logged) >= time.Minute):
		w.logged = time.Now()
		w.opts.Log.Error().Str("stream", w.stream).Int64("bytes", used).Int64("max_bytes", limit).
			Str("fill", FillPercent(used, limit)).
			Msg("stream nearly full: ingest answers 503 until space is freed (messages age out after MaxAge, or raise HEARTLOG_STREAM_MAX_BYTES)")
	case was && !full:
		w.opts.Log.Info().Str("stream", w.stream).Str("fill", FillPercent(used, limit)).Msg("stream has room again: ingest accepts heartbeats")
	}
}

// FillPercent renders used/limit as a percentage for people.
func FillPercent(used, limit int64) string {
	if limit <= 0 {
		return "unbounded"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(used)/float64(limit))
}
