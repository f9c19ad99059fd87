package handover_test

import (
	"testing"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// TestReleaseOnlyLaunchIsNoMigration: the launch of a group that joins a
// release channel and names no database is the release controller's: no
// migration is recorded, by the event or by reconcile, and the action is
// neither continued nor abandoned here.
func TestReleaseOnlyLaunchIsNoMigration(t *testing.T) {
	e := newEnv(t)
	const web = "web-group"
	e.cloud.AddGroup(web)
	e.cloud.AddHook(web, launchHook, handover.Hook{HeartbeatTimeout: hookTimeout, DefaultResult: handover.ResultAbandon, Metadata: `{"channel":"web"}`})
	e.cloud.AddInstance(handover.Instance{ID: newID, Zone: zoneB, State: handover.InstanceRunning, PrivateIP: newIP})
	ref := ledger.HookRef{Group: web, Hook: launchHook, Token: token, Instance: newID}
	e.cloud.StartAction(ref, handover.TransitionLaunching)
	ids, err := e.ctl.HandleEvent(e.ctx, &events.Event{ID: "ev-web", Kind: events.KindLaunchAction, Time: e.clk.Now(),
		Lifecycle: &events.LifecycleAction{Group: web, Hook: launchHook, Token: token, InstanceID: newID,
			Transition: events.TransitionLaunching, Metadata: `{"channel":"web"}`}})
	if err != nil || len(ids) != 0 {
		t.Fatalf("HandleEvent = %v, %v; want no migration and no error", ids, err)
	}
	if err := e.ctl.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if ms, _ := e.led.ListMigrations(e.ctx, ledger.MigrationQuery{}); len(ms) != 0 {
		t.Fatalf("migrations recorded for a release-only launch: %+v", ms)
	}
	if a, _ := e.cloud.Action(newID, launchHook); !a.Active() {
		t.Fatalf("the release-only launch action was completed: %+v", a)
	}
}
