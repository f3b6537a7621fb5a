package health_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"heartlog/health"
	"heartlog/internal/heartlogtest"
)

// TestShardNotMigratedIsReportedDown: a shard database that answers but
// was not migrated (down at start) is reported unreachable, with reads of
// hot days degraded, until it is migrated.
func TestShardNotMigratedIsReportedDown(t *testing.T) {
	catalog, _ := heartlogtest.NewDatabase(t)
	shard, _ := heartlogtest.NewDatabase(t)
	var migrated atomic.Bool
	deps := health.Deps{Postgres: catalog, PostgresShards: []*pgxpool.Pool{shard},
		ShardMigrated: func(i int) bool { return i == 0 && migrated.Load() }}
	c := health.New(deps.Checks(), health.Options{ReuseFor: time.Nanosecond, Log: zerolog.Nop()})
	ctx := context.Background()
	if r := c.Report(ctx); r.Checks["postgres-shard-1"] != health.Unreachable || r.Checks["postgres"] != health.OK || r.Reads != health.Degraded {
		t.Fatalf("shard up, not migrated: %+v", r)
	}
	migrated.Store(true)
	if r := c.Report(ctx); r.Checks["postgres-shard-1"] != health.OK || r.Status != health.OK {
		t.Fatalf("shard migrated: %+v", r)
	}
}
