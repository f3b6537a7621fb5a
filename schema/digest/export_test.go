package digest

import heartlogv1 "heartlog/schema/gen/heartlog/v1"

// Unmarshal exposes unmarshal to the tests.
func Unmarshal(b []byte) (*heartlogv1.DayDigest, error) {
	var d heartlogv1.DayDigest
	return &d, unmarshal(b, &d)
}
