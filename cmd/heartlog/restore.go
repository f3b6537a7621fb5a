package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"heartlog/config"
	"heartlog/objstore"
	"heartlog/restore"
	"heartlog/schema/dayfile"
	"heartlog/shards"
	"heartlog/ssdb"
	"heartlog/users"
)

func restoreCmd() *cobra.Command {
	var (
		at, userID, day, since, until string
		to                            []string
		o                             restore.Options
		unconditional                 bool
	)
	cmd := &cobra.Command{
		Use:   "restore --at TIME [--user ID] [--day D | --since D --until D] [--to objects,cache] [--dry-run]",
		Short: "Put day files (S3 and the cache) back to their content at a point in time, from the backup's versions",
		Long: `Restore every primary day file (S3) and its cache entry (SSDB: the day file and
its digest) to its content at TIME, from the backup bucket's versions: for each
key, the newest version not after TIME. A key whose newest entry at TIME is a
delete marker, or whose every version came later, did not exist then: it is
deleted from S3 and dropped from the cache. A key the backup has never seen
is left as it is. A missing cache entry stays missing (reads fill it from S3).

Writes are conditional on what restore read (If-Match), so a late heartbeat
merged in by the late path while the restore runs is not lost: restore reads
the file again and writes the content at TIME plus the heartbeats that
arrived meanwhile, and reports the conflict. Heartbeats merged after TIME but
before the restore stay in Postgres (while their day is there) and in the
stream, not in the files: "heartlog replay objects --day D" brings them back.
Before it writes, restore checks with a probe object that S3's server refuses
a write whose condition fails; if it does not, restore stops (stop the
objects processor for the restore and pass --allow-unconditional).

The backup's requests are paced under --requests-per-second (default
HEARTLOG_BACKUP_REQUESTS_PER_SECOND; the live backup processor shares the
Space's ceiling). A restore keeps a journal of the files it has finished in
the primary bucket (restore-journal/), so a killed restore is resumed by
running the same command again: it skips what the first run finished
(written again, their content at TIME would remove the late heartbeats
merged since), and of the rest every file already at its content. Once a
restore has finished, the same command says so and does nothing; --again
runs it anew.
--dry-run prints, per file, what would change and writes nothing.

TIME is RFC 3339, a date (UTC midnight) or a duration ago (36h).

Examples:
  heartlog restore --at 2026-11-30T18:00:00Z --dry-run
  heartlog restore --at 36h --user 3f0c... --since 2026-11-01 --until 2026-11-30
  heartlog restore --at 2026-11-30T18:00:00Z --to cache`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var err error
			if o.At, err = parseWhen(at); err != nil {
				return fmt.Errorf("--at: %w", err)
			} else if o.At.IsZero() {
				return errors.New("--at is required")
			}
			if day != "" {
				since, until = day, day
			}
			for flag, s := range map[string]*string{"--since": &since, "--until": &until} {
				if *s == "" {
					continue
				}
				if *s, err = shards.ParseDay(*s); err != nil {
					return fmt.Errorf("%s: %w", flag, err)
				}
			}
			for _, t := range to {
				switch t {
				case "objects":
					o.Objects = true
				case "cache":
					o.Cache = true
				default:
					return fmt.Errorf("--to %q: want objects, cache or both", t)
				}
			}
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			o.Since, o.Until, o.Log = since, until, log
			if o.RequestsPerSecond == 0 {
				o.RequestsPerSecond = cfg.BackupRequestsPerSec
			}
			if userID != "" {
				if o.Prefix, err = userPrefix(ctx, cfg, log, userID); err != nil {
					return err
				}
			}
			return runRestore(ctx, cfg, o, unconditional)
		},
	}
	f := cmd.Flags()
	f.StringVar(&at, "at", "", "the time to restore to: RFC 3339, a date, or a duration ago (required)")
	f.StringVar(&userID, "user", "", "restore only this user's files (user id)")
	f.StringVar(&day, "day", "", "restore only this UTC day (YYYY-MM-DD)")
	f.StringVar(&since, "since", "", "first UTC day to restore (YYYY-MM-DD)")
	f.StringVar(&until, "until", "", "last UTC day to restore (YYYY-MM-DD)")
	f.StringSliceVar(&to, "to", []string{"objects", "cache"}, "stores to restore: objects (S3), cache (SSDB)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print what would change, write nothing")
	f.BoolVar(&o.Again, "again", false, "run a restore anew that an earlier run with the same --at and scope finished (its journal)")
	f.BoolVar(&unconditional, "allow-unconditional", false, "restore S3 even if its server ignores conditional writes (checked first; stop the objects processor meanwhile)")
	f.IntVar(&o.Concurrency, "concurrency", restore.DefaultConcurrency, "files restored at once")
	f.Float64Var(&o.RequestsPerSecond, "requests-per-second", 0, "ceiling on the backup bucket's requests (default HEARTLOG_BACKUP_REQUESTS_PER_SECOND)")
	cmd.MarkFlagsMutuallyExclusive("day", "since")
	cmd.MarkFlagsMutuallyExclusive("day", "until")
	return cmd
}

// userPrefix is where a user's day files are: "<object prefix>/<id>/".
func userPrefix(ctx context.Context, cfg config.Config, log zerolog.Logger, id string) (string, error) {
	rt, err := startRuntime(ctx, cfg, log, "restore")
	if err != nil {
		return "", err
	}
	defer rt.close()
	u, err := rt.users.ByID(ctx, id)
	if errors.Is(err, users.ErrNotFound) {
		return "", fmt.Errorf("no user %q (heartlog users list)", id)
	} else if err != nil {
		return "", err
	}
	if err := dayfile.CheckKeyParts(u.ObjectPrefix, u.ID, "20000101"); err != nil {
		return "", err
	}
	return u.ObjectPrefix + "/" + u.ID + "/", nil
}

func runRestore(ctx context.Context, cfg config.Config, o restore.Options, unconditional bool) error {
	backup, err := openS3(ctx, cfg.Backup, "HEARTLOG_BACKUP_S3_")
	if err != nil {
		return err
	}
	// The primary holds the restore's journal, also when only the cache is
	// restored.
	primary, err := openS3(ctx, cfg.S3, "HEARTLOG_S3_")
	if err != nil {
		return err
	}
	var cache *ssdb.Cache
	if o.Cache {
		if cache, err = ssdb.New(ssdb.Config{URL: cfg.CacheURL, TTL: cfg.CacheTTL}); err != nil {
			return fmt.Errorf("HEARTLOG_CACHE_URL: %w", err)
		}
		defer cache.Close()
	}
	if o.Deleted, err = deletedUsers(ctx, cfg); err != nil {
		return err
	}
	o.Changed = printChange
	o.Progress = restoreProgress(o.DryRun)
	if n := cfg.DebugRestoreKillAfter; n > 0 {
		o.AfterWrite = func(written int) {
			if written >= n {
				fmt.Fprintf(os.Stderr, "\nHEARTLOG_DEBUG_RESTORE_KILL_AFTER: killed after %d files\n", written)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	if o.Objects && !o.DryRun && !unconditional {
		// Restore's promise that a concurrent late write is kept rests on
		// the primary refusing a write whose If-Match no longer holds.
		if err := objstore.CheckConditionalWrites(ctx, primary); errors.Is(err, objstore.ErrConditionsIgnored) {
			return fmt.Errorf("%w: a heartbeat the late path merges while restore runs could be overwritten; "+
				"stop the objects processor for the restore and pass --allow-unconditional", err)
		} else if err != nil {
			return err
		}
	}
	p, err := restore.Run(ctx, backup, primary, cache, o)
	if errors.Is(err, restore.ErrAlreadyDone) {
		fmt.Fprintf(os.Stderr, "restore to %s: already done by an earlier run with the same --at and scope; nothing to do "+
			"(--again runs it anew, which removes again what came since)\n", o.At.UTC().Format(time.RFC3339Nano))
		return nil
	}
	if !p.Done {
		return err
	}
	verb := "changed"
	if o.DryRun {
		verb = "would change (dry run: nothing written)"
	}
	resumed := ""
	if p.Resumed > 0 {
		resumed = fmt.Sprintf(" (and %d an earlier run of this restore finished, skipped)", p.Resumed)
	}
	fmt.Printf("restore to %s: %d files in the backup's history%s, %d %s, %d conflicts with concurrent writes, %d failed\n",
		o.At.UTC().Format(time.RFC3339Nano), p.Total, resumed, p.Changed, verb, p.Conflicts, p.Failed)
	return err // the failed files, if any
}

// printChange prints one file's change on stdout.
func printChange(c restore.Change) {
	var what []string
	switch {
	case c.Created:
		what = append(what, "created")
	case c.Deleted:
		what = append(what, "deleted")
	case c.Unreadable:
		what = append(what, "unreadable, replaced")
	}
	what = append(what, fmt.Sprintf("+%d -%d heartbeats", len(c.Added), len(c.Removed)))
	if c.Conflicts > 0 {
		what = append(what, fmt.Sprintf("%d conflicts, kept %d heartbeats that arrived during the restore", c.Conflicts, c.Kept))
	}
	fmt.Printf("\r%-7s %s: %s\n", c.Store, c.Key, strings.Join(what, ", "))
}

func restoreProgress(dry bool) func(restore.Progress) {
	last := time.Now() // a restore shorter than a second prints its end alone
	return func(p restore.Progress) {
		if !p.Done && time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		if !p.Listed {
			fmt.Fprintf(os.Stderr, "\rrestore: listing the backup's history: %d versions, %.0f versions/s   ",
				p.Versions, p.ListRate())
			return
		}
		fmt.Fprintf(os.Stderr, "\rrestore: %d/%d files, %d changed, %d conflicts, %.0f files/s, ETA %s   ",
			p.Files, p.Total, p.Changed, p.Conflicts, p.Rate(), p.ETA().Round(time.Second))
		if p.Done {
			fmt.Fprintf(os.Stderr, "\nrestore: done in %s\n", p.Elapsed.Round(time.Millisecond))
		}
	}
}
