package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/dial"
)

const envLong = `env works on a whole environment: the resources tagged handover:environment=NAME
(with --stack, aws:cloudformation:stack-name=NAME, which CloudFormation puts on
every resource of a stack):

  Auto Scaling groups   with their launch templates, lifecycle hooks and the
                        handover databases they hold (the ledger knows each
                        database's authoritative volume)
  load balancers        with their listeners; the one tagged handover:entry=true
                        is the environment's entry point
  target groups
  RDS instances
  S3 buckets

The persistent parts, whose data must not be lost, are the databases' volumes,
the RDS instances and the buckets; groups and load balancers can be rebuilt.

Operations on an environment are ledger records advanced one step at a time,
so a run killed at any step goes on where it stood when run again (the next
run takes over the killed one's lease once it lapses, --lease-ttl).`

// envFlags are what every env subcommand shares.
type envFlags struct {
	endpoint, region, ledgerURL, logLevel string
	holder                                string
	stack                                 bool
	out                                   output
	leaseTTL, poll, timeout               time.Duration
}

func (f *envFlags) register(cmd *cobra.Command, operation bool) {
	f.out = "text"
	host, _ := os.Hostname()
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint-url", envOr("HANDOVER_ENDPOINT_URL", ""), "AWS endpoint URL (the local cloud's address); empty for AWS")
	fl.StringVar(&f.region, "region", envOr("HANDOVER_REGION", ""), "AWS region (default: the AWS environment's)")
	fl.StringVar(&f.ledgerURL, "ledger", envOr("HANDOVER_LEDGER", "sqlite:handover.db"), "ledger URL: sqlite:///abs/path, sqlite:rel/path, postgres://… (the controller's)")
	fl.StringVar(&f.logLevel, "log-level", envOr("HANDOVER_LOG_LEVEL", "warn"), "log level on stderr: debug, info, warn, error, off")
	fl.BoolVar(&f.stack, "stack", false, "NAME is a CloudFormation stack: select by aws:cloudformation:stack-name")
	fl.Var(&f.out, "output", "text or json")
	if operation {
		fl.StringVar(&f.holder, "holder", envOr("HANDOVER_HOLDER", host+"-"+strconv.Itoa(os.Getpid())), "this run's name in the operation's lease")
		fl.DurationVar(&f.leaseTTL, "lease-ttl", 15*time.Second, "how long this run's lease lasts unrenewed (a killed run's is taken over after it)")
		fl.DurationVar(&f.poll, "poll", time.Second, "how often the cloud is read while waiting")
		fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "how long to follow the operation (it stays recorded; run the command again to go on)")
	}
}

func (f *envFlags) selector(name string) env.Selector {
	if f.stack {
		return env.ByStack(name)
	}
	return env.ByName(name)
}

// envTools is what the env commands work with.
type envTools struct {
	led   ledger.Ledger
	cloud *awscloud.Environments
	clone *awscloud.CloneReader
	// aws and s3 make the clients of a clone's builder.
	aws aws.Config
	s3  *s3.Client
}

func (f *envFlags) open(ctx context.Context, stderr io.Writer) (*envTools, error) {
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	target, err := dial.Parse(f.ledgerURL)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--ledger: %w", err)}
	}
	if target.Backend == dial.Memory {
		return nil, &exitError{code: 2, err: errors.New("--ledger memory:// is empty in a new process and forgets the operation when it exits: pass the controller's --ledger")}
	}
	cfg, err := awsConfig(ctx, f.endpoint, f.region, log)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	led, err := dial.Open(ctx, f.ledgerURL, log)
	if err != nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("opening the ledger %s: %w", target, err)}
	}
	pathStyle := f.endpoint != ""
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		// A clone reads objects back that carry no checksum (older
		// uploads); the SDK would log a line for each on stderr.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	cloud := awscloud.NewEnvironments(autoscaling.NewFromConfig(cfg), elb.NewFromConfig(cfg), rds.NewFromConfig(cfg), s3c, cfg.Region)
	return &envTools{led: led, cloud: cloud, clone: awscloud.NewCloneReader(cloud, ec2.NewFromConfig(cfg), s3c), aws: cfg, s3: s3c}, nil
}

// envErr gives bad input exit code 2 and anything else 1.
func envErr(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	if errors.Is(err, env.ErrBadRequest) || errors.Is(err, env.ErrUnknownEnvironment) || errors.Is(err, env.ErrBusy) {
		return &exitError{code: 2, err: err}
	}
	return &exitError{code: 1, err: err}
}

func newEnv(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Show an environment, put it in standby and back, clone it, verify a clone, migrate it",
		Long:  envLong,
		Example: `  # what staging is made of, and which parts hold data
  handover env show staging

  # every InService instance of staging's groups to Standby, then back
  handover env standby staging --dry-run
  handover env standby staging
  handover env resume staging

  # what cloning staging into prod will snapshot, copy, create and rewrite; then do it
  handover env clone staging prod --dry-run
  handover env clone staging prod

  # check prod against staging at the clone's quiesce point
  handover env verify staging prod --dry-run
  handover env verify staging prod --rds-password-file ./pw

  # move staging onto a fresh copy of itself and cut its entry listener over
  handover env migrate staging --dry-run
  handover env migrate staging --bake 5m

  # undo a clone (or a migration before its drop): staging un-quiesced, DST deleted, staging checked unchanged
  handover env abort staging`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newEnvShow(stdout, stderr), newEnvStandby(stdout, stderr), newEnvResume(stdout, stderr), newEnvClone(stdout, stderr), newEnvMigrate(stdout, stderr))
	cmd.AddCommand(newEnvVerify(stdout, stderr))
	cmd.AddCommand(newEnvAbort(stdout, stderr))
	return cmd
}

func oneName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return &exitError{code: 2, err: fmt.Errorf("%s takes one argument, the environment's name (the value of its handover:environment tag); got %d", cmd.CommandPath(), len(args))}
	}
	if err := env.CheckName(args[0]); err != nil {
		return &exitError{code: 2, err: err}
	}
	return nil
}

func newEnvShow(stdout, stderr io.Writer) *cobra.Command {
	var f envFlags
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "List the members of an environment and mark its persistent parts",
		Long: `show lists every resource tagged handover:environment=NAME (or, with --stack,
aws:cloudformation:stack-name=NAME): groups with their instances, hooks and
handover databases, load balancers with their listeners, target groups, RDS
instances and buckets. The persistent parts (databases, RDS instances, buckets)
are marked: they are what a clone copies. It changes nothing.

An environment nothing is tagged with is an error (exit 2).`,
		Example: `  handover env show staging --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db
  handover env show my-stack --stack --region eu-west-1 --output json`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := f.open(cmd.Context(), stderr)
			if err != nil {
				return err
			}
			defer t.led.Close()
			inv, err := env.Discover(cmd.Context(), t.cloud, t.led, f.selector(args[0]))
			if err != nil {
				return envErr(err)
			}
			if f.out == "json" {
				return printJSON(stdout, inv)
			}
			printInventory(stdout, args[0], inv)
			return nil
		},
	}
	f.register(cmd, false)
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func printInventory(w io.Writer, name string, inv *env.Inventory) {
	fmt.Fprintf(w, "environment %s (%s)\n\n", name, inv.Selector)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tPERSISTENT\tDETAIL")
	for _, g := range inv.Groups {
		from := g.LaunchConfiguration
		if g.Template.Name != "" || g.Template.ID != "" {
			from = "launch template " + g.Template.Name + g.Template.ID + " " + g.Template.Version
		}
		counts := map[string]int{}
		for _, i := range g.Instances {
			counts[i.Lifecycle]++
		}
		var states []string
		for _, lc := range []string{"InService", "Standby", "Pending", "Pending:Wait", "EnteringStandby", "Terminating"} {
			if counts[lc] > 0 {
				states = append(states, fmt.Sprintf("%d %s", counts[lc], lc))
			}
		}
		var hooks []string
		for _, h := range g.Hooks {
			hooks = append(hooks, h.Name)
		}
		if len(states) == 0 {
			states = []string{"no instances"}
		}
		detail := fmt.Sprintf("%s; min %d desired %d max %d; %s", from, g.Min, g.Desired, g.Max, strings.Join(states, ", "))
		if len(hooks) > 0 {
			detail += "; hooks " + strings.Join(hooks, ", ")
		}
		fmt.Fprintf(tw, "group\t%s\t%s\t%s\n", g.Name, yesNo(false), detail)
	}
	for _, d := range inv.Databases {
		detail := "not booted yet (no authoritative volume)"
		if d.Volume != "" {
			detail = fmt.Sprintf("volume %s in %s, epoch %d, on %s", d.Volume, d.Zone, d.Epoch, d.Instance)
		}
		if d.Claim != "" {
			detail += ", moving (handover " + d.Claim + ")"
		}
		fmt.Fprintf(tw, "database\t%s\t%s\t%s (group %s)\n", d.ID, yesNo(true), detail, d.Group)
	}
	for _, lb := range inv.LoadBalancers {
		fmt.Fprintf(tw, "load-balancer\t%s\t%s\t%s\n", lb.Name, yesNo(false), lb.DNSName)
		for _, l := range lb.Listeners {
			entry := ""
			if l.Entry {
				entry = " (entry point)"
			}
			fmt.Fprintf(tw, "listener\t%s:%d\t%s\tforwards to %s%s\n", l.Protocol, l.Port, yesNo(false), lastPart(l.TargetGroup), entry)
		}
	}
	for _, tg := range inv.TargetGroups {
		fmt.Fprintf(tw, "target-group\t%s\t%s\t%s\n", tg.Name, yesNo(false), tg.ARN)
	}
	for _, d := range inv.DBInstances {
		detail := d.Engine + ", " + d.Status
		if d.Endpoint != "" {
			detail += ", " + d.Endpoint
		}
		fmt.Fprintf(tw, "rds\t%s\t%s\t%s\n", d.ID, yesNo(true), detail)
	}
	for _, b := range inv.Buckets {
		fmt.Fprintf(tw, "bucket\t%s\t%s\t\n", b.Name, yesNo(true))
	}
	tw.Flush()
	fmt.Fprintf(w, "\npersistent parts: %s, %s, %s\n", count(len(inv.Databases), "database"), count(len(inv.DBInstances), "RDS instance"), count(len(inv.Buckets), "bucket"))
}

// count is "1 bucket", "2 buckets".
func count(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// lastPart shortens a target group ARN to its name.
func lastPart(arn string) string {
	parts := strings.Split(arn, "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2]
	}
	return arn
}
