// Package objstore is heartlog's object storage: the primary S3 bucket that
// holds the day files and the versioned backup bucket (DigitalOcean Spaces in
// production, versitygw locally).
//
// It follows the shape of thanos-io/objstore: a small Bucket interface whose
// documentation is the contract, one implementation (S3, through
// aws-sdk-go-v2), metrics as a decorator (Instrument), and one conformance
// suite (objstore_test) that every implementation and decorator passes
// against a real server.
//
// Keys are opaque strings; day files use
// "<prefix>/<user id>/<YYYY-MM-DD>.ndjson.gz" (see DESIGN.md, "Day files").
// Keep keys portable to file-backed gateways: versitygw's posix backend
// stores a key as a file path, so it refuses a key "a" when "a/b" exists
// and the other way round (409 ExistingObjectIsDirectory,
// ObjectParentIsFile), and a key ending in "/" must be empty.
package objstore

import (
	"context"
	"errors"
	"iter"
	"time"
)

// ErrNotFound is matched (errors.Is) by the error that Get and GetVersion
// return for a key or version that does not exist. A missing bucket is NOT
// ErrNotFound: it is a configuration error, and treating it as "no day file
// yet" would make a processor overwrite data it could not see.
var ErrNotFound = errors.New("object not found")

// ErrPreconditionFailed is matched by the error PutIfMatch returns when the
// object is not in the state its condition names.
var ErrPreconditionFailed = errors.New("object changed since it was read")

// Bucket is the contract every object store implementation and decorator
// keeps. All methods are safe for concurrent use, take the caller's context
// for cancellation and deadlines, and retry transient server errors
// (throttling, 5xx) themselves: an error returned from a Bucket method means
// the operation failed after the implementation's retries.
type Bucket interface {
	// Get returns the whole content of key and its ETag. A missing key
	// returns an error matching errors.Is(err, ErrNotFound).
	Get(ctx context.Context, key string) (data []byte, etag string, err error)

	// Put stores data under key, replacing any previous content, and
	// returns the new ETag. The write is atomic: readers see the old or the
	// new content, never a mix.
	//
	// Put is idempotent: writing the same bytes again leaves the same object
	// content (and, for S3 single-part uploads, the same ETag: the hex MD5 of
	// the bytes). It is not free of side effects: on a versioned bucket every
	// Put creates a new version even when the bytes are identical, so a
	// caller that wants one version per change must compare before writing
	// (for example the ETag from Get, or the bytes).
	//
	// A nil error means the server has stored the object (a processor may
	// ack after it). An error does not prove the object was not stored (a
	// timeout can come after the server wrote it); since Put is idempotent,
	// retrying the same Put is always safe.
	Put(ctx context.Context, key string, data []byte) (etag string, err error)

	// PutIfMatch is Put under a condition checked by the server: the
	// object is stored only if key's current ETag is ifMatch, or, with
	// ifMatch "", only if key does not exist. Otherwise nothing changes and
	// the error matches errors.Is(err, ErrPreconditionFailed): someone else
	// wrote key since the caller read it, and the caller should read again.
	//
	// Servers that do not implement conditional writes may ignore the
	// condition and store unconditionally; CheckConditionalWrites tells
	// them apart. Use the condition as a guard against lost updates, and
	// rely on it (to skip reads) only after that check passed.
	PutIfMatch(ctx context.Context, key string, data []byte, ifMatch string) (etag string, err error)

	// Delete removes key. Deleting a key that does not exist succeeds. On a
	// versioned bucket Delete adds a delete marker and keeps the old
	// versions.
	Delete(ctx context.Context, key string) error

	// List yields every key that starts with prefix, at any depth (no
	// delimiter), in ascending byte order, paginating under the hood. An
	// error ends the sequence: it is yielded once, with an empty key.
	// Breaking out of the loop early is fine.
	List(ctx context.Context, prefix string) iter.Seq2[string, error]

	// Objects is List with each key's current ETag, from the same listing
	// requests (1000 keys a page on S3): what compares two buckets without
	// reading their objects. The ETag is unquoted, like Get's.
	Objects(ctx context.Context, prefix string) iter.Seq2[Object, error]

	// Name identifies the bucket in metrics and messages.
	Name() string
}

// Object is a listed object: its key and its current content's ETag (the
// hex MD5 of the bytes for a single-part upload on S3 and Spaces).
type Object struct {
	Key  string
	ETag string
}

// Versioned is implemented by buckets that keep every version of an object
// (the backup bucket). Its methods follow the same rules as Bucket's.
type Versioned interface {
	// Versions lists the versions of exactly key (not of other keys that
	// share it as a prefix), newest first, as the server orders them.
	// Delete markers are not versions and are left out. A key that never
	// existed has no versions and no error.
	Versions(ctx context.Context, key string) ([]Version, error)

	// GetVersion returns the content of one version of key. A version that
	// does not exist (for this key) returns an error matching
	// errors.Is(err, ErrNotFound); a malformed version ID is another error.
	GetVersion(ctx context.Context, key, versionID string) ([]byte, error)
}

// Version describes one stored version of an object.
type Version struct {
	ID           string
	ETag         string // without quotes, like the ETags Get and Put return
	IsLatest     bool
	LastModified time.Time
}

// Historian is implemented by versioned buckets that list the history of
// many keys in one go (point-in-time restore): one request per 1000
// entries instead of one per key.
type Historian interface {
	// History yields every version and delete marker of every key that
	// starts with prefix. An error ends the sequence: it is yielded once.
	History(ctx context.Context, prefix string) iter.Seq2[Entry, error]
}

// Entry is one step of a key's history: a version, or a delete marker
// (which has an ID and a time but no content or ETag).
type Entry struct {
	Key string
	Version
	DeleteMarker bool
}

// ListAll collects List into a slice. Use it when the prefix is known to be
// small (one user's days); range over List for a whole bucket.
func ListAll(ctx context.Context, b Bucket, prefix string) ([]string, error) {
	var keys []string
	for key, err := range b.List(ctx, prefix) {
		if err != nil {
			return keys, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}
