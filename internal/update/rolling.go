package update

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

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
		aborted, err := r.abortedSince(ctx, u, u.BatchAt)
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

// stepPause waits out the pause between two batches.
func (r *Runner) stepPause(_ context.Context, u *ledger.Update) (bool, error) {
	if r.clk.Now().Sub(u.BatchAt) < u.Spec.Pause {
		return false, nil
	}
	u.Batch++
	r.enter(u, PhaseBatch, fmt.Sprintf("batch %d of %d", u.Batch+1, len(u.Batches)))
	return true, nil
}

// rollingBatches orders the group's instances not yet on version into
// batches. --min-healthy-percent caps a batch: every database of a batch is
// fenced at about the same time, so a batch may pause writes for at most
// (100 − min)% of the group.
func rollingBatches(g Group, version string, req Request) ([][]string, error) {
	return batchesOf(g, func(m Member) bool { return m.Version != version }, req)
}

// batchesOf batches the group's instances that replace says to replace.
func batchesOf(g Group, replace func(Member) bool, req Request) ([][]string, error) {
	var old []Member
	for _, m := range g.Instances {
		if replace(m) && !isLeaving(m.Lifecycle) {
			old = append(old, m)
		}
	}
	// One zone after another in turn, so a batch spreads its pauses over
	// zones and a zone never loses more than its share at once.
	slices.SortStableFunc(old, func(a, b Member) int {
		if a.Zone != b.Zone {
			return cmp.Compare(a.Zone, b.Zone)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	old = roundRobin(old)
	n := max(g.Desired, int32(len(g.Instances)))
	allowed := n - int32(math.Ceil(float64(req.MinHealthyPercent)*float64(n)/100))
	if allowed < 1 {
		allowed = 1
	}
	if req.BatchSize > allowed {
		return nil, fmt.Errorf("--batch-size %d would pause writes on %d of %d instances at once; --min-healthy-percent %d allows at most %d: lower the batch size or the percentage", req.BatchSize, req.BatchSize, n, req.MinHealthyPercent, allowed)
	}
	var batches [][]string
	for i := 0; i < len(old); i += int(req.BatchSize) {
		var b []string
		for _, m := range old[i:min(len(old), i+int(req.BatchSize))] {
			b = append(b, m.ID)
		}
		batches = append(batches, b)
	}
	return batches, nil
}

// roundRobin interleaves members sorted by zone: a1 b1 c1 a2 b2 ….
func roundRobin(ms []Member) []Member {
	var zones []string
	byZone := map[string][]Member{}
	for _, m := range ms {
		if _, ok := byZone[m.Zone]; !ok {
			zones = append(zones, m.Zone)
		}
		byZone[m.Zone] = append(byZone[m.Zone], m)
	}
	out := make([]Member, 0, len(ms))
	for len(out) < len(ms) {
		for _, z := range zones {
			if l := byZone[z]; len(l) > 0 {
				out = append(out, l[0])
				byZone[z] = l[1:]
			}
		}
	}
	return out
}
