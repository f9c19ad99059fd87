package handover_test

import (
	"slices"
	"testing"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

func (e *env) reconcile() {
	e.t.Helper()
	if err := e.ctl.Reconcile(e.ctx); err != nil {
		e.t.Fatalf("Reconcile: %v", err)
	}
}

// TestReconcileAdoptsLostLaunch: the launch event never arrived; reconcile
// finds the instance in Pending:Wait and hands over all the same.
func TestReconcileAdoptsLostLaunch(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.cloud.AddInstance(handover.Instance{ID: newID, Zone: zoneB, State: handover.InstanceRunning, PrivateIP: newIP})
	e.cloud.StartAction(ledger.HookRef{Group: group, Hook: launchHook, Token: "tok-lost", Instance: newID}, handover.TransitionLaunching)

	e.reconcile()
	const id = "instance:" + newID
	m := e.m(id)
	if m.Cause != "reconcile" || m.Database != database || m.Instance != newID {
		t.Fatalf("adopted migration = %+v", m)
	}
	e.wantState(id, ledger.PreCopying) // reconcile also advanced it

	e.reconcile()
	if ms := e.migrations(); len(ms) != 1 {
		t.Fatalf("%d migrations after a second reconcile, want 1", len(ms))
	}
	// The event turns up late: it joins the adopted migration.
	ids, err := e.ctl.HandleEvent(e.ctx, &events.Event{
		Kind: events.KindLaunchAction, Time: e.clk.Now(),
		Lifecycle: &events.LifecycleAction{Group: group, Hook: launchHook, Token: "tok-lost", InstanceID: newID, Metadata: database},
	})
	if err != nil || !slices.Equal(ids, []string{id}) {
		t.Fatalf("late launch event = %v, %v; want [%s]", ids, err, id)
	}
	if ms := e.migrations(); len(ms) != 1 {
		t.Fatalf("%d migrations after the late event, want 1", len(ms))
	}

	e.run(id, ledger.Committed)
	if a, _ := e.cloud.Action(newID, launchHook); a.Result != handover.ResultContinue {
		t.Errorf("launch action result = %q, want CONTINUE (completed by instance id)", a.Result)
	}
	if db := e.db(); db.Instance != newID || db.Epoch != epoch+1 {
		t.Errorf("database = %+v", *db)
	}
}

// TestReconcileSettlesTerminateActions: a terminate action nobody told us
// of is released when its instance is nobody's source, and held while it
// is one.
func TestReconcileSettlesTerminateActions(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.cloud.AddInstance(handover.Instance{ID: "i-spare", Zone: zoneA, State: handover.InstanceRunning})
	e.cloud.StartAction(ledger.HookRef{Group: group, Hook: termHook, Token: "tok-spare", Instance: "i-spare"}, handover.TransitionTerminating)
	id := e.launchNew()
	e.advance(id) // i-old is now the source
	e.cloud.StartAction(ledger.HookRef{Group: group, Hook: termHook, Token: "tok-old", Instance: oldID}, handover.TransitionTerminating)

	e.reconcile()
	if a, _ := e.cloud.Action("i-spare", termHook); a.Result != handover.ResultContinue {
		t.Errorf("terminate action of i-spare = %q, want CONTINUE", a.Result)
	}
	if a, _ := e.cloud.Action(oldID, termHook); !a.Active() {
		t.Errorf("terminate action of the source ended (%q) while it hands over", a.Result)
	}
	if h := e.m(id).TerminateHolds; len(h) != 1 || h[0].Instance != oldID {
		t.Errorf("terminate holds = %+v, want the source's", h)
	}
	e.reconcile()
	if h := e.m(id).TerminateHolds; len(h) != 1 {
		t.Errorf("terminate holds after a second reconcile = %+v, want one", h)
	}

	e.run(id, ledger.Committed)
	if a, _ := e.cloud.Action(oldID, termHook); a.Result != handover.ResultContinue {
		t.Errorf("terminate action of the source after commit = %q, want CONTINUE", a.Result)
	}
}

// TestReconcileReplacesStrandedInstance: the instance a database was
// handed to is gone and no migration runs; the group's other instance
// holds no authoritative volume, so reconcile asks for a replacement.
func TestReconcileReplacesStrandedInstance(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.cloud.SetInstanceState(oldID, handover.InstanceTerminated)
	e.cloud.AddInstance(handover.Instance{ID: "i-stranded", Zone: zoneB, State: handover.InstanceRunning})
	e.cloud.SetLifecycle(group, "i-stranded", handover.LifecycleInService)

	e.reconcile()
	if c := e.cloud.CallsOf("ReplaceInstance"); !slices.Equal(c, []string{"ReplaceInstance " + group + " i-stranded"}) {
		t.Errorf("replace calls = %q, want i-stranded replaced", c)
	}
}
