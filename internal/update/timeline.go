package update

import "github.com/handover-dev/handover/internal/ledger"

// enter moves u to phase, stored by name, and keeps the timeline.
func (r *Runner) enter(u *ledger.Update, phase Phase, note string) {
	now := r.clk.Now()
	if n := len(u.Timeline); n > 0 && u.Timeline[n-1].End.IsZero() {
		u.Timeline[n-1].End = now
	}
	u.Phase, u.BatchAt = phase.String(), now
	u.Timeline = append(u.Timeline, ledger.UpdateStep{Phase: phase.String(), Start: now, Note: note})
}

// fail starts the rollback.
func (r *Runner) fail(u *ledger.Update, why string, aborted bool) {
	r.log.Warn("update rolling back", "update-id", u.ID, "group", u.Group, "phase", u.Phase, "why", why)
	u.Error = why
	u.AbortRequested = u.AbortRequested || aborted
	u.State = ledger.UpdateRollingBack
	r.enter(u, PhaseRollback, why)
}

// finish ends u.
func (r *Runner) finish(u *ledger.Update) {
	switch {
	case u.State == ledger.UpdateRunning:
		u.State = ledger.UpdateSucceeded
	case u.AbortRequested:
		u.State = ledger.UpdateAborted
	default:
		u.State = ledger.UpdateFailed
	}
	r.enter(u, PhaseDone, string(u.State))
	u.Timeline[len(u.Timeline)-1].End = u.Timeline[len(u.Timeline)-1].Start
	u.EndedAt = r.clk.Now()
	r.log.Info("update ended", "update-id", u.ID, "group", u.Group, "state", u.State, "error", u.Error)
}
