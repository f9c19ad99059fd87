package handover_test

import (
	"github.com/handover-dev/handover/internal/events"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// The launch event of internal/events/testdata: instance i-0a1b2c3d4e5f60718
// of group tenant-42-db, database tenant-42.
const (
	fixtureToken    = "b6c1e0f4-7d2a-4f8e-9a1b-3c5d7e9f0a12"
	fixtureInstance = "i-0a1b2c3d4e5f60718"
)

func readFixture(t *testing.T, parts ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"..", "events", "testdata"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (e *env) migrations() []*ledger.Migration {
	e.t.Helper()
	ms, err := e.led.ListMigrations(e.ctx, ledger.MigrationQuery{})
	if err != nil {
		e.t.Fatal(err)
	}
	return ms
}

func TestHandleMessageLaunchEvent(t *testing.T) {
	for _, body := range []struct{ name, file string }{
		{"raw", "events/launch-lifecycle-action.json"},
		{"double-encoded", "sqs/double-encoded.txt"},
	} {
		t.Run(body.name, func(t *testing.T) {
			e := newEnv(t)
			msg := readFixture(t, strings.Split(body.file, "/")...)
			ids, err := e.ctl.HandleMessage(e.ctx, msg)
			if err != nil || !slices.Equal(ids, []string{fixtureToken}) {
				t.Fatalf("HandleMessage = %v, %v; want [%s]", ids, err, fixtureToken)
			}
			m := e.m(fixtureToken)
			if m.State != ledger.Launching || m.Instance != fixtureInstance || m.Group != group ||
				m.Hook != launchHook || m.Database != database || m.Cause != "event" {
				t.Errorf("migration = %+v", m)
			}

			// Redelivered: a duplicate, no second migration, nothing to do.
			ids, err = e.ctl.HandleMessage(e.ctx, msg)
			if err != nil || len(ids) != 0 {
				t.Errorf("redelivered HandleMessage = %v, %v; want nothing to do", ids, err)
			}
			if ms := e.migrations(); len(ms) != 1 {
				t.Errorf("%d migrations after a redelivery, want 1", len(ms))
			}
		})
	}
}

func TestHandleMessageRejectsAndIgnores(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantPoison bool
	}{
		{name: "not JSON", body: `{"version":"0","id":`, wantPoison: true},
		{name: "empty body", body: "  ", wantPoison: true},
		{name: "launch without token", wantPoison: true,
			body: `{"version":"0","id":"e1","detail-type":"EC2 Instance-launch Lifecycle Action","source":"aws.autoscaling","account":"1","time":"2025-03-14T09:26:53Z","region":"us-west-2","resources":[],"detail":{"AutoScalingGroupName":"g","LifecycleHookName":"h","EC2InstanceId":"i-1","LifecycleTransition":"autoscaling:EC2_INSTANCE_LAUNCHING"}}`},
		{name: "unknown detail-type", body: "instance-refresh-started.json"},
		{name: "known detail-type from another source", body: `{"version":"0","id":"e2","detail-type":"EC2 Instance-launch Lifecycle Action","source":"my.app","account":"1","time":"2025-03-14T09:26:53Z","region":"us-west-2","resources":[],"detail":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			body := tt.body
			if strings.HasSuffix(body, ".json") {
				body = readFixture(t, "events", body)
			}
			ids, err := e.ctl.HandleMessage(e.ctx, body)
			if tt.wantPoison {
				if !isPoison(err) {
					t.Fatalf("HandleMessage = %v, %v; want a *handover.PoisonError", ids, err)
				}
			} else if err != nil || len(ids) != 0 {
				t.Fatalf("HandleMessage = %v, %v; want it ignored (nil error: delete the message)", ids, err)
			}
			if ms := e.migrations(); len(ms) != 0 {
				t.Errorf("%d migrations created", len(ms))
			}
		})
	}
}

// TestHandleMessageWithoutMetadataAbandons: a launch hook without a
// database in its metadata can never be handed over; the message is
// consumed and the launch abandoned, with the reason in the ledger.
func TestHandleMessageWithoutMetadataAbandons(t *testing.T) {
	e := newEnv(t)
	const tok, inst = "71c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e", "i-0fedcba9876543210"
	e.cloud.AddGroup("orders-db")
	e.cloud.StartAction(ledger.HookRef{Group: "orders-db", Hook: launchHook, Token: tok, Instance: inst}, handover.TransitionLaunching)
	ids, err := e.ctl.HandleMessage(e.ctx, readFixture(t, "events", "launch-lifecycle-action-no-metadata.json"))
	if err != nil || !slices.Equal(ids, []string{tok}) {
		t.Fatalf("HandleMessage = %v, %v", ids, err)
	}
	e.wantState(tok, ledger.RollingBack)
	e.advance(tok)
	e.wantState(tok, ledger.Aborted)
	if m := e.m(tok); !strings.Contains(m.LastError, "NotificationMetadata is empty") {
		t.Errorf("last error = %q, want it to say the metadata is empty", m.LastError)
	}
	if a, _ := e.cloud.Action(inst, launchHook); a.Result != handover.ResultAbandon {
		t.Errorf("launch action result = %q, want ABANDON", a.Result)
	}
}

// TestOtherHooksAreLeftAlone: with a HookPrefix, lifecycle actions of hooks
// someone else put on the same group are neither handled from events nor
// adopted by reconcile, while handover's own still are.
func TestOtherHooksAreLeftAlone(t *testing.T) {
	e := newEnv(t, func(c *handover.Config) { c.HookPrefix = "handover" })
	e.addSource()
	e.cloud.AddHook(group, "warm-cache", handover.Hook{HeartbeatTimeout: hookTimeout, DefaultResult: handover.ResultContinue, Metadata: `{"database":"` + database + `"}`})
	e.cloud.AddInstance(handover.Instance{ID: newID, Zone: zoneB, State: handover.InstanceRunning, PrivateIP: newIP})
	other := ledger.HookRef{Group: group, Hook: "warm-cache", Token: "tok-other", Instance: newID}
	e.cloud.StartAction(other, handover.TransitionLaunching)
	ids, err := e.ctl.HandleEvent(e.ctx, &events.Event{ID: "ev-other", Kind: events.KindLaunchAction, Time: e.clk.Now(),
		Lifecycle: &events.LifecycleAction{Group: group, Hook: "warm-cache", Token: "tok-other", InstanceID: newID,
			Transition: events.TransitionLaunching, Metadata: `{"database":"` + database + `"}`}})
	if err != nil || len(ids) != 0 {
		t.Fatalf("event of another hook: ids %v, err %v; want it ignored", ids, err)
	}
	if err := e.ctl.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if ms := e.migrations(); len(ms) != 0 {
		t.Fatalf("reconcile adopted another hook's action: %s", describe(ms[0]))
	}
	// handover's own hook on the same instance is still handled.
	tok := e.launch(newID, newIP, zoneB, token)
	e.run(tok, ledger.Committed)
	if a, _ := e.cloud.Action(newID, "warm-cache"); !a.Active() {
		t.Errorf("the other hook's action was completed by handover: %+v", a)
	}
}
