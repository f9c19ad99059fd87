package handover_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

const launchBeat = "RecordLifecycleActionHeartbeat " + newID + " " + launchHook

// TestHeartbeatAfterInterval: a long step keeps the launch action alive
// with a heartbeat every third of the hook's heartbeat timeout.
func TestHeartbeatAfterInterval(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.advance(id)
	e.wantState(id, ledger.PreCopying) // the pre-copy stays pending
	interval := hookTimeout / 3

	e.clk.Advance(interval - time.Second)
	e.advance(id)
	if c := e.cloud.CallsOf("RecordLifecycleActionHeartbeat"); len(c) != 0 {
		t.Fatalf("heartbeat before the interval passed: %q", c)
	}
	e.clk.Advance(time.Second)
	e.advance(id)
	e.advance(id) // at once again: no second beat
	if c := e.cloud.CallsOf("RecordLifecycleActionHeartbeat"); !slices.Equal(c, []string{launchBeat}) {
		t.Fatalf("heartbeats = %q, want one for the launch action", c)
	}
	if a, _ := e.cloud.Action(newID, launchHook); a.Heartbeats != 1 || !a.Active() {
		t.Fatalf("launch action: %+v", a)
	}
	if m := e.m(id); !m.LastHeartbeat.Equal(e.clk.Now()) {
		t.Errorf("last heartbeat %s, want %s", m.LastHeartbeat, e.clk.Now())
	}
	e.clk.Advance(interval)
	e.advance(id)
	if n := count(e.cloud.CallsOf("RecordLifecycleActionHeartbeat"), launchBeat); n != 2 {
		t.Errorf("heartbeats after two intervals = %d, want 2", n)
	}
}

// holdSource puts the source in Terminating:Wait (unless it is already)
// and delivers the terminate lifecycle event.
func (e *env) holdSource(wantIDs []string) {
	e.t.Helper()
	if a, ok := e.cloud.Action(oldID, termHook); !ok || !a.Active() {
		ref := ledger.HookRef{Group: group, Hook: termHook, Token: "tok-term", Instance: oldID}
		e.cloud.StartAction(ref, handover.TransitionTerminating)
	}
	ids, err := e.ctl.HandleEvent(e.ctx, &events.Event{
		ID: "ev-term", Kind: events.KindTerminateAction, Time: e.clk.Now(),
		Lifecycle: &events.LifecycleAction{Group: group, Hook: termHook, Token: "tok-term", InstanceID: oldID, Transition: events.TransitionTerminating},
	})
	if err != nil || !slices.Equal(ids, wantIDs) {
		e.t.Fatalf("HandleEvent(terminate %s) = %v, %v; want %v", oldID, ids, err, wantIDs)
	}
}

// TestTerminateHoldOfSource: the group wants to terminate the source while
// it hands over; the terminate action is held (heartbeated) so the source
// keeps serving reads, and let go with CONTINUE once the migration ends.
func TestTerminateHoldOfSource(t *testing.T) {
	for _, outcome := range []ledger.State{ledger.Committed, ledger.Aborted} {
		t.Run(outcome.String(), func(t *testing.T) {
			e := newEnv(t)
			e.addSource()
			id := e.launchNew()
			e.advance(id)
			e.wantState(id, ledger.PreCopying)
			e.holdSource([]string{id})
			e.holdSource([]string{id}) // a duplicate adds no second hold
			if h := e.m(id).TerminateHolds; len(h) != 1 || h[0].Instance != oldID || h[0].Token != "tok-term" {
				t.Fatalf("terminate holds = %+v", h)
			}

			e.clk.Advance(hookTimeout / 3)
			e.advance(id)
			if a, _ := e.cloud.Action(oldID, termHook); a.Heartbeats != 1 || !a.Active() {
				t.Fatalf("terminate action not heartbeated and held: %+v", a)
			}

			if outcome == ledger.Aborted {
				e.cloud.SetInstanceState(newID, handover.InstanceTerminated)
			} else {
				e.run(id, ledger.Unfencing) // CONTINUE sent
				if a, _ := e.cloud.Action(oldID, termHook); !a.Active() {
					t.Fatalf("terminate action ended before the commit: %+v", a)
				}
			}
			e.run(id, outcome)

			if a, _ := e.cloud.Action(oldID, termHook); a.Result != handover.ResultContinue {
				t.Errorf("terminate action result = %q, want CONTINUE", a.Result)
			}
			term := "CompleteLifecycleAction " + oldID + " " + termHook + " CONTINUE"
			if n := count(e.cloud.CallsOf("CompleteLifecycleAction"), term); n != 1 {
				t.Errorf("terminate completions = %d, want 1: %q", n, e.cloud.CallsOf("CompleteLifecycleAction"))
			}
			if h := e.m(id).TerminateHolds; len(h) != 0 {
				t.Errorf("holds left after the migration ended: %+v", h)
			}
		})
	}
}

// TestTerminateHoldUsesItsOwnHookTimeout: the terminate hook may time out
// sooner than the launch hook. A held terminate action must be heartbeated
// within its own hook's heartbeat timeout, or Auto Scaling applies the
// default result and terminates the source mid-handover (invariants hooks-end and reads-until-inservice).
func TestTerminateHoldUsesItsOwnHookTimeout(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	const termTimeout = 3 * time.Minute
	e.cloud.AddHook(group, termHook, handover.Hook{HeartbeatTimeout: termTimeout, DefaultResult: handover.ResultContinue})
	id := e.launchNew()
	e.advance(id)
	e.wantState(id, ledger.PreCopying) // the pre-copy stays pending
	e.holdSource([]string{id})
	for elapsed := time.Duration(0); elapsed < termTimeout; elapsed += 15 * time.Second {
		e.clk.Advance(15 * time.Second)
		e.advance(id)
	}
	if a, _ := e.cloud.Action(oldID, termHook); a.Heartbeats == 0 {
		t.Errorf("held terminate action got no heartbeat within its hook's %s heartbeat timeout", termTimeout)
	}
}

// TestTerminateOfUninvolvedInstanceGoesOn: a terminate action of an
// instance that holds no database and that no migration moves from is let
// go at once.
func TestTerminateOfUninvolvedInstanceGoesOn(t *testing.T) {
	e := newEnv(t)
	e.cloud.AddInstance(handover.Instance{ID: oldID, Zone: zoneA, State: handover.InstanceRunning, PrivateIP: oldIP})
	e.cloud.SetLifecycle(group, oldID, handover.LifecycleInService)
	e.holdSource(nil)
	if a, _ := e.cloud.Action(oldID, termHook); a.Result != handover.ResultContinue {
		t.Errorf("terminate action result = %q, want CONTINUE", a.Result)
	}
}

// TestTerminateOfHolderWaitsForReplacement: Config.TerminateHoldMax says a
// terminate action of an instance that still holds a database waits (up to
// that long) for a replacement to appear, so reads go on being served
// (invariant reads-until-inservice). With no migration running yet, the holder's termination
// must not be let go at once.
func TestTerminateOfHolderWaitsForReplacement(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.holdSource(nil)
	if a, _ := e.cloud.Action(oldID, termHook); !a.Active() {
		t.Fatalf("terminate action of %s, which holds %s, completed at once (%s); want it held up to %s for a replacement",
			oldID, database, a.Result, e.cfg.TerminateHoldMax)
	}
	e.clk.Advance(e.cfg.TerminateHoldMax + e.cfg.PollInterval)
	e.reconcile()
	if a, _ := e.cloud.Action(oldID, termHook); a.Result != handover.ResultContinue {
		t.Errorf("terminate action after TerminateHoldMax = %q, want CONTINUE", a.Result)
	}
}

// TestActionEndedOutsideHandoverRollsBack: a heartbeat answered with "no
// active lifecycle action" means the launch timed out or went away; what
// was built must not be used.
func TestActionEndedOutsideHandoverRollsBack(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.advance(id)
	e.wantState(id, ledger.PreCopying)
	e.cloud.EndAction(newID, launchHook)

	e.clk.Advance(hookTimeout / 3)
	e.advance(id)
	e.wantState(id, ledger.RollingBack) // the pre-copy is still pending
	e.settle()
	e.run(id, ledger.Aborted)

	m := e.m(id)
	if !strings.Contains(m.LastError, "lifecycle action ended outside handover") {
		t.Errorf("last error = %q", m.LastError)
	}
	if c := e.cloud.CallsOf("CompleteLifecycleAction"); len(c) != 0 {
		t.Errorf("completed an action that had ended: %q", c)
	}
	if !e.cloud.Deleted(m.PreCopySnapshot) {
		t.Errorf("pre-copy snapshot %s not deleted", m.PreCopySnapshot)
	}
	if db := e.db(); db.Claim != "" || db.Epoch != epoch {
		t.Errorf("database = %+v", *db)
	}
}

// TestDeadlineCountsFromHookStart: the hook's overall timeout
// (min(48h, 100 × heartbeat timeout)) runs from when the instance entered
// Pending:Wait, the event's time, not from when handover first heard of
// it. A launch event delivered 10 minutes late must still be abandoned by
// handover DeadlineMargin before the real deadline, not after Auto Scaling
// applied the default result (invariant hooks-end).
func TestDeadlineCountsFromHookStart(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.cloud.AddHook(group, launchHook, handover.Hook{HeartbeatTimeout: 30 * time.Second, Metadata: database})
	entered := e.clk.Now().Add(-10 * time.Minute)
	id := e.launchAt(newID, newIP, zoneB, token, entered)
	e.advance(id)
	e.wantState(id, ledger.PreCopying) // the pre-copy stays pending

	realDeadline := entered.Add(100 * 30 * time.Second)
	e.clk.Set(realDeadline.Add(-time.Minute)) // within DeadlineMargin of it
	e.advance(id)
	if a, _ := e.cloud.Action(newID, launchHook); a.Result != handover.ResultAbandon {
		t.Errorf("one minute before the hook's deadline (%s) the launch action is %q, want ABANDON; migration deadline %s",
			realDeadline.Format(time.TimeOnly), a.Result, e.m(id).Deadline.Format(time.TimeOnly))
	}
}
