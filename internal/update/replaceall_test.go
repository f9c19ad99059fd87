package update

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

var webHooks = []Hook{
	{Name: "handover-launch", Transition: "autoscaling:EC2_INSTANCE_LAUNCHING", HeartbeatTimeout: 10 * time.Minute, DefaultResult: "ABANDON", Metadata: `{"pool":"web"}`},
	{Name: "handover-terminate", Transition: "autoscaling:EC2_INSTANCE_TERMINATING", HeartbeatTimeout: 5 * time.Minute, DefaultResult: "CONTINUE"},
}

// replaceAllWorld is group web, created with 2 instances and scaled out to
// 4 before the update: N must be 4, not the 2 it was created with. Each
// instance holds database db-<n>.
func (e *env) replaceAllWorld() {
	e.t.Helper()
	tmpl := e.webTemplate()
	tmpl.Version = "1"
	e.cloud.addGroup(Group{
		Name: "web", Template: tmpl, Min: 2, Max: 2, Desired: 2, Zones: []string{"za", "zb"}, Subnets: "subnet-a,subnet-b",
		TargetGroups: []string{"arn:tg/web"}, HealthCheckType: "ELB", HealthCheckGrace: time.Minute, MaintenanceMin: 100, MaintenanceMax: 150,
		Tags:      []Tag{{Key: "team", Value: "db", Propagate: true}},
		Instances: []Member{{Zone: "za"}, {Zone: "zb"}},
	}, webHooks...)
	e.cloud.scale("web", 2, 6, 4)
	e.cloud.converge("web")
	for i, m := range e.cloud.group(e.t, "web").Instances {
		e.addDB("db-"+string(rune('1'+i)), m.ID, "web")
	}
}

func replaceAllReq() Request {
	return Request{Group: "web", Strategy: ReplaceAll, Version: "2", BatchSize: 1, SignalTimeout: 15 * time.Minute}
}

// webUntouched fails the test if the old group changed or was called.
func (e *env) webUntouched(before Group) {
	e.t.Helper()
	if calls := e.cloud.callsOn("web"); len(calls) > 0 {
		e.t.Errorf("the old group was changed: %v", calls)
	}
	if after := e.cloud.group(e.t, "web"); !reflect.DeepEqual(before, after) {
		e.t.Errorf("old group\n%+v\nnow\n%+v", before, after)
	}
}

// launched starts a replace-all and creates its new group, whose
// instances wait in Pending:Wait (their hooks are gated).
func (e *env) launched() (*ledger.Update, []string) {
	e.t.Helper()
	u := e.start(replaceAllReq())
	u = e.advance(u.ID)
	wantState(e.t, u, ledger.UpdateRunning, PhaseSignals)
	e.cloud.LaunchAs = "Pending:Wait"
	news := e.cloud.converge(u.NewGroup)
	return u, news
}

func TestReplaceAllSuccess(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	old := e.cloud.group(t, "web")
	oldHolders := e.holders()
	u := e.start(replaceAllReq())
	if u.OldDesired != 4 || u.OldMin != 2 || u.OldMax != 6 {
		t.Fatalf("old capacity %d %d %d, want desired 4 (the current one)", u.OldMin, u.OldMax, u.OldDesired)
	}

	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseSignals)
	if len(e.cloud.Created) != 1 {
		t.Fatalf("CreateGroup called %d times", len(e.cloud.Created))
	}
	c := e.cloud.Created[0]
	if c.Name != u.NewGroup || c.Min != 0 || c.Max != 4 || c.Desired != 4 || c.Template != (ledger.TemplateRef{ID: "lt-web", Name: "web", Version: "2"}) {
		t.Errorf("new group %s min %d max %d desired %d template %+v, want %s 0 4 4 version 2", c.Name, c.Min, c.Max, c.Desired, c.Template, u.NewGroup)
	}
	if !reflect.DeepEqual(c.Hooks, webHooks) {
		t.Errorf("hooks %+v, want %+v", c.Hooks, webHooks)
	}
	if c.Like.Name != "web" || c.Like.Subnets != "subnet-a,subnet-b" || !reflect.DeepEqual(c.Like.TargetGroups, []string{"arn:tg/web"}) || c.Like.MaintenanceMin != 100 {
		t.Errorf("new group not like the old: %+v", c.Like)
	}
	if c.Tags[TagUpdate] != u.ID || c.Tags[TagReplaces] != "web" {
		t.Errorf("tags %v", c.Tags)
	}
	if !u.SignalDeadline.Equal(t0.Add(15 * time.Minute)) {
		t.Errorf("signal deadline %v", u.SignalDeadline)
	}
	for _, id := range []string{"db-1", "db-2", "db-3", "db-4"} {
		if d := e.db(id); d.ReplaceBy != u.ID || !d.Gated {
			t.Errorf("%s marked %q gated %v, want %s gated", id, d.ReplaceBy, d.Gated, u.ID)
		}
	}
	if len(u.Replacements) != 4 {
		t.Errorf("replacements %+v", u.Replacements)
	}

	// The new group launches all four; their handovers wait at the gate.
	e.cloud.LaunchAs = "Pending:Wait"
	news := e.cloud.converge(u.NewGroup)
	if len(news) != 4 {
		t.Fatalf("launched %v", news)
	}
	migs := map[string]string{}
	for i, id := range news {
		db := "db-" + string(rune('1'+i))
		migs[db] = e.claim(db, id)
		if m, _ := e.led.GetMigration(e.ctx, migs[db]); !m.Gated || m.Update != u.ID {
			t.Fatalf("claimed migration not gated: %+v", m)
		}
	}
	for _, id := range news[:3] {
		e.cloud.signal(u.NewGroup, id, handover.SignalSuccess)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseSignals)
	if len(u.Signals) != 3 || u.GatesOpen {
		t.Fatalf("signals %v, gates %v", u.Signals, u.GatesOpen)
	}

	// A SUCCESS from an instance that is leaving does not count...
	e.cloud.signal(u.NewGroup, news[3], handover.SignalSuccess)
	e.cloud.setLifecycle(t, u.NewGroup, news[3], "Terminating")
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseSignals)
	// ...nor once it is gone (its tag is still visible).
	e.rollBack(migs["db-4"], "instance replaced")
	repl := e.cloud.converge(u.NewGroup)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseSignals)
	if u.GatesOpen {
		t.Fatal("gates open with 3 current signals")
	}
	// Its replacement signals: N = 4.
	migs["db-4"] = e.claim("db-4", repl[0])
	e.cloud.signal(u.NewGroup, repl[0], handover.SignalSuccess)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseCutover)
	if !u.GatesOpen {
		t.Fatal("gates closed after 4 signals")
	}

	// Past the point of no return.
	_, err := e.r.Abort(e.ctx, u.ID, "too late")
	if !errors.Is(err, ErrPastNoReturn) {
		t.Fatalf("Abort after the gates opened: %v, want ErrPastNoReturn", err)
	}
	if got := e.upd(u.ID); got.AbortRequested || got.State != ledger.UpdateRunning {
		t.Fatalf("abort recorded: %+v", got)
	}

	// Cutover waits for every database on a serving new instance.
	members := append(news[:3:3], repl[0])
	for i, id := range members[:3] {
		db := "db-" + string(rune('1'+i))
		e.cloud.setLifecycle(t, u.NewGroup, id, "InService")
		e.commit(db, id)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseCutover)
	e.commit("db-4", repl[0]) // committed, but not yet in service
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseCutover)
	if e.cloud.count("DeleteGroup") != 0 {
		t.Fatal("old group deleted before the cutover")
	}
	e.webUntouched(old)
	e.cloud.setLifecycle(t, u.NewGroup, repl[0], "InService")
	u = e.advance(u.ID)

	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	if e.cloud.exists("web") {
		t.Error("old group not deleted")
	}
	ng := e.cloud.group(t, u.NewGroup)
	wantCapacity(t, ng, 2, 6, 4)
	for inst, db := range e.holders() {
		if m, ok := member(ng, inst); !ok || !m.InService() {
			t.Errorf("%s on %s, not a serving member of %s (was on %s)", db, inst, u.NewGroup, oldHolders)
		}
	}
	e.noMarks()
	want := []string{"CreateGroup " + u.NewGroup + " 2 0 4 4", "SetCapacity " + u.NewGroup + " 2 6 4", "DeleteGroup web"}
	if got := e.cloud.calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	if got, want := phases(u), []Phase{PhaseLaunch, PhaseSignals, PhaseCutover, PhaseDeleteOld, PhaseCleanup, PhaseDone}; !reflect.DeepEqual(got, want) {
		t.Errorf("timeline %v, want %v", got, want)
	}
	for _, rep := range u.Replacements {
		if rep.New == "" || rep.State != "Committed" {
			t.Errorf("replacement %+v", rep)
		}
	}
}

// N is the desired capacity at Start, even while the group is still
// launching up to it.
func TestReplaceAllNIsDesiredNotMembers(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	e.cloud.scale("web", 2, 6, 5) // the fifth instance is not there yet
	u := e.start(replaceAllReq())
	e.advance(u.ID)
	if c := e.cloud.Created[0]; c.Desired != 5 || c.Max != 5 {
		t.Errorf("new group desired %d max %d, want 5", c.Desired, c.Max)
	}
}

func TestReplaceAllFailureSignal(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	old := e.cloud.group(t, "web")
	oldHolders := e.holders()
	e.cloud.DeleteLag = 1
	u, news := e.launched()
	mig := e.claim("db-1", news[0])
	e.cloud.signal(u.NewGroup, news[0], handover.SignalSuccess)
	e.cloud.signal(u.NewGroup, news[1], handover.SignalFailure)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRollingBack, PhaseRollback)
	if !strings.Contains(u.Error, "instance "+news[1]+" of "+u.NewGroup+" signalled FAILURE") {
		t.Errorf("error %q", u.Error)
	}
	e.noMarks()
	if e.cloud.count("DeleteGroup") != 0 {
		t.Fatal("new group deleted while a handover into it was in flight")
	}
	u = e.advance(u.ID) // still waiting: nothing more
	wantState(t, u, ledger.UpdateRollingBack, PhaseRollback)
	if e.cloud.count("DeleteGroup") != 0 {
		t.Fatal("new group deleted while a handover into it was in flight")
	}

	e.rollBack(mig, "update rolling back")
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRollingBack, PhaseRollback) // the delete takes a while
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateFailed, PhaseDone)
	if e.cloud.exists(u.NewGroup) {
		t.Error("new group not deleted")
	}
	e.webUntouched(old)
	if h := e.holders(); !reflect.DeepEqual(h, oldHolders) {
		t.Errorf("databases %v, want %v", h, oldHolders)
	}
	e.noMarks()
	if u.GatesOpen {
		t.Error("gates opened")
	}
}

func TestReplaceAllSignalTimeout(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	old := e.cloud.group(t, "web")
	u, news := e.launched()
	for _, id := range news[:3] {
		e.cloud.signal(u.NewGroup, id, handover.SignalSuccess)
	}
	e.clk.Advance(15 * time.Minute)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseSignals)
	e.clk.Advance(time.Second)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateFailed, PhaseDone)
	if want := "only 3 of 4 success signals from " + u.NewGroup + " within 15m0s"; u.Error != want {
		t.Errorf("error %q, want %q", u.Error, want)
	}
	if e.cloud.exists(u.NewGroup) {
		t.Error("new group not deleted")
	}
	e.webUntouched(old)
	e.noMarks()
}

func TestReplaceAllAbortBeforeGates(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	old := e.cloud.group(t, "web")
	u, news := e.launched()
	e.cloud.signal(u.NewGroup, news[0], handover.SignalSuccess)
	e.advance(u.ID)
	if _, err := e.r.Abort(e.ctx, u.ID, "wrong image"); err != nil {
		t.Fatal(err)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateAborted, PhaseDone)
	if u.Error != "wrong image" || e.cloud.exists(u.NewGroup) {
		t.Errorf("error %q, new group exists %v", u.Error, e.cloud.exists(u.NewGroup))
	}
	e.webUntouched(old)
	e.noMarks()
}

// An abort before the new group exists deletes nothing that is not there.
func TestReplaceAllAbortBeforeLaunch(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	old := e.cloud.group(t, "web")
	u := e.start(replaceAllReq())
	if _, err := e.r.Abort(e.ctx, u.ID, ""); err != nil {
		t.Fatal(err)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateAborted, PhaseDone)
	if n := e.cloud.count("CreateGroup"); n != 0 {
		t.Errorf("%d CreateGroup calls", n)
	}
	e.webUntouched(old)
}

// A cutover slower than BatchTimeout goes on (past the point of no
// return) and says so.
func TestReplaceAllSlowCutover(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	u, news := e.launched()
	for _, id := range news {
		e.cloud.signal(u.NewGroup, id, handover.SignalSuccess)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseCutover)
	e.clk.Advance(e.cfg.BatchTimeout + time.Second)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseCutover)
	if !strings.Contains(u.Error, "cutover slow: 0 of 4 databases handed over, 0 of 4 instances in service") {
		t.Errorf("error %q", u.Error)
	}
	for i, id := range news {
		e.cloud.setLifecycle(t, u.NewGroup, id, "InService")
		e.commit("db-"+string(rune('1'+i)), id)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	if u.Error != "" {
		t.Errorf("error %q after success", u.Error)
	}
}

// A group whose instances hold no database is replaced all the same.
func TestReplaceAllWithoutDatabases(t *testing.T) {
	e := newEnv(t)
	tmpl := e.webTemplate()
	tmpl.Version = "1"
	e.cloud.addGroup(Group{Name: "web", Template: tmpl, Min: 1, Max: 2, Desired: 2, Zones: []string{"za"}, Instances: []Member{{}, {}}})
	u := e.start(replaceAllReq())
	u = e.advance(u.ID)
	news := e.cloud.converge(u.NewGroup)
	for _, id := range news {
		e.cloud.signal(u.NewGroup, id, handover.SignalSuccess)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	if e.cloud.exists("web") {
		t.Error("old group not deleted")
	}
}

// A CreateGroup that failed is retried, and a repeated one (after a crash
// between the create and the save) is harmless.
func TestReplaceAllCreateRetried(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	u := e.start(replaceAllReq())
	e.cloud.NextErr["CreateGroup"] = errBoom
	if err := e.r.Advance(e.ctx, u.ID); !errors.Is(err, errBoom) {
		t.Fatalf("Advance = %v, want boom", err)
	}
	u = e.upd(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseLaunch)
	if u.Attempts != 1 {
		t.Errorf("attempts %d", u.Attempts)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseSignals)
	if n := e.cloud.count("CreateGroup"); n != 2 {
		t.Errorf("%d creates, want the failed one and its retry", n)
	}
	if g := e.cloud.group(t, u.NewGroup); g.Desired != 4 {
		t.Errorf("new group %+v", g)
	}
}
