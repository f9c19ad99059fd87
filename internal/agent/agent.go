// Package agent is what `handover agent` does on an instance before its
// service starts: find out which instance it is (IMDS), wait until EC2
// reports the instance's state volume attached, make the volume's data
// reachable as a directory, and say what the service must be told (state
// directory, volume id, epoch).
//
// The same code runs on AWS and on handover's local cloud; only step three
// differs, by what the instance sees. On AWS the volume is a block device
// (on Nitro the NVMe device whose serial is the volume id), formatted only
// when it carries no signature at all and mounted; on the local cloud it is
// the directory the local cloud links into the instance.
//
// The agent must never format a device that carries any signature (a
// filesystem, a partition table, anything blkid recognises): a copied
// state volume is the one thing handover exists to keep.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/release"
)

// Defaults of Config.
const (
	DefaultDevice  = "/dev/sdf" // handover.DefaultConfig's Device
	DefaultMount   = "/var/lib/handover/state"
	DefaultTimeout = 10 * time.Minute
	DefaultFSType  = "ext4"
	// The poll interval starts at PollMin and grows to PollMax: an attach
	// usually lands within seconds of boot, and a slow one should not cost
	// the account DescribeVolumes throttling.
	DefaultPollMin = time.Second
	DefaultPollMax = 5 * time.Second
)

// Environment variables the service is started with.
const (
	EnvStateDir = "HANDOVER_STATE_DIR"
	EnvVolumeID = "HANDOVER_VOLUME_ID"
	EnvEpoch    = "HANDOVER_EPOCH"
	// EnvStartFenced is "1" when the volume's handover:start tag says the
	// service starts fenced under HANDOVER_EPOCH.
	EnvStartFenced = "HANDOVER_START_FENCED"
	// EnvReleaseDir is the release link (--release-mount) and EnvRelease
	// the name of the release it holds at start.
	EnvReleaseDir = "HANDOVER_RELEASE_DIR"
	EnvRelease    = "HANDOVER_RELEASE"
)

// Config says what to wait for and where to put it.
type Config struct {
	// Device is the device name the controller attaches the state volume
	// under (handover's Device setting), as EC2 reports it in the
	// attachment.
	Device string
	// Mount is where the state goes. On AWS the volume is mounted there
	// (default DefaultMount). On the local cloud it is optional: when set it
	// becomes a symlink to the attached volume; when empty the attached
	// volume's own path is the state directory.
	Mount string
	// Timeout bounds the whole wait: attachment, then device.
	Timeout time.Duration
	// FSType is the filesystem a blank device is formatted with.
	FSType string
	// InstanceDir is $HANDOVER_INSTANCE_DIR: set, the agent runs on the
	// local cloud and finds the volume under InstanceDir/volumes/.
	InstanceDir string
	// PollMin and PollMax bound the interval between checks.
	PollMin, PollMax time.Duration

	// NoState: the instance has no state volume to wait for (a stateless
	// group of a release channel).
	NoState bool
	// ReleaseMount, when set, is the release link: the agent waits for
	// the release volume at ReleaseDevice, mounts it read-only (on AWS) and
	// makes ReleaseMount a symlink to it before the service starts.
	ReleaseMount  string
	ReleaseDevice string
}

func (c Config) withDefaults() Config {
	if c.Device == "" {
		c.Device = DefaultDevice
	}
	if c.Mount == "" && c.InstanceDir == "" {
		c.Mount = DefaultMount
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.FSType == "" {
		c.FSType = DefaultFSType
	}
	if c.PollMin == 0 {
		c.PollMin = DefaultPollMin
	}
	if c.PollMax == 0 {
		c.PollMax = DefaultPollMax
	}
	if c.ReleaseDevice == "" {
		c.ReleaseDevice = release.DefaultDevice
	}
	return c
}

// Validate reports what is wrong with c (after defaults), in terms of the
// command's flags.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if !strings.HasPrefix(c.Device, "/dev/") || len(c.Device) <= len("/dev/") {
		errs = append(errs, fmt.Errorf("--device %q: give the device name the controller attaches under, e.g. /dev/sdf", c.Device))
	}
	if c.Mount != "" && !path.IsAbs(c.Mount) {
		errs = append(errs, fmt.Errorf("--mount %q: must be an absolute path", c.Mount))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("--timeout %v: must be positive", c.Timeout))
	}
	if strings.ContainsAny(c.FSType, " /\t") {
		errs = append(errs, fmt.Errorf("--fs-type %q: give a filesystem type mkfs -t knows, e.g. ext4 or xfs", c.FSType))
	}
	if c.ReleaseMount != "" && !path.IsAbs(c.ReleaseMount) {
		errs = append(errs, fmt.Errorf("--release-mount %q: must be an absolute path", c.ReleaseMount))
	}
	if c.ReleaseMount != "" && c.ReleaseDevice == c.Device && !c.NoState {
		errs = append(errs, fmt.Errorf("--release-device %s is the state volume's --device too: give the release volume its own device (default %s)", c.ReleaseDevice, release.DefaultDevice))
	}
	if c.NoState && c.ReleaseMount == "" {
		errs = append(errs, errors.New("--state=false leaves nothing to prepare: give --release-mount, or keep the state volume"))
	}
	if c.PollMin < 0 || c.PollMax < c.PollMin {
		errs = append(errs, fmt.Errorf("poll interval %v to %v: must be positive and increasing", c.PollMin, c.PollMax))
	}
	return errors.Join(errs...)
}

// Deps are the agent's outside world.
type Deps struct {
	IMDS IMDS
	// EC2 returns the client for the instance's region, which is known only
	// once IMDS has answered.
	EC2 func(region string) (EC2, error)
	// System reaches the block devices (AWS only; nil on the local cloud).
	System System
	Clock  clock.Clock
	// Sleep waits d or until ctx ends, returning ctx's error then. Nil
	// means a real timer; tests on a fake clock pass one that advances it.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
}

// Result is what the service is started with.
type Result struct {
	InstanceID, Region string
	VolumeID           string
	// Epoch is the volume's handover:epoch tag; empty when it has none.
	Epoch string
	// StartFenced: the volume's handover:start tag is "fenced", so the
	// service starts fenced under Epoch until the controller unfences it.
	StartFenced bool
	// Device is the block device the volume was found as (AWS) or the link
	// the local cloud made for it.
	Device string
	// StateDir is the directory holding the state.
	StateDir string
	// Formatted says the agent made a filesystem on a blank device.
	Formatted bool

	// The release the instance serves, when --release-mount is set:
	// ReleaseDir is the release link, Release and ReleaseChannel what the
	// volume's release marker says, ReleaseVolumeID the volume.
	ReleaseDir, Release, ReleaseChannel, ReleaseVolumeID string
	releaseCurrent                                       ReleaseMounted
}

// Environ returns base with the variables that tell the service about its
// state, replacing any it had. HANDOVER_EPOCH is removed when the volume
// carries no epoch: a value left over in the environment is not this
// volume's and could unfence a service that must stay fenced. Likewise
// HANDOVER_START_FENCED is the volume's say alone.
func (r Result) Environ(base []string) []string {
	out := make([]string, 0, len(base)+4)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if k == EnvStateDir || k == EnvVolumeID || k == EnvEpoch || k == EnvStartFenced || k == EnvReleaseDir || k == EnvRelease {
			continue
		}
		out = append(out, kv)
	}
	if r.ReleaseDir != "" {
		out = append(out, EnvReleaseDir+"="+r.ReleaseDir, EnvRelease+"="+r.Release)
	}
	if r.VolumeID == "" {
		return out // no state volume
	}
	out = append(out, EnvStateDir+"="+r.StateDir, EnvVolumeID+"="+r.VolumeID)
	if r.Epoch != "" {
		out = append(out, EnvEpoch+"="+r.Epoch)
		if r.StartFenced {
			out = append(out, EnvStartFenced+"=1")
		}
	}
	return out
}

// Prepare waits for the instance's state volume and makes its data
// reachable. It is safe to repeat (after a reboot, say): a mounted volume is
// left mounted, a formatted one is not formatted again. A wait that outlasts
// cfg.Timeout ends in a *TimeoutError.
func Prepare(ctx context.Context, cfg Config, d Deps) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Sleep == nil {
		d.Sleep = sleep
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.IMDS == nil || d.EC2 == nil {
		return Result{}, errors.New("agent: IMDS and EC2 are required")
	}
	if cfg.InstanceDir == "" && d.System == nil {
		return Result{}, errors.New("agent: System is required outside the local cloud")
	}
	a := &run{cfg: cfg, d: d, log: d.Logger, deadline: d.Clock.Now().Add(cfg.Timeout)}

	doc, err := d.IMDS.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return Result{}, fmt.Errorf("reading this instance's identity from the instance metadata service (IMDS): %w; "+
			"run handover agent on an EC2 instance (from its user data) whose metadata service is enabled; on the local cloud, AWS_EC2_METADATA_SERVICE_ENDPOINT must be set, as the local cloud does for its instances", err)
	}
	res := Result{InstanceID: doc.InstanceID, Region: doc.Region}
	if res.InstanceID == "" || res.Region == "" {
		return Result{}, fmt.Errorf("the instance metadata service answered an identity without instance id or region (%q, %q)", res.InstanceID, res.Region)
	}
	a.log = a.log.With("instance-id", res.InstanceID)
	ec2c, err := d.EC2(res.Region)
	if err != nil {
		return Result{}, fmt.Errorf("building the EC2 client for %s: %w", res.Region, err)
	}
	if !cfg.NoState {
		if err := a.prepareState(ctx, ec2c, &res); err != nil {
			return Result{}, err
		}
	}
	if cfg.ReleaseMount != "" {
		if err := a.prepareRelease(ctx, ec2c, &res); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// prepareState waits for the state volume and makes its data reachable.
func (a *run) prepareState(ctx context.Context, ec2c EC2, res *Result) error {
	cfg := a.cfg
	vol, err := a.waitAttached(ctx, ec2c, res.InstanceID, cfg.Device, "state")
	if err != nil {
		return err
	}
	res.VolumeID = aws.ToString(vol.VolumeId)
	for _, t := range vol.Tags {
		switch aws.ToString(t.Key) {
		case handover.TagEpoch:
			res.Epoch = aws.ToString(t.Value)
		case handover.TagStart:
			res.StartFenced = aws.ToString(t.Value) == handover.StartFenced
		}
	}
	a.log = a.log.With("volume-id", res.VolumeID)
	switch {
	case res.Epoch == "":
		a.log.Warn("the state volume has no epoch tag; the service is started without HANDOVER_EPOCH", "tag", handover.TagEpoch)
	default:
		if _, err := strconv.ParseInt(res.Epoch, 10, 64); err != nil {
			a.log.Warn("the state volume's epoch tag is not an integer; passing it on as it is", "tag", handover.TagEpoch, "epoch", res.Epoch)
		}
	}
	a.log.Info("state volume attached", "device", cfg.Device, "epoch", res.Epoch, "start-fenced", res.StartFenced)

	if cfg.InstanceDir != "" {
		err = a.prepareLocal(ctx, res)
	} else {
		err = a.prepareEBS(ctx, res)
	}
	if err != nil {
		return err
	}
	a.log.Info("state ready", "state-dir", res.StateDir, "device", res.Device, "formatted", res.Formatted)
	return nil
}

// run is one Prepare call's state.
type run struct {
	cfg      Config
	d        Deps
	log      *slog.Logger
	deadline time.Time
}

// waitAttached polls DescribeVolumes until a volume is attached to the
// instance at cfg.Device.
func (a *run) waitAttached(ctx context.Context, c EC2, instanceID, device, what string) (types.Volume, error) {
	in := &ec2.DescribeVolumesInput{Filters: []types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{instanceID}},
		{Name: aws.String("attachment.device"), Values: []string{device}},
	}}
	var found types.Volume
	lastState := ""
	a.log.Info("waiting for the "+what+" volume to be attached", "device", device, "timeout", a.cfg.Timeout)
	err := a.poll(ctx, func() (bool, error) {
		out, err := c.DescribeVolumes(ctx, in)
		if err != nil {
			return false, fmt.Errorf("describing the volumes attached to %s at %s: %w", instanceID, device, err)
		}
		for _, v := range out.Volumes {
			for _, att := range v.Attachments {
				if aws.ToString(att.InstanceId) != instanceID || aws.ToString(att.Device) != device {
					continue
				}
				if att.State == types.VolumeAttachmentStateAttached {
					found = v
					return true, nil
				}
				if s := aws.ToString(v.VolumeId) + " " + string(att.State); s != lastState {
					lastState = s
					a.log.Info(what+" volume not attached yet", "volume-id", aws.ToString(v.VolumeId), "attachment-state", string(att.State))
				}
			}
		}
		return false, nil
	})
	if err != nil {
		what := fmt.Sprintf("a volume attached at %s to instance %s (EC2 DescribeVolumes, filters attachment.instance-id=%s and attachment.device=%s)",
			device, instanceID, instanceID, device)
		if lastState != "" {
			what += "; last seen: " + lastState
		}
		return types.Volume{}, a.timeout(err, what,
			hintFor(what, device))
	}
	return found, nil
}

func hintFor(what, device string) string {
	if what == "release" {
		return "is `handover release controller` running for this group's channel, and has the channel a published release (`handover release list`)? " +
			"It attaches under its --device, which must equal --release-device (" + device + ")"
	}
	return "is a handover controller running, and did the launch hook's migration for this instance reach Attaching? see `handover migrations list`. " +
		"The controller attaches under its configured device, which must equal --device"
}

// poll calls check until it reports done, backing off from PollMin to
// PollMax, until the deadline. Errors of check are logged and retried:
// throttling and a slow instance profile at boot pass. The last one is in
// the error poll returns.
func (a *run) poll(ctx context.Context, check func() (bool, error)) error {
	wait := a.cfg.PollMin
	var last error
	for {
		done, err := check()
		if done {
			return nil
		}
		if err != nil {
			if last == nil || err.Error() != last.Error() {
				a.log.Warn("check failed; retrying", "error", err)
			}
			last = err
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(err, last)
		}
		left := a.deadline.Sub(a.d.Clock.Now())
		if left <= 0 {
			return &errTimedOut{last: last}
		}
		if err := a.d.Sleep(ctx, min(wait, left)); err != nil {
			return errors.Join(err, last)
		}
		wait = min(wait*2, a.cfg.PollMax)
	}
}

// errTimedOut is poll's answer when the deadline passed; timeout turns it
// into a TimeoutError that names what was waited for.
type errTimedOut struct{ last error }

func (e *errTimedOut) Error() string { return "timed out" }

func (a *run) timeout(err error, what, hint string) error {
	var t *errTimedOut
	if errors.As(err, &t) {
		return &TimeoutError{After: a.cfg.Timeout, Waited: what, Hint: hint, Last: t.last}
	}
	return fmt.Errorf("waiting for %s: %w", what, err)
}

// TimeoutError says the agent gave up waiting. Retrying is safe: Prepare
// has changed nothing before the thing it waited for appeared.
type TimeoutError struct {
	After  time.Duration
	Waited string // what was waited for, naming the volume, device or path and the instance
	Hint   string // what to check
	Last   error  // the last error met while waiting, if any
}

func (e *TimeoutError) Error() string {
	msg := fmt.Sprintf("gave up after %v waiting for %s: %s", e.After, e.Waited, e.Hint)
	if e.Last != nil {
		msg += fmt.Sprintf(" (last error: %v)", e.Last)
	}
	return msg
}

func (e *TimeoutError) Unwrap() error { return e.Last }

// IsTimeout reports whether err is (or wraps) a TimeoutError.
func IsTimeout(err error) bool {
	var t *TimeoutError
	return errors.As(err, &t)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
