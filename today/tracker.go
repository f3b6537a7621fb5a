package today

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
	"heartlog/streams"
	"heartlog/users"
)

// Reader reads a user's heartbeats of UTC days (YYYYMMDD) from wherever
// each day lives; *reads.Reader implements it.
type Reader interface {
	Heartbeats(ctx context.Context, u users.User, days []string) ([]*heartlogv1.Heartbeat, error)
}

// Options tune a Tracker. Zero fields take the defaults.
type Options struct {
	// IdleAfter is how long a user stays active without a status-bar
	// read, a watch or a heartbeat (default 30 minutes); a watched user
	// never goes idle.
	IdleAfter time.Duration
	// MaxUsers is the most users kept at once (default 10,000); past it
	// the least recently used one that nobody watches is dropped.
	MaxUsers int
	// MaxHeartbeats is the most heartbeats kept over every user (default
	// 1,000,000, some 300 MB); past it the least recently used unwatched
	// users are dropped, and a user whose day alone is larger is not kept
	// (ErrTooLarge). A dropped user is read again on their next read.
	MaxHeartbeats int
	// ActivateTimeout bounds one user's activation (default 30 s).
	ActivateTimeout time.Duration
	// A watcher hears of new heartbeats once the Postgres projector has
	// them, so that the views it then reads again show them (announce.go):
	// AnnouncePoll is how often the projector's ack floor is read while
	// news waits (default 20 ms), MaxAnnounceDelay the longest news waits
	// for it (default 1 s; a projector that is behind or down delays the
	// live total no longer).
	AnnouncePoll     time.Duration
	MaxAnnounceDelay time.Duration
	// Log receives the feeds' starts and stops and their errors.
	Log zerolog.Logger
	// Now is the clock of the idle checks and local midnights (default
	// time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.IdleAfter <= 0 {
		o.IdleAfter = 30 * time.Minute
	}
	if o.MaxUsers <= 0 {
		o.MaxUsers = 10_000
	}
	if o.MaxHeartbeats <= 0 {
		o.MaxHeartbeats = 1_000_000
	}
	if o.ActivateTimeout <= 0 {
		o.ActivateTimeout = 30 * time.Second
	}
	if o.AnnouncePoll <= 0 {
		o.AnnouncePoll = 20 * time.Millisecond
	}
	if o.MaxAnnounceDelay <= 0 {
		o.MaxAnnounceDelay = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

var (
	// ErrClosed is returned once the Tracker is closed.
	ErrClosed = errors.New("today: tracker closed")
	// ErrFull means every user slot is taken by a watched user.
	ErrFull = errors.New("today: every user slot is watched")
	// ErrTooLarge means the user's day alone is over MaxHeartbeats.
	ErrTooLarge = errors.New("today: the user's day is over the heartbeat cap")
	// errDropped ends an activation whose user was dropped meanwhile.
	errDropped = errors.New("today: user dropped while activating")
)

// Bar is a user's status bar of today.
type Bar struct {
	// Day is today's summary, as stats.Summarize returns it.
	Day stats.Day
	// Last is the time of the newest heartbeat of the local day (zero:
	// none).
	Last time.Time
}

// Tracker keeps today's state of the active users. It is safe for
// concurrent use.
type Tracker struct {
	js     jetstream.JetStream
	sc     streams.Config
	reader Reader
	o      Options
	log    zerolog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	evict  chan struct{} // nudges the sweeper: over MaxHeartbeats
	kept   atomic.Int64  // heartbeats kept over every user

	// Lock order: mu, then a feed's mu, then a user's mu; wmu is a leaf.
	mu     sync.Mutex
	closed bool
	users  map[string]*user
	lru    *list.List // of *user, most recently used first
	feeds  map[uint32]*feed

	wmu      sync.Mutex
	watchers map[string]map[*Watch]struct{}

	// News for watchers waiting for the projector (announce.go); pmu is
	// a leaf.
	pmu      sync.Mutex
	pending  []pendingNews
	pendingC chan struct{}
}

// New starts a Tracker over the stream c names, reading users' days with
// r. It runs until ctx ends or Close.
func New(ctx context.Context, js jetstream.JetStream, c streams.Config, r Reader, o Options) *Tracker {
	o.setDefaults()
	t := &Tracker{js: js, sc: c, reader: r, o: o, log: o.Log,
		evict: make(chan struct{}, 1), pendingC: make(chan struct{}, 1),
		users: map[string]*user{}, lru: list.New(), feeds: map[uint32]*feed{},
		watchers: map[string]map[*Watch]struct{}{}}
	t.ctx, t.cancel = context.WithCancel(ctx)
	t.wg.Add(2)
	go t.sweep()
	go t.announce()
	go func() {
		<-t.ctx.Done()
		t.shutdown()
	}()
	return t
}

// Close stops every feed and ends every watch (their Done is closed).
// It is safe to call more than once.
func (t *Tracker) Close() {
	t.cancel()
	t.shutdown()
	t.wg.Wait()
}

// Done is closed when the Tracker stops: watchers end their streams then.
func (t *Tracker) Done() <-chan struct{} { return t.ctx.Done() }

func (t *Tracker) shutdown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	for _, u := range t.users {
		t.dropLocked(u, "closed")
	}
}

// StatusBar returns today's status bar of u with the accounting options o
// (o.Start is today in o.Location; o.End, o.Project and o.WritesOnly are
// ignored: callers ask only for the plain status bar). The first call for
// a user, or one whose day, time zone or timeout differ from what the
// user's state was built for, (re)activates the user, which costs a read
// of their day; the others are a lookup, and render the bar again only
// after new heartbeats.
func (t *Tracker) StatusBar(ctx context.Context, u users.User, o stats.Options) (Bar, error) {
	for attempt := 0; ; attempt++ {
		st, err := t.state(u, o)
		if err != nil {
			return Bar{}, err
		}
		select {
		case <-st.ready:
		case <-ctx.Done():
			return Bar{}, ctx.Err()
		}
		err = st.err
		var bar Bar
		if err == nil {
			bar, err = st.render()
		}
		// Dropped under us (evicted, day or settings changed): once more.
		if !errors.Is(err, errDropped) || attempt == 2 {
			return bar, err
		}
		if ctx.Err() != nil {
			return Bar{}, ctx.Err()
		}
	}
}

// state returns u's state for o, starting its activation if it has none
// or one built for another key.
func (t *Tracker) state(u users.User, o stats.Options) (*user, error) {
	k := keyOf(o)
	now := t.o.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	st := t.users[u.ID]
	if st != nil && st.key != k {
		t.dropLocked(st, "changed")
		st = nil
	}
	if st == nil {
		if err := t.makeRoomLocked(); err != nil {
			return nil, err
		}
		st = t.newUserLocked(u, o, k, now)
	}
	t.lru.MoveToFront(st.elem)
	st.touch(now)
	return st, nil
}

// newUserLocked adds u's state and starts its activation.
func (t *Tracker) newUserLocked(u users.User, o stats.Options, k key, now time.Time) *user {
	p := streams.Partition(u.ID, t.sc.Partitions)
	f := t.feeds[p]
	if f == nil {
		f = newFeed(t, p)
		t.feeds[p] = f
		feedsGauge.Inc()
	}
	f.refs++
	st := newUser(u.ID, p, f, o, k)
	st.elem = t.lru.PushFront(st)
	t.users[u.ID] = st
	usersGauge.Inc()
	// At the user's local midnight the state is of yesterday: drop it and
	// tell the watchers, who read (and so rebuild) the new day.
	st.midnight = time.AfterFunc(k.date.AddDays(1).Midnight(o.Location).Sub(now), func() { t.rollover(st) })
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.activate(st, u)
	}()
	return st
}

// makeRoomLocked drops the least recently used unwatched user when the
// user cap is reached.
func (t *Tracker) makeRoomLocked() error {
	if len(t.users) < t.o.MaxUsers {
		return nil
	}
	if victim := t.victimLocked(nil); victim != nil {
		t.dropLocked(victim, "lru")
		return nil
	}
	return ErrFull
}

// victimLocked is the least recently used user nobody watches, other than
// keep; nil if none.
func (t *Tracker) victimLocked(keep *user) *user {
	for e := t.lru.Back(); e != nil; e = e.Prev() {
		st := e.Value.(*user)
		if st != keep && !t.watched(st.id) {
			return st
		}
	}
	return nil
}

// dropLocked forgets st: its feed stops handing it messages, and stops
// itself when st was its last user.
func (t *Tracker) dropLocked(st *user, reason string) {
	if t.users[st.id] != st {
		return
	}
	delete(t.users, st.id)
	t.lru.Remove(st.elem)
	st.midnight.Stop()
	usersGauge.Dec()
	droppedTotal.WithLabelValues(reason).Inc()
	f := st.feed
	f.leave(st)
	t.addKept(-int64(st.forget()))
	if f.refs--; f.refs == 0 {
		delete(t.feeds, f.partition)
		feedsGauge.Dec()
		f.stop()
	}
}

// rollover drops st at its local midnight and wakes its watchers.
func (t *Tracker) rollover(st *user) {
	t.mu.Lock()
	t.dropLocked(st, "midnight")
	t.mu.Unlock()
	t.notify(st.id)
}

// activate builds st (see the package comment) and wakes its watchers.
func (t *Tracker) activate(st *user, u users.User) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.ctx, t.o.ActivateTimeout)
	defer cancel()
	n, err := t.load(ctx, st, u)
	if err == nil && n > t.o.MaxHeartbeats {
		err = ErrTooLarge
	}
	st.err = err
	close(st.ready)
	activationSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		activationsTotal.WithLabelValues(outcome(err)).Inc()
		t.mu.Lock()
		t.dropLocked(st, "failed")
		t.mu.Unlock()
		if !errors.Is(err, ErrTooLarge) && !errors.Is(err, errDropped) && !errors.Is(err, context.Canceled) {
			t.log.Warn().Err(err).Uint32("partition", st.partition).Str("user_id", st.id).Msg("today: activation failed; the status bar is computed instead")
		}
		return
	}
	activationsTotal.WithLabelValues("ok").Inc()
	if t.kept.Load() > int64(t.o.MaxHeartbeats) {
		t.nudge()
	}
	t.notify(st.id)
}

func outcome(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, errDropped), errors.Is(err, context.Canceled):
		return "dropped"
	}
	return "error"
}

// load joins st's feed, reads its day and merges the three parts; it
// returns how many heartbeats st keeps.
func (t *Tracker) load(ctx context.Context, st *user, u users.User) (int, error) {
	joined, err := st.feed.join(ctx, st)
	if err != nil {
		return 0, err
	}
	floor, err := t.projectorFloor(ctx)
	if err != nil {
		return 0, err
	}
	// Only now, after the floor: everything at or below it is in this read.
	stored, err := t.reader.Heartbeats(ctx, u, st.dayList)
	if err != nil {
		return 0, fmt.Errorf("today: read the day: %w", err)
	}
	var caught []*heartlogv1.Heartbeat
	if joined > floor {
		if caught, err = t.catchUp(ctx, st, floor+1, joined); err != nil {
			return 0, err
		}
	}
	n, added := st.settle(stored, caught)
	t.addKept(int64(added))
	return n, nil
}

// projectorFloor is the ack floor of the Postgres projector's durable: the
// last stream sequence at or below which every message is in Postgres.
func (t *Tracker) projectorFloor(ctx context.Context) (uint64, error) {
	c, err := t.js.Consumer(ctx, t.sc.Stream, streams.DurablePostgres)
	if err != nil {
		return 0, fmt.Errorf("today: the Postgres projector's consumer %s: %w", streams.DurablePostgres, err)
	}
	return c.CachedInfo().AckFloor.Stream, nil
}

// catchUp reads st's heartbeats of the stream sequences [from, to] on its
// subjects.
func (t *Tracker) catchUp(ctx context.Context, st *user, from, to uint64) ([]*heartlogv1.Heartbeat, error) {
	subjects := st.subjects()
	stream, err := t.js.Stream(ctx, t.sc.Stream)
	if err != nil {
		return nil, fmt.Errorf("today: catch up: %w", err)
	}
	// Read only if a message of the subjects is at from or later: then the
	// loop below ends on it at the latest.
	newest := uint64(0)
	for _, s := range subjects {
		m, err := stream.GetLastMsgForSubject(ctx, s)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return nil, fmt.Errorf("today: catch up: last message on %s: %w", s, err)
		default:
			newest = max(newest, m.Sequence)
		}
	}
	if newest < from {
		return nil, nil
	}
	cons, err := t.js.OrderedConsumer(ctx, t.sc.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
	})
	if err != nil {
		return nil, fmt.Errorf("today: catch up: %w", err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(256, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("today: catch up: %w", err)
	}
	defer iter.Stop()
	var out []*heartlogv1.Heartbeat
	for {
		msg, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("today: catch up: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("today: catch up: %w", err)
		}
		if meta.Sequence.Stream > to {
			return out, nil
		}
		if b, err := streams.DecodeBatch(msg.Data()); err == nil && st.days[b.Day] {
			for _, hb := range b.Heartbeats {
				if hb.UserId == st.id {
					out = append(out, hb)
				}
			}
		}
		if meta.Sequence.Stream == to || meta.NumPending == 0 {
			return out, nil
		}
	}
}

// nudge asks the sweeper to drop users until under MaxHeartbeats.
func (t *Tracker) nudge() {
	select {
	case t.evict <- struct{}{}:
	default:
	}
}

// sweep drops idle users and, when nudged, users over the heartbeat cap.
func (t *Tracker) sweep() {
	defer t.wg.Done()
	every := min(max(t.o.IdleAfter/10, time.Second), time.Minute)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
			t.dropIdle()
		case <-t.evict:
		}
		t.dropOverCap()
	}
}

func (t *Tracker) dropIdle() {
	idleSince := t.o.Now().Add(-t.o.IdleAfter).UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := t.lru.Back(); e != nil; {
		st := e.Value.(*user)
		e = e.Prev()
		if st.used.Load() < idleSince && !t.watched(st.id) {
			t.dropLocked(st, "idle")
		}
	}
}

func (t *Tracker) dropOverCap() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.kept.Load() > int64(t.o.MaxHeartbeats) {
		victim := t.victimLocked(nil)
		if victim == nil {
			return
		}
		t.dropLocked(victim, "heartbeats_cap")
	}
}

// Watch is a one-slot signal that its user's status bar may have changed:
// a burst of changes is one signal, and a watcher that is slow to take it
// holds nobody up.
type Watch struct {
	// C receives a value after new heartbeats of the user reach the
	// tracker, after the user's state is (re)built, and at local midnight.
	C <-chan struct{}
	c chan struct{}
	t *Tracker
	u string
}

// Watch registers a watcher of the user with this id; it keeps the user
// from going idle until Stop. The user's state must be made active (by
// StatusBar) for heartbeats to wake it.
func (t *Tracker) Watch(userID string) *Watch {
	c := make(chan struct{}, 1)
	w := &Watch{C: c, c: c, t: t, u: userID}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.watchers[userID] == nil {
		t.watchers[userID] = map[*Watch]struct{}{}
	}
	t.watchers[userID][w] = struct{}{}
	watchersGauge.Inc()
	return w
}

// Stop unregisters w.
func (w *Watch) Stop() {
	t := w.t
	t.wmu.Lock()
	_, ok := t.watchers[w.u][w]
	if ok {
		delete(t.watchers[w.u], w)
		if len(t.watchers[w.u]) == 0 {
			delete(t.watchers, w.u)
		}
		watchersGauge.Dec()
	}
	t.wmu.Unlock()
	if !ok {
		return
	}
	// The user stays until idle from now, not from their last read.
	t.mu.Lock()
	if st := t.users[w.u]; st != nil {
		st.touch(t.o.Now())
	}
	t.mu.Unlock()
}

// Watchers is how many watches of the user are open: one per live page
// or client that follows the user's today (heartlog_today_watchers counts
// them for all users). A page that was left and still counts holds a
// connection the browser may need.
func (t *Tracker) Watchers(userID string) int {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return len(t.watchers[userID])
}

func (t *Tracker) watched(userID string) bool {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return len(t.watchers[userID]) > 0
}

// notify wakes the user's watchers without ever blocking.
func (t *Tracker) notify(userID string) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	for w := range t.watchers[userID] {
		select {
		case w.c <- struct{}{}:
		default: // a signal is pending already: it covers this change
		}
	}
}
