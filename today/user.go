package today

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
	"heartlog/streams"
)

// key is what a user's state was computed for: when any part differs
// from a read's, the state is rebuilt.
type key struct {
	date    stats.Date
	zone    string
	timeout int
}

func keyOf(o stats.Options) key {
	zone := "UTC"
	if o.Location != nil {
		zone = o.Location.String()
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = stats.DefaultTimeoutMinutes
	}
	return key{date: o.Start, zone: zone, timeout: timeout}
}

// user is one active user's today.
type user struct {
	id        string
	partition uint32
	feed      *feed
	key       key
	opts      stats.Options // today only, entities omitted: the status bar
	days      map[string]bool
	dayList   []string
	from, to  time.Time // the local day

	elem     *list.Element // in Tracker.lru, under Tracker.mu
	midnight *time.Timer
	used     atomic.Int64 // Unix nanoseconds of the last read, watch or heartbeat

	// ready is closed when the activation ends; err is then set for good.
	ready chan struct{}
	err   error

	mu         sync.Mutex
	activating bool
	dropped    bool
	pending    []*heartlogv1.Heartbeat // from the feed while activating
	hbs        map[string]*heartlogv1.Heartbeat
	bar        *Bar // nil: render again
}

func newUser(id string, p uint32, f *feed, o stats.Options, k key) *user {
	days := stats.UTCDays(o.Start, o.Start, o.Location)
	st := &user{id: id, partition: p, feed: f, key: k, dayList: days, days: map[string]bool{},
		from: o.Start.Midnight(o.Location), to: o.Start.AddDays(1).Midnight(o.Location),
		ready: make(chan struct{}), activating: true, hbs: map[string]*heartlogv1.Heartbeat{}}
	for _, d := range days {
		st.days[d] = true
	}
	st.opts = stats.Options{Location: o.Location, Timeout: k.timeout, Start: o.Start, End: o.Start, OmitEntities: true}
	return st
}

func (st *user) touch(now time.Time) { st.used.Store(now.UnixNano()) }

// subjects are the stream subjects of st's UTC days in its partition.
func (st *user) subjects() []string {
	out := make([]string, len(st.dayList))
	for i, d := range st.dayList {
		out[i] = streams.Subject(d, st.partition)
	}
	return out
}

// settle merges the day read from the store and the catch-up with what
// the feed held back, in the order their messages were stored (the first
// copy of an id wins), and ends the activation. It returns the number of
// heartbeats kept and how many it added.
func (st *user) settle(stored, caught []*heartlogv1.Heartbeat) (n, added int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.dropped {
		return 0, 0
	}
	for _, part := range [][]*heartlogv1.Heartbeat{stored, caught, st.pending} {
		for _, hb := range part {
			if st.keep(hb) {
				added++
			}
		}
	}
	st.pending, st.activating, st.bar = nil, false, nil
	return len(st.hbs), added
}

// add takes heartbeats the feed handled; it reports how many were new.
func (st *user) add(day string, hbs []*heartlogv1.Heartbeat) int {
	if !st.days[day] {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.dropped {
		return 0
	}
	if st.activating {
		st.pending = append(st.pending, hbs...)
		return 0
	}
	added := 0
	for _, hb := range hbs {
		if st.keep(hb) {
			added++
		}
	}
	if added > 0 {
		st.bar = nil
	}
	return added
}

// keep adds hb unless its id is kept already, trimmed to what the status
// bar reads.
func (st *user) keep(hb *heartlogv1.Heartbeat) bool {
	if hb.UserId != st.id || !st.days[heartbeat.Day(hb)] {
		return false
	}
	if _, ok := st.hbs[hb.Id]; ok {
		return false
	}
	st.hbs[hb.Id] = &heartlogv1.Heartbeat{
		Id: hb.Id, Time: hb.Time, IsWrite: hb.IsWrite, Entity: hb.Entity, Type: hb.Type, Category: hb.Category,
		Project: hb.Project, Branch: hb.Branch, Language: hb.Language, Dependencies: hb.Dependencies,
		Editor: hb.Editor, OperatingSystem: hb.OperatingSystem, Machine: hb.Machine,
	}
	return true
}

// forget empties a dropped state; it returns how many heartbeats it held.
func (st *user) forget() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := len(st.hbs)
	st.dropped, st.hbs, st.pending = true, nil, nil
	return n
}

// render returns the status bar, computing it again only after a change.
func (st *user) render() (Bar, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.bar != nil {
		return *st.bar, nil
	}
	if st.dropped {
		return Bar{}, errDropped // its heartbeats are gone: read it again
	}
	hbs := make([]*heartlogv1.Heartbeat, 0, len(st.hbs))
	var last time.Time
	for _, hb := range st.hbs {
		hbs = append(hbs, hb)
		if at := heartbeat.TimeOf(hb); !at.Before(st.from) && at.Before(st.to) && at.After(last) {
			last = at
		}
	}
	days, err := stats.Summarize(hbs, st.opts)
	if err != nil {
		return Bar{}, err
	}
	st.bar = &Bar{Day: days[0], Last: last}
	return *st.bar, nil
}
