package handover_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// TestHappyPathRunningSource walks a handover from a running source one
// step at a time, checking at each what a user would see.
func TestHappyPathRunningSource(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.svc.SetHealthy(newIP, false)
	id := e.launchNew()
	e.wantState(id, ledger.Launching)

	// Launching claims the database and starts the pre-copy while the
	// source still takes writes.
	e.advance(id)
	e.wantState(id, ledger.PreCopying)
	m := e.m(id)
	if m.Source != oldID || m.SourceVolume != oldVol || m.FromEpoch != epoch || m.Zone != zoneB || m.SourceFate != handover.FateRunning {
		t.Fatalf("after Launching: source %q volume %q epoch %d zone %q fate %q; want %s %s %d %s running",
			m.Source, m.SourceVolume, m.FromEpoch, m.Zone, m.SourceFate, oldID, oldVol, epoch, zoneB)
	}
	if global := min(48*time.Hour, 100*hookTimeout); m.HeartbeatTimeout != hookTimeout || !m.Deadline.Equal(m.CreatedAt.Add(global)) {
		t.Errorf("hook timeouts: heartbeat %s deadline %s; want %s and created+%s", m.HeartbeatTimeout, m.Deadline, hookTimeout, global)
	}
	if got := e.db().Claim; got != id {
		t.Fatalf("database claim = %q, want %q", got, id)
	}
	if n := len(e.svc.CallsOf("Fence")); n != 0 {
		t.Fatalf("source fenced during the pre-copy (%d calls): writes must go on", n)
	}
	pre := m.PreCopySnapshot
	if s, ok := e.cloud.Snapshot(pre); !ok || s.VolumeID != oldVol || s.Tags[handover.TagPurpose] != ledger.PurposePreCopy {
		t.Fatalf("pre-copy snapshot %q: %+v", pre, s)
	}

	// The pre-copy completes: fence under epoch 4, then the final snapshot.
	e.cloud.CompleteSnapshot(pre)
	e.poll(id)
	e.wantState(id, ledger.Snapshotting)
	if f, ep := fenced(e.svc, oldIP); !f || ep != epoch+1 {
		t.Fatalf("source gate fenced=%v epoch=%d, want fenced under %d", f, ep, epoch+1)
	}
	final := e.m(id).FinalSnapshot
	if s, ok := e.cloud.Snapshot(final); !ok || final == pre || s.VolumeID != oldVol || s.Tags[handover.TagEpoch] != "4" {
		t.Fatalf("final snapshot %q: %+v", final, s)
	}

	e.cloud.CompleteSnapshot(final)
	e.poll(id)
	e.wantState(id, ledger.CreatingVolume)
	vol := e.m(id).Volume
	if v, _ := e.cloud.Volume(vol); v.Zone != zoneB || v.SnapshotID != final || v.Tags[handover.TagMigration] != id {
		t.Fatalf("new volume %q: %+v; want in %s from %s tagged %s", vol, v, zoneB, final, id)
	}

	e.cloud.MakeAvailable(vol)
	e.poll(id)
	e.wantState(id, ledger.Attaching)
	if got := e.cloud.CallsOf("AttachVolume"); !slices.Equal(got, []string{"AttachVolume " + vol + " " + newID}) {
		t.Fatalf("attach calls = %q", got)
	}

	e.cloud.FinishAttach(vol)
	e.poll(id)
	e.wantState(id, ledger.AwaitingHealth)
	e.poll(id)
	e.wantState(id, ledger.AwaitingHealth) // still unhealthy: no CONTINUE
	if n := len(e.cloud.CallsOf("CompleteLifecycleAction")); n != 0 {
		t.Fatalf("lifecycle action completed before the service was healthy")
	}

	// The new instance started read-only (its volume says so) and stays so
	// until the old one forwards to it: invariant no-stale-reads.
	if v, _ := e.cloud.Volume(vol); v.Tags[handover.TagStart] != handover.StartFenced {
		t.Fatalf("new volume tags %v: want %s=%s, so the service starts fenced", v.Tags, handover.TagStart, handover.StartFenced)
	}
	e.svc.SetHealthy(newIP, true)
	e.poll(id)
	e.wantState(id, ledger.Unfencing) // retired, CONTINUE sent, new unfenced; waits for InService
	if a, _ := e.cloud.Action(newID, launchHook); a.Result != handover.ResultContinue {
		t.Fatalf("launch action result = %q, want CONTINUE", a.Result)
	}
	if db := e.db(); db.Volume != oldVol || db.Epoch != epoch {
		t.Fatalf("database committed before InService: %+v", db)
	}
	if st := e.svc.Gate(oldIP).State(); !st.Fenced || st.Epoch != epoch+1 || st.Successor != newIP+":8080" {
		t.Fatalf("source gate %+v, want retired under %d to %s:8080", st, epoch+1, newIP)
	}
	if f, ep := fenced(e.svc, newIP); f || ep != epoch+1 {
		t.Fatalf("new instance gate fenced=%v epoch=%d, want unfenced under %d", f, ep, epoch+1)
	}
	// The order that keeps invariant no-stale-reads: the new instance fenced, the old
	// retired, CONTINUE (the point of no return), only then the new
	// instance unfenced.
	var order []string
	for _, c := range e.svc.Calls {
		if !strings.HasPrefix(c, "Healthy ") {
			order = append(order, c)
		}
	}
	if want := []string{"Fence " + oldIP + " 4", "Fence " + newIP + " 4", "Retire " + oldIP + " 4 " + newIP, "Unfence " + newIP + " 4"}; !slices.Equal(order, want) {
		t.Fatalf("service calls %q, want %q", order, want)
	}
	if c := e.cloud.CallsOf("CompleteLifecycleAction"); len(c) != 1 {
		t.Fatalf("lifecycle completions %q before the unfence, want CONTINUE", c)
	}

	e.cloud.SetLifecycle(group, newID, handover.LifecycleInService)
	e.poll(id)
	e.wantState(id, ledger.Committed)

	// Repeats change nothing.
	e.poll(id)
	if err := e.ctl.Reconcile(e.ctx); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}

	db := e.db()
	want := ledger.Database{ID: database, Volume: vol, Zone: zoneB, Instance: newID, Group: group, Epoch: epoch + 1, BaseSnapshot: final}
	if db.ID != want.ID || db.Volume != want.Volume || db.Zone != want.Zone || db.Instance != want.Instance ||
		db.Group != want.Group || db.Epoch != want.Epoch || db.BaseSnapshot != want.BaseSnapshot || db.Claim != "" {
		t.Errorf("database = %+v\nwant       %+v", *db, want)
	}
	if !e.cloud.Deleted(pre) {
		t.Errorf("pre-copy snapshot %s not deleted", pre)
	}
	if !e.cloud.Deleted(oldBase) {
		t.Errorf("previous base snapshot %s not deleted", oldBase)
	}
	if _, ok := e.cloud.Snapshot(final); !ok {
		t.Errorf("final snapshot %s (the new base) was deleted", final)
	}
	if st := e.svc.Gate(oldIP).State(); !st.Fenced || st.Epoch != epoch+1 || !st.Retired() {
		t.Errorf("source gate %+v after commit, want retired under %d for good", st, epoch+1)
	}
	if n := count(e.svc.CallsOf("Unfence"), "Unfence "+oldIP+" 4"); n != 0 {
		t.Errorf("source unfenced after commit: %q", e.svc.CallsOf("Unfence"))
	}
	continues := count(e.cloud.CallsOf("CompleteLifecycleAction"), "CompleteLifecycleAction "+newID+" "+launchHook+" CONTINUE")
	if continues != 1 || len(e.cloud.CallsOf("CompleteLifecycleAction")) != 1 {
		t.Errorf("lifecycle completions = %q, want CONTINUE exactly once", e.cloud.CallsOf("CompleteLifecycleAction"))
	}
	if n := len(e.cloud.CallsOf("StopInstance")); n != 0 {
		t.Errorf("reachable source was stopped")
	}

	m = e.m(id)
	wantSteps := []ledger.State{
		ledger.Launching, ledger.PreCopying, ledger.Fencing, ledger.Snapshotting, ledger.CreatingVolume,
		ledger.Attaching, ledger.AwaitingHealth, ledger.Retiring, ledger.Completing, ledger.Unfencing, ledger.Committed,
	}
	var got []ledger.State
	for i, s := range m.Timeline {
		got = append(got, s.State)
		if s.Start.IsZero() || s.End.IsZero() || s.End.Before(s.Start) {
			t.Errorf("timeline step %d %s: start %s end %s", i, s.State, s.Start, s.End)
		}
		if i > 0 && !s.Start.Equal(m.Timeline[i-1].End) {
			t.Errorf("timeline step %d %s starts at %s, previous ended at %s", i, s.State, s.Start, m.Timeline[i-1].End)
		}
	}
	if !slices.Equal(got, wantSteps) {
		t.Errorf("timeline = %v\nwant       %v", got, wantSteps)
	}
	if m.Result != handover.ResultContinue || !m.HookDone || m.Intent != "" || m.LastError != "" {
		t.Errorf("migration result %q hook done %v intent %q last error %q", m.Result, m.HookDone, m.Intent, m.LastError)
	}
}
