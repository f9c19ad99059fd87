package cli

import (
	"context"
	"fmt"
	"io"
	"os"
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

// runTools gives r what running (or aborting) an operation needs: the
// clone's builder, SRC's fences, the deleter, and a migration's listener
// calls (an abort switches the entry back).
func runTools(r *env.Runner, t *envTools, servicePort int) {
	c := t.aws
	e, a, l, d := ec2.NewFromConfig(c), autoscaling.NewFromConfig(c), elb.NewFromConfig(c), rds.NewFromConfig(c)
	r.Clone = awscloud.NewCloneBuilder(e, a, l, d, t.s3, c.Region)
	r.Fence = handover.HTTPService{Client: &fence.Client{Port: servicePort}}
	r.Delete = awscloud.NewEnvDeleter(e, a, l, d, t.s3, c.Region, clock.Real{})
	r.Migrate = awscloud.NewMigrator(l, a, e, d, t.s3)
	if pw := os.Getenv("HANDOVER_RDS_PASSWORD"); pw != "" {
		// What lifts a migration's RDS fence (an abort, the controller
		// carrying one); without it such a lift fails, saying so.
		r.RDSFence = rdsFence(t, pw, os.Getenv("PGSSLMODE"))
	}
}

// rdsFence is env.PGFence over t's RDS client, logging in as each
// instance's master user with password.
func rdsFence(t *envTools, password, sslMode string) env.PGFence {
	c := t.aws
	d := rds.NewFromConfig(c)
	b := awscloud.NewCloneBuilder(ec2.NewFromConfig(c), autoscaling.NewFromConfig(c), elb.NewFromConfig(c), d, t.s3, c.Region)
	return env.PGFence{Locate: rdsLocator{b, awscloud.NewVerifier(b, d)}, Password: password, SSLMode: sslMode}
}

// rdsLocator is env.RDSLocator: the endpoint from the builder, the master
// user from the verifier.
type rdsLocator struct {
	b *awscloud.CloneBuilder
	v *awscloud.Verifier
}

func (l rdsLocator) DBInstanceState(ctx context.Context, name string) (string, string, error) {
	return l.b.DBInstanceState(ctx, name)
}

func (l rdsLocator) DBLogin(ctx context.Context, instance string) (string, string, error) {
	return l.v.DBLogin(ctx, instance)
}

func newEnvAbort(stdout, stderr io.Writer) *cobra.Command {
	var f envFlags
	var dryRun bool
	var opID string
	var servicePort int
	cmd := &cobra.Command{
		Use:   "abort NAME",
		Short: "Abort an environment's clone or migration (before its drop): SRC un-quiesced, everything made deleted, SRC checked unchanged",
		Long: `abort undoes the operation under way on environment NAME (or, when none is,
its latest clone or unfinished migration) and leaves NAME exactly as it was:

  1. abort-unquiesce: a migration's entry listener is switched back to SRC's
     target group (if it was, or may have been, switched) and its temporary
     listener deleted; SRC's fences are lifted (or its standby's instances
     brought back and MinSize and DesiredCapacity restored exactly), unless
     the clone had lifted them already;
  2. abort-delete: DST's databases are marked dropped in the ledger (the
     handover controller no longer boots, heals, pools or holds
     terminations for them; the record is kept), then everything tagged
     handover:env-op=ID is deleted, dependents first: groups (force
     delete), launch templates, load balancers with their listeners,
     target groups, RDS instances (no final snapshot: DST's data is SRC's)
     and the clone's RDS snapshots, buckets (every object version), DST's
     databases' volumes and the EBS snapshots. Each delete waits until the
     resource is gone; one refused because a dependent still holds it is
     retried with backoff;
  3. abort-check: nothing tagged with the operation is left (else back to
     2), and SRC's full inventory (groups with their capacity, hooks,
     instances and their lifecycle, databases with their volume and epoch,
     load balancers and listeners, target groups, RDS instances, buckets)
     is compared with the one the clone recorded when it started. A
     difference is reported and makes the command exit 1.

The phases are recorded on the operation, so abort killed at any point and
run again converges. A clone process still running sees the abort at its
next step and carries it out itself; this command then follows it. An
abort asked of a standby rolls it back as resume does (ending Aborted).
A migration is aborted with its clone, until its drop starts (after it,
SRC is partly gone and abort refuses). --dry-run lists what would be
switched, lifted, dropped and deleted, and changes nothing.`,
		Example: `  # what aborting staging's clone would lift, drop and delete
  handover env abort staging --dry-run --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # do it (run again after a kill: it goes on where it stood)
  handover env abort staging --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # a given operation, machine-readable
  handover env abort staging --op env-4f1c2a9e07d3 --output json`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, r, err := f.runner(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			defer t.led.Close()
			runTools(r, t, servicePort)
			op, err := r.FindAbortable(cmd.Context(), args[0], opID)
			if err != nil {
				return envErr(err)
			}
			if dryRun {
				plan, err := r.PlanAbort(cmd.Context(), op)
				if err != nil {
					return envErr(err)
				}
				if f.out == "json" {
					return printJSON(stdout, plan)
				}
				printAbortPlan(stdout, plan)
				return nil
			}
			if op, err = r.Abort(cmd.Context(), op); err != nil {
				return envErr(err)
			}
			fmt.Fprintf(stderr, "env: aborting %s %s of %s (phase %s)\n", op.Op, op.ID, op.Environment, op.Phase)
			op, err = follow(cmd.Context(), r, &f, op.ID, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
			if op != nil {
				if perr := printAbortOp(stdout, f.out, op); perr != nil {
					return perr
				}
			}
			if err != nil {
				return envErr(err)
			}
			if op.State != ledger.UpdateAborted || op.Error != "" {
				return &exitError{code: 1, err: fmt.Errorf("the abort of %s %s ended %s: %s", op.Op, op.ID, op.State, op.Error)}
			}
			return nil
		},
	}
	f.register(cmd, true)
	fl := cmd.Flags()
	fl.BoolVar(&dryRun, "dry-run", false, "print what the abort would do and change nothing")
	fl.StringVar(&opID, "op", "", "the operation to abort (default: the one under way on NAME, else its latest clone)")
	fl.IntVar(&servicePort, "service-port", fence.DefaultPort, "port of the service's fence endpoints on each instance (the controller's --service-port)")
	return cmd
}

// abortOut is `handover env abort --output json`.
type abortOut struct {
	*ledger.EnvOp
	// Identical is whether SRC's inventory after the abort equals the one
	// recorded at the operation's start.
	Identical bool `json:"identical"`
}

func printAbortOp(w io.Writer, out output, op *ledger.EnvOp) error {
	identical := op.State == ledger.UpdateAborted && op.Error == ""
	if out == "json" {
		return printJSON(w, abortOut{EnvOp: op, Identical: identical})
	}
	if op.Op == env.OpStandby {
		return printEnvOp(w, out, op)
	}
	fmt.Fprintf(w, "abort of %s %s of environment %s: %s\n", op.Op, op.ID, op.Environment, op.State)
	if a := op.Aborting; a != nil {
		fmt.Fprintf(w, "asked in %s at %s\n", a.From, a.RequestedAt.UTC().Format(time.RFC3339))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DELETED\tNAME\tID\tDONE")
		for _, it := range a.Deleted {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Kind, it.Name, it.ID, yesNo(it.Done))
		}
		tw.Flush()
		for _, d := range a.Differences {
			fmt.Fprintf(w, "differs: %s\n", d)
		}
	}
	if identical {
		fmt.Fprintf(w, "%s's inventory is identical to the one recorded at the operation's start; nothing tagged %s=%s is left\n", op.Environment, env.TagEnvOp, op.ID)
	} else if op.Error != "" {
		fmt.Fprintf(w, "error: %s\n", op.Error)
	}
	return nil
}

func printAbortPlan(w io.Writer, p *env.AbortPlan) {
	dst := ""
	if p.Destination != "" {
		dst = " into " + p.Destination
	}
	fmt.Fprintf(w, "abort of %s %s of environment %s%s (%s, phase %s), nothing changed:\n", p.Op, p.Operation, p.Environment, dst, p.State, p.Phase)
	if p.Op == env.OpStandby {
		fmt.Fprintf(w, "\n  resume every group as handover env resume does; the standby ends Aborted\n")
		return
	}
	fmt.Fprintf(w, "\n1. un-quiesce %s\n", p.Environment)
	for _, u := range p.Unquiesce {
		fmt.Fprintf(w, "   %s\n", u)
	}
	if len(p.Unquiesce) == 0 {
		fmt.Fprintf(w, "   nothing to lift\n")
	}
	fmt.Fprintf(w, "\n2. delete\n")
	for _, d := range p.Drop {
		fmt.Fprintf(w, "   database %s: marked dropped in the ledger\n", d)
	}
	for _, o := range p.Delete {
		fmt.Fprintf(w, "   %s\n", o)
	}
	if len(p.Drop)+len(p.Delete) == 0 {
		fmt.Fprintf(w, "   nothing tagged %s=%s\n", env.TagEnvOp, p.Operation)
	}
	fmt.Fprintf(w, "\n3. check: %s\n", p.Check)
}
