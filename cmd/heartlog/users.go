package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"heartlog/streams"
	"heartlog/users"
)

func usersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Create, change, list and delete users",
		Long: `Create, change, list and delete users. Postgres holds the users; every change is
also written to the NATS KV bucket "users" that the API authenticates from,
before it commits, so these commands need NATS and Postgres both.`,
	}
	cmd.AddCommand(usersCreateCmd(), usersUpdateCmd(), usersListCmd(), usersSyncCmd(), usersDeleteCmd())
	return cmd
}

// withUsers runs f on the users in Postgres with their mirror in NATS.
func withUsers(cmd *cobra.Command, f func(ctx context.Context, store *users.Store) error) error {
	store, done, err := openUsers(cmd.Context())
	if err != nil {
		return err
	}
	defer done()
	return f(cmd.Context(), store)
}

// openUsers opens the users in Postgres with their mirror in NATS; close
// releases both.
func openUsers(ctx context.Context) (*users.Store, func(), error) {
	cfg, log, err := loadConfig()
	if err != nil {
		return nil, nil, err
	}
	nc, js, err := connectNATS(cfg, "users", log)
	if err != nil {
		return nil, nil, err
	}
	ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sc := streamConfig(cfg)
	var m *users.Mirror
	if err = streams.Ensure(ensureCtx, js, sc); err == nil {
		m, err = users.OpenMirror(ensureCtx, js, sc.UsersBucket)
	}
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	pool, err := openPostgres(ctx, cfg, log)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return users.NewStore(pool, m), func() { pool.Close(); _ = nc.Drain() }, nil
}

func usersCreateCmd() *cobra.Command {
	var n users.NewUser
	cmd := &cobra.Command{
		Use:   "create --name NAME [--timezone TZ] [--api-key KEY]",
		Short: "Create a user and print its API key",
		Long: `Create a user and print its new API key, alone on stdout, so that a script
can capture it:

  key=$(heartlog users create --name alice --timezone Europe/Berlin)

The key is shown only this once: heartlog stores a hash of it. Put it in
~/.wakatime.cfg as api_key. With --api-key, import a key the user already
has (a UUID v4, optionally waka_-prefixed) instead of generating one.
When the command returns, the key works, even if Postgres stops then.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withUsers(cmd, func(ctx context.Context, store *users.Store) error {
				u, key, err := store.Create(ctx, n)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "created user %s (%s, time zone %s)\n", u.Name, u.ID, u.TimeZone)
				fmt.Println(key)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&n.Name, "name", "", "display name (required)")
	cmd.Flags().StringVar(&n.TimeZone, "timezone", "UTC", "IANA time zone the user's days are counted in")
	cmd.Flags().StringVar(&n.APIKey, "api-key", "", "import this API key instead of generating one")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func usersUpdateCmd() *cobra.Command {
	var name, tz string
	var timeout int
	var newKey bool
	cmd := &cobra.Command{
		Use:   "update ID [--name NAME] [--timezone TZ] [--timeout MINUTES] [--new-key]",
		Short: "Change a user; --new-key prints a new API key and revokes the old one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c users.Change
			if cmd.Flags().Changed("name") {
				c.Name = &name
			}
			if cmd.Flags().Changed("timezone") {
				c.TimeZone = &tz
			}
			if cmd.Flags().Changed("timeout") {
				c.TimeoutMinutes = &timeout
			}
			return withUsers(cmd, func(ctx context.Context, store *users.Store) error {
				u, err := store.Update(ctx, args[0], c)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "updated user %s (%s, time zone %s, timeout %d min)\n", u.Name, u.ID, u.TimeZone, u.TimeoutMinutes)
				if newKey {
					key, err := store.RotateKey(ctx, u.ID, "")
					if err != nil {
						return err
					}
					fmt.Println(key)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new display name")
	cmd.Flags().StringVar(&tz, "timezone", "", "new IANA time zone")
	cmd.Flags().IntVar(&timeout, "timeout", 15, "new timeout in minutes (1 to 60)")
	cmd.Flags().BoolVar(&newKey, "new-key", false, "issue a new API key (printed on stdout); the old one stops working")
	return cmd
}

func usersSyncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync",
		Short: "Make the NATS users bucket equal to the users table",
		Long: `Write every user's record to the NATS KV bucket "users" where it is missing or
differs, and delete the records of users that no longer exist. serve, process
and dev do this at start; run it after restoring Postgres or losing the bucket.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withUsers(cmd, func(ctx context.Context, store *users.Store) error {
				s, err := store.Sync(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "users bucket synced: %d written, %d deleted, %d unchanged\n", s.Written, s.Deleted, s.Unchanged)
				return nil
			})
		},
	}
}

func usersListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users (never their keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			pool, err := openPostgres(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer pool.Close()
			all, err := users.NewStore(pool, nil).List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tTIME ZONE\tCREATED")
			for _, u := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.ID, u.Name, u.TimeZone, u.CreatedAt.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
}
