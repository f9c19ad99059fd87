package handover_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

func managedTags(migration string) map[string]string {
	t := map[string]string{handover.TagManaged: "true", handover.TagDatabase: database}
	if migration != "" {
		t[handover.TagMigration] = migration
	}
	return t
}

// TestSweep: the sweeper deletes what nobody owns and keeps everything a
// database, a running migration or a possibly-still-being-recorded one
// needs.
func TestSweep(t *testing.T) {
	e := newEnv(t)
	e.addSource() // vol-old and snap-base: authoritative, tagged tok-0 (unknown to the ledger)
	now := e.clk.Now()
	old, young := now.Add(-2*time.Hour), now.Add(-5*time.Minute)
	for _, m := range []*ledger.Migration{
		{ID: "tok-ended", Database: database, State: ledger.Aborted},
		{ID: "tok-live", Database: database, State: ledger.PreCopying, PreCopySnapshot: "snap-live-pre"},
	} {
		m.CreatedAt, m.UpdatedAt = old, old
		if err := e.led.CreateMigration(e.ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	volumes := []struct {
		v          handover.Volume
		wantDelete bool
	}{
		{handover.Volume{ID: "vol-ended", State: handover.VolumeAvailable, Tags: managedTags("tok-ended"), CreateTime: old}, true},
		{handover.Volume{ID: "vol-ended-error", State: handover.VolumeError, Tags: managedTags("tok-ended"), CreateTime: old}, true},
		{handover.Volume{ID: "vol-ended-attached", State: handover.VolumeInUse, AttachedTo: oldID, AttachState: "attached", Tags: managedTags("tok-ended"), CreateTime: old}, false},
		{handover.Volume{ID: "vol-live-extra", State: handover.VolumeAvailable, Tags: managedTags("tok-live"), CreateTime: old}, false},
		{handover.Volume{ID: "vol-ghost-young", State: handover.VolumeAvailable, Tags: managedTags("tok-ghost"), CreateTime: young}, false},
		{handover.Volume{ID: "vol-ghost-old", State: handover.VolumeAvailable, Tags: managedTags("tok-ghost"), CreateTime: old}, true},
		{handover.Volume{ID: "vol-no-migration-young", State: handover.VolumeAvailable, Tags: managedTags(""), CreateTime: young}, false},
		{handover.Volume{ID: "vol-unmanaged", State: handover.VolumeAvailable, CreateTime: old}, false},
	}
	snapshots := []struct {
		s          handover.Snapshot
		wantDelete bool
	}{
		{handover.Snapshot{ID: "snap-ended", State: handover.SnapshotCompleted, Tags: managedTags("tok-ended"), StartTime: old}, true},
		{handover.Snapshot{ID: "snap-ended-pending", State: handover.SnapshotPending, Tags: managedTags("tok-ended"), StartTime: old}, false},
		{handover.Snapshot{ID: "snap-live-pre", State: handover.SnapshotCompleted, Tags: managedTags("tok-live"), StartTime: old}, false},
		{handover.Snapshot{ID: "snap-ghost-young", State: handover.SnapshotCompleted, Tags: managedTags("tok-ghost"), StartTime: young}, false},
		{handover.Snapshot{ID: "snap-ghost-old", State: handover.SnapshotError, Tags: managedTags("tok-ghost"), StartTime: old}, true},
	}
	for _, v := range volumes {
		v.v.Zone = zoneA
		e.cloud.AddVolume(v.v)
	}
	for _, s := range snapshots {
		e.cloud.AddSnapshot(s.s)
	}

	res, err := e.ctl.Sweep(e.ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}

	var wantVols, wantSnaps []string
	for _, v := range volumes {
		t.Run(v.v.ID, func(t *testing.T) {
			if got := e.cloud.Deleted(v.v.ID); got != v.wantDelete {
				t.Errorf("deleted = %v, want %v", got, v.wantDelete)
			}
		})
		if v.wantDelete {
			wantVols = append(wantVols, v.v.ID)
		}
	}
	for _, s := range snapshots {
		t.Run(s.s.ID, func(t *testing.T) {
			if got := e.cloud.Deleted(s.s.ID); got != s.wantDelete {
				t.Errorf("deleted = %v, want %v", got, s.wantDelete)
			}
		})
		if s.wantDelete {
			wantSnaps = append(wantSnaps, s.s.ID)
		}
	}
	for _, id := range []string{oldVol, oldBase} {
		if e.cloud.Deleted(id) {
			t.Errorf("authoritative %s deleted", id)
		}
	}
	slices.Sort(wantVols)
	slices.Sort(wantSnaps)
	if got := slices.Sorted(slices.Values(res.DeletedVolumes)); !slices.Equal(got, wantVols) {
		t.Errorf("result volumes = %v, want %v", got, wantVols)
	}
	if got := slices.Sorted(slices.Values(res.DeletedSnapshots)); !slices.Equal(got, wantSnaps) {
		t.Errorf("result snapshots = %v, want %v", got, wantSnaps)
	}
	// Managed: 7 volumes + vol-old, 5 snapshots + snap-base.
	if want := 8 + 6 - len(wantVols) - len(wantSnaps); res.Kept != want {
		t.Errorf("kept = %d, want %d", res.Kept, want)
	}

	// Past the grace period the unknown migration's leftovers go too.
	e.clk.Advance(e.cfg.SweepGrace)
	if _, err := e.ctl.Sweep(e.ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"vol-ghost-young", "snap-ghost-young", "vol-no-migration-young"} {
		if !e.cloud.Deleted(id) {
			t.Errorf("%s kept past the sweep grace", id)
		}
	}
	for _, id := range []string{oldVol, oldBase, "vol-live-extra", "snap-live-pre", "vol-ended-attached"} {
		if e.cloud.Deleted(id) {
			t.Errorf("%s deleted by the second sweep", id)
		}
	}
}

// listHook runs fn once, just before the next ListMigrations, so a test can
// slip a commit between two reads of a sweep.
type listHook struct {
	*ledger.Records
	fn func()
}

func (l *listHook) ListMigrations(ctx context.Context, q ledger.MigrationQuery) ([]*ledger.Migration, error) {
	if f := l.fn; f != nil {
		l.fn = nil
		f()
	}
	return l.Records.ListMigrations(ctx, q)
}

// TestSweepRacingCommit: a migration commits while another controller
// sweeps. Here the new instance died right after CONTINUE, so its volume
// is detached when the commit makes it authoritative (the heal path hands
// it on later). The sweep must not delete the volume or the base snapshot
// the commit just made authoritative.
func TestSweepRacingCommit(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.run(id, ledger.Unfencing) // CONTINUE sent
	m := e.m(id)
	e.cloud.SetInstanceState(newID, handover.InstanceTerminated)
	e.cloud.SetLifecycle(group, newID, "Terminated")
	e.cloud.FinishDetach(m.Volume)

	hooked := &listHook{Records: e.led, fn: func() { e.poll(id) }}
	sweeper, err := handover.New(e.cfg, handover.Deps{Cloud: e.cloud, Service: e.svc, Ledger: hooked, Pacer: e.pacer, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sweeper.Sweep(e.ctx); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	e.wantState(id, ledger.Committed)
	db := e.db()
	if db.Volume != m.Volume || db.BaseSnapshot != m.FinalSnapshot {
		t.Fatalf("database = %+v", *db)
	}
	if e.cloud.Deleted(db.Volume) {
		t.Errorf("sweep deleted authoritative volume %s", db.Volume)
	}
	if e.cloud.Deleted(db.BaseSnapshot) {
		t.Errorf("sweep deleted base snapshot %s", db.BaseSnapshot)
	}
}
