// Package health probes heartlog's dependencies for /readyz and says which
// capability an outage takes away: ingest needs NATS alone (the stream and
// the users bucket), reads of hot days need Postgres, reads of older days
// need SSDB and S3 (DESIGN.md invariant 7).
//
// A report names each dependency with a fixed word ("ok", "unreachable"),
// never an error text or an address: /readyz is open to anyone. The detail
// goes to the log, once when a check starts failing, then at most every
// Options.LogEvery while it goes on, and once when it recovers, so a probe
// every second does not flood the log.
package health

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Capability is something heartlog does for its users.
type Capability string

const (
	// Ingest is accepting heartbeats: NATS, the stream, the users bucket.
	Ingest Capability = "ingest"
	// HotReads are reads of days whose Postgres shard is active.
	HotReads Capability = "reads of hot days"
	// OlderReads are reads of days served from SSDB and S3.
	OlderReads Capability = "reads of older days"
)

// readCapabilities are the read capabilities, in report order.
var readCapabilities = []Capability{HotReads, OlderReads}

// Check is one dependency.
type Check struct {
	// Name is how the report calls it: nats, stream, users, postgres, ...
	Name string
	// Needed are the capabilities lost while it fails.
	Needed []Capability
	// Probe returns nil when the dependency answers. Its error is logged,
	// never shown.
	Probe func(ctx context.Context) error
}

// Options configure a Checker. Zero fields take the defaults.
type Options struct {
	// Timeout bounds each probe (default 2s): a dependency slower than that
	// counts as unreachable.
	Timeout time.Duration
	// ReuseFor is how long a report answers repeated requests before the
	// probes run again (default 2s), so that a flood of /readyz requests is
	// not a flood on Postgres and S3.
	ReuseFor time.Duration
	// LogEvery is how often a check that goes on failing is logged again
	// (default 1m).
	LogEvery time.Duration
	// Log receives the detail of failures.
	Log zerolog.Logger
}

// Status words of a Report.
const (
	OK          = "ok"
	Degraded    = "degraded"
	Unavailable = "unavailable"
	Unreachable = "unreachable"
)

// Report is what /readyz shows.
type Report struct {
	// Status is ok, degraded (ingest works, something else does not) or
	// unavailable (ingest does not).
	Status string `json:"status"`
	// Ingest is ok or unavailable.
	Ingest string `json:"ingest"`
	// Reads is ok, degraded (some days cannot be read) or unavailable.
	Reads string `json:"reads"`
	// Affected lists the capabilities lost, if any.
	Affected []Capability `json:"affected,omitempty"`
	// Checks is each dependency's state: ok or unreachable.
	Checks map[string]string `json:"checks"`
}

// IngestOK reports whether heartbeats can be accepted.
func (r Report) IngestOK() bool { return r.Ingest == OK }

// Checker runs checks and remembers their last outcome.
type Checker struct {
	checks []Check
	opts   Options

	mu     sync.Mutex
	last   Report
	at     time.Time
	states map[string]*state
}

type state struct {
	failing  bool
	since    time.Time
	loggedAt time.Time
}

// New makes a Checker of checks.
func New(checks []Check, opts Options) *Checker {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.ReuseFor <= 0 {
		opts.ReuseFor = 2 * time.Second
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = time.Minute
	}
	c := &Checker{checks: checks, opts: opts, states: map[string]*state{}}
	for _, ch := range checks {
		c.states[ch.Name] = &state{}
	}
	return c
}

// Report probes every dependency (or reuses a report younger than
// ReuseFor) and says what works.
func (c *Checker) Report(ctx context.Context) Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < c.opts.ReuseFor {
		return c.last
	}
	errs := make([]error, len(c.checks))
	var wg sync.WaitGroup
	for i, ch := range c.checks {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
			defer cancel()
			errs[i] = ch.Probe(pctx)
		})
	}
	wg.Wait()
	c.last, c.at = c.summarize(errs), time.Now()
	return c.last
}

func (c *Checker) summarize(errs []error) Report {
	r := Report{Checks: map[string]string{}}
	lost := map[Capability]bool{}
	for i, ch := range c.checks {
		c.note(ch, errs[i])
		if errs[i] == nil {
			r.Checks[ch.Name] = OK
			continue
		}
		r.Checks[ch.Name] = Unreachable
		for _, cp := range ch.Needed {
			lost[cp] = true
		}
	}
	r.Ingest, r.Reads = OK, OK
	if lost[Ingest] {
		r.Ingest = Unavailable
		r.Affected = append(r.Affected, Ingest)
	}
	lostReads := 0
	for _, cp := range readCapabilities {
		if lost[cp] {
			lostReads++
			r.Affected = append(r.Affected, cp)
		}
	}
	switch lostReads {
	case 0:
	case len(readCapabilities):
		r.Reads = Unavailable
	default:
		r.Reads = Degraded
	}
	switch {
	case r.Ingest != OK:
		r.Status = Unavailable
	case len(r.Affected) > 0:
		r.Status = Degraded
	default:
		r.Status = OK
	}
	return r
}

// note logs a check's failure when it starts, again every LogEvery while
// it lasts, and its recovery.
func (c *Checker) note(ch Check, err error) {
	st, now := c.states[ch.Name], time.Now()
	switch {
	case err == nil && st.failing:
		st.failing = false
		c.opts.Log.Info().Str("check", ch.Name).Str("down_for", now.Sub(st.since).Round(time.Millisecond).String()).
			Msg("dependency is back")
	case err != nil && !st.failing:
		st.failing, st.since, st.loggedAt = true, now, now
		c.warn(ch, err, 0)
	case err != nil && now.Sub(st.loggedAt) >= c.opts.LogEvery:
		st.loggedAt = now
		c.warn(ch, err, now.Sub(st.since))
	}
}

func (c *Checker) warn(ch Check, err error, downFor time.Duration) {
	affects := make([]string, len(ch.Needed))
	for i, cp := range ch.Needed {
		affects[i] = string(cp)
	}
	ev := c.opts.Log.Warn().Str("check", ch.Name).Err(err).Strs("affects", affects)
	if downFor > 0 {
		ev = ev.Str("down_for", downFor.Round(time.Second).String())
	}
	ev.Msg("dependency unreachable")
}
