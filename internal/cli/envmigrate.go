package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

func newEnvMigrate(stdout, stderr io.Writer) *cobra.Command {
	var f envFlags
	var dryRun, deleteData bool
	var to, entry, verifyCmd, passwordFile, sslMode string
	var bake, healthTimeout time.Duration
	var sets []string
	var servicePort int
	cmd := &cobra.Command{
		Use:   "migrate NAME",
		Short: "Move an environment onto a fresh copy of itself, its data included, and cut its entry point over",
		Long: `migrate moves environment NAME onto a new copy of itself without losing a write:

  1. clone NAME into NAME-next (--to): its databases fenced (writes are refused
     with 503 and Retry-After, reads stay up), snapshots, buckets copied, DST
     built, as handover env clone does, except that the fence is HELD: no
     write is acknowledged by NAME after its snapshots;
  2. verify DST against the snapshots, as handover env verify does (it reads
     the RDS tables as the master user: $HANDOVER_RDS_PASSWORD or
     --rds-password-file; --verify-cmd runs a check of your own), NAME still
     fenced; a mismatch ends the migration before the cutover;
  3. cut over: a copy of DST's target group is made on the entry listener's
     load balancer (a target group belongs to one load balancer), attached
     to DST's groups (AttachLoadBalancerTargetGroups) and health-checked
     behind a temporary listener, then the entry listener (--entry, or the one tagged
     handover:entry=true) is switched to it by one ModifyListener call;
  4. lift NAME's fence (no traffic reaches it now; a fail-back needs it);
  5. --bake D: DST's targets are watched; one unhealthy switches the entry
     back to NAME (writes DST acknowledged after the cutover are then in DST
     only: they are not copied back);
  6. drop NAME: its groups, load balancers and target groups (not the entry's
     load balancer and listener), its RDS instances (a final snapshot kept),
     and with --delete-data its buckets (by default they are kept, tagged
     handover:dropped-from instead of handover:environment). The drop is
     refused unless verify passed: NAME is then kept and DST keeps its name;
  7. re-tag DST with handover:environment=NAME. Physical names cannot follow
     (bucket names, RDS identifiers, group and load balancer names): they are
     reported.

NAME's write pause runs from its snapshots to the cutover: DST's build, verify
and health checks included. It is reported.

--dry-run prints the plan and changes nothing. Without it the migration is a
ledger record advanced one step at a time, everything recorded before the call
that makes it: killed at any step, the command run again goes on where it
stood (once the killed run's lease lapses, --lease-ttl). A migration that fails
before the drop switches the entry back (if it was switched) and lifts NAME's
fence; DST is left for handover env abort.`,
		Example: `  # the plan, on the local cloud
  handover env migrate staging --dry-run --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # migrate, watching DST for 5 minutes after the cutover
  handover env migrate staging --bake 5m

  # name the entry listener, delete the old buckets too
  handover env migrate staging --entry arn:aws:elasticloadbalancing:...:listener/app/web/... --delete-data

  # machine-readable: the recorded migration
  handover env migrate staging --output json`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.stack {
				return &exitError{code: 2, err: fmt.Errorf("--stack: a migration re-tags DST with handover:environment=%s, so it selects by handover:environment, not a CloudFormation stack", args[0])}
			}
			req := env.MigrateRequest{Name: args[0], Dest: to, Entry: entry, Bake: bake, HealthTimeout: healthTimeout, DeleteData: deleteData, VerifyCmd: verifyCmd}
			if to != "" {
				if err := env.CheckName(to); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--to: %w", err)}
				}
			}
			for _, s := range sets {
				set, err := env.ParseSet(s)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				req.Sets = append(req.Sets, set)
			}
			if dryRun {
				t, r, err := f.runner(cmd.Context(), stderr)
				if err != nil {
					return err
				}
				defer t.led.Close()
				plan, err := r.PlanMigrate(cmd.Context(), t.clone, req)
				if plan != nil && plan.Entry.Listener != "" {
					if f.out == "json" {
						if perr := printJSON(stdout, plan); perr != nil {
							return perr
						}
					} else {
						printMigratePlan(stdout, plan)
					}
				} else if plan != nil && plan.Clone != nil && f.out != "json" {
					printClonePlan(stdout, plan.Clone)
				}
				return envErr(err)
			}
			password, err := rdsPassword(passwordFile)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			return runMigrate(cmd, stdout, stderr, &f, req, servicePort, env.PGTables{Password: password, SSLMode: sslMode})
		},
	}
	f.register(cmd, true)
	fl := cmd.Flags()
	fl.StringVar(&to, "to", "", "DST's name (default NAME-next)")
	fl.StringVar(&entry, "entry", "", "the entry listener's ARN (default: the listener tagged handover:entry=true)")
	fl.DurationVar(&bake, "bake", 0, "how long DST's targets are watched after the cutover; one unhealthy fails back")
	fl.DurationVar(&healthTimeout, "health-timeout", env.DefaultHealthTimeout, "how long DST's targets may take to be healthy behind the entry before the migration gives up (NAME's writes are paused meanwhile)")
	fl.BoolVar(&deleteData, "delete-data", false, "empty and delete NAME's buckets in the drop (default: kept)")
	fl.BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	fl.StringArrayVar(&sets, "set", nil, "FROM=TO: the text FROM in NAME's user data and tags becomes TO in DST's (repeatable), as for clone")
	fl.IntVar(&servicePort, "service-port", fence.DefaultPort, "port of the service's fence endpoints on each instance (the controller's --service-port)")
	fl.StringVar(&verifyCmd, "verify-cmd", "", "a command (sh -c) run against DST with its endpoints in the environment before the cutover, as env verify's; must exit 0")
	fl.StringVar(&passwordFile, "rds-password-file", "", "file holding the RDS master password, for SRC's RDS write fence and the verify of the tables (default: $HANDOVER_RDS_PASSWORD)")
	fl.StringVar(&sslMode, "rds-sslmode", envOr("PGSSLMODE", ""), "libpq sslmode for the verify's RDS connections (default: $PGSSLMODE, else prefer)")
	return cmd
}

// migrateRunner is f.runner with what running a migration needs, its
// verify included.
func migrateRunner(cmd *cobra.Command, stderr io.Writer, f *envFlags, servicePort int, tables env.PGTables) (*envTools, *env.Runner, error) {
	t, r, err := f.runner(cmd.Context(), stderr)
	if err != nil {
		return nil, nil, err
	}
	c := t.aws
	e, a, l, d := ec2.NewFromConfig(c), autoscaling.NewFromConfig(c), elb.NewFromConfig(c), rds.NewFromConfig(c)
	b := awscloud.NewCloneBuilder(e, a, l, d, t.s3, c.Region)
	r.Clone = b
	r.Fence = handover.HTTPService{Client: &fence.Client{Port: servicePort}}
	r.Verifier = awscloud.NewVerifier(b, d)
	r.Tables = tables
	if tables.Password != "" {
		// SRC's RDS instances are fenced (read-only) from their
		// snapshots to the cutover, as their master user.
		r.RDSFence = rdsFence(t, tables.Password, tables.SSLMode)
	}
	r.VerifyClone = r
	r.Manifests = env.FenceManifests{Client: &fence.Client{Port: servicePort}}
	r.Migrate = awscloud.NewMigrator(l, a, e, d, t.s3)
	r.Reader = t.clone
	r.Delete = awscloud.NewEnvDeleter(e, a, l, d, t.s3, c.Region, clock.Real{})
	return t, r, nil
}

// runMigrate starts (or goes on with) a migration and follows it to its end.
func runMigrate(cmd *cobra.Command, stdout, stderr io.Writer, f *envFlags, req env.MigrateRequest, servicePort int, tables env.PGTables) error {
	started := time.Now()
	t, r, err := migrateRunner(cmd, stderr, f, servicePort, tables)
	if err != nil {
		return err
	}
	defer t.led.Close()
	if tables.Password == "" {
		// The verify reads the tables of DST's RDS instances as their
		// master user: refused now, not after the clone.
		dbs, err := t.cloud.TaggedDBInstances(cmd.Context(), env.ByName(req.Name))
		if err != nil {
			return envErr(fmt.Errorf("finding the RDS instances of %s: %w", req.Name, err))
		}
		if len(dbs) > 0 {
			return &exitError{code: 2, err: fmt.Errorf("%s has RDS instances (%s), whose tables the migration's verify reads as their master user: set $HANDOVER_RDS_PASSWORD or --rds-password-file to its password", req.Name, dbs[0].ID)}
		}
	}
	op, plan, err := r.StartMigrate(cmd.Context(), t.clone, req)
	if err != nil {
		if plan != nil && plan.Clone != nil && f.out != "json" {
			printClonePlan(stdout, plan.Clone)
		}
		return envErr(err)
	}
	if op.CreatedAt.Before(started) {
		fmt.Fprintf(stderr, "env: going on with migration %s, recorded at %s, from where it stood in %s (a killed run's lease lapses within its --lease-ttl)\n", op.ID, op.CreatedAt.UTC().Format(time.RFC3339), op.Phase)
	} else {
		fmt.Fprintf(stderr, "env: migration %s of %s into %s started\n", op.ID, op.Environment, op.Migration.Dest)
	}
	op, err = follow(cmd.Context(), r, f, op.ID, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
	if op != nil {
		var clone *ledger.EnvOp
		if op.Migration.CloneOp != "" {
			clone, _ = r.Get(cmd.Context(), op.Migration.CloneOp)
		}
		if perr := printMigrateOp(stdout, f.out, op, clone); perr != nil {
			return perr
		}
	}
	if err != nil {
		return envErr(err)
	}
	if op.State != ledger.UpdateSucceeded {
		return &exitError{code: 1, err: fmt.Errorf("the migration of %s into %s %s: %s", op.Environment, op.Migration.Dest, strings.ToLower(string(op.State)), op.Error)}
	}
	return nil
}

// migrateOut is `handover env migrate --output json`: the recorded
// migration, its clone, and the write pause.
type migrateOut struct {
	*ledger.EnvOp
	CloneOp *ledger.EnvOp `json:"clone_op_record,omitempty"`
	// WritePauseMS is from the clone's first fence to the cutover: the
	// time SRC refused writes before DST took them.
	WritePauseMS int64 `json:"write_pause_ms"`
}

func migratePause(op, clone *ledger.EnvOp) time.Duration {
	if clone == nil || clone.Cloning == nil || clone.Cloning.QuiescedAt.IsZero() {
		return 0
	}
	end := op.Migration.SwitchedAt
	if end.IsZero() || op.Migration.SwitchedBack {
		end = clone.Cloning.UnquiescedAt
	}
	if end.IsZero() {
		return 0
	}
	return end.Sub(clone.Cloning.QuiescedAt)
}

func printMigrateOp(w io.Writer, out output, op, clone *ledger.EnvOp) error {
	if out == "json" {
		return printJSON(w, migrateOut{EnvOp: op, CloneOp: clone, WritePauseMS: migratePause(op, clone).Milliseconds()})
	}
	m := op.Migration
	fmt.Fprintf(w, "migration of environment %s into %s (%s): %s, phase %s\n", op.Environment, m.Dest, op.ID, op.State, op.Phase)
	if clone != nil {
		fmt.Fprintf(w, "clone: %s, %s\n", clone.ID, clone.State)
	}
	if p := migratePause(op, clone); p > 0 {
		fmt.Fprintf(w, "%s's write pause: %s (its snapshots to the cutover)\n", op.Environment, p.Round(time.Millisecond))
	}
	verify := m.VerifyNote
	if m.Verified {
		verify = "passed: " + verify
	}
	fmt.Fprintf(w, "verify: %s\n", orDash(verify))
	if !m.SwitchedAt.IsZero() {
		fmt.Fprintf(w, "cutover: %s", m.SwitchedAt.UTC().Format(time.RFC3339Nano))
		if m.SwitchedBack {
			fmt.Fprintf(w, ", switched back")
		}
		fmt.Fprintln(w)
	}
	if m.SourceKept != "" {
		fmt.Fprintf(w, "%s kept: %s\n", op.Environment, m.SourceKept)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tID\tDONE\tDETAIL")
	for _, it := range m.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Kind, it.Name, orDash(it.ID), yesNo(it.Done), orDash(it.Detail))
	}
	tw.Flush()
	if len(m.Unchanged) > 0 {
		fmt.Fprintf(w, "physical names that keep DST's (they cannot change):\n")
		for _, u := range m.Unchanged {
			fmt.Fprintf(w, "  %s\n", u)
		}
	}
	if op.Error != "" {
		fmt.Fprintf(w, "error: %s\n", op.Error)
	}
	return nil
}

func printMigratePlan(w io.Writer, p *env.MigratePlan) {
	e := p.Entry
	fmt.Fprintf(w, "migration of environment %s into %s, nothing changed:\n", p.Environment, p.Destination)
	fmt.Fprintf(w, "\n1. clone %s into %s, %s's fences held until its drop\n", p.Environment, p.Destination, p.Environment)
	for _, d := range p.Clone.Fence {
		fmt.Fprintf(w, "   fence database %s (group %s) under epoch %d\n", d.Database, d.Group, d.Epoch)
	}
	for _, s := range p.Clone.Snapshots {
		fmt.Fprintf(w, "   %s snapshot of %s, for %s\n", strings.ToUpper(s.Kind), s.Of, s.For)
	}
	for _, c := range p.Clone.Copies {
		fmt.Fprintf(w, "   copy bucket %s -> %s by checksum\n", c.From, c.To)
	}
	for _, c := range p.Clone.Creates {
		fmt.Fprintf(w, "   create %s %s (from %s)\n", c.Kind, c.Name, c.From)
	}
	fmt.Fprintf(w, "\n2. verify %s against %s's snapshots\n", p.Destination, p.Environment)
	fmt.Fprintf(w, "\n3. cut over the entry listener %s:%d of load balancer %s (now forwarding to %s)\n", e.Protocol, e.Port, e.LoadBalancer, e.SourceTGName)
	fmt.Fprintf(w, "   create target group %s like %s on %s, attach it to %s, health-check its targets behind a temporary listener\n", e.EntryTG, e.DestTG, e.LoadBalancer, strings.Join(e.Groups, ", "))
	fmt.Fprintf(w, "   ModifyListener %s -> %s (wait at most %s for its targets to be healthy)\n", e.Listener, e.EntryTG, p.HealthTimeout)
	fmt.Fprintf(w, "\n4. keep %s fenced until its drop: a write that still reaches it is refused, not acknowledged and lost\n", p.Environment)
	fmt.Fprintf(w, "\n5. bake %s: an unhealthy target of %s switches the entry back to %s\n", p.Bake, p.Destination, e.SourceTGName)
	fmt.Fprintf(w, "\n6. drop %s (only if verify passed)\n", p.Environment)
	for _, d := range p.Drop {
		fmt.Fprintf(w, "   delete %s\n", d)
	}
	for _, k := range p.Keep {
		fmt.Fprintf(w, "   keep %s\n", k)
	}
	fmt.Fprintf(w, "\n7. re-tag %s with handover:environment=%s\n", p.Destination, p.Environment)
	for _, rt := range p.Retag {
		fmt.Fprintf(w, "   %s\n", rt)
	}
	fmt.Fprintf(w, "   names that cannot change:\n")
	for _, u := range p.Unchanged {
		fmt.Fprintf(w, "     %s\n", u)
	}
	if len(p.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range p.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}
}
