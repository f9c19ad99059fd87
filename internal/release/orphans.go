package release

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/handover-dev/handover/internal/handover"
)

// A release volume made for an instance is orphaned when a step that made
// it, or let go of it, died before it was attached or deleted: the
// launcher or a rollout killed between CreateVolume and AttachVolume (or
// the latest changing meanwhile, so the next pass wants another
// release), a rollout killed between detaching the old volume and
// deleting it, a switch-back killed between the detach and the delete.
// Each such volume is unattached, tagged with its instance, and no step
// that is still running will attach it: the launcher only attaches for
// instances waiting on their launch hook, and a rollout only under the
// channel's lease. So, under the lease, every unattached release volume
// of the channel whose instance is not launching is an orphan.

// launchingLifecycle reports whether an instance in this lifecycle state
// is the launcher's: it may attach a volume made for it at any pass.
func launchingLifecycle(lc string) bool {
	return strings.HasPrefix(lc, "Pending")
}

// Orphans returns the channel's instance release volumes that no step
// will attach: unattached (available or error) and made for a live
// instance that is not launching (those of gone instances are
// Launcher.Sweep's, which needs no lease). Only a holder of the channel's
// lease may act on the answer: without it, a rollout may be between
// creating a volume and attaching it.
func Orphans(ctx context.Context, c RolloutCloud, channel string) ([]handover.Volume, error) {
	vols, err := c.FindVolumes(ctx, map[string]string{TagManaged: "true", handover.TagPurpose: PurposeInstance, TagChannel: channel})
	if err != nil {
		return nil, fmt.Errorf("listing the release volumes of channel %s: %w", channel, err)
	}
	var loose []handover.Volume
	for _, v := range vols {
		if v.AttachedTo == "" && (v.State == handover.VolumeAvailable || v.State == handover.VolumeError) {
			loose = append(loose, v)
		}
	}
	if len(loose) == 0 {
		return nil, nil
	}
	lifecycle, err := channelLifecycles(ctx, c, channel)
	if err != nil {
		return nil, err
	}
	var out []handover.Volume
	for _, v := range loose {
		if launchingLifecycle(lifecycle[v.Tags[TagInstance]]) {
			continue // the launcher adopts it, or drops it, at its next pass
		}
		inst, err := c.DescribeInstance(ctx, v.Tags[TagInstance])
		if errors.Is(err, handover.ErrNotFound) || err == nil && (inst.State == handover.InstanceTerminated || inst.State == handover.InstanceShuttingDown) {
			continue // its instance is gone: the launcher's Sweep deletes it, no lease needed
		}
		if err != nil {
			return nil, fmt.Errorf("reading instance %s of release volume %s: %w", v.Tags[TagInstance], v.ID, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// channelLifecycles maps each instance of the channel's groups to its
// lifecycle state.
func channelLifecycles(ctx context.Context, c RolloutCloud, channel string) (map[string]string, error) {
	groups, err := ChannelGroups(ctx, c, channel)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range groups {
		members, err := c.GroupMembers(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("listing the instances of group %s: %w", g, err)
		}
		for _, m := range members {
			out[m.Instance] = m.Lifecycle
		}
	}
	return out, nil
}

// SweepOrphans deletes the channel's orphaned release volumes (Orphans)
// and returns their ids. The caller must hold the channel's lease.
func (r *Rollout) SweepOrphans(ctx context.Context, channel string) ([]string, error) {
	r.defaults()
	orphans, err := Orphans(ctx, r.Cloud, channel)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, v := range orphans {
		if err := r.Cloud.DeleteVolume(ctx, v.ID); err != nil && !errors.Is(err, handover.ErrNotFound) {
			errs = append(errs, fmt.Errorf("deleting orphaned release volume %s of instance %s: %w", v.ID, v.Tags[TagInstance], err))
			continue
		}
		r.Log.Info("orphaned release volume deleted", "channel", channel, "volume-id", v.ID, "instance", v.Tags[TagInstance], "release", v.Tags[TagRelease])
		deleted = append(deleted, v.ID)
	}
	return deleted, errors.Join(errs...)
}
