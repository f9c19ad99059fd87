package env

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// StandbyCloud is the group operations a standby and its resume make. It
// is implemented over aws-sdk-go-v2 by awscloud.Environments; errors are
// wrapped with handover's sentinels (handover.ErrNotFound for a missing
// group).
type StandbyCloud interface {
	// DescribeGroup returns the group with its instances (no hooks).
	DescribeGroup(ctx context.Context, name string) (Group, error)
	// SetCapacity sets MinSize, and DesiredCapacity too when desired >= 0.
	// Safe to repeat.
	SetCapacity(ctx context.Context, group string, min, desired int32) error
	// EnterStandby moves at most MaxStandbyBatch InService instances to
	// Standby with ShouldDecrementDesiredCapacity. It returns once the
	// request is accepted, not once they are in Standby. A repeat fails
	// (the instances are no longer InService): callers re-read first.
	EnterStandby(ctx context.Context, group string, ids []string) error
	// ExitStandby asks at most MaxStandbyBatch Standby instances back;
	// they go through Pending (and the launch hooks) to InService.
	ExitStandby(ctx context.Context, group string, ids []string) error
}

// MaxStandbyBatch is how many instances EnterStandby and ExitStandby take
// in one call on AWS.
const MaxStandbyBatch = 20

// Lifecycle states a standby looks at.
const (
	lcInService       = "InService"
	lcStandby         = "Standby"
	lcEnteringStandby = "EnteringStandby"
)

func isPending(lifecycle string) bool { return strings.HasPrefix(lifecycle, "Pending") }

// Phases of a standby operation. Stored by name: never rename one.
const (
	PhaseStandby   = "standby"    // moving InService instances to Standby
	PhaseInStandby = "in-standby" // done; waiting for a resume
	PhaseResume    = "resume"     // instances back, capacities restored
	PhaseDone      = "done"
)

// ErrBusy: a group update, a handover or another environment operation
// is running in the environment. Retry once it ended.
var ErrBusy = errors.New("the environment is busy")

// ErrBadRequest: the request cannot be carried out as asked; the error
// says what to change. Nothing was changed.
var ErrBadRequest = errors.New("bad request")

// badRequest is an ErrBadRequest whose text is only what to change.
type badRequest struct{ error }

func (badRequest) Is(target error) bool { return target == ErrBadRequest }
func (b badRequest) Unwrap() error      { return b.error }

func badRequestf(format string, args ...any) error { return badRequest{fmt.Errorf(format, args...)} }

// plural is "1 call", "2 calls".
func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// GroupPlan is what a standby will do to one group.
type GroupPlan struct {
	Group   string   `json:"group"`
	Min     int32    `json:"min_size"`
	Desired int32    `json:"desired_capacity"`
	Max     int32    `json:"max_size"`
	ToMin   int32    `json:"lowered_min_size"` // MinSize during the standby (= Min when not lowered)
	Standby []string `json:"to_standby"`       // InService instances, moved in calls of 20
	Calls   int      `json:"enter_standby_calls"`
	Pending []string `json:"pending,omitempty"` // waited for, then moved too
	Already []string `json:"already_standby,omitempty"`
}

// Plan is a standby's plan: what --dry-run prints.
type Plan struct {
	Environment string      `json:"environment"`
	Selector    Selector    `json:"selector"`
	Groups      []GroupPlan `json:"groups"`
}

func planGroup(g Group) GroupPlan {
	p := GroupPlan{Group: g.Name, Min: g.Min, Desired: g.Desired, Max: g.Max, ToMin: g.Min}
	for _, i := range g.Instances {
		switch {
		case i.Lifecycle == lcInService:
			p.Standby = append(p.Standby, i.ID)
		case isPending(i.Lifecycle):
			p.Pending = append(p.Pending, i.ID)
		case i.Lifecycle == lcStandby || i.Lifecycle == lcEnteringStandby:
			p.Already = append(p.Already, i.ID)
		}
	}
	moving := int32(len(p.Standby) + len(p.Pending))
	if after := g.Desired - moving; after < g.Min {
		p.ToMin = max(after, 0)
	}
	p.Calls = (len(p.Standby) + len(p.Pending) + MaxStandbyBatch - 1) / MaxStandbyBatch
	return p
}

// busy returns why the environment's groups cannot be put in standby now:
// unfinished group updates and handovers in them, named.
func busy(ctx context.Context, led ledger.Ledger, groups []string) error {
	var why []string
	us, err := led.ListUpdates(ctx, ledger.UpdateQuery{Unfinished: true})
	if err != nil {
		return fmt.Errorf("listing unfinished group updates: %w", err)
	}
	for _, u := range us {
		if slices.Contains(groups, u.Group) || (u.NewGroup != "" && slices.Contains(groups, u.NewGroup)) {
			why = append(why, fmt.Sprintf("group update %s of group %s is %s (%s); wait for it or abort it with handover update --abort %s", u.ID, u.Group, u.State, u.Phase, u.ID))
		}
	}
	ms, err := led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		return fmt.Errorf("listing unfinished handovers: %w", err)
	}
	for _, m := range ms {
		if slices.Contains(groups, m.Group) {
			why = append(why, fmt.Sprintf("handover %s of database %s to instance %s in group %s is %s; wait for it to end (handover status)", m.ID, m.Database, m.Instance, m.Group, m.State))
		}
	}
	if len(why) > 0 {
		return fmt.Errorf("%w: %s", ErrBusy, strings.Join(why, "; "))
	}
	return nil
}

// standbyOf returns the environment's standby that has not ended, if any.
func standbyOf(ctx context.Context, led ledger.Ledger, name string) (*ledger.EnvOp, error) {
	ops, err := led.ListEnvOps(ctx, ledger.EnvOpQuery{Environment: name, Unfinished: true})
	if err != nil {
		return nil, fmt.Errorf("listing the operations of environment %s: %w", name, err)
	}
	for _, o := range ops {
		if o.Op == OpStandby {
			return o, nil
		}
	}
	if len(ops) > 0 {
		return nil, fmt.Errorf("%w: environment %s has %s operation %s under way (%s)", ErrBusy, name, ops[0].Op, ops[0].ID, ops[0].Phase)
	}
	return nil, nil
}

// Operation names.
const OpStandby = "standby"

// StartStandby records a standby of the environment sel selects and
// returns it, or the plan when dryRun. A standby of the environment that
// is under way (the last run was killed) is returned as it is, to be
// advanced again; one that is already complete is returned too, with
// Phase in-standby.
func (r *Runner) StartStandby(ctx context.Context, sel Selector, dryRun bool) (*ledger.EnvOp, *Plan, error) {
	if err := CheckName(sel.Value); err != nil {
		return nil, nil, badRequest{err}
	}
	cur, err := standbyOf(ctx, r.led, sel.Value)
	if err != nil {
		return nil, nil, err
	}
	if cur != nil && !dryRun {
		if cur.ResumeRequested {
			return nil, nil, fmt.Errorf("%w: environment %s is being resumed (operation %s): run handover env resume %s to finish that first", ErrBusy, sel.Value, cur.ID, sel.Value)
		}
		return cur, nil, nil
	}
	inv, err := Discover(ctx, r.disc, r.led, sel)
	if err != nil {
		return nil, nil, err
	}
	if len(inv.Groups) == 0 {
		return nil, nil, badRequestf("environment %s has no Auto Scaling group tagged %s: nothing to put in standby", sel.Value, sel)
	}
	if err := busy(ctx, r.led, inv.GroupNames()); err != nil {
		return nil, nil, fmt.Errorf("environment %s: %w", sel.Value, err)
	}
	plan := &Plan{Environment: sel.Value, Selector: sel}
	for _, g := range inv.Groups {
		plan.Groups = append(plan.Groups, planGroup(g))
	}
	if dryRun {
		return nil, plan, nil
	}
	now := r.clk.Now()
	op := &ledger.EnvOp{
		ID: newID(), Environment: sel.Value, SelectorKey: sel.Key, Op: OpStandby,
		State: ledger.UpdateRunning, Phase: PhaseStandby, CreatedAt: now, UpdatedAt: now,
		Timeline: []ledger.UpdateStep{{Phase: PhaseStandby, Start: now, Note: plural(len(inv.Groups), "group")}},
	}
	for _, g := range inv.Groups {
		op.Groups = append(op.Groups, ledger.EnvGroup{Name: g.Name, Min: g.Min, Max: g.Max, Desired: g.Desired})
	}
	if err := r.led.CreateEnvOp(ctx, op); err != nil {
		return nil, nil, fmt.Errorf("recording the standby of environment %s: %w", sel.Value, err)
	}
	r.log.Info("standby started", "env-op-id", op.ID, "environment", sel.Value, "groups", len(op.Groups))
	return op, plan, nil
}

// RequestResume asks the environment's standby to end: the instances it
// moved come back and every group's MinSize and DesiredCapacity are
// restored as they were. A standby still under way is rolled back the
// same way, and ends Aborted. It returns the standby, to be advanced.
func (r *Runner) RequestResume(ctx context.Context, name string, abort bool) (*ledger.EnvOp, error) {
	if err := CheckName(name); err != nil {
		return nil, badRequest{err}
	}
	for range 8 {
		op, err := standbyOf(ctx, r.led, name)
		if err != nil {
			return nil, err
		}
		if op == nil {
			return nil, badRequestf("environment %s is not in standby: no standby of it is recorded in this ledger (is --ledger the one handover env standby used?)", name)
		}
		if op.ResumeRequested {
			return op, nil
		}
		op.ResumeRequested = true
		op.Abort = abort || op.Phase == PhaseStandby
		err = r.save(ctx, op)
		if errors.Is(err, ledger.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		r.log.Info("resume requested", "env-op-id", op.ID, "environment", name, "abort", op.Abort)
		return op, nil
	}
	return nil, fmt.Errorf("recording the resume of environment %s: %w", name, ledger.ErrConflict)
}

// stepStandby makes one move in every group that needs one: lower MinSize
// so the decrements fit, or move up to 20 InService instances to Standby.
// It waits while instances are Pending (they cannot enter Standby yet) or
// entering Standby, and ends the phase once no instance of any group is
// InService, Pending or entering.
func (r *Runner) stepStandby(ctx context.Context, op *ledger.EnvOp) (bool, error) {
	moved, waiting := false, false
	for gi := range op.Groups {
		eg := &op.Groups[gi]
		g, err := r.cloud.DescribeGroup(ctx, eg.Name)
		if err != nil {
			return false, fmt.Errorf("standby of group %s: %w", eg.Name, err)
		}
		var inService, pending, entering []string
		for _, i := range g.Instances {
			switch {
			case i.Lifecycle == lcInService:
				inService = append(inService, i.ID)
			case isPending(i.Lifecycle):
				pending = append(pending, i.ID+" "+i.Lifecycle)
			case i.Lifecycle == lcEnteringStandby:
				entering = append(entering, i.ID)
			}
		}
		if len(pending) > 0 {
			// Pending instances cannot enter Standby; once InService they
			// count in the decrement, so wait for them before lowering.
			r.say("group %s: waiting for %s (%s)", eg.Name, plural(len(pending), "Pending instance"), strings.Join(pending, ", "))
			waiting = true
			continue
		}
		if len(inService) > 0 {
			if need := max(g.Desired-int32(len(inService)), 0); g.Min > need {
				// Intent first: resume restores Min from the record.
				eg.LoweredMin, eg.LoweredTo = true, need
				if err := r.save(ctx, op); err != nil {
					return false, err
				}
				r.say("group %s: MinSize %d -> %d, so %s can leave with the desired capacity", eg.Name, g.Min, need, plural(len(inService), "instance"))
				if err := r.cloud.SetCapacity(ctx, eg.Name, need, -1); err != nil {
					return false, fmt.Errorf("lowering the MinSize of group %s to %d: %w", eg.Name, need, err)
				}
				moved = true
				continue
			}
			batch := inService[:min(len(inService), MaxStandbyBatch)]
			for _, id := range batch {
				if !slices.Contains(eg.Standby, id) {
					eg.Standby = append(eg.Standby, id)
				}
			}
			if err := r.save(ctx, op); err != nil {
				return false, err
			}
			r.say("group %s: EnterStandby %s (%s)", eg.Name, plural(len(batch), "instance"), strings.Join(batch, ", "))
			if err := r.cloud.EnterStandby(ctx, eg.Name, batch); err != nil {
				return false, fmt.Errorf("moving %d instances of group %s to Standby: %w", len(batch), eg.Name, err)
			}
			moved = true
			continue
		}
		if len(entering) > 0 {
			r.say("group %s: waiting for %s entering Standby", eg.Name, plural(len(entering), "instance"))
			waiting = true
		}
	}
	if moved || waiting {
		return moved, nil
	}
	if op.Op == OpClone {
		r.phase(op, PhaseCloneSnapshot, plural(countStandby(op), "instance")+" in Standby")
		r.say("environment %s is quiesced: %s in Standby", op.Environment, plural(countStandby(op), "instance"))
		return true, nil
	}
	r.phase(op, PhaseInStandby, plural(countStandby(op), "instance")+" in Standby")
	r.say("environment %s is in standby: %s in Standby", op.Environment, plural(countStandby(op), "instance"))
	return true, nil
}

func countStandby(op *ledger.EnvOp) int {
	n := 0
	for _, g := range op.Groups {
		n += len(g.Standby)
	}
	return n
}

// stepResume brings the standby's instances back, waits for them to be
// InService, then restores MinSize and DesiredCapacity as recorded. An
// instance still entering Standby (an abort mid-standby) is waited for
// first; one that is gone is not waited for, and the restored desired
// capacity replaces it.
func (r *Runner) stepResume(ctx context.Context, op *ledger.EnvOp) (bool, error) {
	moved, waiting := false, false
	for gi := range op.Groups {
		eg := &op.Groups[gi]
		if eg.Restored {
			continue
		}
		g, err := r.cloud.DescribeGroup(ctx, eg.Name)
		if errors.Is(err, handover.ErrNotFound) {
			r.say("group %s is gone: nothing to restore", eg.Name)
			eg.Restored = true
			moved = true
			continue
		}
		if err != nil {
			return false, fmt.Errorf("resume of group %s: %w", eg.Name, err)
		}
		var standby, busy []string
		for _, i := range g.Instances {
			if !slices.Contains(eg.Standby, i.ID) {
				continue
			}
			switch {
			case i.Lifecycle == lcStandby:
				standby = append(standby, i.ID)
			case i.Lifecycle == lcEnteringStandby || isPending(i.Lifecycle):
				busy = append(busy, i.ID+" "+i.Lifecycle)
			}
		}
		if len(standby) > 0 {
			batch := standby[:min(len(standby), MaxStandbyBatch)]
			for _, id := range batch {
				if !slices.Contains(eg.Exited, id) {
					eg.Exited = append(eg.Exited, id)
				}
			}
			if err := r.save(ctx, op); err != nil {
				return false, err
			}
			r.say("group %s: ExitStandby %s (%s)", eg.Name, plural(len(batch), "instance"), strings.Join(batch, ", "))
			if err := r.cloud.ExitStandby(ctx, eg.Name, batch); err != nil {
				return false, fmt.Errorf("moving %d instances of group %s out of Standby: %w", len(batch), eg.Name, err)
			}
			moved = true
			continue
		}
		if len(busy) > 0 {
			r.say("group %s: waiting for %s to be InService (%s)", eg.Name, plural(len(busy), "instance"), strings.Join(busy, ", "))
			waiting = true
			continue
		}
		if g.Min != eg.Min || g.Desired != eg.Desired {
			r.say("group %s: MinSize %d -> %d, DesiredCapacity %d -> %d, as before the standby", eg.Name, g.Min, eg.Min, g.Desired, eg.Desired)
			if err := r.cloud.SetCapacity(ctx, eg.Name, eg.Min, eg.Desired); err != nil {
				return false, fmt.Errorf("restoring group %s to MinSize %d, DesiredCapacity %d: %w", eg.Name, eg.Min, eg.Desired, err)
			}
		}
		eg.Restored = true
		moved = true
	}
	if moved || waiting {
		return moved, nil
	}
	if op.Op == OpClone {
		return true, nil // the clone's un-quiesce goes on from here
	}
	now := r.clk.Now()
	op.State = ledger.UpdateSucceeded
	if op.Abort {
		op.State = ledger.UpdateAborted
	}
	r.phase(op, PhaseDone, "")
	op.EndedAt = now
	r.say("environment %s resumed: every group's MinSize and DesiredCapacity are as before the standby", op.Environment)
	return true, nil
}
