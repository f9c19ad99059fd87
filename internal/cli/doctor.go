package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/doctor"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/dial"
)

type doctorFlags struct {
	controllerFlags
	checkIAM bool
	roleARN  string
	timeout  time.Duration
	out      output
}

func newDoctor(stdout, stderr io.Writer) *cobra.Command {
	f := doctorFlags{out: "text"}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Audit a deployment: queues, rules, queue policy, hooks, heartbeats, ledger and (with --check-iam) the role",
		Long: `doctor checks a handover deployment, on AWS or the local cloud, with the flags
(and HANDOVER_* variables) the controller takes, and prints one row per check
with a fix for each that fails. It only reads: no message is taken from a
queue, nothing is created, and a SQLite ledger that does not exist yet is left
for the controller to create (opening an existing ledger upgrades an older
schema, as the controller's start would).

Checks:
  credentials        the AWS credentials resolve
  queue              the events queue exists and answers them
  dead-letter-queue  its redrive policy names a dead-letter queue that exists
  events/KIND        for each kind of event handover consumes, an enabled rule
                     matches it (EventBridge's TestEventPattern, on an event of
                     the shape AWS sends, for every group and hook) and
                     delivers it unchanged to the queue (or, for lifecycle
                     actions, the hook's notification target is the queue)
  queue-policy       the queue policy lets events.amazonaws.com send
                     (sqs:SendMessage) from every rule that delivers to it
  hooks/GROUP        each group handover serves (--group, with its replace-all
                     replacements GROUP-…, or every group with a hook named
                     --hook-prefix…) has a launch and a terminate hook
  metadata/GROUP     the launch hook's NotificationMetadata parses as the
                     controller parses it
  heartbeat/GROUP    the hooks' heartbeat timeouts fit the controller's
                     intervals (below)
  ledger             the ledger opens and answers
  iam/STATEMENT      with --check-iam: every statement of the policy 'handover
                     deploy template --mode controller' grants is allowed to
                     --role-arn (iam:SimulatePrincipalPolicy)

A heartbeat timeout fits when timeout ≥ 2×reconcile-interval + advance-interval
and advance-interval ≤ timeout/3. The controller records a heartbeat once a
third of the timeout has passed, on its advance loop; a launch whose event was
lost is found only by reconcile, which heartbeats it at once. So each
heartbeat goes out with two beats of margin, and a lost launch is found and
kept alive even if one reconcile pass fails. Below reconcile-interval +
advance-interval it fails; between that and the fit it warns.

Exit status: 0 when no check fails (warnings allowed), 1 when one does, 2 when
the flags are wrong.`,
		Example: `  # the local cloud, with the queues and ledger the controller uses
  handover doctor --endpoint-url http://127.0.0.1:4566 \
    --queue-url http://127.0.0.1:4566/000000000000/handover-events \
    --ledger sqlite:///var/lib/handover/ledger.db

  # AWS, with the stack's outputs, and the controller role's permissions
  handover doctor --queue-url "$HANDOVER_QUEUE_URL" --ledger "$HANDOVER_LEDGER" \
    --group orders-db --check-iam --role-arn "$ROLE_ARN"

  # only what fails, for a script
  handover doctor --output json | jq '.checks[] | select(.status == "fail")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDoctor(cmd.Context(), f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	registerDeploymentFlags(cmd, &f.controllerFlags)
	ddef := daemon.DefaultConfig()
	fl.DurationVar(&f.advance, "advance-interval", ddef.AdvanceEvery, "the controller's --advance-interval, which heartbeat timeouts must fit")
	fl.DurationVar(&f.reconcile, "reconcile-interval", ddef.ReconcileEvery, "the controller's --reconcile-interval, which heartbeat timeouts must fit")
	fl.BoolVar(&f.checkIAM, "check-iam", false, "also simulate the controller role's permissions (AWS only: needs iam:SimulatePrincipalPolicy and --role-arn)")
	fl.StringVar(&f.roleARN, "role-arn", envOr("HANDOVER_ROLE_ARN", ""), "with --check-iam: the controller's role (the stack's RoleArn output)")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up on the checks after this long")
	fl.Var(&f.out, "output", "text or json")
	fl.StringVar(&f.logLevel, "log-level", envOr("HANDOVER_LOG_LEVEL", "warn"), "log level on stderr: debug, info, warn, error, off")
	return cmd
}

func runDoctor(ctx context.Context, f doctorFlags, stdout, stderr io.Writer) error {
	switch {
	case f.queueURL == "":
		return &exitError{code: 2, err: errors.New("--queue-url is required: the URL of the SQS queue EventBridge delivers handover's events to")}
	case f.checkIAM && f.roleARN == "":
		return &exitError{code: 2, err: errors.New("--check-iam needs --role-arn (HANDOVER_ROLE_ARN): the controller's role, the stack's RoleArn output")}
	case f.advance <= 0 || f.reconcile <= 0:
		return &exitError{code: 2, err: fmt.Errorf("--advance-interval (%s) and --reconcile-interval (%s) must be positive", f.advance, f.reconcile)}
	case f.timeout <= 0:
		return &exitError{code: 2, err: fmt.Errorf("--timeout %s must be positive", f.timeout)}
	case f.fenceVia != "http" && f.fenceVia != "ssm":
		return &exitError{code: 2, err: fmt.Errorf("unknown --fence %q: use http or ssm", f.fenceVia)}
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	awsCfg, err := awsConfig(ctx, f.endpoint, f.region, log)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	deps := doctor.Deps{
		Credentials: awsCfg.Credentials,
		SQS:         sqs.NewFromConfig(awsCfg),
		Events:      eventbridge.NewFromConfig(awsCfg),
		AutoScaling: autoscaling.NewFromConfig(awsCfg),
		OpenLedger:  func(ctx context.Context, url string) (ledger.Ledger, error) { return dial.Open(ctx, url, log) },
		Clock:       clock.Real{},
		Logger:      log,
	}
	if f.checkIAM {
		deps.IAM = iam.NewFromConfig(awsCfg)
	}
	rep := doctor.Run(ctx, doctor.Config{
		QueueURL: f.queueURL, DeadLetterURL: f.dlqURL, LedgerURL: f.ledgerURL,
		Groups: f.groups, HookPrefix: f.hookPrefix, AdvanceEvery: f.advance, ReconcileEvery: f.reconcile,
		Fence: f.fenceVia, RoleARN: f.roleARN,
	}, deps)
	if f.out == "json" {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printDoctor(stdout, rep)
	}
	if n := rep.Count(doctor.Fail); n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d check(s) failed", n)}
	}
	return nil
}

// printDoctor writes the report as a table, each fix under its row.
func printDoctor(w io.Writer, rep doctor.Report) {
	width := len("CHECK")
	for _, c := range rep.Checks {
		width = max(width, len(c.Check))
	}
	label := map[doctor.Status]string{doctor.OK: "ok", doctor.Warn: "warn", doctor.Fail: "FAIL", doctor.Skip: "skip"}
	fmt.Fprintf(w, "%-*s  %-6s  %s\n", width, "CHECK", "STATUS", "DETAIL")
	indent := strings.Repeat(" ", width+2+6+2)
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "%-*s  %-6s  %s\n", width, c.Check, label[c.Status], c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(w, "%sfix: %s\n", indent, c.Fix)
		}
	}
	fmt.Fprintf(w, "doctor: %d checks: %d ok, %d warn, %d FAIL, %d skipped\n",
		len(rep.Checks), rep.Count(doctor.OK), rep.Count(doctor.Warn), rep.Count(doctor.Fail), rep.Count(doctor.Skip))
}
