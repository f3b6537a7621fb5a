package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"heartlog/internal/chromium"
)

// startBrowser starts one headless Chromium for the test and its
// subtests. It skips when the browser is not installed, except in CI
// (CI=true), where a missing browser is a failure: CI installs it.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	if !chromium.Installed() {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v; CI must install it", chromium.ErrNotInstalled)
		}
		t.Skipf("skipping the browser test: %v", chromium.ErrNotInstalled)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop, err := chromium.Start(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		if b, _ := os.ReadFile(out.Name()); t.Failed() {
			t.Logf("chromium's output (without its D-Bus complaints: the machine has no D-Bus):\n%s", withoutDBus(b))
		}
		_ = out.Close()
	})
	return ctx
}

// page is one tab in a browser context of its own (its own cookies), with
// a record of what the page did that a user would call broken.
type page struct {
	ctx    context.Context
	origin string // the server's, scheme://host:port

	mu       sync.Mutex
	problems []string // console errors, exceptions, CSP violations, failed loads
	requests []string // every URL the page asked for
	outage   bool     // the server is away on purpose: its failed loads are expected
}

// openPage opens a tab on origin; the tab closes when the test ends.
func openPage(t *testing.T, browser context.Context, origin string) *page {
	t.Helper()
	p := &page{origin: origin}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), chromedp.WithListener(p.listen))
	t.Cleanup(cancel)
	p.ctx = ctx
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(chromium.Width, chromium.Height)); err != nil {
		t.Fatal(err)
	}
	return p
}

// listen records the page's events; it runs in chromedp's read loop, so it
// only appends.
func (p *page) listen(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			p.problems = append(p.problems, "console."+string(e.Type)+": "+consoleText(e.Args))
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		p.problems = append(p.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, text))
	case *log.EventEntryAdded:
		// The browser's own log: CSP violations (source "security"), failed
		// loads (source "network") and the like.
		if e.Entry.Level == log.EntryLevelError && !p.expectedRefusal(e.Entry) {
			p.problems = append(p.problems, fmt.Sprintf("%s: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		p.requests = append(p.requests, e.Request.URL)
	}
}

// expectedRefusal is a failed load the page causes on purpose: a 401 from
// this server's API, which is how the page learns that it is signed out
// (or that a key was wrong) and shows the sign-in view; or, while the test
// has taken the server away (setOutage), any failed load from it.
func (p *page) expectedRefusal(e *log.Entry) bool {
	if e.Source != log.EntrySourceNetwork || !strings.HasPrefix(e.URL, p.origin+"/") {
		return false
	}
	return p.outage || strings.Contains(e.Text, "status of 401") &&
		(strings.HasPrefix(e.URL, p.origin+"/heartlog.v1.") || e.URL == p.origin+"/api/v1/session")
}

// setOutage says whether the test has taken the server away, so that the
// page's failed loads from it are expected rather than problems.
func (p *page) setOutage(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outage = on
}

func consoleText(args []*runtime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		switch {
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

// assertNoProblems fails the test on any console error, exception, CSP
// violation or unexpected failed load so far.
func (p *page) assertNoProblems(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.problems) > 0 {
		t.Errorf("the page reported %d problem(s):\n  %s", len(p.problems), strings.Join(p.problems, "\n  "))
		p.problems = nil
	}
}

// assertSameOrigin fails the test if the page asked anything of another
// origin (data: URLs, which CSP allows for images, are the page's own).
func (p *page) assertSameOrigin(t *testing.T) int {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.requests {
		if strings.HasPrefix(u, "data:") {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme+"://"+pu.Host != p.origin {
			t.Errorf("the page loaded %s, which is not from %s", u, p.origin)
		}
	}
	return len(p.requests)
}

// do runs actions on the page and fails the test on an error, or if they
// take longer than pollBound (a query waits for its element forever).
func (p *page) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, pollBound)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, p *page, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, pollBound)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// pollBound stops a wait that would otherwise hang; it is not a goal.
const pollBound = 30 * time.Second

// waitState waits for document.body.dataset.state to be state.
func (p *page) waitState(t *testing.T, state string) {
	t.Helper()
	expr := fmt.Sprintf(`document.body && document.body.dataset.state === %q`, state)
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(pollBound))); err != nil {
		got, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(document.body && document.body.dataset.state || '') + ' ' + (document.querySelector('#error,#signin-error') || {}).textContent`))
		t.Fatalf("waiting for state %q: %v (state and message: %q)", state, err, got)
	}
}

// readyMarks is how many times the page has marked "dashboard-ready".
func (p *page) readyMarks(t *testing.T) int {
	return eval[int](t, p, `performance.getEntriesByName("dashboard-ready").length`)
}

// snapshotJS reads, in one evaluation (so no script of the page runs
// between its parts), everything the dashboard shows that the tests compare
// with the API, once the page is ready after the given number of
// "dashboard-ready" marks. It returns the string "error: ..." if the page
// shows an error.
const snapshotJS = `(after) => {
	const state = document.body && document.body.dataset.state;
	if (state === 'error') return {error: (document.querySelector('#error') || {}).textContent || 'state error'};
	if (state !== 'ready' || performance.getEntriesByName('dashboard-ready').length <= after) return false;
	const q = (s) => document.querySelector(s);
	const all = (s) => Array.from(document.querySelectorAll(s));
	const total = (s) => { const e = q(s); return e ? {text: e.textContent.trim(), seconds: e.dataset.seconds || '', date: e.dataset.date || ''} : null; };
	const items = (kind) => all('#breakdown-' + kind + ' li[data-name]').map((li) => ({
		name: li.dataset.name, seconds: li.dataset.seconds, percent: li.dataset.percent, text: li.textContent.replace(/\s+/g, ' ').trim()}));
	const kinds = ['projects', 'languages', 'editors', 'operating_systems', 'machines', 'categories', 'branches', 'entities'];
	return {
		marks: performance.getEntriesByName('dashboard-ready').length,
		range: (q('#range') || {}).value || '',
		project: (q('#project-filter') || {dataset: {}}).dataset.project || '',
		today: total('#today-total'),
		grand: total('#grand-total'), average: total('#daily-average'), best: total('#best-day'),
		daily: all('#daily-table tr[data-date]').map((tr) => ({date: tr.dataset.date,
			cells: Array.from(tr.querySelectorAll('td[data-project]')).map((td) => ({project: td.dataset.project, seconds: td.dataset.seconds}))})),
		breakdowns: Object.fromEntries(kinds.map((k) => [k, items(k)])),
		timelineDate: (q('#timeline-date') || {}).value || '',
		timeline: all('#timeline-table tr[data-start]').map((tr) => ({start: tr.dataset.start, seconds: tr.dataset.seconds, name: tr.dataset.name})),
		heatmap: all('#heatmap-table td[data-date]').map((td) => ({date: td.dataset.date, seconds: td.dataset.seconds})),
		weekdays: all('#weekdays-table tr[data-weekday]').map((tr) => ({name: tr.dataset.weekday, seconds: tr.dataset.seconds})),
		hours: all('#hours-table tr[data-hour]').map((tr) => ({name: tr.dataset.hour, seconds: tr.dataset.seconds})),
	};
}`

// shown is what snapshotJS reads.
type shown struct {
	Error        string                 `json:"error"`
	Marks        int                    `json:"marks"`
	Range        string                 `json:"range"`
	Project      string                 `json:"project"`
	Today        *shownTotal            `json:"today"`
	Grand        *shownTotal            `json:"grand"`
	Average      *shownTotal            `json:"average"`
	Best         *shownTotal            `json:"best"`
	Daily        []shownDay             `json:"daily"`
	Breakdowns   map[string][]shownItem `json:"breakdowns"`
	TimelineDate string                 `json:"timelineDate"`
	Timeline     []shownDuration        `json:"timeline"`
	Heatmap      []shownCell            `json:"heatmap"`
	Weekdays     []shownCell            `json:"weekdays"`
	Hours        []shownCell            `json:"hours"`
}

type shownTotal struct {
	Text    string `json:"text"`
	Seconds string `json:"seconds"`
	Date    string `json:"date"`
}

type shownDay struct {
	Date  string `json:"date"`
	Cells []struct {
		Project string `json:"project"`
		Seconds string `json:"seconds"`
	} `json:"cells"`
}

type shownItem struct {
	Name    string `json:"name"`
	Seconds string `json:"seconds"`
	Percent string `json:"percent"`
	Text    string `json:"text"`
}

type shownDuration struct {
	Start   string `json:"start"`
	Seconds string `json:"seconds"`
	Name    string `json:"name"`
}

type shownCell struct {
	Name    string `json:"name"`
	Date    string `json:"date"`
	Seconds string `json:"seconds"`
}

// snapshot waits until the page is ready after more than after
// "dashboard-ready" marks, and reads what it shows.
func (p *page) snapshot(t *testing.T, after int) shown {
	t.Helper()
	raw, err := chromedp.Run(p.ctx, chromedp.PollFunction[[]byte](snapshotJS,
		chromedp.WithPollingArgs(after), chromedp.WithPollingTimeout(pollBound)))
	if err != nil {
		state, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.dataset.state`))
		t.Fatalf("waiting for the dashboard to be ready (after %d marks): %v (state %q)", after, err, state)
	}
	var s shown
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("snapshot %s: %v", raw, err)
	}
	if s.Error != "" {
		t.Fatalf("the page shows an error: %s", s.Error)
	}
	return s
}

// focusByTab presses Tab from where the focus is until the element that
// matches selector (a CSS selector) has the focus, as a keyboard user
// would, and fails if it never does within limit presses.
func (p *page) focusByTab(t *testing.T, selector string, limit int) int {
	t.Helper()
	check := fmt.Sprintf(`document.activeElement && document.activeElement.matches(%q)`, selector)
	for n := 1; n <= limit; n++ {
		p.do(t, "Tab", chromedp.KeyEvent(kb.Tab))
		if eval[bool](t, p, check) {
			return n
		}
	}
	t.Fatalf("%d Tab presses never reached %s (focus ended on %s)", limit, selector,
		eval[string](t, p, `document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : 'nothing'`))
	return 0
}

// screenshot saves a PNG of the whole page (selector "") or of one element
// into the artefacts directory, and logs where.
func (p *page) screenshot(t *testing.T, name, selector string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, pollBound)
	defer cancel()
	var png []byte
	var err error
	if selector == "" {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	} else {
		png, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(selector)))
	}
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifactsDir(t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d KB)", path, len(png)>>10)
}

// artifactsDir is $HEARTLOG_ARTIFACTS, or var/artifacts/dashboard at the
// repository root (var/ is not committed).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HEARTLOG_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "var", "artifacts", "dashboard")
	}
	dir, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("artefacts directory: %v", err)
	}
	return dir
}

// withoutDBus drops the lines about D-Bus, which a headless Chromium
// prints by the dozen on a machine without one.
func withoutDBus(out []byte) string {
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.Contains(l, "dbus") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
