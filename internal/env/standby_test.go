package env

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

var epoch = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

type rig struct {
	t     *testing.T
	led   ledger.Ledger
	cloud *fakeCloud
	clk   *clock.Fake
	r     *Runner
	n     int // runners started: each is a new process
}

func newRig(t *testing.T) *rig {
	x := &rig{t: t, led: memory.New(), cloud: newFakeCloud(), clk: clock.NewFake(epoch)}
	x.restart()
	return x
}

// restart is a new process: a new runner with its own lease holder, once
// the killed one's lease has lapsed.
func (x *rig) restart() {
	x.t.Helper()
	x.n++
	cfg := DefaultConfig()
	cfg.Holder = fmt.Sprintf("run-%d", x.n)
	x.clk.Advance(cfg.LeaseTTL + time.Second)
	r, err := New(cfg, x.led, x.cloud, x.cloud, x.clk, nil)
	if err != nil {
		x.t.Fatal(err)
	}
	x.r = r
}

// drive advances op until done says so. A killed step (errCrash) kills
// the process: the next one starts again with start (the command run
// again) and drives on.
func (x *rig) drive(id string, start func() string, done func(*ledger.EnvOp) bool) *ledger.EnvOp {
	x.t.Helper()
	for range 500 {
		err := x.r.Advance(context.Background(), id)
		if errors.Is(err, errCrash) {
			x.cloud.crashAt = 0
			x.restart()
			id = start()
			continue
		}
		op, gerr := x.r.Get(context.Background(), id)
		if gerr != nil {
			x.t.Fatal(gerr)
		}
		if done(op) {
			return op
		}
		x.clk.Advance(time.Second)
	}
	op, _ := x.r.Get(context.Background(), id)
	x.t.Fatalf("operation %s did not finish: %s in %s, error %q", id, op.State, op.Phase, op.Error)
	return nil
}

func (x *rig) standby(name string) *ledger.EnvOp {
	x.t.Helper()
	start := func() string {
		op, _, err := x.r.StartStandby(context.Background(), ByName(name), false)
		if err != nil {
			x.t.Fatalf("StartStandby: %v", err)
		}
		return op.ID
	}
	return x.drive(start(), start, func(o *ledger.EnvOp) bool { return o.Phase == PhaseInStandby || o.State.Terminal() })
}

func (x *rig) resume(name string) *ledger.EnvOp {
	x.t.Helper()
	start := func() string {
		op, err := x.r.RequestResume(context.Background(), name, false)
		if err != nil {
			x.t.Fatalf("RequestResume: %v", err)
		}
		return op.ID
	}
	return x.drive(start(), start, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
}

type groupSpec struct {
	name       string
	min, max   int32
	n, pending int
}

var shapes = []struct {
	name   string
	groups []groupSpec
}{
	{"min equals size", []groupSpec{{"orders", 2, 4, 2, 0}}},
	{"min zero", []groupSpec{{"web", 0, 3, 1, 0}}},
	{"more than 20 instances", []groupSpec{{"big", 25, 30, 25, 0}}},
	{"pending instances waited for", []groupSpec{{"orders", 1, 4, 1, 2}}},
	{"two groups", []groupSpec{{"orders", 2, 4, 2, 0}, {"web", 1, 3, 3, 0}}},
}

func (x *rig) build(groups []groupSpec) map[string]capacity {
	before := map[string]capacity{}
	for _, g := range groups {
		x.cloud.addGroup("staging", g.name, g.min, g.max, g.n, g.pending)
		c := x.cloud.capacity(g.name)
		c.States = map[string]int{lcInService: g.n + g.pending}
		before[g.name] = c
	}
	return before
}

func (x *rig) checkStandby(groups []groupSpec) {
	x.t.Helper()
	for _, g := range groups {
		c := x.cloud.capacity(g.name)
		if c.Desired != 0 || c.States[lcStandby] != g.n+g.pending || len(c.States) != 1 {
			x.t.Errorf("group %s in standby: %+v, want every instance in Standby and desired 0", g.name, c)
		}
	}
	for _, call := range x.cloud.log {
		var n int
		if _, err := fmt.Sscanf(call[strings.LastIndexByte(call, ' ')+1:], "%d", &n); strings.HasPrefix(call, "EnterStandby") && (err != nil || n > MaxStandbyBatch) {
			x.t.Errorf("call %q moves more than %d instances", call, MaxStandbyBatch)
		}
	}
}

func (x *rig) checkRestored(before map[string]capacity) {
	x.t.Helper()
	for name, want := range before {
		got := x.cloud.capacity(name)
		if got.Min != want.Min || got.Desired != want.Desired || got.Max != want.Max || got.States[lcInService] != want.States[lcInService] || len(got.States) != 1 {
			x.t.Errorf("group %s after resume: %+v, want %+v", name, got, want)
		}
	}
}

func TestStandbyResumeRestoresExactly(t *testing.T) {
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			x := newRig(t)
			x.cloud.settle = 1
			before := x.build(s.groups)
			op := x.standby("staging")
			if op.State != ledger.UpdateRunning || op.Phase != PhaseInStandby {
				t.Fatalf("standby ended %s in %s: %s", op.State, op.Phase, op.Error)
			}
			x.checkStandby(s.groups)
			// Run again, it is the same standby.
			again, _, err := x.r.StartStandby(t.Context(), ByName("staging"), false)
			if err != nil || again.ID != op.ID {
				t.Fatalf("standby run again: %v, %v; want %s", again, err, op.ID)
			}
			done := x.resume("staging")
			if done.State != ledger.UpdateSucceeded || done.Phase != PhaseDone {
				t.Fatalf("resume ended %s in %s: %s", done.State, done.Phase, done.Error)
			}
			x.checkRestored(before)
			if _, err := x.r.RequestResume(t.Context(), "staging", false); !errors.Is(err, ErrBadRequest) {
				t.Errorf("a second resume: %v, want ErrBadRequest", err)
			}
		})
	}
}

// TestStandbyKilledAtEveryStep kills the process at every cloud call of a
// standby and its resume, once before the call takes effect and once
// after, runs the command again, and checks that it converges to the same
// end: every group exactly as before.
func TestStandbyKilledAtEveryStep(t *testing.T) {
	groups := []groupSpec{{"orders", 2, 4, 2, 1}, {"big", 22, 30, 22, 0}}
	clean := newRig(t)
	clean.build(groups)
	clean.standby("staging")
	clean.resume("staging")
	calls := clean.cloud.calls
	if calls < 6 {
		t.Fatalf("a clean run made only %d calls: %v", calls, clean.cloud.log)
	}
	for at := 1; at <= calls; at++ {
		for _, before := range []bool{true, false} {
			t.Run(fmt.Sprintf("call %d before=%v", at, before), func(t *testing.T) {
				x := newRig(t)
				want := x.build(groups)
				x.cloud.crashAt, x.cloud.crashBefore = at, before
				x.standby("staging")
				x.checkStandby(groups)
				x.resume("staging")
				x.checkRestored(want)
				if x.n != 2 {
					t.Errorf("%d processes ran, want 2: the kill at call %d did not happen", x.n, at)
				}
			})
		}
	}
}

func TestResumeMidStandbyRollsBack(t *testing.T) {
	x := newRig(t)
	before := x.build([]groupSpec{{"orders", 3, 4, 3, 0}})
	x.cloud.settle = 20 // instances stay EnteringStandby a while
	op, _, err := x.r.StartStandby(t.Context(), ByName("staging"), false)
	if err != nil {
		t.Fatal(err)
	}
	// One pass: MinSize lowered, nothing in Standby yet or some entering.
	if err := x.r.Advance(t.Context(), op.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := x.r.Get(t.Context(), op.ID); got.Phase != PhaseStandby {
		t.Fatalf("the standby is already %s", got.Phase)
	}
	if _, err := x.r.RequestResume(t.Context(), "staging", false); err != nil {
		t.Fatal(err)
	}
	done := x.drive(op.ID, func() string { return op.ID }, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
	if done.State != ledger.UpdateAborted {
		t.Fatalf("rolled-back standby ended %s", done.State)
	}
	x.checkRestored(before)
}

func TestStandbyRefusesAndChangesNothing(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(x *rig)
		is    error
		says  string
	}{
		{"unknown environment", func(x *rig) { x.cloud.addGroup("prod", "other", 0, 1, 1, 0) }, ErrUnknownEnvironment, "no group, load balancer"},
		{"no groups", func(x *rig) { x.cloud.buckets = []Bucket{{Name: "b"}} }, ErrBadRequest, "no Auto Scaling group"},
		{"group mid-update", func(x *rig) {
			x.cloud.addGroup("staging", "orders", 1, 2, 1, 0)
			must(x.t, x.led.CreateUpdate(context.Background(), &ledger.Update{ID: "upd-1", Group: "orders", State: ledger.UpdateRunning, Phase: "batch"}))
		}, ErrBusy, "group update upd-1 of group orders"},
		{"handover running", func(x *rig) {
			x.cloud.addGroup("staging", "orders", 1, 2, 1, 0)
			must(x.t, x.led.CreateMigration(context.Background(), &ledger.Migration{ID: "tok-1", Group: "orders", Database: "orders-1", Instance: "i-new", State: ledger.Fencing}))
		}, ErrBusy, "handover tok-1 of database orders-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := newRig(t)
			tt.setup(x)
			_, _, err := x.r.StartStandby(t.Context(), ByName("staging"), false)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("got %v, want %v saying %q", err, tt.is, tt.says)
			}
			if len(x.cloud.log) != 0 {
				t.Errorf("a refused standby called the cloud: %v", x.cloud.log)
			}
			ops, _ := x.led.ListEnvOps(t.Context(), ledger.EnvOpQuery{})
			if len(ops) != 0 {
				t.Errorf("a refused standby recorded %d operations", len(ops))
			}
		})
	}
}

func TestStandbyDryRunPlans(t *testing.T) {
	x := newRig(t)
	x.build([]groupSpec{{"big", 25, 30, 24, 1}})
	op, plan, err := x.r.StartStandby(t.Context(), ByName("staging"), true)
	if err != nil || op != nil {
		t.Fatalf("dry run: %v, %v", op, err)
	}
	g := plan.Groups[0]
	if g.ToMin != 0 || g.Calls != 2 || len(g.Standby) != 24 || len(g.Pending) != 1 {
		t.Errorf("plan %+v", g)
	}
	if len(x.cloud.log) != 0 {
		t.Errorf("a dry run called the cloud: %v", x.cloud.log)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
