package release

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"time"

	"github.com/handover-dev/handover/internal/handover"
)

// InitSpec makes a channel's release volume.
type InitSpec struct {
	Channel  string
	Instance string // where it is attached: the release server
	Device   string
	SizeGiB  int32
}

// Init creates the channel's release volume in the instance's zone and
// attaches it there, or returns the one the channel has if it is attached
// to the instance. A channel's release volume attached elsewhere is an
// error naming it: a channel has one release volume. Safe to repeat (the
// volume's client token is the channel's).
func (p *Publisher) Init(ctx context.Context, spec InitSpec) (handover.Volume, error) {
	p.defaults()
	vols, err := p.Cloud.FindVolumes(ctx, map[string]string{TagVolume: spec.Channel})
	if err != nil {
		return handover.Volume{}, fmt.Errorf("looking for the release volume of channel %s: %w", spec.Channel, err)
	}
	for _, v := range vols {
		if v.AttachedTo != "" && v.AttachedTo != spec.Instance {
			return handover.Volume{}, fmt.Errorf("channel %s already has release volume %s, attached to %s: publish there, or detach it and attach it here", spec.Channel, v.ID, v.AttachedTo)
		}
	}
	inst, err := p.Cloud.DescribeInstance(ctx, spec.Instance)
	if err != nil {
		return handover.Volume{}, fmt.Errorf("reading instance %s: %w", spec.Instance, err)
	}
	vol, err := p.Cloud.CreateVolume(ctx, handover.VolumeSpec{Zone: inst.Zone, SizeGiB: spec.SizeGiB,
		ClientToken: "handover-release-volume-" + spec.Channel,
		Tags:        map[string]string{TagVolume: spec.Channel, TagManaged: "true", handover.TagPurpose: "release-volume"}})
	if err != nil {
		return handover.Volume{}, fmt.Errorf("creating the release volume of channel %s in %s: %w", spec.Channel, inst.Zone, err)
	}
	p.progress("init", "release volume %s of channel %s in %s", vol.ID, spec.Channel, inst.Zone)
	for deadline := p.Clock.Now().Add(10 * time.Minute); ; {
		switch {
		case vol.AttachedTo == spec.Instance && vol.State == handover.VolumeInUse:
			p.progress("init", "attached to %s at %s", spec.Instance, spec.Device)
			return vol, nil
		case vol.State == handover.VolumeAvailable:
			if err := p.Cloud.AttachVolume(ctx, vol.ID, spec.Instance, spec.Device); err != nil && !handover.Retryable(err) {
				return vol, fmt.Errorf("attaching release volume %s to %s at %s: %w", vol.ID, spec.Instance, spec.Device, err)
			}
		case vol.State == handover.VolumeError:
			return vol, fmt.Errorf("release volume %s failed to create", vol.ID)
		}
		if p.Clock.Now().After(deadline) {
			return vol, fmt.Errorf("release volume %s still %s after 10m", vol.ID, vol.State)
		}
		if err := p.Sleep(ctx, p.Poll); err != nil {
			return vol, err
		}
		if v, err := p.Cloud.DescribeVolume(ctx, vol.ID); err == nil {
			vol = v
		}
	}
}

// LocalLocate is Locate on the local cloud: the attached volume is linked
// into the instance's directory under its device's name.
func LocalLocate(instanceDir string) func(handover.Volume) (string, error) {
	return func(v handover.Volume) (string, error) {
		if v.AttachDevice == "" {
			return "", fmt.Errorf("volume %s reports no attachment device", v.ID)
		}
		return filepath.Join(instanceDir, "volumes", path.Base(v.AttachDevice)), nil
	}
}
