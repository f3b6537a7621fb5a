package objstore

import (
	"context"
	"errors"
	"fmt"
)

// probeKey is the object CheckConditionalWrites writes. It sorts apart from
// day files ("<prefix>/<user>/...") and quarantine/.
const probeKey = "_heartlog/conditional-write-probe"

// ErrConditionsIgnored is matched by the error CheckConditionalWrites
// returns when the server stored a write whose condition did not hold.
var ErrConditionsIgnored = errors.New("the server ignores conditional writes (If-Match)")

// CheckConditionalWrites proves that b's server honours PutIfMatch: it
// writes a small probe object, then tries to overwrite it under an ETag that
// cannot match. A server that refuses that write passes (nil). One that
// stores it returns an error matching ErrConditionsIgnored; any other error
// means the check could not run.
//
// On a versioned bucket the probe leaves one or two small versions of
// probeKey each time it runs.
func CheckConditionalWrites(ctx context.Context, b Bucket) error {
	if _, err := b.Put(ctx, probeKey, []byte("probe")); err != nil {
		return fmt.Errorf("objstore: conditional-write check on %s: %w", b.Name(), err)
	}
	const impossible = "00000000000000000000000000000000" // no MD5 of "probe"
	_, err := b.PutIfMatch(ctx, probeKey, []byte("probe, overwritten"), impossible)
	switch {
	case errors.Is(err, ErrPreconditionFailed):
		return nil
	case err != nil:
		return fmt.Errorf("objstore: conditional-write check on %s: %w", b.Name(), err)
	default:
		return fmt.Errorf("objstore: bucket %s: %w", b.Name(), ErrConditionsIgnored)
	}
}
