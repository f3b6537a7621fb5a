package ssdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// MaxKeyLen is the longest key the cache accepts: SSDB limits key length
// (SSDB_KEY_LEN_MAX, 200 bytes in older releases and 255 in newer ones), so
// the lower bound is used. Day file keys are well under 100 bytes.
const MaxKeyLen = 200

// Cache is the SSDB read cache of day files. It is safe for concurrent use.
type Cache struct {
	rdb *redis.Client
	ttl time.Duration
}

// New makes a Cache. It does not connect: connections are made on first use,
// so a cache server that is down at start makes calls fail (and readers fall
// back to S3) rather than stopping the process. Use Ping for readiness.
func New(cfg Config) (*Cache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	parsed, err := parseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("cache: URL: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{
		Network:   parsed.Network,
		Addr:      parsed.Addr,
		Password:  parsed.Password,
		TLSConfig: parsed.TLSConfig,

		DB:              0,    // SSDB has no SELECT; go-redis sends none for DB 0
		Protocol:        2,    // RESP2: SSDB does not speak RESP3
		DisableIdentity: true, // no CLIENT SETINFO on connect
		ClientName:      "",   // no CLIENT SETNAME on connect
		// Maintenance notifications are RESP3-only and off at Protocol 2;
		// say so explicitly rather than rely on that.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},

		DialTimeout:           cfg.DialTimeout,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		ContextTimeoutEnabled: true, // a caller's deadline bounds the call too
		PoolSize:              cfg.PoolSize,
		// Fail fast: the caller falls back to S3. One retry covers a pooled
		// connection the server closed; one dial attempt per try keeps an
		// unreachable server from costing several dial timeouts.
		MaxRetries:    1,
		DialerRetries: 1,
	})
	// Before any command, so that every connection's handshake passes
	// through it as well.
	rdb.AddHook(Guard{})
	return &Cache{rdb: rdb, ttl: cfg.TTL}, nil
}

// TTL is the time to live of every value the cache writes.
func (c *Cache) TTL() time.Duration { return c.ttl }

// Close closes the connections.
func (c *Cache) Close() error { return c.rdb.Close() }

// Ping checks that the server answers (PING).
func (c *Cache) Ping(ctx context.Context) error {
	start := time.Now()
	err := c.rdb.Ping(ctx).Err()
	observe(cmdPing, start, err)
	if err != nil {
		return fmt.Errorf("cache: ping: %w", err)
	}
	return nil
}

// Get reads one value: the bytes and true, or nil and false on a miss.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	start := time.Now()
	v, err := c.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		observe(cmdGet, start, nil)
		missesTotal.Inc()
		return nil, false, nil
	}
	observe(cmdGet, start, err)
	if err != nil {
		return nil, false, fmt.Errorf("cache: get: %w", err)
	}
	hitsTotal.Inc()
	return v, true, nil
}

// MGet reads many values in one MGET round trip. The result has one entry
// per key, in the order of keys: the value, or nil for a miss. (A value is
// never nil: an empty value is a non-nil empty slice.)
func (c *Cache) MGet(ctx context.Context, keys []string) ([][]byte, error) {
	if len(keys) == 0 {
		return [][]byte{}, nil
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	vals, err := c.rdb.MGet(ctx, keys...).Result()
	if err == nil && len(vals) != len(keys) {
		err = fmt.Errorf("MGET of %d keys answered %d values", len(keys), len(vals))
	}
	observe(cmdMGet, start, err)
	if err != nil {
		return nil, fmt.Errorf("cache: mget: %w", err)
	}
	out := make([][]byte, len(keys))
	hits := 0
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
		case string:
			out[i] = []byte(v)
			hits++
		default:
			errorsTotal.WithLabelValues(cmdMGet).Inc()
			return nil, fmt.Errorf("cache: mget: value %d is a %T, not a string", i, v)
		}
	}
	hitsTotal.Add(float64(hits))
	missesTotal.Add(float64(len(keys) - hits))
	return out, nil
}

// Set writes one value with the cache's TTL (SETEX).
func (c *Cache) Set(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	start := time.Now()
	err := c.rdb.SetEx(ctx, key, value, c.ttl).Err()
	observe(cmdSetEx, start, err)
	if err != nil {
		return fmt.Errorf("cache: setex: %w", err)
	}
	setsTotal.Inc()
	return nil
}

// SetMany writes many values with the cache's TTL in one pipeline of SETEX
// (not MSET, which cannot set TTLs). Keys are sent in sorted order. On error
// some of the values may have been written: a cache write is idempotent, so
// the caller can simply retry, or leave the misses to be filled on read.
func (c *Cache) SetMany(ctx context.Context, values map[string][]byte) error {
	if len(values) == 0 {
		return nil
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		if err := checkKey(k); err != nil {
			return err
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	start := time.Now()
	cmds, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.SetEx(ctx, k, values[k], c.ttl)
		}
		return nil
	})
	observe(cmdPipeline, start, err)
	ok := 0
	for _, cmd := range cmds {
		if cmd.Err() == nil {
			ok++
		}
	}
	setsTotal.Add(float64(ok))
	if err != nil {
		return fmt.Errorf("cache: setex pipeline (%d of %d written): %w", ok, len(keys), err)
	}
	return nil
}

// Op is one command of Apply: SETEX Key Value with the cache's TTL; when
// Delete is set, DEL Key; when Incr is set, INCR Key followed by EXPIRE Key
// with the cache's TTL (a counter that lives as long as what it counts).
type Op struct {
	Key    string
	Value  []byte
	Delete bool
	Incr   bool
}

// Apply sends ops in one pipeline, in the order given; the server runs
// them in that order. A pipeline is not a transaction (SSDB has no
// MULTI): on an error, some of the commands may have run. Writers that
// need a state to be impossible after a partial run order the commands so
// that every prefix leaves an acceptable state (see package
// heartlog/schema/digest).
func (c *Cache) Apply(ctx context.Context, ops []Op) error {
	_, err := c.Exec(ctx, ops)
	return err
}

// Exec is Apply that also returns, in order, the value each Incr op
// counted up to.
func (c *Cache) Exec(ctx context.Context, ops []Op) ([]int64, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	for _, op := range ops {
		if err := checkKey(op.Key); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	var incrs []*redis.IntCmd
	cmds, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, op := range ops {
			switch {
			case op.Incr:
				incrs = append(incrs, p.Incr(ctx, op.Key))
				p.Expire(ctx, op.Key, c.ttl)
			case op.Delete:
				p.Del(ctx, op.Key)
			default:
				p.SetEx(ctx, op.Key, op.Value, c.ttl)
			}
		}
		return nil
	})
	observe(cmdPipeline, start, err)
	ok := 0
	for _, cmd := range cmds {
		if cmd.Err() == nil && cmd.Name() == "setex" {
			ok++
		}
	}
	setsTotal.Add(float64(ok))
	if err != nil {
		return nil, fmt.Errorf("cache: pipeline of %d commands: %w", len(ops), err)
	}
	counts := make([]int64, len(incrs))
	for i, cmd := range incrs {
		counts[i] = cmd.Val()
	}
	return counts, nil
}

// Delete removes keys (DEL); keys that do not exist are not an error.
func (c *Cache) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	start := time.Now()
	err := c.rdb.Del(ctx, keys...).Err()
	observe(cmdDel, start, err)
	if err != nil {
		return fmt.Errorf("cache: del: %w", err)
	}
	return nil
}

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("cache: empty key")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("cache: key of %d bytes is longer than SSDB's %d", len(key), MaxKeyLen)
	}
	return nil
}
