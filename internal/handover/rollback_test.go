package handover_test

import (
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// TestRollbackBeforeContinue: a failure before CONTINUE abandons the
// launch, deletes everything the migration created, unfences the source
// under the same epoch and releases the database.
func TestRollbackBeforeContinue(t *testing.T) {
	tests := []struct {
		name      string
		reach     ledger.State
		fail      func(e *env, id string)
		wantError string
	}{
		{
			name: "health check times out", reach: ledger.AwaitingHealth,
			fail: func(e *env, id string) {
				e.clk.Advance(e.cfg.StepTimeout + e.cfg.PollInterval)
				e.advance(id)
			},
			wantError: "AwaitingHealth timed out",
		},
		{
			name: "new instance terminated", reach: ledger.Attaching,
			fail: func(e *env, id string) {
				e.cloud.SetInstanceState(newID, handover.InstanceTerminated)
				e.poll(id)
			},
			wantError: "new instance i-new is gone",
		},
		{
			name: "launch unsuccessful event", reach: ledger.Snapshotting,
			fail: func(e *env, id string) {
				ids, err := e.ctl.HandleEvent(e.ctx, &events.Event{
					Kind: events.KindLaunchUnsuccessful, Time: e.clk.Now(),
					Launch: &events.LaunchResult{Group: group, InstanceID: newID, StatusMessage: "instance failed to start"},
				})
				if err != nil || len(ids) != 1 || ids[0] != id {
					e.t.Fatalf("HandleEvent(launch unsuccessful) = %v, %v", ids, err)
				}
			},
			wantError: "launch unsuccessful: instance failed to start",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.addSource()
			e.svc.SetHealthy(newIP, false)
			id := e.launchNew()
			e.run(id, tt.reach)
			tt.fail(e, id)
			e.wantState(id, ledger.RollingBack)
			e.run(id, ledger.Aborted)

			m := e.m(id)
			if !strings.Contains(m.LastError, tt.wantError) {
				t.Errorf("last error %q does not say %q", m.LastError, tt.wantError)
			}
			if a, _ := e.cloud.Action(newID, launchHook); a.Result != handover.ResultAbandon {
				t.Errorf("launch action result = %q, want ABANDON", a.Result)
			}
			completes := e.cloud.CallsOf("CompleteLifecycleAction")
			if len(completes) != 1 || completes[0] != "CompleteLifecycleAction "+newID+" "+launchHook+" ABANDON" {
				t.Errorf("lifecycle completions = %q, want one ABANDON", completes)
			}
			for _, r := range m.Resources {
				if !r.Deleted || !e.cloud.Deleted(r.ID) {
					t.Errorf("%s %s (%s) left behind: recorded deleted=%v", r.Kind, r.ID, r.Purpose, r.Deleted)
				}
			}
			if len(m.Resources) == 0 {
				t.Errorf("no resources recorded; the migration created some")
			}
			for _, v := range e.cloud.Volumes() {
				if v.ID != oldVol {
					t.Errorf("volume %s survived the rollback", v.ID)
				}
			}
			for _, s := range e.cloud.Snapshots() {
				if s.ID != oldBase {
					t.Errorf("snapshot %s survived the rollback", s.ID)
				}
			}
			if f, _ := fenced(e.svc, oldIP); f {
				t.Errorf("source still fenced after rollback")
			}
			if got := e.svc.CallsOf("Unfence"); len(got) != 1 || got[0] != "Unfence "+oldIP+" 4" {
				t.Errorf("unfence calls = %q, want one under the fence's epoch 4", got)
			}
			db := e.db()
			if db.Epoch != epoch || db.Volume != oldVol || db.Instance != oldID || db.BaseSnapshot != oldBase || db.Claim != "" {
				t.Errorf("database = %+v, want untouched at epoch %d and unclaimed", *db, epoch)
			}
		})
	}
}

// TestRollbackKeepsFenceWhenDatabaseMovedOn: once another epoch is
// committed, or another migration claims the database, the source must
// stay fenced (invariant single-writer).
func TestRollbackKeepsFenceWhenDatabaseMovedOn(t *testing.T) {
	tests := []struct {
		name        string
		dbEpoch     int64
		claim       string
		wantUnfence bool
	}{
		{name: "epoch moved on", dbEpoch: epoch + 1},
		{name: "claimed by another migration", dbEpoch: epoch, claim: "tok-other"},
		{name: "control: still ours", dbEpoch: epoch, claim: "tok-old", wantUnfence: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.addSource()
			db := e.db()
			db.Epoch, db.Claim = tt.dbEpoch, tt.claim
			e.putDB(db)
			if err := e.svc.Gate(oldIP).Fence(epoch + 1); err != nil {
				t.Fatal(err)
			}
			now := e.clk.Now()
			m := &ledger.Migration{
				ID: "tok-old", Group: group, Hook: launchHook, Instance: "i-gone", Database: database,
				State: ledger.RollingBack, Source: oldID, SourceVolume: oldVol, SourceFate: handover.FateRunning,
				FromEpoch: epoch, Fenced: true, FenceEpoch: epoch + 1, Result: handover.ResultAbandon, HookDone: true,
				CreatedAt: now, UpdatedAt: now, StepStartedAt: now, LastError: "test",
				Timeline: []ledger.Step{{State: ledger.RollingBack, Start: now}},
			}
			if err := e.led.CreateMigration(e.ctx, m); err != nil {
				t.Fatal(err)
			}
			e.run(m.ID, ledger.Aborted)

			f, ep := fenced(e.svc, oldIP)
			unfences := e.svc.CallsOf("Unfence")
			if tt.wantUnfence {
				if f || len(unfences) != 1 {
					t.Errorf("fenced=%v unfence calls %q, want unfenced once", f, unfences)
				}
				return
			}
			if !f || ep != epoch+1 || len(unfences) != 0 {
				t.Errorf("source fenced=%v epoch=%d unfence calls %q; want it left fenced under %d", f, ep, unfences, epoch+1)
			}
			if got := e.db(); got.Claim != tt.claim || got.Epoch != tt.dbEpoch {
				t.Errorf("database = %+v: the rollback touched another migration's claim or epoch", *got)
			}
		})
	}
}

// TestRollbackOfStoppedSourceUnfencesIt: a fence whose answer was lost
// (ErrUnreachable) may still have landed; when the source is then stopped
// as the hard fence and the migration rolls back, the source is started
// again and must end up accepting writes: the epoch never moved.
func TestRollbackOfStoppedSourceUnfencesIt(t *testing.T) {
	e := newEnv(t, func(c *handover.Config) { c.PreCopy = false })
	e.addSource()
	// A fence under epoch 4 reached the service, which persisted it, but
	// its answer was lost: the gate is fenced and every call from here on
	// times out.
	if err := e.svc.Gate(oldIP).Fence(epoch + 1); err != nil {
		t.Fatal(err)
	}
	e.svc.SetReachable(oldIP, false)
	id := e.launchNew()
	e.run(id, ledger.StoppingSource)
	e.cloud.SetInstanceState(oldID, handover.InstanceStopped)
	e.poll(id)
	e.wantState(id, ledger.Snapshotting)

	if _, err := e.ctl.HandleEvent(e.ctx, &events.Event{
		Kind: events.KindLaunchUnsuccessful, Launch: &events.LaunchResult{Group: group, InstanceID: newID, StatusMessage: "capacity"},
	}); err != nil {
		t.Fatal(err)
	}
	// The rollback starts the source again and waits for it: it is not
	// done until the database can take writes.
	for range 10 {
		e.poll(id)
		e.settle()
	}
	e.wantState(id, ledger.RollingBack)
	if c := e.cloud.CallsOf("StartInstance"); len(c) == 0 {
		t.Fatalf("start calls = %q, want the source started again", c)
	}
	// The source boots and answers again.
	e.cloud.SetInstanceState(oldID, handover.InstanceRunning)
	e.svc.SetReachable(oldIP, true)
	e.run(id, ledger.Aborted)
	if db := e.db(); db.Epoch != epoch {
		t.Fatalf("database epoch %d, want %d", db.Epoch, epoch)
	}
	if f, ep := fenced(e.svc, oldIP); f {
		t.Errorf("source left fenced under epoch %d after the rollback; database %s stays read-only", ep, database)
	}
}
