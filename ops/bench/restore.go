package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"heartlog/heartbeat"
	"heartlog/internal/faults"
	"heartlog/objstore"
	"heartlog/restore"
	"heartlog/resync"
	"heartlog/schema/dayfile"
)

// The restore and verify scenarios time `heartlog restore --at TIME` and
// `heartlog backup verify` (restore.Run and resync.VerifyBackup, in this
// process, with the commands' settings) over day files seeded straight
// into the stack's buckets, reading them through dayfiles-latency's
// simulation: the primary answers in -latency-primary, the backup like
// one Space (-latency-backup-put PUTs, -latency-backup-get for the rest, a
// ceiling of -restore-backup-rate requests/s, 503 SlowDown past it). Every
// day file of a run is under one object prefix of its own (the commands'
// --user scope is one user's; a shared prefix scopes the whole seed
// without touching anything else in the buckets), and is deleted at the
// end (every backup version too).

// lateHeartbeats is what the seed's second version of a file adds: a
// late flush of the day.
const lateHeartbeats = 3

// daySeed is the seeded user-days: keys[i] holds file(i, ...).
type daySeed struct {
	prefix string // the object prefix of every key
	keys   []string
	users  int
	days   []time.Time
	now    time.Time // the heartbeats' receive time, for Prepare
	first  [][32]byte
	bytes  atomic.Int64 // of the first versions
	hbs    atomic.Int64 // of the first versions
}

// newDaySeed lays out n user-days: n/days users (rounded up) with days
// consecutive UTC days each, a month ago.
func newDaySeed(n, days int) *daySeed {
	days = min(days, n)
	s := &daySeed{prefix: randomPrefix(), users: (n + days - 1) / days, now: time.Now(), first: make([][32]byte, n)}
	start := s.now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -30-days)
	for d := range days {
		s.days = append(s.days, start.AddDate(0, 0, d))
	}
	ids := make([]string, s.users)
	for u := range ids {
		ids[u] = uuid.NewString()
	}
	for i := range n {
		s.keys = append(s.keys, dayfile.Key(s.prefix, ids[i/days], s.days[i%days].Format(heartbeat.DayLayout)))
	}
	return s
}

// scope is the listing prefix of every seeded key.
func (s *daySeed) scope() string { return s.prefix + "/" }

// file is user-day i: a working day of 100 to 500 heartbeats (the same
// every time it is asked for), and with late, lateHeartbeats more at 22:00.
func (s *daySeed) file(i int, late bool) ([]byte, int, error) {
	rng := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	_, user, _, err := dayfile.ParseKey(s.keys[i])
	if err != nil {
		return nil, 0, err
	}
	date := s.days[i%len(s.days)]
	hbs, err := workday(rng, user, date, 100+rng.IntN(401), s.now)
	if err != nil {
		return nil, 0, err
	}
	if late {
		for j := range lateHeartbeats {
			hb := workdayHeartbeat(rng, 0, "main", j)
			hb.Time = float64(date.Add(22*time.Hour+time.Duration(j)*time.Minute).UnixMicro()) / 1e6
			if err := prepare(hb, user, userAgents[0], "workstation", s.now); err != nil {
				return nil, 0, err
			}
			hbs = append(hbs, hb)
		}
	}
	merged, _ := dayfile.Merge(nil, hbs)
	data, err := dayfile.Encode(merged)
	return data, len(merged), err
}

// write puts every file (late or not) into primary and backup (either nil:
// not that one), straight to the stack, 64 at a time; with record, it keeps
// each file's hash and counts its size.
func (s *daySeed) write(ctx context.Context, primary, backup objstore.Bucket, late, record bool) error {
	idx := make(map[string]int, len(s.keys))
	for i, k := range s.keys {
		idx[k] = i
	}
	var mu sync.Mutex
	var errs []error
	parallelKeys(s.keys, func(k string) {
		i := idx[k]
		err := func() error {
			data, n, err := s.file(i, late)
			if err != nil {
				return err
			}
			if record {
				s.first[i] = sha256.Sum256(data)
				s.bytes.Add(int64(len(data)))
				s.hbs.Add(int64(n))
			}
			for _, b := range []objstore.Bucket{primary, backup} {
				if b == nil {
					continue
				}
				if _, err := b.Put(ctx, k, data); err != nil {
					return fmt.Errorf("seed %s in %s: %w", k, b.Name(), err)
				}
			}
			return nil
		}()
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	return errors.Join(errs...)
}

// seedRow is the row of a seed written in took.
func (s *daySeed) seedRow(scenario string, took time.Duration, what string) result {
	n := float64(len(s.keys))
	r := result{scenario: scenario + "-seed", target: "—", unit: "files/s", rate: n / took.Seconds(), seconds: took.Seconds(), cpuNote: "-"}
	r.notes = []string{fmt.Sprintf("%s user-days (%s users × %d UTC days from %s, under the object prefix %s), %s heartbeats (%.0f a file), %s (%s a file), written straight to the stack, 64 at a time, in %.1fs: %s",
		thousands(n), thousands(float64(s.users)), len(s.days), s.days[0].Format(time.DateOnly), s.prefix,
		thousands(float64(s.hbs.Load())), float64(s.hbs.Load())/n, mib(s.bytes.Load()), thousands(float64(s.bytes.Load())/n)+" B", took.Seconds(), what)}
	return r
}

// check compares every primary file with its first version (read
// straight from the stack): how many differ and how many are missing.
func (s *daySeed) check(ctx context.Context, primary objstore.Bucket) (differ, missing, failed int64) {
	idx := make(map[string]int, len(s.keys))
	for i, k := range s.keys {
		idx[k] = i
	}
	var d, m, f atomic.Int64
	parallelKeys(s.keys, func(k string) {
		data, _, err := primary.Get(ctx, k)
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			m.Add(1)
		case err != nil:
			f.Add(1)
		case sha256.Sum256(data) != s.first[idx[k]]:
			d.Add(1)
		}
	})
	return d.Load(), m.Load(), f.Load()
}

// spacesSimulation is openSimulation with the backup's ceiling at one
// Space's, -restore-backup-rate, and the layout of a seed of n user-days.
func spacesSimulation(ctx context.Context, cfg config, n int) (*dayStores, *simulation, func(), *daySeed, error) {
	cfg.latBackupRate = cfg.restoreBackupRate
	ds, sim, done, err := openSimulation(ctx, cfg)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return ds, sim, done, newDaySeed(n, cfg.restoreDays), nil
}

// lostEvery: of the restore's seed, every lostEvery-th file is deleted from
// the primary after its second version (a lost file).
const lostEvery = 20

// runRestore seeds -restore-files user-days as a first version in both
// buckets, notes T, writes a second version of every file (the first plus
// lateHeartbeats late heartbeats, in both buckets, as the processors would)
// and deletes every lostEvery-th from the primary; then it times the
// restore of all of them to T and checks that every primary file is its
// first version again.
func runRestore(ctx context.Context, st *stack, cfg config) ([]result, error) {
	ds, sim, done, seed, err := spacesSimulation(ctx, cfg, cfg.restoreFiles)
	if err != nil {
		return nil, err
	}
	defer done()
	fmt.Fprintf(os.Stderr, "bench: restore: seeding %d day files under %s, two versions each\n", len(seed.keys), seed.scope())
	t0 := time.Now()
	err = seed.write(ctx, ds.primary, ds.backup, false, true)
	// T is a whole second after every first version, and every second
	// version at least a second later (S3 and Spaces keep LastModified
	// to the second).
	at := time.Now().Truncate(time.Second).Add(time.Second)
	if err == nil {
		time.Sleep(time.Until(at.Add(1100 * time.Millisecond)))
		err = seed.write(ctx, ds.primary, ds.backup, true, false)
	}
	lost := 0
	for i := 0; err == nil && i < len(seed.keys); i += lostEvery {
		err = ds.primary.Delete(ctx, seed.keys[i])
		lost++
	}
	out := []result{seed.seedRow("restore", time.Since(t0), fmt.Sprintf("version 1 in both buckets; T = %s; version 2 (+%d late heartbeats) in both; then every %dth file (%d) deleted from the primary",
		at.Format(time.RFC3339), lateHeartbeats, lostEvery, lost))}
	if err == nil {
		// The check below must see the damage before the restore.
		differ, missing, unread := seed.check(ctx, ds.primary)
		out[0].notes = append(out[0].notes, fmt.Sprintf("check before the restore: %d differ from T, %d missing, %d could not be read", differ, missing, unread))
		if int(differ) != len(seed.keys)-lost || int(missing) != lost || unread > 0 {
			err = fmt.Errorf("restore: the seed left %d files differing from T and %d missing, want %d and %d", differ, missing, len(seed.keys)-lost, lost)
		}
	}
	if err != nil {
		out[0].failed = err.Error()
		return append(out, cleanupSeed(ctx, ds, "restore", seed.keys)), err
	}
	fmt.Fprintf(os.Stderr, "bench: restore: restoring %d files to %s through the simulation\n", len(seed.keys), at.Format(time.RFC3339))
	var p restore.Progress
	created := 0
	opts := restore.Options{
		At: at, Prefix: seed.scope(), Objects: true,
		Concurrency: cfg.restoreConcurrency, RequestsPerSecond: cfg.restoreRPS, Log: zerolog.Nop(),
		Changed: func(c restore.Change) { // one at a time
			if c.Created {
				created++
			}
		},
		Progress: everySecond(func(p restore.Progress) {
			if !p.Listed {
				fmt.Fprintf(os.Stderr, "\rbench: restore: listing: %d versions   ", p.Versions)
				return
			}
			fmt.Fprintf(os.Stderr, "\rbench: restore: %d/%d files, %.0f files/s   ", p.Files, p.Total, p.Rate())
		}),
	}
	m, err := timeThrough(cfg, sim, "restore", func() (err error) {
		p, err = restore.Run(ctx, sim.backup, sim.primary, nil, opts)
		return err
	})
	// The restore's journal (a chunk of finished keys every 2 s) goes with the seed.
	journal, jerr := objstore.ListAll(ctx, ds.primary, restore.JournalPrefix(opts))
	if err == nil {
		err = jerr
	}
	differ, missing, unread := seed.check(ctx, ds.primary)
	r := restoreRow(cfg, p, m, created, lost)
	r.notes = append(r.notes, fmt.Sprintf("check (every primary file read straight from the stack): %s of %s equal their content at T, %d differ, %d missing, %d could not be read",
		thousands(float64(int64(len(seed.keys))-differ-missing-unread)), thousands(float64(len(seed.keys))), differ, missing, unread))
	if err == nil && differ+missing+unread > 0 {
		err = fmt.Errorf("restore: %d files not at their content at T (%d differ, %d missing, %d could not be read)", differ+missing+unread, differ, missing, unread)
	}
	if err != nil {
		r.failed = err.Error() + "; " + strings.Join(r.notes, "; ") // keep what was measured
	}
	return append(out, r, cleanupSeed(ctx, ds, "restore", append(seed.keys, journal...))), err
}

// restoreRow reports a restore that created created files, of lost
// deleted from the primary.
func restoreRow(cfg config, p restore.Progress, m measured, created, lost int) result {
	wall, pr, br := m.wall.Seconds(), m.primary, m.backup
	perFile := float64(br.Requests) / float64(max(1, p.Files))
	r := result{scenario: "restore", unit: "files/s", seconds: wall, rate: float64(p.Files) / wall,
		target: idealRate(cfg, perFile)}
	r.cpuNote, r.cpuCores = m.cpu+" (bench: restore and the proxies)", m.cpuSelf
	r.notes = []string{
		fmt.Sprintf("%s of %s files restored in %.1fs, %d changed (%d created, of the %d lost from the primary), %d conflicts, %d failed; `heartlog restore --to objects` settings: concurrency %d, backup paced at %s requests/s",
			thousands(float64(p.Files)), thousands(float64(p.Total)), wall, p.Changed, created, lost, p.Conflicts, p.Failed, cfg.restoreConcurrency, thousands(cfg.restoreRPS)),
		fmt.Sprintf("the listing of %s versions took %.1fs, then %s files/s restoring", thousands(float64(p.Versions)), (p.Elapsed - p.Restoring).Seconds(), thousands(p.Rate())),
		fmt.Sprintf("backup proxy (GET %s, ceiling %s requests/s, 503 SlowDown past it): %s requests (%s/s, %.2f a file): %s GETs, %s LISTs, %s PUTs; %s answered 503",
			cfg.latBackupGet, thousands(cfg.restoreBackupRate), thousands(float64(br.Requests)), thousands(float64(br.Requests)/wall), perFile,
			thousands(float64(br.Gets)), thousands(float64(br.Lists)), thousands(float64(br.Puts)), thousands(float64(br.Faults()))),
		fmt.Sprintf("primary proxy (%s a request): %s requests (%.2f a file): %s GETs, %s PUTs, %s DELETEs",
			cfg.latPrimary, thousands(float64(pr.Requests)), float64(pr.Requests)/float64(max(1, p.Files)), thousands(float64(pr.Gets)), thousands(float64(pr.Puts)), thousands(float64(pr.Deletes))),
		fmt.Sprintf("Little's law: %d files in flight over %s + %s + %s per file allow %s files/s",
			cfg.restoreConcurrency, cfg.latPrimary, cfg.latBackupGet, cfg.latPrimary, thousands(float64(cfg.restoreConcurrency)/(2*cfg.latPrimary+cfg.latBackupGet).Seconds())),
	}
	return r
}

// idealRate is the target: the files/s the Space's ceiling allows at
// perFile backup requests a file, an upper bound.
func idealRate(cfg config, perFile float64) string {
	if perFile < 0.01 {
		return fmt.Sprintf("— (%.3f backup requests a file: bound by the listings, not the ceiling)", perFile)
	}
	return fmt.Sprintf("ideal ≤%s files/s (ceiling %s req/s ÷ %.2f backup requests a file)", thousands(cfg.restoreBackupRate/max(perFile, 1e-9)), thousands(cfg.restoreBackupRate), perFile)
}

// verifyDrift is how many files of each kind the verify scenario seeds.
const verifyDrift = 10

// runVerify seeds -verify-files user-days in both buckets, then drift:
// verifyDrift files deleted from the backup (missing), verifyDrift given
// another version there (stale) and verifyDrift day files only in the
// backup (extra); it times `heartlog backup verify` over them and checks
// that it found exactly those.
func runVerify(ctx context.Context, st *stack, cfg config) ([]result, error) {
	ds, sim, done, seed, err := spacesSimulation(ctx, cfg, cfg.verifyFiles)
	if err != nil {
		return nil, err
	}
	defer done()
	n := min(verifyDrift, len(seed.keys)/2)
	fmt.Fprintf(os.Stderr, "bench: verify: seeding %d day files under %s in both buckets\n", len(seed.keys), seed.scope())
	t0 := time.Now()
	want := map[resync.Kind][]string{}
	extras := make([]string, verifyDrift)
	for i := range extras {
		extras[i] = dayfile.Key(seed.prefix, "extra-"+uuid.NewString(), seed.days[0].Format(heartbeat.DayLayout))
	}
	err = seed.write(ctx, ds.primary, ds.backup, false, true)
	for i := 0; err == nil && i < 2*n; i++ {
		k := seed.keys[i]
		if i < n {
			want[resync.Missing] = append(want[resync.Missing], k)
			err = ds.backup.Delete(ctx, k)
			continue
		}
		want[resync.Stale] = append(want[resync.Stale], k)
		var data []byte
		if data, _, err = seed.file(i, true); err == nil {
			_, err = ds.backup.Put(ctx, k, data)
		}
	}
	for i, k := range extras {
		if err == nil {
			want[resync.Extra] = append(want[resync.Extra], k)
			var data []byte
			if data, _, err = seed.file(i, false); err == nil {
				_, err = ds.backup.Put(ctx, k, data)
			}
		}
	}
	all := append(slices.Clone(seed.keys), extras...)
	out := []result{seed.seedRow("verify", time.Since(t0), fmt.Sprintf("in both buckets, then drift in the backup: %d deleted (missing), %d with another version (stale), %d day files of other users (extra)", n, n, len(extras)))}
	if err != nil {
		out[0].failed = err.Error()
		return append(out, cleanupSeed(ctx, ds, "verify", all)), err
	}
	fmt.Fprintf(os.Stderr, "bench: verify: verifying %d files through the simulation\n", len(seed.keys))
	var rep resync.Report
	var compared time.Duration // the comparison, after the listings and the extras' reads
	m, err := timeThrough(cfg, sim, "verify", func() (err error) {
		rep, err = resync.VerifyBackup(ctx, sim.primary, sim.backup, resync.BackupOptions{Options: resync.Options{
			Scope: resync.Scope{Prefix: seed.scope()}, RequestsPerSecond: cfg.restoreRPS, Concurrency: cfg.verifyConcurrency,
			Progress: func(p resync.Progress) {
				compared = p.Elapsed
				fmt.Fprintf(os.Stderr, "\rbench: verify: %d/%d files, %.0f files/s   ", p.Done, p.Total, p.Rate())
			},
		}})
		return err
	})
	r := verifyRow(cfg, rep, m, compared)
	wrong := driftMismatch(rep, want)
	r.notes = append(r.notes, "check: "+wrong)
	if err == nil && wrong != "exactly the seeded drift" {
		err = errors.New("verify: " + wrong)
	}
	if err != nil {
		r.failed = err.Error() + "; " + strings.Join(r.notes, "; ") // keep what was measured
	}
	return append(out, r, cleanupSeed(ctx, ds, "verify", all)), err
}

// verifyRow reports a verify of rep.Files files whose comparison took
// compared of m.wall.
func verifyRow(cfg config, rep resync.Report, m measured, compared time.Duration) result {
	wall, pr, br := m.wall, m.primary, m.backup
	perFile := float64(br.Requests) / float64(max(1, rep.Files))
	r := result{scenario: "verify", unit: "files/s", seconds: wall.Seconds(), rate: float64(rep.Files) / wall.Seconds(),
		target: idealRate(cfg, perFile)}
	r.cpuNote, r.cpuCores = m.cpu+" (bench: verify and the proxies)", m.cpuSelf
	r.notes = []string{
		fmt.Sprintf("%s files in S3 verified in %.1fs (the listings, then the reads of the files whose ETags differ and of the backup-only keys: %.1fs after the start, %s files/s): %s in sync, %d missing, %d stale, %d extra; `heartlog backup verify` settings: concurrency %d, backup paced at %s requests/s",
			thousands(float64(rep.Files)), wall.Seconds(), compared.Seconds(), thousands(float64(rep.Files)/max(compared.Seconds(), 1e-3)), thousands(float64(rep.InSync)), rep.Count(resync.Missing), rep.Count(resync.Stale), rep.Count(resync.Extra), cfg.verifyConcurrency, thousands(cfg.restoreRPS)),
		fmt.Sprintf("backup proxy (GET %s, ceiling %s requests/s, 503 SlowDown past it): %s requests (%s/s, %.2f a file): %s GETs, %s LISTs; %s answered 503",
			cfg.latBackupGet, thousands(cfg.restoreBackupRate), thousands(float64(br.Requests)), thousands(float64(br.Requests)/wall.Seconds()), perFile,
			thousands(float64(br.Gets)), thousands(float64(br.Lists)), thousands(float64(br.Faults()))),
		fmt.Sprintf("primary proxy (%s a request): %s requests (%.2f a file): %s GETs, %s LISTs",
			cfg.latPrimary, thousands(float64(pr.Requests)), float64(pr.Requests)/float64(max(1, rep.Files)), thousands(float64(pr.Gets)), thousands(float64(pr.Lists))),
		"a file whose listed ETags are equal in S3 and the backup is in sync without a read: the backup's requests are its list pages and a GET for each drifted file",
	}
	return r
}

// measured is what one call through the simulation cost: the proxies'
// counts, its wall time and this process's CPU.
type measured struct {
	primary, backup faults.Stats
	wall            time.Duration
	cpu             string  // this process and the stack's (cpuNote)
	cpuSelf         float64 // this process's cores
}

// timeThrough times f (with a CPU profile named name under -cpuprofile).
func timeThrough(cfg config, sim *simulation, name string, f func() error) (measured, error) {
	stopProfile, err := startProfile(cfg, name)
	if err != nil {
		return measured{}, err
	}
	procs := stackProcs(cfg.stackRunDir)
	p0, b0, cpu0 := sim.pproxy.Stats(), sim.bproxy.Stats(), takeCPU(procs)
	start := time.Now()
	err = f()
	m := measured{wall: time.Since(start), primary: sim.pproxy.Stats().Minus(p0), backup: sim.bproxy.Stats().Minus(b0)}
	m.cpu, m.cpuSelf = cpuNote(procs, cpu0, takeCPU(procs), m.wall.Seconds())
	fmt.Fprintln(os.Stderr) // after the progress line
	if perr := stopProfile(); err == nil {
		err = perr
	}
	return m, err
}

// driftMismatch says how rep's drift differs from want, by kind and key.
func driftMismatch(rep resync.Report, want map[resync.Kind][]string) string {
	var wrong []string
	for _, k := range resync.Kinds {
		var got []string
		for _, f := range rep.Drift {
			if f.Kind == k {
				got = append(got, f.Key)
			}
		}
		exp := slices.Sorted(slices.Values(want[k]))
		if !slices.Equal(got, exp) {
			wrong = append(wrong, fmt.Sprintf("%s: found %d, seeded %d", k, len(got), len(exp)))
		}
	}
	if len(wrong) == 0 {
		return "exactly the seeded drift"
	}
	return fmt.Sprintf("not the seeded drift (%v)", wrong)
}

// cleanupSeed deletes the seeded keys from both buckets, every version.
func cleanupSeed(ctx context.Context, ds *dayStores, scenario string, keys []string) result {
	return cleanupDayfiles(ctx, ds, scenario+"-cleanup", keys, map[string]bool{"primary": true, "backup": true})
}

// everySecond calls f at most once a second.
func everySecond[P any](f func(P)) func(P) {
	var last time.Time
	return func(p P) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			f(p)
		}
	}
}
