package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/api"
)

// apiFlags are the flags of the commands that read a controller's API.
type apiFlags struct {
	addr, token string
	out         output
}

func (f *apiFlags) register(cmd *cobra.Command) {
	f.out = "text"
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "api", envOr("HANDOVER_API", "http://127.0.0.1:7070"), "the controller's API (or HANDOVER_API)")
	fl.StringVar(&f.token, "api-token", "", "bearer token of the controller's API (or HANDOVER_API_TOKEN)")
	fl.Var(&f.out, "output", "text or json")
}

func (f *apiFlags) client() (*api.Client, error) {
	token := f.token
	if token == "" {
		token = os.Getenv("HANDOVER_API_TOKEN")
	}
	c, err := api.NewClient(f.addr, token, nil)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	return c, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newStatus(stdout io.Writer) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what a running controller is doing",
		Long: `status reads a running controller's API (GET /v1/status and /v1/databases):
migrations by state, the events queue, the last reconcile and sweep, and each
database's authoritative volume and epoch.`,
		Example: `  handover status
  handover status --api http://10.0.0.5:7070 --output json   # with HANDOVER_API_TOKEN set`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			return runStatus(cmd.Context(), c, f.out, stdout)
		},
	}
	f.register(cmd)
	return cmd
}

// StatusReport is `handover status --output json`.
type StatusReport struct {
	Controller api.Status     `json:"controller"`
	Databases  []api.Database `json:"databases"`
}

func runStatus(ctx context.Context, c *api.Client, out output, w io.Writer) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	dbs, err := c.Databases(ctx)
	if err != nil {
		return err
	}
	if out == "json" {
		return printJSON(w, StatusReport{Controller: st, Databases: dbs})
	}
	fmt.Fprintf(w, "controller %s, up since %s\n", st.Holder, st.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "queue:      %s (%d handled, %d poison, lag %.1fs)\n", st.Queue, st.MessagesHandled, st.MessagesPoison, st.QueueLagSeconds)
	fmt.Fprintf(w, "ledger:     %s\n", st.Ledger)
	states := make([]string, 0, len(st.Migrations))
	for s := range st.Migrations {
		states = append(states, s)
	}
	sort.Strings(states)
	fmt.Fprintf(w, "migrations: %d unfinished;", st.Unfinished)
	for _, s := range states {
		fmt.Fprintf(w, " %s %d", s, st.Migrations[s])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "reconcile:  %s%s\n", ago(st.LastReconcileAt), errSuffix(st.LastReconcileError))
	fmt.Fprintf(w, "sweep:      %s, %d volumes and %d snapshots deleted%s\n", ago(st.LastSweepAt), st.SweptVolumes, st.SweptSnapshots, errSuffix(st.LastSweepError))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nDATABASE\tINSTANCE\tVOLUME\tZONE\tEPOCH\tMOVING\tDROPPED")
	for _, d := range dbs {
		dropped := "-"
		if !d.DroppedAt.IsZero() {
			dropped = "dropped by " + d.DroppedBy + " at " + d.DroppedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, dash(d.Instance), dash(d.Volume), dash(d.Zone), d.Epoch, dash(d.Claim), dropped)
	}
	return tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "not yet"
	}
	return t.Format(time.RFC3339)
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " (error: " + s + ")"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newMigrations(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrations",
		Short: "List handovers, or show one step by step",
		Example: `  handover migrations list
  handover migrations list --unfinished
  handover migrations list --database orders --state Aborted --output json
  handover migrations show 5f1c0b7e-…`,
	}
	var (
		lf              apiFlags
		database, state string
		unfinished      bool
		limit           int
	)
	list := &cobra.Command{
		Use:     "list",
		Short:   "List migrations, newest first",
		Example: "  handover migrations list --unfinished\n  handover migrations list --database orders --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := lf.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if database != "" {
				q.Set("database", database)
			}
			if state != "" {
				q.Set("state", state)
			}
			if unfinished {
				q.Set("unfinished", "true")
			}
			q.Set("limit", fmt.Sprint(limit))
			ms, err := c.Migrations(cmd.Context(), q)
			if err != nil {
				return err
			}
			if lf.out == "json" {
				return printJSON(stdout, api.Migrations{Migrations: ms})
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDATABASE\tINSTANCE\tSTATE\tSTARTED\tDURATION\tLAST ERROR")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Database, m.Instance, m.State,
					m.CreatedAt.Format(time.RFC3339), (time.Duration(m.DurationMS) * time.Millisecond).String(), m.LastError)
			}
			return tw.Flush()
		},
	}
	lf.register(list)
	list.Flags().StringVar(&database, "database", "", "only this database")
	list.Flags().StringVar(&state, "state", "", "only this state (Launching … Committed, RollingBack, Aborted)")
	list.Flags().BoolVar(&unfinished, "unfinished", false, "only migrations still running")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many")

	show := newShow(stdout, "Show one migration with its per-step timeline",
		"  handover migrations show 5f1c0b7e-8d2a-4f8e-9a1b-3c5d7e9f0a12 --output json",
		(*api.Client).Migration, printMigration)
	cmd.AddCommand(list, show)
	return cmd
}

func printMigration(w io.Writer, m api.Migration) {
	fmt.Fprintf(w, "migration %s: %s\n", m.ID, m.State)
	fmt.Fprintf(w, "database %s, group %s, hook %s, cause %s\n", m.Database, m.Group, m.Hook, dash(m.Cause))
	fmt.Fprintf(w, "from %s (%s, volume %s, epoch %d) to %s (%s, volume %s)\n",
		dash(m.Source), dash(m.SourceFate), dash(m.SourceVolume), m.FromEpoch, m.Instance, dash(m.Zone), dash(m.Volume))
	if m.PreCopySnapshot != "" || m.FinalSnapshot != "" {
		fmt.Fprintf(w, "snapshots: pre-copy %s, final %s\n", dash(m.PreCopySnapshot), dash(m.FinalSnapshot))
	}
	if m.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", m.LastError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTEP\tSTART\tDURATION\tNOTE")
	for _, s := range m.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.State, s.Start.Format("15:04:05.000"), (time.Duration(s.DurationMS) * time.Millisecond).String(), s.Note)
	}
	tw.Flush()
}

// newShow is a `show ID` subcommand: fetch one document from the API, print
// it as text or JSON.
func newShow[T any](stdout io.Writer, short, example string, fetch func(*api.Client, context.Context, string) (T, error), print func(io.Writer, T)) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:     "show ID",
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			v, err := fetch(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.out == "json" {
				return printJSON(stdout, v)
			}
			print(stdout, v)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
