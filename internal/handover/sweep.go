package handover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// The sweeper is the no-leaks invariant's last line: every volume and
// snapshot handover creates carries its migration's id in a tag, and
// whatever no database and no live migration owns is deleted. PlanSweep
// is the judgement alone, for `handover sweep --dry-run`; Sweep acts on
// the same judgement, so the dry run cannot drift from what a pass does.

// Kinds of resource the sweeper judges.
const (
	SweepVolume   = "volume"
	SweepSnapshot = "snapshot"
)

// SweepItem is one resource tagged handover:managed and the sweeper's
// verdict on it.
type SweepItem struct {
	Kind  string // SweepVolume or SweepSnapshot
	ID    string
	State string
	// Database and Migration are what its tags name ("" when untagged).
	Database, Migration string
	Tags                map[string]string
	Created             time.Time
	// Delete says the sweeper deletes it; Reason says why nobody owns it,
	// or, when kept, who does or what it waits for.
	Delete bool
	Reason string
	// Deleted and Err are what a pass did: Err is the cloud's refusal of a
	// deletion, which a later pass retries.
	Deleted bool
	Err     error
}

// SweepResult is what a sweep did.
type SweepResult struct {
	DeletedVolumes   []string
	DeletedSnapshots []string
	Kept             int
	// Items is every managed resource with its verdict and outcome.
	Items []SweepItem
	// LeaseHeld says another holder was sweeping: this pass did nothing.
	LeaseHeld bool
}

// Sweep compares every resource tagged handover:managed with the ledger and
// deletes what is neither authoritative, retained by policy (a database's
// base snapshot), nor in use by an unfinished migration. Attached volumes
// and pending snapshots are left for a later pass. Resources of migrations
// the ledger does not know are kept for SweepGrace, in case their record is
// still being written. Safe to repeat; while another holder has the
// sweeper lease it does nothing and says so in LeaseHeld.
func (c *Controller) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	lease, err := c.led.AcquireLease(ctx, "sweeper", c.cfg.Holder, c.clk.Now(), c.cfg.LeaseTTL)
	if errors.Is(err, ledger.ErrLeaseHeld) {
		res.LeaseHeld = true
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("taking the sweeper lease: %w", err)
	}
	defer func() { _ = c.led.ReleaseLease(ctx, lease) }()

	res.Items, err = c.sweep(ctx, true)
	for _, it := range res.Items {
		switch {
		case !it.Delete:
			res.Kept++
		case !it.Deleted:
		case it.Kind == SweepVolume:
			res.DeletedVolumes = append(res.DeletedVolumes, it.ID)
		default:
			res.DeletedSnapshots = append(res.DeletedSnapshots, it.ID)
		}
	}
	return res, err
}

// PlanSweep judges every resource tagged handover:managed as Sweep would,
// without the sweeper lease, and changes nothing. On an error reading the
// ledger or the cloud it returns what it judged so far with the error: a
// resource it could not judge is never given up.
func (c *Controller) PlanSweep(ctx context.Context) ([]SweepItem, error) {
	return c.sweep(ctx, false)
}

// sweep judges every managed resource and, with act, deletes each one
// given up as soon as it is judged (volumes first, then snapshots).
func (c *Controller) sweep(ctx context.Context, act bool) ([]SweepItem, error) {
	// Migrations first, then databases: a migration that commits between
	// the two reads is then protected by the database list.
	unfinished, err := c.led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		return nil, fmt.Errorf("listing unfinished migrations: %w", err)
	}
	dbs, err := c.led.ListDatabases(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	// owner says who needs a resource by id, whatever its tags say.
	owner := map[string]string{}
	for _, db := range dbs {
		if db.Dropped() {
			continue // its environment's operation deleted it, or will: nothing needs its volume
		}
		owner[db.BaseSnapshot] = "the base snapshot of database " + db.ID
		owner[db.Volume] = "the authoritative volume of database " + db.ID
	}
	for _, m := range unfinished {
		for _, id := range []string{m.SourceVolume, m.Volume, m.PreCopySnapshot, m.FinalSnapshot} {
			if _, ok := owner[id]; !ok {
				owner[id] = fmt.Sprintf("in use by migration %s, still %s", m.ID, m.State)
			}
		}
	}
	delete(owner, "")
	now := c.clk.Now()

	var items []SweepItem
	judged := func(it SweepItem) {
		if act && it.Delete {
			c.sweepOne(ctx, &it)
		}
		items = append(items, it)
	}
	managed := map[string]string{TagManaged: "true"}
	var vols []Volume
	if err := c.call(ctx, pacing.FamilyDescribe, "listing managed volumes", func() (err error) {
		vols, err = c.cloud.FindVolumes(ctx, managed)
		return err
	}); err != nil {
		return items, err
	}
	for _, v := range vols {
		it := newSweepItem(SweepVolume, v.ID, v.State, v.Tags, v.CreateTime)
		switch why, ok := owner[v.ID]; {
		case ok:
			it.Reason = why
		case v.State == VolumeDeleted || v.State == VolumeDeleting:
			it.Reason = "already " + v.State
		default:
			keep, why, err := c.sweepOwner(ctx, now, v.Tags, v.CreateTime)
			if err != nil {
				return items, err
			}
			it.Delete, it.Reason = !keep, why
			switch {
			case keep:
			case v.AttachedTo != "":
				it.Delete, it.Reason = false, why+"; but still attached to "+v.AttachedTo+": a later pass takes it"
			case v.State != VolumeAvailable && v.State != VolumeError:
				it.Delete, it.Reason = false, why+"; but "+v.State+": a later pass takes it"
			}
		}
		judged(it)
	}

	var snaps []Snapshot
	if err := c.call(ctx, pacing.FamilyDescribe, "listing managed snapshots", func() (err error) {
		snaps, err = c.cloud.FindSnapshots(ctx, managed)
		return err
	}); err != nil {
		return items, err
	}
	for _, s := range snaps {
		it := newSweepItem(SweepSnapshot, s.ID, s.State, s.Tags, s.StartTime)
		switch why, ok := owner[s.ID]; {
		case ok:
			it.Reason = why
		case s.State == SnapshotPending:
			it.Reason = "still pending: a later pass looks again"
		default:
			keep, why, err := c.sweepOwner(ctx, now, s.Tags, s.StartTime)
			if err != nil {
				return items, err
			}
			it.Delete, it.Reason = !keep, why
		}
		judged(it)
	}
	return items, nil
}

// sweepOne deletes one resource the sweeper gave up, recording the outcome.
func (c *Controller) sweepOne(ctx context.Context, it *SweepItem) {
	del := c.cloud.DeleteVolume
	if it.Kind == SweepSnapshot {
		del = c.cloud.DeleteSnapshot
	}
	err := c.call(ctx, pacing.FamilyDelete, "sweeping "+it.Kind+" "+it.ID, func() error { return del(ctx, it.ID) })
	if err != nil && !errors.Is(err, ErrNotFound) {
		it.Err = err
		c.log.Info("sweep: "+it.Kind+" not deleted yet", it.Kind, it.ID, "err", err)
		return
	}
	it.Deleted = true
	c.log.Info("swept "+it.Kind, it.Kind, it.ID, "database", it.Database, "migration-id", it.Migration, "reason", it.Reason)
}

func newSweepItem(kind, id, state string, tags map[string]string, created time.Time) SweepItem {
	return SweepItem{Kind: kind, ID: id, State: state, Database: tags[TagDatabase], Migration: tags[TagMigration],
		Tags: tags, Created: created}
}

// sweepOwner judges a resource no database and no unfinished migration
// needs by its migration tag: kept while that migration runs, or while it
// is too young for its migration's record to be surely written (an
// unknown or missing migration id within SweepGrace). why says which.
func (c *Controller) sweepOwner(ctx context.Context, now time.Time, tags map[string]string, created time.Time) (keep bool, why string, err error) {
	age := now.Sub(created)
	young := age < c.cfg.SweepGrace
	mid := tags[TagMigration]
	if mid == "" {
		if young {
			return true, fmt.Sprintf("no %s tag, but created %s ago, within the sweep grace of %s", TagMigration, age.Round(time.Second), c.cfg.SweepGrace), nil
		}
		return false, fmt.Sprintf("no %s tag, and older than the sweep grace of %s", TagMigration, c.cfg.SweepGrace), nil
	}
	m, err := c.led.GetMigration(ctx, mid)
	if errors.Is(err, ledger.ErrNotFound) {
		if young {
			return true, fmt.Sprintf("migration %s is not in the ledger (yet): created %s ago, within the sweep grace of %s", mid, age.Round(time.Second), c.cfg.SweepGrace), nil
		}
		return false, fmt.Sprintf("migration %s is not in the ledger, and the resource is older than the sweep grace of %s", mid, c.cfg.SweepGrace), nil
	}
	if err != nil {
		return true, "", fmt.Errorf("reading migration %s: %w", mid, err)
	}
	if !m.State.Terminal() {
		return true, fmt.Sprintf("migration %s is still %s", mid, m.State), nil
	}
	return false, fmt.Sprintf("migration %s ended %s, and no database holds it", mid, m.State), nil
}
