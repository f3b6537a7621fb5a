package status_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"heartlog/shards"
	"heartlog/status"
)

// TestClaimVerifyOneAtATime: of two processes whose schedules come due
// together, one verifies and the other skips; once a verify is recorded,
// the other skips the rest of that period, but not after a verify that
// failed, nor half a period on.
func TestClaimVerifyOneAtATime(t *testing.T) {
	js, sc := withTopology(t)
	ctx := context.Background()
	const period = 24 * time.Hour
	run, release, err := status.ClaimVerify(ctx, js, sc, "verify@a", period)
	if err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if _, _, err := status.ClaimVerify(ctx, js, sc, "verify@b", period); !errors.Is(err, shards.ErrHeld) {
		t.Fatalf("second claim while the first verifies: %v, want ErrHeld", err)
	}
	if run.Err() != nil {
		t.Fatal("the claim's context ended while the lock is held")
	}
	record := func(v status.Verify) {
		t.Helper()
		if err := status.RecordVerify(ctx, js, 1, v); err != nil {
			t.Fatal(err)
		}
	}
	record(status.Verify{At: time.Now().UTC(), Files: 3})
	release()
	if run.Err() == nil {
		t.Error("release left the claim's context running")
	}
	if _, _, err := status.ClaimVerify(ctx, js, sc, "verify@b", period); !errors.Is(err, status.ErrVerifiedRecently) {
		t.Fatalf("claim just after a recorded verify: %v, want ErrVerifiedRecently", err)
	}
	for _, v := range []status.Verify{
		{At: time.Now().UTC(), Error: "backup unreachable"}, // failed: try again
		{At: time.Now().UTC().Add(-period / 2), Files: 3},   // half a period ago
	} {
		record(v)
		_, release, err := status.ClaimVerify(ctx, js, sc, "verify@b", period)
		if err != nil {
			t.Fatalf("claim after %+v: %v, want it to verify", v, err)
		}
		release()
	}
}
