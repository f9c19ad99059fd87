package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/dial"
	"github.com/handover-dev/handover/internal/release"
)

const releaseLong = `release ships application code as volume snapshots (docs/releases.md).

A channel has one release volume, attached to a release server (any EC2
instance, or a local-cloud instance). publish syncs a directory onto it
exactly (contents, deletions, modes, symlinks), verifies the copy by its
manifest hash, flushes (and on AWS freezes) the filesystem, snapshots the
volume with the tags handover:release, handover:channel and
handover:manifest, waits for the snapshot and records it in the ledger as
the channel's latest release. One publish per channel runs at a time, under
the channel's lease; a second is refused and names the one running.

Run init, then publish, on the release server itself: the commands find the
instance they run on through the instance metadata service (or
$HANDOVER_INSTANCE_ID on the local cloud), and the release volume's files
through $HANDOVER_INSTANCE_DIR on the local cloud or --volume-dir (its mount
point) on AWS.`

// releaseFlags are what the release subcommands share.
type releaseFlags struct {
	endpoint, region, ledgerURL, logLevel string
	instance, instanceDir, volumeDir      string
	channel, device                       string
	out                                   output
	poll, timeout                         time.Duration
	// the rollout's
	batch, minHealthy, port  int
	stepTimeout, convTimeout time.Duration
	groups                   []string
	leaseTTL                 time.Duration
}

// registerRollout gives a command the rollout's flags.
func (f *releaseFlags) registerRollout(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.batch, "batch", 1, "how many instances switch release at once")
	fl.IntVar(&f.minHealthy, "min-healthy-percent", 50, "how many of the in-service instances keep serving while others switch (0-99)")
	fl.IntVar(&f.port, "port", 8080, "the service's port, where GET /release says which release it serves and GET /healthz whether it is healthy")
	fl.DurationVar(&f.stepTimeout, "step-timeout", 5*time.Minute, "how long one instance may take to serve the new release healthily before it is switched back and the rollout rolled back")
	fl.DurationVar(&f.convTimeout, "converge-timeout", time.Hour, "how long the whole rollout may take")
	fl.StringSliceVar(&f.groups, "group", nil, "limit to these Auto Scaling groups (repeatable; default every group whose launch hook names a channel)")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", 30*time.Second, "the channel lease's term, renewed at a third of it: how long a publish that died keeps the channel before the release controller finishes its rollout")
}

func (f *releaseFlags) rollout(t *releaseTool) (*release.Rollout, error) {
	r := &release.Rollout{Cloud: t.cloud, Ledger: t.led, Prober: release.HTTPProber{Port: f.port}, Log: t.pub.Log,
		Batch: f.batch, MinHealthyPercent: f.minHealthy, StepTimeout: f.stepTimeout, Timeout: f.convTimeout, Poll: f.poll}
	if f.batch < 1 {
		return nil, &exitError{code: 2, err: fmt.Errorf("--batch %d: give at least 1", f.batch)}
	}
	if f.port < 1 || f.port > 65535 {
		return nil, &exitError{code: 2, err: fmt.Errorf("--port %d: give the service's port", f.port)}
	}
	if err := r.Validate(); err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	if f.leaseTTL < 3*time.Second {
		return nil, &exitError{code: 2, err: fmt.Errorf("--lease-ttl %s: give at least 3s", f.leaseTTL)}
	}
	t.pub.LeaseTTL = f.leaseTTL
	return r, nil
}

func (f *releaseFlags) register(cmd *cobra.Command, onServer bool) {
	f.out = "text"
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint-url", envOr("HANDOVER_ENDPOINT_URL", ""), "AWS endpoint URL (the local cloud's address); empty for AWS")
	fl.StringVar(&f.region, "region", envOr("HANDOVER_REGION", ""), "AWS region (default: the AWS environment's)")
	fl.StringVar(&f.ledgerURL, "ledger", envOr("HANDOVER_LEDGER", "sqlite:handover.db"), "the controller's ledger URL: sqlite:///abs/path, postgres://…, dynamodb://…")
	fl.Var(&f.out, "output", "text or json")
	fl.StringVar(&f.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn, error, off")
	if onServer {
		fl.StringVar(&f.channel, "channel", "", "the release channel (required)")
		fl.StringVar(&f.instance, "instance-id", os.Getenv("HANDOVER_INSTANCE_ID"), "the release server's instance id (default: $HANDOVER_INSTANCE_ID, else the instance metadata service)")
		fl.StringVar(&f.instanceDir, "instance-dir", os.Getenv("HANDOVER_INSTANCE_DIR"), "local cloud only: the instance's directory (env HANDOVER_INSTANCE_DIR, which the local cloud sets)")
		fl.StringVar(&f.volumeDir, "volume-dir", "", "AWS: where the release volume is mounted on this server")
		fl.StringVar(&f.device, "device", release.DefaultDevice, "device name the release volume is attached under")
		fl.DurationVar(&f.poll, "poll", time.Second, "how often to look at the snapshot while waiting")
		fl.DurationVar(&f.timeout, "timeout", time.Hour, "how long to wait for the snapshot")
	}
}

// tool is what a release subcommand works with.
type releaseTool struct {
	pub      *release.Publisher
	led      ledger.Ledger
	cloud    *awscloud.Cloud
	instance string
}

// open opens the ledger, and with needCloud the cloud; onServer also finds
// this release server and its release volume's files.
func (f *releaseFlags) open(ctx context.Context, stderr io.Writer, onServer, create bool) (*releaseTool, error) {
	return f.openCloud(ctx, stderr, onServer, onServer, create)
}

func (f *releaseFlags) openCloud(ctx context.Context, stderr io.Writer, needCloud, onServer, create bool) (*releaseTool, error) {
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	if onServer {
		if f.channel == "" {
			return nil, &exitError{code: 2, err: errors.New("--channel is required: the release channel, e.g. --channel web")}
		}
		if err := ledger.ValidReleaseName("--channel", f.channel); err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		if f.instanceDir == "" && f.volumeDir == "" {
			return nil, &exitError{code: 2, err: errors.New("where are the release volume's files? on AWS give --volume-dir, its mount point; on the local cloud run this on the release server's instance ($HANDOVER_INSTANCE_DIR) or give --instance-dir")}
		}
	}
	target, err := dial.Parse(f.ledgerURL)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	switch target.Backend {
	case dial.Memory:
		return nil, &exitError{code: 2, err: errors.New("--ledger memory:// is empty in a new process: pass the controller's --ledger")}
	case dial.SQLite:
		if _, err := os.Stat(target.Path); err != nil && !create {
			return nil, &exitError{code: 2, err: fmt.Errorf("--ledger %s: %w: pass the ledger the controller reads (its --ledger); `handover release init` makes a new one", target, err)}
		}
	}
	if !needCloud {
		// The ledger alone: listing needs no cloud.
		led, err := dial.Open(ctx, f.ledgerURL, logger)
		if err != nil {
			return nil, fmt.Errorf("opening the ledger %s: %w", target, err)
		}
		return &releaseTool{led: led}, nil
	}
	cfg, err := awsConfig(ctx, f.endpoint, f.region, logger)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	led, err := dial.Open(ctx, f.ledgerURL, logger)
	if err != nil {
		return nil, fmt.Errorf("opening the ledger %s: %w", target, err)
	}
	e := awsec2.NewFromConfig(cfg)
	cloud := awscloud.New(e, autoscaling.NewFromConfig(cfg), f.groups)
	t := &releaseTool{led: led, cloud: cloud, pub: &release.Publisher{
		Cloud: cloud, Ledger: led, Log: logger, Poll: f.poll, SnapshotTimeout: f.timeout,
	}}
	if !onServer {
		return t, nil
	}
	switch {
	case f.volumeDir != "":
		dir := f.volumeDir
		t.pub.Locate = func(handover.Volume) (string, error) { return dir, nil }
		t.pub.Freezer = release.FSFreeze{}
	default:
		t.pub.Locate = release.LocalLocate(f.instanceDir)
	}
	t.instance = f.instance
	if t.instance == "" {
		doc, err := imds.NewFromConfig(cfg).GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
		if err != nil {
			led.Close()
			return nil, &exitError{code: 2, err: fmt.Errorf("which instance is this? the instance metadata service did not say (%v): run on the release server, or give --instance-id", err)}
		}
		t.instance = doc.InstanceID
	}
	return t, nil
}

// progressTo prints a long operation's phases on w (stderr), one line each.
func progressTo(w io.Writer, quiet bool) func(release.Event) {
	return func(e release.Event) {
		if !quiet {
			fmt.Fprintf(w, "%-9s %s\n", e.Phase, e.Message)
		}
	}
}

func newRelease(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Publish application code as volume snapshots, and list the releases",
		Long:  releaseLong,
		Example: `  # on the release server (here a local-cloud instance), once:
  handover release init --channel web --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///var/lib/handover/ledger.db
  # each release:
  handover release publish ./build --channel web --name v42 --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///var/lib/handover/ledger.db
  handover release list --channel web --ledger sqlite:///var/lib/handover/ledger.db`,
	}
	cmd.AddCommand(newReleaseInit(stdout, stderr), newReleasePublish(stdout, stderr), newReleaseList(stdout, stderr),
		newReleaseRollback(stdout, stderr), newReleaseInstances(stdout, stderr), newReleaseController(stdout, stderr))
	return cmd
}

func newReleaseInit(stdout, stderr io.Writer) *cobra.Command {
	var (
		f    releaseFlags
		size int32
	)
	cmd := &cobra.Command{
		Use:   "init --channel C",
		Short: "Make a channel's release volume and attach it to this release server",
		Long: `init creates the channel's release volume (tagged handover:release-volume=C) in
this instance's zone and attaches it at --device. Running it again finds the
same volume. A channel has one release volume: if it is attached to another
instance, init says which.

On AWS, make a filesystem on the new device and mount it, then give that
mount point to publish as --volume-dir.`,
		Example: `  handover release init --channel web --size-gib 4 --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db
  handover release init --channel web --output json --region eu-west-1 --volume-dir /srv/release --ledger postgres://handover@db/handover`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if size < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--size-gib %d: give at least 1", size)}
			}
			t, err := f.open(cmd.Context(), stderr, true, true)
			if err != nil {
				return err
			}
			defer t.led.Close()
			t.pub.Progress = progressTo(stderr, f.out == "json")
			vol, err := t.pub.Init(cmd.Context(), release.InitSpec{Channel: f.channel, Instance: t.instance, Device: f.device, SizeGiB: size})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if f.out == "json" {
				return printJSON(stdout, map[string]any{"channel": f.channel, "volume": vol.ID, "zone": vol.Zone, "instance": t.instance, "device": f.device})
			}
			fmt.Fprintf(stdout, "channel %s: release volume %s in %s, attached to %s at %s\n", f.channel, vol.ID, vol.Zone, t.instance, f.device)
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().Int32Var(&size, "size-gib", 1, "size of the release volume")
	return cmd
}

func newReleasePublish(stdout, stderr io.Writer) *cobra.Command {
	var (
		f    releaseFlags
		name string
		keep int
	)
	cmd := &cobra.Command{
		Use:   "publish DIR --channel C --name V",
		Short: "Publish DIR as release V of channel C",
		Long: `publish makes DIR release V of channel C, on the release server:
 1. sync DIR onto the channel's release volume exactly: what differs is
    copied (by content, not by size and time), what DIR lacks is removed,
    modes and symlinks are set as in DIR; owners and times are not part of a
    release;
 2. verify the volume against DIR's manifest (every path with its type,
    mode, size and BLAKE3 hash, or link target), and write the release
    marker (` + release.MarkerFile + `) at the volume's root;
 3. flush the filesystem (syncfs), and on AWS (--volume-dir) freeze it
    with fsfreeze until the snapshot is pending;
 4. snapshot the volume, tagged handover:release=V, handover:channel=C and
    handover:manifest=<hash>, and wait for the snapshot to complete;
 5. record V in the ledger as the channel's latest release;
 6. switch every in-service instance of the channel's groups to V, --batch
    at a time while --min-healthy-percent keep serving: a volume from the
    snapshot in the instance's zone, attached beside its current release,
    the agent (--release-mount) flips the release link and reloads, the
    service must answer GET /release with V and GET /healthz with 200
    within --step-timeout, then the old release volume is detached and
    deleted. An instance that fails is switched back, and the channel is
    rolled back to its previous release: no instance keeps V;
 7. retention: the snapshots of the --keep most recent releases stay, and
    of the latest, the previous and any release an instance uses; older
    ones are deleted and their records marked Deleted.
publish returns once every in-service instance serves V; instances
launched meanwhile get V from the release controller (handover release
controller) before they enter service.

One publish per channel at a time: a second is refused, naming the one
running. A publish that died (killed, a lost connection) is resumed by
publishing the same name again; a name already published is refused.

Exit status: 2 for bad input (DIR missing or empty, a bad name, no release
volume, a publish running, a name already published), 1 for a failure.`,
		Example: `  # on a local-cloud release server (HANDOVER_INSTANCE_DIR is set there)
  handover release publish ./build --channel web --name v42 --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db

  # on AWS, the release volume mounted at /srv/release
  handover release publish ./build --channel web --name "$(git rev-parse --short HEAD)" --volume-dir /srv/release \
      --ledger postgres://handover@db.internal/handover --output json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &exitError{code: 2, err: fmt.Errorf("give one DIR to publish (got %d arguments): handover release publish DIR --channel C --name V", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				return &exitError{code: 2, err: errors.New("--name is required: the release's name, e.g. --name v42 or a commit id")}
			}
			if err := ledger.ValidReleaseName("--name", name); err != nil {
				return &exitError{code: 2, err: err}
			}
			if err := release.CheckDir(args[0]); err != nil {
				return &exitError{code: 2, err: err}
			}
			t, err := f.open(cmd.Context(), stderr, true, false)
			if err != nil {
				return err
			}
			defer t.led.Close()
			t.pub.Progress = progressTo(stderr, f.out == "json")
			if t.pub.Rollout, err = f.rollout(t); err != nil {
				return err
			}
			if keep < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--keep %d: keep at least 1 release", keep)}
			}
			t.pub.Keep, t.pub.RetainCloud = keep, t.cloud
			res, err := t.pub.Publish(cmd.Context(), release.PublishSpec{Dir: args[0], Channel: f.channel, Name: name, Instance: t.instance})
			if err != nil {
				code := 1
				if release.IsRunning(err) || errors.Is(err, release.ErrBadDir) || errors.Is(err, release.ErrNoVolume) || errors.Is(err, release.ErrPublished) {
					code = 2
				}
				if f.out == "json" && res.Release != nil {
					_ = printJSON(stdout, res)
				}
				return &exitError{code: code, err: err}
			}
			if f.out == "json" {
				return printJSON(stdout, res)
			}
			r := res.Release
			fmt.Fprintf(stdout, "published %s of channel %s: snapshot %s, %d files (%d bytes), manifest %s (was %q)\n",
				r.Name, r.Channel, r.SnapshotID, r.Files, r.Bytes, r.ManifestHash, res.Previous)
			printConverge(stdout, res)
			return nil
		},
	}
	f.register(cmd, true)
	f.registerRollout(cmd)
	cmd.Flags().StringVar(&name, "name", "", "the release's name (required): letters, digits, '.', '_', '-'")
	cmd.Flags().IntVar(&keep, "keep", release.DefaultKeep, "after the publish, keep the snapshots of this many most recent releases (and of the latest, the previous and any in use); delete the channel's older ones")
	return cmd
}

// ReleaseList is `handover release list --output json`.
type ReleaseList struct {
	Channels []*ledger.Channel `json:"channels"`
	Releases []*ledger.Release `json:"releases"`
}

func newReleaseList(stdout, stderr io.Writer) *cobra.Command {
	var f releaseFlags
	cmd := &cobra.Command{
		Use:   "list [--channel C]",
		Short: "List the releases of every channel, or of one, with the latest marked",
		Example: `  handover release list --ledger sqlite:///tmp/lc/ledger.db
  handover release list --channel web --output json --ledger postgres://handover@db.internal/handover`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			channel, _ := cmd.Flags().GetString("channel")
			t, err := f.open(cmd.Context(), stderr, false, false)
			if err != nil {
				return err
			}
			defer t.led.Close()
			ctx := cmd.Context()
			var out ReleaseList
			if channel != "" {
				c, err := t.led.GetChannel(ctx, channel)
				if errors.Is(err, ledger.ErrNotFound) {
					return &exitError{code: 2, err: fmt.Errorf("channel %s has no releases in this ledger (is --ledger the controller's?)", channel)}
				}
				if err != nil {
					return fmt.Errorf("reading channel %s: %w", channel, err)
				}
				out.Channels = []*ledger.Channel{c}
			} else if out.Channels, err = t.led.ListChannels(ctx); err != nil {
				return fmt.Errorf("listing channels: %w", err)
			}
			if out.Releases, err = t.led.ListReleases(ctx, channel); err != nil {
				return fmt.Errorf("listing releases: %w", err)
			}
			if f.out == "json" {
				return printJSON(stdout, out)
			}
			latest := map[string]string{}
			for _, c := range out.Channels {
				latest[c.ID] = c.Latest
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CHANNEL\tRELEASE\tSTATE\tSNAPSHOT\tFILES\tBYTES\tPUBLISHED\tLATEST")
			for _, r := range out.Releases {
				mark, when := "", "-"
				if latest[r.Channel] == r.Name {
					mark = "*"
				}
				if !r.PublishedAt.IsZero() {
					when = r.PublishedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.Channel, r.Name, r.State, dash(r.SnapshotID), r.Files, r.Bytes, when, mark)
			}
			return tw.Flush()
		},
	}
	f.register(cmd, false)
	cmd.Flags().String("channel", "", "only this channel's releases")
	return cmd
}

func printConverge(w io.Writer, res release.PublishResult) {
	if c := res.Converge; c != nil {
		fmt.Fprintf(w, "converged: %d in-service instances serve %s (%d switched), in %s\n", c.InService, c.Release, len(c.Switched), res.Took.Round(time.Millisecond))
	}
}

func newReleaseRollback(stdout, stderr io.Writer) *cobra.Command {
	var (
		f  releaseFlags
		to string
	)
	cmd := &cobra.Command{
		Use:   "rollback --channel C --to V",
		Short: "Make an earlier release the channel's latest again and switch the fleet to it",
		Long: `rollback records release V as channel C's latest and switches every in-service
instance of the channel's groups to it, in batches, as publish does; new
instances get it too. It holds the channel's lease like a publish. If V
fails on an instance, the rollback itself is rolled back to the release
that was latest.

Exit status: 2 for bad input (an unknown, deleted or never published
release, a publish running), 1 for a failure.`,
		Example: `  handover release rollback --channel web --to v41 --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db
  handover release rollback --channel web --to v41 --batch 2 --output json --ledger postgres://handover@db.internal/handover`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.channel == "" || to == "" {
				return &exitError{code: 2, err: errors.New("--channel and --to are required: the channel, and the release to go back to (see handover release list)")}
			}
			t, err := f.openCloud(cmd.Context(), stderr, true, false, false)
			if err != nil {
				return err
			}
			defer t.led.Close()
			t.pub.Progress = progressTo(stderr, f.out == "json")
			if t.pub.Rollout, err = f.rollout(t); err != nil {
				return err
			}
			res, err := t.pub.Rollback(cmd.Context(), release.RollbackSpec{Channel: f.channel, To: to})
			if err != nil {
				code := 1
				if release.IsRunning(err) || errors.Is(err, release.ErrUnknownRelease) {
					code = 2
				}
				return &exitError{code: code, err: err}
			}
			if f.out == "json" {
				return printJSON(stdout, res)
			}
			fmt.Fprintf(stdout, "channel %s is back on %s (was %q)\n", f.channel, to, res.Previous)
			printConverge(stdout, res)
			return nil
		},
	}
	f.register(cmd, false)
	f.registerRollout(cmd)
	cmd.Flags().StringVar(&f.channel, "channel", "", "the release channel (required)")
	cmd.Flags().StringVar(&to, "to", "", "the release to roll back to (required)")
	cmd.Flags().DurationVar(&f.poll, "poll", time.Second, "how often to look while waiting")
	return cmd
}

func newReleaseInstances(stdout, stderr io.Writer) *cobra.Command {
	var f releaseFlags
	cmd := &cobra.Command{
		Use:   "instances --channel C",
		Short: "Which release each instance of a channel runs",
		Long: `instances lists the instances of the channel's groups with the releases of the
release volumes attached to them (two while an instance switches) and, for
those in service, what the service itself answers on GET /release.`,
		Example: `  handover release instances --channel web --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db
  handover release instances --channel web --output json --region eu-west-1 --ledger postgres://handover@db.internal/handover`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.channel == "" {
				return &exitError{code: 2, err: errors.New("--channel is required")}
			}
			t, err := f.openCloud(cmd.Context(), stderr, true, false, false)
			if err != nil {
				return err
			}
			defer t.led.Close()
			ctx := cmd.Context()
			latest := ""
			if ch, err := t.led.GetChannel(ctx, f.channel); err == nil {
				latest = ch.Latest
			}
			insts, err := release.Instances(ctx, t.cloud, release.HTTPProber{Port: f.port}, f.channel, true)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if f.out == "json" {
				return printJSON(stdout, map[string]any{"channel": f.channel, "latest": latest, "instances": insts})
			}
			fmt.Fprintf(stdout, "channel %s, latest %s\n", f.channel, dash(latest))
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tINSTANCE\tLIFECYCLE\tRELEASE VOLUMES\tSERVES")
			for _, ir := range insts {
				vols := "-"
				if len(ir.Releases) > 0 {
					vols = ""
					for i := range ir.Releases {
						if i > 0 {
							vols += ", "
						}
						vols += ir.Releases[i] + " (" + ir.Volumes[i] + ")"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ir.Group, ir.Instance, ir.Lifecycle, vols, dash(ir.Serving))
			}
			return tw.Flush()
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVar(&f.channel, "channel", "", "the release channel (required)")
	cmd.Flags().IntVar(&f.port, "port", 8080, "the service's port, asked GET /release")
	cmd.Flags().StringSliceVar(&f.groups, "group", nil, "limit to these Auto Scaling groups")
	return cmd
}

func newReleaseController(stdout, stderr io.Writer) *cobra.Command {
	var (
		f        releaseFlags
		interval time.Duration
		device   string
	)
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Give new instances of release channels their release, and finish rollouts nobody runs",
		Long: `controller runs, beside handover's controller, the part of releases that must
run all the time:
 - for every instance waiting on a launch hook of a group that joins a
   channel ({"channel":"web"} in the hook's metadata, or the group's tag
   handover:channel=web; the metadata wins), a volume from the channel's
   latest release in its zone, attached at --device; once the instance
   serves that release, nothing else is attached and "latest", re-read, is
   still it (an instance launched on an older one is switched first), it
   sends CONTINUE for a group with no database, or marks the volume served
   for a stateful group, whose migration then sends it;
 - release volumes of instances that are gone are deleted, and so are
   those a killed step left unattached (under the channel's lease);
 - a channel whose in-service instances are not all on its latest release,
   while no publish holds its lease (the publish died), is converged as the
   publish would have, with the rollout flags given here.
It polls every --interval; stop it with SIGINT or SIGTERM. handover
controller --releases runs the same in handover's controller.`,
		Example: `  handover release controller --endpoint-url http://127.0.0.1:4566 --ledger sqlite:///tmp/lc/ledger.db --interval 1s
  handover release controller --region eu-west-1 --ledger postgres://handover@db.internal/handover --group web --port 8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return &exitError{code: 2, err: fmt.Errorf("--interval %s: give a positive duration", interval)}
			}
			t, err := f.openCloud(cmd.Context(), stderr, true, false, false)
			if err != nil {
				return err
			}
			defer t.led.Close()
			r, err := f.rollout(t)
			if err != nil {
				return err
			}
			c := releaseController(t.cloud, t.led, t.pub.Log, r, f.port, device, f.leaseTTL)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			t.pub.Log.Info("release controller running", "interval", interval, "device", device)
			for {
				if err := c.Pass(ctx); err != nil && ctx.Err() == nil {
					t.pub.Log.Warn("release controller pass", "err", err)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	f.register(cmd, false)
	f.registerRollout(cmd)
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often to look at waiting launches and channels")
	cmd.Flags().StringVar(&device, "device", release.DefaultDevice, "device name release volumes are attached under (the agent's --release-device)")
	cmd.Flags().DurationVar(&f.poll, "poll", time.Second, "how often a rollout looks while waiting")
	cmd.Flags().Lookup("log-level").DefValue = "info"
	_ = cmd.Flags().Set("log-level", "info")
	return cmd
}

// releaseController is the release controller over cloud and led, as
// `handover release controller` and `handover controller --releases` run
// it: the launcher asks the services on port, attaches at device, and r
// finishes the rollouts nobody runs under leases of leaseTTL.
func releaseController(cloud *awscloud.Cloud, led ledger.Ledger, log *slog.Logger, r *release.Rollout, port int, device string, leaseTTL time.Duration) *release.Controller {
	host, _ := os.Hostname()
	return &release.Controller{Ledger: led, Rollout: r, Log: log, Holder: fmt.Sprintf("release controller on %s pid %d", host, os.Getpid()), LeaseTTL: leaseTTL,
		Launcher: &release.Launcher{Cloud: cloud, Ledger: led, Prober: release.HTTPProber{Port: port}, Device: device, Log: log}}
}
