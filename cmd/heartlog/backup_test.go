package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	hlstatus "heartlog/status"
	"heartlog/streams"
)

// backupRig is a user in a fresh database with days in the stack's S3 and
// backup buckets (shared: the user's random prefix keeps them apart).
type backupRig struct {
	st   heartlogtest.Stores
	env  []string
	user string
	days []heartlogtest.UserDay
}

func newBackupRig(t *testing.T, n int) *backupRig {
	t.Helper()
	ctx := context.Background()
	pool, dbURL := heartlogtest.NewDatabase(t)
	r := &backupRig{st: heartlogtest.OpenStores(t), env: []string{"HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_LOG_LEVEL=warn"}}
	first := heartlogtest.NewUserDay(3)
	hash := make([]byte, 32)
	_, _ = rand.Read(hash)
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, name, api_key_hash, object_prefix, time_zone) VALUES ($1, 'ops', $2, $3, 'UTC')`,
		first.User.ID, hash, first.Prefix); err != nil {
		t.Fatal(err)
	}
	r.user = first.User.ID
	for i := range n {
		d := heartlogtest.NewUserDay(3 + i)
		d.User, d.Prefix = first.User, first.Prefix
		data := heartlogtest.DayFile(t, d.Beats(t, 0, 5+i))
		for _, b := range []interface {
			Put(context.Context, string, []byte) (string, error)
		}{r.st.Primary, r.st.Backup} {
			if _, err := b.Put(ctx, d.Key(), data); err != nil {
				t.Fatal(err)
			}
		}
		r.days = append(r.days, d)
	}
	return r
}

// run runs the binary and returns stdout, stderr and the exit status.
func (r *backupRig) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := command(r.env, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

func TestBackupVerifyExitsOnDriftAndRepairClearsIt(t *testing.T) {
	ctx := context.Background()
	r := newBackupRig(t, 4)
	missing, stale := r.days[0].Key(), r.days[1].Key()
	if err := r.st.Backup.Delete(ctx, missing); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.Backup.Put(ctx, stale, heartlogtest.DayFile(t, r.days[1].Beats(t, 0, 2))); err != nil {
		t.Fatal(err)
	}
	x := heartlogtest.NewUserDay(30)
	x.User, x.Prefix = r.days[0].User, r.days[0].Prefix
	extra := x.Key()
	if _, err := r.st.Backup.Put(ctx, extra, heartlogtest.DayFile(t, x.Beats(t, 0, 3))); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := r.run(t, "backup", "verify", "--user", r.user)
	want := "missing " + missing + "\nstale   " + stale + "\nextra   " + extra + "\n" +
		"backup verify: 4 day files in S3, 2 in sync; 1 missing, 1 stale, 1 extra; 3 drifted\n"
	if code != 3 || out != want {
		t.Fatalf("verify: exit %d, stdout\n%s\nwant exit 3 and\n%s\nstderr: %s", code, out, want, errOut)
	}
	if !strings.Contains(errOut, "4/4 files") || !strings.Contains(errOut, "ETA") {
		t.Errorf("no progress line on stderr: %q", errOut)
	}

	out, _, code = r.run(t, "backup", "verify", "--user", r.user, "--repair")
	if code != 3 || !strings.Contains(out, "(repaired from S3)") || !strings.Contains(out, extra+"  (kept") {
		t.Fatalf("repair: exit %d (want 3: the extra is kept), stdout\n%s", code, out)
	}
	out, _, code = r.run(t, "backup", "verify", "--user", r.user, "--repair", "--delete-extra")
	if code != 0 || !strings.Contains(out, "backup OK") {
		t.Fatalf("repair --delete-extra: exit %d, stdout\n%s", code, out)
	}
	out, _, code = r.run(t, "backup", "verify", "--user", r.user, "--json")
	var rep struct {
		Files, Left int
		Drift       []any
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Files != 4 || rep.Left != 0 || len(rep.Drift) != 0 {
		t.Fatalf("verify --json after repair: exit %d, %+v (%v)\n%s", code, rep, err, out)
	}
	for _, d := range r.days {
		s3, _, err1 := r.st.Primary.Get(ctx, d.Key())
		b, _, err2 := r.st.Backup.Get(ctx, d.Key())
		if err1 != nil || err2 != nil || !bytes.Equal(s3, b) {
			t.Fatalf("%s: backup is not S3's bytes (%v, %v)", d.Key(), err1, err2)
		}
	}
	if _, _, code := r.run(t, "backup", "verify", "--delete-extra"); code != 1 {
		t.Fatalf("--delete-extra without --repair: exit %d, want 1", code)
	}
}

func TestRebuildFromS3(t *testing.T) {
	ctx := context.Background()
	r := newBackupRig(t, 3)
	for _, d := range r.days {
		if err := r.st.Backup.Delete(ctx, d.Key()); err != nil {
			t.Fatal(err)
		}
	}
	if _, errOut, code := r.run(t, "rebuild", "backup", "--user", r.user); code != 1 || !strings.Contains(errOut, "pass --from-s3") {
		t.Fatalf("without --from-s3: exit %d, %s", code, errOut)
	}
	out, errOut, code := r.run(t, "rebuild", "backup", "--from-s3", "--user", r.user)
	if code != 0 || !strings.Contains(out, "3 day files in S3, 0 already in the backup, 3 written") {
		t.Fatalf("rebuild backup: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = r.run(t, "rebuild", "backup", "--from-s3", "--user", r.user)
	if code != 0 || !strings.Contains(out, "3 already in the backup, 0 written") {
		t.Fatalf("rebuild backup again: exit %d\n%s", code, out)
	}
	out, errOut, code = r.run(t, "rebuild", "cache", "--from-s3", "--user", r.user)
	if code != 0 || !strings.Contains(out, "rebuild cache: 3 day files in S3") {
		t.Fatalf("rebuild cache: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, d := range r.days {
		s3, _, _ := r.st.Primary.Get(ctx, d.Key())
		if cached, ok, err := r.st.Cache.Get(ctx, d.Key()); err != nil || !ok || !bytes.Equal(cached, s3) {
			t.Fatalf("%s: not cached with S3's bytes (%v, %v)", d.Key(), ok, err)
		}
	}
}

// TestProcessVerifiesTheBackupOnSchedule: `heartlog process`, where it runs
// the backup processor, verifies the whole backup every
// HEARTLOG_BACKUP_VERIFY_EVERY and only reports: a backup with one file
// missing, one stale and one extra shows exactly that drift in the
// process's metrics and in `heartlog status` (exit 1, a warning), and
// nothing is repaired. Private buckets: the verify covers every file.
func TestProcessVerifiesTheBackupOnSchedule(t *testing.T) {
	ctx := context.Background()
	primary, backup, buckets := heartlogtest.PrivateBuckets(t)
	first := heartlogtest.NewUserDay(3)
	var days []heartlogtest.UserDay
	for i := range 4 {
		d := heartlogtest.NewUserDay(3 + i)
		d.User, d.Prefix = first.User, first.Prefix
		data := heartlogtest.DayFile(t, d.Beats(t, 0, 5+i))
		for _, b := range []*objstore.S3{primary, backup} {
			if _, err := b.Put(ctx, d.Key(), data); err != nil {
				t.Fatal(err)
			}
		}
		days = append(days, d)
	}
	if err := backup.Delete(ctx, days[0].Key()); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Put(ctx, days[1].Key(), heartlogtest.DayFile(t, days[1].Beats(t, 0, 2))); err != nil {
		t.Fatal(err)
	}
	extra := heartlogtest.NewUserDay(30)
	extra.User, extra.Prefix = first.User, first.Prefix
	if _, err := backup.Put(ctx, extra.Key(), heartlogtest.DayFile(t, extra.Beats(t, 0, 3))); err != nil {
		t.Fatal(err)
	}

	// The stream before the process: status cannot judge anything without it.
	n := heartlogtest.StartTopology(t, streams.DefaultConfig())
	_, dbURL := heartlogtest.NewDatabase(t)
	admin := freeAddr(t)
	env := append([]string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + dbURL, "HEARTLOG_LOG_LEVEL=warn",
		"HEARTLOG_PROCESSORS=backup", "HEARTLOG_BACKUP_VERIFY_EVERY=1s", "HEARTLOG_ADMIN_ADDR=" + admin}, buckets...)
	startHeartlog(t, env, "process")
	r := awaitStatus(t, env, "the scheduled verify", func(r hlstatus.Report, code int) bool { return r.Backup.Files > 0 && code == 1 })
	if r.Backup.Files != 4 || r.Backup.Missing != 1 || r.Backup.Stale != 1 || r.Backup.Extra != 1 || r.Backup.Error != "" {
		t.Fatalf("status shows the verify %+v; want 4 files, 1 missing, 1 stale, 1 extra", r.Backup)
	}
	if !hasWarning(r, "1 missing, 1 stale, 1 extra") {
		t.Errorf("no drift warning in %q", r.Warnings)
	}
	metrics := get(t, "http://"+admin+"/metrics")
	for _, want := range []string{`heartlog_backup_drift_files{kind="missing"} 1`, `heartlog_backup_drift_files{kind="stale"} 1`,
		`heartlog_backup_drift_files{kind="extra"} 1`, "heartlog_backup_verify_files 4"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("the process's metrics lack %q", want)
		}
	}
	if _, _, err := backup.Get(ctx, days[0].Key()); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("the missing file after the scheduled verify: %v, want still missing (report only)", err)
	}
}
