package today

import (
	"context"
	"time"
)

// A watcher refetches the dashboard's other views (the range's totals,
// the daily bars) when it hears of new heartbeats, and those come from the
// read path: Postgres, which the projector writes a moment after the
// stream stored the message. Telling a watcher as soon as the feed has a
// message would make it read the old totals and keep them until the next
// heartbeat. So the feed's news waits here until the Postgres projector's
// ack floor reaches the message (every message at or below it is
// committed), and is told then, or after MaxAnnounceDelay at the latest:
// with Postgres down the live total still moves, as ingest does.

// pendingNews is one message's users, waiting for the projector.
type pendingNews struct {
	seq   uint64
	users []string
	at    time.Time
}

// announceAfterProjected tells users' watchers of the message seq once the
// read path has it.
func (t *Tracker) announceAfterProjected(seq uint64, users []string) {
	t.pmu.Lock()
	t.pending = append(t.pending, pendingNews{seq: seq, users: users, at: t.o.Now()})
	t.pmu.Unlock()
	select {
	case t.pendingC <- struct{}{}:
	default:
	}
}

// announce runs until the Tracker stops. It sleeps while nothing is
// pending; while news waits it reads the projector's ack floor every
// AnnouncePoll (one consumer-info request for all users) and tells the
// watchers of every message at or below it, or older than
// MaxAnnounceDelay.
func (t *Tracker) announce() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.pendingC:
		}
		for t.announceDue() {
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(t.o.AnnouncePoll):
			}
		}
	}
}

// announceDue tells the watchers of the news that is due; it reports
// whether news still waits.
func (t *Tracker) announceDue() bool {
	t.pmu.Lock()
	n := len(t.pending)
	t.pmu.Unlock()
	if n == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.o.AnnouncePoll*10)
	floor, err := t.projectorFloor(ctx)
	cancel()
	if err != nil {
		floor = 0 // only the overdue ones go out
	}
	oldest := t.o.Now().Add(-t.o.MaxAnnounceDelay)
	t.pmu.Lock()
	var due []string
	keep := t.pending[:0]
	for _, p := range t.pending {
		if p.seq <= floor || p.at.Before(oldest) {
			due = append(due, p.users...)
		} else {
			keep = append(keep, p)
		}
	}
	clear(t.pending[len(keep):])
	t.pending = keep
	waiting := len(keep) > 0
	t.pmu.Unlock()
	for _, id := range due {
		t.notify(id)
	}
	return waiting
}
