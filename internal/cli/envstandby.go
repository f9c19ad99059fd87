package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/ledger"
)

func newEnvStandby(stdout, stderr io.Writer) *cobra.Command {
	var f envFlags
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "standby NAME",
		Short: "Move every InService instance of an environment's groups to Standby, recording what to restore",
		Long: `standby takes an environment out of traffic without its groups replacing the
instances: every InService instance of every group tagged with the environment
goes to Standby with ShouldDecrementDesiredCapacity, at most 20 instances per
EnterStandby call, and the command waits for each one. Pending instances are
waited for (they cannot enter Standby) and then moved too.

A decrement below a group's MinSize is refused by Auto Scaling, so MinSize is
lowered as far as needed first. The group's MinSize, DesiredCapacity and
MaxSize as found, and every instance moved, are recorded in the ledger before
the call that changes them: handover env resume restores exactly that, a
group whose MinSize equals its size included.

It refuses, changing nothing, while a group update or a handover is running in
one of the groups, and names it. Run again after a kill, it goes on where the
killed run stood; run on an environment already in standby, it says so.`,
		Example: `  # the plan: instances per group, MinSize changes, calls
  handover env standby staging --dry-run

  # on the local cloud
  handover env standby staging --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # machine-readable: the recorded operation
  handover env standby staging --output json`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			started := time.Now()
			t, r, err := f.runner(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			defer t.led.Close()
			op, plan, err := r.StartStandby(cmd.Context(), f.selector(args[0]), dryRun)
			if err != nil {
				return envErr(err)
			}
			if dryRun {
				if f.out == "json" {
					return printJSON(stdout, plan)
				}
				printStandbyPlan(stdout, plan)
				return nil
			}
			switch {
			case op.Phase == env.PhaseInStandby:
				fmt.Fprintf(stderr, "env: environment %s is already in standby (operation %s, since %s)\n", args[0], op.ID, op.UpdatedAt.UTC().Format(time.RFC3339))
			case op.CreatedAt.Before(started):
				// A run that was killed holds the lease until it lapses.
				fmt.Fprintf(stderr, "env: going on with standby %s, recorded at %s, from where it stood (a killed run's lease lapses within its --lease-ttl)\n", op.ID, op.CreatedAt.UTC().Format(time.RFC3339))
			}
			op, err = follow(cmd.Context(), r, &f, op.ID, func(o *ledger.EnvOp) bool { return o.Phase == env.PhaseInStandby || o.State.Terminal() })
			if op != nil {
				if perr := printEnvOp(stdout, f.out, op); perr != nil {
					return perr
				}
			}
			if err != nil {
				return envErr(err)
			}
			if op.State.Terminal() {
				return &exitError{code: 1, err: fmt.Errorf("the standby of %s was rolled back: %s", args[0], op.Error)}
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	return cmd
}

func newEnvResume(stdout, stderr io.Writer) *cobra.Command {
	var f envFlags
	cmd := &cobra.Command{
		Use:   "resume NAME",
		Short: "Bring an environment's instances back from Standby and restore its groups exactly",
		Long: `resume ends the environment's standby: the instances the standby moved leave
Standby (at most 20 per ExitStandby call) and are waited for until InService
(a group with a handover launch hook needs the controller running: leaving
Standby fires the hook), then each group's MinSize and DesiredCapacity are
set back to what the standby recorded before it changed them. An instance
lost while in Standby is replaced by the restored desired capacity.

On a standby still under way (the standby run was killed, or it is running),
resume rolls it back the same way; the standby then ends Aborted. Run again
after a kill, it goes on where the killed run stood.`,
		Example: `  handover env resume staging
  handover env resume staging --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db --output json`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, r, err := f.runner(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			defer t.led.Close()
			op, err := r.RequestResume(cmd.Context(), args[0], false)
			if err != nil {
				return envErr(err)
			}
			op, err = follow(cmd.Context(), r, &f, op.ID, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
			if op != nil {
				if perr := printEnvOp(stdout, f.out, op); perr != nil {
					return perr
				}
			}
			return envErr(err)
		},
	}
	f.register(cmd, true)
	return cmd
}

func (f *envFlags) runner(ctx context.Context, stderr io.Writer) (*envTools, *env.Runner, error) {
	if f.poll <= 0 || f.timeout <= 0 || f.leaseTTL <= 0 {
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("--poll, --timeout and --lease-ttl must be positive (got %s, %s, %s)", f.poll, f.timeout, f.leaseTTL)}
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	t, err := f.open(ctx, stderr)
	if err != nil {
		return nil, nil, err
	}
	cfg := env.DefaultConfig()
	cfg.Holder, cfg.LeaseTTL = f.holder, f.leaseTTL
	r, err := env.New(cfg, t.led, t.cloud, t.cloud, clock.Real{}, log)
	if err != nil {
		t.led.Close()
		return nil, nil, &exitError{code: 2, err: err}
	}
	p := newProgressFor(stderr, "env")
	r.Progress = p.say
	return t, r, nil
}

// follow advances the operation every --poll until done says so or
// --timeout passes, and returns it as last read.
func follow(ctx context.Context, r *env.Runner, f *envFlags, id string, done func(*ledger.EnvOp) bool) (*ledger.EnvOp, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var last *ledger.EnvOp
	for {
		if err := r.Advance(ctx, id); err != nil && ctx.Err() == nil {
			// A failed step is recorded and retried; keep following.
			_ = err
		}
		op, err := r.Get(context.WithoutCancel(ctx), id)
		if err != nil {
			return last, err
		}
		last = op
		if done(op) {
			return op, nil
		}
		select {
		case <-ctx.Done():
			return op, fmt.Errorf("stopped following operation %s after %s in phase %s (it stays recorded: run the command again to go on): %w", id, f.timeout, op.Phase, ctx.Err())
		case <-time.After(f.poll):
		}
	}
}

// envOpOut is `handover env standby|resume --output json`.
type envOpOut struct {
	*ledger.EnvOp
	InStandby bool `json:"in_standby"`
}

func printEnvOp(w io.Writer, out output, op *ledger.EnvOp) error {
	if out == "json" {
		return printJSON(w, envOpOut{EnvOp: op, InStandby: op.Phase == env.PhaseInStandby})
	}
	fmt.Fprintf(w, "%s of environment %s (%s): %s, phase %s\n", op.Op, op.Environment, op.ID, op.State, op.Phase)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tMIN\tDESIRED\tMAX\tMIN DURING STANDBY\tIN STANDBY\tRESTORED")
	for _, g := range op.Groups {
		during := fmt.Sprint(g.Min)
		if g.LoweredMin {
			during = fmt.Sprint(g.LoweredTo)
		}
		ids := strings.Join(g.Standby, ",")
		if ids == "" {
			ids = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", g.Name, g.Min, g.Desired, g.Max, during, ids, yesNo(g.Restored))
	}
	tw.Flush()
	if op.Error != "" {
		fmt.Fprintf(w, "last error: %s\n", op.Error)
	}
	return nil
}

func printStandbyPlan(w io.Writer, p *env.Plan) {
	fmt.Fprintf(w, "standby of environment %s (%s), nothing changed:\n", p.Environment, p.Selector)
	for _, g := range p.Groups {
		fmt.Fprintf(w, "  group %s: min %d desired %d max %d\n", g.Group, g.Min, g.Desired, g.Max)
		if g.ToMin != g.Min {
			fmt.Fprintf(w, "    lower MinSize %d -> %d (restored on resume)\n", g.Min, g.ToMin)
		}
		if len(g.Pending) > 0 {
			fmt.Fprintf(w, "    wait for %d Pending: %s\n", len(g.Pending), strings.Join(g.Pending, ", "))
		}
		if len(g.Standby)+len(g.Pending) > 0 {
			fmt.Fprintf(w, "    EnterStandby with decrement, %s: %s\n", count(g.Calls, "call"), strings.Join(append(append([]string(nil), g.Standby...), g.Pending...), ", "))
		} else {
			fmt.Fprintf(w, "    no InService instance: nothing to move\n")
		}
		if len(g.Already) > 0 {
			fmt.Fprintf(w, "    already in Standby, left alone: %s\n", strings.Join(g.Already, ", "))
		}
	}
}
