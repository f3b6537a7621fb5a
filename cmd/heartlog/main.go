// Command heartlog is the whole service in one binary: the API (serve), the
// stream processors (process), the local all-in-one (dev), and the
// operator's tools (users, migrate, config).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := rootCmd().ExecuteContext(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil // stopped by a signal while starting: a clean stop
	}
	code := 0
	if err != nil {
		code = 1
	}
	if ee := (*exitError)(nil); errors.As(err, &ee) {
		code, err = ee.code, ee.err // a command's own exit status (status, backup verify)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "heartlog:", err)
	}
	if code != 0 {
		os.Exit(code)
	}
}

// exitError ends the process with code, printing err first if set: how a
// command chooses its own exit status (status, backup verify).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "heartlog",
		Short: "Self-hostable backend for coding-activity heartbeats (WakaTime-compatible)",
		Long: `heartlog stores the heartbeats that WakaTime editor plugins send (through
wakatime-cli) and serves coding time back to dashboards.

Heartbeats are acknowledged only once NATS JetStream has stored them; stream
processors then project them into day-partitioned Postgres (the recent days),
day files in S3 (every day), an SSDB cache of those files and a versioned
backup bucket.

Every setting is a HEARTLOG_* environment variable; run "heartlog config"
to list them with their defaults.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), processCmd(), devCmd(), replayCmd(), dlqCmd(), shardsCmd(), daysCmd(), usersCmd(), importCmd(), exportCmd(), restoreCmd(), backupCmd(), rebuildCmd(), statusCmd(), migrateCmd(), configCmd())
	return root
}
