package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// result is one row of the table.
type result struct {
	scenario string
	target   string
	failed   string // set when the scenario could not be measured

	conns, size int     // connections (or publishers) and heartbeats per request
	requests    int     // finished in the window (commits, for drain)
	okRequests  int     // acknowledged
	heartbeats  int     // acknowledged heartbeats (rows, for drain)
	seconds     float64 // measured window
	msgs        uint64  // JetStream messages the stream gained
	cpuCores    float64 // this process's CPU seconds per wall second
	errors      map[string]int
	latency     latencies

	distinct      int // drain: distinct heartbeats in the backlog
	maxCommitRows int // drain: largest commit

	// Day-file scenarios: the measured number and its unit, notes and the
	// CPU note (which replace the generic ones).
	unit    string
	rate    float64
	notes   []string
	cpuNote string
	// result, when set, is the result column as is (the reads and janitor
	// rows, whose targets are latencies).
	result string
}

type latencies struct {
	n             int
	p50, p99, max time.Duration
}

func summarize(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return latencies{n: len(s), p50: at(0.50), p99: at(0.99), max: s[len(s)-1]}
}

// Targets, per scenario: the number and what it counts.
var targets = map[string]struct {
	min  float64
	unit string
}{
	"bulk":   {100_000, "heartbeats/s"},
	"single": {15_000, "requests/s"},
	"drain":  {100_000, "rows/s"},
	"import": {50_000, "heartbeats/s"},

	"dayfiles-drain/objects":   {50_000, "heartbeats/s"},
	"dayfiles-latency/objects": {2_000, "writes/s"},
	"dayfiles-latency/backup":  {450, "writes/s"},
}

func targetFor(name string) string {
	t, ok := targets[name]
	if !ok {
		return "—"
	}
	return "≥" + thousands(t.min) + " " + t.unit
}

// value is the number the scenario's target is about.
func (r result) value() float64 {
	if r.unit != "" {
		return r.rate
	}
	if r.seconds <= 0 {
		return 0
	}
	switch r.scenario {
	case "single":
		return float64(r.okRequests) / r.seconds
	}
	return float64(r.heartbeats) / r.seconds
}

// machine describes what the numbers were measured on.
type machine struct {
	loadAvg    string  // /proc/loadavg at start: other work on the box
	fsyncsPerS float64 // 4 KiB write+fsync per second in the JetStream store's directory
}

// probeMachine reads the load average and times small fsynced writes in
// dir, the ceiling of a store that fsyncs every message.
func probeMachine(dir string) machine {
	m := machine{loadAvg: loadAvg()}
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return m
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	const n = 200
	start := time.Now()
	for range n {
		if _, err := f.Write(buf); err != nil {
			return m
		}
		if err := f.Sync(); err != nil {
			return m
		}
	}
	m.fsyncsPerS = n / time.Since(start).Seconds()
	return m
}

func printTable(w io.Writer, cfg config, m machine, results []result) {
	linger, inflight := "default", "default"
	if cfg.linger > 0 {
		linger = cfg.linger.String()
	}
	if cfg.maxInFlight > 0 {
		inflight = strconv.Itoa(cfg.maxInFlight)
	}
	partitions := "16 (default)"
	if cfg.partitions > 0 {
		partitions = strconv.Itoa(cfg.partitions)
	}
	fmt.Fprintf(w, "\nheartlog ops/bench: %d CPUs, %s %s/%s, JetStream sync always=%t, %s partitions, publisher Linger=%s MaxInFlight=%s, processor during HTTP scenarios=%t, window %s after %s warm-up\n\n",
		runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, cfg.syncAlways, partitions, linger, inflight, cfg.withProcessor, cfg.duration, cfg.warmup)
	fmt.Fprintf(w, "machine at start: load average %s; disk %s fsynced 4 KiB writes/s in the JetStream store's directory\n\n", m.loadAvg, thousands(m.fsyncsPerS))
	if slices.ContainsFunc(cfg.scenarios, func(s string) bool { return strings.HasPrefix(s, "dayfiles-") }) {
		fmt.Fprintf(w, "day files: each processor alone, processors.RunPartitions over its %d partition consumers, BatchMessages=%d Linger=%s, timed until every consumer has NumPending=0 and NumAckPending=0; stores: versitygw (primary bucket, versioned backup bucket), Redis for SSDB; cpu: this process (NATS server, processors, faults proxies) plus the stack's processes, which other work on the machine may share\n\n",
			partitionCount(cfg), cfg.dfBatch, cfg.dfLinger)
	}
	fmt.Fprintln(w, "| scenario | target | result | p50 | p99 | notes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range results {
		if r.failed != "" {
			fmt.Fprintf(w, "| %s | %s | failed | — | — | %s |\n", r.scenario, r.target, strings.ReplaceAll(r.failed, "|", "/"))
			continue
		}
		res := thousands(r.value()) + " "
		if r.result != "" {
			res = r.result
		}
		var notes []string
		if r.unit != "" {
			res += r.unit
		}
		notes = append(notes, r.notes...)
		switch r.scenario {
		case "bulk":
			res += "heartbeats/s"
			notes = append(notes, fmt.Sprintf("%s req/s (%d conns × %d hb)", thousands(float64(r.okRequests)/r.seconds), r.conns, r.size))
		case "single":
			res += "requests/s"
			notes = append(notes, fmt.Sprintf("%d conns × 1 hb", r.conns))
		case "drain-publish", "drain-shards-publish", "dayfiles-drain-publish", "dayfiles-latency-publish", "compaction-publish", "compaction-latency-publish":
			res += "heartbeats/s"
			notes = append(notes, fmt.Sprintf("Publisher without HTTP: %s hb in %.1fs, %d goroutines × %d hb per Publish (latency columns: Publish calls)",
				thousands(float64(r.heartbeats)), r.seconds, r.conns, r.size))
		case "drain":
			res += "rows/s"
			notes = append(notes, fmt.Sprintf("%s distinct rows in %.1fs; %d commits, largest %s rows (latency columns: commits)",
				thousands(float64(r.distinct)), r.seconds, r.requests, thousands(float64(r.maxCommitRows))))
		}
		if t, ok := targets[r.scenario]; ok {
			if r.value() >= t.min {
				res += " ✅"
			} else {
				res = fmt.Sprintf("**%s** ❌ (%.0f%%)", res, 100*r.value()/t.min)
			}
		}
		if r.latency.n > 0 {
			notes = append(notes, "max "+ms(r.latency.max))
		}
		if r.msgs > 0 && r.unit == "" {
			hbs := r.heartbeats
			if r.scenario == "drain" {
				hbs = r.distinct
			}
			if r.scenario == "drain" {
				notes = append(notes, fmt.Sprintf("%s msgs in the stream (%.0f hb/msg)", thousands(float64(r.msgs)), float64(hbs)/float64(r.msgs)))
			} else {
				notes = append(notes, fmt.Sprintf("%s msgs stored (%s msgs/s, %.1f hb/msg)", thousands(float64(r.msgs)), thousands(float64(r.msgs)/r.seconds), float64(hbs)/float64(r.msgs)))
			}
		}
		switch r.cpuNote {
		case "":
			notes = append(notes, fmt.Sprintf("cpu %.2f cores", r.cpuCores))
		case "-":
		default:
			notes = append(notes, r.cpuNote)
		}
		if r.scenario == "bulk" || r.scenario == "single" {
			notes = append(notes, "errors: "+formatErrors(r.errors))
		}
		p50, p99 := "—", "—"
		if r.latency.n > 0 {
			p50, p99 = ms(r.latency.p50), ms(r.latency.p99)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.scenario, r.target, res, p50, p99, strings.Join(notes, "; "))
	}
	fmt.Fprintln(w)
}

func partitionCount(cfg config) int {
	if cfg.partitions > 0 {
		return cfg.partitions
	}
	return 16
}

func formatErrors(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// thousands formats a rounded number with comma separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// cpuTime is the CPU time this process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
