package release

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// DefaultKeep is how many published releases of a channel keep their
// snapshots.
const DefaultKeep = 5

// RetainCloud is what retention needs of the cloud.
type RetainCloud interface {
	FindSnapshots(ctx context.Context, tags map[string]string) ([]handover.Snapshot, error)
	FindVolumes(ctx context.Context, tags map[string]string) ([]handover.Volume, error)
	DeleteSnapshot(ctx context.Context, id string) error
}

// Retained is retention's judgement of one release snapshot.
type Retained struct {
	Snapshot string `json:"snapshot"`
	Release  string `json:"release"`
	Deleted  bool   `json:"deleted"`
	Reason   string `json:"reason"`
}

// Retain keeps the snapshots of the channel's keep most recent published
// releases, of its latest and previous releases, and of every release an
// instance's volume was made from and still exists; it deletes the other
// release snapshots of the channel, marking their records Deleted first,
// so a rollback to one is refused by name rather than failing on a missing
// snapshot. A snapshot whose release the ledger does not know is kept and
// reported: against the wrong ledger every snapshot would look unowned.
func Retain(ctx context.Context, c RetainCloud, l Ledger, channel string, keep int) ([]Retained, error) {
	if keep < 1 {
		return nil, fmt.Errorf("--keep %d: keep at least 1 release", keep)
	}
	rels, err := l.ListReleases(ctx, channel)
	if err != nil {
		return nil, fmt.Errorf("listing the releases of channel %s: %w", channel, err)
	}
	ch, err := l.GetChannel(ctx, channel)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("reading channel %s: %w", channel, err)
	}
	why := map[string]string{} // release name -> why kept
	if ch != nil {
		why[ch.Latest] = "the channel's latest"
		if ch.Previous != "" {
			why[ch.Previous] = "the channel's previous (a failed rollout goes back to it)"
		}
	}
	vols, err := c.FindVolumes(ctx, map[string]string{TagManaged: "true", handover.TagPurpose: PurposeInstance, TagChannel: channel})
	if err != nil {
		return nil, fmt.Errorf("listing the release volumes of channel %s: %w", channel, err)
	}
	for _, v := range vols {
		if _, ok := why[v.Tags[TagRelease]]; !ok {
			why[v.Tags[TagRelease]] = "in use by volume " + v.ID
		}
	}
	published := slices.DeleteFunc(slices.Clone(rels), func(r *ledger.Release) bool { return r.State != ledger.ReleasePublished })
	slices.SortStableFunc(published, func(a, b *ledger.Release) int { return b.PublishedAt.Compare(a.PublishedAt) })
	for i, r := range published {
		if i < keep {
			if _, ok := why[r.Name]; !ok {
				why[r.Name] = fmt.Sprintf("one of the %d most recent", keep)
			}
		}
	}
	byName := map[string]*ledger.Release{}
	for _, r := range rels {
		byName[r.Name] = r
	}
	snaps, err := c.FindSnapshots(ctx, map[string]string{TagManaged: "true", handover.TagPurpose: PurposeRelease, TagChannel: channel})
	if err != nil {
		return nil, fmt.Errorf("listing the release snapshots of channel %s: %w", channel, err)
	}
	var out []Retained
	for _, s := range snaps {
		name := s.Tags[TagRelease]
		it := Retained{Snapshot: s.ID, Release: name}
		r := byName[name]
		switch reason, kept := why[name]; {
		case kept:
			it.Reason = reason
		case r == nil:
			it.Reason = "release " + name + " is not in this ledger: kept (is --ledger the controller's?)"
		case r.State == ledger.ReleasePublishing:
			it.Reason = "still publishing"
		case s.State == handover.SnapshotPending:
			it.Reason = "still pending"
		default:
			if r.State != ledger.ReleaseDeleted {
				r.State = ledger.ReleaseDeleted
				if err := l.SaveRelease(ctx, r); err != nil {
					return out, fmt.Errorf("marking release %s deleted: %w", r.ID, err)
				}
			}
			if err := c.DeleteSnapshot(ctx, s.ID); err != nil && !errors.Is(err, handover.ErrNotFound) {
				return out, fmt.Errorf("deleting snapshot %s of release %s: %w", s.ID, name, err)
			}
			it.Deleted, it.Reason = true, "older than the "+fmt.Sprint(keep)+" kept, and in use by no instance"
		}
		out = append(out, it)
	}
	return out, nil
}
