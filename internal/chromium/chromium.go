// Package chromium starts Debian's Chromium headless, driven by chromedp,
// for the dashboard's browser test and benchmark. It never downloads a
// browser: ops/stack.sh install puts the chromium package at Path.
package chromium

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/chromedp/chromedp"
)

// Path is where Debian's chromium package installs the browser.
const Path = "/usr/bin/chromium"

// Width and Height are the window's size, and so a screenshot's width.
const Width, Height = 1280, 900

// ErrNotInstalled is Start's error when there is no browser at Path.
var ErrNotInstalled = errors.New("chromium: " + Path + " not found: install Debian's chromium (ops/stack.sh install, as root)")

// Installed reports whether the browser is at Path.
func Installed() bool {
	_, err := os.Stat(Path)
	return err == nil
}

// Start starts one headless browser and returns a chromedp context for it:
// derive a tab from it with chromedp.NewContext (WithNewBrowserContext for
// a tab with cookies of its own). stop ends the browser and removes its
// profile. out, if not nil, receives the browser's output.
//
// The flags are the machine notes': without the background-networking,
// component-update and sync ones, Chromium reaches for Google's hosts at
// every start, which a closed network refuses many times over. chromedp
// gives it an empty temporary --user-data-dir; as root it needs
// --no-sandbox.
func Start(out io.Writer) (ctx context.Context, stop func(), err error) {
	if !Installed() {
		return nil, nil, ErrNotInstalled
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(Width, Height),
	)
	if out != nil {
		opts = append(opts, chromedp.CombinedOutput(out))
	}
	if os.Getuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	stop = func() {
		cancel()
		cancelAlloc() // waits for the browser to exit and removes the profile
	}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		stop()
		return nil, nil, fmt.Errorf("chromium: start %s: %w", Path, err)
	}
	return ctx, stop, nil
}
