package env

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// Phases of an abort, on the operation it aborts. Stored by name: never
// rename one.
const (
	PhaseAbortUnquiesce = "abort-unquiesce" // SRC's fence lifted, its standby resumed
	PhaseAbortDelete    = "abort-delete"    // everything tagged with the operation's id deleted, dependents first
	PhaseAbortCheck     = "abort-check"     // nothing tagged left; SRC's inventory equal to the one recorded at the start
)

// MaxAbortChecks is how many inventory comparisons may find SRC different
// (each a poll apart: a group's instances still coming back from Standby
// settle) before the abort ends Aborted with the differences as its error.
const MaxAbortChecks = 5

// ErrNothingToAbort: the environment has no operation an abort applies to.
var ErrNothingToAbort = errors.New("nothing to abort")

// AbortPlan is what an abort will do: what --dry-run prints. Nothing in it
// has happened.
type AbortPlan struct {
	Operation   string `json:"operation"`
	Op          string `json:"op"`
	Environment string `json:"environment"`
	Destination string `json:"destination,omitempty"`
	// State and Phase are where the operation stands.
	State string `json:"state"`
	Phase string `json:"phase"`
	// Unquiesce lists what is lifted on SRC: fences, groups resumed.
	Unquiesce []string `json:"unquiesce"`
	// Drop are DST's databases marked dropped in the ledger (the core
	// leaves them alone from then on), with their volumes deleted.
	Drop []string `json:"drop"`
	// Delete is every resource tagged with the operation's id now, in the
	// order it is deleted.
	Delete []Owned `json:"delete"`
	// Check says what SRC is compared with.
	Check string `json:"check"`
}

// FindAbortable returns the operation `env abort NAME` works on: the
// unfinished operation of environment name, or else its latest clone that
// ended (succeeded or failed: either may have left DST behind). An
// operation already aborted is returned as it is (an abort run again
// converges). opID, when given, names the operation instead.
func (r *Runner) FindAbortable(ctx context.Context, name, opID string) (*ledger.EnvOp, error) {
	if opID != "" {
		op, err := r.Get(ctx, opID)
		if err != nil {
			return nil, err
		}
		if op.Environment != name {
			return nil, badRequestf("operation %s is on environment %s, not %s", opID, op.Environment, name)
		}
		return op, nil
	}
	ops, err := r.led.ListEnvOps(ctx, ledger.EnvOpQuery{Environment: name, Unfinished: true})
	if err != nil {
		return nil, fmt.Errorf("listing the operations of environment %s: %w", name, err)
	}
	// A migration's clone is the migration's to abort.
	ops = slices.DeleteFunc(ops, func(o *ledger.EnvOp) bool {
		return slices.ContainsFunc(ops, func(p *ledger.EnvOp) bool { return p.Migration != nil && p.Migration.CloneOp == o.ID })
	})
	if len(ops) > 1 {
		var ids []string
		for _, o := range ops {
			ids = append(ids, o.Op+" "+o.ID)
		}
		return nil, badRequestf("environment %s has %d operations under way (%s): name one with --op", name, len(ops), strings.Join(ids, ", "))
	}
	if len(ops) == 1 {
		return ops[0], nil
	}
	all, err := r.led.ListEnvOps(ctx, ledger.EnvOpQuery{Environment: name})
	if err != nil {
		return nil, fmt.Errorf("listing the operations of environment %s: %w", name, err)
	}
	var last *ledger.EnvOp
	children := map[string]bool{}
	for _, o := range all {
		if o.Migration != nil && o.Migration.CloneOp != "" {
			children[o.Migration.CloneOp] = true
		}
	}
	for _, o := range all {
		if (o.Op == OpClone && !children[o.ID] || o.Op == OpMigrate && o.State != ledger.UpdateSucceeded) && (last == nil || o.CreatedAt.After(last.CreatedAt)) {
			last = o
		}
	}
	if last == nil {
		return nil, fmt.Errorf("%w: environment %s has no operation under way and no clone (handover env show %s lists what it is made of)", ErrNothingToAbort, name, name)
	}
	return last, nil
}

// aborting reports whether op is in an abort's phases.
func aborting(op *ledger.EnvOp) bool {
	return op.Phase == PhaseAbortUnquiesce || op.Phase == PhaseAbortDelete || op.Phase == PhaseAbortCheck
}

// PlanAbort returns what aborting op will do, reading the cloud and the
// ledger and changing nothing.
func (r *Runner) PlanAbort(ctx context.Context, op *ledger.EnvOp) (*AbortPlan, error) {
	if err := abortable(op); err != nil {
		return nil, err
	}
	p := &AbortPlan{Operation: op.ID, Op: op.Op, Environment: op.Environment, State: string(op.State), Phase: op.Phase,
		Unquiesce: []string{}, Drop: []string{}, Delete: []Owned{}}
	if op.State == ledger.UpdateAborted {
		p.Check = "aborted already: " + orDefault(op.Error, "SRC's inventory was equal to the one recorded at the start")
		return p, nil
	}
	c, ids, err := r.abortScope(ctx, op)
	if err != nil {
		return nil, err
	}
	if m := op.Migration; m != nil {
		p.Destination = m.Dest
		if m.Switching && !m.SwitchedBack {
			p.Unquiesce = append(p.Unquiesce, fmt.Sprintf("entry listener %s: switched back to %s", m.Entry, m.SourceTG))
		}
		for _, it := range m.Items {
			if it.Kind == itemTempListener && it.ID != "" && it.Detail != "deleted" {
				p.Unquiesce = append(p.Unquiesce, fmt.Sprintf("temporary listener %s on %s: deleted", it.ID, it.Name))
			}
		}
	}
	var extra []Owned
	if c != nil {
		rec, err := decodeClone(c)
		if err != nil {
			return nil, err
		}
		p.Destination = c.Cloning.Dest
		if c.Cloning.UnquiescedAt.IsZero() || c.Cloning.QuiesceHeld {
			if rec.Plan.Quiesce == QuiesceStandby {
				for _, g := range c.Groups {
					if !g.Restored {
						p.Unquiesce = append(p.Unquiesce, fmt.Sprintf("group %s: instances out of Standby, MinSize %d and DesiredCapacity %d restored", g.Name, g.Min, g.Desired))
					}
				}
			} else {
				for _, it := range c.Cloning.Items {
					switch {
					case it.Kind == itemFence:
						p.Unquiesce = append(p.Unquiesce, fmt.Sprintf("database %s: fence lifted on %s (%s)", it.Name, it.ID, it.Detail))
					case it.Kind == itemRDSFence && it.Started:
						p.Unquiesce = append(p.Unquiesce, fmt.Sprintf("RDS instance %s: default_transaction_read_only reset on %s", it.Name, it.Detail))
					}
				}
			}
		}
		var drop []*ledger.Database
		if drop, extra, err = r.dstDatabases(ctx, c, op.ID); err != nil {
			return nil, err
		}
		for _, d := range drop {
			p.Drop = append(p.Drop, d.ID)
		}
	}
	if p.Delete, err = r.abortDeletes(ctx, ids, extra); err != nil {
		return nil, err
	}
	p.Check = fmt.Sprintf("nothing tagged %s=%s left; SRC's inventory equal to the one recorded when the clone started", TagEnvOp, strings.Join(ids, " or "))
	if c == nil {
		p.Check = fmt.Sprintf("nothing tagged %s=%s left (the migration's clone never started: there is no inventory to compare)", TagEnvOp, op.ID)
	}
	return p, nil
}

func abortable(op *ledger.EnvOp) error {
	switch op.Op {
	case OpClone, OpStandby:
		return nil
	case OpMigrate:
		// Until the drop: SRC is whole, the entry can go back to it.
		if op.Phase == PhaseMigrateDrop || op.Phase == PhaseMigrateRetag || op.State == ledger.UpdateSucceeded {
			return badRequestf("migration %s is %s in %s: SRC is being dropped or was, and an abort is only possible before the drop (handover env show %s)", op.ID, op.State, op.Phase, op.Environment)
		}
		if op.Migration == nil {
			return fmt.Errorf("environment operation %s is a migration without its migration record", op.ID)
		}
		return nil
	default:
		return badRequestf("operation %s is a %s: env abort is not supported for this op kind yet", op.ID, op.Op)
	}
}

// abortScope is what an abort of op works on: the clone whose record has
// SRC's inventory and DST's databases (op itself, or a migration's clone;
// nil for a migration whose clone never started), and the ids whose
// handover:env-op resources it deletes.
func (r *Runner) abortScope(ctx context.Context, op *ledger.EnvOp) (*ledger.EnvOp, []string, error) {
	if op.Op != OpMigrate {
		return op, []string{op.ID}, nil
	}
	if op.Migration.CloneOp == "" {
		return nil, []string{op.ID}, nil
	}
	c, err := r.Get(ctx, op.Migration.CloneOp)
	if err != nil {
		return nil, nil, err
	}
	return c, []string{op.ID, c.ID}, nil
}

// Abort starts aborting op, or returns it as it is when it is being
// aborted or was. A standby is aborted as a resume that ends Aborted. A
// clone, under way or ended, moves to the abort's phases: SRC
// un-quiesced, everything tagged with the clone's id deleted, SRC's
// inventory compared with the recorded one. A process still advancing the
// clone sees the phase change at its next step and carries the abort out
// itself; Advance takes over once its lease lapses.
func (r *Runner) Abort(ctx context.Context, op *ledger.EnvOp) (*ledger.EnvOp, error) {
	if err := abortable(op); err != nil {
		return nil, err
	}
	if r.Delete == nil && op.Op != OpStandby {
		return nil, errors.New("this runner has no DeleteCloud: it can plan an abort, not run one")
	}
	for attempt := 0; ; attempt++ {
		if op.State == ledger.UpdateAborted || aborting(op) || op.Op == OpStandby && op.ResumeRequested && op.Abort {
			return op, nil
		}
		if op.Op == OpStandby {
			if op.State.Terminal() {
				return nil, badRequestf("standby %s ended %s: there is nothing to abort (handover env resume undoes a standby)", op.ID, op.State)
			}
			op.ResumeRequested, op.Abort = true, true
		} else {
			from := op.Phase + " (" + string(op.State) + ")"
			op.Aborting = &ledger.EnvAbort{From: from, RequestedAt: r.clk.Now()}
			op.State, op.EndedAt, op.Error = ledger.UpdateRollingBack, time.Time{}, ""
			op.Attempts = 0
			r.phase(op, PhaseAbortUnquiesce, "abort asked in "+from)
		}
		err := r.save(ctx, op)
		if err == nil {
			r.log.Info("abort started", "env-op-id", op.ID, "environment", op.Environment, "op", op.Op)
			return op, nil
		}
		if !errors.Is(err, ledger.ErrConflict) || attempt >= 20 {
			return nil, err
		}
		// The operation moved on meanwhile: abort it from where it is now.
		if op, err = r.Get(ctx, op.ID); err != nil {
			return nil, err
		}
	}
}

// stepAbort advances an abort by one phase's worth of work.
func (r *Runner) stepAbort(ctx context.Context, op *ledger.EnvOp) (bool, error) {
	if op.Aborting == nil {
		op.Aborting = &ledger.EnvAbort{From: "unknown", RequestedAt: r.clk.Now()}
	}
	switch op.Phase {
	case PhaseAbortUnquiesce:
		if err := r.abortMigration(ctx, op); err != nil {
			return false, err
		}
		c, _, err := r.abortScope(ctx, op)
		if err != nil {
			return false, err
		}
		if c != nil {
			more, done, err := r.abortUnquiesce(ctx, op, c)
			if err != nil || !done {
				return more, err
			}
		}
		r.phase(op, PhaseAbortDelete, "SRC un-quiesced")
		return true, nil
	case PhaseAbortDelete:
		return r.abortDelete(ctx, op)
	case PhaseAbortCheck:
		return r.abortCheck(ctx, op)
	}
	return false, fmt.Errorf("abort of %s is in phase %q, which has no step", op.ID, op.Phase)
}

// abortMigration undoes what a migration did beyond its clone, before
// SRC is un-quiesced: the entry listener back to SRC's target group if it
// was (or may have been) switched, the temporary listener deleted. A
// no-op on other kinds. Safe to repeat.
func (r *Runner) abortMigration(ctx context.Context, op *ledger.EnvOp) error {
	m := op.Migration
	if op.Op != OpMigrate || m == nil {
		return nil
	}
	if m.Switching && !m.SwitchedBack {
		if r.Migrate == nil {
			return errors.New("this runner has no MigrateCloud: it cannot switch the entry listener back")
		}
		if err := r.Migrate.SwitchListener(ctx, m.Entry, m.SourceTG); err != nil {
			return fmt.Errorf("switching the entry listener %s back to %s: %w", m.Entry, m.SourceTG, err)
		}
		m.SwitchedBack = true
		r.say("switched the entry listener back to %s's target group", op.Environment)
		if err := r.save(ctx, op); err != nil {
			return err
		}
	}
	for i := range m.Items {
		it := &m.Items[i]
		if it.Kind != itemTempListener || it.ID == "" || it.Detail == "deleted" {
			continue
		}
		if r.Migrate == nil {
			return errors.New("this runner has no MigrateCloud: it cannot delete the temporary listener")
		}
		if err := r.Migrate.DeleteListener(ctx, it.ID); err != nil {
			return fmt.Errorf("deleting the temporary listener %s: %w", it.ID, err)
		}
		it.Detail = "deleted"
		r.say("deleted the temporary listener %s on %s", it.ID, it.Name)
		if err := r.save(ctx, op); err != nil {
			return err
		}
	}
	return nil
}

// abortUnquiesce lifts the quiesce of clone c (op itself, or a
// migration's clone, held or not) and, when c is not op, ends c Aborted:
// its migration's abort goes on for it.
func (r *Runner) abortUnquiesce(ctx context.Context, op, c *ledger.EnvOp) (more, done bool, err error) {
	rec, err := decodeClone(c)
	if err != nil {
		return false, false, err
	}
	if c.Cloning.UnquiescedAt.IsZero() || c.Cloning.QuiesceHeld {
		more, done, err := r.liftQuiesce(ctx, c, rec)
		if err != nil || !done {
			if c != op && err == nil {
				err = r.save(ctx, c)
			}
			return more, false, err
		}
		c.Cloning.UnquiescedAt, c.Cloning.QuiesceHeld = r.clk.Now(), false
		if !c.Cloning.QuiescedAt.IsZero() {
			r.say("%s un-quiesced (its writes paused %s)", op.Environment, c.Cloning.UnquiescedAt.Sub(c.Cloning.QuiescedAt).Round(time.Millisecond))
		}
	} else {
		r.say("%s was un-quiesced already", op.Environment)
	}
	if c != op {
		if !c.State.Terminal() {
			c.State, c.Error, c.EndedAt = ledger.UpdateAborted, "aborted with migration "+op.ID, r.clk.Now()
			r.phase(c, PhaseDone, "")
		}
		if err := r.save(ctx, c); err != nil {
			return false, false, err
		}
	}
	return true, true, nil
}

// dstDatabases returns DST's databases the operation recorded, as the
// ledger has them (those it never made are not there), and the volumes and
// base snapshots the core made for them that no other database uses.
func (r *Runner) dstDatabases(ctx context.Context, op *ledger.EnvOp, by string) ([]*ledger.Database, []Owned, error) {
	all, err := r.led.ListDatabases(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the ledger's databases: %w", err)
	}
	ours := map[string]bool{}
	for _, it := range op.Cloning.Items {
		if it.Kind == KindDatabase {
			ours[it.Name] = true
		}
	}
	used := map[string]bool{} // volumes and snapshots of databases not DST's
	var dbs []*ledger.Database
	for _, d := range all {
		if ours[d.ID] && (!d.Dropped() || d.DroppedBy == by) {
			dbs = append(dbs, d)
			continue
		}
		if !d.Dropped() {
			used[d.Volume], used[d.BaseSnapshot], used[d.SeedSnapshot] = true, true, true
		}
	}
	var extra []Owned
	for _, d := range dbs {
		if d.Volume != "" && !used[d.Volume] {
			extra = append(extra, Owned{Kind: KindVolume, ID: d.Volume, Name: d.Volume})
		}
		if d.BaseSnapshot != "" && !used[d.BaseSnapshot] {
			extra = append(extra, Owned{Kind: KindEBSSnapshot, ID: d.BaseSnapshot, Name: d.BaseSnapshot})
		}
	}
	return dbs, extra, nil
}

// abortDeletes lists what the abort deletes: everything tagged with one
// of ids, and extra, once each, in DeleteOrder.
func (r *Runner) abortDeletes(ctx context.Context, ids []string, extra []Owned) ([]Owned, error) {
	if r.Delete == nil {
		return nil, errors.New("this runner has no DeleteCloud: it cannot list what the operation made")
	}
	var owned []Owned
	for _, id := range ids {
		o, err := r.Delete.OwnedResources(ctx, id)
		if err != nil {
			return nil, err
		}
		owned = append(owned, o...)
	}
	for _, x := range extra {
		if !slices.ContainsFunc(owned, func(o Owned) bool { return o.Kind == x.Kind && o.ID == x.ID }) {
			owned = append(owned, x)
		}
	}
	SortForDelete(owned)
	return owned, nil
}

// abortDelete drops DST's databases in the ledger first (so the core stops
// healing or booting them while their groups go), then deletes everything
// the operation made, dependents first, each recorded before its delete.
func (r *Runner) abortDelete(ctx context.Context, op *ledger.EnvOp) (bool, error) {
	c, ids, err := r.abortScope(ctx, op)
	if err != nil {
		return false, err
	}
	var dbs []*ledger.Database
	var extra []Owned
	if c != nil {
		if dbs, extra, err = r.dstDatabases(ctx, c, op.ID); err != nil {
			return false, err
		}
	}
	for _, d := range dbs {
		if d.Dropped() {
			continue
		}
		d.DroppedAt, d.DroppedBy, d.UpdatedAt = r.clk.Now(), op.ID, r.clk.Now()
		if err := r.led.SaveDatabase(ctx, d); err != nil {
			return false, fmt.Errorf("marking DST's database %s dropped: %w", d.ID, err)
		}
		r.say("database %s dropped (the ledger keeps its record; handover no longer boots or heals it)", d.ID)
	}
	todo, err := r.abortDeletes(ctx, ids, extra)
	if err != nil {
		return false, err
	}
	// One delete a step: the lease is renewed between steps (a delete
	// waits until its resource is gone, an RDS instance minutes on AWS).
	for _, o := range todo {
		i := slices.IndexFunc(op.Aborting.Deleted, func(it ledger.EnvItem) bool { return it.Kind == o.Kind && it.ID == o.ID })
		if i >= 0 && op.Aborting.Deleted[i].Done {
			continue // deleted (a volume the ledger still names)
		}
		if i < 0 {
			op.Aborting.Deleted = append(op.Aborting.Deleted, ledger.EnvItem{Kind: o.Kind, Name: o.Name, ID: o.ID})
			i = len(op.Aborting.Deleted) - 1
			if err := r.save(ctx, op); err != nil {
				return false, err
			}
		}
		start := r.clk.Now()
		if err := DeleteResource(ctx, r.Delete, o); err != nil {
			return false, err
		}
		op.Aborting.Deleted[i].Done = true
		r.say("deleted %s in %s", o, r.clk.Now().Sub(start).Round(time.Millisecond))
		return true, nil
	}
	r.phase(op, PhaseAbortCheck, plural(len(op.Aborting.Deleted), "resource")+" deleted")
	return true, nil
}

// abortCheck makes sure nothing tagged with the operation is left (a
// resource made after the listing, by a run still in flight, sends the
// abort back to deleting) and compares SRC's inventory now with the one
// the clone recorded at its start.
func (r *Runner) abortCheck(ctx context.Context, op *ledger.EnvOp) (bool, error) {
	c, ids, err := r.abortScope(ctx, op)
	if err != nil {
		return false, err
	}
	left, err := r.abortDeletes(ctx, ids, nil)
	if err != nil {
		return false, err
	}
	if len(left) > 0 {
		var ls []string
		for _, o := range left {
			ls = append(ls, o.String())
			for i := range op.Aborting.Deleted {
				if it := &op.Aborting.Deleted[i]; it.Kind == o.Kind && it.ID == o.ID {
					it.Done = false // deleted again
				}
			}
		}
		r.say("still tagged %s=%s: %s; deleting again", TagEnvOp, strings.Join(ids, " or "), strings.Join(ls, ", "))
		r.phase(op, PhaseAbortDelete, "found again: "+strings.Join(ls, ", "))
		return true, nil
	}
	// A delete another run made (its lease lapsed during a long delete,
	// and this one took over) may be unrecorded: each is repeated, which
	// returns at once for what is gone.
	for i := range op.Aborting.Deleted {
		it := &op.Aborting.Deleted[i]
		if !it.Done {
			if err := DeleteResource(ctx, r.Delete, Owned{Kind: it.Kind, ID: it.ID, Name: it.Name}); err != nil {
				return false, err
			}
			it.Done = true
		}
	}
	if c == nil {
		op.State, op.Error = ledger.UpdateAborted, ""
		r.phase(op, PhaseDone, "")
		op.EndedAt = r.clk.Now()
		r.say("aborted: nothing tagged %s=%s is left (the migration's clone never started: %s was never quiesced)", TagEnvOp, op.ID, op.Environment)
		return true, nil
	}
	rec, err := decodeClone(c)
	if err != nil {
		return false, err
	}
	now, err := Discover(ctx, r.disc, r.led, rec.Plan.Selector)
	if errors.Is(err, ErrUnknownEnvironment) {
		now, err = &Inventory{Selector: rec.Plan.Selector}, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading SRC's inventory: %w", err)
	}
	diffs := CompareInventories(rec.Source, now)
	if len(diffs) == 0 {
		op.Aborting.Differences, op.Error = nil, ""
		op.State = ledger.UpdateAborted
		r.phase(op, PhaseDone, "")
		op.EndedAt = r.clk.Now()
		r.say("aborted: nothing tagged %s=%s is left, and %s's inventory is identical to the one recorded at the clone's start", TagEnvOp, op.ID, op.Environment)
		return true, nil
	}
	op.Aborting.Checks++
	op.Aborting.Differences = diffs
	if op.Aborting.Checks < MaxAbortChecks {
		r.say("%s differs from its inventory at the clone's start (check %d of %d; looking again): %s", op.Environment, op.Aborting.Checks, MaxAbortChecks, strings.Join(diffs, "; "))
		return false, nil
	}
	op.State = ledger.UpdateAborted
	op.Error = fmt.Sprintf("aborted, but %s differs from its inventory at the clone's start: %s", op.Environment, strings.Join(diffs, "; "))
	r.phase(op, PhaseDone, "")
	op.EndedAt = r.clk.Now()
	r.say("%s", op.Error)
	return true, nil
}
