package handover

import (
	"context"
	"errors"
	"fmt"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// stepRollingBack undoes a migration in an order that is safe to repeat:
// record ABANDON, lift a retirement of the source, ABANDON the hook (so the
// new instance never serves), unfence the source, delete what this
// migration created — unfencing only if no newer epoch was committed —
// release the database and any held terminations.
func (c *Controller) stepRollingBack(ctx context.Context, m *ledger.Migration) (outcome, error) {
	if !m.HookDone && m.Result == "" {
		m.Result = ResultAbandon
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}

	var db *ledger.Database
	var err error
	if m.Database != "" { // a pool migration may end before it picked one
		db, err = c.led.GetDatabase(ctx, m.Database)
	}
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return outcome{}, fmt.Errorf("reading database %s: %w", m.Database, err)
	}
	if db == nil {
		db = &ledger.Database{ID: m.Database}
	}

	// A retired source forwards every read to the new instance, which the
	// ABANDON below terminates: lift the retirement first, or reads fail
	// from the ABANDON until the unfence. That is safe before the ABANDON
	// because the retire was only sent once the new instance was confirmed
	// fenced (Retiring), and ABANDON is already recorded, so no CONTINUE
	// can follow: there is never a second writer, and nothing routes reads
	// to the new instance except the retirement being lifted.
	if m.Retired && m.Fenced && !m.Unfenced && !m.HookDone {
		done, err := c.unfence(ctx, m, db)
		if err != nil {
			return outcome{}, err
		}
		if done {
			m.Unfenced = true
			if err := c.save(ctx, m); err != nil {
				return outcome{}, err
			}
		}
		// Not done (unreachable for now): ABANDON anyway, and retry the
		// unfence below; the hook must end in time (invariant hooks-end).
	}

	if !m.HookDone {
		err := c.complete(ctx, c.hookRef(m), ResultAbandon)
		if err != nil && !errors.Is(err, ErrNoActiveAction) {
			return outcome{}, err
		}
		m.HookDone = true
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}

	// A drain that began (after CONTINUE: see stepDraining) is undone
	// before the unfence, so the old instance serves reads again first.
	if m.DrainStarted {
		if err := c.undrainSource(ctx, m, db); err != nil {
			return outcome{}, err
		}
		m.DrainStarted = false
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}

	// Unfence first: once the hook is abandoned the new instance can never
	// serve, so writes may resume at once; the clean-up can take its time.
	//
	// The unfence also lifts a retirement (Retiring): the source forwards
	// to the new instance, which is being abandoned, so it must answer
	// from its own data again. That is safe under the epoch rules for the
	// same reason the unfence is: a rollback happens only before CONTINUE,
	// and the new instance is unfenced only after CONTINUE (Unfencing), so
	// no write was ever acknowledged under the fence epoch and the
	// source's data is still the latest; and unfence() does nothing once
	// the database's epoch moved on or another migration claimed it, when
	// the retirement (or fence) belongs to someone newer.
	if m.Fenced && !m.Unfenced {
		done, err := c.unfence(ctx, m, db)
		if err != nil {
			return outcome{}, err
		}
		if !done {
			return stay(c.backoff(m.Attempts + 1))
		}
		m.Unfenced = true
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}

	// Volumes first: one still attached to the abandoned instance has to be
	// detached before it can go.
	if m.Volume != "" && m.SourceFate != FateSelf && m.Volume != db.Volume {
		done, err := c.dropVolume(ctx, m, m.Volume)
		if err != nil || !done {
			return stay(c.cfg.PollInterval)
		}
		m.Volume = ""
	}
	// Anything a crash left unrecorded is found by its tag.
	if done, err := c.dropTagged(ctx, m, db); err != nil || !done {
		if err != nil {
			return outcome{}, err
		}
		return stay(c.cfg.PollInterval)
	}
	if err := c.save(ctx, m); err != nil {
		return outcome{}, err
	}

	if db.Claim == m.ID {
		db.Claim = ""
		db.UpdatedAt = c.clk.Now()
		if err := c.led.SaveDatabase(ctx, db); err != nil {
			if errors.Is(err, ledger.ErrConflict) {
				return outcome{}, errLostRace
			}
			return outcome{}, fmt.Errorf("releasing database %s: %w", m.Database, err)
		}
	}
	if !c.releaseHolds(ctx, m) {
		return stay(c.cfg.RetryBase)
	}
	return goTo(ledger.Aborted, "rolled back: "+m.LastError)
}

// undrainSource registers the source with its load balancers again, if it
// is still in service in its group: one on its way out (Terminating) was
// taken out by Auto Scaling, and must stay out.
func (c *Controller) undrainSource(ctx context.Context, m *ledger.Migration, db *ledger.Database) error {
	d, ok := c.cloud.(Drainer)
	if !ok {
		return nil // it never drained: Draining needs a Drainer
	}
	group := db.Group
	if group == "" {
		group = m.Group
	}
	var state string
	err := c.call(ctx, pacing.FamilyAutoScaling, "reading lifecycle state of "+m.Source, func() (err error) {
		state, err = c.cloud.GroupInstanceState(ctx, group, m.Source)
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	case state != LifecycleInService:
		c.log.Info("old instance left service; not registering it again", "migration-id", m.ID, "instance", m.Source, "lifecycle", state)
		return nil
	}
	return c.call(ctx, pacing.FamilyAutoScaling, "registering "+m.Source+" with its load balancers again", func() error {
		return d.UndrainInstance(ctx, group, m.Source)
	})
}

// dropVolume detaches (if needed) and deletes a volume this migration
// created. It reports whether the volume is gone.
func (c *Controller) dropVolume(ctx context.Context, m *ledger.Migration, id string) (bool, error) {
	v, err := c.describeVolume(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && (v.State == VolumeDeleted || v.State == VolumeDeleting)):
		markDeleted(m, id)
		return true, nil
	case err != nil:
		return false, err
	case v.State == VolumeCreating:
		return false, nil
	case v.AttachedTo != "":
		if v.AttachState == "detaching" {
			return false, nil
		}
		// Force is safe for the volumes callers drop: a rollback's, whose
		// instance was abandoned and never served, and a superseded
		// migration's, which the database has left (see supersede).
		return false, c.call(ctx, pacing.FamilyMutate, "detaching volume "+id, func() error {
			return c.cloud.DetachVolume(ctx, id, true)
		})
	}
	err = c.call(ctx, pacing.FamilyDelete, "deleting volume "+id, func() error {
		return c.cloud.DeleteVolume(ctx, id)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	markDeleted(m, id)
	return true, nil
}

// dropTagged deletes every snapshot and volume tagged with this migration's
// id, except the database's authoritative volume and base snapshot.
func (c *Controller) dropTagged(ctx context.Context, m *ledger.Migration, db *ledger.Database) (bool, error) {
	byTag := map[string]string{TagMigration: m.ID}
	var snaps []Snapshot
	if err := c.call(ctx, pacing.FamilyDescribe, "looking up snapshots of migration "+m.ID, func() (err error) {
		snaps, err = c.cloud.FindSnapshots(ctx, byTag)
		return err
	}); err != nil {
		return false, err
	}
	all := true
	for _, s := range snaps {
		if s.ID == db.BaseSnapshot {
			continue
		}
		addResource(m, ledger.KindSnapshot, s.ID, s.Tags[TagPurpose])
		if s.State == SnapshotPending || !c.deleteSnapshot(ctx, m, s.ID) {
			all = false
		}
	}
	var vols []Volume
	if err := c.call(ctx, pacing.FamilyDescribe, "looking up volumes of migration "+m.ID, func() (err error) {
		vols, err = c.cloud.FindVolumes(ctx, byTag)
		return err
	}); err != nil {
		return false, err
	}
	for _, v := range vols {
		if v.ID == db.Volume || v.State == VolumeDeleted {
			continue
		}
		addResource(m, ledger.KindVolume, v.ID, v.Tags[TagPurpose])
		done, err := c.dropVolume(ctx, m, v.ID)
		if err != nil || !done {
			all = false
		}
	}
	return all, nil
}

// unfence lifts the fence taken by this migration, but only while the
// database is still at the epoch it was fenced under: after a commit the
// source must stay fenced forever (invariant single-writer). It reports whether the
// question is settled.
func (c *Controller) unfence(ctx context.Context, m *ledger.Migration, db *ledger.Database) (bool, error) {
	if db.Epoch != m.FromEpoch || (db.Claim != "" && db.Claim != m.ID) {
		c.log.Warn("source stays fenced: the database moved on", "migration-id", m.ID, "source", m.Source, "epoch", db.Epoch)
		return true, nil
	}
	src, err := c.describeInstance(ctx, m.Source)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && gone(src.State)):
		return true, nil // nothing left to unfence
	case err != nil:
		return false, err
	}
	if m.SourceStopped && src.State == InstanceStopped {
		// Start it again; once it runs, its service is unfenced below: a
		// fence that landed but whose answer was lost survives the restart.
		err := c.call(ctx, pacing.FamilyMutate, "starting source "+m.Source+" again", func() error {
			return c.cloud.StartInstance(ctx, m.Source)
		})
		return false, err
	}
	if src.State != InstanceRunning {
		return false, nil // pending, stopping: look again
	}
	err = c.svc.Unfence(ctx, Target{Instance: src.ID, Addr: src.PrivateIP}, m.FenceEpoch)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fence.ErrStaleEpoch):
		// A newer fence is in force; it is not ours to lift.
		return true, nil
	case errors.Is(err, fence.ErrUnreachable):
		m.Attempts++
		if m.Attempts >= c.cfg.MaxAttempts {
			// Leaving it fenced is safe (one writer at most); say so loudly.
			c.log.Error("source unreachable; leaving it fenced", "migration-id", m.ID, "source", m.Source, "err", err)
			return true, nil
		}
		return false, nil
	}
	return false, fmt.Errorf("unfencing %s: %w", m.Source, err)
}
