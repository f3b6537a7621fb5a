package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"heartlog/objstore"
)

// A restore's journal is the keys it has finished, kept in the primary
// bucket under journalRoot/<id>/, where id names the restore (its TIME,
// scope and stores). A re-run of the same restore skips them: written
// again, their content at TIME would remove what came since restore passed
// them (a heartbeat the late path merged in, one a conflict kept). The keys
// go in chunks, an object every journalFlush, so that a kill -9 loses at
// most that much of the record (those files are redone, which is what a
// re-run did before there was a journal); a finished restore writes
// journalDone.
const (
	journalRoot  = "restore-journal/"
	journalDone  = "done"
	journalFlush = 2 * time.Second
)

// ErrAlreadyDone is returned by Run when the journal says the same restore
// finished before: nothing was done. Options.Again runs it anew.
var ErrAlreadyDone = errors.New("restore: this restore (the same --at and scope) already finished; run it again with --again")

// journalID names a restore by what makes two runs the same one.
func journalID(o Options) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%s|%s|%t|%t",
		o.At.UTC().Format(time.RFC3339Nano), o.Prefix, o.Since, o.Until, o.Objects, o.Cache))
	return hex.EncodeToString(h[:8])
}

// journal records a restore's finished keys in the primary bucket.
type journal struct {
	b   objstore.Bucket
	dir string // journalRoot + id + "/"

	mu      sync.Mutex
	pending []string
	seq     int
}

// JournalPrefix is where the restore o keeps its journal in the primary
// bucket: "restore-journal/<id>/", id a hash of TIME, scope and stores.
func JournalPrefix(o Options) string { return journalRoot + journalID(o) + "/" }

func openJournal(b objstore.Bucket, o Options) *journal {
	return &journal{b: b, dir: JournalPrefix(o)}
}

// load returns the keys earlier runs finished, and whether one of them
// finished the whole restore.
func (j *journal) load(ctx context.Context) (done map[string]bool, finished bool, err error) {
	done = map[string]bool{}
	for key, err := range j.b.List(ctx, j.dir) {
		if err != nil {
			return nil, false, fmt.Errorf("restore: read the journal %s: %w", j.dir, err)
		}
		name := strings.TrimPrefix(key, j.dir)
		if name == journalDone {
			finished = true
			continue
		}
		data, _, err := j.b.Get(ctx, key)
		if err != nil {
			return nil, false, fmt.Errorf("restore: read the journal %s: %w", key, err)
		}
		for k := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
			if k != "" {
				done[k] = true
			}
		}
		var seq int
		if _, err := fmt.Sscanf(name, "%d.keys", &seq); err == nil && seq > j.seq {
			j.seq = seq
		}
	}
	return done, finished, nil
}

// clear removes the journal, for a restore run anew.
func (j *journal) clear(ctx context.Context) error {
	keys, err := objstore.ListAll(ctx, j.b, j.dir)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := j.b.Delete(ctx, k); err != nil {
			return err
		}
	}
	j.seq = 0
	return nil
}

// add notes a finished key; flush records it.
func (j *journal) add(key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending = append(j.pending, key)
}

// flush writes the keys finished since the last flush as the next chunk.
func (j *journal) flush(ctx context.Context) error {
	j.mu.Lock()
	keys := j.pending
	j.pending = nil
	j.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for _, k := range keys {
		buf.WriteString(k)
		buf.WriteByte('\n')
	}
	j.seq++
	if _, err := j.b.Put(ctx, fmt.Sprintf("%s%08d.keys", j.dir, j.seq), buf.Bytes()); err != nil {
		j.mu.Lock()
		j.pending = append(keys, j.pending...) // the next flush tries again
		j.mu.Unlock()
		return fmt.Errorf("restore: write the journal: %w", err)
	}
	return nil
}

// every flushes each journalFlush until ctx is done.
func (j *journal) every(ctx context.Context, log func(error)) {
	t := time.NewTicker(journalFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.flush(ctx); err != nil {
				log(err)
			}
		}
	}
}

// finish records that the restore finished.
func (j *journal) finish(ctx context.Context) error {
	if err := j.flush(ctx); err != nil {
		return err
	}
	if _, err := j.b.Put(ctx, j.dir+journalDone, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("restore: write the journal: %w", err)
	}
	return nil
}
