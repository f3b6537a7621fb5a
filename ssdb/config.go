package ssdb

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Environment variables ConfigFromEnv reads.
const (
	EnvURL = "HEARTLOG_CACHE_URL"
	EnvTTL = "HEARTLOG_CACHE_TTL"
)

// Defaults. DefaultURL is the Redis of the local stack (ops/stack.sh), like
// the other HEARTLOG_* defaults.
//
// DefaultTTL is 35 days. The cache holds day files, and a day's key is
// rewritten (and its TTL restarted) by the cache processor each time that
// day gets heartbeats, so a day expires DefaultTTL after its last write,
// which is at or shortly after the end of that day. The longest windows the
// dashboards read often are "last 30 days" and a calendar month, which in a
// user's time zone span up to 32 UTC days; 35 days keeps every day of those
// windows in the cache for an active user, with a few days' margin for late
// heartbeats and shard drops. Older days are filled from S3 on read and then
// stay 35 days. The TTL is what bounds the cache's size: about five weeks of
// day files per active user (35 x ~5 KB) plus what reads pull in.
const (
	DefaultURL          = "redis://127.0.0.1:56379/0"
	DefaultTTL          = 35 * 24 * time.Hour
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = time.Second
	DefaultWriteTimeout = time.Second
)

// Config is the cache's connection settings.
type Config struct {
	// URL is redis://[:password@]host:port[/0] (or rediss://, unix://). The
	// database must be 0 (SSDB has no SELECT), the URL must carry no user
	// name (SSDB has no ACL users) and no query string (settings are the
	// fields below).
	URL string
	// TTL of every value written (SETEX, whole seconds). Zero means
	// DefaultTTL; it must be at least a second.
	TTL time.Duration
	// PoolSize is the number of connections per pool; zero means go-redis's
	// default of 10 per GOMAXPROCS.
	PoolSize int
	// Timeouts of one dial, one socket read and one socket write. Zero means
	// the Default* value; negative values (go-redis's "no timeout") are
	// refused: a cache must not block its caller.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
}

// ConfigFromEnv reads HEARTLOG_CACHE_URL (default DefaultURL) and
// HEARTLOG_CACHE_TTL (a Go duration such as 840h; default DefaultTTL) and
// checks them. The error names the variable at fault and never quotes the
// URL, which may hold a password.
func ConfigFromEnv() (Config, error) {
	cfg := Config{URL: DefaultURL}
	if v, ok := os.LookupEnv(EnvURL); ok && strings.TrimSpace(v) != "" {
		cfg.URL = strings.TrimSpace(v)
	}
	if _, err := parseURL(cfg.URL); err != nil {
		return Config{}, fmt.Errorf("%s: %w", EnvURL, err)
	}
	if v := strings.TrimSpace(os.Getenv(EnvTTL)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %q is not a duration (for example 840h): %w", EnvTTL, v, err)
		}
		if d < time.Second {
			return Config{}, fmt.Errorf("%s: %s is shorter than a second; SETEX takes whole seconds", EnvTTL, d)
		}
		cfg.TTL = d
	}
	return cfg, nil
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL < time.Second {
		return c, fmt.Errorf("cache: TTL %s is shorter than a second; SETEX takes whole seconds", c.TTL)
	}
	if c.PoolSize < 0 {
		return c, fmt.Errorf("cache: PoolSize %d is negative", c.PoolSize)
	}
	for _, t := range []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"DialTimeout", &c.DialTimeout, DefaultDialTimeout},
		{"ReadTimeout", &c.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", &c.WriteTimeout, DefaultWriteTimeout},
	} {
		if *t.d < 0 {
			return c, fmt.Errorf("cache: %s %s is negative; the cache needs a bounded timeout", t.name, *t.d)
		}
		if *t.d == 0 {
			*t.d = t.def
		}
	}
	return c, nil
}

// ErrDatabase is returned for a URL that selects a database other than 0.
var ErrDatabase = errors.New("SSDB has no SELECT: the cache URL must name database 0 (or none)")

// parseURL parses a cache URL and refuses what would make go-redis step
// outside SSDB's subset. The errors never quote the URL.
func parseURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	if u.RawQuery != "" {
		return nil, errors.New("the cache URL takes no query parameters (timeouts, pool size and TTL are cache.Config fields)")
	}
	if u.User != nil && u.User.Username() != "" {
		return nil, errors.New("the cache URL must not carry a user name: SSDB has no ACL users (use redis://:password@host:port/0)")
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		// go-redis's messages may quote the URL; keep only its gist.
		return nil, fmt.Errorf("not a redis://, rediss:// or unix:// URL go-redis accepts (scheme %q)", u.Scheme)
	}
	if opt.DB != 0 {
		return nil, fmt.Errorf("database %d: %w", opt.DB, ErrDatabase)
	}
	return opt, nil
}
