package dayfile

import heartlogv1 "heartlog/schema/gen/heartlog/v1"

// DecodeLimit is Decode with another bound on the uncompressed size, so that
// tests can check the bound without inflating 256 MiB.
func DecodeLimit(data []byte, limit int) ([]*heartlogv1.Heartbeat, error) {
	hbs, _, err := decode(data, Limits{MaxBytes: limit}, true)
	return hbs, err
}

// DecodeGeneral is Decode without the fast path: what the fast path must
// agree with.
func DecodeGeneral(data []byte) ([]*heartlogv1.Heartbeat, error) {
	hbs, _, err := decode(data, Limits{MaxBytes: MaxDecodedSize}, false)
	return hbs, err
}
