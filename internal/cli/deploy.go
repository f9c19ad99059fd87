package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/deploy"
)

const deployTemplateLong = `template prints a CloudFormation template (JSON) that deploys handover on an
AWS account for the named Auto Scaling groups:

  an SQS events queue (server-side encrypted) with a dead-letter queue after
  5 failed receives, writable only by the rules below;

  EventBridge rules for exactly the events handover consumes: the lifecycle
  actions of its hooks and the launch results of the named groups, and — as
  these carry no group name, region-wide — EBS createSnapshot and
  createVolume results and instance state changes;

  a DynamoDB ledger table (on-demand, point-in-time recovery, TTL on
  expires_at; retained when the stack is deleted) with partition key pk and
  sort key sk, as the dynamodb ledger expects;

  for each group, a launch hook "handover-launch" (default result ABANDON,
  NotificationMetadata {"database":"…"}) and a terminate hook
  "handover-terminate" (default result CONTINUE) that keeps the old instance
  serving until the handover ends;

  --mode lambda (default): the controller as a Lambda function (runtime
  provided.al2023; parameters CodeS3Bucket and CodeS3Key name a zip holding
  the handover binary as bootstrap, see 'handover lambda --help') fed by the
  queue, and a rule running reconcile and the sweeper every minute;

  --mode controller: a role and an instance profile for 'handover controller'
  on EC2 or ECS; the outputs give its HANDOVER_QUEUE_URL and HANDOVER_LEDGER.
  This role also runs group updates ('handover update'), so its group
  permissions and the Auto Scaling rules also cover each group's replace-all
  successors, named GROUP-ID; it adds launch template versions only to
  templates tagged handover:updatable=true and passes to EC2 only the roles
  named with --instance-role. A managed policy, InstanceSignalPolicy, is for
  the groups' instance role: it lets 'handover signal' tag the instance.

The controller's policy is least privilege and names every action: it creates
snapshots and volumes only tagged handover:managed=true, deletes, attaches
and detaches only what carries that tag, stops, starts and attaches only to
instances of the named groups, completes lifecycle actions only in those
groups, and reaches only this stack's queues and table. Deploying needs
--capabilities CAPABILITY_IAM. The output is the same for the same flags, so
a change shows as a diff.`

func newDeploy(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Print what deploys handover on AWS",
		Long: `deploy prints what it takes to run handover on an AWS account. Its one
subcommand, template, prints the CloudFormation template.`,
		Example: `  # the Lambda deployment for one group
  handover deploy template --group orders-asg > handover.json`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newDeployTemplate(stdout, stderr))
	return cmd
}

func newDeployTemplate(stdout, _ io.Writer) *cobra.Command {
	var (
		groups, databases, roles []string
		mode, outFile            string
		withLogs                 bool
		logsCfg                  deploy.LogsConfig
	)
	cfg := deploy.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "template",
		Short: "Print the CloudFormation template that deploys handover for some Auto Scaling groups",
		Long:  deployTemplateLong,
		Example: `  # the Lambda deployment for two groups, written to a file, then deployed
  handover deploy template --group orders-asg --group billing-asg --output handover.json
  aws cloudformation deploy --template-file handover.json --stack-name handover \
    --capabilities CAPABILITY_IAM \
    --parameter-overrides CodeS3Bucket=my-artifacts CodeS3Key=handover/bootstrap.zip

  # name the database a group's launch hook hands over (default: the group's name)
  handover deploy template --group orders-asg --database orders-asg=orders

  # a role and instance profile for a long-running controller, 30-minute heartbeat
  handover deploy template --group orders-asg --mode controller --heartbeat-timeout 30m

  # a controller that also updates the group, whose launch template's
  # instance profile holds the role orders-instance
  handover deploy template --group orders-asg --mode controller --instance-role orders-instance

  # the ELB access-log pipeline's own stack (bucket, queue, function)
  handover deploy template --logs --output logs.json
  aws cloudformation deploy --template-file logs.json --stack-name handover-logs --capabilities CAPABILITY_IAM \
    --parameter-overrides CodeS3Bucket=my-artifacts CodeS3Key=handover/bootstrap.zip LogBucketName=my-elb-logs \
      DomainEndpoint=https://search-logs-abc.us-east-1.es.amazonaws.com DomainArn=arn:aws:es:us-east-1:123456789012:domain/logs

  # the same pipeline as a daemon on EC2 (handover logs run): a role and
  # instance profile instead of the function
  handover deploy template --logs --logs-trigger daemon --output logs.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if withLogs {
				return writeLogsTemplate(cmd, logsCfg, outFile, stdout)
			}
			if cmd.Flags().Changed("logs-trigger") {
				return &exitError{code: 2, err: errors.New("--logs-trigger is for the log pipeline's stack: add --logs")}
			}
			cfg.Groups = groups
			cfg.Mode = deploy.Mode(mode)
			cfg.InstanceRoles = roles
			cfg.Databases = map[string]string{}
			for _, d := range databases {
				g, db, err := deploy.ParseDatabase(d)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--database %w", err)}
				}
				if prev, ok := cfg.Databases[g]; ok && prev != db {
					return &exitError{code: 2, err: fmt.Errorf("--database: group %q is given two databases, %q and %q", g, prev, db)}
				}
				cfg.Databases[g] = db
			}
			if err := cfg.Validate(); err != nil {
				return &exitError{code: 2, err: flagError(err)}
			}
			if err := checkOutputFile(outFile); err != nil {
				return err
			}
			tmpl, err := deploy.Template(cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			next := fmt.Sprintf("aws cloudformation deploy --template-file %s --stack-name handover --capabilities CAPABILITY_IAM", outFile)
			if cfg.Mode == deploy.ModeLambda {
				next += " --parameter-overrides CodeS3Bucket=BUCKET CodeS3Key=KEY"
			}
			return emitTemplate(stdout, outFile, tmpl, fmt.Sprintf("%s mode, groups %s", cfg.Mode, strings.Join(cfg.Groups, ", ")), next)
		},
	}
	fl := cmd.Flags()
	// StringArray, not StringSlice: group names may contain commas.
	fl.StringArrayVar(&groups, "group", nil, "Auto Scaling group handover serves (required; repeatable)")
	fl.StringArrayVar(&databases, "database", nil, "GROUP=DATABASE: the database id the group's launch hook names (repeatable; default: the group's name)")
	fl.StringVar(&mode, "mode", string(cfg.Mode), "how the controller runs: lambda (a function behind the queue) or controller (a role for a long-running controller)")
	fl.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", cfg.HeartbeatTimeout, "heartbeat timeout of the lifecycle hooks (30s to 2h, whole seconds)")
	fl.StringVar(&cfg.Fence, "fence", cfg.Fence, "how the controller fences the services: http (their endpoints) or ssm (SSM Run Command; adds the SSM permissions)")
	fl.StringArrayVar(&roles, "instance-role", nil, "IAM role (name, or path/name) of the instance profile in the groups' launch templates, which group updates pass to EC2 (--mode controller; repeatable)")
	fl.StringVar(&outFile, "output", "", "write the template to this file instead of stdout")
	fl.BoolVar(&withLogs, "logs", false, "print the ELB access-log pipeline's stack instead: log bucket, notifications, queue with dead-letter queue, the function (handover lambda --mode logs) and its least-privilege role (docs/logs.md)")
	fl.StringVar(&logsCfg.Trigger, "logs-trigger", deploy.TriggerSQS, "with --logs: sqs (the bucket notifies the queue the function consumes), direct (the bucket invokes the function; the queue carries continuations) or daemon (the bucket notifies the queue; handover logs run consumes it on EC2 under the stack's instance profile)")
	return cmd
}

// writeLogsTemplate prints (or writes) the log pipeline's stack; the
// controller's flags have no meaning there, so giving one is an error.
func writeLogsTemplate(cmd *cobra.Command, cfg deploy.LogsConfig, outFile string, stdout io.Writer) error {
	for _, name := range []string{"group", "database", "mode", "heartbeat-timeout", "fence", "instance-role"} {
		if cmd.Flags().Changed(name) {
			return &exitError{code: 2, err: fmt.Errorf("--%s is for the controller's stack, --logs prints the log pipeline's own: deploy them as two stacks, with and without --logs", name)}
		}
	}
	if err := cfg.Validate(); err != nil {
		return &exitError{code: 2, err: flagError(err)}
	}
	if err := checkOutputFile(outFile); err != nil {
		return err
	}
	tmpl, err := deploy.LogsTemplate(cfg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	params := "CodeS3Bucket=BUCKET CodeS3Key=KEY LogBucketName=LOG_BUCKET DomainEndpoint=https://DOMAIN_ENDPOINT DomainArn=DOMAIN_ARN"
	if cfg.Trigger == deploy.TriggerDaemon {
		// No function: the daemon takes the endpoint as a flag.
		params = "LogBucketName=LOG_BUCKET DomainArn=DOMAIN_ARN"
	}
	return emitTemplate(stdout, outFile, tmpl, "the log pipeline, trigger "+cfg.Trigger,
		fmt.Sprintf("aws cloudformation deploy --template-file %s --stack-name handover-logs --capabilities CAPABILITY_IAM "+
			"--parameter-overrides %s", outFile, params))
}

// checkOutputFile refuses a --output that names a format: elsewhere
// --output picks one, but here the template is always JSON, and a file
// named "json" is surely a slip.
func checkOutputFile(outFile string) error {
	if outFile == "json" || outFile == "text" {
		return &exitError{code: 2, err: fmt.Errorf("--output %s: here --output names the file to write (the template is always JSON); leave it out to print to stdout", outFile)}
	}
	return nil
}

// emitTemplate prints tmpl, or writes it to outFile and says what it wrote
// (what) and the command that deploys it (next).
func emitTemplate(stdout io.Writer, outFile string, tmpl []byte, what, next string) error {
	if outFile == "" {
		_, err := stdout.Write(tmpl)
		return err
	}
	if err := writeFileAtomic(outFile, tmpl); err != nil {
		return fmt.Errorf("--output %s: %w", outFile, err)
	}
	fmt.Fprintf(stdout, "deploy: wrote %s (%s)\nnext: %s\n", outFile, what, next)
	return nil
}

// flagError names the flag a configuration error is about.
func flagError(err error) error {
	var fe *deploy.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	flag := map[string]string{
		"groups": "--group", "databases": "--database", "mode": "--mode", "fence": "--fence",
		"heartbeat-timeout": "--heartbeat-timeout", "instance-roles": "--instance-role", "logs-trigger": "--logs-trigger",
	}[fe.Field]
	if flag == "" {
		return err
	}
	if errors.Is(err, deploy.ErrNoGroups) {
		return fmt.Errorf("%s is required: name each Auto Scaling group handover serves, e.g. --group orders-asg (repeatable)", flag)
	}
	return fmt.Errorf("%s: %w", flag, err)
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so a reader never sees half a template.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
