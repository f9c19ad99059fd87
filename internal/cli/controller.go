package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/fence/ssmfence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/dial"
	"github.com/handover-dev/handover/internal/pacing"
	"github.com/handover-dev/handover/internal/release"
	"github.com/handover-dev/handover/internal/replica"
	"github.com/handover-dev/handover/internal/update"
)

type controllerFlags struct {
	endpoint, region, queueURL, dlqURL, ledgerURL, listen, token             string
	holder, hookPrefix, logLevel, fenceVia, fenceCommand                     string
	groups                                                                   []string
	servicePort                                                              int
	noPreCopy                                                                bool
	cutover                                                                  string
	poll, advance, reconcile, sweep, sweepGrace, wait, stepTimeout, leaseTTL time.Duration
	// --releases: the release controller in this process.
	releases                       bool
	releaseInterval                time.Duration
	releasePort                    int
	releaseDevice                  string
	releaseStepTimeout, releaseTTL time.Duration
	// The access-log pipeline the dashboard shows (/v1/logs).
	logsMetricsURL, logsDLQURL string
	logsEvery                  time.Duration
	// The read replicas the dashboard charts (/v1/replicas).
	replicas                                         []string
	replicaUser, replicaPasswordFile, replicaSSLMode string
	replicaEvery                                     time.Duration
}

func newController(stdout, stderr io.Writer) *cobra.Command {
	var f controllerFlags
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the handover controller: consume the events queue and drive every handover",
		Long: `controller is the long-running handover daemon. It consumes the SQS queue that
EventBridge feeds with Auto Scaling lifecycle and EC2/EBS events, drives every
migration through the handover protocol, and runs reconcile (Describe* is the
truth; events are hints) and the tag-scoped sweeper on intervals.

A queue message is deleted only after its effect is committed to the ledger;
a message that can never be processed goes to the dead-letter queue (from
--dead-letter-queue-url or the queue's redrive policy) with the reason.
Several controllers may share one PostgreSQL ledger: leases keep them from
working the same migration twice.

It acts only on lifecycle hooks whose name starts with --hook-prefix, so other
hooks on the same groups are left to their owners.

At start it checks that AWS credentials resolve, that the queue exists and
answers them (GetQueueAttributes: no message is taken), and that the queue's
redrive policy names a dead-letter queue that exists (as does
--dead-letter-queue-url, if given). If one does not, it exits with status 2
and says what to fix. Throttling, server errors and network failures are not
misconfigurations: they are logged and retried while reconcile and in-flight
migrations go on. 'handover doctor' audits the rest of a deployment.

With --releases it also runs the release controller (docs/releases.md):
new instances of groups that join a release channel get the channel's
latest release, release volumes nobody uses are deleted, and a rollout
whose publish died is finished, as 'handover release controller' does on
its own.

HTTP API (--listen, loopback by default; any other address needs a bearer
token from --api-token or HANDOVER_API_TOKEN):
  GET /healthz               200 while the ledger answers (no token needed)
  GET /v1/status             what the controller is doing
  GET /v1/migrations         ?state=&database=&unfinished=true&limit=
  GET /v1/migrations/{id}    one migration with its per-step timeline
  GET /v1/databases          each database's authoritative volume and epoch
  GET /metrics               Prometheus metrics
  GET /v1/envs, /v1/envs/{id} environment operations (handover env)
  POST /v1/envs/{id}/abort   abort one, as handover env abort does; the
                             controller carries every abort to its end
  GET /v1/replicas           the lag of the --replica read replicas
  GET /v1/logs               the access-log pipeline of --logs-metrics-url and
                             --logs-dead-letter-queue-url
  GET /                      the dashboard (docs/dashboard.md): its page and
                             assets load without the token, then ask for it
                             and read only the /v1 API with it

Every flag falls back to an environment variable (HANDOVER_<FLAG> in upper
case with underscores, e.g. HANDOVER_QUEUE_URL); AWS credentials and region
come from the standard AWS environment, files or instance role.`,
		Example: `  # against the local cloud (handover localcloud), with an SQLite ledger
  handover controller --endpoint-url http://127.0.0.1:4566 \
    --queue-url http://127.0.0.1:4566/000000000000/handover-events \
    --ledger sqlite:///var/lib/handover/ledger.db

  # on AWS, two controllers sharing a PostgreSQL ledger, API on all interfaces
  HANDOVER_API_TOKEN=$(cat /etc/handover/token) handover controller \
    --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/handover-events \
    --ledger postgres://handover@db.internal/handover --listen 0.0.0.0:7070

  # the same, also giving new instances of release channels their release
  handover controller --queue-url … --ledger postgres://handover@db.internal/handover --releases --release-port 8080

  # then, from another shell
  handover status
  handover migrations list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runController(cmd.Context(), f, stderr)
		},
	}
	fl := cmd.Flags()
	registerEngineFlags(cmd, &f)
	fl.StringVar(&f.listen, "listen", envOr("HANDOVER_LISTEN", "127.0.0.1:7070"), "address of the HTTP API and metrics")
	fl.StringVar(&f.token, "api-token", "", "bearer token the API requires (or HANDOVER_API_TOKEN)")
	ddef := daemon.DefaultConfig()
	fl.DurationVar(&f.advance, "advance-interval", ddef.AdvanceEvery, "how often every unfinished migration is looked at (keep below hook timeout/3)")
	fl.DurationVar(&f.reconcile, "reconcile-interval", ddef.ReconcileEvery, "how often reconcile compares the groups with the ledger")
	fl.DurationVar(&f.sweep, "sweep-interval", ddef.SweepEvery, "how often the sweeper deletes what no migration owns")
	fl.DurationVar(&f.wait, "queue-wait", ddef.WaitTime, "long-poll wait of each receive (at most 20s)")
	fl.BoolVar(&f.releases, "releases", false, "also run the release controller in this process, as handover release controller runs it on its own")
	fl.DurationVar(&f.releaseInterval, "release-interval", 2*time.Second, "with --releases: how often to look at waiting launches and channels")
	fl.IntVar(&f.releasePort, "release-port", 8080, "with --releases: the services' port, where GET /release says which release they serve and GET /healthz whether they are healthy")
	fl.StringVar(&f.releaseDevice, "release-device", release.DefaultDevice, "with --releases: the device release volumes are attached under (the agent's --release-device)")
	fl.DurationVar(&f.releaseStepTimeout, "release-step-timeout", 5*time.Minute, "with --releases: how long one instance may take to serve a release healthily when finishing a rollout whose publish died")
	fl.DurationVar(&f.releaseTTL, "release-lease-ttl", 30*time.Second, "with --releases: the channel lease's term (as publish's --lease-ttl)")
	fl.StringVar(&f.logsMetricsURL, "logs-metrics-url", envOr("HANDOVER_LOGS_METRICS_URL", ""), "the access-log pipeline's metrics (handover logs run --metrics-addr), e.g. http://127.0.0.1:9108/metrics: read every --logs-metrics-interval for GET /v1/logs and the dashboard")
	fl.StringSliceVar(&f.replicas, "replica", nil, "a read replica (DB instance identifier) whose lag GET /v1/replicas and the dashboard chart (repeatable; needs the primary's master password)")
	fl.StringVar(&f.replicaUser, "replica-master-user", "", "with --replica: the primary's master user (default: its MasterUsername)")
	fl.StringVar(&f.replicaPasswordFile, "replica-master-password-file", "", "with --replica: file holding the primary's master password (or HANDOVER_MASTER_PASSWORD), as handover replica status takes it")
	fl.StringVar(&f.replicaSSLMode, "replica-sslmode", "prefer", "with --replica: libpq sslmode for the connections to the servers")
	fl.DurationVar(&f.replicaEvery, "replica-interval", 10*time.Second, "with --replica: how often to read each replica's lag (the last 360 readings are kept)")
	fl.DurationVar(&f.logsEvery, "logs-metrics-interval", 5*time.Second, "how often to read --logs-metrics-url (the dashboard keeps the last 360 readings)")
	fl.StringVar(&f.logsDLQURL, "logs-dead-letter-queue-url", envOr("HANDOVER_LOGS_DEAD_LETTER_QUEUE_URL", ""), "the access-log pipeline's dead-letter queue (its --dlq-url): its depth and newest reasons in GET /v1/logs and the dashboard")
	return cmd
}

// controllerEnvRunner is the environment runner the controller carries
// aborts with (POST /v1/envs/{id}/abort, the dashboard's button): the same
// tools `handover env abort` uses.
func controllerEnvRunner(eng *engine, f controllerFlags, log *slog.Logger) (*env.Runner, error) {
	cfg := env.DefaultConfig()
	cfg.Holder, cfg.LeaseTTL = f.holder, f.leaseTTL
	pathStyle := f.endpoint != ""
	s3c := s3.NewFromConfig(eng.aws, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	c := eng.aws
	cloud := awscloud.NewEnvironments(autoscaling.NewFromConfig(c), elasticloadbalancingv2.NewFromConfig(c), rds.NewFromConfig(c), s3c, c.Region)
	r, err := env.New(cfg, eng.led, cloud, cloud, clock.Real{}, log)
	if err != nil {
		return nil, fmt.Errorf("setting up environment aborts: %w", err)
	}
	runTools(r, &envTools{led: eng.led, cloud: cloud, aws: c, s3: s3c}, f.servicePort)
	return r, nil
}

// replicaStatus reads a replica's lag with the primary's master login.
type replicaStatus struct {
	tool   *replica.Tool
	master replica.Login
}

func (r replicaStatus) Status(ctx context.Context, id string) (*replica.Status, error) {
	return r.tool.Status(ctx, id, r.master, "")
}

// controllerReplicas is what reads the --replica replicas' lag.
func controllerReplicas(eng *engine, f controllerFlags, log *slog.Logger) (replicaStatus, error) {
	if f.replicaEvery <= 0 {
		return replicaStatus{}, &exitError{code: 2, err: fmt.Errorf("--replica-interval %s: give a positive duration", f.replicaEvery)}
	}
	master := replica.Login{User: f.replicaUser, Password: os.Getenv("HANDOVER_MASTER_PASSWORD")}
	if f.replicaPasswordFile != "" {
		pw, err := readSecret(f.replicaPasswordFile)
		if err != nil {
			return replicaStatus{}, &exitError{code: 2, err: fmt.Errorf("--replica-master-password-file: %w", err)}
		}
		master.Password = pw
	}
	if master.Password == "" {
		return replicaStatus{}, &exitError{code: 2, err: errors.New("--replica needs the primary's master password to read the lag: pass --replica-master-password-file FILE or set HANDOVER_MASTER_PASSWORD")}
	}
	return replicaStatus{tool: &replica.Tool{RDS: rds.NewFromConfig(eng.aws), Log: log, SSLMode: f.replicaSSLMode}, master: master}, nil
}

// releaseFlagsValid checks the --release-* flags.
func (f controllerFlags) releaseFlagsValid() error {
	if !f.releases {
		return nil
	}
	switch {
	case f.releaseInterval <= 0:
		return fmt.Errorf("--release-interval %s: give a positive duration", f.releaseInterval)
	case f.releasePort < 1 || f.releasePort > 65535:
		return fmt.Errorf("--release-port %d: give the services' port", f.releasePort)
	case f.releaseStepTimeout <= 0:
		return fmt.Errorf("--release-step-timeout %s: give a positive duration", f.releaseStepTimeout)
	case f.releaseTTL < 3*time.Second:
		return fmt.Errorf("--release-lease-ttl %s: give at least 3s", f.releaseTTL)
	}
	return nil
}

// registerEngineFlags adds the flags the controller and the Lambda
// function share: where the cloud and the ledger are, and how the state
// machine behaves.
func registerEngineFlags(cmd *cobra.Command, f *controllerFlags) {
	host, _ := os.Hostname()
	fl := cmd.Flags()
	registerDeploymentFlags(cmd, f)
	fl.StringVar(&f.holder, "holder", envOr("HANDOVER_HOLDER", host+"-"+strconv.Itoa(os.Getpid())), "this controller's name in leases; distinct per controller")
	fl.IntVar(&f.servicePort, "service-port", fence.DefaultPort, "port of the service's fence and health endpoints on each instance")
	fl.StringVar(&f.fenceCommand, "fence-command", envOr("HANDOVER_FENCE_COMMAND", "handover"), "with --fence ssm: how instances run handover")
	fl.StringVar(&f.logLevel, "log-level", envOr("HANDOVER_LOG_LEVEL", "info"), "log level on stderr: debug, info, warn, error, off")
	fl.BoolVar(&f.noPreCopy, "no-pre-copy", false, "skip the pre-copy snapshot (the write pause then grows with the state)")
	fl.StringVar(&f.cutover, "cutover", envOr("HANDOVER_CUTOVER", handover.CutoverAuto), "how the old instance stops answering before the new one takes writes, unless a hook's metadata says: auto, retire, drain or overlap (docs/fence-protocol.md)")
	def := handover.DefaultConfig()
	fl.DurationVar(&f.leaseTTL, "lease-ttl", def.LeaseTTL, "how long a crashed controller keeps its migrations from the others (advance-interval must be under half of it)")
	fl.DurationVar(&f.stepTimeout, "step-timeout", def.StepTimeout, "how long one step may last before the migration rolls back (snapshot steps have their own, longer bound)")
	fl.DurationVar(&f.poll, "poll-interval", def.PollInterval, "how soon a step waiting on the cloud looks again")
	fl.DurationVar(&f.sweepGrace, "sweep-grace", def.SweepGrace, "how long resources of unknown migrations are spared")
}

// registerDeploymentFlags adds the flags that say where a deployment is
// and what it serves, which `handover doctor` shares with the controller
// so that one set of flags (or HANDOVER_* variables) drives both.
func registerDeploymentFlags(cmd *cobra.Command, f *controllerFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint-url", envOr("HANDOVER_ENDPOINT_URL", ""), "AWS endpoint URL (the local cloud's address); empty for AWS")
	fl.StringVar(&f.region, "region", envOr("HANDOVER_REGION", ""), "AWS region (default: the AWS environment's)")
	fl.StringVar(&f.queueURL, "queue-url", envOr("HANDOVER_QUEUE_URL", ""), "URL of the SQS queue EventBridge delivers handover's events to (required)")
	fl.StringVar(&f.dlqURL, "dead-letter-queue-url", envOr("HANDOVER_DEAD_LETTER_QUEUE_URL", ""), "queue for poison messages (default: the queue's redrive policy)")
	fl.StringVar(&f.ledgerURL, "ledger", envOr("HANDOVER_LEDGER", "sqlite:handover.db"), "ledger URL: sqlite:///abs/path, sqlite:rel/path, postgres://…")
	fl.StringVar(&f.hookPrefix, "hook-prefix", envOr("HANDOVER_HOOK_PREFIX", "handover"), "act only on lifecycle hooks whose name starts with this")
	fl.StringSliceVar(&f.groups, "group", nil, "Auto Scaling group reconcile looks at, with its replace-all replacements <group>-… (repeatable; default: every group)")
	fl.StringVar(&f.fenceVia, "fence", envOr("HANDOVER_FENCE", "http"), "how to reach the service's fence: http (its endpoints on the instance's private address) or ssm (SSM Run Command running 'handover agent fence' on the instance)")
}

// engine is a handover controller wired to the cloud and the ledger.
type engine struct {
	ctl     *handover.Controller
	led     ledger.Ledger
	aws     aws.Config
	metrics *daemon.Metrics
	target  dial.Target
}

// configFromFlags validates the shared flags into a controller config.
func configFromFlags(f controllerFlags) (handover.Config, dial.Target, error) {
	if f.queueURL == "" {
		return handover.Config{}, dial.Target{}, &exitError{code: 2, err: errors.New("--queue-url is required: the URL of the SQS queue EventBridge delivers handover's events to")}
	}
	target, err := dial.Parse(f.ledgerURL)
	if err != nil {
		return handover.Config{}, dial.Target{}, &exitError{code: 2, err: err}
	}
	if f.fenceVia != "http" && f.fenceVia != "ssm" {
		return handover.Config{}, dial.Target{}, &exitError{code: 2, err: fmt.Errorf("unknown --fence %q: use http or ssm", f.fenceVia)}
	}
	cfg := handover.DefaultConfig()
	cfg.Holder, cfg.HookPrefix, cfg.PreCopy, cfg.PollInterval, cfg.SweepGrace = f.holder, f.hookPrefix, !f.noPreCopy, f.poll, f.sweepGrace
	cfg.Cutover = f.cutover
	cfg.StepTimeout, cfg.LeaseTTL = f.stepTimeout, f.leaseTTL
	if cfg.RetryBase > f.poll {
		cfg.RetryBase = f.poll
	}
	if err := cfg.Validate(); err != nil {
		return handover.Config{}, dial.Target{}, &exitError{code: 2, err: err}
	}
	return cfg, target, nil
}

// buildEngine connects to the cloud and opens the ledger. Close the
// ledger when done.
func buildEngine(ctx context.Context, f controllerFlags, cfg handover.Config, target dial.Target, log *slog.Logger) (*engine, error) {
	awsCfg, err := awsConfig(ctx, f.endpoint, f.region, log)
	if err != nil {
		return nil, err
	}
	led, err := dial.Open(ctx, f.ledgerURL, log)
	if err != nil {
		return nil, fmt.Errorf("opening the ledger %s: %w", target, err)
	}
	clk := clock.Real{}
	pacer, err := pacing.New(clk, pacing.Config{})
	if err != nil {
		led.Close()
		return nil, err
	}
	metrics := daemon.NewMetrics(led, clk)
	cloud := awscloud.New(ec2.NewFromConfig(awsCfg), autoscaling.NewFromConfig(awsCfg), f.groups).WithTargets(elasticloadbalancingv2.NewFromConfig(awsCfg))
	var svc handover.Service = handover.HTTPService{Client: &fence.Client{Port: f.servicePort}}
	if f.fenceVia == "ssm" {
		svc = &ssmfence.Service{API: ssm.NewFromConfig(awsCfg), Command: f.fenceCommand, Port: f.servicePort, Logger: log}
	}
	ctl, err := handover.New(cfg, handover.Deps{
		Cloud: cloud, Service: svc, Ledger: led, Pacer: pacer, Clock: clk, Logger: log, Observer: metrics,
	})
	if err != nil {
		led.Close()
		return nil, err
	}
	return &engine{ctl: ctl, led: led, aws: awsCfg, metrics: metrics, target: target}, nil
}

func runController(ctx context.Context, f controllerFlags, stderr io.Writer) error {
	if f.token == "" {
		f.token = os.Getenv("HANDOVER_API_TOKEN")
	}
	cfg, target, err := configFromFlags(f)
	if err != nil {
		return err
	}
	if err := daemon.CheckListen(f.listen, f.token); err != nil {
		return &exitError{code: 2, err: err}
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if err := f.releaseFlagsValid(); err != nil {
		return &exitError{code: 2, err: err}
	}
	if f.advance*2 > f.leaseTTL {
		return &exitError{code: 2, err: fmt.Errorf("--advance-interval %s must be under half of --lease-ttl %s, or leases lapse between renewals", f.advance, f.leaseTTL)}
	}
	dcfg := daemon.DefaultConfig()
	dcfg.QueueURL, dcfg.DeadLetterURL, dcfg.WaitTime, dcfg.Holder, dcfg.LedgerName = f.queueURL, f.dlqURL, f.wait, f.holder, target.String()
	dcfg.AdvanceEvery, dcfg.ReconcileEvery, dcfg.SweepEvery = f.advance, f.reconcile, f.sweep
	if err := dcfg.Validate(); err != nil {
		return &exitError{code: 2, err: err}
	}
	eng, err := buildEngine(ctx, f, cfg, target, log)
	if err != nil {
		return err
	}
	defer eng.led.Close()
	clk := clock.Real{}
	d, err := daemon.New(dcfg, eng.ctl, sqs.NewFromConfig(eng.aws), eng.led, clk, log, eng.metrics)
	if err != nil {
		return err
	}
	ucfg := update.DefaultConfig()
	ucfg.Holder, ucfg.LeaseTTL = f.holder, f.leaseTTL
	ucfg.Poll = min(ucfg.Poll, f.advance)
	runner, err := update.New(ucfg, eng.led, awscloud.NewGroups(ec2.NewFromConfig(eng.aws), autoscaling.NewFromConfig(eng.aws)), clk, log)
	if err != nil {
		return err
	}
	d.WithUpdates(runner)
	envRunner, err := controllerEnvRunner(eng, f, log)
	if err != nil {
		return err
	}
	d.WithEnvs(envRunner)
	if len(f.replicas) > 0 {
		rs, err := controllerReplicas(eng, f, log)
		if err != nil {
			return err
		}
		d.WithReplicas(f.replicas, rs, f.replicaEvery)
	}
	if f.logsEvery <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("--logs-metrics-interval %s: give a positive duration", f.logsEvery)}
	}
	if err := d.WithLogs(daemon.LogsConfig{MetricsURL: f.logsMetricsURL, DeadLetterURL: f.logsDLQURL, Every: f.logsEvery}); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--logs-metrics-url: %w", err)}
	}
	// /v1/releases says which release each instance runs, from the
	// release volumes attached to it, with or without --releases.
	d.WithReleaseInstances(releaseInstances{awscloud.New(ec2.NewFromConfig(eng.aws), autoscaling.NewFromConfig(eng.aws), f.groups)})
	if f.releases {
		cloud := awscloud.New(ec2.NewFromConfig(eng.aws), autoscaling.NewFromConfig(eng.aws), f.groups)
		r := &release.Rollout{Cloud: cloud, Ledger: eng.led, Prober: release.HTTPProber{Port: f.releasePort}, Log: log,
			MinHealthyPercent: 50, StepTimeout: f.releaseStepTimeout}
		d.WithReleases(releaseController(cloud, eng.led, log, r, f.releasePort, f.releaseDevice, f.releaseTTL), f.releaseInterval)
		log.Info("release controller running", "interval", f.releaseInterval, "device", f.releaseDevice)
	}
	// A queue that is not there, or credentials that are not, stop the
	// controller at once with what to fix instead of a warning a second.
	d.CheckAtStart(eng.aws.Credentials)

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listening for the API on %s: %w", f.listen, err)
	}
	srv := &http.Server{Handler: d.Handler(f.token), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "err", err)
		}
	}()
	log.Info("API listening", "addr", ln.Addr().String(), "ledger", target.String())
	err = d.Run(ctx)
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if daemon.IsMisconfigured(err) {
		return &exitError{code: 2, err: err}
	}
	return err
}

// releaseInstances lists a channel's instances and their release volumes
// for the API, without asking each service what it serves (a page polls).
type releaseInstances struct{ cloud release.RolloutCloud }

func (r releaseInstances) Instances(ctx context.Context, channel string) ([]release.InstanceRelease, error) {
	return release.Instances(ctx, r.cloud, nil, channel, false)
}
