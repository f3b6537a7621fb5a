package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"heartlog/heartbeat"
	"heartlog/objstore"
	"heartlog/pgheartbeats"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/shards"
	"heartlog/streams"
)

// row is one fault of the matrix.
type row struct {
	name  string
	fault string
	run   func(ctx context.Context, r *rowRun) error
}

var allRows = []row{
	{"process-kill", "kill -9 of each `heartlog process` mid-batch, N times in a row", runProcessKill},
	{"serve-kill", "kill -9 of `heartlog serve`", runServeKill},
	{"postgres-down", "Postgres stopped", runPostgresDown},
	{"redis-down", "SSDB (Redis) stopped", runRedisDown},
	{"s3-slowdown", "S3 answers 30% 503 SlowDown", runS3SlowDown},
	{"nats-restart", "NATS server restarted (SIGTERM, then kill -9)", runNATSRestart},
	{"poison", "poison heartbeat (extra number out of Postgres' range)", runPoison},
	{"corrupt-dayfile", "a corrupt day file in S3", runCorruptDayfile},
	{"janitor-kill", "shard janitor killed after each of its steps and inside DETACH ... CONCURRENTLY", runJanitorKill},
	{"compaction-kill", "kill -9 of `heartlog days close` at random points, rerun until it completes; then a late heartbeat", runCompactionKill},
}

// rowRun is one row while it runs.
type rowRun struct {
	st    *stack
	cfg   config
	l     *load
	notes []string
	// skip: acknowledged ids not counted anywhere (the poison heartbeat).
	skip map[string]bool
	// inPG: whether a day's heartbeats belong in Postgres.
	inPG   func(day string) bool
	settle time.Duration // how long to wait for the processors at the end
	// closed: the days the row closed (`heartlog days close`) itself.
	closed map[string]bool

	loadCancel context.CancelFunc
	loadDone   chan struct{}
}

func (r *rowRun) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *rowRun) progress(format string, args ...any) {
	r.st.logf("[%s] "+format, append([]any{r.st.row}, args...)...)
}

// startLoad starts the row's generator; stopLoad ends it.
func (r *rowRun) startLoad(ctx context.Context) {
	lctx, cancel := context.WithCancel(ctx)
	r.loadCancel, r.loadDone = cancel, make(chan struct{})
	go func() {
		defer close(r.loadDone)
		r.l.run(lctx, r.cfg.interval, r.cfg.bulk)
	}()
	r.progress("load: %d users, one request each %s (a bulk of %d every 8th)", len(r.l.users), r.cfg.interval, r.cfg.bulk)
}

func (r *rowRun) stopLoad() {
	if r.loadCancel == nil {
		return
	}
	r.loadCancel()
	<-r.loadDone
	r.loadCancel = nil
	r.l.mu.Lock()
	r.progress("load stopped: %d requests, %d heartbeats acknowledged", r.l.requests, len(r.l.acked))
	r.l.mu.Unlock()
}

// hold lets the load run for d.
func (r *rowRun) hold(ctx context.Context, d time.Duration, what string) error {
	if what != "" {
		r.progress("%s for %s", what, d)
	}
	if !sleepCtx(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// --- rows ---

func runProcessKill(ctx context.Context, r *rowRun) error {
	r.startLoad(ctx)
	if err := r.hold(ctx, 3*time.Second, "warm-up"); err != nil {
		return err
	}
	// The day-file processors only pass over an open day's messages: close
	// it under the load, so that the kills hit the late path's batches.
	if err := r.closeDay(ctx, r.l.day, "the kills hit the late path"); err != nil {
		return err
	}
	r.note("%s closed after the warm-up, under the load: the kills hit the late path (day files) and Postgres", r.l.day)
	var wg sync.WaitGroup
	mid := make([]int, len(processorProcs))
	errs := make([]error, len(processorProcs))
	for i, p := range processorProcs {
		wg.Go(func() { mid[i], errs[i] = r.killProcessor(ctx, p, r.cfg.kills) })
	}
	wg.Wait()
	if err := r.hold(ctx, 3*time.Second, ""); err != nil {
		return err
	}
	r.stopLoad()
	var parts []string
	for i, p := range processorProcs {
		if errs[i] != nil {
			return errs[i]
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", p, mid[i], r.cfg.kills))
	}
	r.note("kills after the restarted process had received messages, with messages unacked: %s", strings.Join(parts, ", "))
	return nil
}

// killProcessor kills one processor n times in a row, each time once the
// restarted process has received messages (the partitioned processors get
// theirs once the pinned TTL of the dead one has run out), at a random
// moment within a second of that. It returns how many kills found
// messages delivered to the new process and not acked: a batch in hand.
func (r *rowRun) killProcessor(ctx context.Context, p string, n int) (int, error) {
	d := r.st.procs[p]
	mid := 0
	for i := range n {
		_, _, base, err := r.st.lag(ctx, p)
		if err != nil {
			return mid, err
		}
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			_, _, del, err := r.st.lag(ctx, p)
			if err == nil && del > base {
				break
			}
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return mid, ctx.Err()
			}
		}
		if !sleepCtx(ctx, rand.N(time.Second)) {
			return mid, ctx.Err()
		}
		_, ackPending, del, err := r.st.lag(ctx, p)
		if err == nil && del > base && ackPending > 0 {
			mid++
		}
		if err := d.restart(); err != nil {
			return mid, err
		}
		r.st.debugf("[%s] %s killed %d/%d", r.st.row, p, i+1, n)
		if (i+1)%5 == 0 {
			r.progress("%s: %d/%d kills", p, i+1, n)
		}
	}
	return mid, nil
}

func runServeKill(ctx context.Context, r *rowRun) error {
	r.startLoad(ctx)
	d := r.st.procs["serve"]
	for i := range r.cfg.serveKills {
		if err := r.hold(ctx, 3*time.Second+rand.N(2*time.Second), ""); err != nil {
			return err
		}
		if err := d.restart(); err != nil {
			return err
		}
		if err := d.waitPort(r.st.httpPort, 30*time.Second); err != nil {
			return err
		}
		r.progress("serve killed %d/%d and back", i+1, r.cfg.serveKills)
	}
	if err := r.hold(ctx, 3*time.Second, ""); err != nil {
		return err
	}
	r.stopLoad()
	r.note("%d kills; the day closed at the end: ingest takes the fault, the compaction writes the files", r.cfg.serveKills)
	return nil
}

// outage runs the load, stops a service for d, starts it again. With
// closeInFault the load's day is closed as the fault begins (`days close`
// runs through it): the compaction of the warm-up's heartbeats and the late
// path of the rest meet the fault. Otherwise the day closes at the end of
// the row, after the fault.
func (r *rowRun) outage(ctx context.Context, what, note string, d time.Duration, closeInFault bool, stop, start func() error) error {
	r.startLoad(ctx)
	if err := r.hold(ctx, 5*time.Second, "warm-up"); err != nil {
		return err
	}
	r.progress("%s: stopping", what)
	faultAt := time.Now()
	if err := stop(); err != nil {
		return err
	}
	closed := func() error { return nil }
	if closeInFault {
		closed = r.startClose(ctx, r.l.day, "in the fault")
	}
	if err := r.hold(ctx, d, what+" down"); err != nil {
		_ = start()
		return err
	}
	if err := start(); err != nil {
		return err
	}
	if closeInFault {
		// A close that failed in the fault leaves what it did not record
		// to the close at the end (as an operator would run it again).
		if err := closed(); err != nil {
			r.note("%s closed in the fault: days close failed (%v); closed again at the end", r.l.day, err)
		} else {
			r.note("%s closed in the fault: days close completed; the rest of the load is the late path's", r.l.day)
		}
	} else {
		r.note("%s closed at the end: the fault hits ingest and Postgres, the compaction writes the files", r.l.day)
	}
	r.progress("%s: back", what)
	if err := r.hold(ctx, 5*time.Second, ""); err != nil {
		return err
	}
	r.stopLoad()
	r.note("%s %s", note, d)
	if first := r.l.firstBad; !first.IsZero() {
		r.note("first answer not 2xx %s after the fault began", first.Sub(faultAt).Round(time.Second))
	}
	return nil
}

func runPostgresDown(ctx context.Context, r *rowRun) error {
	pg := r.st.pg
	return r.outage(ctx, "postgres", "stopped (fast shutdown) for", r.cfg.pgDown, false,
		func() error { return pg.stop(syscall.SIGINT, 30*time.Second) }, r.st.startPG)
}

func runRedisDown(ctx context.Context, r *rowRun) error {
	rd := r.st.redisd
	return r.outage(ctx, "redis", "stopped (SIGTERM; append-only file on) for", r.cfg.redisDown, true,
		func() error { return rd.stop(syscall.SIGTERM, 30*time.Second) }, r.st.startRedisd)
}

func runS3SlowDown(ctx context.Context, r *rowRun) error {
	before := r.st.proxy.Stats()
	err := r.outage(ctx, "S3 (30% SlowDown)", "primary and backup buckets refused 30% for", r.cfg.s3Down, true,
		func() error { r.st.proxy.SetSlowDownRate(0.3); return nil },
		func() error { r.st.proxy.SetSlowDownRate(0); return nil })
	after := r.st.proxy.Stats()
	r.note("%d of %d S3 requests refused", after.SlowDowns-before.SlowDowns, after.Requests-before.Requests)
	return err
}

func runNATSRestart(ctx context.Context, r *rowRun) error {
	n := r.st.natsd
	r.startLoad(ctx)
	if err := r.hold(ctx, 5*time.Second, "warm-up"); err != nil {
		return err
	}
	if err := r.closeDay(ctx, r.l.day, "the restarts hit the late path"); err != nil {
		return err
	}
	r.progress("nats-server: SIGTERM, down 5s")
	if err := n.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		return err
	}
	if err := r.hold(ctx, 5*time.Second, ""); err != nil {
		return err
	}
	if err := r.st.startNATS(); err != nil {
		return err
	}
	if err := r.hold(ctx, 10*time.Second, "nats-server back"); err != nil {
		return err
	}
	r.progress("nats-server: kill -9, restarted at once")
	if err := n.kill(); err != nil {
		return err
	}
	if err := r.st.startNATS(); err != nil {
		return err
	}
	if err := r.hold(ctx, 10*time.Second, "nats-server back"); err != nil {
		return err
	}
	r.stopLoad()
	r.note("%s closed after the warm-up: the restarts hit the late path; SIGTERM + 5 s down, then kill -9", r.l.day)
	return nil
}

// poisonExtra is a number no Postgres numeric holds (issue 7).
const poisonExtra = `{"x":1e200000}`

func runPoison(ctx context.Context, r *rowRun) error {
	r.startLoad(ctx)
	if err := r.hold(ctx, 5*time.Second, "warm-up"); err != nil {
		return err
	}
	// Through the API, as a user would send it; the day closes at the end,
	// so its compaction meets the poison too.
	now := float64(time.Now().Add(-sendLag).UnixMicro()) / 1e6
	body := fmt.Sprintf(`[{"entity":"/poison.go","type":"file","time":%f,"x":1e200000}]`, now)
	outcome, items := r.l.post(ctx, 0, "/api/v1/users/current/heartbeats.bulk", []byte(body), true)
	for _, it := range items {
		r.skip[it.ID] = true
	}
	r.note("poison via the API: %s", outcome)
	r.progress("poison via the API: %s", outcome)
	// Straight to the stream, as a heartbeat that got past validation.
	id, err := r.publishPoison(ctx)
	if err != nil {
		return fmt.Errorf("publish poison: %w", err)
	}
	r.skip[id] = true
	r.note("one more published straight to the stream")
	r.progress("poison published straight to the stream")
	// Every other heartbeat must land within this deadline.
	r.settle = r.cfg.poisonSettle
	if err := r.hold(ctx, 15*time.Second, "load after the poison"); err != nil {
		return err
	}
	r.stopLoad()
	return nil
}

// publishPoison publishes one poison heartbeat of user 1 straight to the
// log, bypassing the API's validation.
func (r *rowRun) publishPoison(ctx context.Context) (string, error) {
	u := r.l.users[1%len(r.l.users)]
	hb := &heartlogv1.Heartbeat{
		UserId: u.ID, Entity: "/poison-direct.go", Type: "file", Category: "coding",
		Time: float64(time.Now().Add(-sendLag).UnixMicro()) / 1e6, ExtraJson: []byte(poisonExtra),
		Machine: "chaos-machine", UserAgent: "chaos",
	}
	hb.Id = heartbeat.ID(hb)
	pub := streams.NewPublisher(r.st.nc, r.st.js, r.st.sc, streams.PublisherOptions{})
	defer pub.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return hb.Id, pub.Publish(pctx, []*heartlogv1.Heartbeat{hb}, map[string]string{u.ID: u.ObjectPrefix})
}

func runCorruptDayfile(ctx context.Context, r *rowRun) error {
	r.startLoad(ctx)
	if err := r.hold(ctx, 8*time.Second, "warm-up"); err != nil {
		return err
	}
	// The compaction writes the warm-up's files; the late path then meets
	// the corrupt one.
	if err := r.closeDay(ctx, r.l.day, "the late path meets the corrupt file"); err != nil {
		return err
	}
	u := r.l.users[0]
	key := dayfile.Key(u.ObjectPrefix, u.ID, r.l.day)
	held := 0
	if data, _, err := r.st.primary.Get(ctx, key); err == nil {
		if hbs, err := dayfile.Decode(data); err == nil {
			held = len(hbs)
		}
	}
	// Straight on versitygw, as a bad disk or a stray tool would.
	if _, err := r.st.primary.Put(ctx, key, []byte("this is not a day file\n")); err != nil {
		return err
	}
	r.progress("corrupted %s (it held %d heartbeats)", key, held)
	if err := r.hold(ctx, 12*time.Second, "load after the corruption"); err != nil {
		return err
	}
	r.stopLoad()
	q, err := objstore.ListAll(ctx, r.st.primary, "quarantine/"+u.ObjectPrefix)
	if err != nil {
		return err
	}
	r.note("corrupted one user's day file holding %d heartbeats; %d quarantined copies", held, len(q))
	return nil
}

// janitorGrace is the shard grace of the janitor row's janitors.
const janitorGrace = "1m"

func runJanitorKill(ctx context.Context, r *rowRun) error {
	st := r.st
	// The day before yesterday: inside the processors' shard grace (48 h),
	// so its heartbeats get a Postgres partition (a day past grace gets
	// none); the janitors of the row run with a grace of a minute, so to
	// them it and yesterday (the load's day) are due. The old day is closed
	// and compacted before the janitors start, yesterday stays open: the
	// janitors must drop the one and keep the other.
	old := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	day := old.Format(heartbeat.DayLayout)
	r.l.oldDay.Store(old.Unix())
	r.startLoad(ctx)
	if err := r.hold(ctx, 12*time.Second, "load for "+r.l.day+" and for "+day); err != nil {
		return err
	}
	r.l.oldDay.Store(0)
	if err := r.closeDay(ctx, day, "the janitor drops only a closed, compacted day"); err != nil {
		return err
	}
	locks, err := st.js.KeyValue(ctx, st.sc.LocksBucket)
	if err != nil {
		return err
	}
	logPath := ""
	paused := 0
	// "detach!" is a kill inside DETACH PARTITION ... CONCURRENTLY, the
	// one step that can leave Postgres half-way (detach pending).
	for _, step := range []string{"prove", "drain", "settle", "detach!", "detach", "drop", "mark-dropped"} {
		pause := strings.TrimSuffix(step, "!")
		j := st.heartlogProc("janitor", []string{"process"}, map[string]string{
			"HEARTLOG_PROCESSORS": "", "HEARTLOG_DEBUG_JANITOR_PAUSE": pause, "HEARTLOG_SHARDS_GRACE": janitorGrace,
		})
		logPath = j.logPath
		if step == "detach!" {
			if err := r.killInDetach(ctx, j, day); err != nil {
				return err
			}
		} else {
			if err := j.start(); err != nil {
				return err
			}
			deadline := time.Now().Add(60 * time.Second)
			for countIn(logPath, "shard janitor paused") <= paused {
				if time.Now().After(deadline) || !j.alive() {
					return fmt.Errorf("janitor did not pause after %s within 60s; see %s", step, logPath)
				}
				if !sleepCtx(ctx, 100*time.Millisecond) {
					return ctx.Err()
				}
			}
			paused++
			if err := j.kill(); err != nil {
				return err
			}
			r.progress("janitor killed after %s", step)
		}
		// The dead janitor's lock would expire after its 30 s TTL; it is
		// certainly dead, so expire it now.
		if err := locks.Purge(ctx, shards.LockName); err != nil {
			return fmt.Errorf("expire the janitor's lock: %w", err)
		}
	}
	j := st.heartlogProc("janitor", []string{"process"}, map[string]string{"HEARTLOG_PROCESSORS": "", "HEARTLOG_SHARDS_GRACE": janitorGrace})
	if err := j.start(); err != nil {
		return err
	}
	shardsKV, err := st.js.KeyValue(ctx, st.sc.ShardsBucket)
	if err != nil {
		return err
	}
	state := streams.ShardActive
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if e, err := shardsKV.Get(ctx, day); err == nil && strings.Contains(string(e.Value()), `"dropped"`) {
			state = streams.ShardDropped
			break
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	var tables int
	if err := st.pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname = $1`, pgheartbeats.PartitionName(day)).Scan(&tables); err != nil {
		return err
	}
	r.note("day %s (closed): shard %s, partition table %s", old.Format(time.DateOnly), state, map[bool]string{true: "gone", false: "present"}[tables == 0])
	if state == streams.ShardDropped {
		r.inPG = func(d string) bool { return d != day }
		before := r.dayAcked(day)
		defer func() {
			n := r.dayAcked(day)
			r.note("its %d heartbeats (%d sent after the drop) belong in the day files only", n, n-before)
		}()
		// Late heartbeats of the dropped day: day files only.
		r.l.oldDay.Store(old.Unix())
		if err := r.hold(ctx, 5*time.Second, "late heartbeats for the dropped day"); err != nil {
			return err
		}
		r.l.oldDay.Store(0)
	}
	r.stopLoad()
	// Yesterday is open: the janitors must have kept it. Stop the last
	// one before the row closes yesterday at its end, or it would drop it
	// then (its grace is a minute) before the count.
	if err := j.stop(syscall.SIGTERM, 20*time.Second); err != nil {
		return err
	}
	if err := st.pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname = $1`, pgheartbeats.PartitionName(r.l.day)).Scan(&tables); err != nil {
		return err
	}
	if tables == 0 {
		return fmt.Errorf("the janitor dropped %s, which is open", r.l.day)
	}
	r.note("%s (open): partition table kept", r.l.day)
	return nil
}

// killInDetach kills the janitor while its DETACH PARTITION ... CONCURRENTLY
// waits: a transaction of the driver that has read the day through
// heartbeats holds it in its second phase, after the partition is marked
// detach pending. The dead janitor's backend would go on waiting (Postgres
// notices a vanished client only when it next talks to it), so it is
// cancelled, as a lost connection or a stop would; the partition stays
// detach pending for the next janitor to FINALIZE.
func (r *rowRun) killInDetach(ctx context.Context, j *daemon, day string) error {
	st := r.st
	conn, err := st.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	t, _ := time.Parse(heartbeat.DayLayout, day)
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM heartbeats WHERE day = $1`, t).Scan(&n); err != nil {
		return fmt.Errorf("hold the detach: %w", err)
	}
	if err := j.start(); err != nil {
		return err
	}
	var pid int
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := st.pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE query ILIKE '%DETACH PARTITION%CONCURRENTLY%' AND wait_event_type = 'Lock' LIMIT 1`).Scan(&pid)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || !j.alive() {
			return fmt.Errorf("janitor did not reach DETACH ... CONCURRENTLY within 60s; see %s", j.logPath)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	if err := j.kill(); err != nil {
		return err
	}
	if _, err := st.pool.Exec(ctx, `SELECT pg_cancel_backend($1)`, pid); err != nil {
		return err
	}
	if err := tx.Rollback(ctx); err != nil {
		return err
	}
	var pending bool
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := st.pool.QueryRow(ctx, `SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = $1::regclass`,
			pgheartbeats.PartitionName(day)).Scan(&pending)
		var busy bool
		_ = st.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active')`, pid).Scan(&busy)
		if err == nil && !busy {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cancelled DETACH did not end within 30s: %v", err)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	r.progress("janitor killed inside DETACH ... CONCURRENTLY (partition detach pending: %t)", pending)
	if pending {
		r.note("killed inside DETACH ... CONCURRENTLY: partition left detach pending")
	} else {
		r.note("killed inside DETACH ... CONCURRENTLY: partition NOT left detach pending (the kill came too late)")
	}
	return nil
}

// dayAcked counts the acknowledged heartbeats of a day.
func (r *rowRun) dayAcked(day string) int {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	n := 0
	for _, a := range r.l.acked {
		if a.day == day {
			n++
		}
	}
	return n
}

// countIn counts the lines of a file that contain s.
func countIn(path, s string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(data), s)
}
