package processors

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// DeletedFunc reports whether a user is deleted (users.Directory.Deleted).
// It is called for every heartbeat, so it must answer from memory.
type DeletedFunc func(userID string) bool

var droppedDeleted = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "heartlog_processor_deleted_user_heartbeats_total",
	Help: "Heartbeats of deleted users (`heartlog users delete`) that a sink dropped instead of storing.",
}, []string{"processor"})

// WithoutDeleted wraps sink so that the heartbeats of deleted users never
// reach it: they are dropped (and their messages acked as committed). The
// stream keeps a deleted user's heartbeats for weeks, and every writer of
// heartbeats (the live processors, replay, a day's compaction, the late
// path, `dlq retry`) commits through a sink, so this is what keeps a
// deleted user from coming back. With a nil deleted it returns sink.
func WithoutDeleted(sink Sink, deleted DeletedFunc, log zerolog.Logger) Sink {
	if deleted == nil {
		return sink
	}
	return &withoutDeleted{Sink: sink, deleted: deleted, log: log.With().Str("processor", sink.Name()).Logger(),
		dropped: droppedDeleted.WithLabelValues(sink.Name())}
}

type withoutDeleted struct {
	Sink
	deleted DeletedFunc
	log     zerolog.Logger
	dropped prometheus.Counter
}

func (w *withoutDeleted) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	kept, copies, dropped := dropDeleted(batches, w.deleted)
	if dropped > 0 {
		w.dropped.Add(float64(dropped))
		w.log.Debug().Int("heartbeats", dropped).Msg("dropped heartbeats of deleted users")
	}
	if len(kept) == 0 {
		return nil
	}
	err := w.Sink.Commit(ctx, kept)
	if len(copies) > 0 {
		originals(err, copies)
	}
	return err
}

// originals makes a Held or Rejected name the batches Commit was given
// (the caller maps them to its messages) instead of the copies dropDeleted
// made.
func originals(err error, copies map[*heartlogv1.Batch]*heartlogv1.Batch) {
	orig := func(b *heartlogv1.Batch) *heartlogv1.Batch {
		if o, ok := copies[b]; ok {
			return o
		}
		return b
	}
	var rejections []Rejection
	var held *Held
	var rejected *Rejected
	if errors.As(err, &held) {
		for i, b := range held.Batches {
			held.Batches[i] = orig(b)
		}
		rejections = held.Rejected
	} else if errors.As(err, &rejected) {
		rejections = rejected.Heartbeats
	}
	for i := range rejections {
		rejections[i].Batch = orig(rejections[i].Batch)
	}
}

// dropDeleted returns batches without the heartbeats of deleted users, the
// original of each batch it copied to leave some out, and how many it took
// out. A batch that keeps all of its heartbeats is passed as it is; one
// that keeps none is left out.
func dropDeleted(batches []*heartlogv1.Batch, deleted DeletedFunc) ([]*heartlogv1.Batch, map[*heartlogv1.Batch]*heartlogv1.Batch, int) {
	out := batches[:0:0]
	var copies map[*heartlogv1.Batch]*heartlogv1.Batch
	n := 0
	for _, b := range batches {
		keep := b.GetHeartbeats()[:0:0]
		for _, hb := range b.GetHeartbeats() {
			if deleted(hb.GetUserId()) {
				n++
				continue
			}
			keep = append(keep, hb)
		}
		switch {
		case len(keep) == len(b.GetHeartbeats()):
			out = append(out, b)
		case len(keep) > 0:
			c := &heartlogv1.Batch{Day: b.GetDay(), Partition: b.GetPartition(), Heartbeats: keep, ObjectPrefixes: b.GetObjectPrefixes()}
			if copies == nil {
				copies = map[*heartlogv1.Batch]*heartlogv1.Batch{}
			}
			copies[c] = b
			out = append(out, c)
		}
	}
	return out, copies, n
}
