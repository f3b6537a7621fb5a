package heartlogtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"heartlog/daydb"
	"heartlog/internal/devstack"
	"heartlog/internal/wiring"
	"heartlog/schema/migrations"
	"heartlog/streams"
)

// PostgresURL is the server tests create their databases in. Without it
// the test fails: a skipped test would pass CI while proving nothing.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("HEARTLOG_POSTGRES_URL")
	if u == "" {
		t.Fatal("HEARTLOG_POSTGRES_URL is not set: run the tests with `make test`, which starts the local stack, or `. var/env` after `make run`")
	}
	return u
}

// NewDatabase creates an empty database with the migrations applied and
// drops it when the test ends. Each test gets its own, so tests can run in
// parallel and leave nothing behind.
func NewDatabase(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return newDatabase(t, PostgresURL(t))
}

// newDatabase creates a migrated database in the server adminURL reaches.
func newDatabase(t testing.TB, adminURL string) (*pgxpool.Pool, string) {
	t.Helper()
	return newDatabaseOf(t, adminURL, migrations.Both)
}

// EmptyDatabase creates a database without migrations in the shared
// server (for a test of what the binary migrates) and drops it when the
// test ends.
func EmptyDatabase(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return newDatabaseOf(t, PostgresURL(t), 0)
}

// newDatabaseOf creates a database in the server adminURL reaches with the
// migrations of set applied (none for 0).
func newDatabaseOf(t testing.TB, adminURL string, set migrations.Set) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	name := "heartlog_test_" + randomHex(6)
	dbURL, err := wiring.CreateDatabase(ctx, adminURL, name)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := wiring.NewPool(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		if err := wiring.DropDatabase(context.Background(), adminURL, name); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	if set == 0 {
		return pool, dbURL
	}
	if err := wiring.MigrateSet(ctx, pool, set, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	return pool, dbURL
}

// NATS is an embedded JetStream server for one test.
type NATS struct {
	Server   *server.Server
	URL      string
	StoreDir string
	port     int
}

// StartNATS starts a JetStream server with sync_interval always on a free
// port and a temporary store. Restart brings it back on the same port and
// store.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{StoreDir: filepath.Join(t.TempDir(), "jetstream")}
	n.start(t, -1)
	t.Cleanup(n.Shutdown)
	return n
}

func (n *NATS) start(t testing.TB, port int) {
	t.Helper()
	ns, err := devstack.StartNATS(devstack.NATSOptions{StoreDir: n.StoreDir, Host: "127.0.0.1", Port: port, NoMonitoring: true})
	if err != nil {
		t.Fatal(err)
	}
	n.Server = ns
	n.URL = ns.ClientURL()
	n.port = ns.Addr().(*net.TCPAddr).Port
}

// Shutdown stops the server; clients see it unreachable.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// Restart starts the server again on its old port and store.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.start(t, n.port)
}

// Connect returns a client connection made as heartlog makes its own
// (wiring.ConnectNATS), with a shorter pause between reconnects so that a
// test's Restart is noticed at once.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := wiring.ConnectNATS(url, wiring.NATSOptions{Name: "test", ReconnectWait: 100 * time.Millisecond, Log: Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Topology is a NATS server of the test's own with heartlog's streams and
// buckets on it, and a connection to it.
type Topology struct {
	*NATS
	NC     *nats.Conn
	JS     jetstream.JetStream
	Config streams.Config
}

// StartTopology starts a NATS server for the test (StartNATS), connects to
// it (Connect) and creates cfg's topology on it (streams.Ensure), as
// `heartlog process` does before its processors start.
func StartTopology(t testing.TB, cfg streams.Config) Topology {
	t.Helper()
	n := StartNATS(t)
	nc, js := Connect(t, n.URL)
	if err := streams.Ensure(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	return Topology{NATS: n, NC: nc, JS: js, Config: cfg}
}

// Publisher ensures the default topology on js and returns it with a
// publisher on it, closed when the test ends.
func Publisher(t testing.TB, nc *nats.Conn, js jetstream.JetStream) (streams.Config, *streams.Publisher) {
	t.Helper()
	cfg := streams.DefaultConfig()
	if err := streams.Ensure(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	pub := streams.NewPublisher(nc, js, cfg, streams.PublisherOptions{})
	t.Cleanup(pub.Close)
	return cfg, pub
}

// Databases are a test's catalog and shard databases.
type Databases struct {
	// Days is the set over Catalog and the shards (the catalog alone
	// without shards).
	Days       *daydb.Set
	Catalog    *pgxpool.Pool
	CatalogURL string
	// Shards and ShardURLs are the shard databases, in list order.
	Shards    []*pgxpool.Pool
	ShardURLs []string
}

// NewDatabases creates a catalog database and shards shard databases in
// the shared server, each migrated with its own set (the catalog takes
// both without shards), and drops them when the test ends.
func NewDatabases(t testing.TB, shards int) Databases {
	t.Helper()
	return newDatabases(t, PostgresURL(t), shards)
}

func newDatabases(t testing.TB, adminURL string, shards int) Databases {
	t.Helper()
	set := migrations.Both
	if shards > 0 {
		set = migrations.Catalog
	}
	d := Databases{}
	d.Catalog, d.CatalogURL = newDatabaseOf(t, adminURL, set)
	for range shards {
		p, u := newDatabaseOf(t, adminURL, migrations.Shard)
		d.Shards, d.ShardURLs = append(d.Shards, p), append(d.ShardURLs, u)
	}
	var err error
	if d.Days, err = daydb.New(d.Catalog, d.Shards...); err != nil {
		t.Fatal(err)
	}
	return d
}

// AddShard creates one more shard database in the server adminURL reaches
// (the shared one when empty) and returns the set over the old databases
// and it: what a process sees after the database is added to
// HEARTLOG_POSTGRES_SHARD_URLS.
func (d Databases) AddShard(t testing.TB, adminURL string) Databases {
	t.Helper()
	if adminURL == "" {
		adminURL = PostgresURL(t)
	}
	p, u := newDatabaseOf(t, adminURL, migrations.Shard)
	d.Shards = append(append([]*pgxpool.Pool(nil), d.Shards...), p)
	d.ShardURLs = append(append([]string(nil), d.ShardURLs...), u)
	var err error
	if d.Days, err = daydb.New(d.Catalog, d.Shards...); err != nil {
		t.Fatal(err)
	}
	return d
}
