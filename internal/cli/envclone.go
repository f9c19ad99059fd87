package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/ledger"
)

func newEnvClone(stdout, stderr io.Writer) *cobra.Command {
	var f envFlags
	var dryRun bool
	var quiesce string
	var sets []string
	var servicePort int
	var manifests bool
	cmd := &cobra.Command{
		Use:   "clone SRC DST",
		Short: "Clone an environment, its data included: snapshots, bucket copies, DST built from them",
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

--dry-run prints the plan and changes nothing. Without it the clone is a
ledger record advanced one step at a time, each thing it makes recorded
before the call that makes it and tagged handover:env-op=ID: killed at any
step, the command run again goes on where it stood (once the killed run's
lease lapses, --lease-ttl). A clone that fails before SRC is un-quiesced
un-quiesces it first. It returns once DST's groups are in service and its
databases have booted from their snapshots, and reports SRC's write pause.

While the databases are fenced, each one's content manifest (GET
/admin/manifest on its service) is read in parallel with the snapshot
starts and recorded for env verify; --manifests=false skips it.

Buckets are copied after the un-quiesce: their copy is of the objects as
they are then, not at the quiesce point; each copied key's SHA-256 is
recorded for env verify. handover env verify SRC DST checks DST against SRC
at the quiesce point; handover env abort SRC undoes a clone at any step
(SRC un-quiesced, DST deleted, SRC checked unchanged).`,
		Example: `  # the plan, on the local cloud
  handover env clone staging prod --dry-run --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # quiesce by standby, keep a shared log bucket, point DST at its own mail relay
  handover env clone staging prod --dry-run --quiesce standby \
      --set s3://shared-logs=s3://shared-logs --set mail.staging.example.com=mail.prod.example.com

  # run it (the command run again after a kill goes on where it stood)
  handover env clone staging prod --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # machine-readable
  handover env clone staging prod --dry-run --output json
  handover env clone staging prod --output json`,
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
			req := env.CloneRequest{Source: f.selector(args[0]), Dest: args[1], Quiesce: quiesce, NoManifests: !manifests}
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
				return runClone(cmd, stdout, stderr, &f, req, servicePort)
			}
			// A plan takes no lease and waits for nothing.
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
	f.register(cmd, true)
	fl := cmd.Flags()
	fl.IntVar(&servicePort, "service-port", fence.DefaultPort, "port of the service's fence endpoints on each instance (the controller's --service-port)")
	fl.BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	fl.StringVar(&quiesce, "quiesce", env.QuiesceFence, "how SRC is quiesced: fence (writes pause, reads stay up) or standby (instances to Standby)")
	fl.StringArrayVar(&sets, "set", nil, "FROM=TO: the text FROM in SRC's user data and tags becomes TO in DST's (repeatable)")
	fl.BoolVar(&manifests, "manifests", true, "read each fenced database's content manifest (GET /admin/manifest) while the snapshots start, for env verify")
	return cmd
}

// runClone starts (or goes on with) a clone and follows it to its end.
func runClone(cmd *cobra.Command, stdout, stderr io.Writer, f *envFlags, req env.CloneRequest, servicePort int) error {
	started := time.Now()
	t, r, err := f.runner(cmd.Context(), stderr)
	if err != nil {
		return err
	}
	defer t.led.Close()
	runTools(r, t, servicePort) // a clone aborted meanwhile is carried out by this run too
	r.Manifests = env.FenceManifests{Client: &fence.Client{Port: servicePort}}
	op, plan, err := r.StartClone(cmd.Context(), t.clone, req)
	if err != nil {
		if plan != nil && f.out != "json" {
			printClonePlan(stdout, plan)
		}
		return envErr(err)
	}
	if op.CreatedAt.Before(started) {
		fmt.Fprintf(stderr, "env: going on with clone %s, recorded at %s, from where it stood in %s (a killed run's lease lapses within its --lease-ttl)\n", op.ID, op.CreatedAt.UTC().Format(time.RFC3339), op.Phase)
	} else {
		fmt.Fprintf(stderr, "env: clone %s of %s into %s started\n", op.ID, req.Source.Value, req.Dest)
	}
	op, err = follow(cmd.Context(), r, f, op.ID, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
	if op != nil {
		if perr := printCloneOp(stdout, f.out, op); perr != nil {
			return perr
		}
	}
	if err != nil {
		return envErr(err)
	}
	if op.State != ledger.UpdateSucceeded {
		return &exitError{code: 1, err: fmt.Errorf("the clone of %s into %s %s: %s", op.Environment, op.Cloning.Dest, strings.ToLower(string(op.State)), op.Error)}
	}
	return nil
}

// cloneOut is `handover env clone --output json`: the recorded operation
// with its write pause.
type cloneOut struct {
	*ledger.EnvOp
	WritePauseMS int64 `json:"write_pause_ms"`
}

func writePause(op *ledger.EnvOp) time.Duration {
	if op.Cloning == nil || op.Cloning.QuiescedAt.IsZero() || op.Cloning.UnquiescedAt.IsZero() {
		return 0
	}
	return op.Cloning.UnquiescedAt.Sub(op.Cloning.QuiescedAt)
}

func printCloneOp(w io.Writer, out output, op *ledger.EnvOp) error {
	if out == "json" {
		return printJSON(w, cloneOut{EnvOp: op, WritePauseMS: writePause(op).Milliseconds()})
	}
	fmt.Fprintf(w, "clone of environment %s into %s (%s): %s, phase %s\n", op.Environment, op.Cloning.Dest, op.ID, op.State, op.Phase)
	if p := writePause(op); p > 0 {
		fmt.Fprintf(w, "%s's write pause: %s (quiesce to the last snapshot's start)\n", op.Environment, p.Round(time.Millisecond))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tID\tDONE\tDETAIL")
	for _, it := range op.Cloning.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Kind, it.Name, orDash(it.ID), yesNo(it.Done), orDash(it.Detail))
	}
	tw.Flush()
	if op.Error != "" {
		fmt.Fprintf(w, "error: %s\n", op.Error)
	}
	return nil
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
