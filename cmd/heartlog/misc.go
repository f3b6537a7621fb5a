package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"heartlog/config"
)

func migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations and exit",
		Long: `Apply the SQL migrations embedded in this binary that the database lacks.
Every other command does this at start too; concurrent runs take turns on a
Postgres advisory lock.`,
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
			pool.Close()
			log.Info().Msg("database schema is current")
			return nil
		},
	}
}

func configCmd() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "List every HEARTLOG_* setting with its default and current value",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if markdown {
				fmt.Print(config.Markdown())
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tCURRENT\tMEANING")
			for _, v := range config.Vars {
				cur := config.Lookup(v.Name)
				if v.Secret && cur != v.Default {
					cur = "(set)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Default, cur, v.Help)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the reference table of README.md (defaults only, no current values)")
	return cmd
}
