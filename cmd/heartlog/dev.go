package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"heartlog/admin"
	"heartlog/config"
	"heartlog/internal/devstack"
	"heartlog/users"
)

func devCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process on the local stack (what `make run` starts)",
		Long: `Run an embedded NATS server (from HEARTLOG_NATS_CONFIG, storing under
HEARTLOG_NATS_STORE_DIR), the API and every processor in one process, against
the Postgres that HEARTLOG_POSTGRES_URL names (make run starts one under var/).

On first start it creates a demo user and prints its API key, a
~/.wakatime.cfg snippet and a curl example; later starts print them again.`,
		Args: cobra.NoArgs,
		RunE: runDev,
	}
}

// devFlushAge is every day-file processor's flush age under `heartlog
// dev`, unless set: a developer should see a day file, a cache entry and a
// new backup version within seconds, not after the production minutes.
const devFlushAge = 2 * time.Second

func runDev(cmd *cobra.Command, _ []string) error {
	cfg, log, err := loadConfig()
	if err != nil {
		return err
	}
	for name, age := range map[string]*time.Duration{
		"HEARTLOG_OBJECTS_FLUSH_AGE": &cfg.Objects.Age,
		"HEARTLOG_CACHE_FLUSH_AGE":   &cfg.Cache.Age,
		"HEARTLOG_BACKUP_FLUSH_AGE":  &cfg.BackupFlush.Age,
	} {
		if !config.IsSet(name) {
			*age = devFlushAge
		}
	}
	host, port, err := natsListen(cfg.NATSURL)
	if err != nil {
		return err
	}
	nopts := devstack.NATSOptions{ConfigFile: cfg.NATSConfig, StoreDir: cfg.NATSStoreDir, Host: host, Port: port}
	if err := checkDevPorts(nopts, cfg); err != nil {
		return err
	}
	ns, err := devstack.StartNATS(nopts)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	log.Info().Str("url", cfg.NATSURL).Str("store", cfg.NATSStoreDir).Msg("embedded NATS server running")
	adm, err := admin.Listen(cfg.AdminAddr, log)
	if err != nil {
		return err
	}
	defer adm.Close()

	rt, err := startRuntime(cmd.Context(), cfg, log, "dev")
	if err != nil {
		return err
	}
	defer rt.close()
	if err := printDemoUser(cmd.Context(), rt, cfg); err != nil {
		// Not fatal: ingest needs no Postgres, and an existing key works.
		log.Warn().Err(err).Msg("no demo user banner")
	}
	return serveAndProcess(cmd, rt)
}

// checkDevPorts fails at once, naming each port that is taken and by what,
// instead of letting the embedded NATS server wait 30 s for its port.
func checkDevPorts(nopts devstack.NATSOptions, cfg config.Config) error {
	addrs, err := nopts.Addrs()
	if err != nil {
		return err
	}
	addrs = append(addrs, devstack.Addr{Name: "API (HEARTLOG_HTTP_ADDR)", HostPort: cfg.HTTPAddr})
	if cfg.AdminAddr != "" {
		addrs = append(addrs, devstack.Addr{Name: "admin (HEARTLOG_ADMIN_ADDR)", HostPort: cfg.AdminAddr})
	}
	return devstack.CheckFree(addrs...)
}

// natsListen takes the embedded server's address from HEARTLOG_NATS_URL, so
// that one variable tells both the server and its clients.
func natsListen(raw string) (string, int, error) {
	u, err := url.Parse(strings.Split(raw, ",")[0])
	if err != nil || u.Hostname() == "" || u.Port() == "" {
		return "", 0, fmt.Errorf("HEARTLOG_NATS_URL=%q: want nats://host:port for the embedded server", raw)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return "", 0, fmt.Errorf("HEARTLOG_NATS_URL=%q: bad port", raw)
	}
	return u.Hostname(), port, nil
}

// demoKeyFile keeps the demo user's key beside the NATS store, readable by
// its owner only: heartlog stores only a hash, so this file is the one
// place the local demo key survives a restart.
func demoKeyFile(cfg config.Config) string {
	return filepath.Join(filepath.Dir(filepath.Clean(cfg.NATSStoreDir)), "demo-api-key")
}

func printDemoUser(ctx context.Context, rt *runtime, cfg config.Config) error {
	key, err := demoKey(ctx, users.Accounts{Keys: rt.dir, Store: rt.users}, demoKeyFile(cfg))
	if err != nil {
		return fmt.Errorf("demo user: %w", err)
	}
	path := demoKeyFile(cfg)
	base := "http://" + cfg.HTTPAddr
	fmt.Fprintf(os.Stderr, `
  heartlog is running at %[1]s

  Demo user API key (saved in %[2]s):
    %[3]s

  Point every WakaTime plugin at it with ~/.wakatime.cfg:
    [settings]
    api_url = %[1]s/api/v1
    api_key = %[3]s

  Or send a heartbeat by hand:
    curl -s -u '%[3]s:' -H 'Content-Type: application/json' \
      -d '[{"entity":"main.go","type":"file","category":"coding","language":"Go","project":"demo","time":'$(date +%%s)'}]' \
      %[1]s/api/v1/users/current/heartbeats.bulk

  Rows land in Postgres: psql "$HEARTLOG_POSTGRES_URL" -c 'select * from heartbeats'
  (. var/env first). Day files are written when a UTC day closes, an hour after it
  ends (HEARTLOG_DAY_CLOSE_DELAY): once per user-day, to S3, SSDB and the backup. To
  see them now, send a heartbeat for yesterday (time: $(date -d yesterday +%%s)) and
  close that day:
    bin/heartlog days close yesterday && bin/heartlog days list
    zcat var/s3/heartlog/*/*/$(date -u -d yesterday +%%F).ndjson.gz | jq -c .
  A heartbeat sent later for a closed day is merged into its files within seconds.
  Stop with Ctrl-C, then "make stop" for the stack.

`, base, path, key)
	return nil
}

// demoKey returns the saved demo key, creating the user (with the saved
// key, if the database was reset but the file kept) when it is missing. A
// saved key the users bucket knows needs no Postgres.
func demoKey(ctx context.Context, a users.Accounts, path string) (string, error) {
	saved, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	key := strings.TrimSpace(string(saved))
	if key != "" {
		hash, err := users.HashKey(key)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		if _, err := a.ByKey(ctx, hash); err == nil {
			return key, nil
		} else if !errors.Is(err, users.ErrNotFound) {
			return "", err
		}
	}
	_, key, err = a.Store.Create(ctx, users.NewUser{Name: "demo", TimeZone: "UTC", APIKey: key})
	if err != nil {
		return "", err
	}
	return key, os.WriteFile(path, []byte(key+"\n"), 0o600)
}
