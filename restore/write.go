package restore

import (
	"context"
	"errors"
	"fmt"

	"heartlog/objstore"
	"heartlog/processors/dayfiles"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// put makes store's file key hold want (nil: not exist), without losing a
// write that lands meanwhile: see the package comment.
func (r *run) put(ctx context.Context, s dayfiles.Store, name, key string, want *content) (putResult, error) {
	cur, tag, exists, err := read(ctx, s, key)
	if err != nil {
		return putResult{}, err
	}
	unchanged := putResult{final: want}
	if name == "cache" && !exists {
		return unchanged, nil // a miss: reads fill it from S3
	}
	etag := ""
	if name == "objects" {
		etag = tag
	}
	if !exists && want == nil || exists && want != nil && want.same(cur, etag) {
		return unchanged, nil
	}
	if want != nil {
		if err := r.load(ctx, key, want); err != nil {
			return putResult{}, err
		}
		if exists && want.same(cur, "") {
			return unchanged, nil // same bytes, another ETag (a multipart upload)
		}
	}
	base, unreadable := ids(cur)
	ch := Change{Key: key, Store: name, Created: !exists, Deleted: want == nil, Unreadable: exists && unreadable}
	var wantIDs map[string]bool
	if want != nil {
		wantIDs, _ = ids(want.data)
	}
	for id := range wantIDs {
		if !base[id] {
			ch.Added = append(ch.Added, id)
		}
	}
	for id := range base {
		if !wantIDs[id] {
			ch.Removed = append(ch.Removed, id)
		}
	}
	if r.o.DryRun {
		r.report(ch)
		return putResult{changed: true, final: want}, nil
	}
	if r.o.beforeWrite != nil {
		r.o.beforeWrite(key)
	}
	goal := want
	for attempt := 1; ; attempt++ {
		err := r.write(ctx, s, name, key, goal, tag)
		if err == nil {
			break
		}
		if !errors.Is(err, dayfiles.ErrConflict) && !errors.Is(err, objstore.ErrPreconditionFailed) {
			return putResult{}, err
		}
		ch.Conflicts++
		if attempt == maxAttempts {
			return putResult{}, fmt.Errorf("restore: %s %s changed under %d attempts in a row: %w", name, key, attempt, err)
		}
		if cur, tag, exists, err = read(ctx, s, key); err != nil {
			return putResult{}, err
		}
		// What the file holds now and did not hold at the first read
		// arrived during the restore: keep it beside the content at TIME.
		extra := newHeartbeats(cur, base)
		if goal, err = withExtra(want, extra); err != nil {
			return putResult{}, err
		}
		ch.Kept = len(extra)
		r.o.Log.Warn().Str("store", name).Str("key", key).Int("kept", len(extra)).
			Msg("restore: the file changed during the restore; read again, keeping the heartbeats that arrived meanwhile")
		if !exists && goal == nil || exists && goal != nil && goal.same(cur, "") {
			break // the other write (an overlapped cache write) left the right content
		}
	}
	ch.Deleted = goal == nil
	r.report(ch)
	return putResult{changed: true, conflicts: ch.Conflicts, final: goal}, nil
}

// write stores goal under the condition tag, or removes the file.
func (r *run) write(ctx context.Context, s dayfiles.Store, name, key string, goal *content, tag string) error {
	switch {
	case goal != nil:
		_, err := s.Write(ctx, key, goal.data, goal.hbs, tag)
		return err
	case name == "objects":
		return r.primary.DeleteIfMatch(ctx, key, tag)
	default:
		// The cache cannot delete conditionally; a cache write lost here
		// is a miss, which reads fill from S3.
		_, err := r.ssdb.DropDayFile(ctx, key)
		return err
	}
}

func (r *run) report(ch Change) {
	if r.o.Changed == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.o.Changed(ch)
}

func read(ctx context.Context, s dayfiles.Store, key string) (data []byte, tag string, exists bool, err error) {
	data, tag, err = s.Read(ctx, key)
	if errors.Is(err, dayfiles.ErrNotFound) {
		return nil, tag, false, nil
	}
	return data, tag, err == nil, err
}

// ids are the heartbeat ids of a day file; unreadable if it does not decode.
func ids(data []byte) (set map[string]bool, unreadable bool) {
	set = map[string]bool{}
	if data == nil {
		return set, false
	}
	hbs, err := dayfile.Decode(data)
	if err != nil {
		return set, true
	}
	for _, hb := range hbs {
		set[hb.Id] = true
	}
	return set, false
}

// newHeartbeats are data's heartbeats whose ids are not in base.
func newHeartbeats(data []byte, base map[string]bool) []*heartlogv1.Heartbeat {
	if data == nil {
		return nil
	}
	hbs, err := dayfile.Decode(data)
	if err != nil {
		return nil // nothing to keep from a file that does not decode
	}
	var extra []*heartlogv1.Heartbeat
	for _, hb := range hbs {
		if !base[hb.Id] {
			extra = append(extra, hb)
		}
	}
	return extra
}

// withExtra is want with extra merged in (union by id, sorted); want
// itself when there is nothing extra, so its bytes stay the backup's.
func withExtra(want *content, extra []*heartlogv1.Heartbeat) (*content, error) {
	if len(extra) == 0 {
		return want, nil
	}
	var hbs []*heartlogv1.Heartbeat
	if want != nil {
		hbs = want.hbs
	}
	merged, _ := dayfile.Merge(hbs, extra)
	data, err := dayfile.Encode(merged)
	if err != nil {
		return nil, err
	}
	return &content{data: data, hbs: merged}, nil
}
