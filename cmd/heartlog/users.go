package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"heartlog/users"
)

func usersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Create and list users",
	}
	cmd.AddCommand(usersCreateCmd(), usersListCmd())
	return cmd
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
has (a UUID v4, optionally waka_-prefixed) instead of generating one.`,
		Args: cobra.NoArgs,
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
			u, key, err := users.NewStore(pool).Create(cmd.Context(), n)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "created user %s (%s, time zone %s)\n", u.Name, u.ID, u.TimeZone)
			fmt.Println(key)
			return nil
		},
	}
	cmd.Flags().StringVar(&n.Name, "name", "", "display name (required)")
	cmd.Flags().StringVar(&n.TimeZone, "timezone", "UTC", "IANA time zone the user's days are counted in")
	cmd.Flags().StringVar(&n.APIKey, "api-key", "", "import this API key instead of generating one")
	_ = cmd.MarkFlagRequired("name")
	return cmd
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
			all, err := users.NewStore(pool).List(cmd.Context())
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
