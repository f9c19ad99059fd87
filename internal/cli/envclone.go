package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/env"
)

func newEnvClone(stdout, stderr io.Writer) *cobra.Command {
	var f envFlags
	var dryRun bool
	var quiesce string
	var sets []string
	cmd := &cobra.Command{
		Use:   "clone SRC DST --dry-run",
		Short: "Plan the clone of an environment: what is snapshotted, copied, created and rewritten",
		Long: `clone makes DST a copy of environment SRC, its data included. The plan is:

  1. quiesce SRC: by default every handover database is fenced under its
     current epoch (writes pause, reads stay up); --quiesce standby moves the
     groups' instances to Standby instead (reads stop too), as handover env
     standby does;
  2. in parallel: an EBS snapshot of each database's authoritative volume, an
     RDS snapshot of each RDS instance, and a copy of each bucket into DST's
     comparing every object's checksum (current versions only, not older
     ones);
  3. un-quiesce SRC as soon as every snapshot has started;
  4. build DST: launch template copies tagged DST, groups with the same
     hooks whose databases first-boot from the snapshots, RDS restored from
     its snapshot, DST's own load balancers and target groups;
  5. rewrite SRC's references in DST's user data and tags: bucket names, RDS
     endpoints, load balancers' DNS names, and each --set FROM=TO.

DST's names are SRC's with SRC's name replaced by DST's (staging-orders
becomes prod-orders), or with -DST appended when they do not hold it.

It refuses, changing nothing and naming the fix: an unknown SRC, a DST that
exists (tagged resources, or a name it would take), a group mid-update or
mid-handover, an operation under way on SRC, a --set that matches nothing,
and a reference in user data or tags to a resource not tagged as SRC's (tag
it, or say what DST should use with --set REF=NEW; --set REF=REF keeps it).

In this version only --dry-run is built: it prints the plan and changes
nothing. Taking the snapshots and building DST are not built yet.`,
		Example: `  # the plan, on the local cloud
  handover env clone staging prod --dry-run --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # quiesce by standby, keep a shared log bucket, point DST at its own mail relay
  handover env clone staging prod --dry-run --quiesce standby \
      --set s3://shared-logs=s3://shared-logs --set mail.staging.example.com=mail.prod.example.com

  # machine-readable
  handover env clone staging prod --dry-run --output json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &exitError{code: 2, err: fmt.Errorf("%s takes two arguments, SRC and DST (environment names); got %d", cmd.CommandPath(), len(args))}
			}
			for _, a := range args {
				if err := env.CheckName(a); err != nil {
					return &exitError{code: 2, err: err}
				}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req := env.CloneRequest{Source: f.selector(args[0]), Dest: args[1], Quiesce: quiesce}
			for _, s := range sets {
				set, err := env.ParseSet(s)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				req.Sets = append(req.Sets, set)
			}
			if quiesce != env.QuiesceFence && quiesce != env.QuiesceStandby {
				return &exitError{code: 2, err: fmt.Errorf("--quiesce %q: want fence (databases fenced, reads stay up) or standby (instances to Standby)", quiesce)}
			}
			if !dryRun {
				return &exitError{code: 2, err: errors.New("handover env clone runs only with --dry-run in this version: it prints the plan; taking the snapshots and building DST are not built yet (docs/environments.md)")}
			}
			// A plan takes no lease and waits for nothing.
			f.holder, f.leaseTTL, f.poll, f.timeout = "plan", time.Minute, time.Second, time.Minute
			t, r, err := f.runner(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			defer t.led.Close()
			plan, _, err := r.PlanClone(cmd.Context(), t.clone, req)
			if plan != nil {
				if f.out == "json" {
					if perr := printJSON(stdout, plan); perr != nil {
						return perr
					}
				} else {
					printClonePlan(stdout, plan)
				}
			}
			return envErr(err)
		},
	}
	f.register(cmd, false)
	fl := cmd.Flags()
	fl.BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	fl.StringVar(&quiesce, "quiesce", env.QuiesceFence, "how SRC is quiesced: fence (writes pause, reads stay up) or standby (instances to Standby)")
	fl.StringArrayVar(&sets, "set", nil, "FROM=TO: the text FROM in SRC's user data and tags becomes TO in DST's (repeatable)")
	return cmd
}

func printClonePlan(w io.Writer, p *env.ClonePlan) {
	fmt.Fprintf(w, "clone of environment %s (%s) into %s, nothing changed:\n", p.Source, p.Selector, p.Destination)
	fmt.Fprintf(w, "\n1. quiesce %s by %s\n", p.Source, p.Quiesce)
	for _, d := range p.Fence {
		fmt.Fprintf(w, "   fence database %s (group %s) under epoch %d, volume %s\n", d.Database, d.Group, d.Epoch, d.Volume)
	}
	for _, g := range p.Standby {
		fmt.Fprintf(w, "   group %s: %d to Standby", g.Group, len(g.Standby)+len(g.Pending))
		if g.ToMin != g.Min {
			fmt.Fprintf(w, ", MinSize %d -> %d", g.Min, g.ToMin)
		}
		fmt.Fprintf(w, " (restored exactly)\n")
	}
	if len(p.Fence) == 0 && len(p.Standby) == 0 {
		fmt.Fprintf(w, "   nothing to quiesce\n")
	}
	fmt.Fprintf(w, "\n2. in parallel\n")
	for _, s := range p.Snapshots {
		switch s.Kind {
		case "ebs":
			fmt.Fprintf(w, "   EBS snapshot of %s (database %s), seeds %s\n", s.Volume, s.Of, s.For)
		default:
			fmt.Fprintf(w, "   RDS snapshot of %s, restored as %s\n", s.Of, s.For)
		}
	}
	for _, c := range p.Copies {
		fmt.Fprintf(w, "   copy bucket %s -> %s, each object's checksum compared (current versions only)\n", c.From, c.To)
	}
	if len(p.Snapshots)+len(p.Copies) == 0 {
		fmt.Fprintf(w, "   no persistent part\n")
	}
	fmt.Fprintf(w, "\n3. un-quiesce %s once every snapshot has started\n", p.Source)
	fmt.Fprintf(w, "\n4. create\n")
	for _, c := range p.Creates {
		fmt.Fprintf(w, "   %s %s (from %s)", c.Kind, c.Name, c.From)
		if c.Detail != "" {
			fmt.Fprintf(w, ": %s", c.Detail)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n5. rewrite in DST's user data and tags\n")
	for _, r := range p.Rewrites {
		to := r.To
		if r.ToOf != "" {
			to = "<" + r.ToOf + ">"
		}
		if r.To == "" && r.ToOf == "" {
			to = `""`
		}
		fmt.Fprintf(w, "   %s -> %s (%s; in %s)\n", r.From, to, r.Why, strings.Join(r.Where, ", "))
	}
	if len(p.Rewrites) == 0 {
		fmt.Fprintf(w, "   no reference to %s's resources found\n", p.Source)
	}
	if len(p.Unrewritable) > 0 {
		fmt.Fprintf(w, "\ncannot be rewritten (not tagged %s; tag it, or --set REF=NEW, or --set REF=REF to keep it):\n", p.Selector)
		for _, u := range p.Unrewritable {
			fmt.Fprintf(w, "   %s (%s, in %s)\n", u.Text, u.Kind, u.Where)
		}
	}
	if len(p.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range p.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}
}
