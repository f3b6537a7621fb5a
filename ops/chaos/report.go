package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// result is one row's outcome.
type result struct {
	row      row
	t        tally
	requests int
	outcomes map[string]int
	notes    []string
	took     time.Duration
	err      error
}

// lost is the acknowledged heartbeats missing from a sink they belong in.
func (r result) lost() int { return r.t.lostAny }

func (r result) dup() int { return r.t.pg.dup + r.t.s3.dup + r.t.cache.dup + r.t.backup.dup }

func (r result) passed() bool { return r.err == nil && r.lost() == 0 && r.dup() == 0 }

// notOK is the requests answered other than 2xx, by outcome.
func (r result) notOK() (int, string) {
	n := 0
	var parts []string
	keys := make([]string, 0, len(r.outcomes))
	for k := range r.outcomes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "201" || k == "202" {
			continue
		}
		n += r.outcomes[k]
		parts = append(parts, fmt.Sprintf("%s ×%d", k, r.outcomes[k]))
	}
	return n, strings.Join(parts, ", ")
}

func (r result) summary() string {
	if r.err != nil {
		return "FAILED to run: " + r.err.Error()
	}
	n, _ := r.notOK()
	return fmt.Sprintf("acked %d, not 2xx %d/%d requests, postgres %s, s3 %s, cache %s, backup %s, lost %d, dup %d (%s)",
		r.t.acked, n, r.requests, cell(r.t.pg), cell(r.t.s3), cell(r.t.cache), cell(r.t.backup), r.lost(), r.dup(),
		r.took.Round(time.Second))
}

// cell is a sink's figure: what it holds of what belongs in it.
func cell(c sinkCount) string {
	s := fmt.Sprint(c.found)
	if c.found != c.expected {
		s = fmt.Sprintf("%d of %d", c.found, c.expected)
	}
	if c.dup > 0 {
		s += fmt.Sprintf(" (%d dup)", c.dup)
	}
	if len(c.corrupt) > 0 {
		s += fmt.Sprintf(" (%d corrupt files)", len(c.corrupt))
	}
	return s
}

func printTable(w io.Writer, results []result, took time.Duration) {
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Fprintf(w, "\nheartlog fault matrix, %s, %d CPUs, load average %s, %s in all\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), load, took.Round(time.Second))
	fmt.Fprintln(w, "| Fault | Acked | Not 2xx | Postgres | S3 | Cache | Backup | Lost | Dup | Time | Notes |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range results {
		if r.err != nil && r.t.acked == 0 {
			fmt.Fprintf(w, "| %s | | | | | | | | | %s | did not run: %s |\n", r.row.fault, r.took.Round(time.Second), esc(r.err.Error()))
			continue
		}
		n, detail := r.notOK()
		notOK := fmt.Sprintf("%d of %d", n, r.requests)
		notes := slices.Clone(r.notes)
		if detail != "" {
			notes = append(notes, "not 2xx: "+detail)
		}
		if r.err != nil {
			notes = append(notes, "error: "+r.err.Error())
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | **%d** | **%d** | %s | %s |\n",
			r.row.fault, r.t.acked, notOK, cell(r.t.pg), cell(r.t.s3), cell(r.t.cache), cell(r.t.backup),
			r.lost(), r.dup(), r.took.Round(time.Second), esc(strings.Join(notes, "; ")))
	}
	fmt.Fprintln(w)
}

func esc(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }
