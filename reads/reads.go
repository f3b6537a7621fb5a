// Package reads is heartlog's read path: it gathers a user's heartbeats for
// a set of UTC days from wherever each day lives. A day whose Postgres
// shard is active is read from Postgres (the hot store, current within the
// projector's lag); any other day from SSDB, with one MGET for all of them;
// a day SSDB lacks from S3 (bounded parallel GETs), which then fills SSDB
// (with an empty day file for a day S3 has no file of, so that a warm read
// asks S3 nothing even across days without heartbeats). A cached day file
// that does not decode is read from S3 and replaced. Fills never write over
// what the cache processor may have written meanwhile (see fill), so a
// reader never sees less than S3 had.
//
// Activity, for accounting, reads SSDB days from their digests (package
// schema/digest) where the cache has them, with one MGET of the digests
// first and one of the day files of the days without one; a day file read
// for want of a digest is written back with its digest. Every write into
// SSDB follows the digest package's consistency rule (ssdb.Cache.WriteDayFiles).
//
// It only reads, except for filling the cache. It must never read another
// user's data: every key and query is built from the user record.
package reads

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"heartlog/daydb"
	"heartlog/objstore"
	"heartlog/pgheartbeats"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/ssdb"
	"heartlog/stats"
	"heartlog/streams"
	"heartlog/users"
)

// ShardStates tells whether a day's Postgres shard is active.
// *streams.ShardView implements it.
type ShardStates interface {
	State(day string) streams.ShardState
}

// Reader reads heartbeats. It is safe for concurrent use.
type Reader struct {
	days     *daydb.Set
	shards   ShardStates
	cache    *ssdb.Cache
	primary  objstore.Bucket
	parallel int
	log      zerolog.Logger
	// beforeFill, if set, is called at each step of a fill (tests).
	beforeFill func(step string)
	// filling holds the keys this Reader is filling now (see claimFills).
	fillMu  sync.Mutex
	filling map[string]bool
	// flights shares concurrent Activity reads of the same files (shared.go).
	flights singleflight.Group

	grace time.Duration
	now   func() time.Time
	mu    sync.Mutex
	cold  map[string]bool // days past grace found without a partition
}

// New returns a Reader of the hot days on days' databases (it may be nil
// for a Reader that is only given dropped days); parallel bounds S3 GETs
// per call (default 16).
func New(days *daydb.Set, shards ShardStates, c *ssdb.Cache, primary objstore.Bucket, parallel int, log zerolog.Logger) *Reader {
	if parallel <= 0 {
		parallel = 16
	}
	return &Reader{days: days, shards: shards, cache: c, primary: primary, parallel: parallel, log: log,
		now: time.Now, cold: map[string]bool{}, filling: map[string]bool{}}
}

// WithShardsGrace makes the reader serve a day past the shard grace period
// (HEARTLOG_SHARDS_GRACE) from the day files when it has no Postgres
// partition: the Postgres processor creates none for such a day (see
// processors/postgres), so an active shard state says nothing there. A
// past-grace day whose partition still exists (the janitor has not dropped
// it yet) is read from Postgres as before. Zero (the default): every day
// with an active shard is read from Postgres. It returns r; call it before
// the first read.
func (r *Reader) WithShardsGrace(grace time.Duration) *Reader {
	r.grace = grace
	return r
}

var (
	daysRead = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_read_days_total",
		Help: "User-days read, by where they came from (postgres, digest, cache, s3, none).",
	}, []string{"source"})
	readsShared = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_read_files_shared_total",
		Help: "Activity reads that shared one read of their day files with concurrent reads of the same user and days (each of them counts).",
	})
	// Labelled database = daydb.DB.Name (host:port/dbname, no password).
	pgQueries = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_read_postgres_queries_total",
		Help: "Reads' queries of one database for its share of the days asked (one per database a read touches), by database.",
	}, []string{"database"})
	pgErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_read_postgres_errors_total",
		Help: "Reads' queries of a database that failed (the read answers 503), by database; a query cancelled because another database failed first is not counted.",
	}, []string{"database"})
)

// Heartbeats returns the user's heartbeats of the UTC days (YYYYMMDD),
// sorted by (time, id).
func (r *Reader) Heartbeats(ctx context.Context, u users.User, days []string) ([]*heartlogv1.Heartbeat, error) {
	rows, files, err := r.read(ctx, u, days, false)
	if err != nil {
		return nil, err
	}
	// Day files come sorted and in day order, and the days in Postgres are
	// usually the newest: then the two runs are already in order.
	out := slices.Concat(slices.Concat(files.hbs...), rows)
	if !slices.IsSortedFunc(out, compareHeartbeats) {
		slices.SortFunc(out, compareHeartbeats)
	}
	return out, nil
}

// Activity returns the user's heartbeats of the UTC days for accounting
// (stats.SummarizeBeats, stats.DurationsOfBeats) as a stats.Activity: as
// Heartbeats, except that a day read from SSDB comes from its digest when
// the cache has one, which holds only what stats reads (package
// schema/digest). The beats are sorted by time.
func (r *Reader) Activity(ctx context.Context, u users.User, days []string) (stats.Activity, error) {
	rows, files, err := r.read(ctx, u, days, true)
	if err != nil {
		return stats.Activity{}, err
	}
	out := files.activity(stats.ActivityOf(rows))
	// Stably: beats have no id, and those of one time (so of one day)
	// keep their day-file order.
	byTime := func(a, b stats.Beat) int { return cmp.Compare(a.Nanos, b.Nanos) }
	if !slices.IsSortedFunc(out.Beats, byTime) {
		slices.SortStableFunc(out.Beats, byTime)
	}
	return out, nil
}

// read reads the hot days from Postgres and the others from the files
// (with digests: from their digests where SSDB has them), at once.
func (r *Reader) read(ctx context.Context, u users.User, days []string, digests bool) ([]*heartlogv1.Heartbeat, fileDays, error) {
	var hot, cold, unsure []string
	now := r.now()
	for _, d := range days {
		switch {
		case !r.shards.State(d).Writable():
			cold = append(cold, d)
		case !streams.PastGrace(d, r.grace, now):
			hot = append(hot, d)
		default:
			unsure = append(unsure, d)
		}
	}
	if len(unsure) > 0 {
		withPartition, err := r.partitioned(ctx, unsure)
		if err != nil {
			return nil, fileDays{}, err
		}
		for _, d := range unsure {
			if withPartition[d] {
				hot = append(hot, d)
			} else {
				cold = append(cold, d)
			}
		}
	}
	var rows []*heartlogv1.Heartbeat
	var files fileDays
	g, gctx := errgroup.WithContext(ctx)
	if len(hot) > 0 {
		g.Go(func() error {
			var err error
			if rows, err = r.fromPostgres(gctx, u, hot); err != nil {
				return err
			}
			daysRead.WithLabelValues("postgres").Add(float64(len(hot)))
			slices.SortFunc(rows, compareHeartbeats)
			return nil
		})
	}
	if len(cold) > 0 {
		g.Go(func() error {
			var err error
			if digests {
				files, err = r.sharedActivityFiles(gctx, u, cold)
			} else {
				files, err = r.fromFiles(gctx, u, cold, false)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fileDays{}, err
	}
	return rows, files, nil
}

// partitioned tells which of the days (past grace, shard active) still have
// a Postgres partition. A day found without one is remembered: no partition
// is created for a day past grace. One that has one is asked again next
// time, since the janitor may drop it.
func (r *Reader) partitioned(ctx context.Context, days []string) (map[string]bool, error) {
	var ask []string
	r.mu.Lock()
	for _, d := range days {
		if !r.cold[d] {
			ask = append(ask, d)
		}
	}
	r.mu.Unlock()
	if len(ask) == 0 {
		return map[string]bool{}, nil
	}
	have := make(map[string]bool, len(ask))
	var mu sync.Mutex
	err := r.eachDatabase(ctx, ask, func(ctx context.Context, db daydb.DB, days []string) error {
		got, err := pgheartbeats.Partitioned(ctx, db.Pool, days)
		mu.Lock()
		defer mu.Unlock()
		for d, ok := range got {
			have[d] = ok
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range ask {
		if !have[d] {
			r.cold[d] = true
		}
	}
	return have, nil
}

// compareHeartbeats orders by (time, id), the day-file order.
func compareHeartbeats(a, b *heartlogv1.Heartbeat) int {
	if a.Time != b.Time {
		if a.Time < b.Time {
			return -1
		}
		return 1
	}
	return compareStrings(a.Id, b.Id)
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fromPostgres reads the user's rows of the hot days, from each day's
// database.
func (r *Reader) fromPostgres(ctx context.Context, u users.User, days []string) ([]*heartlogv1.Heartbeat, error) {
	id, err := uuid.Parse(u.ID)
	if err != nil {
		return nil, fmt.Errorf("reads: user id %q: %w", u.ID, err)
	}
	var out []*heartlogv1.Heartbeat
	var mu sync.Mutex
	err = r.eachDatabase(ctx, days, func(ctx context.Context, db daydb.DB, days []string) error {
		rows, err := r.userRows(ctx, db, id, days)
		mu.Lock()
		defer mu.Unlock()
		out = append(out, rows...)
		return err
	})
	return out, err
}

// userRows reads the user's rows of days from one database.
func (r *Reader) userRows(ctx context.Context, db daydb.DB, user uuid.UUID, days []string) ([]*heartlogv1.Heartbeat, error) {
	dates := make([]pgtype.Date, len(days))
	for i, d := range days {
		if err := dates[i].Scan(d[:4] + "-" + d[4:6] + "-" + d[6:]); err != nil {
			return nil, fmt.Errorf("day %q: %w", d, err)
		}
	}
	rows, err := db.Pool.Query(ctx, pgheartbeats.Select+" WHERE user_id = $1 AND day = ANY($2)",
		pgtype.UUID{Bytes: user, Valid: true}, dates)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgheartbeats.Scan)
}

// ErrNotMigrated is a read's answer when a day it needs is on a database
// that this process could not migrate yet (down at start): the read fails,
// as it does while a database is down, rather than answer without the day.
var ErrNotMigrated = errors.New("database not migrated yet (it was down at start)")

// eachDatabase calls fn once for each database that holds some of days,
// with its days, all databases at once. A day placed nowhere has no
// heartbeats in Postgres (a day is placed before its first row is
// written), and is left out. The first failure cancels the others and is
// returned naming its database, so that a read never answers with the
// days of the databases that were up alone.
func (r *Reader) eachDatabase(ctx context.Context, days []string, fn func(ctx context.Context, db daydb.DB, days []string) error) error {
	if r.days == nil {
		return errors.New("reads: no Postgres databases given for hot days")
	}
	placed, err := r.days.Lookup(ctx, days)
	if err != nil {
		return fmt.Errorf("reads: %w", err)
	}
	byName, dbs := map[string][]string{}, map[string]daydb.DB{}
	for _, d := range days {
		if db, ok := placed[d]; ok {
			byName[db.Name], dbs[db.Name] = append(byName[db.Name], d), db
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for name, days := range byName {
		g.Go(func() error {
			if !r.days.Ready(name) {
				pgErrors.WithLabelValues(name).Inc()
				return fmt.Errorf("reads: postgres %s: %w", name, ErrNotMigrated)
			}
			pgQueries.WithLabelValues(name).Inc()
			if err := fn(gctx, dbs[name], days); err != nil {
				if !errors.Is(err, context.Canceled) || ctx.Err() == nil && gctx.Err() == nil {
					pgErrors.WithLabelValues(name).Inc()
				}
				return fmt.Errorf("reads: postgres %s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// fileDays are days read from day files or digests, in the order asked:
// day i is digests[i] when that is set, else hbs[i].
type fileDays struct {
	hbs     [][]*heartlogv1.Heartbeat
	digests []*digest.Day // nil, or nil where the day has no digest
}

func (fd fileDays) hasDigest(i int) bool { return fd.digests != nil && fd.digests[i] != nil }

// activity returns the days followed by rest as one Activity, allocated
// once at its size: each digest decodes straight into its part, in
// parallel (decoding is most of a warm read's CPU), and only the days
// read from day files (and rest) are copied.
func (fd fileDays) activity(rest stats.Activity) stats.Activity {
	n := len(fd.hbs)
	parts := make([]stats.Activity, n+1) // the day-file days, and rest
	for i, hbs := range fd.hbs {
		if !fd.hasDigest(i) {
			parts[i] = stats.ActivityOf(hbs)
		}
	}
	parts[n] = rest
	at := make([]stats.Sizes, n+2) // where each part starts
	for i := range parts {
		size := parts[i].Size()
		if i < n && fd.hasDigest(i) {
			size = fd.digests[i].Size()
		}
		at[i+1] = at[i].Add(size)
	}
	out := stats.MakeActivity(at[n+1])
	parallel(len(parts), func(i int) {
		dst := out.Part(at[i], at[i+1])
		if i < n && fd.hasDigest(i) {
			fd.digests[i].DecodeInto(dst, at[i])
		} else {
			parts[i].CopyTo(dst, at[i])
		}
	})
	return out
}

// fromFiles reads day files: one MGET from SSDB, then S3 for the misses,
// which then go into SSDB. With digests, it first MGETs the days' digests
// and reads day files only for the days without one. The result is in the
// order of days (each day sorted).
func (r *Reader) fromFiles(ctx context.Context, u users.User, days []string, digests bool) (fileDays, error) {
	keys := make([]string, len(days))
	for i, d := range days {
		keys[i] = dayfile.Key(u.ObjectPrefix, u.ID, d)
	}
	fd := fileDays{hbs: make([][]*heartlogv1.Heartbeat, len(keys))}
	perDay := fd.hbs
	need := make([]int, len(keys)) // indexes of the days still to read
	for i := range need {
		need[i] = i
	}
	if digests {
		fd.digests = make([]*digest.Day, len(keys))
		need = r.fromDigests(ctx, keys, fd.digests)
	}
	if len(need) == 0 {
		return fd, nil
	}
	// One MGET of the day files and their generations (see fill).
	needKeys := make([]string, 2*len(need))
	for j, i := range need {
		needKeys[j], needKeys[len(need)+j] = keys[i], digest.GenKey(keys[i])
	}
	vals, err := r.cache.MGet(ctx, needKeys)
	if err != nil {
		// SSDB is a cache: without it, S3 still answers.
		r.log.Warn().Err(err).Msg("cache unavailable; reading day files from S3")
		vals = make([][]byte, len(needKeys))
	}
	cached, gens := vals[:len(need)], vals[len(need):]
	decoded := make([][]*heartlogv1.Heartbeat, len(need))
	bad := decodeAll(cached, decoded, dayfile.Decode)
	var missing []int
	fillable := map[int]fillGen{} // by index of days: what a fill may write over
	var writes []fill             // cached day files without a digest
	for j, data := range cached {
		i := need[j]
		switch {
		case data == nil:
			missing = append(missing, i)
			if gens[j] == nil && err == nil {
				fillable[i] = fillGen{gen: nil}
			}
		case bad[j] != nil:
			r.log.Error().Err(bad[j]).Str("key", keys[i]).Msg("cached day file unreadable; reading S3")
			missing = append(missing, i)
			fillable[i] = fillGen{gen: gens[j]}
		default:
			perDay[i] = decoded[j]
			daysRead.WithLabelValues("cache").Inc()
			if digests {
				writes = append(writes, fill{DayFile: ssdb.DayFile{Key: keys[i], Data: data, Heartbeats: decoded[j], Decoded: true}, gen: gens[j]})
			}
		}
	}
	if len(missing) > 0 {
		fetched, err := r.fromS3(ctx, keys, missing, perDay)
		if err != nil {
			return fileDays{}, err
		}
		for _, f := range fetched {
			if g, ok := fillable[f.index]; ok {
				writes = append(writes, fill{DayFile: f.DayFile, gen: g.gen})
			}
		}
	}
	r.fill(ctx, writes)
	return fd, nil
}

// fillGen is the generation a fill read with the entry it may replace
// (nil: none).
type fillGen struct{ gen []byte }

// fromDigests MGETs the digests of the day files under keys and parses
// them into out; it returns the indexes of the days it could not read.
func (r *Reader) fromDigests(ctx context.Context, keys []string, out []*digest.Day) []int {
	dkeys := make([]string, len(keys))
	for i, k := range keys {
		dkeys[i] = digest.Key(k)
	}
	vals, err := r.cache.MGet(ctx, dkeys)
	if err != nil {
		r.log.Warn().Err(err).Msg("cache unavailable; reading day files from S3")
		vals = make([][]byte, len(keys))
	}
	bad := decodeAll(vals, out, digest.Parse)
	var need []int
	for i, data := range vals {
		switch {
		case data == nil:
			need = append(need, i)
		case bad[i] != nil:
			r.log.Error().Err(bad[i]).Str("key", dkeys[i]).Msg("cached day digest unreadable; reading the day file")
			out[i] = nil
			need = append(need, i)
		default:
			daysRead.WithLabelValues("digest").Inc()
		}
	}
	return need
}

// decodeAll decodes the files (nil ones are skipped) into out with decode,
// one goroutine per core: a year is 365 files of some 1,000 heartbeats,
// and decoding is most of a warm read's time. It returns each file's
// error.
func decodeAll[T any](files [][]byte, out []T, decode func([]byte) (T, error)) []error {
	errs := make([]error, len(files))
	parallel(len(files), func(i int) {
		if files[i] != nil {
			out[i], errs[i] = decode(files[i])
		}
	})
	return errs
}

// parallel calls fn(i) for each i in [0, n), on one goroutine per core.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// emptyFile is the day file of no heartbeats.
var emptyFile = sync.OnceValue(func() []byte {
	data, err := dayfile.Encode(nil)
	if err != nil {
		panic(err) // Encode of nothing cannot fail
	}
	return data
})

// fetched is a day file read from S3 for days[index].
type fetched struct {
	ssdb.DayFile
	index int
}

// fromS3 GETs keys[i] for each i of which and decodes it into out[i].
// It returns the files read (an empty one for a key S3 has none of), for
// the cache.
func (r *Reader) fromS3(ctx context.Context, keys []string, which []int, out [][]*heartlogv1.Heartbeat) ([]fetched, error) {
	var mu sync.Mutex
	var files []fetched
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.parallel)
	for _, i := range which {
		g.Go(func() error {
			key := keys[i]
			data, _, err := r.primary.Get(gctx, key)
			if errors.Is(err, objstore.ErrNotFound) {
				// No heartbeats that day. An empty file goes into the cache
				// too, so that the next read of a day without heartbeats (a
				// weekend) asks S3 no more; a late heartbeat is merged into it
				// by the cache processor like into any cached file.
				daysRead.WithLabelValues("none").Inc()
				out[i] = nil
				mu.Lock()
				files = append(files, fetched{ssdb.DayFile{Key: key, Data: emptyFile(), Decoded: true}, i})
				mu.Unlock()
				return nil
			}
			if err != nil {
				return fmt.Errorf("reads: s3 %s: %w", key, err)
			}
			if out[i], err = dayfile.Decode(data); err != nil {
				return fmt.Errorf("reads: day file %s: %w", key, err)
			}
			daysRead.WithLabelValues("s3").Inc()
			mu.Lock()
			files = append(files, fetched{ssdb.DayFile{Key: key, Data: data, Heartbeats: out[i], Decoded: true}, i})
			mu.Unlock()
			return nil
		})
	}
	return files, g.Wait()
}

// fill is a day file to put into the cache, and the generation read with
// what it replaces (nil: none).
type fill struct {
	ssdb.DayFile
	gen []byte
}

// fill puts day files read from S3, or read from SSDB without a digest,
// into SSDB with their digests (ssdb.Cache.WriteDayFiles: DEL digest, SETEX day file,
// SETEX digest, INCR generation). A failure only costs the next reader
// another S3 GET or day-file decode.
//
// SSDB has no SET NX, so a fill cannot be conditional; instead it never
// writes over what the cache processor may have written since it read:
//
//   - it fills a missing entry only if the day has no generation (no writer
//     touched it within the TTL; a day dropped on purpose, which keeps its
//     generation, is read from S3 until the cache processor writes it
//     again), and replaces a present entry only if it was unreadable or is
//     written back byte for byte with its digest;
//   - just before writing, it checks that each day's generation is still
//     the one read with the entry (else that day is not filled);
//   - its INCR must then count up to exactly that generation plus one. If
//     not, another write came between the check and the fill, and the fill
//     may have overwritten it with an older S3 version: the entry is
//     dropped (ssdb.Cache.DropDayFile), so that readers go to S3 and the cache
//     processor's next merge starts from S3 and its own memory of what it
//     wrote (package processors/cache).
//
// What remains: a drop may remove an entry newer than the fill (readers
// then go to S3, which is never less than S3); and the cache processor
// merges into an entry only if it is exactly its own last write, so an
// older fill that slipped in is merged with S3 at the next commit of the
// day. A fill can therefore leave the cache behind S3 only in one case: it
// overwrote the cache processor's write of heartbeats that the objects
// processor had not yet written to S3, the drop then failed (SSDB
// unreachable between two commands), and the day gets no later heartbeat
// before the TTL.
func (r *Reader) fill(ctx context.Context, files []fill) {
	files, release := r.claimFills(files)
	defer release()
	if len(files) == 0 {
		return
	}
	if r.beforeFill != nil {
		r.beforeFill("check")
	}
	gkeys := make([]string, len(files))
	for i, f := range files {
		gkeys[i] = digest.GenKey(f.Key)
	}
	now, err := r.cache.MGet(ctx, gkeys)
	if err != nil {
		r.log.Warn().Err(err).Int("files", len(files)).Msg("could not fill the cache")
		return
	}
	kept := files[:0:0]
	for i, f := range files {
		if bytes.Equal(now[i], f.gen) {
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		return
	}
	if r.beforeFill != nil {
		r.beforeFill("write")
	}
	out := make([]ssdb.DayFile, len(kept))
	for i, f := range kept {
		out[i] = f.DayFile
	}
	counted, err := r.cache.WriteDayFiles(ctx, out)
	if counted == nil {
		r.log.Warn().Err(err).Int("files", len(kept)).Msg("could not fill the cache")
		return
	}
	for i, f := range kept {
		if counted[i] == genValue(f.gen)+1 {
			continue
		}
		fillRaces.Inc()
		if _, err := r.cache.DropDayFile(ctx, f.Key); err != nil {
			r.log.Warn().Err(err).Str("key", f.Key).Msg("a cache fill raced another write and could not be undone")
		}
	}
}

// claimFills keeps the files whose key no other fill of this Reader is
// writing, and marks them as being filled until release. Two requests that
// read the same missing days at once (a dashboard's parallel calls) would
// otherwise both fill them: the second write counts the generation past
// what it read, the day is dropped as raced, and the generation the drop
// leaves stops every later fill of it until the cache processor writes the
// day again or the TTL ends, so every read of it goes to S3. A skipped fill
// costs nothing: the caller has its data, and the other fill writes it.
func (r *Reader) claimFills(files []fill) (kept []fill, release func()) {
	r.fillMu.Lock()
	defer r.fillMu.Unlock()
	for _, f := range files {
		if !r.filling[f.Key] {
			r.filling[f.Key] = true
			kept = append(kept, f)
		}
	}
	return kept, func() {
		r.fillMu.Lock()
		defer r.fillMu.Unlock()
		for _, f := range kept {
			delete(r.filling, f.Key)
		}
	}
}

// genValue is a generation's value, 0 for none.
func genValue(v []byte) int64 {
	n, _ := strconv.ParseInt(string(v), 10, 64)
	return n
}

var fillRaces = promauto.NewCounter(prometheus.CounterOpts{
	Name: "heartlog_read_fill_races_total",
	Help: "Cache fills by the read path that raced another write of the same day and were dropped (reads then go to S3).",
})
