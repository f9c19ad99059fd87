package update

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// batchReps returns the replacements of u's current batch in this pass.
func batchReps(u *ledger.Update) []*ledger.Replacement {
	var out []*ledger.Replacement
	rb := u.State == ledger.UpdateRollingBack
	for i := range u.Replacements {
		if rep := &u.Replacements[i]; rep.Batch == u.Batch && rep.Rollback == rb {
			out = append(out, rep)
		}
	}
	return out
}

func member(g Group, id string) (Member, bool) {
	for _, m := range g.Instances {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// stepBatch runs one rolling batch (forward, or the rollback's reverse
// pass): launch before terminate, so capacity never drops — raise desired
// capacity by the batch, let the new instances take the batch's databases
// over through their handovers, then terminate the old instances.
func (r *Runner) stepBatch(ctx context.Context, u *ledger.Update) (bool, error) {
	forward := u.State == ledger.UpdateRunning
	if u.Batch >= len(u.Batches) {
		if forward {
			r.enter(u, PhaseCleanup, "every batch replaced")
		} else {
			r.enter(u, PhaseRestore, "every instance back on version "+u.OldTemplate.Version)
		}
		return true, nil
	}
	tgt := target(u)
	batch := u.Batches[u.Batch]
	g, err := r.cloud.DescribeGroup(ctx, u.Group)
	if err != nil {
		return false, err
	}
	if g.Template.Version != tgt.Version {
		if forward && !u.TemplateSet {
			// Recorded first: a crash after the call must still revert it.
			u.TemplateSet = true
			return true, nil
		}
		if err := r.cloud.SetTemplate(ctx, u.Group, tgt); err != nil {
			return false, err
		}
	}
	reps := batchReps(u)
	if len(reps) == 0 {
		marked, err := r.markDatabases(ctx, u, batch, false)
		if err != nil {
			return false, err
		}
		for i := range marked {
			marked[i].Rollback = !forward
		}
		u.Replacements = append(u.Replacements, marked...)
		return true, nil
	}
	want := u.OldDesired + int32(len(batch))
	if g.Desired != want || g.Max < want {
		if err := r.cloud.SetCapacity(ctx, u.Group, min(u.OldMin, want), max(u.OldMax, want), want); err != nil {
			return false, err
		}
	}

	moved := 0
	for _, rep := range reps {
		if rep.Database == "" {
			moved++
			continue
		}
		db, err := r.led.GetDatabase(ctx, rep.Database)
		if err != nil {
			return false, fmt.Errorf("reading database %s: %w", rep.Database, err)
		}
		m, ok := member(g, db.Instance)
		if db.Instance != rep.Old && db.Claim == "" && ok && m.InService() && m.Version == tgt.Version {
			rep.New, rep.State = db.Instance, ledger.Committed.String()
			if rep.Done.IsZero() {
				rep.Done = r.clk.Now()
			}
			moved++
			continue
		}
		if db.Claim != "" {
			if mig, err := r.led.GetMigration(ctx, db.Claim); err == nil {
				rep.Migration, rep.New, rep.State = mig.ID, mig.Instance, mig.State.String()
			}
		}
	}
	all, _ := inService(g, tgt.Version)
	if moved < len(reps) || all < int(want) {
		now := r.clk.Now()
		_, aborted, err := r.migrationsOf(ctx, u, u.BatchAt)
		if err != nil {
			return false, err
		}
		switch {
		case forward && len(aborted) >= r.cfg.MaxAborts:
			r.fail(u, fmt.Sprintf("batch %d: %d handovers to version %s rolled back (last: %s)", u.Batch+1, len(aborted), tgt.Version, aborted[len(aborted)-1].LastError), false)
			return true, nil
		case now.Sub(u.BatchAt) > r.cfg.BatchTimeout && forward:
			r.fail(u, fmt.Sprintf("batch %d did not finish within %s: %d of %d databases handed over, %d of %d instances in service", u.Batch+1, r.cfg.BatchTimeout, moved, len(reps), all, want), false)
			return true, nil
		case now.Sub(u.BatchAt) > r.cfg.BatchTimeout:
			u.Error += fmt.Sprintf("; rollback batch %d did not finish within %s: the group is left as it is", u.Batch+1, r.cfg.BatchTimeout)
			r.enter(u, PhaseRestore, "rollback gave up")
			return true, nil
		}
		return false, nil
	}
	for _, rep := range reps {
		if rep.Terminated {
			continue
		}
		if err := r.cloud.Terminate(ctx, u.Group, rep.Old); err != nil {
			return false, err
		}
		rep.Terminated = true
	}
	r.enter(u, PhaseBake, fmt.Sprintf("batch %d of %d handed over; old instances terminated", u.Batch+1, len(u.Batches)))
	return true, nil
}

// stepBake watches a finished batch's new instances for the bake time, then
// moves on to the pause or the next batch.
func (r *Runner) stepBake(ctx context.Context, u *ledger.Update) (bool, error) {
	forward := u.State == ledger.UpdateRunning
	if forward && u.Spec.Bake > 0 {
		g, err := r.cloud.DescribeGroup(ctx, u.Group)
		if err != nil {
			return false, err
		}
		for _, rep := range batchReps(u) {
			if rep.New == "" {
				continue
			}
			if m, ok := member(g, rep.New); !ok || !m.InService() {
				r.fail(u, fmt.Sprintf("instance %s (database %s) of batch %d left service while baking", rep.New, rep.Database, u.Batch+1), false)
				return true, nil
			}
		}
		if r.clk.Now().Sub(u.BatchAt) < u.Spec.Bake {
			return false, nil
		}
	}
	switch {
	case u.Batch+1 >= len(u.Batches):
		u.Batch = len(u.Batches)
		if forward {
			r.enter(u, PhaseCleanup, "every batch replaced")
		} else {
			r.enter(u, PhaseRestore, "every instance back on version "+u.OldTemplate.Version)
		}
	case forward && u.Spec.Pause > 0:
		r.enter(u, PhasePause, fmt.Sprintf("pause %s before batch %d", u.Spec.Pause, u.Batch+2))
	case forward:
		u.Batch++
		r.enter(u, PhaseBatch, fmt.Sprintf("batch %d of %d", u.Batch+1, len(u.Batches)))
	default:
		u.Batch++
		r.enter(u, PhaseRollbackBatch, fmt.Sprintf("rollback batch %d of %d", u.Batch+1, len(u.Batches)))
	}
	return true, nil
}

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

// forwardMigrations returns the unfinished migrations of u's forward pass.
func (r *Runner) forwardMigrations(ctx context.Context, u *ledger.Update) ([]*ledger.Migration, error) {
	ms, err := r.led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		return nil, fmt.Errorf("listing unfinished migrations: %w", err)
	}
	var out []*ledger.Migration
	for _, m := range ms {
		if m.Update == u.ID {
			out = append(out, m)
		}
	}
	return out, nil
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

// stepCleanup ends a successful update: capacity as it was, the migration
// group scaled to 0.
func (r *Runner) stepCleanup(ctx context.Context, u *ledger.Update) (bool, error) {
	if u.Spec.Strategy == Rolling {
		if err := r.cloud.SetCapacity(ctx, u.Group, u.OldMin, u.OldMax, u.OldDesired); err != nil {
			return false, err
		}
		if err := r.restoreSymbolic(ctx, u, u.Group); err != nil {
			return false, err
		}
	}
	if name := u.Spec.MigrationGroup; name != "" {
		mg, err := r.cloud.DescribeGroup(ctx, name)
		switch {
		case errors.Is(err, handover.ErrNotFound):
		case err != nil:
			return false, err
		case mg.Desired != 0 || mg.Min != 0 || (u.MigrationOldMax > 0 && mg.Max != u.MigrationOldMax):
			mx := mg.Max
			if u.MigrationOldMax > 0 {
				mx = u.MigrationOldMax
			}
			if err := r.cloud.SetCapacity(ctx, name, 0, mx, 0); err != nil {
				return false, err
			}
		}
	}
	if err := r.clearMarks(ctx, u); err != nil {
		return false, err
	}
	r.finish(u)
	return false, nil
}

// restoreSymbolic points a group that followed $Latest or $Default back at
// it once the update succeeded, if it still names the version rolled out.
// After a rollback the group keeps the old version's number: $Latest would
// be the version that failed.
func (r *Runner) restoreSymbolic(ctx context.Context, u *ledger.Update, group string) error {
	if u.OldGroupVersion == "" || !strings.HasPrefix(u.OldGroupVersion, "$") || !u.TemplateSet {
		return nil
	}
	t := u.Spec.Template
	t.Version = u.OldGroupVersion
	v, err := r.cloud.ResolveVersion(ctx, t)
	if err != nil || v != u.Spec.Template.Version {
		return err
	}
	return r.cloud.SetTemplate(ctx, group, t)
}
