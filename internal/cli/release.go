package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	instance string
}

func (f *releaseFlags) open(ctx context.Context, stderr io.Writer, onServer, create bool) (*releaseTool, error) {
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
	if !onServer {
		// The ledger alone: listing needs no cloud.
		led, err := dial.Open(ctx, f.ledgerURL, logger)
		if err != nil {
			return nil, fmt.Errorf("opening the ledger %s: %w", target, err)
		}
		return &releaseTool{led: led}, nil
	}
	cfg, err := awsConfig(ctx, f.endpoint, f.region)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	led, err := dial.Open(ctx, f.ledgerURL, logger)
	if err != nil {
		return nil, fmt.Errorf("opening the ledger %s: %w", target, err)
	}
	e := awsec2.NewFromConfig(cfg)
	t := &releaseTool{led: led, pub: &release.Publisher{
		Cloud: awscloud.New(e, autoscaling.NewFromConfig(cfg), nil), Ledger: led, Log: logger,
		Poll: f.poll, SnapshotTimeout: f.timeout,
	}}
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
	cmd.AddCommand(newReleaseInit(stdout, stderr), newReleasePublish(stdout, stderr), newReleaseList(stdout, stderr))
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
 5. record V in the ledger as the channel's latest release.

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
			res, err := t.pub.Publish(cmd.Context(), release.PublishSpec{Dir: args[0], Channel: f.channel, Name: name, Instance: t.instance})
			if err != nil {
				code := 1
				if release.IsRunning(err) || errors.Is(err, release.ErrBadDir) || errors.Is(err, release.ErrNoVolume) || errors.Is(err, release.ErrPublished) {
					code = 2
				}
				return &exitError{code: code, err: err}
			}
			if f.out == "json" {
				return printJSON(stdout, res)
			}
			r := res.Release
			fmt.Fprintf(stdout, "published %s of channel %s: snapshot %s, %d files (%d bytes), manifest %s, in %s (was %q)\n",
				r.Name, r.Channel, r.SnapshotID, r.Files, r.Bytes, r.ManifestHash, res.Took.Round(time.Millisecond), res.Previous)
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&name, "name", "", "the release's name (required): letters, digits, '.', '_', '-'")
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
