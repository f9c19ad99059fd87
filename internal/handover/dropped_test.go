package handover_test

import (
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// drop marks database id dropped by an environment operation.
func (e *env) drop(id string) {
	e.t.Helper()
	db := e.dbOf(id)
	if db == nil {
		e.t.Fatalf("no database %s to drop", id)
	}
	db.DroppedAt, db.DroppedBy = e.clk.Now(), "env-abort1"
	e.putDB(db)
}

// A dropped database's instance gone: no replacement is asked for.
func TestDroppedDatabaseNotHealed(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.drop(database)
	e.cloud.SetInstanceState(oldID, handover.InstanceTerminated)
	e.cloud.AddInstance(handover.Instance{ID: "i-stranded", Zone: zoneB, State: handover.InstanceRunning})
	e.cloud.SetLifecycle(group, "i-stranded", handover.LifecycleInService)
	e.reconcile()
	if c := e.cloud.CallsOf("ReplaceInstance"); len(c) != 0 {
		t.Errorf("replace calls = %q for a dropped database, want none", c)
	}
}

// A new instance of a dropped database's group does not claim it.
func TestDroppedDatabaseNotClaimed(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.drop(database)
	id := e.launchNew()
	e.advance(id)
	if db := e.dbOf(database); db.Claim != "" || db.Instance != oldID {
		t.Errorf("dropped database %+v: claimed or moved", db)
	}
	if m := e.m(id); m.State != ledger.Launching || !strings.Contains(m.LastError, "dropped by environment operation env-abort1") {
		t.Errorf("migration %s in %s: %q, want it waiting, saying the database is dropped", id, m.State, m.LastError)
	}
}

// A pool's dropped database is never picked: the other is.
func TestDroppedDatabaseNotPooled(t *testing.T) {
	e := newPoolEnv(t, `{"database":"t","count":2}`)
	e.putDB(&ledger.Database{ID: "t-1", Group: group})
	e.drop("t-1")
	first := e.launch("i-p1", "10.0.1.1", zoneA, "tok-p1")
	e.advance(first)
	if m := e.m(first); m.Database != "t-2" {
		t.Errorf("first instance took %q, want t-2 (t-1 is dropped)", m.Database)
	}
	second := e.launch("i-p2", "10.0.1.2", zoneB, "tok-p2")
	e.advance(second)
	if m := e.m(second); m.Database != "" {
		t.Errorf("second instance took %q, want none (t-1 is dropped, t-2 held)", m.Database)
	}
	if db := e.dbOf("t-1"); db.Instance != "" || db.Claim != "" {
		t.Errorf("dropped t-1 = %+v", db)
	}
}

// The terminate action of a dropped database's instance is not held for a
// replacement that never comes.
func TestDroppedDatabaseHoldsNoTermination(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.drop(database)
	e.cloud.StartAction(ledger.HookRef{Group: group, Hook: termHook, Token: "tok-old", Instance: oldID}, handover.TransitionTerminating)
	e.reconcile()
	if a, _ := e.cloud.Action(oldID, termHook); a.Result != handover.ResultContinue {
		t.Errorf("terminate action of a dropped database's instance = %q, want CONTINUE at once", a.Result)
	}
	if db := e.dbOf(database); len(db.TerminateHolds) != 0 {
		t.Errorf("holds %+v on a dropped database", db.TerminateHolds)
	}
}

// The sweeper no longer counts a dropped database's volume and base
// snapshot as needed: they are judged by their tags like any other.
func TestDroppedDatabaseNotProtectedFromSweep(t *testing.T) {
	for _, dropped := range []bool{false, true} {
		e := newEnv(t)
		e.addSourceAs("") // vol-old detached, tagged with a migration the ledger does not know, two days old
		if dropped {
			e.drop(database)
		}
		items, err := e.ctl.PlanSweep(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, it := range items {
			if it.ID != oldVol && it.ID != oldBase {
				continue
			}
			seen++
			if it.Delete != dropped {
				t.Errorf("dropped %v: %s %s judged delete=%v (%s)", dropped, it.Kind, it.ID, it.Delete, it.Reason)
			}
		}
		if seen != 2 {
			t.Errorf("dropped %v: the sweep judged %d of the volume and base snapshot", dropped, seen)
		}
	}
}
