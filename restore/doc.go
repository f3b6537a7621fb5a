// Package restore puts day files back to their content at a point in time,
// from the versions of the backup bucket (DESIGN.md, "Day files").
//
// For every day file under a prefix, the content at TIME is the newest
// backup version whose LastModified is not after TIME. A key whose newest
// entry at TIME is a delete marker, or whose every version came after TIME,
// did not exist then: restore deletes it from S3 and drops it from the
// cache. A key the backup has never seen is not listed and is left as it
// is (the backup may simply be behind; restore never deletes what it cannot
// see in the history).
//
// Writes are conditional (PutIfMatch on the ETag restore read, a
// conditional delete), so a late-path write that lands during the restore
// is never overwritten: restore reads the file again and writes the
// content at TIME plus every heartbeat of the new read that was not in the
// file when restore first read it (the heartbeats that arrived during the
// restore), and reports the conflict. Heartbeats that arrived after TIME
// but before the restore reached the file are removed: that is what the
// restore is for.
//
// A re-run skips every file already at its content (a cheap compare: the
// version's ETag against the S3 file's, the bytes for the cache), so a
// killed restore is resumed by running it again.
package restore
