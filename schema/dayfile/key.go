package dayfile

import (
	"fmt"
	"strings"
	"time"

	"heartlog/heartbeat"
)

// keySuffix ends every day file's key.
const keySuffix = ".ndjson.gz"

// keyDayLayout is the form of the day in a key.
const keyDayLayout = time.DateOnly // 2006-01-02

// Key returns the object key of a user's day file:
// <prefix>/<user id>/<YYYY-MM-DD>.ndjson.gz. day is the UTC day in the
// YYYYMMDD form of subjects (heartbeat.Day, heartbeat.DayLayout).
//
// Key panics if prefix or userID is empty or holds a '/', or day is not a
// date in YYYYMMDD form: the prefix comes from the user record and the day
// from heartbeat.Day, so a bad one is a bug, and writing a day file under a
// key that reads can never find would lose it silently. A caller with
// untrusted parts checks them first with CheckKeyParts.
func Key(prefix, userID, day string) string {
	if err := CheckKeyParts(prefix, userID, day); err != nil {
		panic(err)
	}
	return prefix + "/" + userID + "/" + day[0:4] + "-" + day[4:6] + "-" + day[6:8] + keySuffix
}

// CheckKeyParts returns an error if Key would panic on these arguments.
func CheckKeyParts(prefix, userID, day string) error {
	if err := checkParts(prefix, userID, day); err != nil {
		return fmt.Errorf("dayfile: %w", err)
	}
	return nil
}

func checkParts(prefix, userID, day string) error {
	switch {
	case prefix == "" || strings.Contains(prefix, "/"):
		return fmt.Errorf("key prefix %q must be non-empty and without '/'", prefix)
	case userID == "" || strings.Contains(userID, "/"):
		return fmt.Errorf("user id %q must be non-empty and without '/'", userID)
	}
	if t, err := time.Parse(heartbeat.DayLayout, day); err != nil || t.Format(heartbeat.DayLayout) != day {
		return fmt.Errorf("day %q is not a date in YYYYMMDD form", day)
	}
	return nil
}

// ParseKey splits a key that Key returned into its prefix, user id and day
// (in YYYYMMDD form). It returns an error for any other string.
func ParseKey(key string) (prefix, userID, day string, err error) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("dayfile: key %q is not <prefix>/<user id>/<YYYY-MM-DD>%s", key, keySuffix)
	}
	prefix, userID = parts[0], parts[1]
	date, ok := strings.CutSuffix(parts[2], keySuffix)
	if !ok {
		return "", "", "", fmt.Errorf("dayfile: key %q does not end in %s", key, keySuffix)
	}
	t, err := time.Parse(keyDayLayout, date)
	if err != nil || t.Format(keyDayLayout) != date {
		return "", "", "", fmt.Errorf("dayfile: key %q does not name a day as YYYY-MM-DD", key)
	}
	day = t.Format(heartbeat.DayLayout)
	if err := checkParts(prefix, userID, day); err != nil {
		return "", "", "", fmt.Errorf("dayfile: key %q: %w", key, err)
	}
	return prefix, userID, day, nil
}
