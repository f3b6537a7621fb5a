package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	"heartlog/restore"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/ssdb"
)

// rig is one user's day files in the stack's buckets and cache, written by
// the real objects, cache and backup sinks.
type rig struct {
	t     *testing.T
	st    heartlogtest.Stores
	sinks map[string]interface {
		Commit(context.Context, []*heartlogv1.Batch) error
	}
	user   string
	prefix string
	first  time.Time
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, st: heartlogtest.OpenStores(t), user: uuid.NewString(), prefix: "rs" + uuid.NewString()[:8],
		first: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
	r.sinks = map[string]interface {
		Commit(context.Context, []*heartlogv1.Batch) error
	}{}
	for name, s := range r.st.Sinks(t) {
		r.sinks[name] = s
	}
	return r
}

func (r *rig) day(d int) string   { return r.first.AddDate(0, 0, d).Format(heartbeat.DayLayout) }
func (r *rig) key(d int) string   { return dayfile.Key(r.prefix, r.user, r.day(d)) }
func (r *rig) listPrefix() string { return r.prefix + "/" + r.user + "/" }

// commit writes n heartbeats of day d (entities named from tag) through
// the named sinks (all three without names) and returns their ids.
func (r *rig) commit(d, n int, tag string, names ...string) []string {
	r.t.Helper()
	b := &heartlogv1.Batch{Day: r.day(d), ObjectPrefixes: map[string]string{r.user: r.prefix}}
	var ids []string
	for i := range n {
		hb := heartlogtest.Heartbeat(r.t, r.user, fmt.Sprintf("%s-%d.go", tag, i), r.first.AddDate(0, 0, d).Add(9*time.Hour+time.Duration(i)*time.Minute))
		b.Heartbeats = append(b.Heartbeats, hb)
		ids = append(ids, hb.Id)
	}
	if len(names) == 0 {
		names = []string{"objects", "cache", "backup"}
	}
	for _, name := range names {
		if err := r.sinks[name].Commit(context.Background(), []*heartlogv1.Batch{b}); err != nil {
			r.t.Fatal(err)
		}
	}
	return ids
}

// mark waits until every version written so far is before the returned
// time and every later one will be after it (servers keep LastModified
// to the second).
func mark(t *testing.T) time.Time {
	at := time.Now().Truncate(time.Second).Add(time.Second - time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for !time.Now().After(at.Add(time.Millisecond)) {
		if time.Now().After(deadline) {
			t.Fatal("the clock did not move")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return at
}

// state is a key's bytes in S3 and in the cache (nil: missing), and
// whether the cache's digest is the digest of its day file.
type state struct {
	objects, cache []byte
	digestOK       bool
}

func (r *rig) state(key string) state {
	r.t.Helper()
	ctx := context.Background()
	var s state
	data, _, err := r.st.Primary.Get(ctx, key)
	switch {
	case err == nil:
		s.objects = data
	case !errors.Is(err, objstore.ErrNotFound):
		r.t.Fatal(err)
	}
	c, ok, err := r.st.Cache.Get(ctx, key)
	if err != nil {
		r.t.Fatal(err)
	}
	if ok {
		s.cache = c
		d, _, err := r.st.Cache.Get(ctx, digest.Key(key))
		if err != nil {
			r.t.Fatal(err)
		}
		hbs, err := dayfile.Decode(c)
		if err == nil {
			want, _ := digest.Encode(hbs)
			s.digestOK = bytes.Equal(d, want)
		}
	}
	return s
}

func (r *rig) backupVersions(keys []string) map[string]int {
	r.t.Helper()
	out := map[string]int{}
	for e, err := range r.st.Backup.History(context.Background(), r.listPrefix()) {
		if err != nil {
			r.t.Fatal(err)
		}
		out[e.Key]++
	}
	return out
}

func (r *rig) options(at time.Time) restore.Options {
	return restore.Options{At: at, Prefix: r.listPrefix(), Objects: true, Cache: true, Log: heartlogtest.Logger(r.t)}
}

func (r *rig) run(o restore.Options) (restore.Progress, []restore.Change) {
	r.t.Helper()
	var changes []restore.Change
	o.Changed = func(c restore.Change) { changes = append(changes, c) }
	p, err := restore.Run(context.Background(), r.st.Backup, r.st.Primary, r.st.Cache, o)
	if err != nil {
		r.t.Fatal(err)
	}
	sort.Slice(changes, func(i, j int) bool {
		return changes[i].Key+changes[i].Store < changes[j].Key+changes[j].Store
	})
	return p, changes
}

// TestRestore changes day files after T in the three ways the issue names
// (late heartbeats merged in, an outside overwrite, a deleted file) and
// adds one, then checks that a dry run writes nothing and says what would
// change, and that a restore brings S3 and the cache back to their bytes at
// T and a second one finds nothing to do.
func TestRestore(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.commit(0, 5, "late")                    // gets late heartbeats after T
	r.commit(1, 4, "overwrite")               // overwritten from outside after T
	r.commit(2, 3, "deleted")                 // deleted after T
	r.commit(4, 3, "overwritten in S3 alone") // garbage in S3 after T
	at := mark(t)
	keys := []string{r.key(0), r.key(1), r.key(2), r.key(3), r.key(4)}
	before := map[string]state{}
	for _, k := range keys {
		before[k] = r.state(k)
	}
	if before[r.key(3)].objects != nil || before[r.key(0)].cache == nil || !before[r.key(0)].digestOK {
		t.Fatalf("setup: the sinks did not write the files: %+v", before)
	}

	late := r.commit(0, 2, "late-after")
	other, err := dayfile.Encode([]*heartlogv1.Heartbeat{heartlogtest.Heartbeat(t, r.user, "bad-deploy.go", r.first.AddDate(0, 0, 1).Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []objstore.Bucket{r.st.Primary, r.st.Backup} {
		if _, err := b.Put(ctx, r.key(1), other); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, r.key(2)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.st.Cache.PutDayFiles(ctx, []ssdb.DayFile{{Key: r.key(1), Data: other}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.Cache.DropDayFile(ctx, r.key(2)); err != nil {
		t.Fatal(err)
	}
	created := r.commit(3, 2, "created")                                                 // did not exist at T
	if _, err := r.st.Primary.Put(ctx, r.key(4), []byte("not a day file")); err != nil { // S3 alone
		t.Fatal(err)
	}

	versions := r.backupVersions(keys)
	after := map[string]state{}
	for _, k := range keys {
		after[k] = r.state(k)
	}
	o := r.options(at)
	o.DryRun = true
	p, changes := r.run(o)
	if p.Total != 5 || p.Changed != 5 {
		t.Errorf("dry run: %+v, want 5 files listed, 5 to change", p)
	}
	listed := 0
	for _, n := range versions {
		listed += n
	}
	if !p.Listed || p.Versions != listed || p.Restoring <= 0 || p.Restoring >= p.Elapsed {
		t.Errorf("dry run's progress: %+v, want %d versions listed, and the time since the listing apart from the whole", p, listed)
	}
	for _, k := range keys {
		if got := r.state(k); !equalState(got, after[k]) {
			t.Errorf("dry run changed %s", k)
		}
	}
	if got := r.backupVersions(keys); fmt.Sprint(got) != fmt.Sprint(versions) {
		t.Errorf("dry run: backup versions %v, were %v", got, versions)
	}
	want := []string{
		r.key(0) + " cache removed " + fmt.Sprint(len(late)),
		r.key(0) + " objects removed " + fmt.Sprint(len(late)),
		r.key(1) + " cache added 4 removed 1",
		r.key(1) + " objects added 4 removed 1",
		r.key(2) + " objects created added 3", // the cache entry is missing: left to reads
		r.key(3) + " cache deleted removed " + fmt.Sprint(len(created)),
		r.key(3) + " objects deleted removed " + fmt.Sprint(len(created)),
		r.key(4) + " objects unreadable added 3",
	}
	if got := describe(changes); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dry run listed\n%s\nwant\n%s", join(got), join(want))
	}

	p, _ = r.run(r.options(at))
	if p.Changed != 5 || p.Conflicts != 0 || !p.Done {
		t.Errorf("restore: %+v, want 5 files changed", p)
	}
	for _, k := range keys {
		got, was := r.state(k), before[k]
		if !bytes.Equal(got.objects, was.objects) {
			t.Errorf("%s in S3: %d bytes, at T %d", k, len(got.objects), len(was.objects))
		}
		if k == r.key(2) { // dropped after T: reads fill it from S3
			if got.cache != nil {
				t.Errorf("%s: a cache entry came back", k)
			}
			continue
		}
		if !bytes.Equal(got.cache, was.cache) || (got.cache != nil && !got.digestOK) {
			t.Errorf("%s in the cache: %d bytes (digest right: %v), at T %d", k, len(got.cache), got.digestOK, len(was.cache))
		}
	}
	if _, err := restore.Run(ctx, r.st.Backup, r.st.Primary, r.st.Cache, r.options(at)); !errors.Is(err, restore.ErrAlreadyDone) {
		t.Errorf("the same restore again: %v, want ErrAlreadyDone", err)
	}
	again := r.options(at)
	again.Again = true
	if p, changes := r.run(again); p.Changed != 0 || len(changes) != 0 {
		t.Errorf("a second restore with Again: %+v %v, want nothing to do", p, describe(changes))
	}
}

// TestRestoreGoesOnWhereAKilledOneStopped: a restore stopped after its
// first file, then run again after late heartbeats reached every file,
// skips the file the first run finished (its late heartbeat stays) and
// restores the others to T; run once more, it has nothing to do.
func TestRestoreGoesOnWhereAKilledOneStopped(t *testing.T) {
	r := newRig(t)
	for d := range 3 {
		r.commit(d, 3, "a")
	}
	at := mark(t)
	atT := map[string][]byte{}
	for d := range 3 {
		atT[r.key(d)] = r.state(r.key(d)).objects
		r.commit(d, 1, "after-T")
	}
	ctx, stop := context.WithCancel(context.Background())
	o := r.options(at)
	o.Concurrency = 1 // the files in key order: day 0 first
	o.AfterWrite = func(int) { stop() }
	if _, err := restore.Run(ctx, r.st.Backup, r.st.Primary, r.st.Cache, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("the stopped restore: %v", err)
	}
	kept := map[int][]string{}
	for d := range 3 {
		kept[d] = r.commit(d, 1, "after-first-run", "objects")
	}

	p, _ := r.run(r.options(at))
	if p.Resumed != 1 || p.Total != 2 || p.Changed != 2 || !p.Done {
		t.Fatalf("the re-run: %+v, want 1 file skipped as finished and the other 2 restored", p)
	}
	ids := func(data []byte) map[string]bool {
		hbs, err := dayfile.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, hb := range hbs {
			out[hb.Id] = true
		}
		return out
	}
	if got := ids(r.state(r.key(0)).objects); !got[kept[0][0]] {
		t.Errorf("the file the first run finished lost the heartbeat merged after it: %v", got)
	}
	for _, d := range []int{1, 2} {
		if got := r.state(r.key(d)).objects; !bytes.Equal(got, atT[r.key(d)]) {
			t.Errorf("day %d is not at its content at T", d)
		}
	}
	if _, err := restore.Run(context.Background(), r.st.Backup, r.st.Primary, r.st.Cache, r.options(at)); !errors.Is(err, restore.ErrAlreadyDone) {
		t.Errorf("once finished: %v, want ErrAlreadyDone", err)
	}
}

// TestRestoreKeepsAConcurrentLateWrite makes the objects and cache sinks
// merge a late heartbeat between restore's read of the file and its write:
// the restore's conditional write fails, and the file ends with the content
// at T plus that heartbeat, not the one merged before the restore began.
func TestRestoreKeepsAConcurrentLateWrite(t *testing.T) {
	r := newRig(t)
	atT := r.commit(0, 4, "base")
	at := mark(t)
	before := r.commit(0, 1, "before-restore")
	r.commit(1, 2, "created-after-t") // restore deletes it, unless ...
	var mu sync.Mutex
	seen := map[string]bool{}
	var during, duringNew []string
	o := r.options(at)
	restore.SetBeforeWrite(&o, func(key string) {
		mu.Lock()
		defer mu.Unlock()
		if seen[key] {
			return
		}
		seen[key] = true
		switch key {
		case r.key(0):
			during = r.commit(0, 1, "during-restore", "objects", "cache", "backup")
		case r.key(1): // ... a heartbeat arrives while it does
			duringNew = r.commit(1, 1, "during-restore", "objects", "cache", "backup")
		}
	})
	p, changes := r.run(o)
	if p.Conflicts < 2 {
		t.Errorf("restore: %+v, want a conflict on each file", p)
	}
	kept := r.state(r.key(1))
	for name, data := range map[string][]byte{"S3": kept.objects, "cache": kept.cache} {
		if ids := idsOf(t, data); fmt.Sprint(ids) != fmt.Sprint(duringNew) {
			t.Errorf("the file that did not exist at T, %s: heartbeats %v, want only the one that arrived during the restore %v", name, ids, duringNew)
		}
	}
	want := append(append([]string{}, atT...), during...)
	sort.Strings(want)
	got := r.state(r.key(0))
	for name, data := range map[string][]byte{"S3": got.objects, "cache": got.cache} {
		if ids := idsOf(t, data); fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("%s: heartbeats %v, want those at T and the one that arrived during the restore %v (not %v)", name, ids, want, before)
		}
	}
	if !got.digestOK {
		t.Error("cache digest is not the digest of its day file")
	}
	for _, c := range changes {
		if c.Store == "objects" && (c.Kept != 1 || c.Conflicts != 1 || c.Deleted) {
			t.Errorf("change %+v: want one conflict and one kept heartbeat reported, the file not deleted", c)
		}
	}
}

func idsOf(t *testing.T, data []byte) []string {
	t.Helper()
	hbs, err := dayfile.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, hb := range hbs {
		ids = append(ids, hb.Id)
	}
	sort.Strings(ids)
	return ids
}

func equalState(a, b state) bool {
	return bytes.Equal(a.objects, b.objects) && bytes.Equal(a.cache, b.cache) && a.digestOK == b.digestOK
}

func describe(changes []restore.Change) []string {
	var out []string
	for _, c := range changes {
		s := c.Key + " " + c.Store
		if c.Created {
			s += " created"
		}
		if c.Deleted {
			s += " deleted"
		}
		if c.Unreadable {
			s += " unreadable"
		}
		if len(c.Added) > 0 {
			s += fmt.Sprintf(" added %d", len(c.Added))
		}
		if len(c.Removed) > 0 {
			s += fmt.Sprintf(" removed %d", len(c.Removed))
		}
		out = append(out, s)
	}
	return out
}

func join(s []string) string {
	var b bytes.Buffer
	for _, l := range s {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// TestRestoreGoesOnPastABadVersion: a backup version that does not decode
// fails its file alone; the others are restored and Run says which failed.
func TestRestoreGoesOnPastABadVersion(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.commit(0, 2, "good")
	if _, err := r.st.Backup.Put(ctx, r.key(1), []byte("not a day file")); err != nil {
		t.Fatal(err)
	}
	r.commit(1, 1, "in-s3", "objects")
	at := mark(t)
	good := r.state(r.key(0))
	r.commit(0, 1, "late")
	bad := r.state(r.key(1))
	var changes []restore.Change
	o := r.options(at)
	o.Changed = func(c restore.Change) { changes = append(changes, c) }
	p, err := restore.Run(ctx, r.st.Backup, r.st.Primary, r.st.Cache, o)
	if err == nil || !strings.Contains(err.Error(), r.key(1)) || !strings.Contains(err.Error(), "does not decode") || p.Failed != 1 {
		t.Fatalf("restore: %+v, %v; want the bad version's file named in an error", p, err)
	}
	if got := r.state(r.key(0)); !equalState(got, good) {
		t.Error("the good file was not restored")
	}
	if got := r.state(r.key(1)); !equalState(got, bad) {
		t.Error("the file whose version does not decode changed")
	}
}

// TestRestoreLeavesAUserDeletedDuringIt: Deleted is asked again before
// each file, so a user deleted after the listing (by `users delete`
// while a long restore runs) has nothing written back: the files the
// erasure removed stay removed.
func TestRestoreLeavesAUserDeletedDuringIt(t *testing.T) {
	r := newRig(t)
	r.commit(0, 3, "a")
	r.commit(1, 3, "a")
	at := mark(t)
	ctx := context.Background()
	for _, d := range []int{0, 1} { // the erasure
		if err := r.st.Primary.Delete(ctx, r.key(d)); err != nil {
			t.Fatal(err)
		}
		if err := r.st.Cache.Delete(ctx, r.key(d)); err != nil {
			t.Fatal(err)
		}
	}
	var asked atomic.Int32
	o := r.options(at)
	o.Deleted = func(string) bool { return asked.Add(1) > 2 } // alive while listed (a version of each file), deleted after
	p, changes := r.run(o)
	if asked.Load() <= 2 || p.Changed != 0 || len(changes) != 0 {
		t.Fatalf("asked %d times; %d files changed: %v; want Deleted asked again and nothing written", asked.Load(), p.Changed, changes)
	}
	for _, d := range []int{0, 1} {
		if s := r.state(r.key(d)); s.objects != nil || s.cache != nil {
			t.Errorf("day %d of the deleted user was restored", d)
		}
	}
}
