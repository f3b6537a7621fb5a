package dayfile_test

import (
	"errors"
	"math"
	"testing"

	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

func TestLimitsMergeFillsInOrderAndRefusesTheTail(t *testing.T) {
	day := realisticDay(30, 7)
	existing, _ := dayfile.Merge(day[:10], nil)
	data, err := dayfile.Encode(existing)
	if err != nil {
		t.Fatal(err)
	}
	_, size, err := dayfile.DefaultLimits.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	limits := dayfile.Limits{MaxHeartbeats: 15, MaxBytes: 1 << 30}
	incoming := append([]*heartlogv1.Heartbeat{}, day[10:]...)
	incoming = append(incoming, day[3]) // already in the file: not refused, not added twice
	m := limits.Merge(existing, size, incoming)
	merged, changed, refused := m.Heartbeats, m.Changed, m.Refused
	if !changed || len(merged) != 15 || len(refused) != 15 {
		t.Fatalf("changed %v, %d merged, %d refused; want 15 and 15", changed, len(merged), len(refused))
	}
	want, _ := dayfile.Merge(nil, day)
	// Kept: the file's ten and the five earliest new ones; refused: the rest.
	fresh, _ := dayfile.Merge(nil, day[10:])
	keep, _ := dayfile.Merge(existing, fresh[:5])
	equalSets(t, merged, keep)
	for i, r := range refused {
		if !errors.Is(r.Err, dayfile.ErrTooLarge) || r.Heartbeat != fresh[5+i] {
			t.Fatalf("refusal %d: %v for %s, want ErrTooLarge for %s", i, r.Err, r.Heartbeat.Id, fresh[5+i].Id)
		}
	}
	if len(want) != 30 {
		t.Fatal("test day has duplicates")
	}

	// The byte limit: a file already at its size takes nothing new.
	m = dayfile.Limits{MaxBytes: size}.Merge(existing, size, day[10:12])
	merged, changed, refused = m.Heartbeats, m.Changed, m.Refused
	if changed || len(merged) != 10 || len(refused) != 2 {
		t.Fatalf("at the byte limit: changed %v, %d merged, %d refused", changed, len(merged), len(refused))
	}
}

func TestLimitsMergeRefusesWhatCannotBeEncoded(t *testing.T) {
	day := realisticDay(3, 9)
	bad := &heartlogv1.Heartbeat{Id: "nan", Time: math.NaN()}
	m := dayfile.DefaultLimits.Merge(nil, 0, append(day, bad))
	merged, refused := m.Heartbeats, m.Refused
	if len(merged) != 3 || len(refused) != 1 || !errors.Is(refused[0].Err, dayfile.ErrInvalid) {
		t.Fatalf("%d merged, refused %+v", len(merged), refused)
	}
	if _, err := dayfile.Encode(merged); err != nil {
		t.Fatal(err)
	}
}

func TestLimitsDecodeTooLargeIsNotCorrupt(t *testing.T) {
	day, _ := dayfile.Merge(nil, realisticDay(20, 3))
	data, err := dayfile.Encode(day)
	if err != nil {
		t.Fatal(err)
	}
	_, size, err := dayfile.DefaultLimits.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []dayfile.Limits{{MaxHeartbeats: 19}, {MaxBytes: size - 1}} {
		if _, _, err := l.Decode(data); !errors.Is(err, dayfile.ErrTooLarge) || errors.Is(err, dayfile.ErrCorrupt) {
			t.Fatalf("%+v: %v, want ErrTooLarge and not ErrCorrupt", l, err)
		}
	}
	if hbs, got, err := (dayfile.Limits{MaxHeartbeats: 20, MaxBytes: size}).Decode(data); err != nil || len(hbs) != 20 || got != size {
		t.Fatalf("at the limits: %d heartbeats, %d bytes, %v", len(hbs), got, err)
	}
}
