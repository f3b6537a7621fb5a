package dayfile

import heartlogv1 "heartlog/schema/gen/heartlog/v1"

// LineSize is how many bytes the heartbeat takes in a day file before
// compression (its newline included): what the API counts against the
// bytes a user-day may hold.
func LineSize(hb *heartlogv1.Heartbeat) (int, error) {
	buf := getBuf(&jsonBufs)
	defer putBuf(&jsonBufs, buf)
	b, err := appendHeartbeat((*buf)[:0], hb)
	*buf = b
	return len(b), err
}
