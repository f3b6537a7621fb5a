package resync

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"heartlog/objstore"
)

var (
	driftFiles = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "heartlog_backup_drift_files",
		Help: "Day files that differed between S3 and the backup at the last scheduled verify, by kind (missing, stale, extra).",
	}, []string{"kind"})
	verifiedFiles = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "heartlog_backup_verify_files",
		Help: "S3 day files the last scheduled verify compared with the backup.",
	})
	lastVerify = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "heartlog_backup_verify_last_success_timestamp_seconds",
		Help: "When the last scheduled backup verify finished (Unix time); 0 until one has.",
	})
	verifyErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_backup_verify_errors_total",
		Help: "Scheduled backup verifies that could not finish (S3 or the backup unreachable); the next period tries again.",
	})
)

// Recorder keeps the outcome of a scheduled verify that took took: its
// report, or the error that stopped it.
type Recorder func(ctx context.Context, rep Report, took time.Duration, err error)

// Claimer decides whether this process runs a period's verify: it returns
// the context the verify runs in (cancelled when the claim is lost) and a
// release to call when it ends, or an error saying why not (another
// process is verifying, or just did), and the period is skipped.
type Claimer func(ctx context.Context) (run context.Context, release func(), err error)

// Hooks connect the schedule to the rest of the system; either may be nil.
type Hooks struct {
	// Claim, if set, is asked before each period's verify: with several
	// processes, it is what keeps them from verifying the same backup at
	// once (status.ClaimVerify).
	Claim Claimer
	// Record is given every run's outcome (what `heartlog status` shows
	// as the last verify).
	Record Recorder
}

// Every runs VerifyBackup (report only: no repair) every period until ctx
// ends, the first time one period after the start (a restart loop must not
// turn into a verify loop), and exports each run's result as
// heartlog_backup_drift_files{kind}, heartlog_backup_verify_files and
// heartlog_backup_verify_last_success_timestamp_seconds. A run that fails
// counts heartlog_backup_verify_errors_total and leaves the gauges at the
// last success. A period whose claim is refused is skipped, with the
// gauges as they were. It returns nil when ctx ends.
func Every(ctx context.Context, period time.Duration, primary, backup objstore.Bucket, o Options, log zerolog.Logger, h Hooks) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		run, release := ctx, func() {}
		if h.Claim != nil {
			var err error
			if run, release, err = h.Claim(ctx); err != nil {
				log.Info().Err(err).Str("next_in", period.String()).Msg("backup verify skipped this period")
				continue
			}
		}
		verifyOnce(ctx, run, primary, backup, o, log, h.Record)
		release()
	}
}

// verifyOnce is one period's verify, run in run (the claim's context), and
// its outcome recorded and exported.
func verifyOnce(ctx, run context.Context, primary, backup objstore.Bucket, o Options, log zerolog.Logger, record Recorder) {
	start := time.Now()
	rep, err := VerifyBackup(run, primary, backup, BackupOptions{Options: o})
	if record != nil && run.Err() == nil {
		record(ctx, rep, time.Since(start), err)
	}
	switch {
	case run.Err() != nil:
		if ctx.Err() == nil {
			log.Warn().Err(context.Cause(run)).Msg("backup verify stopped: its lock was lost; the next period tries again")
		}
		return
	case err != nil:
		verifyErrors.Inc()
		log.Warn().Err(err).Msg("backup verify could not finish; the next period tries again")
		return
	}
	for _, k := range Kinds {
		driftFiles.WithLabelValues(string(k)).Set(float64(rep.Count(k)))
	}
	verifiedFiles.Set(float64(rep.Files))
	lastVerify.Set(float64(time.Now().Unix()))
	ev := log.Info()
	if rep.Left() > 0 {
		ev = log.Warn()
	}
	ev.Int("files", rep.Files).Int("missing", rep.Count(Missing)).Int("stale", rep.Count(Stale)).Int("extra", rep.Count(Extra)).
		Str("took", time.Since(start).Round(time.Millisecond).String()).
		Msg("backup verified against S3 (heartlog backup verify --repair puts drift right)")
}
