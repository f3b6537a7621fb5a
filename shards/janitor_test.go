package shards_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"heartlog/internal/heartlogtest"
	"heartlog/shards"
	"heartlog/streams"
)

func TestRacingJanitorsOneDrops(t *testing.T) {
	t.Parallel()
	e := setup(t)
	days := []string{"20240301", "20240302", "20240303"}
	for _, d := range days {
		e.safeDay(d)
	}
	a, b := e.janitor("janitor-a", nil), e.janitor("janitor-b", nil)
	var (
		wg      sync.WaitGroup
		dropped [2][]string
		errs    [2]error
	)
	for i, j := range []*shards.Janitor{a, b} {
		wg.Go(func() { dropped[i], errs[i] = j.RunOnce(context.Background()) })
	}
	wg.Wait()
	t.Logf("a dropped %v (%v); b dropped %v (%v)", dropped[0], errs[0], dropped[1], errs[1])
	winner := 0
	if len(dropped[1]) > 0 {
		winner = 1
	}
	loser := 1 - winner
	if errs[winner] != nil {
		t.Fatalf("the janitor that dropped failed: %v", errs[winner])
	}
	if !slices.Equal(dropped[winner], days) {
		t.Errorf("winner dropped %v, want %v", dropped[winner], days)
	}
	if len(dropped[loser]) != 0 {
		t.Errorf("both janitors dropped: %v and %v", dropped[0], dropped[1])
	}
	if errs[loser] != nil && !errors.Is(errs[loser], shards.ErrHeld) {
		t.Errorf("the other janitor failed with %v, want ErrHeld or nothing", errs[loser])
	}
	var held *shards.HeldError
	if errors.As(errs[loser], &held) && held.Holder != []string{"janitor-a", "janitor-b"}[winner] {
		t.Errorf("ErrHeld names %q, want the winner", held.Holder)
	}
	for _, d := range days {
		e.expectDropped(d)
	}
	// The lock was released: a third janitor runs and finds nothing to do.
	got, err := e.janitor("janitor-c", nil).RunOnce(context.Background())
	if err != nil || len(got) != 0 {
		t.Errorf("third run: dropped %v, err %v; want nothing", got, err)
	}
}

func TestKilledBetweenDetachAndDropIsFinished(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const day = "20240301"
	e.safeDay(day)
	errKill := errors.New("killed")
	a := e.janitor("janitor-a", func(o *shards.Options) {
		o.LockTTL = time.Second
		o.AfterStep = func(d string, s shards.Step) error {
			if s == shards.StepDetach {
				return errKill
			}
			return nil
		}
	})
	dropped, err := a.RunOnce(context.Background())
	if !errors.Is(err, errKill) || len(dropped) != 0 {
		t.Fatalf("killed janitor: dropped %v, err %v", dropped, err)
	}
	if st := e.tableState(day); st != "detached" {
		t.Fatalf("after the kill the table is %s, want detached", st)
	}
	if st := e.shardState(day); st != streams.ShardDraining {
		t.Fatalf("after the kill the shard is %q, want draining", st)
	}
	days, err := a.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 1 || days[0].Table != shards.TableDetached || days[0].State != streams.ShardDraining || !days[0].Eligible {
		t.Errorf("List after the kill: %+v", days)
	}

	// A killed janitor does not release its lock: a fresh one waits for
	// the TTL, then finishes the day.
	b := e.janitor("janitor-b", nil)
	_, err = b.RunOnce(context.Background())
	if !errors.Is(err, shards.ErrHeld) {
		t.Fatalf("fresh janitor right after the kill: %v, want ErrHeld", err)
	}
	var got []string
	ok := heartlogtest.Eventually(10*time.Second, func() bool {
		got, err = b.RunOnce(context.Background())
		return !errors.Is(err, shards.ErrHeld)
	})
	if !ok || err != nil {
		t.Fatalf("fresh janitor: dropped %v, err %v", got, err)
	}
	if !slices.Equal(got, []string{day}) {
		t.Errorf("fresh janitor dropped %v, want [%s]", got, day)
	}
	e.expectDropped(day)
}

func TestKilledAfterEveryStepIsFinished(t *testing.T) {
	t.Parallel()
	e := setup(t)
	steps := []shards.Step{shards.StepProve, shards.StepDrain, shards.StepSettle, shards.StepDetach, shards.StepDrop, shards.StepMarkDropped}
	for i, step := range steps {
		day := "2024030" + string(rune('1'+i))
		e.safeDay(day)
		owner := "killed-after-" + step.String()
		a := e.janitor(owner, func(o *shards.Options) {
			o.AfterStep = func(d string, s shards.Step) error {
				if s == step {
					return errors.New("killed")
				}
				return nil
			}
		})
		if err := a.DropNow(context.Background(), day); err == nil || err.Error() != "killed" {
			t.Fatalf("%s: %v", owner, err)
		}
		// Expire the dead owner's lock at once instead of waiting.
		if err := e.locks().Purge(context.Background(), shards.LockName); err != nil {
			t.Fatal(err)
		}
		if err := e.janitor("finisher", nil).DropNow(context.Background(), day); err != nil {
			t.Fatalf("finish after %s: %v", step, err)
		}
		e.expectDropped(day)
	}
}

func TestDetachPendingIsFinalized(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const day = "20240301"
	e.safeDay(day)
	ctx := context.Background()

	// An old snapshot makes the concurrent detach wait in its second
	// transaction; cancelling it there leaves the partition detach pending,
	// as a janitor that died mid-detach does.
	tx, err := e.poolOf(day).BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM heartbeats").Scan(&n); err != nil {
		t.Fatal(err)
	}
	a := e.janitor("janitor-a", nil)
	actx, cancel := context.WithCancel(ctx)
	go func() {
		heartlogtest.Eventually(10*time.Second, func() bool { return e.tableState(day) == "detach-pending" })
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	if _, err := a.RunOnce(actx); err == nil {
		t.Fatal("the janitor's detach was not interrupted")
	}
	cancel()
	// A cancelled context closes the client side only: the server keeps
	// running the DETACH, which would finish once the snapshot is gone.
	// End that backend, as the death of the janitor's host would.
	e.terminateDetach()
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if st := e.tableState(day); st != "detach-pending" {
		t.Fatalf("table is %s, want detach-pending", st)
	}
	got, err := e.janitor("janitor-b", nil).RunOnce(ctx)
	if err != nil || !slices.Equal(got, []string{day}) {
		t.Fatalf("second janitor: dropped %v, err %v", got, err)
	}
	e.expectDropped(day)
}

func TestNotDroppedWhileCacheBehind(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const day = "20240301"
	e.partition(day, 5)
	e.publish(day, 1)
	e.compacted(day, streams.DurableObjects, streams.DurableCache)
	e.publish("20240302", 1)   // another day on the same partition, later
	last1 := e.publish(day, 1) // late: past the compaction's bound
	last3 := e.publish(day, 3)
	e.ackAll(streams.DurableObjects)

	j := e.janitor("janitor", nil)
	dropped, err := j.RunOnce(context.Background())
	if len(dropped) != 0 {
		t.Fatalf("dropped %v while cache is behind", dropped)
	}
	np := shards.NotProven(err)
	if len(np) != 1 || !errors.Is(err, shards.ErrNotProven) {
		t.Fatalf("want one NotProvenError, got %v", err)
	}
	want := []shards.Behind{
		{Consumer: "cache-p01", Partition: 1, LastSeq: last1},
		{Consumer: "cache-p03", Partition: 3, LastSeq: last3},
	}
	if !slices.Equal(np[0].Behind, want) {
		t.Errorf("behind: %+v, want %+v", np[0].Behind, want)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "cache-p01 has acked up to seq 0, the day's last message on partition 1 is seq 3") {
		t.Errorf("the reason does not say what the day waits for: %v", err)
	}
	if st := e.tableState(day); st != "attached" {
		t.Errorf("table is %s, want attached", st)
	}
	if st := e.shardState(day); st != "" {
		t.Errorf("shard is %q: a day not proven must stay active", st)
	}

	// DropNow refuses too, with the same reason.
	if err := j.DropNow(context.Background(), "2024-03-01"); !errors.Is(err, shards.ErrNotProven) || !strings.Contains(err.Error(), "cache-p03") {
		t.Errorf("DropNow: %v", err)
	}

	// Cache catches up on partition 1 only: partition 3 still holds it.
	e.ack(streams.DurableCache, 1)
	_, err = j.RunOnce(context.Background())
	np = shards.NotProven(err)
	if len(np) != 1 || len(np[0].Behind) != 1 || np[0].Behind[0].Consumer != "cache-p03" {
		t.Fatalf("after cache-p01 caught up: %v", err)
	}

	// A missing consumer proves nothing.
	stream, err := e.js.Stream(context.Background(), e.sc.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteConsumer(context.Background(), "objects-p03"); err != nil {
		t.Fatal(err)
	}
	_, err = j.RunOnce(context.Background())
	if !strings.Contains(err.Error(), "consumer objects-p03 does not exist") {
		t.Errorf("with objects-p03 deleted: %v", err)
	}
	cs, err := streams.EnsurePartitionConsumers(context.Background(), e.js, e.sc, streams.DurableObjects)
	if err != nil {
		t.Fatal(err)
	}
	e.consumers[streams.DurableObjects] = cs
	e.ack(streams.DurableObjects, 3)

	// Cache catches up everywhere: the day goes.
	e.ackAll(streams.DurableCache)
	dropped, err = j.RunOnce(context.Background())
	if err != nil || !slices.Equal(dropped, []string{day}) {
		t.Fatalf("after cache caught up: dropped %v, err %v", dropped, err)
	}
	e.expectDropped(day)
}

// TestNotDroppedUntilCompacted: a day whose Postgres rows every late-path
// consumer has passed is still kept while it is open (its day files are
// not written yet) and while a partition's compaction is not recorded for
// objects or cache; once both are, it is dropped.
func TestNotDroppedUntilCompacted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const day = "20240301"
	e.partition(day, 2)
	e.publish(day, 0)
	e.publish(day, 2)
	e.ackAll(streams.DurableObjects, streams.DurableCache) // an open day's messages are passed over
	j := e.janitor("janitor", nil)
	err := j.DropNow(context.Background(), day)
	if !errors.Is(err, shards.ErrNotProven) || !strings.Contains(err.Error(), "the day is open") {
		t.Fatalf("open day: %v, want not proven because it is open", err)
	}
	// Closed, objects compacted, cache's compaction not recorded.
	e.compacted(day, streams.DurableObjects)
	err = j.DropNow(context.Background(), day)
	var np *shards.NotProvenError
	if !errors.As(err, &np) || len(np.Behind) != int(e.sc.Partitions) || !np.Behind[0].Uncompacted || np.Behind[0].Consumer != streams.DurableCache {
		t.Fatalf("cache not compacted: %v", err)
	}
	if !strings.Contains(err.Error(), "cache has not recorded the compaction of partition 0") {
		t.Errorf("the reason does not say what is missing: %v", err)
	}
	if st := e.tableState(day); st != "attached" {
		t.Fatalf("table is %s, want attached", st)
	}
	e.compacted(day, streams.DurableCache)
	if err := j.DropNow(context.Background(), day); err != nil {
		t.Fatalf("closed, compacted and passed: %v", err)
	}
	e.expectDropped(day)
}

func TestObjectsBehindIsReported(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const day = "20240301"
	e.partition(day, 1)
	e.compacted(day, streams.DurableObjects, streams.DurableCache)
	seq := e.publish(day, 2) // late
	e.ackAll(streams.DurableCache)
	err := e.janitor("op", nil).DropNow(context.Background(), day)
	var np *shards.NotProvenError
	if !errors.As(err, &np) || len(np.Behind) != 1 || np.Behind[0].Consumer != "objects-p02" || np.Behind[0].LastSeq != seq {
		t.Fatalf("DropNow with objects behind: %v", err)
	}
}

func TestGracePeriod(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// now is 2024-03-10 12:00 UTC; grace 48h: 03-07 ended 03-08 00:00, so
	// its grace ran out at 03-10 00:00; 03-08's runs out at 03-11 00:00.
	old := []string{"20240306", "20240307"}
	young := []string{"20240308", "20240309", "20240310"}
	for _, d := range append(slices.Clone(old), young...) {
		e.safeDay(d)
	}
	j := e.janitor("janitor", nil)
	list, err := j.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if want := slices.Contains(old, d.Day); d.Eligible != want {
			t.Errorf("List: %s eligible %v, want %v", d.Day, d.Eligible, want)
		}
		if d.State != streams.ShardActive || d.Table != shards.TableAttached {
			t.Errorf("List: %+v", d)
		}
	}
	for range 2 {
		dropped, err := j.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(dropped) > 0 && !slices.Equal(dropped, old) {
			t.Fatalf("dropped %v, want only %v", dropped, old)
		}
	}
	for _, d := range old {
		e.expectDropped(d)
	}
	for _, d := range young {
		if st := e.tableState(d); st != "attached" {
			t.Errorf("%s inside the grace period: table %s", d, st)
		}
		if st := e.shardState(d); st != "" {
			t.Errorf("%s inside the grace period: shard %q", d, st)
		}
	}
	// The operator may drop a young day that is proven.
	if err := j.DropNow(context.Background(), "2024-03-09"); err != nil {
		t.Fatal(err)
	}
	e.expectDropped("20240309")
	list, err = j.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, d := range list {
		states = append(states, d.Day+":"+string(d.State)+":"+string(d.Table))
	}
	want := []string{
		"20240306:dropped:none", "20240307:dropped:none", "20240308:active:attached",
		"20240309:dropped:none", "20240310:active:attached",
	}
	if !slices.Equal(states, want) {
		t.Errorf("List: %v, want %v", states, want)
	}
}

func TestDayWithoutMessages(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.partition("20240301", 0) // empty: nothing to lose
	e.partition("20240302", 2) // rows, but no message proves them
	dropped, err := e.janitor("janitor", nil).RunOnce(context.Background())
	if !slices.Equal(dropped, []string{"20240301"}) {
		t.Errorf("dropped %v, want the empty day only", dropped)
	}
	np := shards.NotProven(err)
	if len(np) != 1 || np[0].Day != "20240302" || !strings.Contains(np[0].Reason, "holds no message of this day") {
		t.Errorf("err %v", err)
	}
	if st := e.tableState("20240302"); st != "attached" {
		t.Errorf("table with unproven rows is %s", st)
	}
}

func TestRecreatedTableOfDroppedShardIsDroppedAgain(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const day = "20240301"
	e.safeDay(day)
	j := e.janitor("janitor", nil)
	if err := j.DropNow(context.Background(), day); err != nil {
		t.Fatal(err)
	}
	// A writer that had not seen the state brings the partition back.
	e.partition(day, 1)
	dropped, err := j.RunOnce(context.Background())
	if err != nil || !slices.Equal(dropped, []string{day}) {
		t.Fatalf("dropped %v, err %v", dropped, err)
	}
	e.expectDropped(day)
}

func TestLostLockStopsTheNextStep(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const day = "20240301"
	e.safeDay(day)
	locks := e.locks()
	var other *shards.Lock
	a := e.janitor("janitor-a", func(o *shards.Options) {
		o.AfterStep = func(d string, s shards.Step) error {
			if s != shards.StepDrain {
				return nil
			}
			// While a is between steps its key expires (purged here, as
			// the TTL would) and b takes the lock.
			if err := locks.Purge(context.Background(), shards.LockName); err != nil {
				return err
			}
			var err error
			other, err = shards.Acquire(context.Background(), locks, shards.LockName, "janitor-b", 5*time.Second)
			return err
		}
	})
	_, err := a.RunOnce(context.Background())
	if !errors.Is(err, shards.ErrLost) {
		t.Fatalf("janitor that lost its lock: %v, want ErrLost", err)
	}
	if st := e.tableState(day); st != "attached" {
		t.Errorf("the janitor that lost its lock went on: table is %s", st)
	}
	if st := e.shardState(day); st != streams.ShardDraining {
		t.Errorf("shard %q, want draining", st)
	}
	// a left b's lock alone.
	if other == nil {
		t.Fatal("b did not get the lock")
	}
	if err := other.Check(context.Background()); err != nil {
		t.Errorf("b's lock after a stopped: %v", err)
	}
	if err := other.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := e.janitor("janitor-c", nil).RunOnce(context.Background())
	if err != nil || !slices.Equal(got, []string{day}) {
		t.Fatalf("next janitor: %v, %v", got, err)
	}
	e.expectDropped(day)
}

func TestParseDay(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"2024-03-01": "20240301", "20240301": "20240301"} {
		if got, err := shards.ParseDay(in); err != nil || got != want {
			t.Errorf("ParseDay(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "2024-3-1", "yesterday", "2024-02-30"} {
		if _, err := shards.ParseDay(in); err == nil {
			t.Errorf("ParseDay(%q) accepted", in)
		}
	}
}
