package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger/dial"
)

type sweepFlags struct {
	engine      controllerFlags
	dryRun, all bool
	out         output
}

func newSweep(stdout, stderr io.Writer) *cobra.Command {
	f := sweepFlags{out: "text"}
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Delete the volumes and snapshots handover tagged that nobody owns (or, with --dry-run, list them)",
		Long: `sweep runs one pass of the controller's sweeper. It lists every volume and
snapshot tagged handover:managed=true, judges each against the ledger, and
deletes what no database and no running migration owns: the resources of
migrations that ended, and of migrations the ledger does not know once they
are older than --sweep-grace (their record may still be being written).
Authoritative volumes, base snapshots, attached volumes and pending
snapshots are always kept.

With --dry-run it deletes nothing and lists what a pass would delete, with
the tags, the migration each names and why nobody owns it; --all lists the
kept ones too, with who owns them.

Point it at the controller's cloud and ledger with the controller's flags. A
ledger that does not exist, or that knows no database, is refused: against
the wrong ledger every resource would look unowned. While a controller's
own sweeper holds the sweeper lease, a pass does nothing and exits 1.

It also judges every resource tagged handover:env-op (what an environment
operation, a clone, made): those of an operation that was aborted, or that
the ledger has no record of, leaked and are deleted, dependents first; those
of an operation under way, or of a clone that ended (its DST is an
environment now: handover env abort deletes it), are kept.`,
		Example: `  # what the sweeper would delete on the local cloud, and why
  handover sweep --dry-run --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # every managed resource with the verdict, machine-readable
  handover sweep --dry-run --all --output json --ledger postgres://handover@db.internal/handover

  # one pass on AWS, sparing unknown migrations' resources for an hour
  handover sweep --region eu-west-1 --ledger postgres://handover@db.internal/handover --sweep-grace 1h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSweep(cmd.Context(), f, stdout, stderr)
		},
	}
	registerSweepFlags(cmd, &f.engine)
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "list what a pass would delete, and why; delete nothing")
	fl.BoolVar(&f.all, "all", false, "list the resources kept too, with who owns them")
	fl.Var(&f.out, "output", "text or json")
	return cmd
}

// registerSweepFlags gives sweep the controller's own flags for where the
// cloud and the ledger are and how the sweeper judges, defaults and
// environment variables included, and none of the others (those keep their
// defaults in f: the sweeper lease is taken as this host and process).
func registerSweepFlags(cmd *cobra.Command, f *controllerFlags) {
	engine := &cobra.Command{}
	registerEngineFlags(engine, f)
	for _, name := range []string{"endpoint-url", "region", "ledger", "sweep-grace", "log-level"} {
		cmd.Flags().AddFlag(engine.Flags().Lookup(name))
	}
}

// SweepReport is `handover sweep --output json`.
type SweepReport struct {
	DryRun bool `json:"dry_run"`
	// Managed counts the resources tagged handover:managed; Delete those
	// the sweeper gives up (Deleted: those a pass did delete).
	Managed int `json:"managed"`
	Delete  int `json:"delete"`
	Deleted int `json:"deleted"`
	Kept    int `json:"kept"`
	// Resources lists those given up, and with --all the kept ones too.
	Resources []SweepResource `json:"resources"`
	// EnvOp are the resources tagged handover:env-op (what environment
	// operations made), each judged by its operation's record: those of
	// an aborted operation, or of one the ledger does not know, leaked.
	EnvOp   []EnvOpSweep `json:"env_op_resources"`
	Warning string       `json:"warning,omitempty"`
}

// EnvOpSweep is one resource an environment operation made, and the
// verdict on it.
type EnvOpSweep struct {
	env.OpVerdict
	Deleted bool   `json:"deleted,omitempty"`
	Error   string `json:"error,omitempty"`
}

// SweepResource is one managed resource and the verdict on it.
type SweepResource struct {
	Kind      string            `json:"kind"`
	ID        string            `json:"id"`
	State     string            `json:"state"`
	Database  string            `json:"database,omitempty"`
	Migration string            `json:"migration,omitempty"`
	Tags      map[string]string `json:"tags"`
	Created   time.Time         `json:"created,omitzero"`
	Delete    bool              `json:"delete"`
	Reason    string            `json:"reason"`
	Deleted   bool              `json:"deleted,omitempty"`
	Error     string            `json:"error,omitempty"`
}

func runSweep(ctx context.Context, f sweepFlags, stdout, stderr io.Writer) error {
	e := f.engine
	log, err := newLogger(stderr, e.logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	target, err := dial.Parse(e.ledgerURL)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	// Opening a ledger that is not there creates an empty one, in which
	// every resource looks unowned.
	switch target.Backend {
	case dial.Memory:
		return &exitError{code: 2, err: errors.New("--ledger memory:// is empty in a new process, so every resource would look unowned: pass the controller's --ledger")}
	case dial.SQLite:
		if _, err := os.Stat(target.Path); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--ledger %s: %w: pass the ledger the controller writes (its --ledger)", target, err)}
		}
	}
	cfg := handover.DefaultConfig()
	cfg.Holder, cfg.SweepGrace, cfg.LeaseTTL = e.holder, e.sweepGrace, e.leaseTTL
	if err := cfg.Validate(); err != nil {
		return &exitError{code: 2, err: err}
	}
	eng, err := buildEngine(ctx, e, cfg, target, log)
	if err != nil {
		return err
	}
	defer eng.led.Close()

	dbs, err := eng.led.ListDatabases(ctx)
	if err != nil {
		return fmt.Errorf("reading the databases of the ledger %s: %w", target, err)
	}
	rep := SweepReport{DryRun: f.dryRun, Resources: []SweepResource{}, EnvOp: []EnvOpSweep{}}
	if len(dbs) == 0 {
		rep.Warning = fmt.Sprintf("the ledger %s knows no database, so nothing in it owns a resource: is it the controller's ledger?", target)
		if !f.dryRun {
			return &exitError{code: 2, err: fmt.Errorf("%s Refusing to sweep; if it is and no database is left, delete what --dry-run lists by hand", rep.Warning)}
		}
	}

	var items []handover.SweepItem
	if f.dryRun {
		items, err = eng.ctl.PlanSweep(ctx)
	} else {
		var res handover.SweepResult
		res, err = eng.ctl.Sweep(ctx)
		if err == nil && res.LeaseHeld {
			return &exitError{code: 1, err: errors.New("another controller holds the sweeper lease and is sweeping (every --sweep-interval): nothing was deleted; retry later, or see what a pass would delete with --dry-run")}
		}
		items = res.Items
	}
	if err != nil {
		return fmt.Errorf("sweeping: %w", err)
	}
	var failed []string
	for _, it := range items {
		rep.Managed++
		switch {
		case it.Delete:
			rep.Delete++
		default:
			rep.Kept++
		}
		if it.Deleted {
			rep.Deleted++
		}
		if it.Err != nil {
			failed = append(failed, it.Kind+" "+it.ID)
		}
		if it.Delete || f.all {
			rep.Resources = append(rep.Resources, sweepResource(it))
		}
	}
	envOps, warnings, err := sweepEnvOps(ctx, eng, f.dryRun)
	for _, w := range warnings {
		rep.Warning = strings.TrimPrefix(rep.Warning+"; ", "; ") + "resources tagged " + env.TagEnvOp + " not judged: " + w
	}
	if err != nil {
		return fmt.Errorf("sweeping the resources tagged %s: %w", env.TagEnvOp, err)
	}
	for _, v := range envOps {
		if v.Error != "" {
			failed = append(failed, v.Kind+" "+v.ID)
		}
		if v.Leaked || f.all {
			rep.EnvOp = append(rep.EnvOp, v)
		}
	}
	if f.out == "json" {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printSweep(stdout, rep)
	}
	if len(failed) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d deletion(s) failed (%s): a later pass, or the controller's sweeper, retries them", len(failed), strings.Join(failed, ", "))}
	}
	return nil
}

// sweepEnvOps judges every resource tagged handover:env-op and, unless
// dryRun, deletes the leaked ones, dependents first.
func sweepEnvOps(ctx context.Context, eng *engine, dryRun bool) ([]EnvOpSweep, []string, error) {
	c := eng.aws
	s3c := s3.NewFromConfig(c, func(o *s3.Options) { o.UsePathStyle = aws.ToString(c.BaseEndpoint) != "" })
	d := awscloud.NewEnvDeleter(ec2.NewFromConfig(c), autoscaling.NewFromConfig(c), elasticloadbalancingv2.NewFromConfig(c), rds.NewFromConfig(c), s3c, c.Region, clock.Real{})
	rs, warnings, err := d.EnvOpResources(ctx)
	if err != nil {
		return nil, warnings, err
	}
	verdicts, err := env.JudgeOpResources(ctx, eng.led, rs)
	if err != nil {
		return nil, warnings, err
	}
	owned := make([]env.Owned, 0, len(verdicts))
	for _, v := range verdicts {
		owned = append(owned, v.Owned)
	}
	env.SortForDelete(owned)
	out := make([]EnvOpSweep, 0, len(verdicts))
	for _, o := range owned {
		i := slices.IndexFunc(verdicts, func(v env.OpVerdict) bool { return v.Owned == o })
		item := EnvOpSweep{OpVerdict: verdicts[i]}
		if item.Leaked && !dryRun {
			if err := env.DeleteResource(ctx, d, o); err != nil {
				item.Error = err.Error()
			} else {
				item.Deleted = true
			}
		}
		out = append(out, item)
	}
	return out, warnings, nil
}

func sweepResource(it handover.SweepItem) SweepResource {
	r := SweepResource{Kind: it.Kind, ID: it.ID, State: it.State, Database: it.Database, Migration: it.Migration,
		Tags: it.Tags, Created: it.Created, Delete: it.Delete, Reason: it.Reason, Deleted: it.Deleted}
	if r.Tags == nil {
		r.Tags = map[string]string{}
	}
	if it.Err != nil {
		r.Error = it.Err.Error()
	}
	return r
}

func printSweep(w io.Writer, rep SweepReport) {
	if rep.Warning != "" {
		fmt.Fprintln(w, "warning:", rep.Warning)
	}
	if rep.DryRun {
		fmt.Fprintf(w, "dry run: a pass would delete %d of the %d resources tagged %s=true, and keep %d; nothing was deleted\n",
			rep.Delete, rep.Managed, handover.TagManaged, rep.Kept)
	} else {
		fmt.Fprintf(w, "deleted %d of the %d resources tagged %s=true, kept %d\n", rep.Deleted, rep.Managed, handover.TagManaged, rep.Kept)
	}
	defer printEnvOpSweep(w, rep)
	if len(rep.Resources) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nVERDICT\tKIND\tID\tSTATE\tDATABASE\tMIGRATION\tCREATED\tTAGS\tWHY")
	for _, r := range rep.Resources {
		verdict, why := sweepVerdict(r.Deleted, r.Delete, r.Error, r.Reason)
		created := "-"
		if !r.Created.IsZero() {
			created = r.Created.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", verdict, r.Kind, r.ID, r.State, dash(r.Database), dash(r.Migration), created, otherTags(r.Tags), why)
	}
	tw.Flush()
}

func printEnvOpSweep(w io.Writer, rep SweepReport) {
	leaked, deleted := 0, 0
	for _, v := range rep.EnvOp {
		if v.Leaked {
			leaked++
		}
		if v.Deleted {
			deleted++
		}
	}
	if rep.DryRun {
		fmt.Fprintf(w, "\nresources tagged %s: a pass would delete %d leaked\n", env.TagEnvOp, leaked)
	} else {
		fmt.Fprintf(w, "\nresources tagged %s: deleted %d of %d leaked\n", env.TagEnvOp, deleted, leaked)
	}
	if len(rep.EnvOp) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nVERDICT\tKIND\tNAME\tID\tENV-OP\tSTATE\tWHY")
	for _, v := range rep.EnvOp {
		verdict, why := sweepVerdict(v.Deleted, v.Leaked, v.Error, v.Reason)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", verdict, v.Kind, v.Name, v.ID, v.Op, dash(v.State), why)
	}
	tw.Flush()
}

// otherTags lists the tags the other columns do not show.
func otherTags(tags map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		switch k {
		case handover.TagManaged, handover.TagDatabase, handover.TagMigration:
			continue
		}
		kv = append(kv, k+"="+tags[k])
	}
	if len(kv) == 0 {
		return "-"
	}
	return strings.Join(kv, ",")
}

// sweepVerdict is a swept resource's VERDICT and WHY columns, the same for
// handover's own resources and an environment operation's.
func sweepVerdict(deleted, toDelete bool, errMsg, reason string) (verdict, why string) {
	verdict, why = "keep", reason
	switch {
	case deleted:
		verdict = "deleted"
	case errMsg != "":
		verdict = "FAILED"
	case toDelete:
		verdict = "delete"
	}
	if errMsg != "" {
		why += " (" + errMsg + ")"
	}
	return verdict, why
}
