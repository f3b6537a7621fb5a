package ssdb

import (
	"context"
	"errors"
	"fmt"

	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// DayFile is a day file to write into the cache with its digest.
type DayFile struct {
	Key  string // the day file's key (dayfile.Key)
	Data []byte // the day file
	// Heartbeats are Data decoded, if the caller has them (else the write
	// decodes Data).
	Heartbeats []*heartlogv1.Heartbeat
	Decoded    bool // Heartbeats are set (an empty day has none)
}

// PutDayFiles is WriteDayFiles without the generations.
func (c *Cache) PutDayFiles(ctx context.Context, files []DayFile) error {
	_, err := c.WriteDayFiles(ctx, files)
	return err
}

// WriteDayFiles writes day files and their digests into the cache following the
// consistency rule of package digest: one pipeline of, per file, DEL
// digest, SETEX day file, SETEX digest, INCR generation (GenKey). It
// returns the generation each file's write counted up to, in the order of
// files. A file that does not decode or cannot be digested is written
// without a digest (its digest is still deleted); that is an error only
// for a file that does not decode.
func (c *Cache) WriteDayFiles(ctx context.Context, files []DayFile) ([]int64, error) {
	ops := make([]Op, 0, 4*len(files))
	var errs []error
	for _, f := range files {
		dkey := digest.Key(f.Key)
		ops = append(ops, Op{Key: dkey, Delete: true}, Op{Key: f.Key, Value: f.Data})
		hbs := f.Heartbeats
		var err error
		if !f.Decoded {
			if hbs, err = dayfile.Decode(f.Data); err != nil {
				errs = append(errs, fmt.Errorf("ssdb: day file %s: %w", f.Key, err))
			}
		}
		if err == nil {
			if d, err := digest.Encode(hbs); err == nil {
				ops = append(ops, Op{Key: dkey, Value: d})
			} // else no digest: readers decode the day file
		}
		ops = append(ops, Op{Key: digest.GenKey(f.Key), Incr: true})
	}
	gens, err := c.Exec(ctx, ops)
	if err != nil {
		return nil, err
	}
	return gens, errors.Join(errs...)
}

// DropDayFile removes a day file and its digest from the cache (DEL digest, DEL
// day file, INCR generation, in one pipeline) and returns the generation
// it counted up to. Readers then take the day from S3.
func (c *Cache) DropDayFile(ctx context.Context, dayKey string) (int64, error) {
	gens, err := c.Exec(ctx, []Op{{Key: digest.Key(dayKey), Delete: true}, {Key: dayKey, Delete: true}, {Key: digest.GenKey(dayKey), Incr: true}})
	if err != nil {
		return 0, err
	}
	return gens[0], nil
}
