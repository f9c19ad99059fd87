package handover_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/handover/handovertest"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

// The world every test starts from: one group holding database tenant-42.
// With addSource, instance i-old in zone a holds the authoritative volume
// vol-old under epoch 3; launch brings up a replacement.
const (
	group      = "tenant-42-db"
	launchHook = "handover-launch"
	termHook   = "handover-terminate"
	database   = "tenant-42"
	zoneA      = "us-west-2a"
	zoneB      = "us-west-2b"

	oldID   = "i-old"
	oldIP   = "10.0.0.1"
	oldVol  = "vol-old"
	oldBase = "snap-base"
	epoch   = int64(3)

	newID = "i-new"
	newIP = "10.0.0.2"
	token = "tok-1"

	hookTimeout = 30 * time.Minute
)

var start = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

// env is a controller wired to the fakes, on a fake clock.
type env struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Fake
	cloud *handovertest.Cloud
	svc   *handovertest.Service
	pacer *handovertest.Pacer
	led   *ledger.Records
	cfg   handover.Config
	ctl   *handover.Controller
}

func testConfig() handover.Config {
	cfg := handover.DefaultConfig()
	cfg.Holder = "test"
	cfg.MaxAttempts = 3
	cfg.UnreachableAttempts = 3
	cfg.RetryBase = time.Second
	cfg.RetryMax = 8 * time.Second
	cfg.PollInterval = 5 * time.Second
	return cfg
}

func newEnv(t *testing.T, tweak ...func(*handover.Config)) *env {
	t.Helper()
	cfg := testConfig()
	for _, f := range tweak {
		f(&cfg)
	}
	e := &env{
		t: t, ctx: t.Context(), clk: clock.NewFake(start),
		svc: handovertest.NewService(), pacer: handovertest.NewPacer(), led: memory.New(), cfg: cfg,
	}
	e.cloud = handovertest.NewCloud(e.clk)
	ctl, err := handover.New(cfg, handover.Deps{
		Cloud: e.cloud, Service: e.svc, Ledger: e.led, Pacer: e.pacer, Clock: e.clk,
	})
	if err != nil {
		t.Fatalf("handover.New: %v", err)
	}
	e.ctl = ctl
	e.cloud.AddGroup(group)
	e.cloud.AddHook(group, launchHook, handover.Hook{
		HeartbeatTimeout: hookTimeout, DefaultResult: handover.ResultAbandon, Metadata: `{"database":"` + database + `"}`,
	})
	e.cloud.AddHook(group, termHook, handover.Hook{HeartbeatTimeout: hookTimeout, DefaultResult: handover.ResultContinue})
	return e
}

// addSource makes i-old the running holder of vol-old under epoch 3, with
// snap-base as the database's base snapshot (both from an earlier
// migration, tok-0).
func (e *env) addSource() {
	e.t.Helper()
	e.addSourceAs(handover.InstanceRunning)
}

// addSourceAs is addSource with the source instance in state; "" means EC2
// no longer knows the instance and its volume is detached.
func (e *env) addSourceAs(state string) {
	e.t.Helper()
	tags := map[string]string{handover.TagManaged: "true", handover.TagMigration: "tok-0", handover.TagDatabase: database}
	vol := handover.Volume{
		ID: oldVol, Zone: zoneA, State: handover.VolumeAvailable, SizeGiB: 20, Tags: tags, CreateTime: start.Add(-48 * time.Hour),
	}
	if state != "" {
		e.cloud.AddInstance(handover.Instance{ID: oldID, Zone: zoneA, State: state, PrivateIP: oldIP})
		e.cloud.SetLifecycle(group, oldID, handover.LifecycleInService)
		vol.State, vol.AttachedTo, vol.AttachState = handover.VolumeInUse, oldID, "attached"
	}
	e.cloud.AddVolume(vol)
	e.cloud.AddSnapshot(handover.Snapshot{
		ID: oldBase, VolumeID: "vol-earlier", State: handover.SnapshotCompleted, SizeGiB: 20,
		Tags: tags, StartTime: start.Add(-48 * time.Hour),
	})
	e.putDB(&ledger.Database{
		ID: database, Volume: oldVol, Zone: zoneA, Instance: oldID, Group: group, Epoch: epoch, BaseSnapshot: oldBase,
	})
}

func (e *env) putDB(db *ledger.Database) {
	e.t.Helper()
	if err := e.led.SaveDatabase(e.ctx, db); err != nil {
		e.t.Fatalf("SaveDatabase: %v", err)
	}
}

// launch starts instance id in zone and delivers its launch lifecycle
// event; it returns the migration id (the token).
func (e *env) launch(id, ip, zone, tok string) string {
	e.t.Helper()
	return e.launchAt(id, ip, zone, tok, e.clk.Now())
}

// launchAt is launch with the event stamped at (when the instance entered
// Pending:Wait), for events delivered late.
func (e *env) launchAt(id, ip, zone, tok string, at time.Time) string {
	e.t.Helper()
	if _, ok := e.cloud.Instance(id); !ok {
		e.cloud.AddInstance(handover.Instance{ID: id, Zone: zone, State: handover.InstanceRunning, PrivateIP: ip})
	}
	ref := ledger.HookRef{Group: group, Hook: launchHook, Token: tok, Instance: id}
	e.cloud.StartAction(ref, handover.TransitionLaunching)
	a, _ := e.cloud.Action(id, launchHook)
	ids, err := e.ctl.HandleEvent(e.ctx, &events.Event{
		ID: "ev-" + tok, Kind: events.KindLaunchAction, Time: at,
		Lifecycle: &events.LifecycleAction{
			Group: group, Hook: launchHook, Token: tok, InstanceID: id,
			Transition: events.TransitionLaunching, Metadata: a.Metadata,
		},
	})
	if err != nil {
		e.t.Fatalf("HandleEvent(launch %s): %v", id, err)
	}
	if !slices.Equal(ids, []string{tok}) {
		e.t.Fatalf("HandleEvent(launch %s) = %v, want [%s]", id, ids, tok)
	}
	return tok
}

// launchNew is launch of the standard replacement i-new in zone b.
func (e *env) launchNew() string {
	e.t.Helper()
	return e.launch(newID, newIP, zoneB, token)
}

func (e *env) advance(id string) {
	e.t.Helper()
	if err := e.ctl.Advance(e.ctx, id); err != nil {
		e.t.Fatalf("Advance(%s): %v", id, err)
	}
}

// poll lets the poll interval pass, then advances.
func (e *env) poll(id string) {
	e.t.Helper()
	e.clk.Advance(e.cfg.PollInterval)
	e.advance(id)
}

func (e *env) m(id string) *ledger.Migration {
	e.t.Helper()
	m, err := e.led.GetMigration(e.ctx, id)
	if err != nil {
		e.t.Fatalf("GetMigration(%s): %v", id, err)
	}
	return m
}

func (e *env) db() *ledger.Database {
	e.t.Helper()
	db, err := e.led.GetDatabase(e.ctx, database)
	if err != nil {
		e.t.Fatalf("GetDatabase(%s): %v", database, err)
	}
	return db
}

// edit rewrites a stored migration, as a crash or another controller
// would have left it.
func (e *env) edit(id string, fn func(*ledger.Migration)) {
	e.t.Helper()
	m := e.m(id)
	fn(m)
	if err := e.led.SaveMigration(e.ctx, m); err != nil {
		e.t.Fatalf("SaveMigration(%s): %v", id, err)
	}
}

func (e *env) wantState(id string, want ledger.State) {
	e.t.Helper()
	if m := e.m(id); m.State != want {
		e.t.Fatalf("migration %s is %s, want %s\n%s", id, m.State, want, describe(m))
	}
}

// describe renders a migration's timeline and last error for failures.
func describe(m *ledger.Migration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  last error: %q, attempts %d, intent %q\n", m.LastError, m.Attempts, m.Intent)
	for _, s := range m.Timeline {
		fmt.Fprintf(&b, "  %-15s %s..%s %s\n", s.State, s.Start.Format("15:04:05"), s.End.Format("15:04:05"), s.Note)
	}
	return b.String()
}

// settle finishes everything the cloud has in flight: snapshots complete,
// volumes become available, attachments and detachments finish, stopping
// instances stop, and instances whose launch got CONTINUE go InService.
func (e *env) settle() {
	for _, s := range e.cloud.Snapshots() {
		if s.State == handover.SnapshotPending {
			e.cloud.CompleteSnapshot(s.ID)
		}
	}
	for _, v := range e.cloud.Volumes() {
		switch {
		case v.State == handover.VolumeCreating:
			e.cloud.MakeAvailable(v.ID)
		case v.AttachState == "attaching":
			e.cloud.FinishAttach(v.ID)
		case v.AttachState == "detaching":
			e.cloud.FinishDetach(v.ID)
		}
	}
	for _, id := range []string{oldID, newID, "i-new2"} {
		if i, ok := e.cloud.Instance(id); ok && i.State == handover.InstanceStopping {
			e.cloud.SetInstanceState(id, handover.InstanceStopped)
		}
		if a, ok := e.cloud.Action(id, launchHook); ok && a.Result == handover.ResultContinue &&
			e.cloud.Lifecycle(group, id) == handover.LifecyclePendingWait {
			e.cloud.SetLifecycle(group, id, handover.LifecycleInService)
		}
	}
}

// run polls and settles until the migration reaches want.
func (e *env) run(id string, want ledger.State) {
	e.t.Helper()
	for range 100 {
		m := e.m(id)
		if m.State == want {
			return
		}
		if m.State.Terminal() {
			break
		}
		e.poll(id)
		e.settle()
	}
	e.wantState(id, want)
}

// count returns how many of calls equal want.
func count(calls []string, want string) int {
	n := 0
	for _, c := range calls {
		if c == want {
			n++
		}
	}
	return n
}

// resourceIDs lists a migration's recorded resources of purpose.
func resourceIDs(m *ledger.Migration, purpose string) []string {
	var out []string
	for _, r := range m.Resources {
		if r.Purpose == purpose {
			out = append(out, r.ID)
		}
	}
	return out
}

func fenced(svc *handovertest.Service, addr string) (bool, int64) {
	return svc.Gate(addr).Fenced()
}

func isPoison(err error) bool {
	var p *handover.PoisonError
	return errors.As(err, &p)
}
