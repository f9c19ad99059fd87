package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/release"
)

// DefaultReleaseRoot is where release volumes are mounted on AWS, one
// directory per volume, so a new release can be mounted beside the one in
// use and the release link flipped between them.
const DefaultReleaseRoot = "/var/lib/handover/releases"

// ReadOnlyMounter is the optional capability of a System to mount a
// filesystem read-only, which a release volume needs: the instance must
// never change the release it serves.
type ReadOnlyMounter interface {
	MountReadOnly(ctx context.Context, dev, dir, fsType string) error
}

// prepareRelease waits for a release volume, makes its tree reachable
// read-only and points the release link at it.
func (a *run) prepareRelease(ctx context.Context, ec2c EC2, res *Result) error {
	var vol types.Volume
	a.log.Info("waiting for the release volume to be attached", "devices", a.releaseDevices(), "timeout", a.cfg.Timeout)
	err := a.poll(ctx, func() (bool, error) {
		v, ok, err := a.releaseTarget(ctx, ec2c, res.InstanceID)
		vol = v
		return ok, err
	})
	if err != nil {
		return a.timeout(err, fmt.Sprintf("a release volume attached at %s to instance %s", strings.Join(a.releaseDevices(), " or "), res.InstanceID),
			hintFor("release", a.cfg.ReleaseDevice))
	}
	cur, err := a.mountRelease(ctx, res.InstanceID, vol)
	if err != nil {
		return err
	}
	if err := linkMount(a.cfg.ReleaseMount, cur.Dir); err != nil {
		return fmt.Errorf("making --release-mount %s point at release volume %s: %w", a.cfg.ReleaseMount, cur.VolumeID, err)
	}
	res.ReleaseDir, res.Release, res.ReleaseChannel, res.ReleaseVolumeID = a.cfg.ReleaseMount, cur.Release, cur.Channel, cur.VolumeID
	res.releaseCurrent = cur
	// The report the issue asks for: which release this instance mounted.
	a.log.Info("release mounted", "channel", cur.Channel, "release", cur.Release, "release-volume-id", cur.VolumeID, "release-dir", a.cfg.ReleaseMount, "target", cur.Dir)
	return nil
}

// ReleaseMounted is one release volume made reachable on the instance.
type ReleaseMounted struct {
	VolumeID, Device, Dir, Channel, Release string
}

// releaseDevices are the devices release volumes are attached at: the
// release device, and the one a rollout attaches the next release at.
func (a *run) releaseDevices() []string {
	return []string{a.cfg.ReleaseDevice, release.AltDevice(a.cfg.ReleaseDevice)}
}

// releaseTarget returns the release volume the instance should serve: of
// those attached at a release device, the one attached last (a rollout
// attaches the new release beside the old one, and detaches the new one
// again to roll back).
func (a *run) releaseTarget(ctx context.Context, c EC2, instanceID string) (types.Volume, bool, error) {
	out, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{instanceID}},
		{Name: aws.String("attachment.device"), Values: a.releaseDevices()},
	}})
	if err != nil {
		return types.Volume{}, false, fmt.Errorf("describing the release volumes attached to %s: %w", instanceID, err)
	}
	var best types.Volume
	var bestAt time.Time
	found := false
	for _, v := range out.Volumes {
		for _, att := range v.Attachments {
			if aws.ToString(att.InstanceId) != instanceID || att.State != types.VolumeAttachmentStateAttached || !slices.Contains(a.releaseDevices(), aws.ToString(att.Device)) {
				continue
			}
			if at := aws.ToTime(att.AttachTime); !found || at.After(bestAt) {
				best, bestAt, found = v, at, true
			}
		}
	}
	return best, found, nil
}

// mountRelease makes an attached release volume's tree reachable and reads
// its marker.
func (a *run) mountRelease(ctx context.Context, instanceID string, vol types.Volume) (ReleaseMounted, error) {
	m := ReleaseMounted{VolumeID: aws.ToString(vol.VolumeId)}
	for _, att := range vol.Attachments {
		if aws.ToString(att.InstanceId) == instanceID {
			m.Device = aws.ToString(att.Device)
		}
	}
	var err error
	if a.cfg.InstanceDir != "" {
		m.Dir, err = a.localRelease(ctx, instanceID, m)
	} else {
		m.Dir, err = a.ebsRelease(ctx, m)
	}
	if err != nil {
		return m, err
	}
	mk, err := release.ReadMarker(m.Dir)
	if err != nil {
		return m, fmt.Errorf("release volume %s holds no release: %w (was it made from a snapshot `handover release publish` took?)", m.VolumeID, err)
	}
	m.Channel, m.Release = mk.Channel, mk.Name
	return m, nil
}

// localRelease waits for the local cloud to link the release volume in and
// returns the volume's own directory: the release link must keep pointing
// at this volume when another is linked under the same device later.
func (a *run) localRelease(ctx context.Context, instanceID string, m ReleaseMounted) (string, error) {
	link := filepath.Join(a.cfg.InstanceDir, "volumes", path.Base(m.Device))
	var dir string
	err := a.poll(ctx, func() (bool, error) {
		d, err := filepath.EvalSymlinks(link)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("looking for the release volume at %s: %w", link, err)
		}
		if _, err := os.Stat(filepath.Join(d, release.MarkerFile)); err != nil {
			return false, nil // a volume from a snapshot may still be filling
		}
		dir = d
		return true, nil
	})
	if err != nil {
		return "", a.timeout(err, fmt.Sprintf("release volume %s to appear at %s in instance %s", m.VolumeID, link, instanceID),
			"EC2 reports it attached; is $HANDOVER_INSTANCE_DIR this instance's directory in the local cloud's data directory?")
	}
	return dir, nil
}

// ebsRelease finds the release volume's device and mounts it read-only
// under DefaultReleaseRoot.
func (a *run) ebsRelease(ctx context.Context, m ReleaseMounted) (string, error) {
	sys := a.d.System
	ro, ok := sys.(ReadOnlyMounter)
	if !ok {
		return "", errors.New("this system cannot mount a release volume read-only")
	}
	cands := deviceCandidates(m.VolumeID, m.Device)
	var dev string
	err := a.poll(ctx, func() (bool, error) {
		for _, p := range cands {
			if d, err := sys.Resolve(p); err == nil {
				dev = d
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return "", a.timeout(err, fmt.Sprintf("the device of release volume %s (one of %s)", m.VolumeID, strings.Join(cands, ", ")),
			"EC2 reports it attached at "+m.Device+"; look at `ls -l /dev/disk/by-id/` and `dmesg`")
	}
	dir := filepath.Join(DefaultReleaseRoot, m.VolumeID)
	if src, err := sys.MountedAt(dir); err != nil {
		return "", fmt.Errorf("checking what is mounted at %s: %w", dir, err)
	} else if src != "" {
		return dir, nil // mounted by an earlier run of the agent
	}
	sig, err := sys.Probe(ctx, dev)
	if err != nil {
		return "", fmt.Errorf("looking for the filesystem of release volume %s (%s): %w", m.VolumeID, dev, err)
	}
	if sig.Type == "" {
		return "", fmt.Errorf("release volume %s (%s) has no filesystem: it was not made from a release snapshot", m.VolumeID, dev)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := ro.MountReadOnly(ctx, dev, dir, sig.Type); err != nil {
		return "", fmt.Errorf("mounting release volume %s read-only: %w", m.VolumeID, err)
	}
	return dir, nil
}
