package users

import (
	"encoding/hex"
	"encoding/json"
	"time"
)

// Limits are a user's own limits. A zero field means the server's default
// (the HEARTLOG_* settings). The record in the users bucket carries them,
// so that ingest enforces them without Postgres: a new limit is a field
// here (with a JSON tag, omitted when zero), a column in the users table
// read by Store, and nothing else.
type Limits struct{}

// String is the hash in hex: the key of the user's record in the users
// bucket. A hash reveals nothing of the key (a random 122-bit UUID).
func (h KeyHash) String() string { return hex.EncodeToString(h[:]) }

// parseKeyHash reads a bucket key back; ok is false for any other key.
func parseKeyHash(s string) (KeyHash, bool) {
	var h KeyHash
	if hex.DecodedLen(len(s)) != len(h) {
		return h, false
	}
	_, err := hex.Decode(h[:], []byte(s))
	return h, err == nil
}

// record is a user as the users bucket holds it, under the hex SHA-256 of
// its API key: what the API needs to accept, route and account a
// heartbeat, and nothing that changes per heartbeat (FirstDay stays in
// Postgres). Decoding ignores fields it does not know, so an older
// release reads a newer release's records during a rolling upgrade.
type record struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	ObjectPrefix   string    `json:"object_prefix"`
	TimeZone       string    `json:"time_zone"`
	TimeoutMinutes int       `json:"timeout_minutes"`
	CreatedAt      time.Time `json:"created_at"`
	Limits         Limits    `json:"limits,omitzero"`
}

func encodeRecord(u User) []byte {
	data, err := json.Marshal(record{
		ID: u.ID, Name: u.Name, ObjectPrefix: u.ObjectPrefix, TimeZone: u.TimeZone,
		TimeoutMinutes: u.TimeoutMinutes, CreatedAt: u.CreatedAt.UTC(), Limits: u.Limits,
	})
	if err != nil {
		panic(err) // a struct of strings, ints and a time always encodes
	}
	return data
}

func decodeRecord(data []byte) (User, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return User{}, err
	}
	return User{
		ID: r.ID, Name: r.Name, ObjectPrefix: r.ObjectPrefix, TimeZone: r.TimeZone,
		TimeoutMinutes: r.TimeoutMinutes, CreatedAt: r.CreatedAt, Limits: r.Limits,
	}, nil
}
