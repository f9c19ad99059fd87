package update

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// stepMigrationGroup rolls the migration group's single instance to the new
// version and waits for its success signal.
func (r *Runner) stepMigrationGroup(ctx context.Context, u *ledger.Update) (bool, error) {
	name := u.Spec.MigrationGroup
	mg, err := r.cloud.DescribeGroup(ctx, name)
	if err != nil {
		return false, err
	}
	if u.SignalDeadline.IsZero() {
		// Every instance there now, and every one that ever signalled, is
		// old: a SUCCESS tag outlives its instance for a while, and only a
		// new instance's signal may count.
		sigs, err := r.cloud.Signals(ctx, name)
		if err != nil {
			return false, err
		}
		u.MigrationOld = nil
		for _, m := range mg.Instances {
			u.MigrationOld = append(u.MigrationOld, m.ID)
		}
		for id := range sigs {
			if !slices.Contains(u.MigrationOld, id) {
				u.MigrationOld = append(u.MigrationOld, id)
			}
		}
		u.MigrationOldTemplate, u.MigrationOldMin, u.MigrationOldMax, u.MigrationOldDesired = mg.Template, mg.Min, mg.Max, mg.Desired
		tgt := u.Spec.Template
		if (mg.Template.ID == "" || mg.Template.ID != tgt.ID) && (mg.Template.Name == "" || mg.Template.Name != tgt.Name) {
			// Its own template: roll out that template's latest version.
			tgt = mg.Template
			tgt.Version = "$Latest"
			if tgt.Version, err = r.cloud.ResolveVersion(ctx, tgt); err != nil {
				return false, err
			}
		}
		u.MigrationTemplate = tgt
		u.SignalDeadline = r.clk.Now().Add(u.Spec.MigrationTimeout)
		return true, nil
	}
	if mg.Template.Version != u.MigrationTemplate.Version {
		if err := r.cloud.SetTemplate(ctx, name, u.MigrationTemplate); err != nil {
			return false, err
		}
	}
	running := int32(0)
	for _, m := range mg.Instances {
		if slices.Contains(u.MigrationOld, m.ID) && !isLeaving(m.Lifecycle) {
			running++
		}
	}
	want := running + 1
	if mg.Desired < want && u.MigrationInstance == "" {
		if err := r.cloud.SetCapacity(ctx, name, mg.Min, max(mg.Max, want), want); err != nil {
			return false, err
		}
	}
	if u.MigrationInstance == "" {
		sigs, err := r.cloud.Signals(ctx, name)
		if err != nil {
			return false, err
		}
		for id, s := range sigs {
			if slices.Contains(u.MigrationOld, id) {
				continue
			}
			switch s {
			case handover.SignalFailure:
				r.fail(u, fmt.Sprintf("migration group %s: instance %s signalled FAILURE (its tag handover:signal-reason says why)", name, id), false)
				return true, nil
			case handover.SignalSuccess:
				u.MigrationInstance = id
			}
		}
		if u.MigrationInstance == "" {
			if r.clk.Now().After(u.SignalDeadline) {
				r.fail(u, fmt.Sprintf("migration group %s: no success signal within %s", name, u.Spec.MigrationTimeout), false)
				return true, nil
			}
			return false, nil
		}
	}
	for _, m := range mg.Instances {
		if slices.Contains(u.MigrationOld, m.ID) && !isLeaving(m.Lifecycle) {
			if err := r.cloud.Terminate(ctx, name, m.ID); err != nil {
				return false, err
			}
		}
	}
	note := "migration group " + name + ": " + u.MigrationInstance + " signalled SUCCESS"
	if u.Spec.Strategy == ReplaceAll {
		r.enter(u, PhaseLaunch, note)
	} else {
		r.enter(u, PhaseBatch, note)
	}
	return true, nil
}

// restoreMigrationGroup puts the migration group back as it was: its old
// version, its capacity, and without the instance the update added.
func (r *Runner) restoreMigrationGroup(ctx context.Context, u *ledger.Update) error {
	name := u.Spec.MigrationGroup
	if name == "" || u.MigrationTemplate.Version == "" {
		return nil // never touched
	}
	mg, err := r.cloud.DescribeGroup(ctx, name)
	if errors.Is(err, handover.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if mg.Template.Version != u.MigrationOldTemplate.Version {
		if err := r.cloud.SetTemplate(ctx, name, u.MigrationOldTemplate); err != nil {
			return err
		}
	}
	for _, m := range mg.Instances {
		if !slices.Contains(u.MigrationOld, m.ID) && !isLeaving(m.Lifecycle) {
			if err := r.cloud.Terminate(ctx, name, m.ID); err != nil {
				return err
			}
		}
	}
	return r.cloud.SetCapacity(ctx, name, u.MigrationOldMin, u.MigrationOldMax, u.MigrationOldDesired)
}
