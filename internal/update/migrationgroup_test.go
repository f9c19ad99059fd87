package update

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

const mg = "web-migrate"

// migrationWorld adds the migration group: one instance on version 1 of
// the main group's template, whose SUCCESS tag is left from the last
// update. It returns that instance.
func (e *env) migrationWorld() string {
	e.t.Helper()
	tmpl := e.cloud.group(e.t, "web").Template
	e.cloud.addGroup(Group{Name: mg, Template: tmpl, Min: 0, Max: 1, Desired: 1, Zones: []string{"za"}, Instances: []Member{{Zone: "za"}}})
	old := e.cloud.group(e.t, mg).Instances[0].ID
	e.cloud.signal(mg, old, handover.SignalSuccess)
	return old
}

func migrationReq(strategy string) Request {
	q := Request{Group: "web", Strategy: strategy, Version: "2", BatchSize: 1, MigrationGroup: mg, MigrationTimeout: 10 * time.Minute}
	if strategy == ReplaceAll {
		q.SignalTimeout = 15 * time.Minute
	}
	return q
}

func TestMigrationGroupRolling(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	old := e.migrationWorld()
	web := e.cloud.group(t, "web")
	u := e.start(migrationReq(Rolling))
	wantState(t, u, ledger.UpdateRunning, PhaseMigrationGroup)

	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseMigrationGroup)
	if !reflect.DeepEqual(u.MigrationOld, []string{old}) || u.MigrationTemplate.Version != "2" || u.MigrationOldDesired != 1 || u.MigrationOldMax != 1 {
		t.Errorf("migration group record: old %v template %+v desired %d max %d", u.MigrationOld, u.MigrationTemplate, u.MigrationOldDesired, u.MigrationOldMax)
	}
	if !u.SignalDeadline.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("deadline %v", u.SignalDeadline)
	}
	if got, want := e.cloud.callsOn(mg), []string{"SetTemplate " + mg + " 2", "SetCapacity " + mg + " 0 2 2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("migration group calls %v, want %v", got, want)
	}
	if u.MigrationInstance != "" {
		t.Fatalf("the stale SUCCESS of %s counted", old)
	}

	// The new instance runs the migrations; the stale tag still does not
	// count, and the main group waits.
	news := e.cloud.converge(mg)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseMigrationGroup)
	if calls := e.cloud.callsOn("web"); len(calls) > 0 {
		t.Fatalf("main group changed before the migrations ran: %v", calls)
	}
	if !reflect.DeepEqual(e.cloud.group(t, "web"), web) {
		t.Fatal("main group changed before the migrations ran")
	}
	e.cloud.signal(mg, news[0], handover.SignalSuccess)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseBatch)
	if u.MigrationInstance != news[0] {
		t.Errorf("migration instance %q, want %s", u.MigrationInstance, news[0])
	}
	if m, _ := member(e.cloud.group(t, mg), old); m.Lifecycle != "Terminating" {
		t.Errorf("old migration instance %s is %s", old, m.Lifecycle)
	}
	if n := e.cloud.count("SetCapacity", "web"); n != 1 {
		t.Errorf("first batch not started with the migrations done: %d capacity changes", n)
	}

	u = e.runToEnd(u.ID, map[string]string{"web": "2", mg: "2"})
	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	g := e.cloud.group(t, mg)
	if g.Desired != 0 || g.Min != 0 {
		t.Errorf("migration group min %d desired %d, want scaled to 0", g.Min, g.Desired)
	}
	if g.Max != 1 {
		t.Logf("note: the migration group's max is left at %d (was 1)", g.Max)
	}
	if got := phases(u); got[0] != PhaseMigrationGroup || got[1] != PhaseBatch || got[len(got)-2] != PhaseCleanup {
		t.Errorf("timeline %v", got)
	}
	e.noMarks()
}

func TestMigrationGroupReplaceAll(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	e.migrationWorld()
	u := e.start(migrationReq(ReplaceAll))
	e.advance(u.ID)
	news := e.cloud.converge(mg)
	e.cloud.signal(mg, news[0], handover.SignalSuccess)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseSignals)
	for _, id := range e.cloud.converge(u.NewGroup) {
		e.cloud.signal(u.NewGroup, id, handover.SignalSuccess)
	}
	e.autoCore(u.NewGroup, "2")
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	if g := e.cloud.group(t, mg); g.Desired != 0 {
		t.Errorf("migration group desired %d", g.Desired)
	}
	if got := phases(u); got[0] != PhaseMigrationGroup || got[1] != PhaseLaunch {
		t.Errorf("timeline %v", got)
	}
}

// A migration group scaled to 0 by the last update: its instance is gone
// but EC2 still shows it, SUCCESS tag and all. Or it is still terminating.
// Neither signal is from the new version.
func TestMigrationGroupIgnoresStaleSignals(t *testing.T) {
	tests := []struct {
		name      string
		lifecycle string // of the old instance; "" = gone
	}{
		{"instance gone, tag still visible", ""},
		{"instance terminating", "Terminating"},
		{"instance in service", "InService"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.rollingWorld(3)
			old := e.migrationWorld()
			switch tc.lifecycle {
			case "":
				e.cloud.drop(mg, old)
				e.cloud.scale(mg, 0, 1, 0)
			case "Terminating":
				e.cloud.setLifecycle(t, mg, old, "Terminating")
				e.cloud.scale(mg, 0, 1, 0)
			}
			u := e.start(migrationReq(Rolling))
			u = e.advance(u.ID)
			if u.Phase != PhaseMigrationGroup.String() || u.MigrationInstance != "" {
				t.Fatalf("regression: stepMigrationGroup took the stale SUCCESS of %s (not a new member) as the migrations' success: phase %s, migration instance %q", old, u.Phase, u.MigrationInstance)
			}
			news := e.cloud.converge(mg)
			if len(news) != 1 {
				t.Fatalf("launched %v", news)
			}
			e.cloud.signal(mg, news[0], handover.SignalSuccess)
			u = e.advance(u.ID)
			wantState(t, u, ledger.UpdateRunning, PhaseBatch)
			if u.MigrationInstance != news[0] {
				t.Errorf("migration instance %q, want %s", u.MigrationInstance, news[0])
			}
		})
	}
}

// A FAILURE rolls back before the main group is touched: the main group is
// as it was, the migration group back on its version and capacity.
func TestMigrationGroupFailure(t *testing.T) {
	for _, strategy := range []string{Rolling, ReplaceAll} {
		t.Run(strategy, func(t *testing.T) {
			e := newEnv(t)
			if strategy == Rolling {
				e.rollingWorld(3)
			} else {
				e.replaceAllWorld()
			}
			old := e.migrationWorld()
			web := e.cloud.group(t, "web")
			u := e.start(migrationReq(strategy))
			e.advance(u.ID)
			news := e.cloud.converge(mg)
			e.cloud.signal(mg, news[0], handover.SignalFailure)
			u = e.advance(u.ID)
			wantState(t, u, ledger.UpdateFailed, PhaseDone)
			if !strings.Contains(u.Error, "migration group "+mg+": instance "+news[0]+" signalled FAILURE") {
				t.Errorf("error %q", u.Error)
			}
			if got := e.cloud.group(t, "web"); !reflect.DeepEqual(got, web) {
				t.Errorf("main group changed:\n%+v\nwas\n%+v", got, web)
			}
			for _, c := range e.cloud.callsOn("web") {
				if !strings.HasPrefix(c, "SetTemplate web 1") && !strings.HasPrefix(c, "SetCapacity web 1 3 3") {
					t.Errorf("main group call %q", c)
				}
			}
			if n := e.cloud.count("CreateGroup") + e.cloud.count("Terminate", "web"); n != 0 {
				t.Errorf("%d creates or terminates on the main side", n)
			}
			g := e.cloud.group(t, mg)
			wantCapacity(t, g, 0, 1, 1)
			if g.Template.Version != "1" {
				t.Errorf("migration group template %+v", g.Template)
			}
			if m, _ := member(g, news[0]); m.Lifecycle != "Terminating" {
				t.Errorf("new migration instance %s", m.Lifecycle)
			}
			if m, _ := member(g, old); !m.InService() {
				t.Errorf("old migration instance %s", m.Lifecycle)
			}
			e.noMarks()
		})
	}
}

// Rolling back a migration group's failure must leave the main group's
// template reference as it was, $Latest included: the update never set it.
func TestMigrationGroupFailureKeepsMainTemplate(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.cloud.mu.Lock()
	e.cloud.groups["web"].Template.Version = "$Latest"
	e.cloud.mu.Unlock()
	e.migrationWorld()
	u := e.start(migrationReq(Rolling))
	e.advance(u.ID)
	news := e.cloud.converge(mg)
	e.cloud.signal(mg, news[0], handover.SignalFailure)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateFailed, PhaseDone)
	if g := e.cloud.group(t, "web"); g.Template.Version != "$Latest" {
		t.Fatalf("regression: the rollback of a migration-group failure pinned the untouched main group from $Latest to version %s (stepRollback calls SetTemplate(u.Group, u.OldTemplate) unconditionally): calls %v", g.Template.Version, e.cloud.callsOn("web"))
	}
}

func TestMigrationGroupTimeout(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.migrationWorld()
	u := e.start(migrationReq(Rolling))
	e.advance(u.ID)
	e.cloud.converge(mg)
	e.clk.Advance(10 * time.Minute)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseMigrationGroup)
	e.clk.Advance(time.Second)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateFailed, PhaseDone)
	if want := "migration group " + mg + ": no success signal within 10m0s"; u.Error != want {
		t.Errorf("error %q, want %q", u.Error, want)
	}
	wantCapacity(t, e.cloud.group(t, mg), 0, 1, 1)
}

func TestMigrationGroupAbort(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.migrationWorld()
	u := e.start(migrationReq(Rolling))
	e.advance(u.ID)
	e.cloud.converge(mg)
	if _, err := e.r.Abort(e.ctx, u.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateAborted, PhaseDone)
	g := e.cloud.group(t, mg)
	wantCapacity(t, g, 0, 1, 1)
	if g.Template.Version != "1" {
		t.Errorf("migration group template %+v", g.Template)
	}
}

// A migration group with its own launch template rolls out that
// template's latest version.
func TestMigrationGroupOwnTemplate(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	tmpl := e.cloud.addTemplate("lt-mig", "migrate", 1, 3)
	tmpl.Version = "$Default"
	e.cloud.addGroup(Group{Name: mg, Template: tmpl, Max: 1, Zones: []string{"za"}})
	u := e.start(migrationReq(Rolling))
	u = e.advance(u.ID)
	if u.MigrationTemplate != (ledger.TemplateRef{ID: "lt-mig", Name: "migrate", Version: "3"}) || u.MigrationOld != nil {
		t.Errorf("migration template %+v, old %v", u.MigrationTemplate, u.MigrationOld)
	}
	if got, want := e.cloud.callsOn(mg), []string{"SetTemplate " + mg + " 3", "SetCapacity " + mg + " 0 1 1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	news := e.cloud.converge(mg)
	e.cloud.signal(mg, news[0], handover.SignalSuccess)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseBatch)
	if n := e.cloud.count("Terminate", mg); n != 0 {
		t.Errorf("%d terminates in an empty migration group", n)
	}
	// A failure later restores the migration group's own template.
	if _, err := e.r.Abort(e.ctx, u.ID, ""); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		e.cloud.converge("web")
		e.autoCore("web", "1")
		if u = e.advance(u.ID); u.State.Terminal() {
			break
		}
	}
	wantState(t, u, ledger.UpdateAborted, PhaseDone)
	g := e.cloud.group(t, mg)
	if g.Template != tmpl || g.Desired != 0 {
		t.Errorf("migration group template %+v desired %d, want %+v and 0", g.Template, g.Desired, tmpl)
	}
}
