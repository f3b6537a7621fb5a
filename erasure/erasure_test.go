package erasure_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"heartlog/erasure"
	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	"heartlog/schema/dayfile"
	"heartlog/users"
)

// lateWriter is the real primary bucket with a sink's commit that began
// before the tombstone landing during the erasure: the first delete is
// followed by a new day file of the user.
type lateWriter struct {
	*objstore.S3
	late string
	data []byte
	once sync.Once
}

func (b *lateWriter) Delete(ctx context.Context, key string) error {
	err := b.S3.Delete(ctx, key)
	b.once.Do(func() {
		if _, perr := b.S3.Put(ctx, b.late, b.data); perr != nil {
			panic(perr)
		}
	})
	return err
}

// TestAFileWrittenDuringTheErasureIsNotLeftBehind: a day file written
// after the erasure listed S3 makes Erase fail with ErrWrittenDuring (so
// `users delete` does not record the user as erased), and the next run
// removes it and succeeds.
func TestAFileWrittenDuringTheErasureIsNotLeftBehind(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	d := heartlogtest.NewUserDay(3)
	data := heartlogtest.DayFile(t, d.Beats(t, 0, 3))
	if _, err := st.Primary.Put(ctx, d.Key(), data); err != nil {
		t.Fatal(err)
	}
	late := dayfile.Key(d.Prefix, d.User.ID, heartlogtest.NewUserDay(2).Day)
	tomb := users.Tombstone{ID: d.User.ID, ObjectPrefix: d.Prefix}
	primary := &lateWriter{S3: st.Primary, late: late, data: data}

	_, err := erasure.Erase(ctx, tomb, erasure.Stores{Primary: primary}, erasure.Options{})
	if !errors.Is(err, erasure.ErrWrittenDuring) {
		t.Fatalf("erase with a file written meanwhile: %v, want ErrWrittenDuring", err)
	}
	r, err := erasure.Erase(ctx, tomb, erasure.Stores{Primary: st.Primary}, erasure.Options{})
	if err != nil || r.Objects != 1 {
		t.Fatalf("second erase: %+v, %v; want the late file removed", r, err)
	}
	if keys, err := objstore.ListAll(ctx, st.Primary, d.Prefix+"/"+d.User.ID+"/"); err != nil || len(keys) != 0 {
		t.Fatalf("left in S3: %v (%v)", keys, err)
	}
}

// TestPurgeErasesEveryVersion: a user with many backup files, each with
// three versions and some with a delete marker on top, has nothing left in
// the backup's history after an erasure with PurgeBackups (versitygw lost
// some of these when one key's versions were deleted at once).
func TestPurgeErasesEveryVersion(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	d := heartlogtest.NewUserDay(3)
	data := heartlogtest.DayFile(t, d.Beats(t, 0, 3))
	entries := 0
	for day := range 30 {
		key := dayfile.Key(d.Prefix, d.User.ID, heartlogtest.NewUserDay(day+3).Day)
		for range 3 {
			if _, err := st.Backup.Put(ctx, key, data); err != nil {
				t.Fatal(err)
			}
			entries++
		}
		if day%3 == 0 {
			if err := st.Backup.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			entries++
		}
	}
	tomb := users.Tombstone{ID: d.User.ID, ObjectPrefix: d.Prefix}
	r, err := erasure.Erase(ctx, tomb, erasure.Stores{Backup: st.Backup}, erasure.Options{PurgeBackups: true})
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	if r.BackupFiles != 30 || r.BackupPurged != entries {
		t.Errorf("report: %d files, %d purged; want 30 and %d", r.BackupFiles, r.BackupPurged, entries)
	}
	left := 0
	for _, err := range st.Backup.History(ctx, d.Prefix+"/"+d.User.ID+"/") {
		if err != nil {
			t.Fatal(err)
		}
		left++
	}
	if left != 0 {
		t.Errorf("%d versions or markers of the user are left in the backup", left)
	}
}
