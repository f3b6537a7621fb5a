package postgres

import (
	"errors"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"heartlog/pgheartbeats"
	"heartlog/processors"
)

// A unit test of the classification alone: a row routed to a day whose
// partition the janitor detached is retried (the next attempt skips the
// day), in whatever language the server words the error; a CHECK the row
// itself breaks is permanent.
func TestClassifyMissingPartitionIsTransientInAnyLanguage(t *testing.T) {
	s := &Sink{known: map[string]bool{"20261130": true}}
	for _, msg := range []string{
		`no partition of relation "heartbeats" found for row`,
		`keine Partition von Relation »heartbeats« für Zeile gefunden`,
	} {
		err := s.classify(&pgconn.PgError{Code: pgerrcode.CheckViolation, Message: msg, TableName: "heartbeats"})
		if errors.Is(err, processors.ErrPermanent) {
			t.Errorf("%q: permanent, want retried", msg)
		}
	}
	if len(s.known) != 0 {
		t.Error("the partitions known were kept after one went away")
	}
	err := s.classify(&pgconn.PgError{Code: pgerrcode.CheckViolation, Message: "new row violates check constraint", ConstraintName: "heartbeats_lines_check"})
	if !errors.Is(err, processors.ErrPermanent) {
		t.Errorf("a CHECK the row breaks: %v, want permanent", err)
	}
	// The fence of `shards move` is a CHECK too, but the day moved: not
	// the row's fault.
	err = s.classify(&pgconn.PgError{Code: pgerrcode.CheckViolation, Message: "new row violates check constraint",
		ConstraintName: pgheartbeats.FenceConstraint, TableName: "heartbeats_20261130"})
	var moved *pgheartbeats.MovedError
	if errors.Is(err, processors.ErrPermanent) || !errors.As(err, &moved) || moved.Day != "20261130" {
		t.Errorf("the fence of a moved day: %v, want a MovedError for 20261130", err)
	}
}
