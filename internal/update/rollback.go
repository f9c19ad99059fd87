package update

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// stepRollback undoes a failed or aborted update. Rolling: stop marking,
// point the group back at the old version, let the in-flight handovers
// roll back, then roll every instance already on the new version back in a
// reverse pass. Replace-all: let the new group's handovers roll back (they
// never completed: their gates were closed), then delete the new group; the
// old group was never touched.
func (r *Runner) stepRollback(ctx context.Context, u *ledger.Update) (bool, error) {
	if err := r.clearMarks(ctx, u); err != nil {
		return false, err
	}
	if u.Spec.Strategy == Rolling && u.TemplateSet {
		g, err := r.cloud.DescribeGroup(ctx, u.Group)
		if err != nil && !errors.Is(err, handover.ErrNotFound) {
			return false, err
		}
		if err == nil && g.Template.Version != u.OldTemplate.Version {
			if err := r.cloud.SetTemplate(ctx, u.Group, u.OldTemplate); err != nil {
				return false, err
			}
		}
	}
	unfinished, err := r.forwardMigrations(ctx, u)
	if err != nil {
		return false, err
	}
	if len(unfinished) > 0 {
		return false, nil // they see the update rolling back and roll back themselves
	}
	if err := r.restoreMigrationGroup(ctx, u); err != nil {
		return false, err
	}
	switch u.Spec.Strategy {
	case ReplaceAll:
		if u.NewGroup != "" {
			if !u.NewGroupDeleting {
				if err := r.cloud.DeleteGroup(ctx, u.NewGroup); err != nil {
					return false, err
				}
				u.NewGroupDeleting = true
				return true, nil
			}
			if _, err := r.cloud.DescribeGroup(ctx, u.NewGroup); !errors.Is(err, handover.ErrNotFound) {
				return false, err // still deleting
			}
		}
		r.enter(u, PhaseRestore, "new group "+u.NewGroup+" deleted; "+u.Group+" untouched")
	default:
		g, err := r.cloud.DescribeGroup(ctx, u.Group)
		if err != nil {
			return false, err
		}
		if n, err := r.dropSpares(ctx, u, g); err != nil || n > 0 {
			return n > 0, err
		}
		// Only what the update put on the new version goes back: the
		// untouched instances may report the version by another name
		// ("$Latest") and must stay.
		batches, err := batchesOf(g, func(m Member) bool { return m.Version == u.Spec.Template.Version }, Request{BatchSize: max(1, u.Spec.BatchSize)})
		if err != nil {
			return false, err
		}
		u.Batches, u.Batch = batches, 0
		if len(batches) == 0 {
			r.enter(u, PhaseRestore, "no instance on version "+u.Spec.Template.Version)
		} else {
			r.enter(u, PhaseRollbackBatch, fmt.Sprintf("rolling %d instance(s) back to version %s", countAll(batches), u.OldTemplate.Version))
		}
	}
	return true, nil
}

// dropSpares terminates, down to the group's old desired capacity, the
// instances a failed batch added that hold no database (new version
// first): left alone, they keep desired capacity above the old one, so a
// reverse batch would launch nothing, and the final restore would let Auto
// Scaling pick which instance to remove — maybe one holding a database.
func (r *Runner) dropSpares(ctx context.Context, u *ledger.Update, g Group) (int, error) {
	dbs, err := r.led.ListDatabases(ctx)
	if err != nil {
		return 0, fmt.Errorf("listing databases: %w", err)
	}
	holds := map[string]bool{}
	for _, db := range dbs {
		holds[db.Instance] = true
	}
	var live, spare []Member
	for _, m := range g.Instances {
		if isLeaving(m.Lifecycle) {
			continue
		}
		live = append(live, m)
		if !holds[m.ID] {
			spare = append(spare, m)
		}
	}
	slices.SortStableFunc(spare, func(a, b Member) int {
		an, bn := a.Version == u.Spec.Template.Version, b.Version == u.Spec.Template.Version
		switch {
		case an && !bn:
			return -1
		case bn && !an:
			return 1
		}
		return 0
	})
	n := 0
	for _, m := range spare {
		if len(live)-n <= int(u.OldDesired) {
			break
		}
		if err := r.cloud.Terminate(ctx, u.Group, m.ID); err != nil {
			return n, err
		}
		u.Replacements = append(u.Replacements, ledger.Replacement{Batch: -1, Rollback: true, Old: m.ID, Terminated: true, Done: r.clk.Now()})
		n++
	}
	return n, nil
}

func countAll(bs [][]string) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}

// stepRestore puts the group's capacity back and ends a rolled-back update.
func (r *Runner) stepRestore(ctx context.Context, u *ledger.Update) (bool, error) {
	if u.Spec.Strategy == Rolling {
		if err := r.cloud.SetCapacity(ctx, u.Group, u.OldMin, u.OldMax, u.OldDesired); err != nil && !errors.Is(err, handover.ErrNotFound) {
			return false, err
		}
	}
	if err := r.restoreMigrationGroup(ctx, u); err != nil {
		return false, err
	}
	if err := r.clearMarks(ctx, u); err != nil {
		return false, err
	}
	r.finish(u)
	return false, nil
}
