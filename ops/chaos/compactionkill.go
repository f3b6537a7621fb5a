package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"heartlog/heartbeat"
	"heartlog/processors/compaction"
	"heartlog/schema/dayfile"
	"heartlog/streams"
)

// closeKillEnv makes several kill points of a `days close` likely: one
// partition at a time (kills between partitions), and the backup paced
// slower than one Space's 150 writes/s, so that its pass of a partition
// takes a second or two after objects and cache finished theirs (kills
// between sinks, and inside a sink's pass: between user-days).
var closeKillEnv = map[string]string{"HEARTLOG_COMPACTION_PARTITIONS": "1", "HEARTLOG_BACKUP_REQUESTS_PER_SECOND": "50"}

// dayFileSinks are the processors a compaction records, in the order of
// the progress notes.
var dayFileSinks = []string{streams.DurableObjects, streams.DurableCache, streams.DurableBackup}

func runCompactionKill(ctx context.Context, r *rowRun) error {
	st, l, day := r.st, r.l, r.l.day
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for u := range l.users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			l.sendDay(ctx, u, r.cfg.compactionHeartbeats)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	r.note("%d users × %d heartbeats for %s through the API", len(l.users), r.cfg.compactionHeartbeats, day)
	r.progress("sent %d heartbeats for %s", r.dayAcked(day), day)

	kv, err := st.js.KeyValue(ctx, st.sc.ShardsBucket)
	if err != nil {
		return err
	}
	locks, err := st.js.KeyValue(ctx, st.sc.LocksBucket)
	if err != nil {
		return err
	}
	var at []string
	var betweenSinks, inPass, runs int
	for {
		runs++
		d := r.closeProc(day, closeKillEnv)
		r.closed[day] = true
		if err := d.start(); err != nil {
			return err
		}
		if runs > r.cfg.compactionKills {
			wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			_, err := d.wait(wctx)
			cancel()
			if err != nil {
				return fmt.Errorf("heartlog days close %s after %d kills: %v; see %s", day, runs-1, err, d.logPath)
			}
			break
		}
		// The first run waits out the close's settle (5 s) before any
		// partition is read: a kill then leaves the day closed, nothing
		// compacted.
		// Each run spends some 0.5-1 s starting (connect, sync the users
		// bucket) before it compacts.
		delay := 500*time.Millisecond + rand.N(3*time.Second)
		if runs == 1 {
			delay += rand.N(6 * time.Second)
		}
		wctx, cancel := context.WithTimeout(ctx, delay)
		_, err := d.wait(wctx)
		cancel()
		if err == nil {
			r.progress("days close completed on run %d, before its kill", runs)
			break
		} else if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("heartlog days close %s: %v; see %s", day, err, d.logPath)
		}
		if err := d.kill(); err != nil {
			return err
		}
		p, err := r.compactionProgress(ctx, day)
		if err != nil {
			return err
		}
		at = append(at, fmt.Sprintf("%s: %s", delay.Round(100*time.Millisecond), p))
		if p.betweenSinks {
			betweenSinks++
		}
		if p.inPass {
			inPass++
		}
		r.progress("days close killed (run %d) after %s: %s", runs, delay.Round(100*time.Millisecond), p)
		// The dead command's locks would expire after their 30 s TTL; it
		// is certainly dead, so expire them now.
		for part := range uint32(partitions) {
			if err := locks.Purge(ctx, compaction.LockName(day, part)); err != nil {
				return fmt.Errorf("expire the compaction's lock: %w", err)
			}
		}
	}
	recs, err := streams.DayRecords(ctx, kv, day)
	if err != nil {
		return err
	}
	if n := recordCount(recs[day].Compactions); n != partitions*len(dayFileSinks) {
		return fmt.Errorf("after days close completed, %d of %d partition-sinks are recorded", n, partitions*len(dayFileSinks))
	}
	r.note("days close (%s) killed %d times, completed on run %d; at each kill [%s]; %d kills between sinks of a partition, %d inside the backup's pass of a partition (between user-days)",
		envNote(closeKillEnv), runs-1, runs, strings.Join(at, "; "), betweenSinks, inPass)
	if err := r.checkExact(ctx, day); err != nil {
		return err
	}
	return r.lateVersion(ctx, day)
}

func envNote(env map[string]string) string {
	var parts []string
	for k, v := range env {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func recordCount(c map[uint32]map[string]streams.Compaction) int {
	n := 0
	for _, bySink := range c {
		for _, name := range dayFileSinks {
			if _, ok := bySink[name]; ok {
				n++
			}
		}
	}
	return n
}

// compactionProgress is where a killed compaction stood.
type compactionProgress struct {
	recorded, backupFiles, users int
	// betweenSinks: a partition recorded for some sinks and not others.
	betweenSinks bool
	// inPass: a partition whose backup is not recorded has some of its
	// users' backup files and not all.
	inPass bool
}

func (p compactionProgress) String() string {
	return fmt.Sprintf("%d/%d recorded, %d/%d backup files", p.recorded, partitions*len(dayFileSinks), p.backupFiles, p.users)
}

func (r *rowRun) compactionProgress(ctx context.Context, day string) (compactionProgress, error) {
	st := r.st
	p := compactionProgress{users: len(r.l.users)}
	kv, err := st.js.KeyValue(ctx, st.sc.ShardsBucket)
	if err != nil {
		return p, err
	}
	recs, err := streams.DayRecords(ctx, kv, day)
	if err != nil {
		return p, err
	}
	var comp map[uint32]map[string]streams.Compaction
	if rec := recs[day]; rec != nil {
		comp = rec.Compactions
	}
	p.recorded = recordCount(comp)
	have, of := map[uint32]int{}, map[uint32]int{}
	for _, u := range r.l.users {
		part := streams.Partition(u.ID, partitions)
		of[part]++
		vs, err := st.backup.Versions(ctx, dayfile.Key(u.ObjectPrefix, u.ID, day))
		if err != nil {
			return p, err
		}
		if len(vs) > 0 {
			have[part]++
			p.backupFiles++
		}
	}
	for part := range uint32(partitions) {
		n := 0
		for _, name := range dayFileSinks {
			if _, ok := comp[part][name]; ok {
				n++
			}
		}
		if n > 0 && n < len(dayFileSinks) {
			p.betweenSinks = true
		}
		if _, ok := comp[part][streams.DurableBackup]; !ok && have[part] > 0 && have[part] < of[part] {
			p.inPass = true
		}
	}
	return p, nil
}

// expectedIDs are the acknowledged heartbeat ids of day, by user index.
func (r *rowRun) expectedIDs(day string) map[int]map[string]bool {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	out := map[int]map[string]bool{}
	for id, a := range r.l.acked {
		if a.day != day {
			continue
		}
		if out[a.user] == nil {
			out[a.user] = map[string]bool{}
		}
		out[a.user][id] = true
	}
	return out
}

// sameIDs reports whether a day file holds exactly ids, each once.
func sameIDs(data []byte, ids map[string]bool) bool {
	hbs, err := dayfile.Decode(data)
	if err != nil || len(hbs) != len(ids) {
		return false
	}
	seen := map[string]bool{}
	for _, hb := range hbs {
		if !ids[hb.Id] || seen[hb.Id] {
			return false
		}
		seen[hb.Id] = true
	}
	return true
}

// checkExact checks that every user's day file in S3, the cache and the
// backup holds exactly that user's acknowledged heartbeats of day, and that
// the backup holds one version of each.
func (r *rowRun) checkExact(ctx context.Context, day string) error {
	st := r.st
	want := r.expectedIDs(day)
	var s3, cache, backup, oneVersion int
	var versions []int
	for i, u := range r.l.users {
		key := dayfile.Key(u.ObjectPrefix, u.ID, day)
		if data, ok, err := getObject(ctx, st.primary, key); err != nil {
			return err
		} else if ok && sameIDs(data, want[i]) {
			s3++
		}
		if data, ok, err := getObject(ctx, st.backup, key); err != nil {
			return err
		} else if ok && sameIDs(data, want[i]) {
			backup++
		}
		if data, err := st.rdb.Get(ctx, key).Bytes(); err == nil && sameIDs(data, want[i]) {
			cache++
		}
		vs, err := st.backup.Versions(ctx, key)
		if err != nil {
			return err
		}
		if len(vs) == 1 {
			oneVersion++
		} else {
			versions = append(versions, len(vs))
		}
	}
	n := len(r.l.users)
	r.note("files holding exactly their user's heartbeats: S3 %d/%d, cache %d/%d, backup %d/%d; backup files with one version %d/%d",
		s3, n, cache, n, backup, n, oneVersion, n)
	if s3 != n || cache != n || backup != n || oneVersion != n {
		return fmt.Errorf("after the killed compactions: files exact S3 %d, cache %d, backup %d of %d; backup version counts not 1: %v",
			s3, cache, backup, n, versions)
	}
	return nil
}

// lateVersion sends one late heartbeat for the closed day and checks the
// late path's write: one more backup version of that user's file only,
// the old version still readable as it was.
func (r *rowRun) lateVersion(ctx context.Context, day string) error {
	st, l := r.st, r.l
	before := r.expectedIDs(day)[0]
	start, _ := time.Parse(heartbeat.DayLayout, day)
	l.submit(ctx, 0, []heartbeatJSON{l.heartbeat(0, start.Add(23*time.Hour))}, time.Now())
	after := r.expectedIDs(day)[0]
	if len(after) != len(before)+1 {
		return errors.New("the late heartbeat was not acknowledged")
	}
	u := l.users[0]
	key := dayfile.Key(u.ObjectPrefix, u.ID, day)
	deadline := time.Now().Add(60 * time.Second)
	for {
		vs, err := st.backup.Versions(ctx, key)
		if err != nil {
			return err
		}
		if len(vs) >= 2 {
			if len(vs) != 2 {
				return fmt.Errorf("the late heartbeat made %d backup versions of %s, not one more", len(vs)-1, key)
			}
			newest, err := st.backup.GetVersion(ctx, key, vs[0].ID)
			if err != nil {
				return err
			}
			old, err := st.backup.GetVersion(ctx, key, vs[1].ID)
			if err != nil {
				return fmt.Errorf("the backup's version before the late heartbeat: %w", err)
			}
			if !sameIDs(old, before) || !sameIDs(newest, after) {
				return fmt.Errorf("backup versions of %s: the old should hold the %d compacted heartbeats, the new those and the late one", key, len(before))
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the late heartbeat made no new backup version of %s within 60s", key)
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	// The other users' files are left alone.
	others := 0
	for _, u := range l.users[1:] {
		vs, err := st.backup.Versions(ctx, dayfile.Key(u.ObjectPrefix, u.ID, day))
		if err != nil {
			return err
		}
		if len(vs) != 1 {
			others++
		}
	}
	if others > 0 {
		return fmt.Errorf("after one late heartbeat, %d other users' backup files have other than one version", others)
	}
	r.note("late heartbeat after close: its file's backup went from 1 to 2 versions, the old one readable with the %d compacted heartbeats; no other file got a version", len(before))
	return nil
}
