package handover_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// toInServiceWait runs the standard migration, holding the source's
// termination, until it sent CONTINUE, unfenced its new instance (the
// retire cutover) and waits in Unfencing for that instance to leave
// Pending:Wait before it commits. It returns the migration id.
func (e *env) toInServiceWait() string {
	e.t.Helper()
	e.addSource()
	id := e.launchNew()
	e.advance(id)
	e.holdSource([]string{id})
	e.run(id, ledger.Unfencing)
	// run's settle let the instance into service; hold it in Pending:Wait.
	e.cloud.SetLifecycle(group, newID, handover.LifecyclePendingWait)
	e.poll(id)
	if m := e.m(id); !m.HookDone || !m.NewUnfenced || m.State != ledger.Unfencing {
		e.t.Fatalf("migration did not send CONTINUE, unfence and wait in Unfencing:\n%s", describe(m))
	}
	return id
}

// wantSuperseded checks what a superseded migration must leave behind: its
// terminate hold let go, everything it created deleted, no fence lifted,
// and the database record as before.
func (e *env) wantSuperseded(id string, dbBefore *ledger.Database, unfencesBefore int) {
	e.t.Helper()
	m := e.m(id)
	if a, _ := e.cloud.Action(oldID, termHook); a.Result != handover.ResultContinue {
		e.t.Errorf("terminate action of the source: %q, want CONTINUE", a.Result)
	}
	if len(m.TerminateHolds) != 0 {
		e.t.Errorf("holds left: %+v", m.TerminateHolds)
	}
	if len(resourceIDs(m, ledger.PurposeTarget)) == 0 || len(resourceIDs(m, ledger.PurposeFinal)) == 0 {
		e.t.Errorf("resources not recorded: %+v", m.Resources)
	}
	for _, r := range m.Resources {
		if !r.Deleted || !e.cloud.Deleted(r.ID) {
			e.t.Errorf("%s %s (%s) left behind: recorded deleted=%v", r.Kind, r.ID, r.Purpose, r.Deleted)
		}
	}
	for _, v := range e.cloud.Volumes() {
		if v.Tags[handover.TagMigration] == id {
			e.t.Errorf("volume %s of the superseded migration still exists", v.ID)
		}
	}
	for _, s := range e.cloud.Snapshots() {
		if s.Tags[handover.TagMigration] == id {
			e.t.Errorf("snapshot %s of the superseded migration still exists", s.ID)
		}
	}
	if c := e.svc.CallsOf("Unfence"); len(c) != unfencesBefore {
		e.t.Errorf("unfenced after the database moved on: %q (%d before)", c, unfencesBefore)
	}
	if db := e.db(); !reflect.DeepEqual(db, dbBefore) {
		e.t.Errorf("database record changed:\n got %+v\nwant %+v", *db, *dbBefore)
	}
	if _, ok := e.cloud.Volume(dbBefore.Volume); !ok {
		e.t.Errorf("authoritative volume %s is gone", dbBefore.Volume)
	}
	if _, ok := e.cloud.Snapshot(dbBefore.BaseSnapshot); !ok {
		e.t.Errorf("base snapshot %s is gone", dbBefore.BaseSnapshot)
	}
}

// TestSupersededAfterCommit is simulator seeds 30795 and 57935: the
// commit's database write lands but letting the held termination go
// fails, so the migration stays in Unfencing to come back for it; before
// it does, a replacement of its new instance hands the database on to the
// next epoch. The migration must end Committed (its volume was
// authoritative) and clean up, instead of retrying forever.
func TestSupersededAfterCommit(t *testing.T) {
	for _, tt := range []struct {
		name string
		// before the replacement launches, to the first new instance
		happen func(e *env, vol string)
	}{
		{"new instance died", func(e *env, vol string) {
			e.cloud.SetInstanceState(newID, handover.InstanceTerminated)
			v, _ := e.cloud.Volume(vol)
			v.State, v.AttachedTo, v.AttachState = handover.VolumeAvailable, "", ""
			e.cloud.AddVolume(v)
		}},
		{"new instance replaced while running", func(e *env, vol string) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.toInServiceWait()

			e.cloud.NextErr["CompleteLifecycleAction"] = errors.New("InternalError: service unavailable")
			e.cloud.SetLifecycle(group, newID, handover.LifecycleInService)
			e.poll(id)
			m := e.m(id)
			if db := e.db(); db.Epoch != epoch+1 || db.Volume != m.Volume || db.Claim != "" {
				t.Fatalf("commit did not land: %+v", *db)
			}
			if m.State != ledger.Unfencing || len(m.TerminateHolds) != 1 {
				t.Fatalf("want Unfencing with the hold kept after the failed release:\n%s", describe(m))
			}

			tt.happen(e, m.Volume)
			id2 := e.launch(new2, new2IP, zoneA, "tok-2")
			e.run(id2, ledger.Committed)
			dbBefore := e.db()
			if dbBefore.Epoch != epoch+2 || dbBefore.Instance != new2 {
				t.Fatalf("replacement did not commit the next epoch: %+v", *dbBefore)
			}

			unfences := len(e.svc.CallsOf("Unfence"))
			e.run(id, ledger.Committed)
			m = e.m(id)
			if note := m.Timeline[len(m.Timeline)-1].Note; !strings.Contains(note, "superseded by migration tok-2") {
				t.Errorf("note %q does not name the migration that superseded it", note)
			}
			e.wantSuperseded(id, dbBefore, unfences)
			if f, ep := fenced(e.svc, newIP); tt.name != "new instance died" && (!f || ep != epoch+2) {
				t.Errorf("first new instance fenced=%v under %d, want fenced under %d", f, ep, epoch+2)
			}
		})
	}
}

// TestSupersededBeforeCommit: another migration took the database on and
// committed the epoch this one would have, before this one's commit
// landed. It ends Aborted, naming that migration, with the same clean-up,
// and leaves its source fenced.
func TestSupersededBeforeCommit(t *testing.T) {
	e := newEnv(t)
	id := e.toInServiceWait()
	m := e.m(id)

	now := e.clk.Now()
	other := &ledger.Migration{
		ID: "tok-other", Database: database, Instance: "i-other", State: ledger.Committed,
		Source: oldID, SourceVolume: oldVol, FromEpoch: epoch, Volume: "vol-other", CreatedAt: now, UpdatedAt: now,
	}
	if err := e.led.CreateMigration(e.ctx, other); err != nil {
		t.Fatal(err)
	}
	e.cloud.AddVolume(handover.Volume{ID: "vol-other", Zone: zoneA, State: handover.VolumeInUse, AttachedTo: "i-other", AttachState: "attached",
		Tags: map[string]string{handover.TagManaged: "true", handover.TagMigration: "tok-other"}})
	db := e.db()
	db.Epoch, db.Volume, db.Instance, db.Claim = epoch+1, "vol-other", "i-other", ""
	e.putDB(db)
	dbBefore := e.db()

	unfences := len(e.svc.CallsOf("Unfence"))
	e.cloud.SetLifecycle(group, newID, handover.LifecycleInService)
	e.run(id, ledger.Aborted)
	m = e.m(id)
	if want := "superseded by migration tok-other before its commit landed"; !strings.Contains(m.LastError, want) {
		t.Errorf("last error %q does not say %q", m.LastError, want)
	}
	if m.Result != handover.ResultContinue {
		t.Errorf("result = %q, want the CONTINUE it sent", m.Result)
	}
	e.wantSuperseded(id, dbBefore, unfences)
	if f, ep := fenced(e.svc, oldIP); !f || ep != epoch+1 {
		t.Errorf("source fenced=%v under %d, want it left fenced under %d", f, ep, epoch+1)
	}
}

// TestLostClaimNotProvenRetries: a record that does not prove the database
// moved on past the migration (its epoch is not beyond the migration's)
// is retried: nothing is deleted, no hold is let go.
func TestLostClaimNotProvenRetries(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(db *ledger.Database)
	}{
		{"claimed by another at the same epoch", func(db *ledger.Database) { db.Claim = "tok-other" }},
		{"claim gone, epoch unchanged", func(db *ledger.Database) { db.Claim = "" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.toInServiceWait()
			db := e.db()
			tt.edit(db)
			e.putDB(db)
			dbBefore := e.db()

			e.cloud.SetLifecycle(group, newID, handover.LifecycleInService)
			for range 5 {
				e.poll(id)
				e.settle()
			}
			m := e.m(id)
			if m.State != ledger.Unfencing || !strings.Contains(m.LastError, "lost its claim") {
				t.Fatalf("want Unfencing, retrying the lost claim:\n%s", describe(m))
			}
			if a, _ := e.cloud.Action(oldID, termHook); !a.Active() || len(m.TerminateHolds) != 1 {
				t.Errorf("hold let go while retrying: %+v, %+v", a, m.TerminateHolds)
			}
			if _, ok := e.cloud.Volume(m.Volume); !ok {
				t.Errorf("volume %s deleted while retrying", m.Volume)
			}
			if c := e.cloud.CallsOf("DeleteSnapshot"); len(c) != 0 {
				t.Errorf("snapshots deleted while retrying: %q", c)
			}
			if db := e.db(); !reflect.DeepEqual(db, dbBefore) {
				t.Errorf("database record changed:\n got %+v\nwant %+v", *db, *dbBefore)
			}
		})
	}
}
