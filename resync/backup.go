package resync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"heartlog/objstore"
)

// Kind is how a backup file drifted from S3.
type Kind string

// The kinds of drift.
const (
	Missing Kind = "missing" // in S3, not in the backup (or deleted there)
	Stale   Kind = "stale"   // in both, with other bytes
	Extra   Kind = "extra"   // in the backup, not in S3
)

// Kinds are the kinds in the order reports list them.
var Kinds = []Kind{Missing, Stale, Extra}

// BackupOptions tune VerifyBackup.
type BackupOptions struct {
	Options
	// Repair writes S3's file over each missing and stale backup file: a
	// new version, conditional on the version read, so the history stays.
	Repair bool
	// DeleteExtra, with Repair, deletes each extra backup file: on the
	// versioned bucket that is a delete marker, every version stays and a
	// restore can bring it back. Without it extras are only reported,
	// since an extra is most often the one copy left of a day file S3 lost.
	DeleteExtra bool
	// ReadAll compares every file by its bytes, equal ETags or not: for
	// a store whose ETags are not hashes of the content.
	ReadAll bool
	// NoExtras does not look for extras (RebuildBackup): backup files S3
	// lacks are left out of the report.
	NoExtras bool
}

// Report is what a backup run found and did.
type Report struct {
	Files  int      // day files in S3, in scope
	InSync int      // of them, equal in the backup when checked
	Drift  []Found  // every file that drifted, sorted by kind then key
	Failed []string // repairs that failed, with why
}

// Found is one drifted file.
type Found struct {
	Kind     Kind   `json:"kind"`
	Key      string `json:"key"`
	Repaired bool   `json:"repaired"` // written from S3 (missing, stale) or deleted (extra)
}

// Count is the drifted files of kind.
func (r Report) Count(k Kind) int {
	n := 0
	for _, f := range r.Drift {
		if f.Kind == k {
			n++
		}
	}
	return n
}

// Left is the drifted files that were not repaired: what is still wrong.
func (r Report) Left() int {
	n := 0
	for _, f := range r.Drift {
		if !f.Repaired {
			n++
		}
	}
	return n
}

// VerifyBackup compares every S3 day file in scope with the backup's
// current object, and finds backup day files that S3 lacks. The listings
// of both buckets carry each file's ETag, the MD5 of its bytes: a file
// whose ETags are equal is in sync and costs no request of its own. A file
// whose ETags differ, or that the backup lacks, is read from both and
// compared by bytes (another upload path, or encryption, can give the same
// bytes another ETag), costing one S3 GET and one backup GET, plus a
// backup PUT for each repair. The backup's requests (its list pages
// included) are paced. A file the live backup processor is writing at
// that moment (its flush age is minutes) can show as missing or stale
// once; a repair that finds it equal when it reads again counts it
// repaired.
func VerifyBackup(ctx context.Context, primary, backup objstore.Bucket, o BackupOptions) (Report, error) {
	pace := newPacer(o.RequestsPerSecond)
	inS3, err := listObjects(ctx, primary, o.Scope, pacer{})
	if err != nil {
		return Report{}, err
	}
	inBackup, err := listObjects(ctx, backup, o.Scope, pace)
	if err != nil {
		return Report{}, err
	}
	keys, onlyInBackup, same := compareListings(inS3, inBackup, o.ReadAll)
	var extras []string
	if !o.NoExtras {
		if extras, err = confirmExtras(ctx, primary, onlyInBackup, o.concurrency()); err != nil {
			return Report{}, err
		}
	}
	rep := Report{Files: len(inS3), InSync: same}
	var mu sync.Mutex
	add := func(f Found, failure error) {
		mu.Lock()
		defer mu.Unlock()
		if f.Kind == "" {
			rep.InSync++
			return
		}
		rep.Drift = append(rep.Drift, f)
		if failure != nil {
			rep.Failed = append(rep.Failed, fmt.Sprintf("%s %s: %v", f.Kind, f.Key, failure))
		}
	}
	err = each(ctx, same, keys, o.Options, func(ctx context.Context, key string) error {
		f, failure, err := checkOne(ctx, primary, backup, key, o.Repair, pace)
		if err != nil {
			return err
		}
		add(f, failure)
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, key := range extras {
		f := Found{Kind: Extra, Key: key}
		var failure error
		if o.Repair && o.DeleteExtra {
			if failure = pace.wait(ctx); failure == nil {
				failure = backup.Delete(ctx, key)
			}
			f.Repaired = failure == nil
		}
		add(f, failure)
	}
	sort.Slice(rep.Drift, func(i, j int) bool {
		a, b := rep.Drift[i], rep.Drift[j]
		if a.Kind != b.Kind {
			return kindOrder(a.Kind) < kindOrder(b.Kind)
		}
		return a.Key < b.Key
	})
	return rep, ctx.Err()
}

func kindOrder(k Kind) int {
	for i, kk := range Kinds {
		if k == kk {
			return i
		}
	}
	return len(Kinds)
}

// RebuildBackup writes every S3 day file in scope that the backup lacks or
// holds with other bytes; identical ones are only listed, so a re-run
// costs the listings alone. It is VerifyBackup with Repair, without looking for extras.
func RebuildBackup(ctx context.Context, primary, backup objstore.Bucket, o Options) (Report, error) {
	return VerifyBackup(ctx, primary, backup, BackupOptions{Options: o, Repair: true, NoExtras: true})
}

// compareListings merges the sorted listings of S3 and the backup: the
// S3 keys to read (the backup lacks them, or holds other ETags), the keys
// only the backup has, and how many files have equal ETags in both (none
// with readAll: every file in both is read).
func compareListings(inS3, inBackup []objstore.Object, readAll bool) (read, onlyInBackup []string, same int) {
	i, j := 0, 0
	for i < len(inS3) || j < len(inBackup) {
		switch {
		case j == len(inBackup) || (i < len(inS3) && inS3[i].Key < inBackup[j].Key):
			read = append(read, inS3[i].Key)
			i++
		case i == len(inS3) || inBackup[j].Key < inS3[i].Key:
			onlyInBackup = append(onlyInBackup, inBackup[j].Key)
			j++
		default:
			if readAll || inS3[i].ETag == "" || inS3[i].ETag != inBackup[j].ETag {
				read = append(read, inS3[i].Key)
			} else {
				same++
			}
			i, j = i+1, j+1
		}
	}
	return read, onlyInBackup, same
}

// confirmExtras reads each backup-only key in S3 once more, concurrency
// at a time: a file compacted since S3 was listed is not an extra.
func confirmExtras(ctx context.Context, primary objstore.Bucket, keys []string, concurrency int) ([]string, error) {
	gone := make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, key := range keys {
		g.Go(func() error {
			_, _, found, err := getOrNone(gctx, primary, key)
			gone[i] = !found
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var extras []string
	for i, key := range keys {
		if gone[i] {
			extras = append(extras, key)
		}
	}
	return extras, nil
}

// checkOne compares one S3 file with the backup's and, with repair, writes
// S3's over a missing or stale one. err stops the run (S3 or the backup
// cannot be read); failure is a repair that did not succeed, reported.
//
// A repair write is conditional on the backup version read. When it is
// refused, the backup processor wrote the file in between (a late
// heartbeat, possibly one S3 does not hold yet): the file is read again and
// left as it is, equal to S3 (repaired) or not (reported, for the next
// run), never overwritten blindly. The one exception is a file still
// missing: some servers (versitygw) refuse a create-only write over a
// delete marker, so it is then written plainly.
func checkOne(ctx context.Context, primary, backup objstore.Bucket, key string, repair bool, pace pacer) (f Found, failure, err error) {
	refused := false
	for {
		data, _, found, err := getOrNone(ctx, primary, key)
		if err != nil || !found {
			return Found{}, nil, err // gone from S3 since it was listed: nothing to compare
		}
		if err := pace.wait(ctx); err != nil {
			return Found{}, nil, err
		}
		old, etag, found, err := getOrNone(ctx, backup, key)
		if err != nil {
			return Found{}, nil, err
		}
		same := found && bytes.Equal(old, data)
		switch {
		case same && refused:
			f.Repaired = true // the other writer wrote S3's bytes
			return f, nil, nil
		case same:
			return Found{}, nil, nil
		case refused && found:
			return f, errors.New("the backup processor wrote it while it was repaired: left as it is, run verify again"), nil
		case !refused && !found:
			f = Found{Kind: Missing, Key: key}
		case !refused:
			f = Found{Kind: Stale, Key: key}
		}
		if !repair {
			return f, nil, nil
		}
		if err := pace.wait(ctx); err != nil {
			return Found{}, nil, err
		}
		if refused { // still missing: a delete marker the server would not create over
			_, err = backup.Put(ctx, key, data)
		} else {
			_, err = backup.PutIfMatch(ctx, key, data, etag) // etag "": create-only
		}
		switch {
		case err == nil:
			f.Repaired = true
			return f, nil, nil
		case refused || !errors.Is(err, objstore.ErrPreconditionFailed):
			return f, err, nil
		}
		refused = true
	}
}
