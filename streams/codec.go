package streams

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ContentType is set on every message so that a reader can tell the format.
const ContentType = "application/x-protobuf; proto=heartlog.v1.Batch"

// EncodeBatch is the bytes of one log message.
func EncodeBatch(b *heartlogv1.Batch) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(b)
}

// DecodeBatch reads one log message. A message that does not decode is a bug
// or corruption, never retryable.
func DecodeBatch(data []byte) (*heartlogv1.Batch, error) {
	var b heartlogv1.Batch
	if err := proto.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("streams: decode batch: %w", err)
	}
	return &b, nil
}

// MsgID is the Nats-Msg-Id of a batch: a hash of its heartbeat ids in sorted
// order, so that a client retry inside the stream's duplicate window is
// dropped by the server.
func MsgID(b *heartlogv1.Batch) string {
	ids := make([]string, len(b.Heartbeats))
	for i, hb := range b.Heartbeats {
		ids[i] = hb.Id
	}
	slices.Sort(ids)
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
