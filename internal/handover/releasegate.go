package handover

import (
	"context"
	"errors"
	"fmt"

	"github.com/handover-dev/handover/internal/ledger"
)

// Tags of package release's instance release volumes, which the release
// gate reads (package release imports this one, so they are spelled here
// and package release names them from here).
const (
	// TagReleaseServed is put, "true", on an instance's release volume by
	// the release controller once the instance's service answers with
	// that volume's release, the channel's latest, and no other release
	// volume is left on the instance.
	TagReleaseServed = "handover:release-served"
	// TagReleaseName is the release a volume holds (release.TagRelease).
	TagReleaseName = "handover:release"
	// TagReleaseInstance names the instance a release volume was made
	// for (release.TagInstance).
	TagReleaseInstance = "handover:instance"
	// PurposeReleaseInstance is a release volume made for an instance
	// (release.PurposeInstance).
	PurposeReleaseInstance = "release-instance"
)

// releaseServed is the release gate of a stateful group that joins a
// release channel (m.Channel): its launch completes only once the
// instance serves the channel's latest release, so that it never enters
// service on an older release after a newer one was recorded (issue 16).
// The release controller gives the instance its release, switches it when
// a newer one is recorded during the launch, and marks the volume served
// (TagReleaseServed); this reads the latest again and checks the mark on
// the one release volume left on the instance. A channel with no release
// yet holds nothing here: the agent starts no service without a release,
// so the health check holds the launch.
func (c *Controller) releaseServed(ctx context.Context, m *ledger.Migration) (bool, string, error) {
	if m.Channel == "" {
		return true, "", nil
	}
	ch, err := c.led.GetChannel(ctx, m.Channel)
	if errors.Is(err, ledger.ErrNotFound) || err == nil && ch.Latest == "" {
		return true, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("reading release channel %s of migration %s: %w", m.Channel, m.ID, err)
	}
	vols, err := c.cloud.FindVolumes(ctx, map[string]string{TagReleaseInstance: m.Instance, TagPurpose: PurposeReleaseInstance})
	if err != nil {
		return false, "", fmt.Errorf("listing the release volumes of %s: %w", m.Instance, err)
	}
	var live []Volume
	for _, v := range vols {
		if v.State != VolumeDeleting && v.State != VolumeDeleted {
			live = append(live, v)
		}
	}
	switch {
	case len(live) == 1 && live[0].AttachedTo == m.Instance && live[0].Tags[TagReleaseName] == ch.Latest && live[0].Tags[TagReleaseServed] == "true":
		return true, "", nil
	case len(live) == 1 && live[0].Tags[TagReleaseName] == ch.Latest:
		return false, fmt.Sprintf("healthy; waiting for the release controller to see it serve release %s of channel %s", ch.Latest, m.Channel), nil
	}
	return false, fmt.Sprintf("healthy; waiting for the release controller to switch it to release %s of channel %s (%d release volumes)", ch.Latest, m.Channel, len(live)), nil
}
