package update

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// TestRollingSuccess walks a rolling update of three instances, one at a
// time, through every wait: launch before terminate, the handover, the
// bake and the pause.
func TestRollingSuccess(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3) // i-0001 db-1, i-0002 db-2, i-0003 db-3; min 1 max 3
	e.guardTerminate("web")
	req := validRolling()
	req.Bake, req.Pause = 5*time.Minute, 10*time.Minute
	u := e.start(req)

	for b, old := range []string{"i-0001", "i-0002", "i-0003"} {
		db := fmt.Sprintf("db-%d", b+1)
		u = e.advance(u.ID)
		wantState(t, u, ledger.UpdateRunning, PhaseBatch)
		if u.Batch != b {
			t.Fatalf("batch %d, want %d", u.Batch, b)
		}
		g := e.cloud.group(t, "web")
		wantCapacity(t, g, 1, 4, 4)
		if g.Template.Version != "2" {
			t.Fatalf("group template version %s, want 2", g.Template.Version)
		}
		if d := e.db(db); d.ReplaceBy != u.ID || d.Gated {
			t.Fatalf("batch %d: %s marked %q gated %v", b+1, db, d.ReplaceBy, d.Gated)
		}
		for _, other := range []string{"db-1", "db-2", "db-3"} {
			if d := e.db(other); other != db && d.ReplaceBy != "" {
				t.Fatalf("batch %d: %s marked too", b+1, other)
			}
		}
		terminated := e.cloud.count("Terminate")
		if terminated != b {
			t.Fatalf("batch %d: %d terminates before the handover", b+1, terminated)
		}

		// The group launches the new instance; the database has not moved.
		e.cloud.LaunchAs = "Pending:Wait"
		news := e.cloud.converge("web")
		if len(news) != 1 {
			t.Fatalf("launched %v", news)
		}
		nu := news[0]
		u = e.advance(u.ID)
		// The handover is under way.
		mig := e.claim(db, nu)
		u = e.advance(u.ID)
		if rep := u.Replacements[b]; rep.Old != old || rep.Database != db || rep.Migration != mig || rep.New != nu || rep.State != "AwaitingHealth" {
			t.Errorf("replacement while handing over %+v", rep)
		}
		// Committed, but the new instance does not serve yet.
		e.commit(db, nu)
		u = e.advance(u.ID)
		if n := e.cloud.count("Terminate"); n != terminated {
			t.Fatalf("batch %d: old instance terminated before the new one served", b+1)
		}
		wantState(t, u, ledger.UpdateRunning, PhaseBatch)
		// It serves: the old instance goes, and the capacity with it.
		e.cloud.setLifecycle(t, "web", nu, "InService")
		u = e.advance(u.ID)
		wantState(t, u, ledger.UpdateRunning, PhaseBake)
		if got := e.cloud.calls(); got[len(got)-1] != "Terminate web "+old {
			t.Fatalf("last call %q, want the terminate of %s", got[len(got)-1], old)
		}
		wantCapacity(t, e.cloud.group(t, "web"), 1, 4, 3)
		if rep := u.Replacements[b]; rep.New != nu || rep.State != "Committed" || !rep.Terminated || rep.Done.IsZero() {
			t.Errorf("replacement after the batch %+v", rep)
		}

		// Bake holds for its time.
		e.clk.Advance(5*time.Minute - time.Second)
		u = e.advance(u.ID)
		wantState(t, u, ledger.UpdateRunning, PhaseBake)
		e.clk.Advance(time.Second)
		u = e.advance(u.ID)
		if b == 2 {
			break
		}
		// Pause holds for its time, then the next batch starts.
		wantState(t, u, ledger.UpdateRunning, PhasePause)
		e.clk.Advance(10*time.Minute - time.Second)
		u = e.advance(u.ID)
		wantState(t, u, ledger.UpdateRunning, PhasePause)
		if n := e.cloud.count("SetCapacity"); n != b+1 {
			t.Fatalf("capacity raised during the pause")
		}
		e.clk.Advance(time.Second)
	}
	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	if u.Error != "" || u.EndedAt.IsZero() {
		t.Errorf("ended with error %q at %v", u.Error, u.EndedAt)
	}
	g := e.cloud.group(t, "web")
	wantCapacity(t, g, 1, 3, 3)
	if g.Template.Version != "2" {
		t.Errorf("template version %s", g.Template.Version)
	}
	e.noMarks()
	for inst, db := range e.holders() {
		m, ok := member(g, inst)
		if !ok || !m.InService() || m.Version != "2" {
			t.Errorf("%s is on %s: %+v", db, inst, m)
		}
	}
	wantCalls := []string{
		"SetTemplate web 2",
		"SetCapacity web 1 4 4", "Terminate web i-0001",
		"SetCapacity web 1 4 4", "Terminate web i-0002",
		"SetCapacity web 1 4 4", "Terminate web i-0003",
		"SetCapacity web 1 3 3",
	}
	if got := e.cloud.calls(); !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("calls\n%v\nwant\n%v", got, wantCalls)
	}
	wantPhases := []Phase{PhaseBatch, PhaseBake, PhasePause, PhaseBatch, PhaseBake, PhasePause, PhaseBatch, PhaseBake, PhaseBatch, PhaseCleanup, PhaseDone}
	if got := phases(u); !samePhases(got, wantPhases) {
		t.Errorf("timeline %v\nwant %v", got, wantPhases)
	}
}

// runToEnd drives an update until it ends: after each Advance the groups
// converge, and the core hands marked databases to the new instances on
// the given version (not in the migration group, which holds none).
func (e *env) runToEnd(id string, groups map[string]string) *ledger.Update {
	e.t.Helper()
	for range 100 {
		u := e.advance(id)
		if u.State.Terminal() {
			return u
		}
		for _, g := range slices.Sorted(maps.Keys(groups)) {
			e.cloud.converge(g)
			if g != mg {
				e.autoCore(g, groups[g])
			}
		}
		e.clk.Advance(time.Minute)
	}
	e.t.Fatalf("update %s did not end: %+v", id, e.upd(id))
	return nil
}

func TestRollingCapacity(t *testing.T) {
	tests := []struct {
		name           string
		instances      int
		min, max       int32
		batch, healthy int32
		want           []string
	}{
		{"one at a time", 3, 1, 3, 1, 0, []string{
			"SetTemplate web 2", "SetCapacity web 1 4 4", "Terminate web i-0001", "SetCapacity web 1 4 4", "Terminate web i-0002",
			"SetCapacity web 1 4 4", "Terminate web i-0003", "SetCapacity web 1 3 3"}},
		{"two at a time, the last batch short", 3, 1, 3, 2, 0, []string{
			"SetTemplate web 2", "SetCapacity web 1 5 5", "Terminate web i-0001", "Terminate web i-0002",
			"SetCapacity web 1 4 4", "Terminate web i-0003", "SetCapacity web 1 3 3"}},
		{"max above the batch", 2, 1, 6, 1, 50, []string{
			"SetTemplate web 2", "SetCapacity web 1 6 3", "Terminate web i-0001", "SetCapacity web 1 6 3", "Terminate web i-0002", "SetCapacity web 1 6 2"}},
		{"min equals desired", 3, 3, 3, 1, 0, []string{
			"SetTemplate web 2", "SetCapacity web 3 4 4", "Terminate web i-0001", "SetCapacity web 3 4 4", "Terminate web i-0002",
			"SetCapacity web 3 4 4", "Terminate web i-0003", "SetCapacity web 3 3 3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.rollingWorld(tc.instances)
			e.cloud.scale("web", tc.min, tc.max, int32(tc.instances))
			e.guardTerminate("web")
			req := validRolling()
			req.BatchSize, req.MinHealthyPercent = tc.batch, tc.healthy
			u := e.start(req)
			u = e.runToEnd(u.ID, map[string]string{"web": "2"})
			wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
			if got := e.cloud.calls(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("calls\n%v\nwant\n%v", got, tc.want)
			}
			e.noMarks()
			for inst, db := range e.holders() {
				if m, ok := member(e.cloud.group(t, "web"), inst); !ok || m.Version != "2" {
					t.Errorf("%s on %s (%+v), want version 2", db, inst, m)
				}
			}
		})
	}
}

// A database that moved to an instance on another version than the target
// (launched before the template changed, say) does not count as handed
// over: the old instance stays.
func TestRollingWaitsForTargetVersion(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	u := e.start(validRolling())
	e.advance(u.ID)
	stray := e.cloud.launch("web", "za", "1")
	e.commit("db-1", stray)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseBatch)
	if n := e.cloud.count("Terminate"); n != 0 {
		t.Fatalf("old instance terminated with its database on version 1")
	}
	// The same with a database on a new-version instance that does not
	// serve, while the group has enough serving instances.
	e2 := newEnv(t)
	e2.rollingWorld(3)
	u2 := e2.start(validRolling())
	e2.advance(u2.ID)
	e2.cloud.launch("web", "zb", "2") // a serving spare
	sick := e2.cloud.launch("web", "za", "2")
	e2.cloud.setHealth("web", sick, "Unhealthy")
	e2.commit("db-1", sick)
	e2.advance(u2.ID)
	if n := e2.cloud.count("Terminate"); n != 0 {
		t.Fatalf("old instance terminated with its database on an unhealthy instance")
	}
}

// A new instance that stops serving while its batch bakes fails the update.
func TestRollingBakeFailure(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	req := validRolling()
	req.Bake = 10 * time.Minute
	u := e.start(req)
	e.advance(u.ID)
	e.cloud.converge("web")
	e.autoCore("web", "2")
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseBake)
	nu := u.Replacements[0].New
	e.clk.Advance(time.Minute)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseBake)
	e.cloud.setHealth("web", nu, "Unhealthy")
	u = e.advance(u.ID)
	if u.State == ledger.UpdateRunning || !strings.Contains(u.Error, "instance "+nu+" (database db-1) of batch 1 left service while baking") {
		t.Fatalf("update %s, error %q", u.State, u.Error)
	}
}

// Two handovers of a batch roll back: the new version does not come up.
// The update rolls back: template reverted, the spare instance the batch
// added (on the new version, holding no database) terminated — no reverse
// handover needed — and capacity restored.
func TestRollingFailsAfterMaxAborts(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.guardTerminate("web")
	u := e.start(validRolling())
	e.advance(u.ID)

	first := e.cloud.converge("web")[0]
	e.rollBack(e.claim("db-1", first), "health check failed")
	e.cloud.drop("web", first) // the core abandoned its hook
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseBatch) // one abort is not enough
	second := e.cloud.converge("web")[0]
	before := e.cloud.calls()
	e.rollBack(e.claim("db-1", second), "health check failed again")
	u = e.advance(u.ID)

	wantState(t, u, ledger.UpdateFailed, PhaseDone)
	if want := "batch 1: 2 handovers to version 2 rolled back (last: health check failed again)"; u.Error != want {
		t.Errorf("error %q, want %q", u.Error, want)
	}
	wantCalls := []string{"SetTemplate web 1", "Terminate web " + second, "SetCapacity web 1 3 3"}
	if got := e.cloud.calls()[len(before):]; !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("rollback calls %v, want %v", got, wantCalls)
	}
	g := e.cloud.group(t, "web")
	wantCapacity(t, g, 1, 3, 3)
	if g.Template != u.OldTemplate {
		t.Errorf("template %+v, want %+v", g.Template, u.OldTemplate)
	}
	if h := e.holders(); h["i-0001"] != "db-1" || h["i-0002"] != "db-2" || h["i-0003"] != "db-3" {
		t.Errorf("databases moved: %v", h)
	}
	e.noMarks()
	want := []Phase{PhaseBatch, PhaseRollback, PhaseRestore, PhaseDone}
	if got := phases(u); !samePhases(got, want) {
		t.Errorf("timeline %v, want %v", got, want)
	}
	if rb := u.Replacements[len(u.Replacements)-1]; !rb.Rollback || rb.Old != second || !rb.Terminated {
		t.Errorf("reverse pass replacement %+v", rb)
	}
}

// Aborts from before the batch began do not count against it.
func TestRollingOldAbortsDoNotCount(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	u := e.start(validRolling())
	e.advance(u.ID)
	nu := e.cloud.converge("web")[0]
	e.rollBack(e.claim("db-1", nu), "first")
	e.advance(u.ID)
	e.cloud.drop("web", nu)
	e.cloud.converge("web")
	e.autoCore("web", "2")
	e.clk.Advance(time.Second)
	u = e.advance(u.ID) // batch 1 done; batch 2 starts
	if u.Batch != 1 || u.State != ledger.UpdateRunning {
		t.Fatalf("batch %d state %s", u.Batch, u.State)
	}
	nu = e.cloud.converge("web")[0]
	e.rollBack(e.claim("db-2", nu), "second")
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseBatch)
}

// A batch that does not finish in BatchTimeout rolls back; the rollback
// waits for the handover in flight to roll back itself.
func TestRollingBatchTimeout(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.guardTerminate("web")
	u := e.start(validRolling())
	e.advance(u.ID)
	nu := e.cloud.converge("web")[0]
	mig := e.claim("db-1", nu)

	e.clk.Advance(e.cfg.BatchTimeout)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseBatch) // not over yet
	e.clk.Advance(time.Second)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRollingBack, PhaseRollback)
	if !strings.Contains(u.Error, "batch 1 did not finish within 30m0s: 0 of 1 databases handed over") {
		t.Errorf("error %q", u.Error)
	}
	if g := e.cloud.group(t, "web"); g.Template.Version != "1" {
		t.Errorf("template not reverted: %+v", g.Template)
	}
	e.noMarks()

	// Waiting for the handover changes nothing more.
	calls := len(e.cloud.calls())
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRollingBack, PhaseRollback)
	if got := e.cloud.calls()[calls:]; len(got) > 0 {
		t.Logf("note: waiting rollback repeats %v", got)
	}
	if n := e.cloud.count("Terminate") + e.cloud.count("SetCapacity"); n != 1 {
		t.Errorf("%d terminates and capacity changes while waiting, want the batch's raise only", n)
	}

	// The core sees the update rolling back and rolls its handover back;
	// the group replaces the abandoned instance on the old version.
	e.rollBack(mig, "update rolling back")
	e.cloud.drop("web", nu)
	e.cloud.converge("web")
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateFailed, PhaseDone)
	g := e.cloud.group(t, "web")
	wantCapacity(t, g, 1, 3, 3)
	if h := e.holders(); h["i-0001"] != "db-1" {
		t.Errorf("db-1 moved: %v", h)
	}
}

// After a failed batch the group may hold an extra instance on the old
// version (the replacement of an abandoned launch) that holds nothing.
// Restoring the capacity must not leave the Auto Scaling group to choose
// which instance goes: its scale-in may pick one that holds a database.
func TestRollingRestoreTerminatesTheSpare(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	u := e.start(validRolling())
	e.advance(u.ID)
	nu := e.cloud.converge("web")[0]
	mig := e.claim("db-1", nu)
	e.clk.Advance(e.cfg.BatchTimeout + time.Second)
	e.advance(u.ID)
	e.rollBack(mig, "update rolling back")
	e.cloud.drop("web", nu)
	spare := e.cloud.converge("web")[0] // on version 1 now, holds nothing
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateFailed, PhaseDone)
	var serving []string
	for _, m := range e.cloud.group(t, "web").Instances {
		if !isLeaving(m.Lifecycle) {
			serving = append(serving, m.ID)
		}
	}
	if len(serving) > int(u.OldDesired) {
		t.Fatalf("regression: restore lowered desired capacity to %d with %d members %v left, so Auto Scaling picks which one to terminate; the update should terminate %s, which holds no database", u.OldDesired, len(serving), serving, spare)
	}
}

// An abort after a finished batch rolls the replaced instance back.
func TestRollingAbortAfterBatch(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.guardTerminate("web")
	req := validRolling()
	req.Bake = time.Hour
	u := e.start(req)
	e.advance(u.ID)
	e.cloud.converge("web")
	e.autoCore("web", "2")
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRunning, PhaseBake)
	onNew := u.Replacements[0].New

	if _, err := e.r.Abort(e.ctx, u.ID, "operator saw errors"); err != nil {
		t.Fatal(err)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRollingBack, PhaseRollbackBatch)
	if d := e.db("db-1"); d.ReplaceBy != u.ID+"#rollback" || d.Gated {
		t.Fatalf("db-1 marked %q for the reverse pass", d.ReplaceBy)
	}
	g := e.cloud.group(t, "web")
	wantCapacity(t, g, 1, 4, 4)
	if g.Template.Version != "1" {
		t.Fatalf("template %+v", g.Template)
	}
	back := e.cloud.converge("web")[0]
	e.commit("db-1", back)
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateAborted, PhaseDone)
	if u.Error != "operator saw errors" {
		t.Errorf("error %q", u.Error)
	}
	g = e.cloud.group(t, "web")
	wantCapacity(t, g, 1, 3, 3)
	if m, _ := member(g, onNew); m.Lifecycle != "Terminating" {
		t.Errorf("instance %s on the new version is %s", onNew, m.Lifecycle)
	}
	if h := e.holders(); h[back] != "db-1" {
		t.Errorf("db-1 not on %s: %v", back, h)
	}
	e.noMarks()
	ms, err := e.led.ListMigrations(e.ctx, ledger.MigrationQuery{Database: "db-1"})
	if err != nil {
		t.Fatal(err)
	}
	if last := ms[len(ms)-1]; last.Update != u.ID+"#rollback" {
		t.Errorf("reverse handover carried update %q", last.Update)
	}
}

// The reverse pass after a batch failed half way: one instance already on
// the new version holds a database, the failed batch left an extra
// instance and raised capacity. Every database must end on the old
// version.
func TestRollingFailureMidUpdateReversePass(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.guardTerminate("web")
	u := e.start(validRolling())
	e.advance(u.ID)
	e.cloud.converge("web")
	e.autoCore("web", "2")
	u = e.advance(u.ID) // batch 1 done, batch 2 marked and raised
	if u.Batch != 1 {
		t.Fatalf("batch %d", u.Batch)
	}
	for _, why := range []string{"first", "second"} {
		nu := e.cloud.converge("web")[0]
		e.rollBack(e.claim("db-2", nu), why)
		if why == "first" {
			e.cloud.drop("web", nu)
		}
	}
	u = e.advance(u.ID)
	if u.State == ledger.UpdateRunning {
		t.Fatalf("update still running: %+v", u)
	}
	// The core and the group do their part until the update ends, past
	// the batch timeout if need be.
	for range 40 {
		if u.State.Terminal() {
			break
		}
		e.cloud.converge("web")
		e.autoCore("web", "1")
		e.clk.Advance(time.Minute)
		u = e.advance(u.ID)
	}
	if u.State.Terminal() {
		e.noMarks() // even a rollback that gave up leaves no mark behind
	}
	if !u.State.Terminal() || strings.Contains(u.Error, "rollback batch") {
		t.Fatalf("regression: the reverse pass stalls: %s in %s, error %q, group %+v, databases %v (the failed batch's extra instance keeps desired at OldDesired+1, so the reverse batch launches nothing)",
			u.State, u.Phase, u.Error, e.cloud.group(t, "web"), e.holders())
	}
	wantState(t, u, ledger.UpdateFailed, PhaseDone)
	g := e.cloud.group(t, "web")
	wantCapacity(t, g, 1, 3, 3)
	for inst, db := range e.holders() {
		if m, ok := member(g, inst); !ok || m.Version != "1" || !m.InService() {
			t.Errorf("%s on %s (%+v), want a serving instance on version 1", db, inst, m)
		}
	}
}

// An abort while a batch's handover is in flight waits for it, then rolls
// back every instance already on the new version.
func TestRollingAbortMidBatch(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.guardTerminate("web")
	u := e.start(validRolling())
	e.advance(u.ID)
	e.cloud.converge("web")
	e.autoCore("web", "2")
	e.advance(u.ID) // batch 2 marked and raised
	nu := e.cloud.converge("web")[0]
	mig := e.claim("db-2", nu)
	if _, err := e.r.Abort(e.ctx, u.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	u = e.advance(u.ID)
	wantState(t, u, ledger.UpdateRollingBack, PhaseRollback)
	terminates := e.cloud.count("Terminate")
	u = e.advance(u.ID)
	if e.cloud.count("Terminate") != terminates {
		t.Fatalf("terminated while a handover was in flight")
	}
	e.rollBack(mig, "update rolling back")
	e.cloud.drop("web", nu)
	for range 40 {
		e.cloud.converge("web")
		e.autoCore("web", "1")
		e.clk.Advance(time.Minute)
		if u = e.advance(u.ID); u.State.Terminal() {
			break
		}
	}
	if u.State.Terminal() {
		e.noMarks() // even a rollback that gave up leaves no mark behind
	}
	if !u.State.Terminal() || strings.Contains(u.Error, "rollback batch") {
		t.Fatalf("regression: the reverse pass stalls after an abort mid-batch: %s in %s, error %q, databases %v",
			u.State, u.Phase, u.Error, e.holders())
	}
	wantState(t, u, ledger.UpdateAborted, PhaseDone)
	g := e.cloud.group(t, "web")
	wantCapacity(t, g, 1, 3, 3)
	for inst, db := range e.holders() {
		if m, ok := member(g, inst); !ok || m.Version != "1" {
			t.Errorf("%s on %s (%+v), want version 1", db, inst, m)
		}
	}
}

// A group that follows $Latest, already pointing at the version to roll
// out (the usual way: create the version, then update): the update must
// know which version the instances run, or its rollback restores the new
// version.
func TestRollingLatestGroupKnowsItsOldVersion(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3) // instances on version 1
	e.cloud.mu.Lock()
	e.cloud.groups["web"].Template.Version = "$Latest" // = 2 now
	e.cloud.mu.Unlock()
	u, err := e.r.Start(e.ctx, validRolling())
	if err != nil {
		t.Logf("Start refused: %v", err)
		return
	}
	if u.OldTemplate.Version == u.Spec.Template.Version {
		t.Fatalf("regression: OldTemplate is the group's $Latest resolved at Start (%s), the very version rolled out, not version 1 the instances run: a rollback rolls back to the new version (and pins the group off $Latest)", u.OldTemplate.Version)
	}
}

// The last batch's instances may already be on the target (launched by the
// group meanwhile); the update only replaces what Start planned.
func TestRollingSkipsNothingToDo(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(2)
	e.cloud.mu.Lock()
	e.cloud.groups["web"].Instances[1].Version = "2"
	e.cloud.mu.Unlock()
	u := e.start(validRolling())
	if !reflect.DeepEqual(u.Batches, [][]string{{"i-0001"}}) {
		t.Fatalf("batches %v", u.Batches)
	}
	u = e.runToEnd(u.ID, map[string]string{"web": "2"})
	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	if n := e.cloud.count("Terminate"); n != 1 {
		t.Errorf("%d terminates, want 1", n)
	}
}

// Instances with no database (spares) are replaced too, without waiting
// for a handover.
func TestRollingSpareInstance(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(2)
	db := e.db("db-2")
	db.Instance = ""
	e.putDB(db)
	u := e.start(validRolling())
	u = e.runToEnd(u.ID, map[string]string{"web": "2"})
	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	if rep := u.Replacements[1]; rep.Old != "i-0002" || rep.Database != "" || !rep.Terminated {
		t.Errorf("spare replacement %+v", rep)
	}
}
