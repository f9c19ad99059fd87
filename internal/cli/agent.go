package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/fence/ssmfence"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/agent"
	"github.com/handover-dev/handover/internal/release"
)

const agentLong = `agent runs on an instance, from its user data, before the stateful service:
it waits until the instance's state volume is attached, makes its data
reachable, then replaces itself with the service (exec: same PID, signals go
straight to the service), which starts with
  HANDOVER_STATE_DIR  the directory holding the state
  HANDOVER_VOLUME_ID  the state volume's id
  HANDOVER_EPOCH      the volume's handover:epoch tag, when it has one: the
                      epoch the controller says this instance writes under
                      (a service that persists a fence starts unfenced only
                      when told an epoch at least the fenced one)
  HANDOVER_START_FENCED  1 when the volume's handover:start tag is "fenced":
                      the service starts fenced (reads only) under
                      HANDOVER_EPOCH and the controller unfences it once the
                      old instance no longer answers (docs/fence-protocol.md)
and, with --release-mount (docs/releases.md),
  HANDOVER_RELEASE_DIR  the release link (--release-mount), pointing at the
                      release volume the controller attached at
                      --release-device, mounted read-only on AWS
  HANDOVER_RELEASE    the name of the release it holds (its marker's)
A stateless group of a release channel gives --state=false: there is no
state volume to wait for. With --release-mount the agent does not replace
itself with the service but supervises it (signals are passed on, its exit
status is the service's): when a rollout attaches the next release beside
the current one, the agent mounts it, flips the release link atomically
and runs --reload-cmd (or restarts the service); when the rollout detaches
it again (a rollback), it flips back the same way.

Steps, the same on AWS and on handover's local cloud:
 1. instance id and region from the instance metadata service (IMDSv2);
 2. EC2 DescribeVolumes (filters attachment.instance-id = this instance,
    attachment.device = --device) until the volume is attached, polling
    every 1 s, backing off to 5 s;
 3. AWS: the volume's block device, on Nitro
    /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol… (its serial is the
    volume id), on Xen the --device name or its /dev/xvd… spelling. If blkid
    finds no signature at all it is formatted (mkfs -t --fs-type); a device
    with any signature is never formatted. It is mounted at --mount unless
    already mounted there.
    Local cloud ($HANDOVER_INSTANCE_DIR set, as the local cloud does for its
    instances): the directory the local cloud links in as
    $HANDOVER_INSTANCE_DIR/volumes/<device name>; with --mount, --mount
    becomes a symlink to it.
The whole wait is bounded by --timeout; when it runs out, agent exits
non-zero saying what it waited for and what to check.

The AWS SDK is configured as usual (instance profile credentials; AWS_*
variables). On the local cloud, set AWS_ENDPOINT_URL to the cloud's endpoint
and any static credentials; the metadata endpoint is set for you
(AWS_EC2_METADATA_SERVICE_ENDPOINT).

Exit status: 2 for a usage error, 1 when the volume could not be prepared;
after that the exit status is the service's.`

const agentExample = `  # AWS: the launch template's user data (runs as root at boot). The
  # controller attaches the state volume at /dev/sdf (its --device).
  #!/bin/sh
  exec /usr/local/bin/handover agent --device /dev/sdf --mount /var/lib/kvstore --timeout 15m -- \
      /usr/local/bin/kvstore --listen :8080

  # handover's local cloud: user data that starts the image's command
  # (HANDOVER_IMAGE_COMMAND) once the volume is attached.
  #!/bin/sh
  export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=AKIDLOCAL AWS_SECRET_ACCESS_KEY=local
  eval "exec handover agent -- $HANDOVER_IMAGE_COMMAND"

  # a stateless web group of release channel "web": the release only
  exec handover agent --state=false --release-mount /srv/web/current -- /srv/web/current/bin/serve`

// execFunc replaces the process, as syscall.Exec does.
type execFunc func(argv0 string, argv, envv []string) error

func newAgent(stdout, stderr io.Writer) *cobra.Command {
	cmd := newAgentExec(stdout, stderr, syscall.Exec)
	cmd.AddCommand(newAgentFence(stdout, "fence"), newAgentFence(stdout, "unfence"), newAgentFence(stdout, "retire"), newAgentFence(stdout, "health"))
	return cmd
}

// newAgentFence is `handover agent fence|unfence|retire|health`: what the
// SSM fence runs on the instance. It calls the service's fence endpoints on
// the loopback interface and reports the protocol's outcome in its exit
// code (ssmfence.ExitStale, ssmfence.ExitUnreachable,
// ssmfence.ExitNotImplemented), so the controller can tell a stale epoch
// from an unreachable service and from one without the endpoint.
func newAgentFence(stdout io.Writer, op string) *cobra.Command {
	var (
		epoch     int64
		port      int
		host      string
		successor string
	)
	short := map[string]string{
		"fence":   "On an instance: fence the local service's writes under an epoch (what the SSM fence runs)",
		"unfence": "On an instance: lift the local service's fence (and retirement) taken under an epoch (what the SSM fence runs)",
		"retire":  "On an instance: retire the local service in favour of its successor under an epoch (what the SSM fence runs)",
		"health":  "On an instance: check the local service serves (what the SSM fence runs)",
	}[op]
	example := fmt.Sprintf("  handover agent %s --port 8080%s", op, map[bool]string{true: " --epoch 8", false: ""}[op != "health"])
	if op == "retire" {
		example += " --successor 10.0.1.24:8080"
	}
	cmd := &cobra.Command{
		Use:   op,
		Short: short,
		Long: short + `.

Exit status: 0 done; 3 the service has seen a newer epoch (stale); 4 the
service does not answer; 5 the service does not implement the endpoint; 1
any other failure. The controller's --fence ssm sends this through SSM Run
Command (AWS-RunShellScript), so the service's admin endpoints need only
listen on the loopback interface (retire: the successor's service port must
be reachable from this instance, which forwards to it).`,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if op != "health" && epoch < 1 {
				return &exitError{code: 2, err: errors.New("--epoch is required: the epoch (at least 1) the controller fences under")}
			}
			if op == "retire" {
				if err := fence.ValidSuccessor(successor); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--successor: %w (the new instance's address and service port)", err)}
				}
			}
			c := &fence.Client{Port: port}
			addr := net.JoinHostPort(host, strconv.Itoa(port))
			var err error
			switch op {
			case "fence":
				err = c.Fence(cmd.Context(), addr, epoch)
			case "unfence":
				err = c.Unfence(cmd.Context(), addr, epoch)
			case "retire":
				err = c.Retire(cmd.Context(), addr, epoch, successor)
			default:
				err = c.Healthy(cmd.Context(), addr)
			}
			switch {
			case err == nil:
				fmt.Fprintf(stdout, "{\"%s\":\"ok\",\"epoch\":%d}\n", op, epoch)
				return nil
			case errors.Is(err, fence.ErrStaleEpoch):
				return &exitError{code: ssmfence.ExitStale, err: err}
			case errors.Is(err, fence.ErrUnreachable):
				return &exitError{code: ssmfence.ExitUnreachable, err: err}
			case fence.IsNotImplemented(err):
				return &exitError{code: ssmfence.ExitNotImplemented, err: err}
			}
			return &exitError{code: 1, err: err}
		},
	}
	if op != "health" {
		cmd.Flags().Int64Var(&epoch, "epoch", 0, "the epoch the fence is taken (or lifted) under")
	}
	if op == "retire" {
		cmd.Flags().StringVar(&successor, "successor", "", "the new instance's host:port, where the service forwards from now on")
	}
	cmd.Flags().IntVar(&port, "port", fence.DefaultPort, "the service's port")
	cmd.Flags().StringVar(&host, "host", "127.0.0.1", "the service's address on this instance")
	return cmd
}

// newAgentExec is newAgent with the exec injected, so tests see what would
// have been started instead of being replaced by it.
func newAgentExec(_, stderr io.Writer, execve execFunc) *cobra.Command {
	var (
		cfg         agent.Config
		logLevel    string
		reloadCmd   string
		releasePoll time.Duration
	)
	cmd := &cobra.Command{
		Use:     "agent [flags] -- CMD [ARGS...]",
		Short:   "On an instance: wait for the state volume, prepare it, then exec the service",
		Long:    agentLong,
		Example: agentExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case dash < 0 && len(args) > 0 || dash > 0:
				before := args
				if dash > 0 {
					before = args[:dash]
				}
				return &exitError{code: 2, err: fmt.Errorf("unexpected arguments %q before --: give agent's flags first, then -- and the service's command with its arguments", before)}
			case dash < 0 || dash == len(args):
				return &exitError{code: 2, err: errors.New("missing the service to start: handover agent [flags] -- CMD [ARGS...], e.g. handover agent -- /usr/local/bin/kvstore --listen :8080")}
			}
			argv := args[dash:]
			// Found now rather than after a wait of minutes.
			path, err := exec.LookPath(argv[0])
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("the service's command %q: %w", argv[0], err)}
			}
			logger, err := newLogger(stderr, logLevel)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if err := cfg.Validate(); err != nil {
				return &exitError{code: 2, err: err}
			}
			timeout := cfg.Timeout
			if timeout == 0 {
				timeout = agent.DefaultTimeout
			}
			// A backstop in real time for a call that hangs; Prepare's
			// own deadline, on its clock, is the one that normally ends it.
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout+30*time.Second)
			defer cancel()
			awsCfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("loading the AWS SDK configuration: %w", err)}
			}
			deps := agent.Deps{
				IMDS: imds.NewFromConfig(awsCfg),
				EC2: func(region string) (agent.EC2, error) {
					c := awsCfg.Copy()
					c.Region = region
					return awsec2.NewFromConfig(c), nil
				},
				Logger: logger,
			}
			if cfg.InstanceDir == "" {
				deps.System = agent.NewSystem()
			}
			res, err := agent.Prepare(ctx, cfg, deps)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("preparing the state volume: %w", err)}
			}
			logger.Info("starting the service", "command", path, "state-dir", res.StateDir, "volume-id", res.VolumeID, "epoch", res.Epoch,
				"release-dir", res.ReleaseDir, "release", res.Release)
			if res.ReleaseDir != "" {
				// A release instance keeps its agent: it switches releases
				// under the service when a rollout attaches the next one.
				cancel()
				code, err := agent.Supervise(cmd.Context(), cfg, deps, res, agent.Service{
					Path: path, Argv: argv, Env: os.Environ(), ReloadCmd: reloadCmd, Poll: releasePoll,
					Stdout: cmd.OutOrStdout(), Stderr: stderr,
				})
				if err != nil {
					return &exitError{code: 1, err: fmt.Errorf("supervising the service: %w", err)}
				}
				if code != 0 {
					return &exitError{code: code, err: fmt.Errorf("the service exited with status %d", code)}
				}
				return nil
			}
			if err := execve(path, argv, res.Environ(os.Environ())); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("starting the service %s: %w", path, err)}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Device, "device", envOr("HANDOVER_DEVICE", agent.DefaultDevice), "device name the controller attaches the state volume under (env HANDOVER_DEVICE)")
	fl.StringVar(&cfg.Mount, "mount", os.Getenv("HANDOVER_MOUNT"), "where the state goes (env HANDOVER_MOUNT); AWS default "+agent.DefaultMount+", local cloud default: the attached volume's own directory")
	fl.DurationVar(&cfg.Timeout, "timeout", agent.DefaultTimeout, "how long to wait for the attachment and the device in all")
	fl.StringVar(&cfg.FSType, "fs-type", agent.DefaultFSType, "filesystem to make on a blank volume (never on one with any signature)")
	fl.StringVar(&cfg.InstanceDir, "instance-dir", os.Getenv("HANDOVER_INSTANCE_DIR"), "local cloud only: the instance's directory (env HANDOVER_INSTANCE_DIR, which the local cloud sets)")
	fl.DurationVar(&cfg.PollMin, "poll-interval", agent.DefaultPollMin, "first interval between checks for the attachment; it backs off to --poll-max")
	fl.DurationVar(&cfg.PollMax, "poll-max", agent.DefaultPollMax, "longest interval between checks")
	fl.StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error, off")
	fl.StringVar(&cfg.ReleaseMount, "release-mount", os.Getenv("HANDOVER_RELEASE_MOUNT"), "the release link: wait for the release volume, mount it read-only and make this path point at it (env HANDOVER_RELEASE_MOUNT)")
	fl.StringVar(&cfg.ReleaseDevice, "release-device", envOr("HANDOVER_RELEASE_DEVICE", release.DefaultDevice), "device name the release controller attaches release volumes under")
	fl.StringVar(&reloadCmd, "reload-cmd", "", "with --release-mount: shell command that makes the service take up a new release after the link flips, e.g. 'kill -HUP \"$HANDOVER_SERVICE_PID\"' (default: restart the service)")
	fl.DurationVar(&releasePoll, "release-poll", 5*time.Second, "with --release-mount: how often to look for a release to switch to (one DescribeVolumes call per instance each time: mind EC2's throttling on large fleets)")
	state := true
	fl.BoolVar(&state, "state", true, "wait for a state volume (false for a stateless group of a release channel)")
	cmd.PreRun = func(*cobra.Command, []string) { cfg.NoState = !state }
	return cmd
}
