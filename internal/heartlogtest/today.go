package heartlogtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"heartlog/users"
)

// MiddayZone is an IANA zone (Etc/GMT±N) in which now is between 06:00
// and 18:00, so that the hours around now are all of one local day: tests
// of today's totals pass at any hour.
func MiddayZone(now time.Time) string {
	off := 12 - now.UTC().Hour() // -11 .. 12
	switch {
	case off > 0:
		return fmt.Sprintf("Etc/GMT-%d", off) // POSIX signs: Etc/GMT-3 is UTC+3
	case off < 0:
		return fmt.Sprintf("Etc/GMT+%d", -off)
	}
	return "UTC"
}

// SetZone stores tz (and the timeout, if not 0) on the user and waits
// until the API's copy of the users bucket has it.
func (s *Service) SetZone(t testing.TB, id, key, tz string, timeout int) users.User {
	t.Helper()
	c := users.Change{TimeZone: &tz}
	if timeout != 0 {
		c.TimeoutMinutes = &timeout
	}
	u, err := s.Users.Update(context.Background(), id, c)
	if err != nil {
		t.Fatal(err)
	}
	h, err := users.HashKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if !Eventually(10*time.Second, func() bool {
		got, err := s.Directory.ByKey(context.Background(), h)
		return err == nil && got.TimeZone == u.TimeZone && got.TimeoutMinutes == u.TimeoutMinutes
	}) {
		t.Fatalf("the users bucket did not get %s's new settings", id)
	}
	return u
}
