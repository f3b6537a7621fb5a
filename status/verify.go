package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/shards"
	"heartlog/streams"
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

// VerifyLock is the locks-bucket key that the scheduled backup verify
// holds while it runs, so that of several `heartlog process` instances
// one verifies at a time: each verify reads the whole backup, and the
// Space's request ceiling is shared with the live backup.
const VerifyLock = "backup.verify"

// verifyLockTTL is how long a verifier that stopped renewing (killed,
// cut off from NATS) keeps the others from verifying.
const verifyLockTTL = time.Minute

// ErrVerifiedRecently is why a scheduled verify is skipped when another
// process finished one less than half a period ago.
var ErrVerifiedRecently = errors.New("status: the backup was verified less than half a period ago (by another process)")

// ClaimVerify decides whether this process runs the scheduled verify of
// period now. It fails with an error matching shards.ErrHeld when another
// process is verifying, and ErrVerifiedRecently when the last recorded
// verify finished less than period/2 ago without an error. Otherwise it
// takes VerifyLock for owner: run is cancelled if the lock is lost, and
// release ends and gives up the lock.
func ClaimVerify(ctx context.Context, js jetstream.JetStream, sc streams.Config, owner string, period time.Duration) (run context.Context, release func(), err error) {
	locks, err := js.KeyValue(ctx, sc.LocksBucket)
	if err != nil {
		return nil, nil, fmt.Errorf("status: locks bucket %s: %w", sc.LocksBucket, err)
	}
	lock, err := shards.Acquire(ctx, locks, VerifyLock, owner, verifyLockTTL, shards.WithJetStream(js))
	if err != nil {
		return nil, nil, err
	}
	// Read under the lock: a verify that finished just before it was
	// taken is seen.
	if last := LastVerify(ctx, js); last.Ran() && last.Error == "" && time.Since(last.At) < period/2 {
		_ = lock.Release(ctx)
		return nil, nil, fmt.Errorf("%w: at %s", ErrVerifiedRecently, last.At.Format(time.RFC3339))
	}
	run, stop := lock.Keep(ctx, 0)
	return run, func() {
		stop()
		_ = lock.Release(context.WithoutCancel(ctx))
	}, nil
}
