package shards

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// steps lists every Step, in order.
var steps = []Step{StepProve, StepDrain, StepSettle, StepDetach, StepDrop, StepMarkDropped}

// ParseStep returns the step named as Step.String names it ("prove",
// "drain", "settle", "detach", "drop", "mark-dropped").
func ParseStep(name string) (Step, error) {
	var names []string
	for _, s := range steps {
		if s.String() == name {
			return s, nil
		}
		names = append(names, s.String())
	}
	return 0, fmt.Errorf("shards: no step %q (have %s)", name, strings.Join(names, ", "))
}

// PauseAfter is an Options.AfterStep hook for fault tests run against real
// processes (`make chaos`, HEARTLOG_DEBUG_JANITOR_PAUSE): after step of any
// day it logs "shard janitor paused" and waits, holding its lock, until ctx
// ends, so that the test can kill the process exactly there. It then stops
// the janitor as a kill would (see AfterStep).
func PauseAfter(ctx context.Context, step Step, log zerolog.Logger) func(day string, s Step) error {
	return func(day string, s Step) error {
		if s != step {
			return nil
		}
		log.Warn().Str("day", DisplayDay(day)).Stringer("step", s).Msg("shard janitor paused (HEARTLOG_DEBUG_JANITOR_PAUSE); waiting to be killed")
		<-ctx.Done()
		return fmt.Errorf("shards: paused after %s of %s", s, DisplayDay(day))
	}
}
