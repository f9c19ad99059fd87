package handover_test

import (
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

const updateID = "upd-1"

// putUpdate stores a running update of group, as the update runner would
// have left it.
func (e *env) putUpdate(fns ...func(*ledger.Update)) {
	e.t.Helper()
	now := e.clk.Now()
	u := &ledger.Update{
		ID: updateID, Group: group, State: ledger.UpdateRunning, Phase: "signals",
		Spec: ledger.UpdateSpec{Strategy: "replace-all"}, OldDesired: 2, NewGroup: group,
		Signals: map[string]string{}, CreatedAt: now, UpdatedAt: now,
	}
	for _, f := range fns {
		f(u)
	}
	if err := e.led.CreateUpdate(e.ctx, u); err != nil {
		e.t.Fatalf("CreateUpdate: %v", err)
	}
}

// setUpdate changes the stored update.
func (e *env) setUpdate(fn func(*ledger.Update)) {
	e.t.Helper()
	u, err := e.led.GetUpdate(e.ctx, updateID)
	if err != nil {
		e.t.Fatalf("GetUpdate: %v", err)
	}
	fn(u)
	u.UpdatedAt = e.clk.Now()
	if err := e.led.SaveUpdate(e.ctx, u); err != nil {
		e.t.Fatalf("SaveUpdate: %v", err)
	}
}

// markedPoolEnv is a pool of p-1 (held by i-old, marked by upd-1 with
// gated, the one a new instance takes) and p-2 (held by a healthy i-h2).
func markedPoolEnv(t *testing.T, mark string, gated bool) *env {
	t.Helper()
	e := newPoolEnv(t, `{"databases":["p-1","p-2"]}`)
	e.hold("p-1", oldID, oldIP, zoneA, handover.LifecycleInService, marked(mark, gated))
	e.hold("p-2", "i-h2", "10.0.2.2", zoneA, handover.LifecycleInService)
	return e
}

func (e *env) continues() []string {
	var out []string
	for _, c := range e.cloud.CallsOf("CompleteLifecycleAction") {
		if strings.HasPrefix(c, "CompleteLifecycleAction "+newID+" ") {
			out = append(out, c)
		}
	}
	return out
}

// TestGatedMigrationWaitsForUpdate: a gated migration, healthy, holds its
// CONTINUE until the update opens its gates or ends; the wait does not
// count against the step timeout.
func TestGatedMigrationWaitsForUpdate(t *testing.T) {
	tests := []struct {
		name string
		open func(u *ledger.Update)
	}{
		{name: "gates open", open: func(u *ledger.Update) { u.GatesOpen = true }},
		{name: "update succeeded", open: func(u *ledger.Update) { u.State = ledger.UpdateSucceeded }},
		{name: "update failed", open: func(u *ledger.Update) { u.State = ledger.UpdateFailed }},
		{name: "update aborted", open: func(u *ledger.Update) { u.State = ledger.UpdateAborted }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := markedPoolEnv(t, updateID, true)
			e.putUpdate(func(u *ledger.Update) { u.Signals[newID] = handover.SignalSuccess })
			id := e.launchNew()
			e.run(id, ledger.AwaitingHealth)
			if m := e.m(id); m.Database != "p-1" || m.Update != updateID || !m.Gated {
				t.Fatalf("migration database %q update %q gated %v, want p-1 gated by %s", m.Database, m.Update, m.Gated, updateID)
			}

			// Twice the step timeout in small steps, then once more in one jump.
			for range 4 {
				e.clk.Advance(e.cfg.StepTimeout / 2)
				e.advance(id)
				e.wantState(id, ledger.AwaitingHealth)
			}
			e.clk.Advance(e.cfg.StepTimeout + time.Minute)
			e.advance(id)
			e.wantState(id, ledger.AwaitingHealth)
			m := e.m(id)
			if want := "waiting for update " + updateID + " to open its gate (1 of 2 success signals)"; !strings.Contains(m.LastError, want) {
				t.Errorf("last error %q, want it to say %q", m.LastError, want)
			}
			if c := e.continues(); len(c) != 0 {
				t.Fatalf("lifecycle action completed while the gate was closed: %q", c)
			}
			if f, _ := fenced(e.svc, oldIP); !f {
				t.Fatalf("source not fenced while the new instance waits at the gate")
			}

			e.setUpdate(tt.open)
			e.poll(id)
			e.wantState(id, ledger.Unfencing) // retired, CONTINUE sent; waits for InService
			e.run(id, ledger.Committed)
			if c := e.continues(); len(c) != 1 || !strings.HasSuffix(c[0], " CONTINUE") {
				t.Errorf("lifecycle completions %q, want one CONTINUE", c)
			}
			if db := e.dbOf("p-1"); db.Instance != newID || db.Epoch != 2 || db.ReplaceBy != "" || db.Gated {
				t.Errorf("p-1 = %+v, want on %s at epoch 2, unmarked", *db, newID)
			}
		})
	}
}

// TestGatedMigrationWithoutUpdateGoesOn: a gate whose update the ledger
// does not know holds nothing.
func TestGatedMigrationWithoutUpdateGoesOn(t *testing.T) {
	e := markedPoolEnv(t, updateID, true)
	id := e.launchNew()
	e.run(id, ledger.Committed)
	m := e.m(id)
	if !m.Gated || m.Update != updateID {
		t.Errorf("migration update %q gated %v, want the mark copied", m.Update, m.Gated)
	}
	for i, s := range m.Timeline {
		if s.State == ledger.AwaitingHealth && !s.End.Equal(s.Start) {
			t.Errorf("AwaitingHealth lasted %s with the service healthy at once: the missing update held it", s.End.Sub(s.Start))
		}
		// The step after AwaitingHealth says why it went on.
		if s.State == ledger.Retiring && (i == 0 || !strings.Contains(s.Note, "opened its gate")) {
			t.Errorf("Retiring note %q, want the gate named", s.Note)
		}
	}
}

// TestGateWaitEndsAtHookDeadline: the gate wait is credited against the
// step timeout, never against the hook's own overall deadline.
func TestGateWaitEndsAtHookDeadline(t *testing.T) {
	e := markedPoolEnv(t, updateID, true)
	e.putUpdate()
	id := e.launchNew()
	e.run(id, ledger.AwaitingHealth)
	e.poll(id)
	e.wantState(id, ledger.AwaitingHealth)
	deadline := e.m(id).Deadline
	e.clk.Set(deadline.Add(-e.cfg.DeadlineMargin + time.Second))
	e.advance(id)
	e.run(id, ledger.Aborted)
	if m := e.m(id); !strings.Contains(m.LastError, "deadline") {
		t.Errorf("last error %q, want the hook deadline", m.LastError)
	}
	if f, _ := fenced(e.svc, oldIP); f {
		t.Errorf("source left fenced")
	}
}

// TestUpdateRollingBackAbortsItsMigrations: when an update rolls back, the
// migrations it asked for roll back too while they still can; its own
// rollback's migrations and those past CONTINUE go on.
func TestUpdateRollingBackAbortsItsMigrations(t *testing.T) {
	tests := []struct {
		name      string
		mark      string
		gated     bool
		reach     ledger.State
		wantAbort bool
	}{
		{name: "source fenced", mark: updateID, reach: ledger.Snapshotting, wantAbort: true},
		{name: "waiting at the gate", mark: updateID, gated: true, reach: ledger.AwaitingHealth, wantAbort: true},
		{name: "rollback's own migration", mark: updateID + "#rollback", reach: ledger.Snapshotting},
		{name: "past CONTINUE", mark: updateID, reach: ledger.Unfencing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := markedPoolEnv(t, tt.mark, tt.gated)
			e.putUpdate()
			id := e.launchNew()
			e.run(id, tt.reach)
			if tt.reach == ledger.AwaitingHealth {
				e.poll(id) // at the gate now
				e.wantState(id, ledger.AwaitingHealth)
			}
			if tt.reach == ledger.Unfencing {
				// CONTINUE is sent; the instance is not InService yet.
				e.cloud.SetLifecycle(group, newID, handover.LifecyclePendingWait)
			}
			if f, ep := fenced(e.svc, oldIP); !f || ep != 2 {
				t.Fatalf("source fenced=%v epoch=%d before the update rolls back, want fenced under 2", f, ep)
			}
			e.setUpdate(func(u *ledger.Update) { u.State, u.Error = ledger.UpdateRollingBack, "batch 1 unhealthy" })

			if !tt.wantAbort {
				for range 3 {
					e.poll(id)
					if s := e.m(id).State; s == ledger.RollingBack || s == ledger.Aborted {
						t.Fatalf("migration %s rolled back with the update\n%s", s, describe(e.m(id)))
					}
				}
				if tt.reach == ledger.Unfencing {
					e.wantState(id, ledger.Unfencing)
					e.cloud.SetLifecycle(group, newID, handover.LifecycleInService)
				}
				e.run(id, ledger.Committed)
				if c := e.continues(); len(c) != 1 || !strings.HasSuffix(c[0], " CONTINUE") {
					t.Errorf("lifecycle completions %q, want one CONTINUE", c)
				}
				if n := count(e.svc.CallsOf("Unfence"), "Unfence "+oldIP+" 2"); n != 0 {
					t.Errorf("source unfenced after commit: %q", e.svc.CallsOf("Unfence"))
				}
				if db := e.dbOf("p-1"); db.Instance != newID || db.Epoch != 2 || db.ReplaceBy != "" {
					t.Errorf("p-1 = %+v, want on %s at epoch 2", *db, newID)
				}
				return
			}

			e.poll(id)
			if s := e.m(id).State; s != ledger.RollingBack && s != ledger.Aborted {
				t.Fatalf("migration %s after its update started rolling back\n%s", s, describe(e.m(id)))
			}
			e.run(id, ledger.Aborted)
			m := e.m(id)
			if want := "update " + updateID + " is rolling back: batch 1 unhealthy"; !strings.Contains(m.LastError, want) {
				t.Errorf("last error %q, want %q", m.LastError, want)
			}
			if c := e.continues(); len(c) != 1 || !strings.HasSuffix(c[0], " ABANDON") {
				t.Errorf("lifecycle completions %q, want one ABANDON", c)
			}
			if f, _ := fenced(e.svc, oldIP); f {
				t.Errorf("source still fenced after the rollback")
			}
			if c := e.svc.CallsOf("Unfence"); len(c) != 1 || c[0] != "Unfence "+oldIP+" 2" {
				t.Errorf("unfence calls %q, want one under epoch 2", c)
			}
			if db := e.dbOf("p-1"); db.Instance != oldID || db.Epoch != 1 || db.Claim != "" || db.Volume != "vol-p-1" {
				t.Errorf("p-1 = %+v, want back on %s at epoch 1, unclaimed", *db, oldID)
			}
		})
	}
}
