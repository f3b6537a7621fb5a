package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/profiler"
	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"
)

// profileNavigation records the page's JavaScript CPU profile (V8's
// sampling profiler, through the DevTools protocol) from navigation to
// query until the dashboard is ready, and says where the main thread spent
// it: self time per function, the top n, and per script. For
// -dashboard-profile: which part of a load is the page's own work.
func profileNavigation(tab context.Context, url, query string, n int) (string, error) {
	call := func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, t, profiler.Enable, cdp.Empty{}); err != nil {
			return chromedp.Void{}, err
		}
		_, err := cdp.Call(ctx, t, profiler.SetSamplingInterval, profiler.SetSamplingIntervalParams{Interval: 200})
		if err == nil {
			_, err = cdp.Call(ctx, t, profiler.Start, cdp.Empty{})
		}
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(tab, call); err != nil {
		return "", err
	}
	if _, err := navigateReady(tab, url, query); err != nil {
		return "", err
	}
	res, err := chromedp.Run(tab, func(ctx context.Context, t *chromedp.Target) (profiler.StopResult, error) {
		return cdp.Call(ctx, t, profiler.Stop, cdp.Empty{})
	})
	if err != nil || res.Profile == nil {
		return "", fmt.Errorf("profile: %v", err)
	}
	return summarizeProfile(res.Profile, n), nil
}

// summarizeProfile adds up each sample's interval to the function on top
// of the stack.
func summarizeProfile(p *profiler.Profile, n int) string {
	byID := map[int64]*profiler.ProfileNode{}
	for _, node := range p.Nodes {
		byID[node.ID] = node
	}
	fn, script := map[string]time.Duration{}, map[string]time.Duration{}
	for i, id := range p.Samples {
		node := byID[id]
		if node == nil || i >= len(p.TimeDeltas) {
			continue
		}
		d := time.Duration(p.TimeDeltas[i]) * time.Microsecond
		f := node.CallFrame
		file := path.Base(f.URL)
		if f.URL == "" {
			file = "-"
		}
		fn[fmt.Sprintf("%s (%s:%d)", cmp.Or(f.FunctionName, "(anonymous)"), file, f.LineNumber+1)] += d
		script[file] += d
	}
	return "by script: " + top(script, 8) + "; by function: " + top(fn, n)
}

func top(m map[string]time.Duration, n int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(m[b], m[a]) })
	var out []string
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, fmt.Sprintf("%s %s", k, ms(m[k])))
	}
	return strings.Join(out, ", ")
}

// traceNavigation records a Chrome trace (the DevTools performance panel's
// categories) of one navigation to query until the dashboard is ready and
// writes it to file, for chrome://tracing or ui.perfetto.dev: where the
// main thread's time outside JavaScript goes (style, layout, paint).
func traceNavigation(tab context.Context, url, query, file string) error {
	var (
		mu     sync.Mutex
		events []jsonv2.Value
		done   = make(chan struct{})
	)
	lctx, cancel := context.WithCancel(tab)
	defer cancel()
	if err := chromedp.Listen(lctx, func(ev any) {
		switch e := ev.(type) {
		case *tracing.EventDataCollected:
			mu.Lock()
			for _, v := range e.Value {
				events = append(events, append(jsonv2.Value(nil), v...))
			}
			mu.Unlock()
		case *tracing.EventTracingComplete:
			close(done)
		}
	}); err != nil {
		return err
	}
	categories := []string{"devtools.timeline", "v8.execute", "blink.user_timing", "loading", "disabled-by-default-devtools.timeline", "disabled-by-default-devtools.timeline.frame"}
	start := func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, tracing.Start, tracing.StartParams{TransferMode: tracing.StartTransferModeReportEvents,
			TraceConfig: &tracing.TraceConfig{IncludedCategories: categories}})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(tab, start); err != nil {
		return err
	}
	if _, err := navigateReady(tab, url, query); err != nil {
		return err
	}
	end := func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, tracing.End, cdp.Empty{})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(tab, end); err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(pageBound):
		return errors.New("trace: no tracingComplete")
	}
	mu.Lock()
	defer mu.Unlock()
	var b bytes.Buffer
	b.WriteString(`{"traceEvents":[`)
	for i, e := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e)
	}
	b.WriteString("]}\n")
	return os.WriteFile(file, b.Bytes(), 0o644)
}
