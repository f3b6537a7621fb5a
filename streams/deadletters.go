package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// DeadLetterSubjectPrefix is the first token of every dead-letter subject:
// heartbeats_dlq.<processor>. It is outside SubjectPrefix, so the
// processors' consumers never see a parked entry.
const DeadLetterSubjectPrefix = "heartbeats_dlq"

// DeadLetterSubject is where a processor parks what its sink refused.
func DeadLetterSubject(processor string) string {
	return DeadLetterSubjectPrefix + "." + processor
}

// DeadLetterStreamConfig is the HEARTBEATS_DLQ stream as Ensure declares
// it: the main stream's storage, retention and replicas, so that an entry
// lasts as long as the heartbeats it came from.
func (c Config) DeadLetterStreamConfig() jetstream.StreamConfig {
	sc := c.StreamConfig()
	sc.Name = c.DeadLetterStream
	sc.Description = "heartlog dead letters: heartbeats a sink can never store, one per message; see heartlog dlq"
	sc.Subjects = []string{DeadLetterSubjectPrefix + ".>"}
	// An undecodable message is parked whole, with headers on top.
	sc.MaxMsgSize, sc.Metadata = -1, nil
	// No MaxBytes of its own: the server reserves a stream's MaxBytes
	// against max_file_store, and the main stream's 16 GiB twice is over
	// nats.conf's 20G, so Ensure would fail. Unbounded, the dead letters
	// use the store the main stream did not reserve, and cannot eat into
	// the main stream's room.
	sc.MaxBytes = -1
	return sc
}

// ReasonUndecodable is the reason of a parked message that is not a Batch.
const ReasonUndecodable = "undecodable"

// Headers of a dead-letter message. The payload is a Batch of the one
// parked heartbeat (its day, partition and the user's object prefix), or
// for an undecodable message its bytes as they were.
const (
	hdrProcessor = "Heartlog-Processor"
	hdrReason    = "Heartlog-Reason"
	hdrError     = "Heartlog-Error"
	hdrSubject   = "Heartlog-Subject"
	hdrSeq       = "Heartlog-Stream-Seq"
	hdrParkedAt  = "Heartlog-Parked-At"
	hdrUser      = "Heartlog-User"
	hdrDay       = "Heartlog-Day"
	hdrHeartbeat = "Heartlog-Heartbeat"
	hdrRetryOf   = "Heartlog-Retry-Of"
	hdrFormat    = "Heartlog-Format"    // batch or raw
	hdrRawBytes  = "Heartlog-Raw-Bytes" // set when Raw was cut to maxRawBytes
)

// maxErrorBytes bounds the error text kept in a header; maxRawBytes the
// undecodable message kept, so that an entry stays under nats.conf's 1 MB
// max_payload.
const (
	maxErrorBytes = 1024
	maxRawBytes   = 1<<20 - 16<<10
)

// DeadLetter is one parked entry.
type DeadLetter struct {
	// Seq is the entry's sequence in the dead-letter stream (set by Park
	// and by reads).
	Seq       uint64
	Processor string // whose sink refused it
	Reason    string // short stable label: "postgres 22003", "undecodable"
	Error     string // the sink's error text
	// Subject and StreamSeq are where the heartbeat was in HEARTBEATS.
	Subject   string
	StreamSeq uint64
	ParkedAt  time.Time
	// RetryOf is the entry this one replaces: a retry that failed again.
	RetryOf uint64
	// Batch holds the heartbeat, as the sink gets it; nil when Raw is set.
	Batch *heartlogv1.Batch
	// Raw is a message that did not decode, byte for byte.
	Raw []byte
}

// User is the parked heartbeat's user id ("" for an undecodable message).
func (d DeadLetter) User() string {
	if d.Batch == nil || len(d.Batch.Heartbeats) == 0 {
		return ""
	}
	return d.Batch.Heartbeats[0].UserId
}

// Day is the parked heartbeat's UTC day, YYYYMMDD.
func (d DeadLetter) Day() string {
	if d.Batch != nil {
		return d.Batch.Day
	}
	if day, _, err := ParseSubject(d.Subject); err == nil {
		return day
	}
	return ""
}

// DeadLetters parks entries in the dead-letter stream and reads them back.
type DeadLetters struct {
	js     jetstream.JetStream
	stream string
}

// NewDeadLetters works on cfg's dead-letter stream, which Ensure creates.
func NewDeadLetters(js jetstream.JetStream, cfg Config) *DeadLetters {
	return &DeadLetters{js: js, stream: cfg.DeadLetterStream}
}

// Park stores d durably (it returns once the server acked it) and returns
// its sequence. Parking the same heartbeat of the same message twice within
// the duplicate window stores it once.
func (dl *DeadLetters) Park(ctx context.Context, d DeadLetter) (uint64, error) {
	msg, id, err := d.message()
	if err != nil {
		return 0, err
	}
	ack, err := dl.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(dl.stream))
	if err != nil {
		return 0, fmt.Errorf("streams: park in %s: %w", dl.stream, err)
	}
	return ack.Sequence, nil
}

func (d DeadLetter) message() (*nats.Msg, string, error) {
	h := nats.Header{}
	h.Set(hdrProcessor, d.Processor)
	h.Set(hdrReason, d.Reason)
	h.Set(hdrError, truncate(d.Error, maxErrorBytes))
	h.Set(hdrSubject, d.Subject)
	h.Set(hdrSeq, strconv.FormatUint(d.StreamSeq, 10))
	at := d.ParkedAt
	if at.IsZero() {
		at = time.Now()
	}
	h.Set(hdrParkedAt, at.UTC().Format(time.RFC3339Nano))
	id := d.Processor + "/" + strconv.FormatUint(d.StreamSeq, 10)
	var data []byte
	if d.Batch != nil {
		var err error
		if data, err = EncodeBatch(d.Batch); err != nil {
			return nil, "", fmt.Errorf("streams: encode dead letter: %w", err)
		}
		h.Set("Content-Type", ContentType)
		h.Set(hdrFormat, "batch")
		h.Set(hdrUser, d.User())
		h.Set(hdrDay, d.Batch.Day)
		for _, hb := range d.Batch.Heartbeats {
			h.Add(hdrHeartbeat, hb.Id)
			id += "/" + hb.Id
		}
	} else {
		data = d.Raw
		if len(data) > maxRawBytes {
			// Headers on top of a message near the server's max_payload
			// would be refused for ever, and hold the partition back. The
			// whole message stays in HEARTBEATS at StreamSeq until MaxAge.
			h.Set(hdrRawBytes, strconv.Itoa(len(data)))
			data = data[:maxRawBytes]
		}
		h.Set("Content-Type", "application/octet-stream")
		h.Set(hdrFormat, "raw")
		id += "/raw"
	}
	if d.RetryOf > 0 {
		// A retry that fails again must be a new entry even inside the
		// duplicate window: the one it replaces is deleted next.
		h.Set(hdrRetryOf, strconv.FormatUint(d.RetryOf, 10))
		id += "/retry-of-" + strconv.FormatUint(d.RetryOf, 10)
	}
	return &nats.Msg{Subject: DeadLetterSubject(d.Processor), Header: h, Data: data}, id, nil
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(strings.ReplaceAll(s, "\r", " "), "\n", " "), "?")
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// ErrNoDeadLetter means no entry has the sequence asked for.
var ErrNoDeadLetter = errors.New("streams: no dead letter with that sequence")

// Get reads one entry by its sequence.
func (dl *DeadLetters) Get(ctx context.Context, seq uint64) (DeadLetter, error) {
	s, err := dl.js.Stream(ctx, dl.stream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("streams: %s: %w", dl.stream, err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("%w: %d", ErrNoDeadLetter, seq)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("streams: read dead letter %d: %w", seq, err)
	}
	return decodeDeadLetter(raw)
}

// List reads the entries parked by processor (every processor if empty),
// in order, up to the last one parked when List started: entries parked
// while it runs (a retry failing again) are not read.
func (dl *DeadLetters) List(ctx context.Context, processor string) ([]DeadLetter, error) {
	s, err := dl.js.Stream(ctx, dl.stream)
	if err != nil {
		return nil, fmt.Errorf("streams: %s: %w", dl.stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("streams: %s: %w", dl.stream, err)
	}
	filter := DeadLetterSubjectPrefix + ".>"
	if processor != "" {
		filter = DeadLetterSubject(processor)
	}
	var out []DeadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("streams: read dead letters: %w", err)
		}
		if raw.Sequence > info.State.LastSeq {
			break
		}
		d, err := decodeDeadLetter(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		seq = raw.Sequence + 1
	}
	return out, nil
}

// Delete removes one entry.
func (dl *DeadLetters) Delete(ctx context.Context, seq uint64) error {
	s, err := dl.js.Stream(ctx, dl.stream)
	if err != nil {
		return fmt.Errorf("streams: %s: %w", dl.stream, err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return fmt.Errorf("%w: %d", ErrNoDeadLetter, seq)
		}
		return fmt.Errorf("streams: delete dead letter %d: %w", seq, err)
	}
	return nil
}

func decodeDeadLetter(raw *jetstream.RawStreamMsg) (DeadLetter, error) {
	h := raw.Header
	d := DeadLetter{
		Seq:       raw.Sequence,
		Processor: h.Get(hdrProcessor),
		Reason:    h.Get(hdrReason),
		Error:     h.Get(hdrError),
		Subject:   h.Get(hdrSubject),
	}
	if d.Processor == "" {
		d.Processor = strings.TrimPrefix(raw.Subject, DeadLetterSubjectPrefix+".")
	}
	d.StreamSeq, _ = strconv.ParseUint(h.Get(hdrSeq), 10, 64)
	d.RetryOf, _ = strconv.ParseUint(h.Get(hdrRetryOf), 10, 64)
	if d.ParkedAt, _ = time.Parse(time.RFC3339Nano, h.Get(hdrParkedAt)); d.ParkedAt.IsZero() {
		d.ParkedAt = raw.Time
	}
	if h.Get(hdrFormat) == "raw" {
		d.Raw = raw.Data
		return d, nil
	}
	b, err := DecodeBatch(raw.Data)
	if err != nil {
		return d, fmt.Errorf("streams: dead letter %d: %w", raw.Sequence, err)
	}
	d.Batch = b
	return d, nil
}
