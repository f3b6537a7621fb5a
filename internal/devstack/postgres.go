package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway Postgres 15 cluster: its own data directory, its
// own loopback port, trust authentication on loopback for the superuser
// heartlog. The tests use it for outages (the shared server must never be
// stopped), the benchmarks for a second server beside the shared one.
type Postgres struct {
	// URL reaches the cluster's "postgres" database as heartlog, without
	// password.
	URL  string
	Port int

	dir, log string
	opts     PostgresOptions
	// as runs a command as the postgres system user when this process
	// runs as root (initdb and postgres refuse to run as root).
	as []string

	mu      sync.Mutex
	running bool
}

// PostgresOptions configure StartPostgres.
type PostgresOptions struct {
	// Dir is where the data directory and the server log go; it must
	// exist. Required.
	Dir string
	// Bin holds initdb, pg_ctl and postgres (default PostgresBinDir()).
	Bin string
	// Settings are extra server settings, name to value, on top of the
	// defaults: fsync and full_page_writes off, max_connections 200
	// (synchronous_commit stays on, so that a Stop, which kills the
	// server, loses no committed transaction).
	Settings map[string]string
}

// PostgresBinDir is where Postgres 15 binaries are looked for, first found
// wins: HEARTLOG_TEST_PG_BIN, then Debian's and the PATH's; "" if none.
func PostgresBinDir() string {
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

// ErrNoPostgres is StartPostgres's answer when no binaries are found.
var ErrNoPostgres = errors.New("Postgres 15 binaries not found: install postgresql-15 (ops/stack.sh install) or set HEARTLOG_TEST_PG_BIN")

// StartPostgres initialises a cluster in opts.Dir on a free port and
// starts it. Stop stops it; the caller removes opts.Dir.
func StartPostgres(opts PostgresOptions) (*Postgres, error) {
	if opts.Bin == "" {
		opts.Bin = PostgresBinDir()
	}
	if opts.Bin == "" {
		return nil, ErrNoPostgres
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: filepath.Join(opts.Dir, "data"), log: filepath.Join(opts.Dir, "postgres.log"), opts: opts, Port: port}
	p.URL = fmt.Sprintf("postgres://heartlog@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := p.asPostgresUser(opts.Dir); err != nil {
			return nil, err
		}
	}
	if err := p.run("initdb", "-D", p.dir, "-U", "heartlog", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, err
	}
	return p, p.Start()
}

// asPostgresUser makes the data directory the postgres system user's and
// lets that user reach it and write the log.
func (p *Postgres) asPostgresUser(base string) error {
	pu, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs the postgres system user (ops/stack.sh creates it): %w", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	// A temporary directory and its parent may be 0700 root: open them
	// for traversal only.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o711); err != nil {
			return err
		}
	}
	if err := os.WriteFile(p.log, nil, 0o600); err != nil {
		return err
	}
	for _, path := range []string{p.dir, p.log} {
		if err := os.Chown(path, uid, gid); err != nil {
			return err
		}
	}
	p.as = []string{"runuser", "-u", "postgres", "--"}
	return nil
}

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, p.as...), filepath.Join(p.opts.Bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/" // the postgres user may not read the caller's cwd
	return cmd
}

func (p *Postgres) run(name string, args ...string) error {
	if out, err := p.command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

func (p *Postgres) pgCtl(args ...string) error {
	args = append([]string{"-D", p.dir, "-w", "-t", "60"}, args...)
	out, err := p.command("pg_ctl", args...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(p.log)
		return fmt.Errorf("pg_ctl %v: %w\n%s\nserver log:\n%s", args, err, out, log)
	}
	return nil
}

// Start starts the cluster (again) on its port and data, and returns once
// it accepts connections.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	settings := map[string]string{"fsync": "off", "full_page_writes": "off", "max_connections": "200"}
	for k, v := range p.opts.Settings {
		settings[k] = v
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=''", p.Port)
	for k, v := range settings {
		opts += fmt.Sprintf(" -c %s=%s", k, v)
	}
	if err := p.pgCtl("-l", p.log, "-o", opts, "start"); err != nil {
		return err
	}
	p.running = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, p.URL)
		if err == nil {
			return c.Close(ctx)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("private Postgres on port %d does not accept connections: %w", p.Port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the cluster at once (as a crash or a cut network would: open
// connections break); Start brings it back. Stopping a stopped cluster
// does nothing.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return nil
	}
	if err := p.pgCtl("stop", "-m", "immediate"); err != nil {
		return err
	}
	p.running = false
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
