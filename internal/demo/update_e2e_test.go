package demo

import (
	"testing"
	"time"
)

func checkUpdate(t *testing.T, r UpdateResult) {
	t.Helper()
	t.Logf("%s: update %s %s in %d ms, %d handovers, longest write pause %d ms, reads %d ok / %d failed, left over %d volumes %d snapshots; phases %+v",
		r.Scenario, r.UpdateID, r.State, r.DurationMS, r.Handovers, r.MaxWritePauseMS, r.ReadsOK, r.ReadsFailed, r.LeakedVolumes, r.LeakedSnapshots, r.Phases)
	if !r.OK {
		t.Errorf("%s not ok: %v", r.Scenario, r.Problems)
	}
	if r.ReadsOK == 0 {
		t.Errorf("%s: no read got through", r.Scenario)
	}
}

// TestRollingUpdate: 3 instances, one database each, batch size 1; every
// database ends on a new-version instance with its data, no read fails.
func TestRollingUpdate(t *testing.T) {
	e := newBareEnv(t, Options{})
	r, err := e.RunUpdate(t.Context(), ScenarioRolling, 16, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	checkUpdate(t, r)
	_ = time.Second
}

// TestReplaceAllUpdate: 3 instances replaced by a new group that must
// collect 3 success signals; the old group is deleted.
func TestReplaceAllUpdate(t *testing.T) {
	e := newBareEnv(t, Options{})
	r, err := e.RunUpdate(t.Context(), ScenarioReplaceAll, 16, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	checkUpdate(t, r)
}
