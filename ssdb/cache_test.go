package ssdb_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"heartlog/ssdb"
)

func TestRoundTrip(t *testing.T) {
	c := newCache(t, ssdb.Config{})
	ks := newKeyspace(t)
	ctx := ctxT(t)
	k := ks.key("2026-01-02.ndjson.gz")

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if v, ok, err := c.Get(ctx, k); err != nil || ok || v != nil {
		t.Fatalf("Get before Set = %q, %v, %v; want nil, false, nil", v, ok, err)
	}
	if err := c.Set(ctx, k, []byte("first")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if v, ok, err := c.Get(ctx, k); err != nil || !ok || string(v) != "first" {
		t.Fatalf("Get = %q, %v, %v; want first, true, nil", v, ok, err)
	}
	if err := c.Set(ctx, k, []byte("second")); err != nil {
		t.Fatalf("Set again: %v", err)
	}
	if v, ok, err := c.Get(ctx, k); err != nil || !ok || string(v) != "second" {
		t.Fatalf("Get after overwrite = %q, %v, %v; want second, true, nil", v, ok, err)
	}
	// An empty value is a hit, not a miss.
	empty := ks.key("empty")
	if err := c.Set(ctx, empty, []byte{}); err != nil {
		t.Fatalf("Set empty: %v", err)
	}
	if v, ok, err := c.Get(ctx, empty); err != nil || !ok || v == nil || len(v) != 0 {
		t.Fatalf("Get empty = %q (nil %v), %v, %v; want non-nil empty, true, nil", v, v == nil, ok, err)
	}

	if err := c.Delete(ctx, k, empty, ks.key("never-written")); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, ok, err := c.Get(ctx, k); err != nil || ok {
		t.Fatalf("Get after Delete: ok %v, err %v; want a miss", ok, err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatalf("Delete of no keys: %v", err)
	}

	// SetMany, then read back one by one.
	vals := map[string][]byte{ks.key("a"): []byte("A"), ks.key("b"): []byte("B"), ks.key("c"): []byte("C")}
	if err := c.SetMany(ctx, vals); err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	for k, want := range vals {
		if v, ok, err := c.Get(ctx, k); err != nil || !ok || !bytes.Equal(v, want) {
			t.Errorf("Get(%s) = %q, %v, %v; want %q", k, v, ok, err, want)
		}
	}
	if err := c.SetMany(ctx, nil); err != nil {
		t.Fatalf("SetMany of nothing: %v", err)
	}
}

func TestKeysChecked(t *testing.T) {
	c := newCache(t, ssdb.Config{})
	ctx := ctxT(t)
	long := strings.Repeat("k", ssdb.MaxKeyLen+1)
	if _, _, err := c.Get(ctx, ""); err == nil {
		t.Error("Get of an empty key: no error")
	}
	if err := c.Set(ctx, long, []byte("v")); err == nil {
		t.Errorf("Set of a %d-byte key: no error", len(long))
	}
	if _, err := c.MGet(ctx, []string{"ok", ""}); err == nil {
		t.Error("MGet with an empty key: no error")
	}
	if err := c.SetMany(ctx, map[string][]byte{long: nil}); err == nil {
		t.Error("SetMany with a long key: no error")
	}
}

func TestMGetHitsAndMissesInOrder(t *testing.T) {
	c := newCache(t, ssdb.Config{})
	ks := newKeyspace(t)
	ctx := ctxT(t)
	k := make([]string, 6)
	for i := range k {
		k[i] = ks.key(time.Date(2026, 3, 1+i, 0, 0, 0, 0, time.UTC).Format("2006-01-02") + ".ndjson.gz")
	}
	if err := c.SetMany(ctx, map[string][]byte{k[1]: []byte("one"), k[3]: []byte("three"), k[4]: {}}); err != nil {
		t.Fatal(err)
	}
	// Misses at the start, middle and end, a repeated key and an empty value.
	keys := []string{k[0], k[1], k[2], k[3], k[4], k[5], k[1]}
	got, err := c.MGet(ctx, keys)
	if err != nil {
		t.Fatalf("MGet: %v", err)
	}
	want := [][]byte{nil, []byte("one"), nil, []byte("three"), {}, nil, []byte("one")}
	if len(got) != len(want) {
		t.Fatalf("MGet returned %d values for %d keys", len(got), len(keys))
	}
	for i := range want {
		if (got[i] == nil) != (want[i] == nil) || !bytes.Equal(got[i], want[i]) {
			t.Errorf("MGet[%d] (%s) = %q (nil %v); want %q (nil %v)", i, keys[i], got[i], got[i] == nil, want[i], want[i] == nil)
		}
	}
	if got, err := c.MGet(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("MGet of no keys = %v, %v; want empty, nil", got, err)
	}
}

// TestMGetIsOneRoundTrip checks on the wire that MGet sends one MGET, and
// SetMany one pipeline of SETEX (not MSET, not SET EX).
func TestMGetIsOneRoundTrip(t *testing.T) {
	rec := newRecorder(t)
	c := newCache(t, ssdb.Config{URL: rec.url()})
	ks := newKeyspace(t)
	ctx := ctxT(t)
	vals := map[string][]byte{}
	var keys []string
	for _, d := range []string{"01", "02", "03", "04", "05"} {
		k := ks.key("2026-04-" + d + ".ndjson.gz")
		keys = append(keys, k)
		vals[k] = []byte("day " + d)
	}
	if err := c.SetMany(ctx, vals); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MGet(ctx, append(keys, ks.key("missing"))); err != nil {
		t.Fatal(err)
	}
	want := []string{"setex", "setex", "setex", "setex", "setex", "mget"}
	if got := rec.names(); !slices.Equal(got, want) {
		t.Fatalf("commands on the wire = %v; want %v", got, want)
	}
	for _, cmd := range rec.commands()[:5] {
		if len(cmd) != 4 {
			t.Errorf("SETEX with %d arguments: %q", len(cmd)-1, cmd)
		}
	}
	if n := len(rec.commands()[5]) - 1; n != 6 {
		t.Errorf("MGET carried %d keys; want 6", n)
	}
}

// TestTTLIsSet reads the TTL back with the TTL command through a separate
// client: a value written with SET ... EX would have one on Redis but none on
// SSDB, so this is also the check that SETEX is what the cache sends (the
// wire tests check the command itself).
func TestTTLIsSet(t *testing.T) {
	raw := rawClient(t)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"default", 0, ssdb.DefaultTTL},
		{"configured", 90 * time.Second, 90 * time.Second},
		{"whole seconds", 2*time.Minute + 500*time.Millisecond, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, ssdb.Config{TTL: tc.ttl})
			ks := newKeyspace(t)
			one, many1, many2 := ks.key("one"), ks.key("many1"), ks.key("many2")
			if err := c.Set(ctx, one, []byte("v")); err != nil {
				t.Fatal(err)
			}
			if err := c.SetMany(ctx, map[string][]byte{many1: []byte("v1"), many2: []byte("v2")}); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{one, many1, many2} {
				got, err := raw.TTL(ctx, k).Result()
				if err != nil {
					t.Fatalf("TTL %s: %v", k, err)
				}
				// TTL answers whole seconds; allow a few for a slow run.
				if got > tc.want || got < tc.want-5*time.Second {
					t.Errorf("TTL of %s = %s; want within 5s below %s", k, got, tc.want)
				}
			}
			// Rewriting a value restarts its TTL.
			if tc.ttl == 90*time.Second {
				if err := raw.Expire(ctx, one, 10*time.Second).Err(); err != nil {
					t.Fatal(err)
				}
				if err := c.Set(ctx, one, []byte("v")); err != nil {
					t.Fatal(err)
				}
				if got, _ := raw.TTL(ctx, one).Result(); got < 85*time.Second {
					t.Errorf("TTL after rewrite = %s; want about 90s", got)
				}
			}
		})
	}
}

// TestBinaryValues stores gzip-like binary values: every byte value, CR LF
// and NUL included, in a 50 KB value (the size DESIGN.md says SSDB handles).
func TestBinaryValues(t *testing.T) {
	c := newCache(t, ssdb.Config{})
	ks := newKeyspace(t)
	ctx := ctxT(t)

	seq := make([]byte, 50*1024)
	for i := range seq {
		seq[i] = byte(i)
	}
	shuffled := bytes.Clone(seq)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	gzipHeader := append([]byte{0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff}, shuffled[:1000]...)
	values := map[string][]byte{
		ks.key("seq"):      seq,
		ks.key("shuffled"): shuffled,
		ks.key("crlf"):     []byte("\r\n$5\r\n*1\r\n\x00\r\n-ERR\r\n"),
		ks.key("gzip"):     gzipHeader,
	}
	for _, b := range [][]byte{seq, shuffled} {
		var seen [256]bool
		for _, x := range b {
			seen[x] = true
		}
		for v, ok := range seen {
			if !ok {
				t.Fatalf("test value lacks byte %#x", v)
			}
		}
	}

	// One at a time with Set and Get ...
	for k, v := range values {
		if err := c.Set(ctx, k, v); err != nil {
			t.Fatalf("Set %s (%d bytes): %v", k, len(v), err)
		}
		got, ok, err := c.Get(ctx, k)
		if err != nil || !ok || !bytes.Equal(got, v) {
			t.Fatalf("Get %s: %d bytes, ok %v, err %v; want the %d bytes written", k, len(got), ok, err, len(v))
		}
	}
	if err := c.Delete(ctx, ks.keys...); err != nil {
		t.Fatal(err)
	}
	// ... and all at once with SetMany and MGet.
	if err := c.SetMany(ctx, values); err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	got, err := c.MGet(ctx, keys)
	if err != nil {
		t.Fatalf("MGet: %v", err)
	}
	for i, k := range keys {
		if !bytes.Equal(got[i], values[k]) {
			t.Errorf("MGet %s: %d bytes differ from the %d written", k, len(got[i]), len(values[k]))
		}
	}
}

func TestDatabaseOtherThanZeroRefused(t *testing.T) {
	addr := cacheAddr(t)
	for _, u := range []string{"redis://" + addr + "/1", "redis://:secret@" + addr + "/15"} {
		_, err := ssdb.New(ssdb.Config{URL: u})
		if !errors.Is(err, ssdb.ErrDatabase) {
			t.Errorf("New with a URL selecting a database other than 0: err %v; want ErrDatabase", err)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("error quotes the password: %v", err)
		}
	}
	for _, u := range []string{"redis://" + addr + "/0", "redis://" + addr, "redis://" + addr + "/"} {
		c, err := ssdb.New(ssdb.Config{URL: u})
		if err != nil {
			t.Errorf("New with %s: %v", u, err)
			continue
		}
		if err := c.Ping(ctxT(t)); err != nil {
			t.Errorf("Ping with %s: %v", u, err)
		}
		c.Close()
	}

	t.Setenv(ssdb.EnvURL, "redis://:secret@"+addr+"/3")
	_, err := ssdb.ConfigFromEnv()
	if !errors.Is(err, ssdb.ErrDatabase) || !strings.Contains(err.Error(), ssdb.EnvURL) {
		t.Errorf("ConfigFromEnv with database 3: err %v; want ErrDatabase naming %s", err, ssdb.EnvURL)
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("error quotes the password: %v", err)
	}
}

func TestConfig(t *testing.T) {
	addr := cacheAddr(t)
	// URLs that would make go-redis leave the subset, or carry settings
	// that belong in Config.
	for _, u := range []string{
		"redis://user:pw@" + addr + "/0",              // AUTH user password (ACL form)
		"redis://" + addr + "/0?client_name=heartlog", // CLIENT SETNAME
		"redis://" + addr + "/0?protocol=3",           // HELLO 3
		"redis://" + addr + "/0?dial_timeout=1s",
		"http://" + addr,
		"://",
	} {
		if _, err := ssdb.New(ssdb.Config{URL: u}); err == nil {
			t.Errorf("New(%q): no error", u)
		}
	}
	for _, cfg := range []ssdb.Config{
		{TTL: 500 * time.Millisecond},
		{TTL: -time.Hour},
		{ReadTimeout: -1},
		{WriteTimeout: -2},
		{DialTimeout: -time.Second},
		{PoolSize: -1},
	} {
		cfg.URL = "redis://" + addr + "/0"
		if _, err := ssdb.New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}

	t.Setenv(ssdb.EnvURL, "redis://"+addr+"/0")
	t.Setenv(ssdb.EnvTTL, "")
	cfg, err := ssdb.ConfigFromEnv()
	if err != nil || cfg.URL != "redis://"+addr+"/0" || cfg.TTL != 0 {
		t.Errorf("ConfigFromEnv = %+v, %v", cfg, err)
	}
	c := newCache(t, cfg)
	if c.TTL() != ssdb.DefaultTTL {
		t.Errorf("TTL() = %s; want DefaultTTL %s", c.TTL(), ssdb.DefaultTTL)
	}
	t.Setenv(ssdb.EnvTTL, "48h")
	if cfg, err := ssdb.ConfigFromEnv(); err != nil || cfg.TTL != 48*time.Hour {
		t.Errorf("ConfigFromEnv with %s=48h = %+v, %v", ssdb.EnvTTL, cfg, err)
	}
	for _, bad := range []string{"30d", "soon", "100ms", "-1h"} {
		t.Setenv(ssdb.EnvTTL, bad)
		if _, err := ssdb.ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), ssdb.EnvTTL) {
			t.Errorf("ConfigFromEnv with %s=%s: err %v; want one naming the variable", ssdb.EnvTTL, bad, err)
		}
	}
	t.Setenv(ssdb.EnvTTL, "")
	t.Setenv(ssdb.EnvURL, "")
	if cfg, err := ssdb.ConfigFromEnv(); err != nil || cfg.URL != ssdb.DefaultURL {
		t.Errorf("ConfigFromEnv with no URL = %+v, %v; want DefaultURL", cfg, err)
	}
}

// TestGuardRefusesOutsideSubset sends, through the Cache's own guarded
// client, commands SSDB gets wrong or lacks, and checks on the wire (a
// recording proxy in front of Redis) that none of them left the process.
func TestGuardRefusesOutsideSubset(t *testing.T) {
	rec := newRecorder(t)
	c := newCache(t, ssdb.Config{URL: rec.url()})
	rdb := ssdb.RawClient(c)
	ks := newKeyspace(t)
	raw := rawClient(t)
	ctx := ctxT(t)

	setEX, setNX, tx, hash := ks.key("set-ex"), ks.key("set-nx"), ks.key("tx"), ks.key("hash")
	refusedBefore := metric(t, "heartlog_cache_refused_commands_total", "command", "set")
	refused := []struct {
		name string
		run  func() error
	}{
		{"SET key value EX 10", func() error { return rdb.Set(ctx, setEX, "v", 10*time.Second).Err() }},
		{"SET key value EX 10 (Do)", func() error { return rdb.Do(ctx, "SET", setEX, "v", "EX", "10").Err() }},
		{"SET key value NX", func() error { return rdb.SetNX(ctx, setNX, "v", 0).Err() }},
		{"SET key value PX 100 NX", func() error { return rdb.SetNX(ctx, setNX, "v", 100*time.Millisecond).Err() }},
		{"EVAL", func() error { return rdb.Eval(ctx, "return redis.call('SET', KEYS[1], 'v')", []string{setEX}).Err() }},
		{"EVALSHA", func() error {
			return rdb.EvalSha(ctx, "0123456789abcdef0123456789abcdef01234567", []string{setEX}).Err()
		}},
		{"MULTI/EXEC", func() error {
			_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.SetEx(ctx, tx, "v", time.Minute) // allowed alone, not in a transaction
				return nil
			})
			return err
		}},
		{"pipeline with one bad command", func() error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.SetEx(ctx, tx, "v", time.Minute)
				p.Set(ctx, setEX, "v", time.Minute)
				return nil
			})
			return err
		}},
		{"multi-field HSET", func() error { return rdb.HSet(ctx, hash, "a", "1", "b", "2").Err() }},
		{"SELECT 1", func() error { return rdb.Do(ctx, "select", 1).Err() }},
		{"EXPIRE NX", func() error { return rdb.ExpireNX(ctx, setEX, time.Minute).Err() }},
		{"CLIENT SETNAME", func() error { return rdb.Do(ctx, "client", "setname", "x").Err() }},
		{"CLIENT SETINFO", func() error { return rdb.Do(ctx, "client", "setinfo", "lib-name", "x").Err() }},
		{"AUTH user password", func() error { return rdb.Do(ctx, "auth", "user", "pw").Err() }},
		{"KEYS", func() error { return rdb.Keys(ctx, "*").Err() }},
		{"FLUSHDB", func() error { return rdb.FlushDB(ctx).Err() }},
	}
	for _, r := range refused {
		if err := r.run(); !isNotInSubset(err) {
			t.Errorf("%s: err %v; want ErrNotInSubset", r.name, err)
		}
	}
	if got := rec.commands(); len(got) != 0 {
		t.Fatalf("refused commands reached the server: %q", got)
	}
	for _, k := range []string{setEX, setNX, tx, hash} {
		if v, err := raw.Get(ctx, k).Result(); !errors.Is(err, redis.Nil) {
			t.Errorf("key %s exists (%q, %v) after its command was refused", k, v, err)
		}
	}
	if d := metric(t, "heartlog_cache_refused_commands_total", "command", "set") - refusedBefore; d < 3 {
		t.Errorf("refused SET counted %v times; want at least 3", d)
	}

	// The subset itself goes through, options-free SET and EXPIRE included.
	plain := ks.key("plain")
	if err := rdb.Set(ctx, plain, "v", 0).Err(); err != nil {
		t.Fatalf("plain SET: %v", err)
	}
	if err := rdb.Expire(ctx, plain, time.Minute).Err(); err != nil {
		t.Fatalf("EXPIRE: %v", err)
	}
	counter := ks.key("counter")
	if n, err := rdb.Incr(ctx, counter).Result(); err != nil || n != 1 {
		t.Fatalf("INCR = %d, %v", n, err)
	}
	if err := rdb.MSet(ctx, ks.key("m1"), "1", ks.key("m2"), "2").Err(); err != nil {
		t.Fatalf("MSET: %v", err)
	}
	if d, err := rdb.TTL(ctx, plain).Result(); err != nil || d <= 0 {
		t.Fatalf("TTL = %s, %v", d, err)
	}
	want := []string{"set", "expire", "incr", "mset", "ttl"}
	if got := rec.names(); !slices.Equal(got, want) {
		t.Fatalf("commands on the wire = %v; want %v", got, want)
	}
}

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		args []any
		ok   bool
	}{
		{[]any{"get", "k"}, true},
		{[]any{"GET", "k"}, true},
		{[]any{"set", "k", "v"}, true},
		{[]any{"set", "k", "v", "ex", 10}, false},
		{[]any{"set", "k", "v", "nx"}, false},
		{[]any{"set", "k", "v", "keepttl"}, false},
		{[]any{"setex", "k", 10, "v"}, true},
		{[]any{"mget", "a", "b", "c"}, true},
		{[]any{"mget"}, false},
		{[]any{"mset", "a", "1", "b", "2"}, true},
		{[]any{"mset", "a", "1", "b"}, false},
		{[]any{"del", "a", "b"}, true},
		{[]any{"expire", "k", 10}, true},
		{[]any{"expire", "k", 10, "nx"}, false},
		{[]any{"ttl", "k"}, true},
		{[]any{"incr", "k"}, true},
		{[]any{"incrby", "k", 2}, false},
		{[]any{"ping"}, true},
		{[]any{"auth", "pw"}, true},
		{[]any{"auth", "user", "pw"}, false},
		{[]any{"hello", 2}, false},
		{[]any{"hset", "h", "f", "v"}, false},
		{[]any{"select", 0}, false},
		{[]any{"multi"}, false},
		{[]any{"exec"}, false},
		{[]any{"eval", "return 1", 0}, false},
		{[]any{"client", "setinfo", "lib-name", "x"}, false},
		{nil, false},
	} {
		err := ssdb.Allowed(tc.args)
		if tc.ok && err != nil {
			t.Errorf("Allowed(%v) = %v; want nil", tc.args, err)
		}
		if !tc.ok && !isNotInSubset(err) {
			t.Errorf("Allowed(%v) = %v; want ErrNotInSubset", tc.args, err)
		}
	}
}

// TestHandshake checks what a new connection sends before the first command:
// nothing at all without a password (no HELLO, no CLIENT SETINFO or SETNAME,
// no SELECT), and only AUTH password with one.
func TestHandshake(t *testing.T) {
	rec := newRecorder(t)
	c := newCache(t, ssdb.Config{URL: rec.url()})
	ks := newKeyspace(t)
	ctx := ctxT(t)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	k := ks.key("k")
	if err := c.Set(ctx, k, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MGet(ctx, []string{k, ks.key("x")}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetMany(ctx, map[string][]byte{k: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	want := []string{"ping", "setex", "get", "mget", "setex", "del"}
	if got := rec.names(); !slices.Equal(got, want) {
		t.Fatalf("commands on the wire = %v; want exactly %v", got, want)
	}

	// With a password the handshake is AUTH password (RESP2 style), which
	// the stack's Redis, having none, refuses; nothing else is sent.
	rec2 := newRecorder(t)
	c2 := newCache(t, ssdb.Config{URL: "redis://:not-the-password@" + rec2.addr + "/0"})
	err := c2.Ping(ctx)
	if err == nil {
		t.Fatal("Ping with a password the server does not have: no error")
	}
	got := rec2.commands()
	if len(got) == 0 || got[0][0] != "auth" || len(got[0]) != 2 {
		t.Fatalf("handshake with a password = %q; want AUTH <password> first", got)
	}
	for _, cmd := range got {
		if cmd[0] != "auth" {
			t.Errorf("handshake with a password sent %q; want only AUTH", cmd)
		}
	}
}

// TestGoRedisSendsHelloWithoutGuard is why Guard answers HELLO itself:
// go-redis v9 sends HELLO on every new connection even with Protocol: 2 and
// DisableIdentity (it only skips CLIENT SETINFO). If this test starts to fail
// after a go-redis upgrade, the guard's HELLO answer may no longer be needed.
func TestGoRedisSendsHelloWithoutGuard(t *testing.T) {
	rec := newRecorder(t)
	rdb := redis.NewClient(&redis.Options{Addr: rec.addr, Protocol: 2, DisableIdentity: true})
	defer rdb.Close()
	if err := rdb.Ping(ctxT(t)).Err(); err != nil {
		t.Fatal(err)
	}
	got := rec.commands()
	if len(got) != 2 || !slices.Equal(got[0], []string{"hello", "2"}) || got[1][0] != "ping" {
		t.Fatalf("unguarded go-redis, Protocol 2, DisableIdentity: sent %q; want HELLO 2, PING", got)
	}
}

// TestUnreachable points the cache at a closed port and at a server that
// never answers: every call fails, within the configured timeouts.
func TestUnreachable(t *testing.T) {
	cfg := ssdb.Config{DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	// One try and one retry, each at most a dial plus a read and a write
	// timeout, plus backoff: well under 3s.
	const bound = 3 * time.Second
	calls := func(c *ssdb.Cache) map[string]func(context.Context) error {
		return map[string]func(context.Context) error{
			"Ping": c.Ping,
			"Get": func(ctx context.Context) error {
				_, ok, err := c.Get(ctx, "k")
				if ok {
					t.Error("Get: a hit from an unreachable server")
				}
				return err
			},
			"MGet":    func(ctx context.Context) error { _, err := c.MGet(ctx, []string{"a", "b"}); return err },
			"Set":     func(ctx context.Context) error { return c.Set(ctx, "k", []byte("v")) },
			"SetMany": func(ctx context.Context) error { return c.SetMany(ctx, map[string][]byte{"a": nil, "b": nil}) },
			"Delete":  func(ctx context.Context) error { return c.Delete(ctx, "k") },
		}
	}
	for _, tc := range []struct{ name, addr string }{
		{"closed port", closedAddr(t)},
		{"silent server", silentAddr(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfg
			cfg.URL = "redis://" + tc.addr + "/0"
			c := newCache(t, cfg)
			errsBefore := metric(t, "heartlog_cache_errors_total", "command", "get")
			for name, call := range calls(c) {
				start := time.Now()
				err := call(context.Background()) // no deadline: the timeouts alone bound it
				took := time.Since(start)
				if err == nil {
					t.Errorf("%s: no error", name)
				}
				if took > bound {
					t.Errorf("%s took %s; want under %s", name, took, bound)
				}
				t.Logf("%s: %s: %v", name, took.Round(time.Millisecond), err)
			}
			if d := metric(t, "heartlog_cache_errors_total", "command", "get") - errsBefore; d != 1 {
				t.Errorf("errors counted for the failed GET: %v; want 1", d)
			}
		})
	}

	// A caller's deadline shorter than the timeouts wins.
	t.Run("context deadline", func(t *testing.T) {
		c := newCache(t, ssdb.Config{URL: "redis://" + silentAddr(t) + "/0", ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := c.Get(ctx, "k")
		if err == nil {
			t.Fatal("Get from a silent server: no error")
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Get with a 200ms deadline took %s", took)
		}
	})
}

func TestMetrics(t *testing.T) {
	c := newCache(t, ssdb.Config{})
	ks := newKeyspace(t)
	ctx := ctxT(t)
	read := func() [5]float64 {
		return [5]float64{
			metric(t, "heartlog_cache_hits_total"),
			metric(t, "heartlog_cache_misses_total"),
			metric(t, "heartlog_cache_sets_total"),
			metric(t, "heartlog_cache_command_seconds", "command", "mget"),
			metric(t, "heartlog_cache_command_seconds", "command", "setex_pipeline"),
		}
	}
	before := read()
	a, b := ks.key("a"), ks.key("b")
	if err := c.SetMany(ctx, map[string][]byte{a: []byte("1"), b: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, a, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MGet(ctx, []string{a, b, ks.key("c")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, ks.key("d")); err != nil {
		t.Fatal(err)
	}
	after := read()
	want := [5]float64{2, 2, 3, 1, 1}
	for i, name := range []string{"hits", "misses", "sets", "mget observations", "setex_pipeline observations"} {
		if d := after[i] - before[i]; d != want[i] {
			t.Errorf("%s went up by %v; want %v", name, d, want[i])
		}
	}
}

// TestApplyInOrder checks that Apply sends its DELs and SETEXs as one
// pipeline, in the order given, and that they take effect.
func TestApplyInOrder(t *testing.T) {
	rec := newRecorder(t)
	c := newCache(t, ssdb.Config{URL: rec.url()})
	ks := newKeyspace(t)
	ctx := ctxT(t)
	a, b := ks.key("2026-04-01.digest.v1"), ks.key("2026-04-01.ndjson.gz")
	if err := c.Set(ctx, a, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, []ssdb.Op{{Key: a, Delete: true}, {Key: b, Value: []byte("file")}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, nil); err != nil {
		t.Fatalf("Apply of nothing: %v", err)
	}
	got, err := c.MGet(ctx, []string{a, b})
	if err != nil || got[0] != nil || string(got[1]) != "file" {
		t.Fatalf("after Apply: %q, %v; want a deleted, b = file", got, err)
	}
	want := []string{"setex", "del", "setex", "mget"}
	if got := rec.names(); !slices.Equal(got, want) {
		t.Fatalf("commands on the wire = %v; want %v", got, want)
	}
	if err := c.Apply(ctx, []ssdb.Op{{Key: ""}}); err == nil {
		t.Error("Apply with an empty key: no error")
	}
}

// TestExecCountsUp checks that an Incr op is INCR then EXPIRE with the
// cache's TTL (a counter lives as long as what it counts), in the order
// given, and that Exec returns what each counted up to.
func TestExecCountsUp(t *testing.T) {
	rec := newRecorder(t)
	c := newCache(t, ssdb.Config{URL: rec.url(), TTL: 90 * time.Second})
	ks := newKeyspace(t)
	ctx := ctxT(t)
	file, gen := ks.key("2026-04-01.ndjson.gz"), ks.key("2026-04-01.gen")
	for want := int64(1); want <= 2; want++ {
		counts, err := c.Exec(ctx, []ssdb.Op{{Key: file, Value: []byte("file")}, {Key: gen, Incr: true}})
		if err != nil || len(counts) != 1 || counts[0] != want {
			t.Fatalf("Exec: %v, %v; want [%d]", counts, err, want)
		}
	}
	if got, err := rawClient(t).TTL(ctx, gen).Result(); err != nil || got > 90*time.Second || got < 85*time.Second {
		t.Fatalf("TTL of the counter = %s (%v); want about 90s", got, err)
	}
	want := []string{"setex", "incr", "expire", "setex", "incr", "expire"}
	if got := rec.names(); !slices.Equal(got, want) {
		t.Fatalf("commands on the wire = %v; want %v", got, want)
	}
}
