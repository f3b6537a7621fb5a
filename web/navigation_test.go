package web_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"heartlog/internal/heartlogtest"
)

// TestLiveStreamsEndOnNavigation navigates one tab from the dashboard to
// the dashboard again and again, as a user following bookmarked ranges
// does. Each page left must end its WatchToday stream: over HTTP/1.1 the
// browser keeps at most 6 connections to the server, and a page left (or
// frozen in the back/forward cache) with its stream open holds one, so a
// few navigations would queue every call of the next page behind them.
// After the navigations the server holds the one stream of the page
// shown.
func TestLiveStreamsEndOnNavigation(t *testing.T) {
	browser := startBrowser(t)
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	user, key := svc.CreateUser(t, "nadia", "")
	last := time.Now().Add(-time.Minute)
	postBeats(t, svc, key, []time.Time{last.Add(-3 * time.Minute), last}, "alpha", "Go")
	svc.WaitCount(t, 2, "SELECT count(*) FROM heartbeats WHERE user_id = $1", user.ID)

	p := signedInPage(t, browser, svc.URL, key)
	ranges := []string{"last_year", "last_30_days", "last_7_days", "today", "last_6_months", "yesterday", "last_year"}
	for i, r := range ranges {
		p.do(t, "navigate to "+r, chromedp.Navigate(svc.URL+"/?range="+r))
		if s := p.snapshot(t, 0); s.Range != r {
			t.Fatalf("navigation %d: the page shows range %q, want %q", i+1, s.Range, r)
		}
		// boot.ts sent the load's first calls before main.js ran; main.js
		// took their answers rather than asking again: one call each.
		calls := eval[map[string]int](t, p, callsByMethodJS)
		for _, m := range []string{"GetSettings", "GetRange", "GetHeatMap"} {
			if calls[m] != 1 {
				t.Fatalf("navigation %d (%s): the page called %s %d times, want once (calls: %v)", i+1, r, m, calls[m], calls)
			}
		}
		p.waitLiveStatus(t, "live")
		// The page shown is live, so its stream is open; the one left
		// must end (the server sees its connection close).
		if !heartlogtest.Eventually(pollBound, func() bool { return svc.Today.Watchers(user.ID) == 1 }) {
			t.Fatalf("after navigation %d the server holds %d WatchToday streams of the user, want 1 (the page shown)", i+1, svc.Today.Watchers(user.ID))
		}
	}
	p.assertNoProblems(t)
}

// callsByMethodJS counts the page's StatsService and SettingsService calls
// by method, from its resource timings.
const callsByMethodJS = `performance.getEntriesByType('resource')
	.filter((e) => e.name.includes('/heartlog.v1.'))
	.reduce((n, e) => { const m = e.name.split('/').pop(); n[m] = (n[m] || 0) + 1; return n; }, {})`
