package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per user. Idle buckets are forgotten, which
// is the same as refilling them.
type limiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}, swept: time.Now()}
}

// allow takes a token for the user, or says how long until one is free.
func (l *limiter) allow(user string) (bool, time.Duration) { return l.allowN(user, 1) }

// blocked says, taking nothing, whether the key's bucket is empty, and
// how long until it holds a token.
func (l *limiter) blocked(key string) (bool, time.Duration) {
	now := time.Now()
	r := l.reserve(key, 1, now)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d > 0, d
}

// allowN takes n tokens for the user at once, or none and says how long
// until n are free. n above the burst can never be allowed: the wait is
// then how long the whole burst takes to refill.
func (l *limiter) allowN(user string, n int) (bool, time.Duration) {
	now := time.Now()
	r := l.reserve(user, n, now)
	if d := r.DelayFrom(now); d > 0 || !r.OK() {
		r.CancelAt(now)
		if !r.OK() {
			d = time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
		}
		return false, d
	}
	return true, 0
}

// reserve reserves n tokens for the user; the caller cancels the
// reservation if it does not go ahead.
func (l *limiter) reserve(user string, n int, now time.Time) *rate.Reservation {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		l.sweep(now)
	}
	b := l.buckets[user]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[user] = b
	}
	b.seen = now
	return b.l.ReserveN(now, n)
}

// sweep drops buckets idle long enough to have refilled completely.
func (l *limiter) sweep(now time.Time) {
	full := time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + time.Second
	for user, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, user)
		}
	}
	l.swept = now
}
