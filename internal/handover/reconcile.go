package handover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// Reconcile is the safety net for lost events: it adopts launches waiting
// in Pending:Wait that no migration knows, advances every unfinished
// migration from Describe-style reads, and sweeps what nobody owns. The
// cloud's Describe answers are the truth; events only make things faster.
func (c *Controller) Reconcile(ctx context.Context) error {
	var errs []error
	if err := c.adopt(ctx); err != nil {
		errs = append(errs, err)
	}
	ms, err := c.led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing unfinished migrations: %w", err))...)
	}
	busy := map[string]bool{}
	for _, m := range ms {
		c.touching.put(m)
		busy[m.Database] = true
		if err := c.Advance(ctx, m.ID); err != nil {
			errs = append(errs, fmt.Errorf("advancing migration %s: %w", m.ID, err))
		}
	}
	if err := c.heal(ctx, busy); err != nil {
		errs = append(errs, err)
	}
	if err := c.tendHolds(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tendHolds keeps alive the terminate actions held on idle databases and
// lets them go once TerminateHoldMax has passed with no replacement.
func (c *Controller) tendHolds(ctx context.Context) error {
	dbs, err := c.led.ListDatabases(ctx)
	if err != nil {
		return fmt.Errorf("listing databases: %w", err)
	}
	for _, db := range dbs {
		if len(db.TerminateHolds) == 0 || db.Claim != "" && !db.Dropped() {
			continue // a claimant takes the holds over
		}
		holds, changed := c.beatHolds(ctx, "database/"+db.ID, db.TerminateHolds)
		kept := holds[:0:0]
		for _, h := range holds {
			// No replacement ever takes a dropped database: its
			// instances terminate at once.
			if c.clk.Now().Sub(h.Since) < c.cfg.TerminateHoldMax && !db.Dropped() {
				kept = append(kept, h)
				continue
			}
			err := c.complete(ctx, h, ResultContinue)
			if err != nil && !errors.Is(err, ErrNoActiveAction) {
				kept = append(kept, h)
				continue
			}
			c.log.Info("no replacement came: letting the instance terminate", "database", db.ID, "instance", h.Instance)
			changed = true
		}
		if !changed {
			continue
		}
		db.TerminateHolds = kept
		db.UpdatedAt = c.clk.Now()
		if err := c.led.SaveDatabase(ctx, db); err != nil && !errors.Is(err, ledger.ErrConflict) {
			return fmt.Errorf("updating held terminations of database %s: %w", db.ID, err)
		}
	}
	return nil
}

// heal replaces stranded instances. When the instance a database was handed
// to dies right after the handover committed, the group may keep serving
// from the old instance: fenced for good, holding a volume that is no
// longer authoritative. Only a replacement gets the database writable
// again, so handover asks the group for one; its launch hands the
// authoritative volume over by the dead-source path.
func (c *Controller) heal(ctx context.Context, busy map[string]bool) error {
	dbs, err := c.led.ListDatabases(ctx)
	if err != nil {
		return fmt.Errorf("listing databases: %w", err)
	}
	for _, db := range dbs {
		if busy[db.ID] || db.Claim != "" || db.Instance == "" || db.Group == "" || db.Dropped() {
			continue
		}
		holder, err := c.describeInstance(ctx, db.Instance)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil && !gone(holder.State) {
			continue
		}
		var members []GroupMember
		if err := c.call(ctx, pacing.FamilyAutoScaling, "listing members of group "+db.Group, func() (err error) {
			members, err = c.cloud.GroupMembers(ctx, db.Group)
			return err
		}); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return err
		}
		for _, gm := range members {
			if gm.Lifecycle != LifecycleInService || gm.Instance == db.Instance {
				continue
			}
			c.log.Warn("replacing an instance stranded without the authoritative volume",
				"database", db.ID, "instance", gm.Instance, "holder", db.Instance, "group", db.Group)
			if err := c.call(ctx, pacing.FamilyAutoScaling, "replacing stranded instance "+gm.Instance, func() error {
				return c.cloud.ReplaceInstance(ctx, db.Group, gm.Instance)
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// adopt starts a migration for every instance waiting on a launch hook that
// no migration (finished or not) knows, and settles every terminate action
// no event told of: held while its instance is a migration's source,
// released otherwise.
func (c *Controller) adopt(ctx context.Context) error {
	var waiting []WaitingAction
	err := c.call(ctx, pacing.FamilyAutoScaling, "listing instances waiting on lifecycle hooks", func() (err error) {
		waiting, err = c.cloud.WaitingActions(ctx)
		return err
	})
	if err != nil {
		var paced *pacedError
		if errors.As(err, &paced) {
			return nil
		}
		return err
	}
	var errs []error
	for _, w := range waiting {
		if !c.ownsHook(w.Hook) {
			continue
		}
		ref := ledger.HookRef{Group: w.Group, Hook: w.Hook, Instance: w.Instance}
		if w.Transition == TransitionTerminating {
			if _, err := c.holdTermination(ctx, ref); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		known, err := c.led.ListMigrations(ctx, ledger.MigrationQuery{Instance: w.Instance})
		if err != nil {
			return fmt.Errorf("looking up migrations of instance %s: %w", w.Instance, err)
		}
		if len(known) > 0 {
			continue
		}
		if _, err := c.startMigration(ctx, syntheticPrefix+w.Instance, "reconcile", ref, w.Metadata, time.Time{}); err != nil {
			return err
		}
		c.log.Info("adopted a launch no event told of", "instance", w.Instance, "group", w.Group)
	}
	return errors.Join(errs...)
}
