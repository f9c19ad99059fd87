package handover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/lease"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// outcome is what a step decided: move to next, or stay and look again
// after wait.
type outcome struct {
	next ledger.State // StateUnknown: stay
	wait time.Duration
	note string
}

func stay(wait time.Duration) (outcome, error) { return outcome{wait: wait}, nil }
func goTo(next ledger.State, note string) (outcome, error) {
	return outcome{next: next, note: note}, nil
}

// errLostRace: another writer changed the migration; re-read and retry.
var errLostRace = errors.New("migration changed underneath; retrying from fresh state")

// pacedError: the pacer had no token; nothing was sent.
type pacedError struct{ wait time.Duration }

func (e *pacedError) Error() string { return fmt.Sprintf("paced: next token in %s", e.wait) }

// terminalError: retrying cannot help; roll back.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

func terminal(format string, args ...any) error {
	return &terminalError{err: fmt.Errorf(format, args...)}
}

// Advance moves one migration forward as far as it can go without waiting.
// It is safe to call at any time from any controller and goroutine; a
// migration another controller holds the lease of, or another goroutine is
// advancing, is left alone (lease.Keeper).
func (c *Controller) Advance(ctx context.Context, id string) error {
	return c.leases.Advance(ctx, "migration/"+id, func(ctx context.Context) (lease.Next, error) {
		m, err := c.led.GetMigration(ctx, id)
		if err != nil {
			return lease.Wait, fmt.Errorf("reading migration %s: %w", id, err)
		}
		c.touching.put(m)
		if m.State.Terminal() {
			return lease.Done, nil
		}
		more, err := c.advanceOnce(ctx, m)
		switch {
		case errors.Is(err, errLostRace):
			return lease.Again, nil
		case err != nil:
			return lease.Wait, err
		case more:
			return lease.Again, nil
		}
		return lease.Wait, nil
	})
}

// advanceOnce runs at most one step of m and stores its outcome. It reports
// whether another step may follow at once.
func (c *Controller) advanceOnce(ctx context.Context, m *ledger.Migration) (bool, error) {
	ctx = context.WithValue(ctx, passKey{}, &pass{m: m})
	if err := c.heartbeat(ctx, m); err != nil {
		return false, err
	}
	now := c.clk.Now()
	if now.Before(m.NextAttemptAt) {
		return false, nil
	}
	if !m.PacedAt.IsZero() {
		// Credit the step with the time it waited for pacing tokens.
		m.StepStartedAt = m.StepStartedAt.Add(now.Sub(m.PacedAt))
		m.PacedAt = time.Time{}
	}
	if c.canRollBack(m) {
		if m.Update != "" {
			why, err := c.updateAborting(ctx, m)
			if err != nil {
				return false, err
			}
			if why != "" {
				return true, c.rollBack(ctx, m, why)
			}
		}
		if !m.Deadline.IsZero() && now.After(m.Deadline.Add(-c.cfg.DeadlineMargin)) {
			return true, c.rollBack(ctx, m, fmt.Sprintf("lifecycle hook deadline %s is near", m.Deadline.Format(time.RFC3339)))
		}
		if limit := c.cfg.timeout(m.State); now.Sub(m.StepStartedAt) > limit {
			return true, c.rollBack(ctx, m, fmt.Sprintf("%s timed out after %s", m.State, limit))
		}
	}

	out, err := c.step(ctx, m)
	now = c.clk.Now()
	var paced *pacedError
	var term *terminalError
	switch {
	case errors.Is(err, errLostRace):
		return true, err
	case errors.As(err, &paced):
		m.NextAttemptAt = now.Add(paced.wait)
		m.PacedAt = now
		return false, c.save(ctx, m)
	case err != nil && errors.Is(err, ErrThrottled):
		// The pacer already backs the family off; throttling is not the
		// migration's fault, so it does not count as an attempt.
		m.NextAttemptAt = now.Add(c.cfg.RetryBase)
		return false, c.save(ctx, m)
	case err != nil && (errors.As(err, &term) || !Retryable(err)) && c.canRollBack(m):
		c.log.Warn("step failed; rolling back", "migration-id", m.ID, "state", m.State.String(), "err", err)
		return true, c.rollBack(ctx, m, err.Error())
	case err != nil:
		m.Attempts++
		m.LastError = err.Error()
		if m.Attempts >= c.cfg.MaxAttempts && c.canRollBack(m) {
			c.log.Warn("step kept failing; rolling back", "migration-id", m.ID, "state", m.State.String(), "attempts", m.Attempts, "err", err)
			return true, c.rollBack(ctx, m, fmt.Sprintf("%s failed %d times: %v", m.State, m.Attempts, err))
		}
		c.log.Info("step failed; will retry", "migration-id", m.ID, "state", m.State.String(), "attempt", m.Attempts, "err", err)
		m.NextAttemptAt = now.Add(c.backoff(m.Attempts))
		return false, c.save(ctx, m)
	}
	if out.next == ledger.StateUnknown || out.next == m.State {
		m.NextAttemptAt = now.Add(out.wait)
		return false, c.save(ctx, m)
	}
	c.transition(m, out.next, out.note)
	if err := c.save(ctx, m); err != nil {
		return false, err
	}
	c.log.Info("migration step", "migration-id", m.ID, "state", m.State.String(), "database", m.Database, "note", out.note)
	return !m.State.Terminal(), nil
}

// canRollBack: before CONTINUE is decided, a failure can still be undone;
// after it, the new instance may serve writes and only forward is safe
// (stepDraining alone goes back, for a new instance still fenced).
func (c *Controller) canRollBack(m *ledger.Migration) bool {
	return !m.State.Terminal() && m.State != ledger.RollingBack && m.Result != ResultContinue
}

func (c *Controller) rollBack(ctx context.Context, m *ledger.Migration, why string) error {
	m.LastError = why
	c.transition(m, ledger.RollingBack, why)
	c.log.Info("migration rolling back", "migration-id", m.ID, "database", m.Database, "why", why)
	return c.save(ctx, m)
}

// transition moves m to next and keeps the timeline.
func (c *Controller) transition(m *ledger.Migration, next ledger.State, note string) {
	now := c.clk.Now()
	if n := len(m.Timeline); n > 0 && m.Timeline[n-1].End.IsZero() {
		m.Timeline[n-1].End = now
		c.obs.StepEnded(m.Timeline[n-1].State, now.Sub(m.Timeline[n-1].Start))
	}
	step := ledger.Step{State: next, Start: now, Note: note}
	if next.Terminal() {
		step.End = now
	}
	m.Timeline = append(m.Timeline, step)
	m.State = next
	m.StepStartedAt = now
	m.NextAttemptAt = time.Time{}
	m.Attempts = 0
	if next != ledger.RollingBack && next != ledger.Aborted {
		m.LastError = ""
	}
}

// save stores m with compare-and-set; a lost race becomes errLostRace.
func (c *Controller) save(ctx context.Context, m *ledger.Migration) error {
	m.UpdatedAt = c.clk.Now()
	err := c.led.SaveMigration(ctx, m)
	if errors.Is(err, ledger.ErrConflict) {
		return errLostRace
	}
	if err != nil {
		return fmt.Errorf("storing migration %s: %w", m.ID, err)
	}
	c.touching.put(m)
	return nil
}

func (c *Controller) backoff(attempt int) time.Duration {
	d := c.cfg.RetryBase
	for i := 1; i < attempt && d < c.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.cfg.RetryMax)
}

// call spends a pacing token for family, then runs fn. A throttling answer
// backs the family off for every migration.
func (c *Controller) call(ctx context.Context, family pacing.Family, what string, fn func() error) error {
	// A pass the pacer admitted once finishes: its later calls borrow
	// (see pass), whatever their family.
	take := c.pacer.Take
	if p, ok := ctx.Value(passKey{}).(*pass); ok {
		if p.admitted && p.borrowed < maxBorrowsPerPass {
			take = c.pacer.Borrow
			p.borrowed++
		}
		defer func() { p.admitted = true }()
	}
	if ok, wait := take(family); !ok {
		countCall(ctx, func(s *ledger.Step) { s.Paced++ })
		return &pacedError{wait: wait}
	}
	err := fn()
	c.obs.CloudCall(family, err)
	countCall(ctx, func(s *ledger.Step) {
		s.Calls++
		switch {
		case errors.Is(err, ErrThrottled):
			s.Throttled++
		case err != nil:
			s.Errors++
		}
	})
	switch {
	case err == nil:
		c.pacer.Succeeded(family)
		return nil
	case errors.Is(err, ErrThrottled):
		c.pacer.Throttled(family)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// pass is one advanceOnce of a migration. Many steps make two or three
// cloud calls per pass (describe the instance, then the volume). Under a
// busy pacer, with about one token free whenever a pass comes round, such
// a step would take its first token, be refused its second, and start
// over on the next pass: forever (a group of twelve stalled so, every
// migration in a two-describe step). So once a pass has had a call
// admitted, its later calls borrow: they go ahead and leave the bucket in
// debt, which the next callers wait out. The rate over time stays the
// bucket's; only the burst grows, by at most maxBorrowsPerPass calls.
type pass struct {
	admitted bool
	borrowed int
	// m is the migration the pass advances: its current step counts the
	// pass's cloud calls (the dashboard shows them per step).
	m *ledger.Migration
}

// countCall adds a call to the current step of the pass's migration, if
// the call is made in a pass (reconcile's are not).
func countCall(ctx context.Context, add func(*ledger.Step)) {
	p, ok := ctx.Value(passKey{}).(*pass)
	if !ok || p.m == nil || len(p.m.Timeline) == 0 {
		return
	}
	add(&p.m.Timeline[len(p.m.Timeline)-1])
}

type passKey struct{}

// maxBorrowsPerPass bounds what one pass may borrow; steps make at most a
// few calls, rollback's clean-up a few more.
const maxBorrowsPerPass = 8

// heartbeatInterval keeps the hook alive with a margin of two missed beats.
func (c *Controller) heartbeatInterval(m *ledger.Migration) time.Duration {
	t := m.HeartbeatTimeout
	if t <= 0 {
		t = c.cfg.DefaultHeartbeatTimeout
	}
	return t / 3
}

// heartbeat records lifecycle heartbeats for m's own hook and for the
// terminate actions it holds, each when its own interval is due.
func (c *Controller) heartbeat(ctx context.Context, m *ledger.Migration) error {
	now := c.clk.Now()
	changed := false
	if !m.HookDone && m.Result == "" && now.Sub(m.LastHeartbeat) >= c.heartbeatInterval(m) {
		ref := c.hookRef(m)
		err := c.call(ctx, pacing.FamilyLifecycle, "recording lifecycle heartbeat", func() error {
			return c.cloud.RecordLifecycleActionHeartbeat(ctx, ref)
		})
		switch {
		case errors.Is(err, ErrNoActiveAction):
			// The action ended without us: it timed out, or the instance went
			// away. Whatever we built must not be used.
			m.HookDone = true
			changed = true
			if c.canRollBack(m) {
				c.transition(m, ledger.RollingBack, "lifecycle action ended outside handover")
				m.LastError = "lifecycle action ended outside handover"
			}
		case err != nil:
			// Try again on the next pass; the interval leaves two beats of margin.
			c.log.Warn("lifecycle heartbeat failed", "migration-id", m.ID, "err", err)
		default:
			m.LastHeartbeat = now
			changed = true
		}
	}
	if holds, ch := c.beatHolds(ctx, m.ID, m.TerminateHolds); ch {
		m.TerminateHolds = holds
		changed = true
	}
	if !changed {
		return nil
	}
	return c.save(ctx, m)
}

// beatHolds keeps held terminate actions alive, each at a third of its own
// hook's heartbeat timeout, and drops those that ended. It reports whether
// anything changed.
func (c *Controller) beatHolds(ctx context.Context, owner string, holds []ledger.HookRef) ([]ledger.HookRef, bool) {
	now := c.clk.Now()
	changed := false
	kept := holds[:0:0]
	for _, h := range holds {
		timeout := h.Timeout
		if timeout <= 0 {
			timeout = c.cfg.DefaultHeartbeatTimeout
		}
		if now.Sub(h.LastBeat) < timeout/3 {
			kept = append(kept, h)
			continue
		}
		err := c.call(ctx, pacing.FamilyLifecycle, "recording terminate heartbeat", func() error {
			return c.cloud.RecordLifecycleActionHeartbeat(ctx, h)
		})
		switch {
		case errors.Is(err, ErrNoActiveAction):
			changed = true
			continue
		case err != nil:
			c.log.Warn("terminate heartbeat failed", "owner", owner, "instance", h.Instance, "err", err)
		default:
			h.LastBeat = now
			changed = true
		}
		kept = append(kept, h)
	}
	return kept, changed
}

func (c *Controller) hookRef(m *ledger.Migration) ledger.HookRef {
	ref := ledger.HookRef{Group: m.Group, Hook: m.Hook, Instance: m.Instance}
	if !isSyntheticID(m.ID) {
		ref.Token = m.ID
	}
	return ref
}

// complete ends a lifecycle action.
func (c *Controller) complete(ctx context.Context, ref ledger.HookRef, result string) error {
	return c.call(ctx, pacing.FamilyLifecycle, "completing lifecycle action with "+result, func() error {
		return c.cloud.CompleteLifecycleAction(ctx, ref, result)
	})
}
