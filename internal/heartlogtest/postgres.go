package heartlogtest

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"heartlog/internal/devstack"
)

// Postgres is a throwaway Postgres 15 cluster of one test
// (devstack.Postgres): its own data directory under t.TempDir(), its own
// loopback port, fsync off (but synchronous commit on: a commit is written
// before it returns, so a Stop, which kills the server, loses no committed
// transaction). Unlike the shared server that HEARTLOG_POSTGRES_URL names,
// a test may stop it (an outage) and start it again on the same port and
// data. It serves any test that needs a Postgres of its own; NewDatabase
// makes databases in it as the package-level NewDatabase does in the
// shared one.
type Postgres struct {
	// URL reaches the cluster's "postgres" database as the superuser
	// heartlog, without password (trust on loopback only).
	URL  string
	Port int

	pg *devstack.Postgres
}

// StartPostgres initialises and starts a private cluster, and stops it
// when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	pg, err := devstack.StartPostgres(devstack.PostgresOptions{Dir: t.TempDir()})
	if pg != nil {
		t.Cleanup(func() { _ = pg.Stop() })
	}
	if err != nil {
		t.Fatal(err)
	}
	return &Postgres{URL: pg.URL, Port: pg.Port, pg: pg}
}

// Start starts the cluster again on its port and data, and returns once
// it accepts connections.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	if err := p.pg.Start(); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the cluster at once (as a crash or a cut network would: open
// connections break); Start brings it back.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	if err := p.pg.Stop(); err != nil {
		t.Fatal(err)
	}
}

// NewDatabase creates an empty database in the cluster with the
// migrations applied, as NewDatabase does in the shared server.
func (p *Postgres) NewDatabase(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return newDatabase(t, p.URL)
}

// NewDatabases creates a catalog and shards shard databases in the
// cluster, as the package-level NewDatabases does in the shared server.
func (p *Postgres) NewDatabases(t testing.TB, shards int) Databases {
	t.Helper()
	return newDatabases(t, p.URL, shards)
}
