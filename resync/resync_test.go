package resync_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	"heartlog/reads"
	"heartlog/resync"
	"heartlog/schema/digest"
	"heartlog/ssdb"
	"heartlog/streams"
)

// user is a fresh user's days in the stack's shared buckets: every test
// has its own key prefix, so it sees only its files.
type user struct {
	days  []heartlogtest.UserDay
	files map[string][]byte // key: the day file written to S3
	scope resync.Scope
}

// newUser writes n days of a fresh user (3..3+n-1 days ago) to S3 and,
// with backup set, the same bytes to the backup.
func newUser(t *testing.T, st heartlogtest.Stores, n int, backup bool) user {
	t.Helper()
	ctx := context.Background()
	first := heartlogtest.NewUserDay(3)
	u := user{files: map[string][]byte{}}
	for i := range n {
		d := heartlogtest.NewUserDay(3 + i)
		d.User, d.Prefix = first.User, first.Prefix
		data := heartlogtest.DayFile(t, d.Beats(t, 0, 10+i))
		if _, err := st.Primary.Put(ctx, d.Key(), data); err != nil {
			t.Fatal(err)
		}
		if backup {
			if _, err := st.Backup.Put(ctx, d.Key(), data); err != nil {
				t.Fatal(err)
			}
		}
		u.days, u.files[d.Key()] = append(u.days, d), data
	}
	u.scope = resync.Scope{Prefix: resync.UserPrefix(first.Prefix, first.User.ID)}
	return u
}

// drift sets up the three kinds: day 0's backup file deleted, day 1's
// stale (an older content), and an extra backup file of a day S3 lacks.
func (u user) drift(t *testing.T, st heartlogtest.Stores) (missing, stale, extra string) {
	t.Helper()
	ctx := context.Background()
	missing, stale = u.days[0].Key(), u.days[1].Key()
	if err := st.Backup.Delete(ctx, missing); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Backup.Put(ctx, stale, heartlogtest.DayFile(t, u.days[1].Beats(t, 0, 3))); err != nil {
		t.Fatal(err)
	}
	x := heartlogtest.NewUserDay(40)
	x.User, x.Prefix = u.days[0].User, u.days[0].Prefix
	extra = x.Key()
	if _, err := st.Backup.Put(ctx, extra, heartlogtest.DayFile(t, x.Beats(t, 0, 4))); err != nil {
		t.Fatal(err)
	}
	return missing, stale, extra
}

func TestVerifyFindsExactlyTheDriftAndRepairFixesIt(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	u := newUser(t, st, 5, true)
	missing, stale, extra := u.drift(t, st)
	o := resync.BackupOptions{Options: resync.Options{Scope: u.scope, RequestsPerSecond: 200}}

	rep, err := resync.VerifyBackup(ctx, st.Primary, st.Backup, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []resync.Found{{Kind: resync.Missing, Key: missing}, {Kind: resync.Stale, Key: stale}, {Kind: resync.Extra, Key: extra}}
	if !equalFound(rep.Drift, want) || rep.Files != 5 || rep.InSync != 3 || rep.Left() != 3 {
		t.Fatalf("verify: files %d, in sync %d, drift %+v; want 5, 3, %+v", rep.Files, rep.InSync, rep.Drift, want)
	}
	if v, err := st.Backup.Versions(ctx, missing); err != nil || len(v) != 1 {
		t.Fatalf("verify wrote something: %d versions of the missing file (%v)", len(v), err)
	}

	o.Repair = true
	rep, err = resync.VerifyBackup(ctx, st.Primary, st.Backup, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Left() != 1 || rep.Count(resync.Extra) != 1 || len(rep.Failed) != 0 {
		t.Fatalf("repair: left %d (want the extra alone), failed %v", rep.Left(), rep.Failed)
	}
	for key, data := range u.files {
		got, _, err := st.Backup.Get(ctx, key)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after repair, backup %s differs from S3 (%v)", key, err)
		}
	}
	if _, _, err := st.Backup.Get(ctx, extra); err != nil {
		t.Fatalf("repair without DeleteExtra removed the extra: %v", err)
	}

	o.DeleteExtra = true
	if rep, err = resync.VerifyBackup(ctx, st.Primary, st.Backup, o); err != nil || rep.Left() != 0 {
		t.Fatalf("repair with DeleteExtra: left %d, %v", rep.Left(), err)
	}
	o.Repair, o.DeleteExtra = false, false
	if rep, err = resync.VerifyBackup(ctx, st.Primary, st.Backup, o); err != nil || len(rep.Drift) != 0 || rep.InSync != 5 {
		t.Fatalf("verify after repair: drift %+v, in sync %d, %v", rep.Drift, rep.InSync, err)
	}
	if v, err := st.Backup.Versions(ctx, extra); err != nil || len(v) != 1 {
		t.Fatalf("the deleted extra must keep its version: %d versions (%v)", len(v), err)
	}
}

func equalFound(got, want []resync.Found) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Kind != want[i].Kind || got[i].Key != want[i].Key {
			return false
		}
	}
	return true
}

func TestVerifySince(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	u := newUser(t, st, 3, true)
	missing, _, _ := u.drift(t, st) // missing is the newest day, the others older
	o := resync.BackupOptions{Options: resync.Options{Scope: u.scope}}
	o.Since = u.days[0].Day
	rep, err := resync.VerifyBackup(ctx, st.Primary, st.Backup, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 1 || !equalFound(rep.Drift, []resync.Found{{Kind: resync.Missing, Key: missing}}) {
		t.Fatalf("--since %s: files %d, drift %+v", o.Since, rep.Files, rep.Drift)
	}
}

func TestRebuildBackupRestoresEveryFileAndARerunWritesNothing(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	u := newUser(t, st, 6, false) // the backup emptied
	rep, err := resync.RebuildBackup(ctx, st.Primary, st.Backup, resync.Options{Scope: u.scope, RequestsPerSecond: 200})
	if err != nil || rep.Files != 6 || rep.Count(resync.Missing) != 6 || rep.Left() != 0 {
		t.Fatalf("rebuild: files %d, missing %d, left %d, %v", rep.Files, rep.Count(resync.Missing), rep.Left(), err)
	}
	for key, data := range u.files {
		got, _, err := st.Backup.Get(ctx, key)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("backup %s is not S3's bytes (%v)", key, err)
		}
	}
	if rep, err = resync.RebuildBackup(ctx, st.Primary, st.Backup, resync.Options{Scope: u.scope}); err != nil || rep.InSync != 6 {
		t.Fatalf("re-run: in sync %d, %v", rep.InSync, err)
	}
	for key := range u.files {
		if v, err := st.Backup.Versions(ctx, key); err != nil || len(v) != 1 {
			t.Fatalf("%s: %d versions after a re-run, want 1 (%v)", key, len(v), err)
		}
	}
}

type dropped struct{}

func (dropped) State(string) streams.ShardState { return streams.ShardDropped }

func TestRebuildCacheAnswersOldDaysFromSSDB(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	u := newUser(t, st, 4, false)
	// The cache emptied of this user's days: the stack's Redis is shared
	// by every test, so only this user's keys go (as FLUSHDB would take them).
	for key := range u.files {
		if err := st.Cache.Delete(ctx, key, digest.Key(key), digest.GenKey(key)); err != nil {
			t.Fatal(err)
		}
	}
	// One entry holds a heartbeat S3 lacks (the cache processor ahead of
	// the objects processor) and lacks some S3 has: the rebuild caches the
	// union.
	ahead := u.days[2]
	aheadFile := heartlogtest.DayFile(t, ahead.Beats(t, 5, 13))
	if err := st.Cache.PutDayFiles(ctx, []ssdb.DayFile{{Key: ahead.Key(), Data: aheadFile}}); err != nil {
		t.Fatal(err)
	}

	rep, err := resync.RebuildCache(ctx, st.Primary, st.Cache, resync.Options{Scope: u.scope})
	if err != nil || rep.Files != 4 || rep.Written != 3 || rep.Merged != 1 {
		t.Fatalf("rebuild cache: %+v, %v", rep, err)
	}
	// S3 unreachable now: every read must be a cache hit, with the digest.
	offline := heartlogtest.Bucket(t, "HEARTLOG_S3_", "http://127.0.0.1:1")
	r := reads.New(nil, dropped{}, st.Cache, offline, 4, heartlogtest.Logger(t))
	for i, d := range u.days {
		act, err := r.Activity(ctx, d.User, []string{d.Day})
		if err != nil {
			t.Fatalf("day %d with S3 offline: %v", i, err)
		}
		want := 10 + i
		if d.Key() == ahead.Key() {
			want = 13
		}
		if len(act.Beats) != want {
			t.Fatalf("day %d: %d heartbeats from the cache, want %d", i, len(act.Beats), want)
		}
		if _, ok, err := st.Cache.Get(ctx, digest.Key(d.Key())); err != nil || !ok {
			t.Fatalf("day %d: no digest beside the cached file (%v)", i, err)
		}
	}
	if rep, err = resync.RebuildCache(ctx, st.Primary, st.Cache, resync.Options{Scope: u.scope}); err != nil || rep.InSync != 4 {
		t.Fatalf("re-run: %+v, %v (want all 4 in sync, the merged one as the union)", rep, err)
	}
}

func TestEveryExportsTheDrift(t *testing.T) {
	st := heartlogtest.OpenStores(t)
	u := newUser(t, st, 3, true)
	u.drift(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- resync.Every(ctx, 50*time.Millisecond, st.Primary, st.Backup, resync.Options{Scope: u.scope}, heartlogtest.Logger(t), resync.Hooks{})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for heartlogtest.MetricValue(t, "heartlog_backup_verify_last_success_timestamp_seconds", nil) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no scheduled verify finished in 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, k := range resync.Kinds {
		if v := heartlogtest.MetricValue(t, "heartlog_backup_drift_files", map[string]string{"kind": string(k)}); v != 1 {
			t.Errorf("heartlog_backup_drift_files{kind=%q} = %v, want 1", k, v)
		}
	}
	if v := heartlogtest.MetricValue(t, "heartlog_backup_verify_files", nil); v != 3 {
		t.Errorf("heartlog_backup_verify_files = %v, want 3", v)
	}
	// Report only: the scheduled verify never writes.
	if _, _, err := st.Backup.Get(context.Background(), u.days[0].Key()); err == nil {
		t.Error("the scheduled verify repaired the missing file")
	}
}

// racingBackup is the real backup bucket with the backup processor's late
// write landing between verify's read of a file and its repair.
type racingBackup struct {
	*objstore.S3
	key  string
	late []byte
	once sync.Once
}

func (b *racingBackup) PutIfMatch(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	if key == b.key {
		b.once.Do(func() {
			if _, err := b.S3.Put(ctx, key, b.late); err != nil {
				panic(err)
			}
		})
	}
	return b.S3.PutIfMatch(ctx, key, data, ifMatch)
}

func TestRepairDoesNotOverwriteALateWriteOfTheBackupProcessor(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	u := newUser(t, st, 2, true)
	_, stale, _ := u.drift(t, st)
	late := heartlogtest.DayFile(t, u.days[1].Beats(t, 0, 12)) // S3's 11 heartbeats and a late one
	b := &racingBackup{S3: st.Backup, key: stale, late: late}
	rep, err := resync.VerifyBackup(ctx, st.Primary, b, resync.BackupOptions{Options: resync.Options{Scope: u.scope}, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0], stale) || rep.Count(resync.Missing) != 1 {
		t.Fatalf("failed %v, drift %+v: want the raced file reported, the missing one repaired", rep.Failed, rep.Drift)
	}
	if got, _, err := st.Backup.Get(ctx, stale); err != nil || !bytes.Equal(got, late) {
		t.Fatalf("the backup processor's late write was overwritten (%v)", err)
	}
}

// TestVerifyReadsOnlyWhatDiffers: files whose listed ETags are equal in S3
// and the backup cost no read; each drifted one is read from both (the
// extra only from S3, to confirm it is gone there). A daily verify of a
// whole Space is its list pages, not a GET per file under the Space's
// request ceiling.
func TestVerifyReadsOnlyWhatDiffers(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	u := newUser(t, st, 6, true)
	primary, backup := &heartlogtest.CountingBucket{Bucket: st.Primary}, &heartlogtest.CountingBucket{Bucket: st.Backup}
	o := resync.BackupOptions{Options: resync.Options{Scope: u.scope}}
	rep, err := resync.VerifyBackup(ctx, primary, backup, o)
	if err != nil || rep.InSync != 6 || len(rep.Drift) != 0 {
		t.Fatalf("verify in sync: %+v, %v; want 6 in sync", rep, err)
	}
	if p, b := primary.Gets(), backup.Gets(); p != 0 || b != 0 {
		t.Fatalf("verify of 6 files in sync read %d from S3 and %d from the backup, want none", p, b)
	}
	u.drift(t, st)
	rep, err = resync.VerifyBackup(ctx, primary, backup, o)
	if err != nil || rep.InSync != 4 || rep.Count(resync.Missing) != 1 || rep.Count(resync.Stale) != 1 || rep.Count(resync.Extra) != 1 {
		t.Fatalf("verify with drift: %+v, %v; want 4 in sync, one of each kind", rep, err)
	}
	if p, b := primary.Gets(), backup.Gets(); p != 3 || b != 2 {
		t.Fatalf("verify with drift read %d from S3 and %d from the backup, want 3 (missing, stale, extra) and 2 (missing, stale)", p, b)
	}
}
