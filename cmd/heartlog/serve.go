package main

import (
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"heartlog/admin"
)

func serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the API: WakaTime-compatible routes and Connect services",
		Long: `Run the HTTP API on HEARTLOG_HTTP_ADDR: the WakaTime routes under /api/v1
and /api/compat/wakatime/v1, the Connect IngestService and StatsService
(Connect, gRPC and gRPC-Web), /livez and /readyz. /metrics and /debug/pprof/
are on HEARTLOG_ADMIN_ADDR, never on the public address.

Needs a reachable NATS (HEARTLOG_NATS_URL): API keys are checked against its
"users" KV bucket and heartbeats are stored in its stream. Postgres
(HEARTLOG_POSTGRES_URL) serves reads of hot days; serve starts and ingests
without it, and migrates and syncs the users bucket once it is back.
Run as many instances as you like behind a load balancer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			adm, err := admin.Listen(cfg.AdminAddr, log)
			if err != nil {
				return err
			}
			defer adm.Close()
			rt, err := startRuntime(cmd.Context(), cfg, log, "serve")
			if err != nil {
				return err
			}
			defer rt.close()
			return rt.serve(cmd.Context())
		},
	}
}

func processCmd() *cobra.Command {
	var only []string
	var noJanitor bool
	cmd := &cobra.Command{
		Use:   "process",
		Short: "Run the stream processors that project the log into the stores",
		Long: `Run the durable stream processors named by HEARTLOG_PROCESSORS (or --only).
Each acks a message only after its store has committed it, so a processor
can be killed at any moment and restarted without losing or duplicating
anything.

It also runs the shard janitor (unless --no-janitor): every
HEARTLOG_SHARDS_INTERVAL, the instance that gets the cluster-wide lock drops
the Postgres day partitions that ended more than HEARTLOG_SHARDS_GRACE ago and
that the objects and cache processors have all of.

Its metrics and /debug/pprof/ are on HEARTLOG_ADMIN_ADDR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			if len(only) > 0 {
				cfg.Processors = only
			}
			adm, err := admin.Listen(cfg.AdminAddr, log)
			if err != nil {
				return err
			}
			defer adm.Close()
			rt, err := startRuntime(cmd.Context(), cfg, log, "process")
			if err != nil {
				return err
			}
			defer rt.close()
			rt.noJanitor = noJanitor
			return rt.process(cmd.Context(), cfg.Processors)
		},
	}
	cmd.Flags().StringSliceVar(&only, "only", nil, "processors to run instead of HEARTLOG_PROCESSORS (e.g. postgres)")
	cmd.Flags().BoolVar(&noJanitor, "no-janitor", false, "do not run the shard janitor in this instance")
	return cmd
}

// serveAndProcess runs the API and the processors in one process.
func serveAndProcess(cmd *cobra.Command, rt *runtime) error {
	g, ctx := errgroup.WithContext(cmd.Context())
	g.Go(func() error { return rt.serve(ctx) })
	g.Go(func() error { return rt.process(ctx, rt.cfg.Processors) })
	return g.Wait()
}
