package handover_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// withCutover sets the launch hook's metadata to choose policy.
func (e *env) withCutover(policy string) {
	e.t.Helper()
	e.cloud.AddHook(group, launchHook, handover.Hook{
		HeartbeatTimeout: hookTimeout, DefaultResult: handover.ResultAbandon,
		Metadata: `{"database":"` + database + `","cutover":"` + policy + `"}`,
	})
}

// timeline lists the states a migration went through.
func timeline(m *ledger.Migration) []ledger.State {
	var out []ledger.State
	for _, s := range m.Timeline {
		out = append(out, s.State)
	}
	return out
}

// runToHealth runs the migration to AwaitingHealth and stops it there
// until the test goes on (the new instance turns healthy then).
func (e *env) runToHealth(id string) {
	e.t.Helper()
	e.svc.SetHealthy(newIP, false)
	e.run(id, ledger.AwaitingHealth)
	e.svc.SetHealthy(newIP, true)
}

// unfencedNewAt returns the index of the new instance's unfence among
// the service calls, -1 if it never was.
func unfencedNewAt(calls []string) int {
	return slices.Index(calls, "Unfence "+newIP+" 4")
}

// TestRollbackAfterRetireLiftsIt: a retire that lands but keeps failing
// rolls the migration back before CONTINUE; the rollback unfences the
// source under the fence epoch, which lifts the retirement, and the new
// instance, never unfenced, took no write.
func TestRollbackAfterRetireLiftsIt(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.runToHealth(id)
	// The retire lands, but its answer is lost each time (a 500 after it
	// was applied, say).
	if err := e.svc.Gate(oldIP).Retire(epoch+1, newIP+":8080"); err != nil {
		t.Fatal(err)
	}
	for range e.cfg.MaxAttempts - 1 {
		e.svc.NextErr["Retire"] = fence.ErrServer
		e.poll(id)
	}
	// The last failure starts the rollback; its ABANDON fails once, so
	// the test sees the order: the retirement is lifted before the hook is
	// abandoned (reads must not follow the retirement to an instance that
	// is going away).
	e.svc.NextErr["Retire"] = fence.ErrServer
	e.cloud.NextErr["CompleteLifecycleAction"] = handover.ErrUnavailable
	e.poll(id)
	e.wantState(id, ledger.RollingBack)
	if a, _ := e.cloud.Action(newID, launchHook); !a.Active() {
		t.Fatalf("launch action already ended: %+v", a)
	}
	if st := e.svc.Gate(oldIP).State(); st.Retired() || st.Fenced {
		t.Fatalf("source gate %+v before the ABANDON, want the retirement lifted", st)
	}
	e.run(id, ledger.Aborted)
	m := e.m(id)
	if !m.Retired || !slices.Contains(timeline(m), ledger.Retiring) {
		t.Fatalf("the migration never recorded its retire intent: retired=%v, timeline %v", m.Retired, timeline(m))
	}
	if st := e.svc.Gate(oldIP).State(); st != (fence.State{Epoch: epoch + 1}) {
		t.Fatalf("source gate after the rollback %+v, want open under %d: it must answer from its own data again", st, epoch+1)
	}
	if unfencedNewAt(e.svc.Calls) >= 0 {
		t.Fatalf("the new instance was unfenced although the migration rolled back: %q", e.svc.Calls)
	}
	if c := e.continues(); len(c) != 2 || !strings.HasSuffix(c[1], " ABANDON") {
		t.Fatalf("lifecycle completions %q, want an ABANDON (the first failed)", c)
	}
	if db := e.db(); db.Instance != oldID || db.Epoch != epoch {
		t.Fatalf("database %+v, want back on %s at epoch %d", *db, oldID, epoch)
	}
}

// TestRetireNotImplemented: under auto a service without retire is
// drained instead; under retire the migration rolls back and says what to
// set.
func TestRetireNotImplemented(t *testing.T) {
	t.Run("auto drains", func(t *testing.T) {
		e := newEnv(t)
		e.addSource()
		e.svc.SetRetireSupported(oldIP, false)
		id := e.launchNew()
		e.run(id, ledger.Draining)
		m := e.m(id)
		if m.Cutover != handover.CutoverDrain {
			t.Fatalf("cutover %q, want drain after the 404", m.Cutover)
		}
		e.wantDrainThenUnfence(id)
	})
	t.Run("retire rolls back", func(t *testing.T) {
		e := newEnv(t)
		e.withCutover(handover.CutoverRetire)
		e.addSource()
		e.svc.SetRetireSupported(oldIP, false)
		id := e.launchNew()
		e.run(id, ledger.Aborted)
		if m := e.m(id); !strings.Contains(m.LastError, "retir") {
			t.Errorf("last error %q, want it to name the retire", m.LastError)
		}
		if st := e.svc.Gate(oldIP).State(); st.Fenced {
			t.Errorf("source left fenced: %+v", st)
		}
	})
}

// wantDrainThenUnfence checks the drain cutover from Draining on: the old
// instance leaves its load balancers only once the new one is in service,
// and the new one is unfenced only once the old one has drained.
func (e *env) wantDrainThenUnfence(id string) {
	e.t.Helper()
	if n := len(e.cloud.CallsOf("DrainInstance")); n != 0 && e.cloud.Lifecycle(group, newID) != handover.LifecycleInService {
		e.t.Fatalf("old instance drained before the new one was in service")
	}
	e.poll(id) // settle made the new instance InService: the drain starts
	e.wantState(id, ledger.Draining)
	if got := e.cloud.Drain(oldID); got != "draining" {
		e.t.Fatalf("old instance drain %q, want draining", got)
	}
	if f, _ := fenced(e.svc, newIP); !f {
		e.t.Fatal("new instance unfenced while the old one still drains")
	}
	e.poll(id)
	e.wantState(id, ledger.Draining)
	e.cloud.FinishDrain(oldID)
	e.run(id, ledger.Committed)
	if f, ep := fenced(e.svc, newIP); f || ep != epoch+1 {
		e.t.Fatalf("new instance fenced=%v under %d after the commit, want open under %d", f, ep, epoch+1)
	}
	if st := e.svc.Gate(oldIP).State(); !st.Fenced || st.Retired() {
		e.t.Fatalf("old instance gate %+v, want fenced (drained, not retired)", st)
	}
	m := e.m(id)
	want := []ledger.State{ledger.AwaitingHealth, ledger.Retiring, ledger.Completing, ledger.Draining, ledger.Unfencing, ledger.Committed}
	if got := timeline(m); !slices.Equal(got[len(got)-len(want):], want) {
		e.t.Fatalf("timeline %v, want it to end %v", got, want)
	}
}

// TestDrainCutover: chosen in the hook metadata, the drain cutover never
// retires; it drains after CONTINUE, once the new instance serves.
func TestDrainCutover(t *testing.T) {
	e := newEnv(t)
	e.withCutover(handover.CutoverDrain)
	e.addSource()
	id := e.launchNew()
	e.run(id, ledger.Draining)
	if c := e.svc.CallsOf("Retire"); len(c) != 0 {
		t.Fatalf("drain cutover retired the source: %q", c)
	}
	if a, _ := e.cloud.Action(newID, launchHook); a.Result != handover.ResultContinue {
		t.Fatalf("Draining before CONTINUE: launch action %+v", a)
	}
	e.wantDrainThenUnfence(id)
}

// TestDrainNewInstanceLeaves: a new instance that leaves service after
// CONTINUE but before the old one has drained (a zone outage, a failed
// health check) never took a write, so the database goes back to the old
// instance, which is registered again if its drain began: draining it
// would have left no one to serve reads (simulator seeds 5841 and 9762).
func TestDrainNewInstanceLeaves(t *testing.T) {
	for _, tc := range []struct {
		name        string
		drainBegun  bool   // the old instance's deregistration started
		oldState    string // the old instance's lifecycle when it happens
		wantUndrain bool
	}{
		{name: "before the drain", oldState: handover.LifecycleInService},
		{name: "mid drain", drainBegun: true, oldState: handover.LifecycleInService, wantUndrain: true},
		{name: "mid drain, old one leaving too", drainBegun: true, oldState: "Terminating:Wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.withCutover(handover.CutoverDrain)
			e.addSource()
			id := e.launchNew()
			e.run(id, ledger.Draining)
			if tc.drainBegun {
				e.settle() // in service: the drain starts
				e.poll(id)
				if got := e.cloud.Drain(oldID); got != "draining" {
					t.Fatalf("old instance drain %q, want draining", got)
				}
			}
			e.cloud.SetLifecycle(group, newID, "Terminating:Wait")
			e.cloud.SetLifecycle(group, oldID, tc.oldState)
			e.poll(id)
			e.wantState(id, ledger.RollingBack)
			e.run(id, ledger.Aborted)

			m := e.m(id)
			if !strings.Contains(m.LastError, "left service") || !strings.Contains(m.LastError, oldID) {
				t.Errorf("last error %q, want it to say the new instance left and the database stays on %s", m.LastError, oldID)
			}
			if got := len(e.cloud.CallsOf("UndrainInstance")) > 0; got != tc.wantUndrain {
				t.Errorf("old instance registered again = %v, want %v (calls %q)", got, tc.wantUndrain, e.cloud.CallsOf("UndrainInstance"))
			}
			if tc.wantUndrain && e.cloud.Drain(oldID) != "" {
				t.Errorf("old instance drain %q after the rollback, want none", e.cloud.Drain(oldID))
			}
			if unfencedNewAt(e.svc.Calls) >= 0 {
				t.Fatalf("the new instance was unfenced: %q", e.svc.Calls)
			}
			if st := e.svc.Gate(oldIP).State(); st != (fence.State{Epoch: epoch + 1}) {
				t.Fatalf("old instance gate %+v, want open under %d", st, epoch+1)
			}
			if db := e.db(); db.Instance != oldID || db.Epoch != epoch || db.Claim != "" {
				t.Fatalf("database %+v, want back on %s at epoch %d, unclaimed", *db, oldID, epoch)
			}
			for _, v := range e.cloud.Volumes() {
				if v.ID != e.db().Volume && !e.cloud.Deleted(v.ID) {
					t.Errorf("volume %s left behind by the rollback", v.ID)
				}
			}
		})
	}
}

// TestCutoverOnePacedCallPerPass: under a busy controller's pacing, one
// token per API family per pass, every cutover still finishes. A step
// that spent a family's only token on its first call and was paced on its
// second would stay forever (it did: Retiring described both instances,
// and a group of twelve stalled in it).
func TestCutoverOnePacedCallPerPass(t *testing.T) {
	for _, policy := range []string{handover.CutoverAuto, handover.CutoverRetire, handover.CutoverDrain} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t)
			e.withCutover(policy)
			e.addSource()
			id := e.launchNew()
			e.pacer.Ration(1)
			for range 200 {
				if e.m(id).State.Terminal() {
					break
				}
				e.pacer.Refill()
				e.poll(id)
				e.settle()
				if e.cloud.Drain(oldID) == "draining" {
					e.cloud.FinishDrain(oldID)
				}
			}
			e.wantState(id, ledger.Committed)
			if e.pacer.Borrowed == 0 {
				t.Error("no call borrowed: the test did not ration the steps' calls")
			}
		})
	}
}

// TestRetireUnreachableDrains: a source that answered the fence but not
// the retire is drained instead: deregistering needs no answer from it.
func TestRetireUnreachableDrains(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.runToHealth(id)
	e.svc.SetReachable(oldIP, false)
	e.run(id, ledger.Draining)
	if n := len(e.svc.CallsOf("Retire")); n != e.cfg.UnreachableAttempts {
		t.Errorf("%d retire attempts, want %d", n, e.cfg.UnreachableAttempts)
	}
	e.wantDrainThenUnfence(id)
}

// TestDrainNeedsADrainer: a cloud that cannot deregister targets makes a
// drain cutover roll back before CONTINUE rather than cut over unsafely.
func TestDrainNeedsADrainer(t *testing.T) {
	e := newEnv(t)
	e.withCutover(handover.CutoverDrain)
	e.addSource()
	ctl, err := handover.New(e.cfg, handover.Deps{Cloud: cloudOnly{e.cloud}, Service: e.svc, Ledger: e.led, Pacer: e.pacer, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	e.ctl = ctl
	id := e.launchNew()
	e.run(id, ledger.Aborted)
	if m := e.m(id); !strings.Contains(m.LastError, "cannot deregister") {
		t.Errorf("last error %q, want it to say the cloud cannot drain", m.LastError)
	}
	if c := e.continues(); len(c) != 1 || !strings.HasSuffix(c[0], " ABANDON") {
		t.Errorf("lifecycle completions %q, want one ABANDON", c)
	}
}

// cloudOnly hides the fake's Drainer.
type cloudOnly struct{ handover.Cloud }

// TestOverlapCutover: the ordering before invariant no-stale-reads, kept on request:
// no retire, the new instance starts unfenced, Completing commits.
func TestOverlapCutover(t *testing.T) {
	e := newEnv(t)
	e.withCutover(handover.CutoverOverlap)
	e.addSource()
	id := e.launchNew()
	e.run(id, ledger.Committed)
	m := e.m(id)
	if v, _ := e.cloud.Volume(m.Volume); v.Tags[handover.TagStart] != "" {
		t.Errorf("overlap volume tagged %s=%s", handover.TagStart, v.Tags[handover.TagStart])
	}
	if c := e.svc.CallsOf("Retire"); len(c) != 0 {
		t.Errorf("overlap retired: %q", c)
	}
	if got, want := timeline(m)[len(m.Timeline)-3:], []ledger.State{ledger.AwaitingHealth, ledger.Completing, ledger.Committed}; !slices.Equal(got, want) {
		t.Errorf("timeline ends %v, want %v", got, want)
	}
}

// TestMigrationFromBeforeCutovers: a migration an older controller left
// past Launching has no cutover; it finishes as it always did.
func TestMigrationFromBeforeCutovers(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.run(id, ledger.Attaching)
	e.edit(id, func(m *ledger.Migration) { m.Cutover = "" })
	e.run(id, ledger.Committed)
	if slices.Contains(timeline(e.m(id)), ledger.Retiring) {
		t.Errorf("a migration without a cutover retired: %v", timeline(e.m(id)))
	}
}

// TestNoCutoverWithoutARunningSource: a dead source serves nothing, so the
// new instance starts open and nothing is retired.
func TestNoCutoverWithoutARunningSource(t *testing.T) {
	e := newEnv(t)
	e.addSourceAs(handover.InstanceStopped)
	id := e.launchNew()
	e.run(id, ledger.Committed)
	m := e.m(id)
	if v, _ := e.cloud.Volume(m.Volume); v.Tags[handover.TagStart] != "" || slices.Contains(timeline(m), ledger.Retiring) {
		t.Errorf("dead source: volume tags %v, timeline %v; want no cutover", v.Tags, timeline(m))
	}
}

// TestRetiringRepeatsSafely: each call of the cutover is idempotent, so
// the steps may repeat after any failure; the order still holds.
func TestRetiringRepeatsSafely(t *testing.T) {
	e := newEnv(t)
	e.addSource()
	id := e.launchNew()
	e.runToHealth(id)
	e.svc.NextErr["Retire"] = fence.ErrServer
	e.poll(id)
	e.wantState(id, ledger.Retiring)
	e.poll(id)
	e.wantState(id, ledger.Unfencing)
	e.svc.NextErr["Unfence"] = fence.ErrUnreachable
	e.poll(id)
	e.wantState(id, ledger.Unfencing) // after CONTINUE: retried, never rolled back
	e.run(id, ledger.Committed)
	calls := e.svc.Calls
	retired := slices.Index(calls, "Retire "+oldIP+" 4 "+newIP)
	if n := count(calls, "Retire "+oldIP+" 4 "+newIP); n != 2 || retired < 0 || unfencedNewAt(calls) < retired {
		t.Errorf("service calls %q: want two retires, the new instance unfenced after them", calls)
	}
}

func TestCutoverValidation(t *testing.T) {
	cfg := handover.DefaultConfig()
	if cfg.Cutover != handover.CutoverAuto {
		t.Errorf("default cutover %q, want auto", cfg.Cutover)
	}
	cfg.Cutover = "forward"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "retire") {
		t.Errorf("Validate of cutover forward = %v, want an error listing the choices", err)
	}
	for _, ok := range handover.Cutovers {
		if _, err := handover.ParseMetadata(`{"database":"d","cutover":"` + ok + `"}`); err != nil {
			t.Errorf("cutover %s in metadata: %v", ok, err)
		}
	}
	if _, err := handover.ParseMetadata(`{"database":"d","cutover":"later"}`); err == nil || !strings.Contains(err.Error(), "drain") {
		t.Errorf("bad cutover in metadata = %v, want an error listing the choices", err)
	}
}
