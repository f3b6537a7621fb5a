package heartlogtest

import (
	"testing"
	"time"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Heartbeat is a file heartbeat of user on entity at the given second,
// prepared as the API would store it (validated, with its id).
func Heartbeat(t testing.TB, user, entity string, at time.Time) *heartlogv1.Heartbeat {
	t.Helper()
	hb := &heartlogv1.Heartbeat{Entity: entity, Type: "file", Time: float64(at.Unix())}
	if err := heartbeat.DefaultLimits.Prepare(hb, heartbeat.Origin{UserID: user, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return hb
}
