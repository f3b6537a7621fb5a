package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The backup verifier (heartlog backup verify, and its schedule inside
// heartlog process) records each run's outcome with RecordVerify; status
// reads the last one. It lives in a KV bucket of its own, OpsBucket, under
// VerifyKey: the shards bucket is the days', the locks bucket the locks'.
const (
	// OpsBucket holds operational records (default name "ops").
	OpsBucket = "ops"
	// VerifyKey is the key of the last backup verify's Verify.
	VerifyKey = "backup.verify"
	// VerifyStaleAfter is how old the last verify may be before status
	// warns (the verifier runs daily by default).
	VerifyStaleAfter = 48 * time.Hour
)

// Verify is a backup verify's outcome, the JSON value under VerifyKey.
// The zero value (At zero) is "not run".
type Verify struct {
	At time.Time `json:"at,omitzero"`
	// Took is how long it ran (a Go duration).
	Took Duration `json:"took,omitempty"`
	// Files is how many day files it compared; Missing, Stale and Extra
	// how many backup files were absent, differed, or had no day file.
	Files   int `json:"files"`
	Missing int `json:"missing"`
	Stale   int `json:"stale"`
	Extra   int `json:"extra"`
	// Error is why the run did not finish, if so.
	Error string `json:"error,omitempty"`
	// ReadError is why status could not read the record (never stored).
	ReadError string `json:"read_error,omitempty"`
}

// Ran reports whether a verify result was recorded.
func (v Verify) Ran() bool { return !v.At.IsZero() }

// RecordVerify stores v as the last backup verify's outcome, creating
// OpsBucket (with replicas) if needed.
func RecordVerify(ctx context.Context, js jetstream.JetStream, replicas int, v Verify) error {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      OpsBucket,
		Description: "heartlog operational records: the last backup verify",
		History:     10,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return fmt.Errorf("status: ensure KV bucket %s: %w", OpsBucket, err)
	}
	v.ReadError = ""
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, VerifyKey, b); err != nil {
		return fmt.Errorf("status: record %s: %w", VerifyKey, err)
	}
	return nil
}

// LastVerify reads the last recorded verify: the zero Verify when none
// ran, with ReadError set when the record could not be read.
func LastVerify(ctx context.Context, js jetstream.JetStream) Verify {
	kv, err := js.KeyValue(ctx, OpsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return Verify{}
	}
	if err != nil {
		return Verify{ReadError: err.Error()}
	}
	e, err := kv.Get(ctx, VerifyKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Verify{}
	}
	if err != nil {
		return Verify{ReadError: err.Error()}
	}
	var v Verify
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return Verify{ReadError: fmt.Sprintf("%s: %v", VerifyKey, err)}
	}
	return v
}
