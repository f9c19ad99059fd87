package update

import (
	"context"
	"errors"
	"fmt"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// Tags a replace-all puts on the group it creates, so an operator (and the
// sweep of a crashed update) can tell where it came from.
const (
	TagUpdate   = "handover:update"
	TagReplaces = "handover:replaces"
)

// stepLaunch marks every database of the old group for a gated move and
// creates the new group beside it with all N instances at once, the old
// group's hooks, target groups and zones. N is the old group's desired
// capacity when the update started, not its template's default.
func (r *Runner) stepLaunch(ctx context.Context, u *ledger.Update) (bool, error) {
	g, err := r.cloud.DescribeGroup(ctx, u.Group)
	if err != nil {
		return false, err
	}
	if len(u.Replacements) == 0 {
		var ids []string
		for _, m := range g.Instances {
			if !isLeaving(m.Lifecycle) {
				ids = append(ids, m.ID)
			}
		}
		reps, err := r.markDatabases(ctx, u, ids, true)
		if err != nil {
			return false, err
		}
		if len(reps) == 0 {
			reps = []ledger.Replacement{{Old: "(none)"}} // recorded, so a repeat does not mark again
		}
		u.Replacements = reps
		return true, nil
	}
	hooks, err := r.cloud.Hooks(ctx, u.Group)
	if err != nil {
		return false, err
	}
	err = r.cloud.CreateGroup(ctx, NewGroup{
		Like: g, Name: u.NewGroup, Template: u.Spec.Template,
		Min: 0, Max: u.OldDesired, Desired: u.OldDesired, Hooks: hooks,
		Tags: map[string]string{TagUpdate: u.ID, TagReplaces: u.Group},
	})
	if err != nil {
		return false, err
	}
	u.SignalDeadline = r.clk.Now().Add(u.Spec.SignalTimeout)
	r.enter(u, PhaseSignals, fmt.Sprintf("created %s with %d instance(s) on version %s", u.NewGroup, u.OldDesired, u.Spec.Template.Version))
	return true, nil
}

// stepSignals collects the new group's signals: any FAILURE, or fewer than
// N SUCCESS by the deadline, rolls back; N SUCCESS opens the gates.
func (r *Runner) stepSignals(ctx context.Context, u *ledger.Update) (bool, error) {
	sigs, err := r.cloud.Signals(ctx, u.NewGroup)
	if err != nil {
		return false, err
	}
	u.Signals = sigs
	for id, s := range sigs {
		if s == handover.SignalFailure {
			r.fail(u, fmt.Sprintf("instance %s of %s signalled FAILURE (its tag handover:signal-reason says why)", id, u.NewGroup), false)
			return true, nil
		}
	}
	ng, err := r.cloud.DescribeGroup(ctx, u.NewGroup)
	if err != nil && !errors.Is(err, handover.ErrNotFound) {
		return false, err
	}
	ok := 0
	for _, m := range ng.Instances {
		if sigs[m.ID] == handover.SignalSuccess && !isLeaving(m.Lifecycle) {
			ok++
		}
	}
	if ok >= int(u.OldDesired) {
		u.GatesOpen = true
		r.enter(u, PhaseCutover, fmt.Sprintf("%d of %d success signals: gates open", ok, u.OldDesired))
		return true, nil
	}
	if r.clk.Now().After(u.SignalDeadline) {
		r.fail(u, fmt.Sprintf("only %d of %d success signals from %s within %s", ok, u.OldDesired, u.NewGroup, u.Spec.SignalTimeout), false)
		return true, nil
	}
	return false, nil
}

// stepCutover waits for the new group's handovers to commit and its
// instances to serve (their hooks complete once the gates are open, and the
// group registers them with the target groups), then gives the new group
// the old one's capacity limits.
func (r *Runner) stepCutover(ctx context.Context, u *ledger.Update) (bool, error) {
	ng, err := r.cloud.DescribeGroup(ctx, u.NewGroup)
	if err != nil {
		return false, err
	}
	moved, total := 0, 0
	for i := range u.Replacements {
		rep := &u.Replacements[i]
		if rep.Database == "" {
			continue
		}
		total++
		db, err := r.led.GetDatabase(ctx, rep.Database)
		if err != nil {
			return false, fmt.Errorf("reading database %s: %w", rep.Database, err)
		}
		if m, ok := member(ng, db.Instance); ok && m.InService() && db.Claim == "" {
			rep.New, rep.State = db.Instance, ledger.Committed.String()
			if rep.Done.IsZero() {
				rep.Done = r.clk.Now()
			}
			moved++
		}
	}
	all, _ := inService(ng, "")
	if moved < total || all < int(u.OldDesired) {
		if r.clk.Now().Sub(u.BatchAt) > r.cfg.BatchTimeout {
			// Past the point of no return: keep going, but say so.
			u.Error = fmt.Sprintf("cutover slow: %d of %d databases handed over, %d of %d instances in service after %s", moved, total, all, u.OldDesired, r.cfg.BatchTimeout)
		}
		return false, nil
	}
	if err := r.cloud.SetCapacity(ctx, u.NewGroup, u.OldMin, max(u.OldMax, u.OldDesired), u.OldDesired); err != nil {
		return false, err
	}
	u.Error = ""
	r.enter(u, PhaseDeleteOld, fmt.Sprintf("%d database(s) on %s, %d instance(s) in service", moved, u.NewGroup, all))
	return true, nil
}

// stepDeleteOld deletes the old group once the new one serves.
func (r *Runner) stepDeleteOld(ctx context.Context, u *ledger.Update) (bool, error) {
	if err := r.cloud.DeleteGroup(ctx, u.Group); err != nil {
		return false, err
	}
	r.enter(u, PhaseCleanup, "deleted group "+u.Group+"; "+u.NewGroup+" serves")
	return true, nil
}
