package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/update"
)

type updateFlags struct {
	apiFlags
	req            api.UpdateRequest
	pause, bake    time.Duration
	signalTimeout  time.Duration
	migTimeout     time.Duration
	dryRun, detach bool
	abort          string
	poll           time.Duration
}

func newUpdate(stdout, stderr io.Writer) *cobra.Command {
	var f updateFlags
	cmd := &cobra.Command{
		Use:   "update --group NAME [--strategy rolling|replace-all]",
		Short: "Roll a new launch template version through a group, handing every instance's state over",
		Long: `update replaces every instance of an Auto Scaling group with one on a new
launch template version, and hands each instance's database over to its
replacement through the handover protocol (the write pause of each database
is one handover; reads keep being served by the old instance meanwhile).

  rolling       replace --batch-size instances at a time: launch the new ones
                first (capacity never drops), wait for their handovers and
                health, terminate the old ones, bake, pause, next batch.
                --min-healthy-percent caps how many databases pause writes at
                once. A failed batch rolls every replaced instance back.
  replace-all   create a new group beside the old one with N instances at
                once (N = the old group's desired capacity now), wait for N
                SUCCESS signals (handover signal) within --signal-timeout, then
                complete their handovers, move traffic and delete the old
                group. Any FAILURE or a timeout deletes the new group and
                leaves the old one untouched.

--migration-group first rolls a single-instance group that runs the schema
migrations to the new version; it must signal SUCCESS within
--migration-timeout before the main group starts, and is scaled to 0 after.

The controller runs the update (it is a ledger record, so a restarted
controller resumes it); this command starts it and follows its progress.
Ctrl-C stops following, not the update: abort with --abort ID.`,
		Example: `  # preview, then roll $Latest through the group one instance at a time
  handover update --group orders --dry-run
  handover update --group orders --batch-size 1 --bake 2m

  # a new image, as a new version of the group's launch template
  handover update --group orders --image-id ami-0abc1234 --batch-size 2 --min-healthy-percent 50

  # CloudFormation-style replacement, schema migrations first
  handover update --group orders --strategy replace-all --signal-timeout 15m \
    --migration-group orders-migrate --migration-timeout 30m

  # stop a running update and roll back
  handover update --abort upd-3f9a0c12d4e5 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			return runUpdate(cmd.Context(), c, f, stdout, stderr)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.req.Group, "group", "", "the Auto Scaling group to update")
	fl.StringVar(&f.req.Strategy, "strategy", update.Rolling, "rolling or replace-all")
	fl.StringVar(&f.req.LaunchTemplateVersion, "launch-template-version", "", "version of the group's launch template to roll out: a number, $Latest (default) or $Default")
	fl.StringVar(&f.req.ImageID, "image-id", "", "roll out this image as a new version of the group's launch template instead")
	fl.Int32Var(&f.req.BatchSize, "batch-size", 1, "rolling: instances replaced at once")
	fl.Int32Var(&f.req.MinHealthyPercent, "min-healthy-percent", 90, "rolling: share of the group that keeps taking writes during a batch (a batch may be at most 100-N% of it, and 1 at least)")
	fl.DurationVar(&f.pause, "pause", 0, "rolling: wait between batches")
	fl.DurationVar(&f.bake, "bake", 0, "rolling: watch each batch's new instances this long before going on; one leaving service rolls back")
	fl.DurationVar(&f.signalTimeout, "signal-timeout", 15*time.Minute, "replace-all: time for every new instance to signal SUCCESS")
	fl.StringVar(&f.req.MigrationGroup, "migration-group", "", "a single-instance group updated first; it must signal SUCCESS")
	fl.DurationVar(&f.migTimeout, "migration-timeout", 30*time.Minute, "time for the migration group to signal SUCCESS")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan (instances, order, what each step waits for) and change nothing")
	fl.BoolVar(&f.detach, "detach", false, "start the update and return at once instead of following it")
	fl.StringVar(&f.abort, "abort", "", "abort the running update with this id and follow its rollback")
	fl.DurationVar(&f.poll, "poll", time.Second, "how often progress is read")
	return cmd
}

func runUpdate(ctx context.Context, c *api.Client, f updateFlags, stdout, stderr io.Writer) error {
	if f.poll <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("--poll must be positive, got %s", f.poll)}
	}
	if f.abort == "" && f.req.Group == "" {
		return &exitError{code: 2, err: errors.New("--group is required (or --abort ID)")}
	}
	var u api.Update
	switch {
	case f.abort != "":
		id := f.abort
		var err error
		if u, err = c.AbortUpdate(ctx, id, "aborted with handover update --abort"); err != nil {
			return err
		}
	default:
		f.req.Pause, f.req.Bake = durStr(f.pause), durStr(f.bake)
		f.req.SignalTimeout, f.req.MigrationTimeout = durStr(f.signalTimeout), durStr(f.migTimeout)
		if f.req.MigrationGroup == "" {
			f.req.MigrationTimeout = ""
		}
		started, plan, err := c.StartUpdate(ctx, f.req, f.dryRun)
		if err != nil {
			return err
		}
		if plan != nil {
			if f.out == "json" {
				return printJSON(stdout, plan)
			}
			printPlan(stdout, *plan)
			return nil
		}
		u = *started
	}
	if f.detach {
		if f.out == "json" {
			return printJSON(stdout, u)
		}
		fmt.Fprintf(stdout, "update %s of group %s: %s (%s)\n", u.ID, u.Group, u.State, u.Phase)
		return nil
	}
	p := newProgressFor(stderr, "update")
	defer p.done()
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for !u.State.Terminal() {
		p.say(progressLine(u))
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following update %s (it goes on; see handover updates show %s, or abort it with handover update --abort %s): %w", u.ID, u.ID, u.ID, ctx.Err())
		case <-t.C:
		}
		next, err := c.Update(ctx, u.ID)
		if errors.Is(err, api.ErrNotFound) {
			return fmt.Errorf("update %s is gone from the controller's ledger (is --api pointing at the controller that runs it?): %w", u.ID, err)
		}
		if err != nil {
			p.say("reading progress: " + err.Error())
			continue
		}
		u = next
	}
	p.done()
	if f.out == "json" {
		if err := printJSON(stdout, u); err != nil {
			return err
		}
	} else {
		printUpdate(stdout, u)
	}
	if u.State != ledger.UpdateSucceeded {
		return &exitError{code: 1, err: fmt.Errorf("update %s %s: %s", u.ID, strings.ToLower(string(u.State)), u.Error)}
	}
	return nil
}

func durStr(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func progressLine(u api.Update) string {
	s := fmt.Sprintf("%s %s: %s", u.ID, u.State, u.Phase)
	phase, _ := update.ParsePhase(u.Phase) // a phase this build does not know gets no detail
	switch phase {
	case update.PhaseBatch, update.PhaseRollbackBatch, update.PhaseBake, update.PhasePause:
		s += fmt.Sprintf(" %d/%d", u.Batch+1, len(u.Batches))
	case update.PhaseSignals:
		ok := 0
		for _, v := range u.Signals {
			if v == handover.SignalSuccess {
				ok++
			}
		}
		s += fmt.Sprintf(" %d/%d SUCCESS", ok, u.OldDesired)
	}
	committed := 0
	for _, m := range u.Migrations {
		if m.State == ledger.Committed.String() {
			committed++
		}
	}
	return s + fmt.Sprintf("; %d of %d handovers committed", committed, len(u.Migrations))
}

func printPlan(w io.Writer, p update.Plan) {
	fmt.Fprintf(w, "plan: %s update of group %s (%d instances) from launch template version %s to %s\n", p.Strategy, p.Group, p.Capacity, p.From.Version, p.To.Version)
	if p.NewGroup != "" {
		fmt.Fprintf(w, "new group: %s\n", p.NewGroup)
	}
	for i, s := range p.Steps {
		label := s.Phase.String()
		if s.Batch > 0 {
			label = fmt.Sprintf("batch %d", s.Batch)
		}
		fmt.Fprintf(w, "%d. %s\n", i+1, label)
		for _, in := range s.Instances {
			fmt.Fprintf(w, "     %s  %s  database %s\n", in.ID, dash(in.Zone), dash(in.Database))
		}
		fmt.Fprintf(w, "     waits for: %s\n", s.WaitsFor)
	}
	fmt.Fprintln(w, "nothing was changed (dry run)")
}

func printUpdate(w io.Writer, u api.Update) {
	end := u.EndedAt
	if end.IsZero() {
		end = time.Now()
	}
	fmt.Fprintf(w, "update %s of group %s (%s): %s in %s\n", u.ID, u.Group, u.Spec.Strategy, u.State, end.Sub(u.CreatedAt).Round(100*time.Millisecond))
	fmt.Fprintf(w, "launch template version %s -> %s\n", u.OldTemplate.Version, u.Spec.Template.Version)
	if u.NewGroup != "" {
		fmt.Fprintf(w, "new group: %s\n", u.NewGroup)
	}
	if u.Error != "" {
		fmt.Fprintf(w, "why: %s\n", u.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPHASE\tDURATION\tNOTE")
	for _, s := range u.Timeline {
		d := "-"
		if !s.End.IsZero() {
			d = s.End.Sub(s.Start).Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Phase, d, s.Note)
	}
	fmt.Fprintln(tw, "\nHANDOVER\tDATABASE\tNEW INSTANCE\tSTATE\tDURATION")
	for _, m := range u.Migrations {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, dash(m.Database), m.Instance, m.State, (time.Duration(m.DurationMS) * time.Millisecond).String())
	}
	_ = tw.Flush()
}

func newUpdates(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "updates",
		Short: "List group updates, or show one with its handovers",
		Example: `  handover updates list --unfinished
  handover updates show upd-3f9a0c12d4e5 --output json`,
	}
	var (
		lf         apiFlags
		group      string
		unfinished bool
	)
	list := &cobra.Command{
		Use:     "list",
		Short:   "List updates, oldest first",
		Example: "  handover updates list --group orders\n  handover updates list --unfinished --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := lf.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if group != "" {
				q.Set("group", group)
			}
			if unfinished {
				q.Set("unfinished", "true")
			}
			us, err := c.Updates(cmd.Context(), q)
			if err != nil {
				return err
			}
			if lf.out == "json" {
				return printJSON(stdout, api.Updates{Updates: us})
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tGROUP\tSTRATEGY\tSTATE\tPHASE\tVERSION\tSTARTED\tERROR")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s->%s\t%s\t%s\n", u.ID, u.Group, u.Spec.Strategy, u.State, u.Phase,
					u.OldTemplate.Version, u.Spec.Template.Version, u.CreatedAt.Format(time.RFC3339), u.Error)
			}
			return tw.Flush()
		},
	}
	lf.register(list)
	list.Flags().StringVar(&group, "group", "", "only updates of this group")
	list.Flags().BoolVar(&unfinished, "unfinished", false, "only updates still running")

	show := newShow(stdout, "Show one update: its phases and every handover it caused",
		"  handover updates show upd-3f9a0c12d4e5", (*api.Client).Update, printUpdate)
	cmd.AddCommand(list, show)
	return cmd
}

type signalFlags struct {
	endpoint, region        string
	group, instance, status string
	reason                  string
	waitURL                 string
	waitTimeout             time.Duration
}

func newSignal(stdout, stderr io.Writer) *cobra.Command {
	var f signalFlags
	cmd := &cobra.Command{
		Use:   "signal --status SUCCESS|FAILURE",
		Short: "Tell a running update that this instance is ready (or failed), like cfn-signal",
		Long: `signal is what cfn-signal is to CloudFormation: run it from an instance's user
data once the service is up (SUCCESS) or when setting up failed (FAILURE).
A replace-all update waits for a SUCCESS from every instance of the new
group, and a migration group's instance must send one before the main group
is updated; one FAILURE rolls the update back.

The signal is a tag on the instance (handover:signal, and
handover:signal-reason), so the instance needs only ec2:CreateTags on
itself, not a path to the controller. --instance defaults to the instance
this runs on (from the instance metadata service); --group is checked
against the instance's aws:autoscaling:groupName tag.`,
		Example: `  # at the end of user data
  handover signal --status SUCCESS
  handover signal --status FAILURE --reason "schema migration 42 failed"

  # in the background of user data: SUCCESS once the service answers, FAILURE if it never does
  handover signal --status SUCCESS --wait-url http://127.0.0.1:8080/healthz --wait-timeout 5m &

  # from elsewhere, naming the instance
  handover signal --group orders-upd-1 --instance i-0abc1234 --status SUCCESS`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSignal(cmd.Context(), f, stdout)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint-url", "", "AWS endpoint (the local cloud's URL); default: AWS")
	fl.StringVar(&f.region, "region", "", "AWS region (default from the environment)")
	fl.StringVar(&f.group, "group", "", "the instance's Auto Scaling group (checked when given)")
	fl.StringVar(&f.instance, "instance", "", "the instance that signals (default: this one)")
	fl.StringVar(&f.status, "status", "", "SUCCESS or FAILURE")
	fl.StringVar(&f.reason, "reason", "", "why, for a FAILURE (at most 255 characters are kept)")
	fl.StringVar(&f.waitURL, "wait-url", "", "first wait until this URL answers 200; if it never does within --wait-timeout, signal FAILURE instead")
	fl.DurationVar(&f.waitTimeout, "wait-timeout", 5*time.Minute, "how long --wait-url may take")
	return cmd
}

func runSignal(ctx context.Context, f signalFlags, stdout io.Writer) error {
	status := strings.ToUpper(f.status)
	if status != handover.SignalSuccess && status != handover.SignalFailure {
		return &exitError{code: 2, err: fmt.Errorf("--status %q must be SUCCESS or FAILURE", f.status)}
	}
	if f.endpoint == "" {
		f.endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	cfg, err := awsConfig(ctx, f.endpoint, f.region, nil)
	if err != nil {
		return err
	}
	if f.instance == "" {
		out, err := imds.NewFromConfig(cfg).GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
		if err != nil {
			return fmt.Errorf("finding out which instance this is from the instance metadata service (pass --instance when not on an instance): %w", err)
		}
		b, err := io.ReadAll(out.Content)
		out.Content.Close()
		if err != nil {
			return fmt.Errorf("reading the instance id from the instance metadata service: %w", err)
		}
		f.instance = strings.TrimSpace(string(b))
	}
	client := ec2.NewFromConfig(cfg)
	if f.waitURL != "" && status == handover.SignalSuccess {
		if err := waitOK(ctx, f.waitURL, f.waitTimeout); err != nil {
			status, f.reason = handover.SignalFailure, err.Error()
		}
	}
	if f.group != "" {
		g, err := awscloud.GroupOf(ctx, client, f.instance)
		if err != nil {
			return err
		}
		if g != f.group {
			return &exitError{code: 2, err: fmt.Errorf("instance %s is in group %s, not %s: check --group and --instance", f.instance, g, f.group)}
		}
	}
	if err := awscloud.SendSignal(ctx, client, f.instance, status, f.reason); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signalled %s for instance %s\n", status, f.instance)
	return nil
}

// waitOK polls url until it answers 200 or timeout passes.
func waitOK(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second}
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("--wait-url %q: %w", url, err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else if ctx.Err() == nil || last == "" {
			// A request cut short by the deadline says nothing new: keep
			// what the last complete attempt saw.
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200 within %s (last: %s)", url, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
