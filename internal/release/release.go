// Package release is S4 of docs/design.md: application code shipped as a
// volume snapshot. A publish syncs a directory exactly onto a channel's
// release volume, verifies it by a manifest hash, snapshots the volume and
// records the snapshot as the channel's latest release in the ledger, one
// publish per channel at a time under the channel's lease.
//
// The package drives the cloud only through the consumer-owned Cloud
// interface below, which internal/awscloud implements over the SDK, so the
// same code runs against AWS and the local cloud. It must never record a
// release as latest before its snapshot has completed with the verified
// tree, and never delete a snapshot a release record still names as
// published without marking the record Deleted first.
package release

import (
	"context"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// Tags on release resources. They carry TagManaged, not handover's own
// handover:managed: the migration sweeper would give up a resource that
// names no migration, and releases are judged against release records.
const (
	TagManaged = "handover:release-managed"
	// TagVolume marks a channel's release volume (the one publish writes),
	// with the channel as its value.
	TagVolume   = "handover:release-volume"
	TagChannel  = "handover:channel"
	TagRelease  = handover.TagReleaseName
	TagManifest = "handover:manifest"
	// TagPurpose (handover's handover:purpose) is PurposeRelease on a
	// release snapshot and PurposeInstance on a volume made from one for an
	// instance.
	PurposeRelease  = "release"
	PurposeInstance = handover.PurposeReleaseInstance
	// TagInstance names the instance a release volume was made for.
	TagInstance = handover.TagReleaseInstance
	// TagServed marks an instance's release volume once the instance
	// serves it, the latest, with nothing else attached: a stateful
	// group's launch waits for it (handover's release gate).
	TagServed = handover.TagReleaseServed
)

// DefaultDevice is where release volumes are attached: beside the state
// volume (handover's /dev/sdf), so a stateful group's instances get both.
const DefaultDevice = "/dev/sdg"

// Cloud is what releases need of the cloud. awscloud.Cloud implements it;
// the methods keep handover.Cloud's contracts (repeat safety, ErrNotFound).
type Cloud interface {
	FindVolumes(ctx context.Context, tags map[string]string) ([]handover.Volume, error)
	DescribeVolume(ctx context.Context, id string) (handover.Volume, error)
	CreateVolume(ctx context.Context, spec handover.VolumeSpec) (handover.Volume, error)
	AttachVolume(ctx context.Context, volumeID, instanceID, device string) error
	DescribeInstance(ctx context.Context, id string) (handover.Instance, error)
	// CreateSnapshot is not safe to repeat blindly: look one up by its
	// tags first.
	CreateSnapshot(ctx context.Context, volumeID string, tags map[string]string) (handover.Snapshot, error)
	DescribeSnapshot(ctx context.Context, id string) (handover.Snapshot, error)
	FindSnapshots(ctx context.Context, tags map[string]string) ([]handover.Snapshot, error)
}

// Ledger is the part of the ledger releases use (ledger.Ledger implements
// it).
type Ledger interface {
	CreateRelease(ctx context.Context, v *ledger.Release) error
	GetRelease(ctx context.Context, id string) (*ledger.Release, error)
	SaveRelease(ctx context.Context, v *ledger.Release) error
	ListReleases(ctx context.Context, channel string) ([]*ledger.Release, error)
	GetChannel(ctx context.Context, id string) (*ledger.Channel, error)
	SaveChannel(ctx context.Context, c *ledger.Channel) error
	ListChannels(ctx context.Context) ([]*ledger.Channel, error)
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error)
	ReleaseLease(ctx context.Context, l ledger.Lease) error
}

// Marker is the content of MarkerFile: which release a volume holds.
type Marker struct {
	Channel      string    `json:"channel"`
	Name         string    `json:"name"`
	ManifestHash string    `json:"manifest_hash"`
	PublishedAt  time.Time `json:"published_at"`
}

// AltDevice is the device a rollout attaches the next release at on an
// instance whose current release is at dev (and the other way round): an
// instance has at most two release volumes, the one it serves and the one
// it switches to. /dev/sdg pairs with /dev/sdh; another device with the
// next letter (or the one before, for a last letter z).
func AltDevice(dev string) string {
	if dev == "" {
		return ""
	}
	last := dev[len(dev)-1]
	switch {
	case last >= 'a' && last < 'z' && (last-'a')%2 == 0:
		return dev[:len(dev)-1] + string(last+1)
	case last > 'a' && last <= 'z':
		return dev[:len(dev)-1] + string(last-1)
	}
	return dev + "1"
}
