package handover_test

import (
	"slices"
	"testing"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

func timelineStates(m *ledger.Migration) []ledger.State {
	var out []ledger.State
	for _, s := range m.Timeline {
		out = append(out, s.State)
	}
	return out
}

// TestFirstBoot: with no database record there is nothing to move: a blank
// volume (or one from the seed snapshot) is created, and nothing is fenced
// or snapshotted.
func TestFirstBoot(t *testing.T) {
	tests := []struct {
		name     string
		metadata string
		recSeed  string // the database record's seed snapshot, before first boot
		seed     *handover.Snapshot
		wantSize int32
		wantFrom string
	}{
		{name: "size from metadata", metadata: `{"database":"tenant-42","size_gib":50}`, wantSize: 50},
		{name: "default size", metadata: "tenant-42", wantSize: 8},
		{
			name: "seed snapshot", metadata: `{"database":"tenant-42","seed_snapshot":"snap-seed"}`,
			seed:     &handover.Snapshot{ID: "snap-seed", State: handover.SnapshotCompleted, SizeGiB: 30},
			wantSize: 30, wantFrom: "snap-seed",
		},
		{
			name: "seed snapshot of the database record", metadata: `{"database":"tenant-42"}`, recSeed: "snap-rec",
			seed:     &handover.Snapshot{ID: "snap-rec", State: handover.SnapshotCompleted, SizeGiB: 20},
			wantSize: 20, wantFrom: "snap-rec",
		},
		{
			name: "pool: seed snapshot of the database record", metadata: `{"databases":["tenant-42"]}`, recSeed: "snap-rec",
			seed:     &handover.Snapshot{ID: "snap-rec", State: handover.SnapshotCompleted, SizeGiB: 20},
			wantSize: 20, wantFrom: "snap-rec",
		},
		{
			name: "the hook's seed before the record's", metadata: `{"database":"tenant-42","seed_snapshot":"snap-seed"}`, recSeed: "snap-rec",
			seed:     &handover.Snapshot{ID: "snap-seed", State: handover.SnapshotCompleted, SizeGiB: 30},
			wantSize: 30, wantFrom: "snap-seed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.AddHook(group, launchHook, handover.Hook{HeartbeatTimeout: hookTimeout, Metadata: tt.metadata})
			if tt.seed != nil {
				e.cloud.AddSnapshot(*tt.seed)
			}
			if tt.recSeed != "" {
				if err := e.led.SaveDatabase(e.ctx, &ledger.Database{ID: database, Group: group, SeedSnapshot: tt.recSeed}); err != nil {
					t.Fatal(err)
				}
			}
			id := e.launchNew()
			e.run(id, ledger.Committed)

			m := e.m(id)
			if m.SourceFate != handover.FateNone {
				t.Errorf("source fate = %q, want %q", m.SourceFate, handover.FateNone)
			}
			wantSteps := []ledger.State{ledger.Launching, ledger.CreatingVolume, ledger.Attaching, ledger.AwaitingHealth, ledger.Completing, ledger.Committed}
			if got := timelineStates(m); !slices.Equal(got, wantSteps) {
				t.Errorf("timeline = %v, want %v", got, wantSteps)
			}
			v, _ := e.cloud.Volume(m.Volume)
			if v.SizeGiB != tt.wantSize || v.SnapshotID != tt.wantFrom || v.Zone != zoneB || v.AttachedTo != newID {
				t.Errorf("volume = %+v, want %d GiB from %q in %s attached to %s", v, tt.wantSize, tt.wantFrom, zoneB, newID)
			}
			if c := e.svc.CallsOf("Fence"); len(c) != 0 {
				t.Errorf("fence calls on first boot: %q", c)
			}
			if c := e.cloud.CallsOf("CreateSnapshot"); len(c) != 0 {
				t.Errorf("snapshots on first boot: %q", c)
			}
			db := e.db()
			if db.Volume != m.Volume || db.Instance != newID || db.Epoch != 1 || db.BaseSnapshot != "" || db.Claim != "" {
				t.Errorf("database = %+v, want volume %s on %s at epoch 1", *db, m.Volume, newID)
			}
			if tt.seed != nil && e.cloud.Deleted(tt.seed.ID) {
				t.Errorf("seed snapshot %s deleted", tt.seed.ID)
			}
		})
	}
}

func TestFirstBootMissingSeedRollsBack(t *testing.T) {
	e := newEnv(t)
	e.cloud.AddHook(group, launchHook, handover.Hook{HeartbeatTimeout: hookTimeout, Metadata: `{"database":"tenant-42","seed_snapshot":"snap-gone"}`})
	id := e.launchNew()
	e.run(id, ledger.Aborted)
	if a, _ := e.cloud.Action(newID, launchHook); a.Result != handover.ResultAbandon {
		t.Errorf("launch action result = %q, want ABANDON", a.Result)
	}
	if n := len(e.cloud.CallsOf("CreateVolume")); n != 1 {
		t.Errorf("CreateVolume called %d times for a missing seed, want 1 (not retryable)", n)
	}
	if db := e.db(); db.Volume != "" || db.Claim != "" || db.Epoch != 0 {
		t.Errorf("database after rollback = %+v", *db)
	}
}

// TestDeadSource: a source that is not running needs no fence; its volume
// is snapshotted directly, without a pre-copy.
func TestDeadSource(t *testing.T) {
	tests := []struct {
		name  string
		state string // "": EC2 no longer knows the instance
	}{
		{"terminated", handover.InstanceTerminated},
		{"stopped", handover.InstanceStopped},
		{"gone from EC2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.addSourceAs(tt.state)
			id := e.launchNew()
			e.run(id, ledger.Committed)

			m := e.m(id)
			if m.SourceFate != handover.FateDead || m.Fenced {
				t.Errorf("source fate %q fenced %v, want dead and never fenced", m.SourceFate, m.Fenced)
			}
			if c := e.svc.Calls; len(c) != len(e.svc.CallsOf("Healthy")) {
				t.Errorf("service calls = %q, want only health checks of the new instance", c)
			}
			if c := e.cloud.CallsOf("CreateSnapshot"); !slices.Equal(c, []string{"CreateSnapshot " + oldVol}) {
				t.Errorf("snapshots = %q, want exactly one, of %s", c, oldVol)
			}
			if c := e.cloud.CallsOf("StopInstance"); len(c) != 0 {
				t.Errorf("dead source stopped: %q", c)
			}
			wantSteps := []ledger.State{ledger.Launching, ledger.Snapshotting, ledger.CreatingVolume, ledger.Attaching, ledger.AwaitingHealth, ledger.Completing, ledger.Committed}
			if got := timelineStates(m); !slices.Equal(got, wantSteps) {
				t.Errorf("timeline = %v, want %v", got, wantSteps)
			}
			if db := e.db(); db.Epoch != epoch+1 || db.Volume != m.Volume || db.BaseSnapshot != m.FinalSnapshot {
				t.Errorf("database = %+v", *db)
			}
		})
	}
}

// TestSourceDiesBeforeTheFence: a source that dies during the pre-copy is
// not fenced; its volume is snapshotted as it is.
func TestSourceDiesBeforeTheFence(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.advance(id)
	e.wantState(id, ledger.PreCopying)
	e.cloud.SetInstanceState(oldID, handover.InstanceTerminated)
	e.run(id, ledger.Committed)
	if c := e.svc.CallsOf("Fence"); len(c) != 0 {
		t.Errorf("fenced a terminated source: %q", c)
	}
	if m := e.m(id); m.SourceFate != handover.FateDead || m.Fenced {
		t.Errorf("source fate %q fenced %v, want dead and unfenced", m.SourceFate, m.Fenced)
	}
}

// TestUnreachableSourceIsStopped: a running source whose fence endpoint
// does not answer UnreachableAttempts times is stopped (the hard fence)
// before the final snapshot.
func TestUnreachableSourceIsStopped(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	e.svc.SetReachable(oldIP, false)
	id := e.launchNew()
	e.advance(id)
	e.settle() // pre-copy completes
	for i := 1; i <= e.cfg.UnreachableAttempts; i++ {
		e.poll(id)
		if i < e.cfg.UnreachableAttempts {
			e.wantState(id, ledger.Fencing)
			if got := e.m(id).Attempts; got != i {
				t.Fatalf("after %d unreachable fences attempts = %d", i, got)
			}
		}
	}
	e.wantState(id, ledger.StoppingSource)
	if n := len(e.svc.CallsOf("Fence")); n != e.cfg.UnreachableAttempts+1 {
		t.Errorf("fence calls = %d, want %d plus one last chance", n, e.cfg.UnreachableAttempts)
	}
	if c := e.cloud.CallsOf("StopInstance"); !slices.Equal(c, []string{"StopInstance " + oldID}) {
		t.Fatalf("stop calls = %q", c)
	}
	if n := len(e.cloud.CallsOf("CreateSnapshot")); n != 1 {
		t.Fatalf("final snapshot taken before the source stopped (%d snapshots)", n)
	}
	e.poll(id) // still stopping
	e.wantState(id, ledger.StoppingSource)

	e.cloud.SetInstanceState(oldID, handover.InstanceStopped)
	e.poll(id)
	e.wantState(id, ledger.Snapshotting)
	e.run(id, ledger.Committed)

	m := e.m(id)
	if m.SourceFate != handover.FateUnreachable || !m.SourceStopped {
		t.Errorf("source fate %q stopped %v, want unreachable and stopped", m.SourceFate, m.SourceStopped)
	}
	if n := len(e.cloud.CallsOf("StopInstance")); n != 1 {
		t.Errorf("StopInstance called %d times, want 1", n)
	}
	if db := e.db(); db.Epoch != epoch+1 || db.Volume != m.Volume {
		t.Errorf("database = %+v", *db)
	}
}

// TestUnreachableSourceAnswersLastChance: a source that answers the last
// fence before the stop is fenced softly and keeps serving reads.
func TestUnreachableSourceAnswersLastChance(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.advance(id)
	e.settle()
	for range e.cfg.UnreachableAttempts {
		e.svc.NextErr["Fence"] = fence.ErrUnreachable
		e.poll(id)
	}
	e.wantState(id, ledger.Snapshotting)
	if c := e.cloud.CallsOf("StopInstance"); len(c) != 0 {
		t.Fatalf("source stopped although it answered: %q", c)
	}
	if f, ep := fenced(e.svc, oldIP); !f || ep != epoch+1 {
		t.Fatalf("source gate fenced=%v epoch=%d, want fenced under %d", f, ep, epoch+1)
	}
	m := e.m(id)
	if m.SourceFate != handover.FateRunning || m.SourceStopped {
		t.Errorf("source fate %q stopped %v, want running", m.SourceFate, m.SourceStopped)
	}
	if got := timelineStates(m); !slices.Contains(got, ledger.StoppingSource) {
		t.Errorf("timeline %v skips StoppingSource", got)
	}
	e.run(id, ledger.Committed)
	if i, _ := e.cloud.Instance(oldID); i.State != handover.InstanceRunning {
		t.Errorf("source is %s, want running (serving reads)", i.State)
	}
}

// TestInstanceAlreadyHoldsVolume: an instance leaving Standby fires the
// launch hook while it holds the authoritative volume; it completes at
// once, with no snapshot and the epoch unchanged.
func TestInstanceAlreadyHoldsVolume(t *testing.T) {
	e := newEnv(t)
	e.cloud.AddInstance(handover.Instance{ID: newID, Zone: zoneB, State: handover.InstanceRunning, PrivateIP: newIP})
	e.cloud.AddVolume(handover.Volume{ID: "vol-held", Zone: zoneB, State: handover.VolumeInUse, SizeGiB: 20, AttachedTo: newID, AttachState: "attached"})
	e.putDB(&ledger.Database{ID: database, Volume: "vol-held", Zone: zoneB, Instance: newID, Group: group, Epoch: epoch})
	id := e.launchNew()
	e.advance(id)
	e.wantState(id, ledger.Completing)
	e.cloud.SetLifecycle(group, newID, handover.LifecycleInService)
	e.poll(id)
	e.wantState(id, ledger.Committed)

	m := e.m(id)
	if m.SourceFate != handover.FateSelf {
		t.Errorf("source fate = %q, want self", m.SourceFate)
	}
	for _, call := range []string{"CreateSnapshot", "CreateVolume", "AttachVolume", "DeleteVolume"} {
		if c := e.cloud.CallsOf(call); len(c) != 0 {
			t.Errorf("%s called: %q", call, c)
		}
	}
	if c := e.svc.CallsOf("Fence"); len(c) != 0 {
		t.Errorf("fenced itself: %q", c)
	}
	if db := e.db(); db.Epoch != epoch || db.Volume != "vol-held" || db.Instance != newID || db.Claim != "" {
		t.Errorf("database = %+v, want vol-held on %s at epoch %d unclaimed", *db, newID, epoch)
	}
	if a, _ := e.cloud.Action(newID, launchHook); a.Result != handover.ResultContinue {
		t.Errorf("launch action result = %q, want CONTINUE", a.Result)
	}
}
