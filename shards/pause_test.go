package shards_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"heartlog/shards"
)

func TestParseStepNamesEveryStep(t *testing.T) {
	for s := shards.StepProve; s <= shards.StepMarkDropped; s++ {
		got, err := shards.ParseStep(s.String())
		if err != nil || got != s {
			t.Fatalf("ParseStep(%q) = %v, %v; want %v", s.String(), got, err, s)
		}
	}
	if _, err := shards.ParseStep("detatch"); err == nil {
		t.Fatal("ParseStep accepted an unknown step")
	}
}

func TestPauseAfterHoldsOnlyItsStep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	hook := shards.PauseAfter(ctx, shards.StepDetach, zerolog.Nop())
	if err := hook("20240101", shards.StepDrain); err != nil {
		t.Fatalf("another step: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- hook("20240101", shards.StepDetach) }()
	select {
	case err := <-done:
		t.Fatalf("returned before its context ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a paused janitor must stop as a kill would (an error), not go on")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still paused 5s after its context ended")
	}
}
