package objstore

import (
	"strings"
	"time"
)

// created is when a version was written. S3 and Spaces report it as
// LastModified. versitygw's posix backend reports, for a noncurrent
// version, the time it was superseded (measured: two versions written a
// second apart both list at the second one's time), which would make a
// point-in-time restore pick the wrong one; its version IDs are ULIDs,
// whose first 48 bits are the creation time in milliseconds, so an ID
// that is a ULID of a time not after LastModified gives the creation time.
// Other servers' IDs (AWS: 32 characters) are not ULIDs and keep theirs.
func created(id string, lastModified time.Time) time.Time {
	t, ok := ulidTime(id)
	if !ok || t.After(lastModified.Add(time.Second)) || t.Before(lastModified.AddDate(-20, 0, 0)) {
		return lastModified
	}
	return t
}

// markerCreated is when a delete marker was made. versitygw's posix
// backend lists a marker at the LastModified of the version it hid
// (measured: a delete made 3 s after its put lists a millisecond before
// the put), which would make a restore to a time between the two see the
// file as deleted, or, by a millisecond's tie, not. The marker's ID is a
// ULID of when it was made, so an ID that is a ULID of a time not before
// LastModified (and not in the future) gives it. S3's and Spaces' IDs are
// not ULIDs and keep LastModified, which they report right.
func markerCreated(id string, lastModified time.Time) time.Time {
	t, ok := ulidTime(id)
	if !ok || t.Before(lastModified.Add(-time.Second)) || t.After(time.Now().Add(24*time.Hour)) {
		return lastModified
	}
	return t
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulidTime decodes the timestamp of a ULID (26 Crockford base32
// characters, the first 10 the milliseconds since 1970).
func ulidTime(id string) (time.Time, bool) {
	if len(id) != 26 || id[0] > '7' {
		return time.Time{}, false
	}
	var ms uint64
	for i := 0; i < len(id); i++ {
		v := strings.IndexByte(crockford, id[i])
		if v < 0 {
			return time.Time{}, false
		}
		if i < 10 {
			ms = ms<<5 | uint64(v)
		}
	}
	return time.UnixMilli(int64(ms)).UTC(), true
}
