package health

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"heartlog/objstore"
	"heartlog/ssdb"
)

// NATS is connected. Without it nothing is ingested, and no API key can
// be checked for long (users.DirectoryOptions.MaxStale).
func NATS(nc *nats.Conn) Check {
	return Check{Name: "nats", Needed: []Capability{Ingest, HotReads, OlderReads}, Probe: func(context.Context) error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("NATS connection is %s", st)
		}
		return nil
	}}
}

// Stream answers: the heartbeats stream that ingest publishes to.
func Stream(js jetstream.JetStream, name string) Check {
	return Check{Name: "stream", Needed: []Capability{Ingest}, Probe: func(ctx context.Context) error {
		_, err := js.Stream(ctx, name)
		return err
	}}
}

// Users answers: the KV bucket every request is authenticated from.
func Users(js jetstream.JetStream, bucket string) Check {
	return Check{Name: "users", Needed: []Capability{Ingest, HotReads, OlderReads}, Probe: func(ctx context.Context) error {
		_, err := js.KeyValue(ctx, bucket)
		return err
	}}
}

// Postgres answers a ping: the catalog database, which holds the users and
// the placement of days (and the hot days themselves without shard
// databases).
func Postgres(pool *pgxpool.Pool) Check {
	return Check{Name: "postgres", Needed: []Capability{HotReads}, Probe: pool.Ping}
}

// PostgresShard answers a ping: shard database n (1-based, in the order of
// HEARTLOG_POSTGRES_SHARD_URLS), which holds some of the hot days. The
// report names it by number, not by host: /readyz is public.
func PostgresShard(n int, pool *pgxpool.Pool) Check {
	return Check{Name: fmt.Sprintf("postgres-shard-%d", n), Needed: []Capability{HotReads}, Probe: pool.Ping}
}

var errNotMigrated = errors.New("not migrated yet (it was down at start; its migration is retried)")

// Cache (SSDB) answers a PING. Reads of older days fall back to S3
// without it, slower.
func Cache(c *ssdb.Cache) Check {
	return Check{Name: "cache", Needed: []Capability{OlderReads}, Probe: c.Ping}
}

// probeKey is an object that never exists: a GET of it that answers "not
// found" proves the bucket is reachable and the credentials good.
const probeKey = "_heartlog/readyz-probe"

// S3 answers: the primary bucket holds the day files of older days.
func S3(b objstore.Bucket) Check {
	return Check{Name: "s3", Needed: []Capability{OlderReads}, Probe: func(ctx context.Context) error {
		_, _, err := b.Get(ctx, probeKey)
		if err == nil || errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		return err
	}}
}

// Deps are what `heartlog serve` depends on; Checks leaves out what is nil
// or empty.
type Deps struct {
	NATS        *nats.Conn
	JetStream   jetstream.JetStream
	Stream      string
	UsersBucket string
	Postgres    *pgxpool.Pool
	// PostgresShards are the shard databases, in list order.
	PostgresShards []*pgxpool.Pool
	// ShardMigrated, if set, tells whether shard i (0-based, of
	// PostgresShards) has its migrations applied: one that has not (it
	// was down at start) is reported down even once it answers, since
	// nothing is written to or read from it until it is migrated.
	ShardMigrated func(i int) bool
	Cache         *ssdb.Cache
	S3            objstore.Bucket
}

// Checks are the checks of d, in report order.
func (d Deps) Checks() []Check {
	var out []Check
	if d.NATS != nil {
		out = append(out, NATS(d.NATS))
	}
	if d.JetStream != nil && d.Stream != "" {
		out = append(out, Stream(d.JetStream, d.Stream))
	}
	if d.JetStream != nil && d.UsersBucket != "" {
		out = append(out, Users(d.JetStream, d.UsersBucket))
	}
	if d.Postgres != nil {
		out = append(out, Postgres(d.Postgres))
	}
	for i, p := range d.PostgresShards {
		c := PostgresShard(i+1, p)
		if migrated := d.ShardMigrated; migrated != nil {
			ping := c.Probe
			c.Probe = func(ctx context.Context) error {
				if !migrated(i) {
					return errNotMigrated
				}
				return ping(ctx)
			}
		}
		out = append(out, c)
	}
	if d.Cache != nil {
		out = append(out, Cache(d.Cache))
	}
	if d.S3 != nil {
		out = append(out, S3(d.S3))
	}
	return out
}
