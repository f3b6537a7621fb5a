package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"heartlog/dumps"
	"heartlog/users"
)

// runImport writes a WakaTime heartbeats dump of -import-heartbeats
// heartbeats over -import-days days (from 2019 on: past any shard grace)
// into the work directory, then times dumps.Import of it into the log, as
// `heartlog import wakatime` runs it, with no processor running: the
// import's own rate and peak RSS (VmHWM, reset before the import; it
// includes the embedded NATS server storing the messages).
func runImport(ctx context.Context, st *stack, cfg config) ([]result, error) {
	s, err := st.js.Stream(ctx, st.sc.Stream)
	if err != nil {
		return nil, err
	}
	if err := s.Purge(ctx); err != nil {
		return nil, fmt.Errorf("purge stream: %w", err)
	}
	u, _, err := st.users.Create(ctx, users.NewUser{Name: "import-bench"})
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.workDir, "wakatime-heartbeats.json")
	fmt.Fprintf(os.Stderr, "bench: writing a dump of %d heartbeats over %d days to %s\n", cfg.importHeartbeats, cfg.importDays, path)
	size, err := writeDump(path, cfg.importHeartbeats, cfg.importDays)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	stopProfile, err := startProfile(cfg, "import")
	if err != nil {
		return nil, err
	}
	runtime.GC()
	resetPeakRSS()
	before := peakRSS()
	cpu0 := cpuTime()
	res, err := dumps.Import(ctx, st.js, st.sc, f, dumps.Options{User: u, Format: dumps.WakaTime, Size: size,
		UserAgents: map[string]string{"ua-1": "wakatime/v1.90.0 (linux-6.1.0-amd64) go1.22.1 vscode/1.85.0 vscode-wakatime/24.4.0"},
		Machines:   map[string]string{"m-1": "bench-laptop"},
		// The user-day caps `heartlog import` applies, from the settings'
		// defaults (the bytes cap sizes each heartbeat's day-file line).
		DayMaxHeartbeats: configInt("HEARTLOG_DAY_MAX_HEARTBEATS"), DayMaxBytes: int64(configInt("HEARTLOG_DAY_MAX_BYTES"))})
	cpu := cpuTime() - cpu0
	peak := peakRSS()
	if perr := stopProfile(); err == nil {
		err = perr
	}
	r := result{scenario: "import", target: targetFor("import"), unit: "heartbeats/s", heartbeats: int(res.Imported),
		seconds: res.Elapsed.Seconds(), msgs: uint64(res.Messages)}
	if res.Elapsed > 0 {
		r.rate = float64(res.Imported) / res.Elapsed.Seconds()
		r.cpuCores = cpu.Seconds() / res.Elapsed.Seconds()
	}
	r.notes = []string{
		fmt.Sprintf("%s heartbeats read from a %s dump (%d days), %s stored in %s messages in %.1fs, %d refused",
			thousands(float64(res.Read)), mib(size), cfg.importDays, thousands(float64(res.Imported)), thousands(float64(res.Messages)), res.Elapsed.Seconds(), res.Refused),
		fmt.Sprintf("peak RSS %s (VmHWM reset at %s before the import; includes the embedded NATS server)", mib(peak), mib(before)),
	}
	if err != nil {
		r.failed = err.Error()
	}
	return []result{r}, err
}

// writeDump writes WakaTime's dump shape with n heartbeats spread evenly
// over days days from 2019-01-01, 30 s apart within a day, streaming.
func writeDump(path string, n, days int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	start := time.Date(2019, 1, 1, 8, 0, 0, 0, time.UTC)
	fmt.Fprintf(w, `{"user":{"id":"bench","username":"bench"},"range":{"start":%d,"end":%d},"days":[`, start.Unix(), start.AddDate(0, 0, days).Unix())
	per, extra := n/days, n%days
	var b []byte
	for d := range days {
		if d > 0 {
			w.WriteByte(',')
		}
		day := start.AddDate(0, 0, d)
		fmt.Fprintf(w, `{"date":"%s","heartbeats":[`, day.Format(time.DateOnly))
		count := per
		if d < extra {
			count++
		}
		for i := range count {
			if i > 0 {
				w.WriteByte(',')
			}
			b = b[:0]
			b = append(b, `{"id":"`...)
			b = strconv.AppendInt(b, int64(d*per+i), 10)
			b = append(b, `","entity":"/home/bench/project`...)
			b = strconv.AppendInt(b, int64(i%7), 10)
			b = append(b, `/src/file`...)
			b = strconv.AppendInt(b, int64(i%53), 10)
			b = append(b, `.go","type":"file","category":"coding","time":`...)
			b = strconv.AppendFloat(b, float64(day.Unix())+float64(i)*30+0.125, 'f', -1, 64)
			b = append(b, `,"project":"project`...)
			b = strconv.AppendInt(b, int64(i%7), 10)
			b = append(b, `","branch":"main","language":"Go","dependencies":["fmt","os"],"lines":240,"lineno":17,"cursorpos":5,"is_write":`...)
			b = strconv.AppendBool(b, i%3 == 0)
			b = append(b, `,"machine_name_id":"m-1","user_agent_id":"ua-1","created_at":"2019-01-01T08:00:00Z"}`...)
			w.Write(b)
		}
		w.WriteString("]}")
	}
	w.WriteString("]}\n")
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	return st.Size(), f.Close()
}
