package processors

import (
	"context"
	"errors"
	"testing"

	"github.com/rs/zerolog"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// holdAll is a sink that holds back every batch it is given, as the
// Postgres sink does when a shard database is down.
type holdAll struct{ got []*heartlogv1.Batch }

func (h *holdAll) Name() string { return "hold-all" }
func (h *holdAll) Commit(_ context.Context, batches []*heartlogv1.Batch) error {
	h.got = batches
	rej := []Rejection{{Batch: batches[0], Heartbeat: batches[0].Heartbeats[0], Reason: "test"}}
	return &Held{Batches: append([]*heartlogv1.Batch(nil), batches...), Rejected: rej, Err: errors.New("down")}
}

// TestWithoutDeleted: the sink never sees a deleted user's heartbeat, a
// batch of deleted users alone is not committed at all, and a Held names
// (and its rejections) the caller's batches, not the copies the filter
// made: the caller maps them to its messages.
func TestWithoutDeleted(t *testing.T) {
	hb := func(user string) *heartlogv1.Heartbeat { return &heartlogv1.Heartbeat{UserId: user, Id: user + "-1"} }
	mixed := &heartlogv1.Batch{Day: "20260101", Heartbeats: []*heartlogv1.Heartbeat{hb("gone"), hb("kept")}}
	kept := &heartlogv1.Batch{Day: "20260101", Heartbeats: []*heartlogv1.Heartbeat{hb("kept")}}
	dead := &heartlogv1.Batch{Day: "20260101", Heartbeats: []*heartlogv1.Heartbeat{hb("gone")}}
	inner := &holdAll{}
	sink := WithoutDeleted(inner, func(id string) bool { return id == "gone" }, zerolog.Nop())
	err := sink.Commit(context.Background(), []*heartlogv1.Batch{mixed, kept, dead})
	if len(inner.got) != 2 || inner.got[1] != kept || len(inner.got[0].Heartbeats) != 1 || inner.got[0].Heartbeats[0].UserId != "kept" {
		t.Fatalf("the sink got %v", inner.got)
	}
	var held *Held
	if !errors.As(err, &held) || len(held.Batches) != 2 || held.Batches[0] != mixed || held.Batches[1] != kept || held.Rejected[0].Batch != mixed {
		t.Fatalf("Held = %+v, want the caller's batches", held)
	}
	inner.got = nil
	if err := sink.Commit(context.Background(), []*heartlogv1.Batch{dead}); err != nil || inner.got != nil {
		t.Fatalf("a batch of deleted users only: %v, the sink got %v", err, inner.got)
	}
}
