package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"heartlog/erasure"
	"heartlog/ssdb"
	"heartlog/users"
)

func usersDeleteCmd() *cobra.Command {
	var (
		o      erasure.Options
		settle time.Duration
	)
	cmd := &cobra.Command{
		Use:   "delete ID [--purge-backups]",
		Short: "Delete a user and every heartbeat of theirs; --purge-backups erases the backup's versions too",
		Long: `Delete a user: the API key stops authenticating at once, and the user's
heartbeats are removed from Postgres (every day table of every database), S3
and the SSDB cache. A tombstone is recorded first (in Postgres and in the NATS
users bucket): the stream still holds the user's heartbeats for weeks and
cannot be edited per user, so every processor, replay, compaction, late
path, restore and backup verify/rebuild drops what belongs to a deleted user
instead. Nothing brings the user back; the tombstone stays.

The backup bucket is versioned: without --purge-backups its versions of the
user's files are kept (and counted in the output), as a safety net against
a mistaken delete. To erase them later, run the same command again with
--purge-backups. Purging deletes every version and delete marker under the
user's prefix, paced under the backup's request ceiling
(HEARTLOG_BACKUP_REQUESTS_PER_SECOND, or --requests-per-second).

The command waits --settle after recording the tombstone, so that every
running process has seen it and finished the commit it had in hand, before
it deletes anything. It is safe to interrupt and run again: a re-run on a
deleted user finishes the job (deleting what is already gone is no error).
An id that is neither a user nor deleted is refused.

Example:
  heartlog users delete 3f0c2a9e-... --purge-backups`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return deleteUser(cmd.Context(), args[0], settle, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.PurgeBackups, "purge-backups", false, "also erase every version of the user's files in the backup bucket (no point-in-time restore of them afterwards)")
	f.DurationVar(&settle, "settle", 10*time.Second, "wait after the tombstone for running processes to see it, before deleting")
	f.Float64Var(&o.RequestsPerSecond, "requests-per-second", -1, "ceiling on the backup bucket's requests (default HEARTLOG_BACKUP_REQUESTS_PER_SECOND; 0: none)")
	f.IntVar(&o.Concurrency, "concurrency", 16, "S3 and backup deletes at once")
	return cmd
}

// deleteUser tombstones id, waits for the tombstone to settle, erases the
// user's data and prints what it removed.
func deleteUser(ctx context.Context, id string, settle time.Duration, o erasure.Options) error {
	cfg, log, err := loadConfig()
	if err != nil {
		return err
	}
	if o.RequestsPerSecond < 0 {
		o.RequestsPerSecond = cfg.BackupRequestsPerSec
	}
	rt, err := startRuntime(ctx, cfg, log, "users-delete")
	if err != nil {
		return err
	}
	defer rt.close()
	name := ""
	if u, err := rt.users.ByID(ctx, id); err == nil {
		name = u.Name
	}
	t, err := rt.users.Tombstone(ctx, id)
	if errors.Is(err, users.ErrNotFound) {
		return fmt.Errorf("no user %q, and no deleted one (heartlog users list); nothing deleted", id)
	}
	if err != nil {
		return err
	}
	if name != "" {
		fmt.Printf("deleted user %s (%s): its API key no longer authenticates\n", name, t.ID)
	} else {
		fmt.Printf("user %s was deleted at %s; finishing the removal of its data\n", t.ID, t.DeletedAt.UTC().Format(time.RFC3339))
	}
	if wait := time.Until(t.DeletedAt.Add(settle)); wait > 0 {
		fmt.Fprintf(os.Stderr, "waiting %s for every process to see the tombstone\n", wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	st, done, err := erasureStores(ctx, rt)
	if err != nil {
		return err
	}
	defer done()
	start := time.Now()
	o.Progress = func(step string, r erasure.Report) {
		if step == erasure.StepPurging {
			fmt.Fprintf(os.Stderr, "backup: %d versions erased (%s so far)\n", r.BackupPurged, time.Since(start).Round(time.Millisecond))
			return
		}
		fmt.Fprintf(os.Stderr, "erased from %s (%s so far)\n", step, time.Since(start).Round(time.Millisecond))
	}
	r, err := erasure.Erase(ctx, t, st, o)
	if err != nil {
		return fmt.Errorf("%w (the user stays deleted: run the command again to finish)", err)
	}
	if err := rt.users.FinishTombstone(ctx, t.ID, o.PurgeBackups); err != nil {
		return err
	}
	printErasure(r, len(st.Days), o.PurgeBackups)
	return nil
}

func printErasure(r erasure.Report, databases int, purged bool) {
	fmt.Printf("postgres: %d rows removed from %d day tables over %d databases\n", r.Rows, r.Tables, databases)
	fmt.Printf("s3: %d day files removed", r.Objects-r.Quarantined)
	if r.Quarantined > 0 {
		fmt.Printf(", and %d quarantined copies of unreadable ones", r.Quarantined)
	}
	fmt.Println()
	fmt.Printf("cache: %d keys removed\n", r.CacheKeys)
	if purged {
		fmt.Printf("backup: %d versions and delete markers of %d files erased\n", r.BackupPurged, r.BackupFiles)
		return
	}
	fmt.Printf("backup: kept %d versions of %d files (run again with --purge-backups to erase them)\n", r.BackupKept, r.BackupFiles)
}

// erasureStores opens every store of a user's heartbeats: the day
// databases, S3, the cache and the backup (not instrumented: an erasure
// lists its history and deletes versions, which the processors never do).
func erasureStores(ctx context.Context, rt *runtime) (erasure.Stores, func(), error) {
	dbs, err := rt.days.Holders(ctx)
	if err != nil {
		return erasure.Stores{}, nil, err
	}
	var st erasure.Stores
	for _, db := range dbs {
		st.Days = append(st.Days, db.Pool)
	}
	if st.Days == nil {
		st.Days = []*pgxpool.Pool{rt.pool}
	}
	if st.Primary, err = openS3(ctx, rt.cfg.S3, "HEARTLOG_S3_"); err != nil {
		return erasure.Stores{}, nil, err
	}
	backup, err := openS3(ctx, rt.cfg.Backup, "HEARTLOG_BACKUP_S3_")
	if err != nil {
		return erasure.Stores{}, nil, err
	}
	st.Backup = backup
	cache, err := ssdb.New(ssdb.Config{URL: rt.cfg.CacheURL, TTL: rt.cfg.CacheTTL})
	if err != nil {
		return erasure.Stores{}, nil, fmt.Errorf("HEARTLOG_CACHE_URL: %w", err)
	}
	st.Cache = cache
	return st, func() { _ = cache.Close() }, nil
}
