package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ErrUnavailable means the log did not confirm that it stored the
// heartbeats: the server is unreachable, or it did not ack in time. Nothing
// may be acknowledged to a client; it should retry (the sinks deduplicate).
var ErrUnavailable = errors.New("streams: log unavailable")

// PublisherOptions tune group commit. Zero fields take the defaults.
type PublisherOptions struct {
	// Linger is how long a flush waits for more requests to join it once the
	// first has arrived (default 500µs). Under load, requests also pile up
	// while every flush slot is busy, so batches grow with the load.
	Linger time.Duration
	// MaxInFlight is how many flushes may wait for their acks at once
	// (default 4).
	MaxInFlight int
	// MaxMessageBytes splits a (day, partition) batch into several messages
	// above this size (default 512 KiB; the stream refuses above 1 MiB).
	MaxMessageBytes int
	// MaxFlushHeartbeats ends a flush's collection early (default 20000).
	MaxFlushHeartbeats int
	// AckTimeout bounds the wait for the server's acks (default 5s).
	AckTimeout time.Duration
}

func (o *PublisherOptions) setDefaults() {
	if o.Linger <= 0 {
		o.Linger = 500 * time.Microsecond
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 512 << 10
	}
	if o.MaxFlushHeartbeats <= 0 {
		o.MaxFlushHeartbeats = 20000
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 5 * time.Second
	}
}

// Publisher appends heartbeats to the stream. Concurrent Publish calls are
// coalesced for a moment (group commit) into one message per (day,
// partition): with fsync on every write, the number of messages, not of
// heartbeats, is what bounds durable ingest.
//
// Publish returns nil only after the server acked every message that holds
// the caller's heartbeats. It is safe for concurrent use.
type Publisher struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	cfg   Config
	opts  PublisherOptions
	reqs  chan *request
	slots chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

type request struct {
	heartbeats []*heartlogv1.Heartbeat
	prefixes   map[string]string
	result     chan error
}

// NewPublisher starts a publisher; Close stops it.
func NewPublisher(nc *nats.Conn, js jetstream.JetStream, cfg Config, opts PublisherOptions) *Publisher {
	opts.setDefaults()
	p := &Publisher{
		nc: nc, js: js, cfg: cfg, opts: opts,
		reqs:  make(chan *request, 1024),
		slots: make(chan struct{}, opts.MaxInFlight),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go p.run()
	return p
}

// Publish durably appends heartbeats, which must be prepared (id, user and
// day set). prefixes maps each user id among them to its day-file prefix.
func (p *Publisher) Publish(ctx context.Context, hbs []*heartlogv1.Heartbeat, prefixes map[string]string) error {
	if len(hbs) == 0 {
		return nil
	}
	if st := p.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: connection is %s", ErrUnavailable, st)
	}
	r := &request{heartbeats: hbs, prefixes: prefixes, result: make(chan error, 1)}
	select {
	case p.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stop:
		return fmt.Errorf("%w: publisher closed", ErrUnavailable)
	}
	select {
	case err := <-r.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting requests and waits for flushes in flight.
func (p *Publisher) Close() {
	close(p.stop)
	<-p.done
	for range p.opts.MaxInFlight {
		p.slots <- struct{}{}
	}
}

func (p *Publisher) run() {
	defer close(p.done)
	for {
		var first *request
		select {
		case first = <-p.reqs:
		case <-p.stop:
			return
		}
		group := p.collect(first)
		go func() {
			p.flush(group)
			<-p.slots
		}()
	}
}

// collect gathers requests for Linger, and for as long as every flush slot
// is busy, then takes a slot.
func (p *Publisher) collect(first *request) []*request {
	group := []*request{first}
	n := len(first.heartbeats)
	linger := time.NewTimer(p.opts.Linger)
	defer linger.Stop()
	lingering := true
	for {
		if n >= p.opts.MaxFlushHeartbeats {
			p.slots <- struct{}{}
			return group
		}
		var slot chan struct{}
		if !lingering {
			slot = p.slots // only ready to go once Linger has passed
		}
		select {
		case r := <-p.reqs:
			group = append(group, r)
			n += len(r.heartbeats)
		case <-linger.C:
			lingering = false
		case slot <- struct{}{}:
			return group
		}
	}
}

type batchKey struct {
	day       string
	partition uint32
}

// message is one log message and the requests whose heartbeats it holds.
type message struct {
	batch   *heartlogv1.Batch
	size    int
	waiters []*request
}

func (p *Publisher) flush(group []*request) {
	msgs := p.split(group)
	errs := make(map[*request]error, len(group))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := p.publishAsync(m.batch)
		if err != nil {
			for _, r := range m.waiters {
				errs[r] = err
			}
			continue
		}
		futures[i] = f
	}
	deadline, cancel := context.WithTimeout(context.Background(), p.opts.AckTimeout)
	defer cancel()
	for i, f := range futures {
		if f == nil {
			continue
		}
		if err := awaitAck(deadline, f); err != nil {
			for _, r := range msgs[i].waiters {
				errs[r] = err
			}
		}
	}
	for _, r := range group {
		r.result <- errs[r]
	}
}

// split groups the heartbeats of the requests into messages of one (day,
// partition), none larger than MaxMessageBytes.
func (p *Publisher) split(group []*request) []*message {
	open := make(map[batchKey]*message)
	var out []*message
	for _, r := range group {
		for _, hb := range r.heartbeats {
			k := batchKey{day: heartbeat.Day(hb), partition: Partition(hb.UserId, p.cfg.Partitions)}
			size := proto.Size(hb) + 8
			m := open[k]
			if m == nil || m.size+size > p.opts.MaxMessageBytes {
				m = &message{batch: &heartlogv1.Batch{Day: k.day, Partition: k.partition, ObjectPrefixes: map[string]string{}}}
				open[k] = m
				out = append(out, m)
			}
			m.batch.Heartbeats = append(m.batch.Heartbeats, hb)
			m.size += size
			if _, ok := m.batch.ObjectPrefixes[hb.UserId]; !ok {
				m.batch.ObjectPrefixes[hb.UserId] = r.prefixes[hb.UserId]
			}
			if len(m.waiters) == 0 || m.waiters[len(m.waiters)-1] != r {
				m.waiters = append(m.waiters, r)
			}
		}
	}
	return out
}

func (p *Publisher) publishAsync(b *heartlogv1.Batch) (jetstream.PubAckFuture, error) {
	msg, err := BatchMsg(b)
	if err != nil {
		return nil, err
	}
	return PublishAsync(p.js, p.cfg, msg, MsgID(b))
}

// BatchMsg is the log message of one batch of one (day, partition): its
// subject, encoded bytes and content type.
func BatchMsg(b *heartlogv1.Batch) (*nats.Msg, error) {
	data, err := EncodeBatch(b)
	if err != nil {
		return nil, fmt.Errorf("streams: encode batch: %w", err)
	}
	msg := &nats.Msg{Subject: Subject(b.Day, b.Partition), Data: data, Header: nats.Header{}}
	msg.Header.Set("Content-Type", ContentType)
	return msg, nil
}

// PublishAsync publishes a message that BatchMsg made, with its batch's
// MsgID, as Publisher does: for writers of their own batches (an import),
// which must look in the log exactly like ingest's.
func PublishAsync(js jetstream.JetStream, cfg Config, msg *nats.Msg, msgID string) (jetstream.PubAckFuture, error) {
	f, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(cfg.Stream))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return f, nil
}

func awaitAck(deadline context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	case <-deadline.Done():
		return fmt.Errorf("%w: no ack within the timeout", ErrUnavailable)
	}
}
