package heartlogtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a throwaway Postgres 15 cluster of one test: its own data
// directory under t.TempDir(), its own loopback port, fsync off (but
// synchronous commit on: a commit is written before it returns, so a
// Stop, which kills the server, loses no committed transaction). Unlike
// the shared server that HEARTLOG_POSTGRES_URL names, a test may stop it
// (an outage) and start it again on the same port and data. It serves any
// test that needs a Postgres of its own; NewDatabase makes databases in it
// as the package-level NewDatabase does in the shared one.
type Postgres struct {
	// URL reaches the cluster's "postgres" database as the superuser
	// heartlog, without password (trust on loopback only).
	URL  string
	Port int

	dir, log string
	bin      string
	// as runs a command as the postgres system user when the test runs as
	// root (initdb and postgres refuse to run as root).
	as []string

	mu      sync.Mutex
	running bool
}

// pgBinDirs are where Postgres 15 binaries are looked for, first found
// wins: HEARTLOG_TEST_PG_BIN, then Debian's and the PATH's.
func pgBinDir() string {
	if d := os.Getenv("HEARTLOG_TEST_PG_BIN"); d != "" {
		return d
	}
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/initdb"); err == nil {
		return "/usr/lib/postgresql/15/bin"
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// StartPostgres initialises and starts a private cluster, and stops it
// when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := pgBinDir()
	if bin == "" {
		t.Fatal("Postgres 15 binaries not found: install postgresql-15 (ops/stack.sh install) or set HEARTLOG_TEST_PG_BIN")
	}
	base := t.TempDir()
	p := &Postgres{dir: filepath.Join(base, "data"), log: filepath.Join(base, "postgres.log"), bin: bin, Port: freePort(t)}
	p.URL = fmt.Sprintf("postgres://heartlog@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		p.asPostgresUser(t, base)
	}
	p.run(t, "initdb", "-D", p.dir, "-U", "heartlog", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.running {
			_ = p.pgCtl("stop", "-m", "immediate")
		}
	})
	p.Start(t)
	return p
}

// asPostgresUser makes the data directory the postgres system user's and
// lets that user reach it and write the log.
func (p *Postgres) asPostgresUser(t testing.TB, base string) {
	t.Helper()
	pu, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal("running as root needs the postgres system user (ops/stack.sh creates it):", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	// t.TempDir's parent and the dir itself are 0700 root: open them for
	// traversal only.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{p.dir, p.log} {
		if path == p.log {
			if err := os.WriteFile(p.log, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p.as = []string{"runuser", "-u", "postgres", "--"}
}

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, p.as...), filepath.Join(p.bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/" // the postgres user may not read the test's cwd
	return cmd
}

func (p *Postgres) run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := p.command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func (p *Postgres) pgCtl(args ...string) error {
	args = append([]string{"-D", p.dir, "-w", "-t", "60"}, args...)
	out, err := p.command("pg_ctl", args...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(p.log)
		return fmt.Errorf("pg_ctl %v: %v\n%s\nserver log:\n%s", args, err, out, log)
	}
	return nil
}

// Start starts the cluster (again) on its port and data, and returns once
// it accepts connections.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "+
		"-c fsync=off -c full_page_writes=off -c max_connections=200", p.Port)
	if err := p.pgCtl("-l", p.log, "-o", opts, "start"); err != nil {
		t.Fatal(err)
	}
	p.running = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, p.URL)
		if err == nil {
			_ = c.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("private Postgres on port %d does not accept connections: %v", p.Port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the cluster at once (as a crash or a cut network would: open
// connections break); Start brings it back.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.pgCtl("stop", "-m", "immediate"); err != nil {
		t.Fatal(err)
	}
	p.running = false
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

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
