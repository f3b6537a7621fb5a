package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"heartlog/config"
	"heartlog/heartbeat"
	"heartlog/objstore"
	"heartlog/resync"
	"heartlog/ssdb"
	"heartlog/status"
	"heartlog/streams"
	"heartlog/users"
)

// exitDrift is the exit code of `backup verify` when the backup differs
// from S3 (after --repair: when something is still wrong); 1 stays "the
// command could not run".
const exitDrift = 3

// scopeFlags are the --since and --user of the S3 commands.
type scopeFlags struct {
	since, user string
	rate        float64 // -1: HEARTLOG_BACKUP_REQUESTS_PER_SECOND
	concurrency int
}

func (s *scopeFlags) add(cmd *cobra.Command, paced bool) {
	f := cmd.Flags()
	f.IntVar(&s.concurrency, "concurrency", 32, "files compared at once")
	f.StringVar(&s.since, "since", "", "only days from this UTC day on, by the day in the key: a date (2026-11-20) or a duration ago (720h)")
	f.StringVar(&s.user, "user", "", "only this user's day files (user id; looked up in Postgres for its key prefix)")
	if !paced {
		return
	}
	f.Float64Var(&s.rate, "rate", -1, "ceiling on the backup's requests per second (default HEARTLOG_BACKUP_REQUESTS_PER_SECOND; 0: none)")
}

// options resolves the flags into resync.Options, with a progress line
// on stderr labelled what.
func (s *scopeFlags) options(ctx context.Context, cfg config.Config, what string) (resync.Options, error) {
	o := resync.Options{RequestsPerSecond: cfg.BackupRequestsPerSec, Concurrency: s.concurrency, Progress: progressLine(what)}
	if s.rate >= 0 { // set by --rate (default -1)
		o.RequestsPerSecond = s.rate
	}
	if s.since != "" {
		t, err := parseWhen(s.since)
		if err != nil {
			return o, fmt.Errorf("--since: %w", err)
		}
		o.Since = t.UTC().Format(heartbeat.DayLayout)
	}
	var err error
	if o.Deleted, err = deletedUsers(ctx, cfg); err != nil {
		return o, err
	}
	if s.user != "" {
		u, err := lookupUser(ctx, cfg, s.user)
		if err != nil {
			return o, err
		}
		o.Prefix = resync.UserPrefix(u.ObjectPrefix, u.ID)
	}
	return o, nil
}

// tombstonesRefresh is how old deletedUsers' answer may be: well under
// `users delete`'s default settle (10 s), so that a file a long run writes
// after the delete is still one the erasure finds.
const tombstonesRefresh = 5 * time.Second

// deletedUsers answers whether a user is deleted, from Postgres's
// tombstones, read again once the last read is tombstonesRefresh old.
// Restore and the resync commands leave deleted users' files alone (a
// kept backup is neither drift nor something to bring back), and a user
// deleted while a long run is under way is left alone from then on. The
// pool stays open for the command's life.
func deletedUsers(ctx context.Context, cfg config.Config) (func(string) bool, error) {
	pool, err := openPostgres(ctx, cfg, newLogger(cfg))
	if err != nil {
		return nil, fmt.Errorf("the deleted users are read from Postgres: %w", err)
	}
	store := users.NewStore(pool, nil)
	ids, err := store.DeletedIDs(ctx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	var mu sync.Mutex
	read := time.Now()
	return func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(read) >= tombstonesRefresh {
			if fresh, err := store.DeletedIDs(ctx); err == nil {
				ids = fresh
			} // else the last set, and the next call tries again
			read = time.Now()
		}
		return ids[id]
	}, nil
}

// lookupUser reads the user record (for its key prefix) from Postgres.
func lookupUser(ctx context.Context, cfg config.Config, id string) (users.User, error) {
	pool, err := openPostgres(ctx, cfg, newLogger(cfg))
	if err != nil {
		return users.User{}, err
	}
	defer pool.Close()
	u, err := users.NewStore(pool, nil).ByID(ctx, id)
	if errors.Is(err, users.ErrNotFound) {
		return u, fmt.Errorf("--user: no user %q (heartlog users list)", id)
	}
	return u, err
}

func progressLine(what string) func(resync.Progress) {
	return func(p resync.Progress) {
		fmt.Fprintf(os.Stderr, "\r%s: %d/%d files, %.0f files/s, ETA %s   ", what, p.Done, p.Total, p.Rate(), p.ETA().Round(time.Second))
		if p.Finished {
			fmt.Fprintf(os.Stderr, "\n%s: done in %s\n", what, p.Elapsed.Round(time.Millisecond))
		}
	}
}

// openBuckets opens S3 and the backup bucket, counted under label.
func openBuckets(ctx context.Context, cfg config.Config, label string) (primary, backup objstore.Bucket, err error) {
	if primary, err = instrumentedBucket(ctx, cfg.S3, "HEARTLOG_S3_", label); err != nil {
		return nil, nil, err
	}
	if backup, err = instrumentedBucket(ctx, cfg.Backup, "HEARTLOG_BACKUP_S3_", label); err != nil {
		return nil, nil, err
	}
	return primary, backup, nil
}

func backupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup verify",
		Short: "Check the versioned backup bucket against the S3 day files",
	}
	cmd.AddCommand(verifyCmd())
	return cmd
}

func verifyCmd() *cobra.Command {
	var (
		scope                       scopeFlags
		repair, deleteExtra, asJSON bool
		readAll                     bool
	)
	cmd := &cobra.Command{
		Use:   "verify [--since D] [--user ID] [--repair [--delete-extra]] [--read-all] [--json]",
		Short: "Compare every S3 day file with the backup's current object, by content hash and bytes",
		Long: `List the S3 (primary) day files and the backup's, and compare each S3 file
with the backup bucket's current object. The listings carry each file's ETag,
the MD5 of its bytes on S3 and Spaces: a file with equal ETags in both is in
sync without a read. A file whose ETags differ (another upload path or
encryption can give the same bytes another ETag) is read from both and
compared by its bytes. Each drifted file is printed on stdout with its key:

  missing  in S3, not in the backup (or deleted there: a delete marker)
  stale    in both, with other bytes
  extra    in the backup, not in S3

then a summary line. Only day files count (<prefix>/<user>/<YYYY-MM-DD>.ndjson.gz;
not quarantine/ or the conditional-write probe). A file the backup processor
is writing at that moment (its flush age is minutes) can show up once.

--repair writes S3's file over each missing and stale one: a new version,
conditional on the version it read: a file the live backup processor wrote in
between is left as it is and printed as failed (run verify again), never
overwritten blindly. Extras are reported and
kept: an extra is most often the last copy of a day file that S3 lost (put
it back with "heartlog restore"), and deleting it would hide it. After
checking, --repair --delete-extra deletes them: on the versioned bucket a
delete is a delete marker, and every version stays.

Costs a list request per 1000 keys on each side, and for each file whose
ETags differ one S3 GET and one backup GET (a PUT more per repair);
--read-all reads every file (for a store whose ETags are not content
hashes). The backup's requests are paced under --rate
(HEARTLOG_BACKUP_REQUESTS_PER_SECOND by default). A running "heartlog process"
writes the backup under the same Space's ceiling (240 requests/s for one
DigitalOcean Space): beside it, give verify a share, e.g. --rate 60. A
progress line (files, rate, ETA) goes to stderr.

Exit status: 0 the backup holds every S3 day file in scope, byte for byte;
3 drift (with --repair: drift left, e.g. extras kept, or a repair that
failed); 1 the check could not run.

Examples:
  heartlog backup verify                          # everything
  heartlog backup verify --since 720h --json      # the last 30 days, for a cron job
  heartlog backup verify --user 3f0c... --repair  # put one user's backup right`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if deleteExtra && !repair {
				return errors.New("--delete-extra goes with --repair")
			}
			ctx := cmd.Context()
			cfg, _, err := loadConfig()
			if err != nil {
				return err
			}
			o, err := scope.options(ctx, cfg, "backup verify")
			if err != nil {
				return err
			}
			primary, backup, err := openBuckets(ctx, cfg, "verify")
			if err != nil {
				return err
			}
			rep, err := resync.VerifyBackup(ctx, primary, backup, resync.BackupOptions{Options: o, Repair: repair, DeleteExtra: deleteExtra, ReadAll: readAll})
			if err != nil {
				return err
			}
			if asJSON {
				err = printVerifyJSON(rep, repair)
			} else {
				printVerify(rep, repair)
			}
			if err == nil && rep.Left() > 0 {
				return &exitError{code: exitDrift}
			}
			return err
		},
	}
	scope.add(cmd, true)
	f := cmd.Flags()
	f.BoolVar(&repair, "repair", false, "write S3's file over each missing and stale backup file (a new version)")
	f.BoolVar(&deleteExtra, "delete-extra", false, "with --repair: delete extra backup files too (a delete marker; the versions stay)")
	f.BoolVar(&readAll, "read-all", false, "compare every file by its bytes, even where the listed ETags are equal")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of lines")
	return cmd
}

// printVerify prints one line per drifted file, then the summary.
func printVerify(rep resync.Report, repair bool) {
	for _, f := range rep.Drift {
		fmt.Printf("%-7s %s%s\n", f.Kind, f.Key, action(f, repair))
	}
	for _, why := range rep.Failed {
		fmt.Printf("failed  %s\n", why)
	}
	fmt.Println(summary(rep))
}

func action(f resync.Found, repair bool) string {
	switch {
	case !repair:
		return ""
	case f.Repaired && f.Kind == resync.Extra:
		return "  (deleted: a delete marker, versions kept)"
	case f.Repaired:
		return "  (repaired from S3)"
	case f.Kind == resync.Extra:
		return "  (kept: restore S3 from it, or --delete-extra)"
	default:
		return "  (NOT repaired)"
	}
}

func summary(rep resync.Report) string {
	var parts []string
	for _, k := range resync.Kinds {
		parts = append(parts, fmt.Sprintf("%d %s", rep.Count(k), k))
	}
	s := fmt.Sprintf("backup verify: %d day files in S3, %d in sync; %s", rep.Files, rep.InSync, strings.Join(parts, ", "))
	if n := len(rep.Drift) - rep.Left(); n > 0 {
		s += fmt.Sprintf("; %d repaired", n)
	}
	if rep.Left() == 0 {
		return s + "; backup OK"
	}
	return s + fmt.Sprintf("; %d drifted", rep.Left())
}

func printVerifyJSON(rep resync.Report, repair bool) error {
	out := struct {
		Files   int            `json:"files"`
		InSync  int            `json:"in_sync"`
		Counts  map[string]int `json:"counts"`
		Drift   []resync.Found `json:"drift"`
		Repair  bool           `json:"repair"`
		Left    int            `json:"left"`
		Failed  []string       `json:"failed"`
		Checked time.Time      `json:"checked_at"`
	}{Files: rep.Files, InSync: rep.InSync, Counts: map[string]int{}, Drift: rep.Drift, Repair: repair,
		Left: rep.Left(), Failed: rep.Failed, Checked: time.Now().UTC()}
	for _, k := range resync.Kinds {
		out.Counts[string(k)] = rep.Count(k)
	}
	if out.Drift == nil {
		out.Drift = []resync.Found{}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func rebuildCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rebuild cache|backup --from-s3 [--since D] [--user ID]",
		Short: "Refill SSDB or the backup bucket from the S3 day files (past the stream's retention)",
		Long: `Rebuild a copy of the day files from S3, the primary, for every day (the
stream keeps 8 weeks; S3 keeps everything). Rebuilds from the stream stay
"heartlog replay". --from-s3 is required, to say where the files come from.

  cache   each S3 day file into SSDB as the cache processor writes it: the
          file, its digest and its generation in one pipeline, with the cache
          TTL. Files already cached with S3's bytes and a digest are skipped.
          A cache entry holding heartbeats that S3 lacks (the cache processor
          ahead of the objects processor) gets the union. S3 files that do
          not decode are reported and not cached.
  backup  each S3 day file into the backup bucket unless it already holds the
          same bytes (so a re-run costs reads alone); a write is a new version,
          conditional on what was read. Paced under --rate, like "backup
          verify --repair", which this is without looking for extras.

Both are idempotent: a run killed half-way is resumed by running it again.
A progress line (files, rate, ETA) goes to stderr, a summary to stdout.

Examples:
  heartlog rebuild cache --from-s3                  # SSDB was wiped
  heartlog rebuild backup --from-s3 --since 2026-01-01
  heartlog rebuild cache --from-s3 --user 3f0c...`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(rebuildOneCmd("cache"), rebuildOneCmd("backup"))
	return cmd
}

func rebuildOneCmd(target string) *cobra.Command {
	var (
		scope  scopeFlags
		fromS3 bool
	)
	cmd := &cobra.Command{
		Use:   target + " --from-s3 [--since D] [--user ID]",
		Short: map[string]string{"cache": "Refill SSDB (day files and digests) from S3", "backup": "Write every S3 day file the backup lacks or holds stale"}[target],
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !fromS3 {
				return fmt.Errorf("rebuild %s reads the S3 day files: pass --from-s3 (to rebuild from the stream, use heartlog replay %s)", target, target)
			}
			ctx := cmd.Context()
			cfg, _, err := loadConfig()
			if err != nil {
				return err
			}
			o, err := scope.options(ctx, cfg, "rebuild "+target)
			if err != nil {
				return err
			}
			primary, backup, err := openBuckets(ctx, cfg, "rebuild")
			if err != nil {
				return err
			}
			if target == "backup" {
				rep, err := resync.RebuildBackup(ctx, primary, backup, o)
				fmt.Printf("rebuild backup: %d day files in S3, %d already in the backup, %d written (%d missing, %d stale), %d failed\n",
					rep.Files, rep.InSync, len(rep.Drift)-rep.Left(), rep.Count(resync.Missing), rep.Count(resync.Stale), len(rep.Failed))
				for _, why := range rep.Failed {
					fmt.Println("failed", why)
				}
				if err == nil && len(rep.Failed) > 0 {
					err = errors.New("some backup files could not be written (above)")
				}
				return err
			}
			c, err := ssdb.New(ssdb.Config{URL: cfg.CacheURL, TTL: cfg.CacheTTL})
			if err != nil {
				return fmt.Errorf("HEARTLOG_CACHE_URL: %w", err)
			}
			defer c.Close()
			rep, err := resync.RebuildCache(ctx, primary, c, o)
			fmt.Printf("rebuild cache: %d day files in S3, %d already cached, %d written, %d merged with the cached file, %d dropped (raced a live write), %d not decodable\n",
				rep.Files, rep.InSync, rep.Written, rep.Merged, rep.Dropped, len(rep.Failed))
			for _, why := range rep.Failed {
				fmt.Println("failed", why)
			}
			return err
		},
	}
	scope.add(cmd, target == "backup")
	cmd.Flags().BoolVar(&fromS3, "from-s3", false, "read the day files from S3 (required)")
	return cmd
}

// backupVerifier is the scheduled backup verify (resync.Every) of a
// process that runs the backup processor, or nil if it runs none or
// HEARTLOG_BACKUP_VERIFY_EVERY is 0.
func (rt *runtime) backupVerifier(ctx context.Context, names []string) (func(context.Context) error, error) {
	if rt.cfg.BackupVerifyEvery <= 0 || !slices.Contains(names, streams.DurableBackup) {
		return nil, nil
	}
	primary, backup, err := openBuckets(ctx, rt.cfg, "verify")
	if err != nil {
		return nil, err
	}
	o := resync.Options{RequestsPerSecond: rt.cfg.BackupVerifyRequestsPerSec, Concurrency: 8}
	o.Deleted = rt.dir.Deleted
	rt.log.Info().Str("every", rt.cfg.BackupVerifyEvery.String()).Float64("requests_per_second", o.RequestsPerSecond).
		Msg("backup verify scheduled (HEARTLOG_BACKUP_VERIFY_EVERY)")
	host, _ := os.Hostname()
	owner := fmt.Sprintf("verify@%s:%d", host, os.Getpid())
	claim := func(ctx context.Context) (context.Context, func(), error) {
		return status.ClaimVerify(ctx, rt.js, rt.sc, owner, rt.cfg.BackupVerifyEvery)
	}
	return func(ctx context.Context) error {
		return resync.Every(ctx, rt.cfg.BackupVerifyEvery, primary, backup, o, rt.log, resync.Hooks{Claim: claim, Record: rt.recordVerify})
	}, nil
}

// recordVerify keeps a scheduled verify's outcome in the ops bucket, where
// `heartlog status` reads it. Only the scheduled run, which covers every
// file, is recorded: an operator's `backup verify --user` says nothing of
// the whole backup.
func (rt *runtime) recordVerify(ctx context.Context, rep resync.Report, took time.Duration, err error) {
	v := status.Verify{At: time.Now().UTC(), Took: status.Duration(took), Files: rep.Files,
		Missing: rep.Count(resync.Missing), Stale: rep.Count(resync.Stale), Extra: rep.Count(resync.Extra)}
	if err != nil {
		v.Error = err.Error()
	}
	if err := status.RecordVerify(ctx, rt.js, rt.cfg.StreamReplicas, v); err != nil {
		rt.log.Warn().Err(err).Msg("cannot record the backup verify for heartlog status")
	}
}
