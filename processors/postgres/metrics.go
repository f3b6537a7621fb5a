package postgres

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The per-database series are labelled database = daydb.DB.Name
// (host:port/dbname, never a URL: no user, no password). Their cardinality
// is the databases in the list, never the days.
var (
	rowsInserted = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_postgres_rows_inserted_total",
		Help: "Heartbeat rows inserted (duplicates excluded), by database.",
	}, []string{"database"})
	duplicates = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_postgres_duplicates_total",
		Help: "Heartbeats already stored when they came again (redelivery, replay, client resend), by database.",
	}, []string{"database"})
	commitSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "heartlog_postgres_commit_seconds",
		Help:    "Time one database took to commit its share of a batch (partitions and rows), failed attempts included.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"database"})
	commitErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_postgres_commit_errors_total",
		Help: "Failed commits of a database's share of a batch (retried, or held back when other databases committed).",
	}, []string{"database"})
	heldBatches = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_postgres_held_batches_total",
		Help: "Batches (one day's heartbeats in one message) held back because their day's database failed or is not migrated yet; database \"unlisted\" for days placed on a database not in HEARTLOG_POSTGRES_SHARD_URLS.",
	}, []string{"database"})
	daysPlaced = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "heartlog_postgres_days_placed",
		Help: "UTC days placed on each database (day_placements), refreshed at most once a minute by the Postgres processor.",
	}, []string{"database"})
)

// unlisted is the database label of batches whose day is placed on a
// database this process was not given: the name is in the error, and a
// label per such name would follow whatever the catalog holds.
const unlisted = "unlisted"

// placedEvery is how often the Postgres processor counts the days placed
// on each database.
const placedEvery = time.Minute

// countPlaced sets heartlog_postgres_days_placed from the catalog, at most
// once every placedEvery. A failure is left to the next commit: the gauge
// is a report, and the commit does not depend on it.
func (s *Sink) countPlaced(ctx context.Context) {
	now := s.opts.Now()
	s.mu.Lock()
	due := now.Sub(s.placedAt) >= placedEvery
	if due {
		s.placedAt = now
	}
	s.mu.Unlock()
	if !due {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := s.days.Catalog().Query(ctx, `SELECT database, count(*) FROM day_placements GROUP BY database`)
	if err != nil {
		s.log.Debug().Err(err).Msg("count the days placed on each database")
		return
	}
	defer rows.Close()
	counts := map[string]float64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return
		}
		counts[name] = float64(n)
	}
	if rows.Err() != nil {
		return
	}
	for _, db := range s.days.All() {
		daysPlaced.WithLabelValues(db.Name).Set(counts[db.Name])
	}
	for name, n := range counts {
		// The catalog's old days, once shards came; not a name the
		// catalog merely holds (bounded by this process's list).
		if _, ok := s.days.Database(name); ok {
			daysPlaced.WithLabelValues(name).Set(n)
		}
	}
}
