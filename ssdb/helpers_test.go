package ssdb_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"heartlog/ssdb"
)

// cacheURL is the Redis (SSDB stand-in) the tests run against. The tests
// need a real server and fail, rather than skip, without one.
func cacheURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(ssdb.EnvURL)
	if u == "" {
		t.Fatalf("%s is not set: the cache tests need the local stack's Redis. "+
			"Run `ops/stack.sh up && . var/env` at the repository root (make test does this), "+
			"or point %s at a Redis or SSDB, database 0.", ssdb.EnvURL, ssdb.EnvURL)
	}
	return u
}

// cacheAddr is host:port of the server cacheURL names.
func cacheAddr(t testing.TB) string {
	t.Helper()
	opt, err := redis.ParseURL(cacheURL(t))
	if err != nil {
		t.Fatalf("%s: %v", ssdb.EnvURL, err)
	}
	return opt.Addr
}

// newCache makes a Cache on the test server (or on url, if given) and closes
// it at the end of the test.
func newCache(t testing.TB, cfg ssdb.Config) *ssdb.Cache {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = cacheURL(t)
	}
	c, err := ssdb.New(cfg)
	if err != nil {
		t.Fatalf("ssdb.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawClient is a go-redis client on the test server that bypasses the Cache
// API, for reading back TTLs and values. It keeps to SSDB's subset too (so
// that a MONITOR during the tests shows only subset commands), through the
// same Guard.
func rawClient(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(cacheURL(t))
	if err != nil {
		t.Fatalf("%s: %v", ssdb.EnvURL, err)
	}
	opt.Protocol = 2
	opt.DisableIdentity = true
	rdb := redis.NewClient(opt)
	rdb.AddHook(ssdb.Guard{})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// keyspace hands out keys under a prefix unique to the test and deletes them
// at the end.
type keyspace struct {
	prefix string
	mu     sync.Mutex
	keys   []string
}

func newKeyspace(t testing.TB) *keyspace {
	t.Helper()
	ks := &keyspace{prefix: fmt.Sprintf("heartlog-cachetest/%s/%d/", t.Name(), time.Now().UnixNano())}
	raw := rawClient(t)
	t.Cleanup(func() {
		ks.mu.Lock()
		defer ks.mu.Unlock()
		if len(ks.keys) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := raw.Del(ctx, ks.keys...).Err(); err != nil {
			t.Errorf("cleanup: DEL %d test keys: %v", len(ks.keys), err)
		}
	})
	return ks
}

func (ks *keyspace) key(name string) string {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	k := ks.prefix + name
	ks.keys = append(ks.keys, k)
	return k
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recorder is a TCP proxy in front of the test server that records every
// command a client sends, as the server would see it (what MONITOR shows,
// but only for this client, and including the commands MONITOR hides).
type recorder struct {
	addr string

	mu    sync.Mutex
	cmds  [][]string
	ln    net.Listener
	conns []net.Conn
}

func newRecorder(t testing.TB) *recorder {
	t.Helper()
	target := cacheAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{addr: ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, up)
			r.mu.Unlock()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
			go r.pump(c, up)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.conns {
			c.Close()
		}
	})
	return r
}

// url is a cache URL that goes through the recorder.
func (r *recorder) url() string { return "redis://" + r.addr + "/0" }

// pump forwards client commands to the server, recording each.
func (r *recorder) pump(c, up net.Conn) {
	defer up.Close()
	br := bufio.NewReader(c)
	for {
		args, raw, err := readCommand(br)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.cmds = append(r.cmds, args)
		r.mu.Unlock()
		if _, err := up.Write(raw); err != nil {
			return
		}
	}
}

// commands is what was recorded: each command's arguments, the name
// lowercased, long arguments cut to 40 bytes.
func (r *recorder) commands() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]string, len(r.cmds))
	copy(out, r.cmds)
	return out
}

// names is the lowercase name of each recorded command.
func (r *recorder) names() []string {
	var out []string
	for _, c := range r.commands() {
		out = append(out, c[0])
	}
	return out
}

// readCommand reads one RESP array of bulk strings (the only form go-redis
// sends) and returns its arguments and its raw bytes.
func readCommand(br *bufio.Reader) ([]string, []byte, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, nil, fmt.Errorf("not a RESP array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimRight(line[1:], "\r\n"))
	if err != nil {
		return nil, nil, err
	}
	raw := []byte(line)
	args := make([]string, 0, n)
	for i := 0; i < n; i++ {
		hdr, err := br.ReadString('\n')
		if err != nil {
			return nil, nil, err
		}
		if !strings.HasPrefix(hdr, "$") {
			return nil, nil, fmt.Errorf("not a bulk string: %q", hdr)
		}
		size, err := strconv.Atoi(strings.TrimRight(hdr[1:], "\r\n"))
		if err != nil {
			return nil, nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, nil, err
		}
		raw = append(raw, hdr...)
		raw = append(raw, buf...)
		arg := string(buf[:size])
		if i == 0 {
			arg = strings.ToLower(arg)
		}
		if len(arg) > 40 {
			arg = arg[:40]
		}
		args = append(args, arg)
	}
	return args, raw, nil
}

// metric is the value of a counter (or the sample count of a histogram) in
// the default registry, for the series with the given label values; 0 if it
// does not exist yet.
func metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
		}
	}
	return 0
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentAddr is a loopback server that accepts connections, reads what it
// is sent and never answers.
func silentAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func isNotInSubset(err error) bool { return errors.Is(err, ssdb.ErrNotInSubset) }
