package env

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// fakeDelete is DeleteCloud over fakeBuild's resources, its deletes
// counted by fakeCloud's mutate (so a test can kill the process at any).
type fakeDelete struct {
	*fakeBuild
	deletedVols []string
}

var _ DeleteCloud = (*fakeDelete)(nil)

func (f *fakeDelete) OwnedResources(_ context.Context, opID string) ([]Owned, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Owned
	for k, tags := range f.made {
		if tags[TagEnvOp] == opID {
			kind, name, _ := strings.Cut(k, "/")
			id := name
			switch kind {
			case KindTargetGroup:
				id = "arn:tg/" + name
			case KindLoadBalancer:
				id = "arn:lb/" + name
			case KindLaunchTemplate:
				id = "lt-" + name
			}
			out = append(out, Owned{Kind: kind, ID: id, Name: name})
		}
	}
	for id, tags := range f.snaps {
		if tags[TagEnvOp] == opID {
			out = append(out, Owned{Kind: KindEBSSnapshot, ID: id, Name: id})
		}
	}
	for name := range f.rdsSnaps {
		if strings.HasPrefix(name, "handover-"+opID+"-") {
			out = append(out, Owned{Kind: KindRDSSnapshot, ID: name, Name: name})
		}
	}
	SortForDelete(out)
	return out, nil
}

func (f *fakeDelete) del(kind, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c.mutate("Delete "+kind+" "+name, func() error {
		delete(f.made, kind+"/"+name)
		switch kind {
		case KindGroup:
			delete(f.c.groups, name)
			delete(f.c.tagged, name)
		case KindLoadBalancer:
			f.c.prodLBs = slices.DeleteFunc(f.c.prodLBs, func(l LoadBalancer) bool { return l.Name == name })
		case KindEBSSnapshot:
			delete(f.snaps, name)
		case KindRDSSnapshot:
			delete(f.rdsSnaps, name)
		case KindVolume:
			if !slices.Contains(f.deletedVols, name) {
				f.deletedVols = append(f.deletedVols, name)
			}
		}
		return nil
	})
}

func (f *fakeDelete) DeleteGroup(_ context.Context, name string) error { return f.del(KindGroup, name) }
func (f *fakeDelete) DeleteLaunchTemplate(_ context.Context, id string) error {
	return f.del(KindLaunchTemplate, strings.TrimPrefix(id, "lt-"))
}
func (f *fakeDelete) DeleteLoadBalancer(_ context.Context, arn string) error {
	return f.del(KindLoadBalancer, strings.TrimPrefix(arn, "arn:lb/"))
}
func (f *fakeDelete) DeleteTargetGroup(_ context.Context, arn string) error {
	return f.del(KindTargetGroup, strings.TrimPrefix(arn, "arn:tg/"))
}
func (f *fakeDelete) DeleteDBInstance(_ context.Context, id, _ string) error {
	return f.del(KindRDS, id)
}
func (f *fakeDelete) DeleteDBSnapshot(_ context.Context, id string) error {
	return f.del(KindRDSSnapshot, id)
}
func (f *fakeDelete) DeleteBucket(_ context.Context, name string) error {
	return f.del(KindBucket, name)
}
func (f *fakeDelete) DeleteVolumeSnapshot(_ context.Context, id string) error {
	return f.del(KindEBSSnapshot, id)
}
func (f *fakeDelete) DeleteVolume(_ context.Context, id string) error {
	return f.del(KindVolume, id)
}

// abort aborts the clone op until it ends, each restart (a killed run)
// asking for the abort again as `env abort` run again would.
func (x *rig) abort(fb *fakeBuild, fd *fakeDelete, id string) *ledger.EnvOp {
	x.t.Helper()
	start := func() string {
		x.r.Clone, x.r.Fence, x.r.Delete = fb, fb, fd
		op, err := x.r.FindAbortable(context.Background(), "staging", "")
		if err != nil {
			x.t.Fatalf("FindAbortable: %v", err)
		}
		if op, err = x.r.Abort(context.Background(), op); err != nil {
			x.t.Fatalf("Abort: %v", err)
		}
		return op.ID
	}
	got := start()
	if got != id {
		x.t.Fatalf("the abort found operation %s, want %s", got, id)
	}
	return x.drive(got, start, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
}

// checkAborted: nothing the clone made is left, SRC is unfenced and as it
// was, DST's databases are dropped and their volumes deleted.
func checkAborted(t *testing.T, x *rig, fb *fakeBuild, fd *fakeDelete, op *ledger.EnvOp) {
	t.Helper()
	if op.State != ledger.UpdateAborted || op.Error != "" {
		t.Fatalf("abort ended %s in %s: %q", op.State, op.Phase, op.Error)
	}
	if len(fb.fenced) != 0 {
		t.Errorf("SRC left fenced: %v", fb.fenced)
	}
	if len(fb.made) != 0 || len(fb.snaps) != 0 || len(fb.rdsSnaps) != 0 {
		t.Errorf("left behind: made %v, snapshots %v, RDS snapshots %v", slices.Sorted(maps.Keys(fb.made)), fb.snaps, fb.rdsSnaps)
	}
	if _, ok := x.cloud.groups["prod-kv"]; ok {
		t.Error("DST's group is still there")
	}
	dbs, err := x.led.ListDatabases(t.Context())
	must(t, err)
	for _, d := range dbs {
		switch d.ID {
		case "kv-1", "kv-2":
			if d.Dropped() {
				t.Errorf("SRC's database %s dropped", d.ID)
			}
		default:
			if !d.Dropped() || d.DroppedBy != op.ID {
				t.Errorf("DST's database %+v not dropped by %s", d, op.ID)
			}
			if d.Volume != "" && !slices.Contains(fd.deletedVols, d.Volume) {
				t.Errorf("DST's database %s volume %s not deleted (deleted %v)", d.ID, d.Volume, fd.deletedVols)
			}
		}
	}
	var phases []string
	for _, s := range op.Timeline {
		if strings.HasPrefix(s.Phase, "abort-") && !slices.Contains(phases, s.Phase) {
			phases = append(phases, s.Phase)
		}
	}
	if !slices.Equal(phases, []string{PhaseAbortUnquiesce, PhaseAbortDelete, PhaseAbortCheck}) {
		t.Errorf("abort phases %v", phases)
	}
	inv, err := Discover(t.Context(), x.cloud, x.led, ByName("staging"))
	must(t, err)
	rec, err := decodeClone(op)
	must(t, err)
	if d := CompareInventories(rec.Source, inv); len(d) != 0 {
		t.Errorf("SRC differs after the abort: %v", d)
	}
	if _, err := Discover(t.Context(), x.cloud, x.led, ByName("prod")); err == nil {
		t.Error("environment prod still exists")
	}
}

// advanceTo starts the clone and advances it until phase.
func (x *rig) advanceTo(fr *fakeReader, fb *fakeBuild, phase string) *ledger.EnvOp {
	x.t.Helper()
	req := CloneRequest{Source: ByName("staging"), Dest: "prod", Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}}
	op, _, err := x.r.StartClone(context.Background(), fr, req)
	must(x.t, err)
	for range 100 {
		if op.Phase == phase {
			return op
		}
		// One step at a time: Advance would run every step it can.
		more, err := x.r.advanceOnce(context.Background(), op.ID)
		must(x.t, err)
		_ = more
		if op, err = x.r.Get(context.Background(), op.ID); err != nil {
			x.t.Fatal(err)
		}
	}
	x.t.Fatalf("the clone never reached %s (at %s)", phase, op.Phase)
	return nil
}

func TestAbortAtEveryPhase(t *testing.T) {
	for _, phase := range []string{PhaseCloneQuiesce, PhaseCloneSnapshot, PhaseCloneUnquiesce, PhaseCloneCopy, PhaseCloneBuild, PhaseCloneWait, PhaseDone} {
		t.Run(phase, func(t *testing.T) {
			x, fr, fb := cloneRunRig(t)
			fd := &fakeDelete{fakeBuild: fb}
			var op *ledger.EnvOp
			if phase == PhaseDone {
				op = x.clone(fr, fb)
			} else {
				op = x.advanceTo(fr, fb, phase)
			}
			if phase == PhaseCloneSnapshot && len(fb.fenced) != 2 {
				t.Fatalf("in %s SRC is fenced %v, want both", phase, fb.fenced)
			}
			done := x.abort(fb, fd, op.ID)
			checkAborted(t, x, fb, fd, done)
			// Run again: converged, nothing to do.
			before := x.cloud.calls
			if again := x.abort(fb, fd, op.ID); again.State != ledger.UpdateAborted || x.cloud.calls != before {
				t.Errorf("a second abort: %s, %d calls", again.State, x.cloud.calls-before)
			}
			// DST's names are free again: the clone can be run anew.
			x.r.Clone, x.r.Fence = fb, fb
			if _, _, err := x.r.PlanClone(t.Context(), fr, CloneRequest{Source: ByName("staging"), Dest: "prod",
				Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}}); err != nil {
				t.Errorf("planning the clone again after the abort: %v", err)
			}
		})
	}
}

// The abort killed before or after any of its calls, then run again,
// converges: a clone aborted while building DST.
func TestAbortKilledAtEveryCall(t *testing.T) {
	probe := func() (int, int) {
		x, fr, fb := cloneRunRig(t)
		fd := &fakeDelete{fakeBuild: fb}
		op := x.clone(fr, fb)
		before := x.cloud.calls
		x.abort(fb, fd, op.ID)
		return before, x.cloud.calls
	}
	from, to := probe()
	if to-from < 8 {
		t.Fatalf("the abort made %d calls; want its unfence and deletes", to-from)
	}
	for at := from + 1; at <= to; at++ {
		for _, before := range []bool{true, false} {
			t.Run(fmt.Sprintf("call %d before %v", at-from, before), func(t *testing.T) {
				x, fr, fb := cloneRunRig(t)
				fd := &fakeDelete{fakeBuild: fb}
				op := x.clone(fr, fb)
				x.cloud.crashAt, x.cloud.crashBefore = at, before
				checkAborted(t, x, fb, fd, x.abort(fb, fd, op.ID))
			})
		}
	}
}

// SRC changed since the clone started: the abort says how, after looking
// again MaxAbortChecks times.
func TestAbortReportsSourceChanged(t *testing.T) {
	x, fr, fb := cloneRunRig(t)
	fd := &fakeDelete{fakeBuild: fb}
	op := x.clone(fr, fb)
	x.cloud.groups["staging-kv"].Max = 9
	done := x.abort(fb, fd, op.ID)
	if done.State != ledger.UpdateAborted || !strings.Contains(done.Error, "group staging-kv: max_size 4 -> 9") || done.Aborting.Checks != MaxAbortChecks {
		t.Errorf("ended %s after %d checks: %q", done.State, done.Aborting.Checks, done.Error)
	}
	if len(fb.made) != 0 {
		t.Errorf("left behind %v", fb.made)
	}
}

func TestFindAbortable(t *testing.T) {
	x, _, _ := cloneRunRig(t)
	if _, err := x.r.FindAbortable(t.Context(), "staging", ""); err == nil || !strings.Contains(err.Error(), "nothing to abort") {
		t.Errorf("no operation: %v", err)
	}
	if _, err := x.r.FindAbortable(t.Context(), "staging", "env-nope"); err == nil {
		t.Error("an unknown --op: no error")
	}
	other := &ledger.EnvOp{ID: "env-new", Environment: "staging", Op: "frobnicate", State: ledger.UpdateRunning, Phase: "frob", CreatedAt: epoch}
	must(t, x.led.CreateEnvOp(t.Context(), other))
	op, err := x.r.FindAbortable(t.Context(), "staging", "")
	must(t, err)
	if _, err := x.r.Abort(t.Context(), op); err == nil || !strings.Contains(err.Error(), "not supported for this op kind yet") {
		t.Errorf("aborting a %s: %v", op.Op, err)
	}
}

func TestCompareInventories(t *testing.T) {
	base := func() *Inventory {
		return &Inventory{Selector: ByName("staging"),
			Groups:    []Group{{Name: "web", Min: 1, Max: 3, Desired: 2, Instances: []Instance{{ID: "i-1", Lifecycle: "InService"}}}},
			Databases: []Database{{ID: "kv-1", Group: "web", Volume: "vol-1", Epoch: 3}},
			Buckets:   []Bucket{{Name: "assets"}}}
	}
	for _, tc := range []struct {
		name   string
		change func(*Inventory)
		want   []string
	}{
		{"same", func(*Inventory) {}, nil},
		{"nil and empty lists are the same", func(i *Inventory) { i.LoadBalancers = []LoadBalancer{}; i.Groups[0].Hooks = []Hook{} }, nil},
		{"capacity", func(i *Inventory) { i.Groups[0].Desired = 1 }, []string{"group web: desired_capacity 2 -> 1"}},
		{"instance to standby", func(i *Inventory) { i.Groups[0].Instances[0].Lifecycle = "Standby" },
			[]string{`group web: instances [{"id":"i-1","lifecycle":"InService"}] -> [{"id":"i-1","lifecycle":"Standby"}]`}},
		{"epoch", func(i *Inventory) { i.Databases[0].Epoch = 4 }, []string{"database kv-1: epoch 3 -> 4"}},
		{"claim", func(i *Inventory) { i.Databases[0].Claim = "m-1" }, []string{`database kv-1: claim (none) -> "m-1"`}},
		{"bucket gone, one new", func(i *Inventory) { i.Buckets = []Bucket{{Name: "assets2"}} }, []string{"bucket assets: gone", "bucket assets2: new"}},
		{"rds new", func(i *Inventory) { i.DBInstances = []DBInstance{{ID: "pg"}} }, []string{"rds pg: new"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			after := base()
			tc.change(after)
			if got := CompareInventories(base(), after); !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestJudgeOpResources(t *testing.T) {
	x := newRig(t)
	ctx := t.Context()
	for _, o := range []*ledger.EnvOp{
		{ID: "env-run", Environment: "staging", Op: OpClone, State: ledger.UpdateRunning, Phase: PhaseCloneBuild},
		{ID: "env-abort", Environment: "staging", Op: OpClone, State: ledger.UpdateRollingBack, Phase: PhaseAbortDelete},
		{ID: "env-aborted", Environment: "staging", Op: OpClone, State: ledger.UpdateAborted, Phase: PhaseDone},
		{ID: "env-ok", Environment: "staging", Op: OpClone, State: ledger.UpdateSucceeded, Phase: PhaseDone},
	} {
		o.CreatedAt = epoch
		must(t, x.led.CreateEnvOp(ctx, o))
	}
	res := func(op string) OpResource {
		return OpResource{Owned: Owned{Kind: KindBucket, ID: "b-" + op, Name: "b-" + op}, Op: op}
	}
	got, err := JudgeOpResources(ctx, x.led, []OpResource{res("env-run"), res("env-abort"), res("env-aborted"), res("env-ok"), res("env-gone")})
	must(t, err)
	want := map[string]bool{"env-run": false, "env-abort": false, "env-aborted": true, "env-ok": false, "env-gone": true}
	for _, v := range got {
		if v.Leaked != want[v.Op] || v.Reason == "" {
			t.Errorf("%s of %s (%s): leaked %v (%s), want %v", v.ID, v.Op, v.State, v.Leaked, v.Reason, want[v.Op])
		}
	}
	// A ledger with no environment operation: nothing is leaked for want of a record.
	empty := newRig(t)
	got, err = JudgeOpResources(ctx, empty.led, []OpResource{res("env-gone")})
	must(t, err)
	if got[0].Leaked || !strings.Contains(got[0].Reason, "knows no environment operation") {
		t.Errorf("on an empty ledger: %+v", got[0])
	}
}

// A migration aborted before its drop: the entry listener back to SRC's
// target group, the temporary listener gone, SRC's held fence lifted,
// everything the migration and its clone made deleted, SRC as it was.
func TestAbortMigration(t *testing.T) {
	for _, phase := range []string{PhaseMigrateClone, PhaseMigrateVerify, PhaseMigrateEntry, PhaseMigrateCutover, PhaseMigrateBake} {
		t.Run(phase, func(t *testing.T) {
			x, fr, fb, fm := migrateRig(t)
			fd := &fakeDelete{fakeBuild: fb}
			start := func() string {
				x.wire(fr, fb, fm, true)
				op, _, err := x.r.StartMigrate(context.Background(), fr, migrateReq)
				must(t, err)
				return op.ID
			}
			id := start()
			for i := 0; ; i++ {
				o, err := x.r.Get(context.Background(), id)
				must(t, err)
				if o.Phase == phase {
					break
				}
				if i > 200 || o.State.Terminal() {
					t.Fatalf("the migration never stopped in %s (%s, %s)", phase, o.State, o.Phase)
				}
				_, err = x.r.advanceOnce(context.Background(), id) // one step at a time
				must(t, err)
				x.clk.Advance(time.Second)
			}
			abort := func() string {
				x.wire(fr, fb, fm, true)
				x.r.Delete = fd
				op, err := x.r.FindAbortable(context.Background(), "staging", "")
				must(t, err)
				if op.ID != id {
					t.Fatalf("the abort found %s %s, want the migration %s", op.Op, op.ID, id)
				}
				op, err = x.r.Abort(context.Background(), op)
				must(t, err)
				return op.ID
			}
			op := x.drive(abort(), abort, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
			if op.State != ledger.UpdateAborted || op.Error != "" {
				t.Fatalf("abort ended %s: %s", op.State, op.Error)
			}
			if got := fm.listeners["arn:l/1"]; got != "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/staging-kv-tg/abc" || len(fm.listeners) != 1 {
				t.Errorf("listeners %v: want only the entry, back on SRC's target group", fm.listeners)
			}
			if len(fb.fenced) != 0 || len(fb.rdsFenced) != 0 || len(fb.made) != 0 || len(fb.snaps) != 0 || len(fm.dropped) != 0 {
				t.Errorf("fenced %v (RDS %v), left %v, snapshots %v, SRC dropped %v", fb.fenced, fb.rdsFenced, slices.Sorted(maps.Keys(fb.made)), fb.snaps, fm.dropped)
			}
			if op.Migration.CloneOp != "" {
				c, err := x.r.Get(t.Context(), op.Migration.CloneOp)
				must(t, err)
				if !c.State.Terminal() || c.Cloning.QuiesceHeld {
					t.Errorf("the migration's clone %s, quiesce held %v", c.State, c.Cloning.QuiesceHeld)
				}
				rec, err := decodeClone(c)
				must(t, err)
				inv, err := Discover(t.Context(), x.cloud, x.led, ByName("staging"))
				must(t, err)
				if d := CompareInventories(rec.Source, inv); len(d) != 0 {
					t.Errorf("SRC differs: %v", d)
				}
			}
		})
	}
}

// A clone quiesced by standby, aborted with SRC's instances in Standby:
// they come back, MinSize and DesiredCapacity as before, SRC as it was.
func TestAbortStandbyClone(t *testing.T) {
	x, fr, fb := cloneRunRig(t)
	fd := &fakeDelete{fakeBuild: fb}
	req := CloneRequest{Source: ByName("staging"), Dest: "prod", Quiesce: QuiesceStandby, Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}}
	op, _, err := x.r.StartClone(context.Background(), fr, req)
	must(t, err)
	for i := 0; ; i++ {
		g := x.cloud.groups["staging-kv"]
		standby := 0
		for _, in := range g.Instances {
			if in.Lifecycle == lcStandby {
				standby++
			}
		}
		if standby == 2 {
			break
		}
		if i > 50 {
			t.Fatalf("SRC's instances never reached Standby: %+v", g.Instances)
		}
		_, err := x.r.advanceOnce(context.Background(), op.ID)
		must(t, err)
	}
	done := x.abort(fb, fd, op.ID)
	checkAborted(t, x, fb, fd, done)
	g := x.cloud.groups["staging-kv"]
	if g.Min != 2 || g.Desired != 2 {
		t.Errorf("SRC's group min %d desired %d after the abort, want 2 and 2", g.Min, g.Desired)
	}
}
