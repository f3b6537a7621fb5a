package resync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

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
	// NoExtras skips listing the backup (RebuildBackup): extras are not
	// looked for.
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
// current object by bytes, and finds backup day files that S3 lacks. It
// costs per file one S3 GET and one backup GET, plus a backup PUT for each
// repair, and list pages; the backup's are paced. A file the live backup
// processor is writing at that moment (its flush age is minutes) can show
// as missing or stale once; a repair that finds it equal when it reads
// again counts it repaired.
func VerifyBackup(ctx context.Context, primary, backup objstore.Bucket, o BackupOptions) (Report, error) {
	pace := newPacer(o.RequestsPerSecond)
	keys, err := listKeys(ctx, primary, o.Scope, pacer{})
	if err != nil {
		return Report{}, err
	}
	var extras []string
	if !o.NoExtras {
		if extras, err = findExtras(ctx, primary, backup, keys, o.Scope, pace); err != nil {
			return Report{}, err
		}
	}
	rep := Report{Files: len(keys)}
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
	err = each(ctx, keys, o.Options, func(ctx context.Context, key string) error {
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
// holds with other bytes; identical ones are only read, so a re-run costs
// reads alone. It is VerifyBackup with Repair, without looking for extras.
func RebuildBackup(ctx context.Context, primary, backup objstore.Bucket, o Options) (Report, error) {
	return VerifyBackup(ctx, primary, backup, BackupOptions{Options: o, Repair: true, NoExtras: true})
}

// findExtras lists the backup's day files in scope that are not among
// primary's keys, and reads each in S3 once more: a file compacted since
// S3 was listed is not an extra.
func findExtras(ctx context.Context, primary, backup objstore.Bucket, keys []string, s Scope, pace pacer) ([]string, error) {
	inBackup, err := listKeys(ctx, backup, s, pace)
	if err != nil {
		return nil, err
	}
	inS3 := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		inS3[k] = struct{}{}
	}
	var extras []string
	for _, key := range inBackup {
		if _, ok := inS3[key]; ok {
			continue
		}
		if _, _, found, err := getOrNone(ctx, primary, key); err != nil {
			return nil, err
		} else if !found {
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
