package processors

import (
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"heartlog/streams"
)

// Admission is what a processor does with one message before its sink
// sees it (Options.Admit): the day-file processors are the late path of a
// closed day, and the day's compaction writes everything else.
type Admission int

const (
	// Admit: commit the message to the sink.
	Admit Admission = iota
	// Pass: ack the message without committing it; another writer has it
	// or will (the compaction of its day, which reads it from the stream).
	Pass
	// Hold: it cannot be told yet (the day is closed and its compaction
	// not recorded); leave it unacked, to be delivered again after
	// Options.HoldDelay.
	Hold
)

// AdmitFunc decides on one message of heartbeats.<day>.<partition> at
// stream sequence seq. It is called for every message, so it must answer
// from memory (streams.DayView).
type AdmitFunc func(day string, partition uint32, seq uint64) Admission

var admissions = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "heartlog_processor_admissions_total",
	Help: "Messages a late-path processor admitted to its sink, passed over (the compaction writes them) or held (compaction not recorded yet).",
}, []string{"processor", "admission"})

// admit applies opts.Admit to msgs, before they are decoded (most of an
// open day's messages are only acked): it acks what passes, naks what is
// held and returns the rest. A message whose subject is not a day's, or
// whose metadata does not parse, is admitted, so that the sink parks or
// stores it rather than it vanishing.
func admit(msgs []jetstream.Msg, opts Options, name string, log zerolog.Logger) []jetstream.Msg {
	if opts.Admit == nil {
		return msgs
	}
	out := msgs[:0:0]
	var passed, held int
	for _, msg := range msgs {
		a := Admit
		day, p, err := streams.ParseSubject(msg.Subject())
		if meta, merr := msg.Metadata(); err == nil && merr == nil {
			a = opts.Admit(day, p, meta.Sequence.Stream)
		}
		switch a {
		case Pass:
			passed++
			ack(msg, log)
		case Hold:
			held++
			_ = msg.NakWithDelay(opts.HoldDelay)
		default:
			out = append(out, msg)
		}
	}
	admissions.WithLabelValues(name, "admitted").Add(float64(len(out)))
	admissions.WithLabelValues(name, "passed").Add(float64(passed))
	if held > 0 {
		admissions.WithLabelValues(name, "held").Add(float64(held))
		log.Debug().Int("messages", held).Str("again_in", opts.HoldDelay.String()).
			Msg("held messages of a day whose compaction is not recorded yet")
	}
	return out
}

func ack(msg jetstream.Msg, log zerolog.Logger) {
	if err := msg.Ack(); err != nil && !isClosed(err) {
		log.Warn().Err(err).Msg("ack failed; the message will be redelivered and skipped as a duplicate")
	}
}
