package api

import (
	"container/list"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// workLimiter is the per-user budget of ingest work: heartbeats per second
// and bytes per second, as two token buckets taken together. The request
// bucket (limiter.allow) is the cheap first gate before a body is read;
// this one is asked after decoding, when the work is known.
type workLimiter struct {
	heartbeats, bytes *limiter
}

// ready reports, taking nothing, whether the user's budget holds one
// heartbeat and size bytes, or how long until it does. Ingest asks it from
// the request's Content-Length before reading the body: a client that has
// spent its budget is refused without costing an upload and a decode
// (measured: without it, the burst of requests that got past the request
// bucket, each 1,000 heartbeats decoded and then refused, took another
// user's p99 from 8 ms to 130 ms).
func (w *workLimiter) ready(user string, size int64) (bool, time.Duration) {
	now := time.Now()
	hr := w.heartbeats.reserve(user, 1, now)
	br := w.bytes.reserve(user, int(min(max(size, 0), int64(w.bytes.burst))), now)
	wait := max(hr.DelayFrom(now), br.DelayFrom(now))
	hr.CancelAt(now)
	br.CancelAt(now)
	return wait <= 0 && hr.OK() && br.OK(), min(wait, time.Hour)
}

// allowN takes n heartbeats and size bytes from the user's budget, or
// nothing and says how long until both fit.
func (w *workLimiter) allowN(user string, n int, size int64) (bool, time.Duration) {
	now := time.Now()
	hr := w.heartbeats.reserve(user, n, now)
	br := w.bytes.reserve(user, int(min(size, int64(w.bytes.burst))), now)
	wait := max(hr.DelayFrom(now), br.DelayFrom(now))
	if wait <= 0 && hr.OK() && br.OK() {
		return true, 0
	}
	hr.CancelAt(now)
	br.CancelAt(now)
	return false, min(wait, time.Hour)
}

// dayCounter counts, per user-day, the distinct heartbeats and the day-file
// bytes that this serve instance has accepted, so that ingest refuses what
// would grow a day file past what the sinks handle.
//
// The count is in memory, per instance, in an LRU bounded by the ids it
// remembers: it starts from nothing after a restart, N instances behind a
// load balancer let a user-day reach up to N times the cap, and a user-day
// evicted under memory pressure starts over. Past that, the day-file sinks
// refuse what exceeds their hard limit (and park it). Counting in a
// JetStream KV bucket would be exact across instances, but costs a
// replicated, fsynced write per request on top of the publish (the log
// itself is group-committed, a counter per request is not), which would
// halve the request rate the log sustains.
//
// Ids are remembered as 64-bit hashes, so a resend of the same heartbeat
// (an offline queue sending again after a timeout) counts once; a hash
// collision between two heartbeats of one user-day (odds about n²/2⁶⁵)
// counts the second as a resend.
type dayCounter struct {
	maxHeartbeats int
	maxBytes      int64
	maxIDs        int

	mu   sync.Mutex
	seed maphash.Seed
	days map[string]*list.Element // of *userDay
	lru  *list.List               // front: most recently used
	ids  int                      // ids remembered in all
}

type userDay struct {
	key   string
	ids   map[uint64]struct{}
	bytes int64
}

func newDayCounter(maxHeartbeats int, maxBytes int64, maxIDs int) *dayCounter {
	return &dayCounter{maxHeartbeats: maxHeartbeats, maxBytes: maxBytes, maxIDs: maxIDs,
		seed: maphash.MakeSeed(), days: map[string]*list.Element{}, lru: list.New()}
}

// admission is what admit took, so that a request the log did not store
// can give it back.
type admission struct {
	entries []admitted
}

type admitted struct {
	day   *userDay
	id    uint64
	bytes int64
}

// admit counts each heartbeat (prepared, so with its id) into its
// user-day, or sets errs[i] when the heartbeat would take the day past a
// cap. sizes[i] is the heartbeat's day-file line size.
func (c *dayCounter) admit(user string, hbs []*heartlogv1.Heartbeat, sizes []int, errs []error) admission {
	c.mu.Lock()
	defer c.mu.Unlock()
	var a admission
	for i, hb := range hbs {
		day := heartbeat.Day(hb)
		ud := c.day(user + "/" + day)
		id := maphash.String(c.seed, hb.Id)
		if _, ok := ud.ids[id]; ok {
			continue // a resend: the sinks keep it once
		}
		switch size := int64(sizes[i]); {
		case len(ud.ids) >= c.maxHeartbeats:
			errs[i] = &heartbeat.FieldError{Field: "time", Reason: fmt.Sprintf("falls on the UTC day %s, which already holds %d heartbeats, the most one user-day may hold (HEARTLOG_DAY_MAX_HEARTBEATS)", isoDay(day), c.maxHeartbeats)}
		case ud.bytes+size > c.maxBytes:
			errs[i] = &heartbeat.FieldError{Field: "time", Reason: fmt.Sprintf("falls on the UTC day %s, whose day file would grow past %s, the most one user-day may hold (HEARTLOG_DAY_MAX_BYTES)", isoDay(day), byteSize(c.maxBytes))}
		default:
			ud.ids[id] = struct{}{}
			ud.bytes += size
			c.ids++
			a.entries = append(a.entries, admitted{day: ud, id: id, bytes: size})
		}
	}
	c.evict()
	return a
}

// release gives back what admit counted, for a request that was not stored.
func (c *dayCounter) release(a admission) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range a.entries {
		if _, ok := e.day.ids[e.id]; ok {
			delete(e.day.ids, e.id)
			e.day.bytes -= e.bytes
			c.ids--
		}
	}
}

// day returns the user-day's count, most recently used.
func (c *dayCounter) day(key string) *userDay {
	if el, ok := c.days[key]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*userDay)
	}
	ud := &userDay{key: key, ids: map[uint64]struct{}{}}
	c.days[key] = c.lru.PushFront(ud)
	return ud
}

// dayCostIDs is what one remembered user-day costs beside its ids, in ids
// (some 16 bytes each): its map, list element and key are some 300 bytes.
// Counting it keeps the bound in memory when user-days hold one id each (a
// year of history, one heartbeat a day) or none (given back by release).
const dayCostIDs = 20

// evict forgets the least recently used user-days while they cost more
// than maxIDs, keeping at least the most recent one.
func (c *dayCounter) evict() {
	for c.ids+c.lru.Len()*dayCostIDs > c.maxIDs && c.lru.Len() > 1 {
		el := c.lru.Back()
		ud := el.Value.(*userDay)
		c.lru.Remove(el)
		delete(c.days, ud.key)
		c.ids -= len(ud.ids)
		clear(ud.ids) // a pending release of it is then a no-op
	}
}

// isoDay turns YYYYMMDD into YYYY-MM-DD for people.
func isoDay(day string) string {
	if len(day) != 8 {
		return day
	}
	return day[:4] + "-" + day[4:6] + "-" + day[6:]
}
