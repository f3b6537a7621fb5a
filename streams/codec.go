package streams

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
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

// Field numbers of heartlog.v1.Batch and Heartbeat that BatchHasUser reads.
const (
	batchHeartbeatsField = 3
	heartbeatUserField   = 2
)

// BatchHasUser reports whether any heartbeat of an encoded batch belongs
// to a user for whom want is true, reading only the heartbeats' user ids
// off the wire: a reader that follows a few users of a partition skips
// the others' messages without decoding them.
func BatchHasUser(data []byte, want func(userID string) bool) (bool, error) {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return false, fmt.Errorf("streams: decode batch: %w", protowire.ParseError(n))
		}
		data = data[n:]
		if num != batchHeartbeatsField || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
				return false, fmt.Errorf("streams: decode batch: %w", protowire.ParseError(n))
			}
			data = data[n:]
			continue
		}
		hb, n := protowire.ConsumeBytes(data)
		if n < 0 {
			return false, fmt.Errorf("streams: decode batch: %w", protowire.ParseError(n))
		}
		data = data[n:]
		user, err := heartbeatUser(hb)
		if err != nil {
			return false, err
		}
		if want(user) {
			return true, nil
		}
	}
	return false, nil
}

// heartbeatUser is the user_id of one encoded heartbeat.
func heartbeatUser(hb []byte) (string, error) {
	user := ""
	for len(hb) > 0 {
		num, typ, n := protowire.ConsumeTag(hb)
		if n < 0 {
			return "", fmt.Errorf("streams: decode heartbeat: %w", protowire.ParseError(n))
		}
		hb = hb[n:]
		if num == heartbeatUserField && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(hb)
			if n < 0 {
				return "", fmt.Errorf("streams: decode heartbeat: %w", protowire.ParseError(n))
			}
			user = string(v) // the last one wins, as in proto.Unmarshal
			hb = hb[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, hb); n < 0 {
			return "", fmt.Errorf("streams: decode heartbeat: %w", protowire.ParseError(n))
		}
		hb = hb[n:]
	}
	return user, nil
}
