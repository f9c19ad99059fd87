package handover_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// TestPlanSweep: the dry run gives the same verdicts a pass acts on, says
// why for each, and deletes nothing; the pass then deletes exactly what
// the plan gave up and records the outcome per resource.
func TestPlanSweep(t *testing.T) {
	e := newEnv(t)
	e.addSource() // vol-old and snap-base: authoritative
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
	for _, v := range []handover.Volume{
		{ID: "vol-ended", State: handover.VolumeAvailable, Tags: managedTags("tok-ended"), CreateTime: old},
		{ID: "vol-ended-attached", State: handover.VolumeInUse, AttachedTo: oldID, AttachState: "attached", Tags: managedTags("tok-ended"), CreateTime: old},
		{ID: "vol-live-extra", State: handover.VolumeAvailable, Tags: managedTags("tok-live"), CreateTime: old},
		{ID: "vol-ghost-young", State: handover.VolumeAvailable, Tags: managedTags("tok-ghost"), CreateTime: young},
		{ID: "vol-ghost-old", State: handover.VolumeAvailable, Tags: managedTags("tok-ghost"), CreateTime: old},
		{ID: "vol-untagged-old", State: handover.VolumeAvailable, Tags: managedTags(""), CreateTime: old},
	} {
		v.Zone = zoneA
		e.cloud.AddVolume(v)
	}
	for _, s := range []handover.Snapshot{
		{ID: "snap-live-pre", State: handover.SnapshotCompleted, Tags: managedTags("tok-live"), StartTime: old},
		{ID: "snap-ghost-old", State: handover.SnapshotCompleted, Tags: managedTags("tok-ghost"), StartTime: old},
		{ID: "snap-ended-pending", State: handover.SnapshotPending, Tags: managedTags("tok-ended"), StartTime: old},
	} {
		e.cloud.AddSnapshot(s)
	}
	want := map[string]struct {
		kind   string
		delete bool
		reason string
	}{
		oldVol:               {handover.SweepVolume, false, "authoritative volume of database " + database},
		oldBase:              {handover.SweepSnapshot, false, "base snapshot of database " + database},
		"vol-ended":          {handover.SweepVolume, true, "migration tok-ended ended Aborted"},
		"vol-ended-attached": {handover.SweepVolume, false, "still attached to " + oldID},
		"vol-live-extra":     {handover.SweepVolume, false, "migration tok-live is still PreCopying"},
		"vol-ghost-young":    {handover.SweepVolume, false, "migration tok-ghost is not in the ledger (yet)"},
		"vol-ghost-old":      {handover.SweepVolume, true, "migration tok-ghost is not in the ledger, and the resource is older than the sweep grace"},
		"vol-untagged-old":   {handover.SweepVolume, true, "no " + handover.TagMigration + " tag, and older than the sweep grace"},
		"snap-live-pre":      {handover.SweepSnapshot, false, "in use by migration tok-live"},
		"snap-ghost-old":     {handover.SweepSnapshot, true, "migration tok-ghost is not in the ledger"},
		"snap-ended-pending": {handover.SweepSnapshot, false, "still pending"},
	}

	plan, err := e.ctl.PlanSweep(e.ctx)
	if err != nil {
		t.Fatalf("PlanSweep: %v", err)
	}
	if len(plan) != len(want) {
		t.Errorf("plan has %d resources, want %d: %+v", len(plan), len(want), plan)
	}
	for _, it := range plan {
		w, ok := want[it.ID]
		if !ok {
			t.Errorf("plan judges %s, which is not managed", it.ID)
			continue
		}
		if it.Kind != w.kind || it.Delete != w.delete || !strings.Contains(it.Reason, w.reason) {
			t.Errorf("%s: %s delete=%v %q, want %s delete=%v with %q", it.ID, it.Kind, it.Delete, it.Reason, w.kind, w.delete, w.reason)
		}
		if it.Tags[handover.TagManaged] != "true" || it.Database != database || it.Migration != it.Tags[handover.TagMigration] {
			t.Errorf("%s: tags %v, database %q, migration %q", it.ID, it.Tags, it.Database, it.Migration)
		}
	}
	for id := range want {
		if e.cloud.Deleted(id) {
			t.Errorf("the dry run deleted %s", id)
		}
	}

	// One deletion fails: the pass records it and goes on.
	e.cloud.NextErr["DeleteSnapshot"] = errors.New("IncorrectState")
	res, err := e.ctl.Sweep(e.ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	for _, it := range res.Items {
		w := want[it.ID]
		if it.Delete != w.delete {
			t.Errorf("%s: the pass's verdict delete=%v differs from the plan's %v", it.ID, it.Delete, w.delete)
		}
		failed := it.ID == "snap-ghost-old"
		if it.Deleted != (w.delete && !failed) || e.cloud.Deleted(it.ID) != it.Deleted || (it.Err != nil) != failed {
			t.Errorf("%s: deleted=%v (cloud %v) err=%v", it.ID, it.Deleted, e.cloud.Deleted(it.ID), it.Err)
		}
	}
	if res.Kept != 7 || len(res.DeletedVolumes) != 3 || len(res.DeletedSnapshots) != 0 {
		t.Errorf("kept %d, deleted %v and %v; want 7 kept, 3 volumes", res.Kept, res.DeletedVolumes, res.DeletedSnapshots)
	}
}

// TestSweepLeaseHeld: while another holder sweeps, a pass does nothing and
// says so.
func TestSweepLeaseHeld(t *testing.T) {
	e := newEnv(t)
	if _, err := e.led.AcquireLease(e.ctx, "sweeper", "someone-else", e.clk.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	e.cloud.AddVolume(handover.Volume{ID: "vol-ghost", Zone: zoneA, State: handover.VolumeAvailable, Tags: managedTags("tok-ghost"), CreateTime: e.clk.Now().Add(-time.Hour * 24)})
	res, err := e.ctl.Sweep(e.ctx)
	if err != nil || !res.LeaseHeld || e.cloud.Deleted("vol-ghost") {
		t.Errorf("Sweep under another's lease: %+v, %v; deleted %v", res, err, e.cloud.Deleted("vol-ghost"))
	}
}
