// Package reads is heartlog's read path: it gathers a user's heartbeats for
// a set of UTC days from wherever each day lives. A day whose Postgres
// shard is active is read from Postgres (the hot store, current within the
// projector's lag); any other day from SSDB, with one MGET for all of them;
// a day SSDB lacks from S3 (bounded parallel GETs), which then fills SSDB
// (with an empty day file for a day S3 has no file of, so that a warm read
// asks S3 nothing even across days without heartbeats).
//
// It only reads, except for filling the cache. It must never read another
// user's data: every key and query is built from the user record.
package reads

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"heartlog/cache"
	"heartlog/objstore"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
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
	pool     *pgxpool.Pool
	shards   ShardStates
	cache    *cache.Cache
	primary  objstore.Bucket
	parallel int
	log      zerolog.Logger
}

// New returns a Reader; parallel bounds S3 GETs per call (default 16).
func New(pool *pgxpool.Pool, shards ShardStates, c *cache.Cache, primary objstore.Bucket, parallel int, log zerolog.Logger) *Reader {
	if parallel <= 0 {
		parallel = 16
	}
	return &Reader{pool: pool, shards: shards, cache: c, primary: primary, parallel: parallel, log: log}
}

var daysRead = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "heartlog_read_days_total",
	Help: "User-days read, by where they came from (postgres, cache, s3, none).",
}, []string{"source"})

// Heartbeats returns the user's heartbeats of the UTC days (YYYYMMDD),
// sorted by (time, id).
func (r *Reader) Heartbeats(ctx context.Context, u users.User, days []string) ([]*heartlogv1.Heartbeat, error) {
	var hot, cold []string
	for _, d := range days {
		if r.shards.State(d).Writable() {
			hot = append(hot, d)
		} else {
			cold = append(cold, d)
		}
	}
	// Postgres and the day files are read at once.
	var rows, files []*heartlogv1.Heartbeat
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
			files, err = r.fromFiles(gctx, u, cold)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Day files come sorted and in day order, and the days in Postgres are
	// usually the newest: then the two runs are already in order.
	out := slices.Concat(files, rows)
	if !slices.IsSortedFunc(out, compareHeartbeats) {
		slices.SortFunc(out, compareHeartbeats)
	}
	return out, nil
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

const columns = `id, user_id::text, time, entity, type, category, project, project_root_count, branch, language,
	dependencies, lines, line_additions, line_deletions, lineno, cursorpos, is_write, ai_line_changes,
	human_line_changes, editor, plugin, operating_system, machine, user_agent, extra`

func (r *Reader) fromPostgres(ctx context.Context, u users.User, days []string) ([]*heartlogv1.Heartbeat, error) {
	id, err := uuid.Parse(u.ID)
	if err != nil {
		return nil, fmt.Errorf("reads: user id %q: %w", u.ID, err)
	}
	dates := make([]pgtype.Date, len(days))
	for i, d := range days {
		if err := dates[i].Scan(d[:4] + "-" + d[4:6] + "-" + d[6:]); err != nil {
			return nil, fmt.Errorf("reads: day %q: %w", d, err)
		}
	}
	rows, err := r.pool.Query(ctx, "SELECT "+columns+" FROM heartbeats WHERE user_id = $1 AND day = ANY($2)",
		pgtype.UUID{Bytes: id, Valid: true}, dates)
	if err != nil {
		return nil, fmt.Errorf("reads: postgres: %w", err)
	}
	return pgx.CollectRows(rows, scanHeartbeat)
}

func scanHeartbeat(row pgx.CollectableRow) (*heartlogv1.Heartbeat, error) {
	hb := &heartlogv1.Heartbeat{}
	var extra []byte
	err := row.Scan(&hb.Id, &hb.UserId, &hb.Time, &hb.Entity, &hb.Type, &hb.Category, &hb.Project,
		&hb.ProjectRootCount, &hb.Branch, &hb.Language, &hb.Dependencies, &hb.Lines, &hb.LineAdditions,
		&hb.LineDeletions, &hb.Lineno, &hb.Cursorpos, &hb.IsWrite, &hb.AiLineChanges, &hb.HumanLineChanges,
		&hb.Editor, &hb.Plugin, &hb.OperatingSystem, &hb.Machine, &hb.UserAgent, &extra)
	if len(extra) > 0 {
		hb.ExtraJson = extra
	}
	if len(hb.Dependencies) == 0 {
		hb.Dependencies = nil
	}
	return hb, err
}

// fromFiles reads day files: one MGET from SSDB, then S3 for the misses,
// which then go into SSDB. The result is in the order of days, and so
// sorted when days are (each file is).
func (r *Reader) fromFiles(ctx context.Context, u users.User, days []string) ([]*heartlogv1.Heartbeat, error) {
	keys := make([]string, len(days))
	for i, d := range days {
		keys[i] = dayfile.Key(u.ObjectPrefix, u.ID, d)
	}
	cached, err := r.cache.MGet(ctx, keys)
	if err != nil {
		// SSDB is a cache: without it, S3 still answers.
		r.log.Warn().Err(err).Msg("cache unavailable; reading day files from S3")
		cached = make([][]byte, len(keys))
	}
	perDay := make([][]*heartlogv1.Heartbeat, len(keys))
	bad := decodeAll(cached, perDay)
	var missing []int
	for i, data := range cached {
		switch {
		case data == nil:
			missing = append(missing, i)
		case bad[i] != nil:
			r.log.Error().Err(bad[i]).Str("key", keys[i]).Msg("cached day file unreadable; reading S3")
			missing = append(missing, i)
		default:
			daysRead.WithLabelValues("cache").Inc()
		}
	}
	if len(missing) > 0 {
		fetched, err := r.fromS3(ctx, keys, missing, perDay)
		if err != nil {
			return nil, err
		}
		r.fill(ctx, fetched)
	}
	return slices.Concat(perDay...), nil
}

// decodeAll decodes the files (nil ones are skipped) into out, one
// goroutine per core: a year is 365 files of some 1,000 heartbeats, and
// decoding is most of a warm read's time. It returns each file's error.
func decodeAll(files [][]byte, out [][]*heartlogv1.Heartbeat) []error {
	errs := make([]error, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(files); i = int(next.Add(1)) - 1 {
				if files[i] != nil {
					out[i], errs[i] = dayfile.Decode(files[i])
				}
			}
		})
	}
	wg.Wait()
	return errs
}

// emptyFile is the day file of no heartbeats.
var emptyFile = sync.OnceValue(func() []byte {
	data, err := dayfile.Encode(nil)
	if err != nil {
		panic(err) // Encode of nothing cannot fail
	}
	return data
})

type fetchedFile struct {
	key  string
	data []byte
}

// fromS3 GETs keys[i] for each i of which and decodes it into out[i].
func (r *Reader) fromS3(ctx context.Context, keys []string, which []int, out [][]*heartlogv1.Heartbeat) ([]fetchedFile, error) {
	var mu sync.Mutex
	var fetched []fetchedFile
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
				fetched = append(fetched, fetchedFile{key: key, data: emptyFile()})
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
			fetched = append(fetched, fetchedFile{key: key, data: data})
			mu.Unlock()
			return nil
		})
	}
	return fetched, g.Wait()
}

// fill puts files read from S3 into SSDB. A failure only costs the next
// reader another S3 GET. (SSDB has no SET NX, so a fill can race the cache
// processor and put back an older file; the processor's next write for the
// day, or the TTL, repairs it, and S3 stays the truth.)
func (r *Reader) fill(ctx context.Context, files []fetchedFile) {
	if len(files) == 0 {
		return
	}
	m := make(map[string][]byte, len(files))
	for _, f := range files {
		m[f.key] = f.data
	}
	if err := r.cache.SetMany(ctx, m); err != nil {
		r.log.Warn().Err(err).Int("files", len(files)).Msg("could not fill the cache")
	}
}
