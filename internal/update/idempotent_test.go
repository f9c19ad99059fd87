package update

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// advanceTwice advances id, then checks that another controller (holding
// no lease) changes nothing and calls nothing, and that advancing again at
// once, with the world as it is, makes no further change in the cloud and
// does not move the update on. It returns the mutating calls a repeat
// made anyway (only calls the caller allows).
func (e *env) advanceTwice(id string, other *Runner, allowRepeat func(call string, u *ledger.Update) bool) *ledger.Update {
	e.t.Helper()
	u := e.advance(id)
	total, version := e.cloud.total(), u.Version
	if err := other.Advance(e.ctx, id); err != nil {
		e.t.Fatalf("other controller: %v", err)
	}
	if e.cloud.total() != total || e.upd(id).Version != version {
		e.t.Fatalf("another holder advanced update %s in %s while the lease was held", id, u.Phase)
	}
	calls := len(e.cloud.calls())
	again := e.advance(id)
	for _, c := range e.cloud.calls()[calls:] {
		if allowRepeat == nil || !allowRepeat(c, again) {
			e.t.Errorf("repeated Advance in %s (%s) called %q again", u.Phase, u.State, c)
		}
	}
	if again.State != u.State || again.Phase != u.Phase || again.Batch != u.Batch || again.GatesOpen != u.GatesOpen ||
		len(again.Replacements) != len(u.Replacements) || !slices.Equal(phases(again), phases(u)) {
		e.t.Errorf("repeated Advance moved the update: %s %s batch %d → %s %s batch %d", u.State, u.Phase, u.Batch, again.State, again.Phase, again.Batch)
	}
	return again
}

func TestAdvanceIdempotentRolling(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.migrationWorld()
	e.guardTerminate("web")
	other := e.runner("ctl-2")
	req := migrationReq(Rolling)
	req.Bake, req.Pause = 2*time.Minute, 3*time.Minute
	u := e.start(req)
	for range 100 {
		u = e.advanceTwice(u.ID, other, nil)
		if u.State.Terminal() {
			break
		}
		for _, id := range e.cloud.converge(mg) {
			e.cloud.signal(mg, id, handover.SignalSuccess)
		}
		e.cloud.converge("web")
		e.autoCore("web", "2")
		e.clk.Advance(time.Minute)
	}
	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	want := []string{
		"SetTemplate web-migrate 2", "SetCapacity web-migrate 0 2 2", "Terminate web-migrate i-0004",
		"SetTemplate web 2",
		"SetCapacity web 1 4 4", "Terminate web i-0001",
		"SetCapacity web 1 4 4", "Terminate web i-0002",
		"SetCapacity web 1 4 4", "Terminate web i-0003",
		"SetCapacity web 1 3 3", "SetCapacity web-migrate 0 1 0",
	}
	if got := e.cloud.calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls\n%v\nwant\n%v", got, want)
	}
}

func TestAdvanceIdempotentReplaceAll(t *testing.T) {
	e := newEnv(t)
	e.replaceAllWorld()
	e.migrationWorld()
	e.cloud.DeleteLag = 2
	other := e.runner("ctl-2")
	u := e.start(migrationReq(ReplaceAll))
	for range 100 {
		u = e.advanceTwice(u.ID, other, nil)
		if u.State.Terminal() {
			break
		}
		for _, id := range e.cloud.converge(mg) {
			e.cloud.signal(mg, id, handover.SignalSuccess)
		}
		if e.cloud.exists(u.NewGroup) {
			for _, id := range e.cloud.converge(u.NewGroup) {
				e.cloud.signal(u.NewGroup, id, handover.SignalSuccess)
			}
			e.autoCore(u.NewGroup, "2")
		}
		e.clk.Advance(time.Minute)
	}
	wantState(t, u, ledger.UpdateSucceeded, PhaseDone)
	want := []string{
		"SetTemplate web-migrate 2", "SetCapacity web-migrate 0 2 2", "Terminate web-migrate i-0005",
		"CreateGroup " + u.NewGroup + " 2 0 4 4", "SetCapacity " + u.NewGroup + " 2 6 4", "DeleteGroup web",
		"SetCapacity web-migrate 0 1 0",
	}
	if got := e.cloud.calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls\n%v\nwant\n%v", got, want)
	}
}

// The rollbacks repeat too. A waiting rollback may point the group at the
// old template again (a harmless repeat); it must not terminate, scale,
// create or delete anything twice.
func TestAdvanceIdempotentRollbacks(t *testing.T) {
	reSetTemplate := func(c string, u *ledger.Update) bool {
		return u.Phase == PhaseRollback.String() && c == "SetTemplate web 1"
	}
	t.Run("rolling", func(t *testing.T) {
		e := newEnv(t)
		e.rollingWorld(3)
		e.guardTerminate("web")
		other := e.runner("ctl-2")
		u := e.start(validRolling())
		u = e.advanceTwice(u.ID, other, nil)
		e.cloud.converge("web")
		e.autoCore("web", "2")
		u = e.advanceTwice(u.ID, other, nil) // batch 1 done, batch 2 raised
		nu := e.cloud.converge("web")[0]
		mig := e.claim("db-2", nu)
		if _, err := e.r.Abort(e.ctx, u.ID, ""); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(time.Minute)
		u = e.advanceTwice(u.ID, other, reSetTemplate) // waits for the handover
		wantState(t, u, ledger.UpdateRollingBack, PhaseRollback)
		e.rollBack(mig, "update rolling back")
		e.cloud.drop("web", nu)
		for range 40 {
			e.clk.Advance(time.Minute)
			if u = e.advanceTwice(u.ID, other, reSetTemplate); u.State.Terminal() {
				break
			}
			e.cloud.converge("web")
			e.autoCore("web", "1")
		}
		if !u.State.Terminal() {
			t.Fatalf("rollback did not end: %s %s", u.State, u.Phase)
		}
	})
	t.Run("replace-all", func(t *testing.T) {
		e := newEnv(t)
		e.replaceAllWorld()
		e.cloud.DeleteLag = 2
		other := e.runner("ctl-2")
		u := e.start(replaceAllReq())
		u = e.advanceTwice(u.ID, other, nil)
		news := e.cloud.converge(u.NewGroup)
		mig := e.claim("db-1", news[0])
		e.cloud.signal(u.NewGroup, news[1], handover.SignalFailure)
		e.clk.Advance(time.Minute)
		u = e.advanceTwice(u.ID, other, nil)
		wantState(t, u, ledger.UpdateRollingBack, PhaseRollback)
		e.rollBack(mig, "update rolling back")
		// While the new group is being deleted, a repeated delete is all
		// a waiting rollback may do.
		reDelete := func(c string, u *ledger.Update) bool { return c == "DeleteGroup "+u.NewGroup }
		for range 10 {
			e.clk.Advance(time.Minute)
			if u = e.advanceTwice(u.ID, other, reDelete); u.State.Terminal() {
				break
			}
		}
		wantState(t, u, ledger.UpdateFailed, PhaseDone)
		if n := e.cloud.count("CreateGroup"); n != 1 {
			t.Errorf("%d CreateGroup calls", n)
		}
		if calls := e.cloud.callsOn("web"); len(calls) > 0 {
			t.Errorf("old group changed: %v", calls)
		}
	})
}
