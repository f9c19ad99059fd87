package handover_test

import (
	"context"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/handover/handovertest"
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

// TestChannelMigrationWaitsForRelease: a stateful group that joins a
// release channel: its migration, healthy, holds its CONTINUE until the
// instance's one release volume is the channel's latest and the release
// controller marked it served (a release recorded during the launch is
// switched to first); the wait does not count against the step timeout.
// A channel with no release holds nothing.
func TestChannelMigrationWaitsForRelease(t *testing.T) {
	relVol := func(id, rel string, served bool) handover.Volume {
		tags := map[string]string{handover.TagPurpose: handover.PurposeReleaseInstance, handover.TagReleaseInstance: newID, handover.TagReleaseName: rel}
		if served {
			tags[handover.TagReleaseServed] = "true"
		}
		return handover.Volume{ID: id, Zone: zoneB, State: handover.VolumeInUse, AttachedTo: newID, AttachState: "attached", AttachDevice: "/dev/sdg", Tags: tags}
	}
	for _, tt := range []struct {
		name    string
		latest  string // "" records no channel
		steps   []handover.Volume
		waitFor []string // what LastError says after each step but the last
	}{
		{name: "no release yet", latest: ""},
		{name: "switched during the launch", latest: "v2",
			steps: []handover.Volume{
				relVol("vol-r1", "v1", true), // given v1, served, then v2 recorded
				relVol("vol-r2", "v2", false),
				relVol("vol-r2", "v2", true),
			},
			waitFor: []string{"switch it to release v2", "see it serve release v2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.cloud.AddHook(group, launchHook, handover.Hook{HeartbeatTimeout: hookTimeout, DefaultResult: handover.ResultAbandon,
				Metadata: `{"database":"` + database + `","channel":"web"}`})
			e.addSource()
			if tt.latest != "" {
				if err := e.led.SaveChannel(e.ctx, &ledger.Channel{ID: "web", Latest: tt.latest, LatestSnapshot: "snap-rel"}); err != nil {
					t.Fatal(err)
				}
			}
			id := e.launchNew()
			if m := e.m(id); m.Channel != "web" {
				t.Fatalf("migration channel %q, want web from the hook's metadata", m.Channel)
			}
			for i, v := range tt.steps {
				if i == 1 { // the release controller let go of v1
					gone := relVol("vol-r1", "v1", true)
					gone.State, gone.AttachedTo, gone.AttachState = handover.VolumeDeleted, "", ""
					e.cloud.AddVolume(gone)
				}
				e.cloud.AddVolume(v)
				if i == len(tt.steps)-1 {
					break
				}
				e.run(id, ledger.AwaitingHealth)
				for range 3 {
					e.clk.Advance(e.cfg.StepTimeout / 2)
					e.advance(id)
					e.wantState(id, ledger.AwaitingHealth)
				}
				if m := e.m(id); !strings.Contains(m.LastError, tt.waitFor[i]) {
					t.Errorf("step %d: last error %q, want it to say %q", i, m.LastError, tt.waitFor[i])
				}
				if c := e.continues(); len(c) != 0 {
					t.Fatalf("step %d: CONTINUE sent before the instance served the latest release: %q", i, c)
				}
			}
			e.run(id, ledger.Committed)
			if c := e.continues(); len(c) != 1 || !strings.HasSuffix(c[0], " CONTINUE") {
				t.Errorf("lifecycle completions %q, want one CONTINUE", c)
			}
		})
	}
}

// taggedCloud is the fake cloud with group tags (handover.GroupTagger).
type taggedCloud struct {
	*handovertest.Cloud
	tags map[string]map[string]string
}

func (c taggedCloud) GroupTags(_ context.Context, group string) (map[string]string, error) {
	return c.tags[group], nil
}

// TestChannelByGroupTag: a group tagged handover:channel joins the
// channel: with no database in its hook's metadata its launches are the
// release controller's (no migration); with one, the migration carries
// the channel (and waits for the release); the metadata's channel wins.
func TestChannelByGroupTag(t *testing.T) {
	for _, tt := range []struct {
		name, metadata string
		wantMigration  bool
		wantChannel    string
	}{
		{name: "release-only by tag", metadata: "", wantMigration: false},
		{name: "stateful by tag", metadata: `{"database":"` + database + `"}`, wantMigration: true, wantChannel: "web"},
		{name: "metadata wins", metadata: `{"database":"` + database + `","channel":"api"}`, wantMigration: true, wantChannel: "api"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctl, err := handover.New(e.cfg, handover.Deps{Cloud: taggedCloud{e.cloud, map[string]map[string]string{group: {handover.TagGroupChannel: "web"}}},
				Service: e.svc, Ledger: e.led, Pacer: e.pacer, Clock: e.clk})
			if err != nil {
				t.Fatal(err)
			}
			e.ctl = ctl
			e.cloud.AddHook(group, launchHook, handover.Hook{HeartbeatTimeout: hookTimeout, DefaultResult: handover.ResultAbandon, Metadata: tt.metadata})
			e.addSource()
			e.cloud.AddInstance(handover.Instance{ID: newID, Zone: zoneB, State: handover.InstanceRunning, PrivateIP: newIP})
			ref := ledger.HookRef{Group: group, Hook: launchHook, Token: token, Instance: newID}
			e.cloud.StartAction(ref, handover.TransitionLaunching)
			ids, err := e.ctl.HandleEvent(e.ctx, &events.Event{ID: "ev-tag", Kind: events.KindLaunchAction, Time: e.clk.Now(),
				Lifecycle: &events.LifecycleAction{Group: group, Hook: launchHook, Token: token, InstanceID: newID,
					Transition: events.TransitionLaunching, Metadata: tt.metadata}})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.ctl.Reconcile(e.ctx); err != nil {
				t.Fatal(err)
			}
			ms, _ := e.led.ListMigrations(e.ctx, ledger.MigrationQuery{})
			if !tt.wantMigration {
				if len(ids) != 0 || len(ms) != 0 {
					t.Fatalf("a release-only launch by tag got migrations %v %+v", ids, ms)
				}
				if a, _ := e.cloud.Action(newID, launchHook); !a.Active() {
					t.Fatalf("the release-only launch action was completed: %+v", a)
				}
				return
			}
			if len(ms) != 1 || ms[0].Channel != tt.wantChannel {
				t.Fatalf("migrations %+v, want one with channel %s", ms, tt.wantChannel)
			}
		})
	}
}
