package users

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// ErrUnavailable means the users bucket cannot be read right now: a
// lookup should be retried later, not refused as an unknown key.
var ErrUnavailable = errors.New("users: the users bucket is unreachable")

// DirectoryOptions configure a Directory. Zero fields take the defaults.
type DirectoryOptions struct {
	// MaxStale is how long lookups go on answering from the local copy
	// while NATS is unreachable (default 30s); after it they fail with
	// ErrUnavailable. It bounds how long a key deleted meanwhile can still
	// read; nothing can be ingested without NATS anyway.
	MaxStale time.Duration
	// MissesPerSecond bounds the bucket reads of keys the local copy does
	// not hold (default 100, burst as many): such a read finds a user
	// created a moment ago whose record the watch has not delivered yet, so
	// that `heartlog users create` is followed by a working key on every
	// instance at once. Beyond the bound a miss is answered from the local
	// copy alone, so random keys cannot turn into load on NATS.
	MissesPerSecond float64
}

// Directory is a local copy of the users bucket, kept current by a KV
// watch. A lookup is a map read: no server round trip per request, no
// Postgres, and a new user, a new key or a deleted one reaches every API
// instance as soon as JetStream delivers the change (milliseconds), where
// a cache would serve a revoked key until its entry expired.
type Directory struct {
	mu     sync.RWMutex
	byHash map[KeyHash]User
	// deleted are the ids of tombstoned users (Deleted).
	deleted map[string]bool
	// changed is closed, and replaced, on every record applied: it wakes
	// Await.
	changed chan struct{}

	kv       jetstream.KeyValue
	misses   *rate.Limiter
	w        jetstream.KeyWatcher
	nc       *nats.Conn
	status   chan nats.Status
	maxStale time.Duration
	// downSince is when NATS was last seen to go away (unix nanoseconds),
	// 0 while connected.
	downSince atomic.Int64
}

// WatchDirectory opens the users bucket and returns once the Directory
// holds every record in it.
func WatchDirectory(ctx context.Context, js jetstream.JetStream, bucket string, opts DirectoryOptions) (*Directory, error) {
	if opts.MaxStale <= 0 {
		opts.MaxStale = 30 * time.Second
	}
	if opts.MissesPerSecond <= 0 {
		opts.MissesPerSecond = 100
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("users: open KV bucket %s: %w", bucket, err)
	}
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("users: watch KV bucket %s: %w", bucket, err)
	}
	d := &Directory{
		byHash: map[KeyHash]User{}, deleted: map[string]bool{}, changed: make(chan struct{}), kv: kv, w: w, nc: js.Conn(), maxStale: opts.MaxStale,
		misses: rate.NewLimiter(rate.Limit(opts.MissesPerSecond), int(max(opts.MissesPerSecond, 1))),
	}
	for {
		select {
		case e := <-w.Updates():
			if e != nil {
				d.apply(e)
				continue
			}
			// Every current record is in; follow the changes.
			d.status = d.nc.StatusChanged()
			d.noteStatus(d.nc.Status())
			go d.follow()
			return d, nil
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		}
	}
}

func (d *Directory) follow() {
	updates, status := d.w.Updates(), d.status
	for {
		select {
		case e, ok := <-updates:
			if !ok {
				return
			}
			if e != nil {
				d.apply(e)
			}
		case st, ok := <-status:
			if !ok {
				status = nil // stopped: wait for the updates to close
				continue
			}
			d.noteStatus(st)
		}
	}
}

func (d *Directory) noteStatus(st nats.Status) {
	if st == nats.CONNECTED {
		d.downSince.Store(0)
		return
	}
	d.downSince.CompareAndSwap(0, time.Now().UnixNano())
}

func (d *Directory) apply(e jetstream.KeyValueEntry) {
	if id, ok := parseTombstoneKey(e.Key()); ok {
		d.applyTombstone(id, e.Operation() == jetstream.KeyValuePut)
		return
	}
	h, ok := parseKeyHash(e.Key())
	if !ok {
		return // neither a record nor a tombstone (nothing else is written there)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	close(d.changed)
	d.changed = make(chan struct{})
	if e.Operation() != jetstream.KeyValuePut {
		delete(d.byHash, h)
		return
	}
	u, err := decodeRecord(e.Value())
	if err != nil || u.ID == "" {
		// A record we cannot read must not authenticate anyone.
		delete(d.byHash, h)
		return
	}
	d.byHash[h] = u
}

// ByKey finds the owner of an API key hash: ErrNotFound if no user has
// it, ErrUnavailable if NATS has been unreachable for longer than MaxStale.
func (d *Directory) ByKey(ctx context.Context, h KeyHash) (User, error) {
	if since := d.downSince.Load(); since != 0 && time.Since(time.Unix(0, since)) > d.maxStale {
		return User{}, ErrUnavailable
	}
	d.mu.RLock()
	u, ok := d.byHash[h]
	gone := ok && d.deleted[u.ID]
	d.mu.RUnlock()
	if gone {
		return User{}, ErrNotFound // its record's removal is on its way
	}
	if ok {
		return u, nil
	}
	if !d.misses.Allow() {
		return User{}, ErrNotFound
	}
	// Not added to the map: the watch delivers it in order with any
	// later change, which a copy taken here could overtake.
	e, err := d.kv.Get(ctx, h.String())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if u, err = decodeRecord(e.Value()); err != nil || u.ID == "" || d.Deleted(u.ID) {
		return User{}, ErrNotFound
	}
	return u, nil
}

// Await waits until the Directory holds a record of user id for which ok
// holds, or ctx ends.
func (d *Directory) Await(ctx context.Context, id string, ok func(User) bool) error {
	for {
		d.mu.RLock()
		changed, found := d.changed, false
		for _, u := range d.byHash {
			if u.ID == id && ok(u) {
				found = true
				break
			}
		}
		d.mu.RUnlock()
		if found {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Len is how many records the Directory holds.
func (d *Directory) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.byHash)
}

// Stop ends the watch.
func (d *Directory) Stop() error {
	d.nc.RemoveStatusListener(d.status)
	return d.w.Stop()
}

// Accounts is what the API looks users up in: API keys in the Directory
// (NATS alone, so that ingest survives a Postgres outage) and users by id
// in the Store (Postgres: all_time needs a first day fresher than any
// copy).
type Accounts struct {
	Keys  *Directory
	Store *Store
}

// ByKey finds the owner of an API key hash in the Directory.
func (a Accounts) ByKey(ctx context.Context, h KeyHash) (User, error) { return a.Keys.ByKey(ctx, h) }

// ByID reads a user from the Store.
func (a Accounts) ByID(ctx context.Context, id string) (User, error) { return a.Store.ByID(ctx, id) }

// awaitDirectory bounds how long Update waits for the Directory: the watch
// delivers in milliseconds, and a change that takes longer is stored all
// the same.
const awaitDirectory = 2 * time.Second

// Update applies c in the Store, then waits until the Directory serves
// the result (at most awaitDirectory), so that the caller's next request
// to this instance already reads with it.
func (a Accounts) Update(ctx context.Context, id string, c Change) (User, error) {
	u, err := a.Store.Update(ctx, id, c)
	if err != nil {
		return User{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, awaitDirectory)
	defer cancel()
	_ = a.Keys.Await(ctx, id, func(d User) bool {
		return d.Name == u.Name && d.TimeZone == u.TimeZone && d.TimeoutMinutes == u.TimeoutMinutes
	})
	return u, nil
}

func (d *Directory) applyTombstone(id string, put bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if put {
		d.deleted[id] = true
	} else {
		delete(d.deleted, id)
	}
}

// Deleted reports whether the user id has a tombstone (users.Tombstone):
// its heartbeats are dropped by every sink, and its files by restore and
// rebuild. It answers from memory, as of the last update the watch has
// seen.
func (d *Directory) Deleted(id string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.deleted[id]
}
