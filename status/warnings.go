package status

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"heartlog/health"
)

// warnings collects the report's plain-word warnings.
type warnings []string

func (w *warnings) add(format string, args ...any) { *w = append(*w, fmt.Sprintf(format, args...)) }

func (w *warnings) stream(s Stream, d Days) {
	if s.BytesFill >= FillWarn {
		w.add("stream %s %d%% full (MaxBytes %s): ingest answers 503 from 95%%; processors must catch up or MaxBytes grow", s.Name, percent(s.BytesFill), bytesText(s.MaxBytes))
	}
	if s.MsgsFill >= FillWarn {
		w.add("stream %s %d%% full (MaxMsgs %d)", s.Name, percent(s.MsgsFill), s.MaxMsgs)
	}
	if s.MaxAge > 0 && float64(s.OldestAge) >= AgeWarn*float64(s.MaxAge) && s.OldestDay != "" && !d.compacted[s.OldestDay] {
		w.add("oldest message is %s old, MaxAge %s: compaction of %s must finish before it ages out", ago(time.Duration(s.OldestAge)), ago(time.Duration(s.MaxAge)), display(s.OldestDay))
	}
}

// consumers warns of each processor that has no consumer, or none bound
// while it is behind: a stopped processor.
func (w *warnings) consumers(cs []Consumer, processors []string, maxAge Duration) {
	type sum struct {
		n, bound int
		lag      uint64
		oldest   Duration
	}
	by := map[string]*sum{}
	for _, c := range cs {
		s := by[c.Processor]
		if s == nil {
			s = &sum{}
			by[c.Processor] = s
		}
		s.n++
		s.lag += c.Lag
		s.oldest = max(s.oldest, c.OldestUnacked)
		if c.Bound {
			s.bound++
		}
	}
	names := append([]string{}, processors...)
	for name := range by {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		s := by[name]
		switch {
		case s == nil:
			w.add("processor %s has no consumer on the stream: it has never run here (heartlog process %s)", name, name)
		case s.bound == 0 && s.lag > 0:
			w.add("processor %s has no consumer bound and is %s messages behind (oldest %s): is it running?", name, count(s.lag), ago(time.Duration(s.oldest)))
		case maxAge > 0 && float64(s.oldest) >= LagWarn*float64(maxAge):
			w.add("processor %s is %s behind, MaxAge %s: past MaxAge its messages are deleted unprocessed", name, ago(time.Duration(s.oldest)), ago(time.Duration(maxAge)))
		}
	}
}

func (w *warnings) parked(p Parked) {
	if p.Total == 0 {
		return
	}
	var by []string
	for name, n := range p.ByProcessor {
		by = append(by, fmt.Sprintf("%s %d", name, n))
	}
	slices.Sort(by)
	w.add("%d parked heartbeats (%s): heartlog dlq list", p.Total, strings.Join(by, ", "))
}

func (w *warnings) stores(ss []Store) {
	for _, s := range ss {
		if !s.OK {
			w.add("%s unreachable: %s", storeName(s.Name), s.Error)
		}
	}
}

// storeName is how an operator calls a health check's store.
func storeName(check string) string {
	switch {
	case check == "cache":
		return "SSDB (cache)"
	case check == "s3":
		return "S3 (primary bucket)"
	case check == BackupCheck:
		return "S3 backup bucket"
	case check == "postgres":
		return "Postgres catalog"
	case strings.HasPrefix(check, "postgres-shard-"):
		return "Postgres shard " + strings.TrimPrefix(check, "postgres-shard-")
	}
	return check
}

// BackupCheck names the backup bucket's probe (health.S3 of the backup
// bucket, renamed).
const BackupCheck = "backup"

// BackupProbe is the reachability check of the backup bucket.
func BackupProbe(c health.Check) health.Check {
	c.Name = BackupCheck
	return c
}

func (w *warnings) verify(v Verify, now time.Time) {
	if v.ReadError != "" {
		w.add("cannot read the last backup verify: %s", v.ReadError)
		return
	}
	if !v.Ran() {
		return
	}
	switch {
	case v.Error != "":
		w.add("backup verify failed at %s: %s", v.At.Format(time.DateTime), v.Error)
	case v.Missing+v.Stale+v.Extra > 0:
		w.add("backup drift at %s: %d missing, %d stale, %d extra (heartlog backup verify --repair)", v.At.Format(time.DateTime), v.Missing, v.Stale, v.Extra)
	}
	if age := now.Sub(v.At); age > VerifyStaleAfter {
		w.add("backup last verified %s ago", ago(age))
	}
}

func percent(f float64) int { return int(f * 100) }

// count writes n with thousands separators: 12,345.
func count(n uint64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
