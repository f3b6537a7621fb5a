package heartlogtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"heartlog/heartbeat"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/users"
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

// UserDay is one UTC day of a fresh user (random id and key prefix), for
// tests that call a day-file sink's Commit or the read path directly.
type UserDay struct {
	User   users.User
	Day    string // YYYYMMDD
	Start  time.Time
	Prefix string
}

// NewUserDay returns a day some days ago of a user that exists nowhere.
func NewUserDay(daysAgo int) UserDay {
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -daysAgo)
	u := users.User{ID: uuid.NewString(), ObjectPrefix: uuid.NewString()[:8]}
	return UserDay{User: u, Day: start.Format(heartbeat.DayLayout), Start: start, Prefix: u.ObjectPrefix}
}

// Key is the day file's key.
func (d UserDay) Key() string { return dayfile.Key(d.Prefix, d.User.ID, d.Day) }

// Beats are the day's heartbeats from..to-1, one a minute from 09:00.
func (d UserDay) Beats(t testing.TB, from, to int) []*heartlogv1.Heartbeat {
	t.Helper()
	var out []*heartlogv1.Heartbeat
	for i := from; i < to; i++ {
		out = append(out, Heartbeat(t, d.User.ID, fmt.Sprintf("/src/f%d.go", i), d.Start.Add(time.Duration(9*60+i)*time.Minute)))
	}
	return out
}

// Batch is hbs as the stream would carry them.
func (d UserDay) Batch(hbs []*heartlogv1.Heartbeat) []*heartlogv1.Batch {
	return []*heartlogv1.Batch{{Day: d.Day, ObjectPrefixes: map[string]string{d.User.ID: d.Prefix}, Heartbeats: hbs}}
}

// DayFile is the day file of the heartbeats, as the sinks write it.
func DayFile(t testing.TB, hbs ...[]*heartlogv1.Heartbeat) []byte {
	t.Helper()
	var all []*heartlogv1.Heartbeat
	for _, h := range hbs {
		all = append(all, h...)
	}
	merged, _ := dayfile.Merge(nil, all)
	data, err := dayfile.Encode(merged)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
