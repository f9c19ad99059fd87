package env

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// fakeMigrate is MigrateCloud, DeleteCloud and a verifier over
// fakeBuild's resources, its mutating calls counted by fakeCloud's mutate
// (so a test can kill the process at any of them).
type fakeMigrate struct {
	fb *fakeBuild
	// listeners maps each listener ARN to the target group it forwards
	// to; temp are the temporary ones.
	listeners  map[string]string
	temp       map[string]bool
	registered map[string][]string // target group -> instances
	attached   map[string][]string // group -> target groups attached
	unhealthy  map[string]bool     // instance -> unhealthy
	tags       map[string]map[string]string
	dropped    []string
	// fencedAtSwitch records how many of SRC's databases were fenced
	// when the entry was switched to DST.
	fencedAtSwitch []int
	// rdsFencedAtSwitch records whether SRC's RDS instance was fenced
	// when the entry was switched to DST.
	rdsFencedAtSwitch []bool
	verifyOK          bool
	verifies          int
}

func newFakeMigrate(fb *fakeBuild) *fakeMigrate {
	return &fakeMigrate{fb: fb, listeners: map[string]string{"arn:l/1": "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/staging-kv-tg/abc"},
		temp: map[string]bool{}, registered: map[string][]string{}, attached: map[string][]string{}, unhealthy: map[string]bool{}, tags: map[string]map[string]string{}, verifyOK: true}
}

func (f *fakeMigrate) lock() func() { f.fb.mu.Lock(); return f.fb.mu.Unlock }

func (f *fakeMigrate) AttachTargetGroup(_ context.Context, group, tg string) error {
	defer f.lock()()
	return f.fb.c.mutate("AttachLoadBalancerTargetGroups "+group+" "+tg, func() error {
		g := f.fb.c.groups[group]
		if g == nil {
			return fmt.Errorf("no group %s", group)
		}
		for _, i := range g.Instances {
			if i.Lifecycle == lcInService && !slices.Contains(f.registered[tg], i.ID) {
				f.registered[tg] = append(f.registered[tg], i.ID)
			}
		}
		if !slices.Contains(f.attached[group], tg) {
			f.attached[group] = append(f.attached[group], tg)
		}
		return nil
	})
}

func (f *fakeMigrate) TargetHealth(_ context.Context, tg string) (map[string]string, error) {
	defer f.lock()()
	h := map[string]string{}
	for _, id := range f.registered[tg] {
		h[id] = "healthy"
		if f.unhealthy[id] {
			h[id] = "unhealthy"
		}
	}
	return h, nil
}

func (f *fakeMigrate) CreateTempListener(_ context.Context, lb, tg string, tags map[string]string) (string, error) {
	defer f.lock()()
	for arn, to := range f.listeners {
		if f.temp[arn] && to == tg {
			return arn, nil
		}
	}
	arn := fmt.Sprintf("arn:l/temp-%d", len(f.temp)+1)
	return arn, f.fb.c.mutate("CreateListener "+tg, func() error {
		f.listeners[arn], f.temp[arn] = tg, true
		return nil
	})
}

func (f *fakeMigrate) DeleteListener(_ context.Context, arn string) error {
	defer f.lock()()
	return f.fb.c.mutate("DeleteListener "+arn, func() error {
		delete(f.listeners, arn)
		return nil
	})
}

func (f *fakeMigrate) SwitchListener(_ context.Context, arn, tg string) error {
	defer f.lock()()
	if _, ok := f.listeners[arn]; !ok {
		return errors.New("ListenerNotFound")
	}
	return f.fb.c.mutate("ModifyListener "+arn+" "+tg, func() error {
		if arn == "arn:l/1" && f.listeners[arn] != tg && tg == "arn:tg/prod-kv-tg-entry" {
			f.fencedAtSwitch = append(f.fencedAtSwitch, len(f.fb.fenced))
			_, rdsFenced := f.fb.rdsFenced["staging-pg"]
			f.rdsFencedAtSwitch = append(f.rdsFencedAtSwitch, rdsFenced)
		}
		f.listeners[arn] = tg
		return nil
	})
}

func (f *fakeMigrate) SetTags(_ context.Context, kind, id string, set map[string]string, remove []string) error {
	defer f.lock()()
	return f.fb.c.mutate("SetTags "+kind+" "+id, func() error {
		k := kind + " " + id
		if f.tags[k] == nil {
			f.tags[k] = map[string]string{}
			if kind == KindBucket && id == "staging-assets" {
				f.tags[k][TagEnvironment] = "staging"
			}
		}
		maps.Copy(f.tags[k], set)
		for _, r := range remove {
			delete(f.tags[k], r)
		}
		return nil
	})
}

func (f *fakeMigrate) drop(what string) error {
	defer f.lock()()
	return f.fb.c.mutate("Delete "+what, func() error {
		if !slices.Contains(f.dropped, what) {
			f.dropped = append(f.dropped, what)
		}
		return nil
	})
}

func (f *fakeMigrate) DeleteGroup(_ context.Context, name string) error {
	return f.drop("group " + name)
}
func (f *fakeMigrate) DeleteLoadBalancer(_ context.Context, arn string) error {
	return f.drop("load-balancer " + arn)
}
func (f *fakeMigrate) DeleteTargetGroup(_ context.Context, arn string) error {
	return f.drop("target-group " + arn)
}
func (f *fakeMigrate) DeleteDBInstance(_ context.Context, id, final string) error {
	return f.drop("rds " + id + " final " + strings.Split(final, "-final-")[1])
}
func (f *fakeMigrate) DeleteBucket(_ context.Context, name string) error {
	return f.drop("bucket " + name)
}

// The rest of DeleteCloud: a migration's drop does not call them.
func (f *fakeMigrate) OwnedResources(context.Context, string) ([]Owned, error) {
	return nil, errors.New("a migration's drop lists no operation's resources")
}
func (f *fakeMigrate) DeleteLaunchTemplate(_ context.Context, id string) error {
	return f.drop("launch-template " + id)
}
func (f *fakeMigrate) DeleteDBSnapshot(_ context.Context, id string) error {
	return f.drop("rds-snapshot " + id)
}
func (f *fakeMigrate) DeleteVolumeSnapshot(_ context.Context, id string) error {
	return f.drop("ebs-snapshot " + id)
}
func (f *fakeMigrate) DeleteVolume(_ context.Context, id string) error { return f.drop("volume " + id) }

func (f *fakeMigrate) Verify(_ context.Context, req VerifyRequest) (*VerifyReport, error) {
	defer f.lock()()
	f.verifies++
	if !f.verifyOK {
		return &VerifyReport{OK: false, Mismatches: []string{"database kv-1: 3 keys differ"}}, nil
	}
	return &VerifyReport{OK: true}, nil
}

var (
	_ MigrateCloud  = (*fakeMigrate)(nil)
	_ DeleteCloud   = (*fakeMigrate)(nil)
	_ cloneVerifier = (*fakeMigrate)(nil)
)

func migrateRig(t *testing.T) (*rig, *fakeReader, *fakeBuild, *fakeMigrate) {
	x, fr, fb := cloneRunRig(t)
	fm := newFakeMigrate(fb)
	return x, fr, fb, fm
}

func (x *rig) wire(fr *fakeReader, fb *fakeBuild, fm *fakeMigrate, verify bool) {
	x.r.Clone, x.r.Fence, x.r.Migrate, x.r.Reader, x.r.Delete, x.r.RDSFence = fb, fb, fm, fr, fm, fb
	x.r.VerifyClone = nil
	if verify {
		x.r.VerifyClone = fm
	}
}

var migrateReq = MigrateRequest{Name: "staging", Dest: "prod", Bake: 5 * time.Second, Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}}

func (x *rig) migrate(fr *fakeReader, fb *fakeBuild, fm *fakeMigrate, verify bool) *ledger.EnvOp {
	x.t.Helper()
	start := func() string {
		x.wire(fr, fb, fm, verify)
		op, _, err := x.r.StartMigrate(context.Background(), fr, migrateReq)
		if err != nil {
			x.t.Fatalf("StartMigrate: %v", err)
		}
		return op.ID
	}
	return x.drive(start(), start, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
}

// checkMigrated checks a migration of migrateRig that went to its end.
func checkMigrated(t *testing.T, x *rig, fb *fakeBuild, fm *fakeMigrate, op *ledger.EnvOp) {
	t.Helper()
	if op.State != ledger.UpdateSucceeded || op.Migration.SourceKept != "" {
		t.Fatalf("migration ended %s in %s (kept: %q): %s", op.State, op.Phase, op.Migration.SourceKept, op.Error)
	}
	// SRC's databases stay fenced until their group is dropped (their
	// fences go with their instances), so no write SRC takes after the
	// switch is lost with it; its RDS fence is lifted before the final
	// snapshot, so a restore of that is writable.
	if len(fb.fenced) != 2 {
		t.Errorf("SRC's databases fenced at the end: %v, want both (a write SRC took after the switch would be lost)", fb.fenced)
	}
	if len(fb.rdsFenced) != 0 {
		t.Errorf("SRC's RDS left read-only before its final snapshot: %v", fb.rdsFenced)
	}
	for _, fenced := range fm.rdsFencedAtSwitch {
		if !fenced {
			t.Errorf("the entry was switched with SRC's RDS instance writable: rows it acknowledged after its snapshot would be lost")
		}
	}
	for snap, fenced := range fb.rdsFencedAtSnap {
		if !fenced {
			t.Errorf("RDS snapshot %s was started with its instance writable", snap)
		}
	}
	for _, n := range fm.fencedAtSwitch {
		if n != 2 {
			t.Errorf("the entry was switched with %d of SRC's 2 databases fenced: writes SRC acknowledged after the snapshots would be lost", n)
		}
	}
	if len(fm.fencedAtSwitch) != 1 {
		t.Errorf("the entry was switched %d times, want once", len(fm.fencedAtSwitch))
	}
	if got := fm.listeners["arn:l/1"]; got != "arn:tg/prod-kv-tg-entry" || len(fm.listeners) != 1 {
		t.Errorf("listeners %v: want only the entry, forwarding to prod-kv-tg-entry", fm.listeners)
	}
	if got := fm.registered["arn:tg/prod-kv-tg-entry"]; !slices.Equal(got, []string{"i-prod-kv-00", "i-prod-kv-01"}) {
		t.Errorf("the entry's target group holds %v", got)
	}
	if got := fm.attached["prod-kv"]; !slices.Equal(got, []string{"arn:tg/prod-kv-tg-entry"}) {
		t.Errorf("DST's group has %v attached, want the entry's target group", got)
	}
	wantDropped := []string{"group staging-kv", "target-group arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/staging-kv-tg/abc", "rds staging-pg final staging-pg"}
	if !slices.Equal(fm.dropped, wantDropped) {
		t.Errorf("dropped %v, want %v (the entry's load balancer and the bucket kept)", fm.dropped, wantDropped)
	}
	for _, k := range []string{"group prod-kv", "target-group arn:tg/prod-kv-tg", "load-balancer arn:lb/prod-lb", "rds prod-pg", "bucket prod-assets", "launch-template lt-prod-kv-lt", "target-group arn:tg/prod-kv-tg-entry"} {
		if tags := fm.tags[k]; tags[TagEnvironment] != "staging" {
			t.Errorf("%s tagged %v: want handover:environment=staging", k, tags)
		}
	}
	if tags := fm.tags["bucket staging-assets"]; tags[TagEnvironment] != "" || !strings.HasPrefix(tags[TagDroppedFrom], "staging/") {
		t.Errorf("SRC's kept bucket tagged %v", tags)
	}
	c, err := x.r.Get(t.Context(), op.Migration.CloneOp)
	must(t, err)
	if c.State != ledger.UpdateSucceeded || c.Cloning.QuiesceHeld || c.Cloning.UnquiescedAt.Before(op.Migration.SwitchedAt) {
		t.Errorf("the clone: %s, quiesce held %v, lifted at %s (the switch at %s)", c.State, c.Cloning.QuiesceHeld, c.Cloning.UnquiescedAt, op.Migration.SwitchedAt)
	}
	if len(op.Migration.Unchanged) == 0 {
		t.Errorf("no physical name reported unchanged")
	}
	for _, id := range []string{"kv-1", "kv-2"} {
		d, err := x.led.GetDatabase(t.Context(), id)
		must(t, err)
		if d.DroppedBy != op.ID {
			t.Errorf("SRC's database %s dropped by %q, want the migration", id, d.DroppedBy)
		}
	}
}

func TestMigrateRuns(t *testing.T) {
	x, fr, fb, fm := migrateRig(t)
	op := x.migrate(fr, fb, fm, true)
	checkMigrated(t, x, fb, fm, op)
	var phases []string
	for _, s := range op.Timeline {
		phases = append(phases, s.Phase)
	}
	want := []string{PhaseMigrateClone, PhaseMigrateVerify, PhaseMigrateEntry, PhaseMigrateCutover, PhaseMigrateSwitched, PhaseMigrateBake, PhaseMigrateDrop, PhaseMigrateRetag}
	if !slices.Equal(phases, want) {
		t.Errorf("timeline %v, want %v", phases, want)
	}
	if fm.verifies != 1 {
		t.Errorf("verified %d times", fm.verifies)
	}
}

// The process killed before or after any call of the migration (its
// clone's included), then run again, ends in the same migration: the entry
// switched once, with SRC fenced, every resource made and dropped once.
func TestMigrateKilledAtEveryCall(t *testing.T) {
	x, fr, fb, fm := migrateRig(t)
	x.migrate(fr, fb, fm, true)
	total := x.cloud.calls
	for at := 1; at <= total; at++ {
		for _, before := range []bool{true, false} {
			t.Run(fmt.Sprintf("call %d before %v", at, before), func(t *testing.T) {
				x, fr, fb, fm := migrateRig(t)
				x.cloud.crashAt, x.cloud.crashBefore = at, before
				op := x.migrate(fr, fb, fm, true)
				checkMigrated(t, x, fb, fm, op)
				for k, n := range fb.creates {
					if n != 1 {
						t.Errorf("%s made %d times", k, n)
					}
				}
			})
		}
	}
}

// A target of DST unhealthy in the bake switches the entry back to SRC's
// target group; SRC is writable, nothing is dropped, DST is left.
func TestMigrateFailsBack(t *testing.T) {
	x, fr, fb, fm := migrateRig(t)
	start := func() string {
		x.wire(fr, fb, fm, true)
		op, _, err := x.r.StartMigrate(context.Background(), fr, migrateReq)
		must(t, err)
		return op.ID
	}
	id := start()
	x.drive(id, start, func(o *ledger.EnvOp) bool { return o.Phase == PhaseMigrateBake })
	if !slices.ContainsFunc(slices.Collect(maps.Keys(fm.temp)), func(arn string) bool {
		return fm.listeners[arn] == "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/staging-kv-tg/abc"
	}) {
		t.Errorf("in the bake no listener forwards to SRC's target group (listeners %v): a fail-back would meet unchecked targets", fm.listeners)
	}
	fm.unhealthy["i-prod-kv-01"] = true
	op := x.drive(id, start, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
	if len(fm.listeners) != 1 {
		t.Errorf("listeners after the fail-back %v: want the entry only", fm.listeners)
	}
	if op.State != ledger.UpdateFailed || !strings.Contains(op.Error, "i-prod-kv-01 turned unhealthy") || !strings.Contains(op.Error, "in DST's databases only") {
		t.Fatalf("migration %s: %s", op.State, op.Error)
	}
	if fm.listeners["arn:l/1"] != "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/staging-kv-tg/abc" || !op.Migration.SwitchedBack {
		t.Errorf("the entry forwards to %s after the fail-back", fm.listeners["arn:l/1"])
	}
	if len(fb.fenced) != 0 || len(fb.rdsFenced) != 0 || len(fm.dropped) != 0 {
		t.Errorf("fenced %v (RDS %v), dropped %v", fb.fenced, fb.rdsFenced, fm.dropped)
	}
	if _, ok := fb.made["group/prod-kv"]; !ok {
		t.Errorf("DST was not left for the abort")
	}
}

// A verify that fails stops the migration before the cutover: the entry
// never switched, SRC's fence lifted.
func TestMigrateVerifyFails(t *testing.T) {
	x, fr, fb, fm := migrateRig(t)
	fm.verifyOK = false
	op := x.migrate(fr, fb, fm, true)
	if op.State != ledger.UpdateFailed || !strings.Contains(op.Error, "3 keys differ") {
		t.Fatalf("migration %s: %s", op.State, op.Error)
	}
	if len(fm.fencedAtSwitch) != 0 || op.Migration.Switching || len(fb.fenced) != 0 {
		t.Errorf("switches %v, switching %v, fenced %v", fm.fencedAtSwitch, op.Migration.Switching, fb.fenced)
	}
}

// Without a verifier the cutover is made, but SRC is kept and DST keeps
// its name.
func TestMigrateWithoutVerifyKeepsSource(t *testing.T) {
	x, fr, fb, fm := migrateRig(t)
	op := x.migrate(fr, fb, fm, false)
	if op.State != ledger.UpdateSucceeded || !strings.Contains(op.Migration.SourceKept, "verify did not pass") {
		t.Fatalf("migration %s, kept %q: %s", op.State, op.Migration.SourceKept, op.Error)
	}
	if len(fm.dropped) != 0 || len(fm.tags) != 0 || len(fb.fenced) != 0 || fm.listeners["arn:l/1"] != "arn:tg/prod-kv-tg-entry" {
		t.Errorf("dropped %v, tags %v, fenced %v, entry -> %s", fm.dropped, fm.tags, fb.fenced, fm.listeners["arn:l/1"])
	}
}

func TestPlanMigrateRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		req  func(*MigrateRequest)
		rig  func(*rig)
		says string
	}{
		{"unknown entry", func(r *MigrateRequest) { r.Entry = "arn:l/nope" }, nil, "--entry arn:l/nope is not a listener"},
		{"no entry tag", nil, func(x *rig) { x.cloud.lbs[0].Listeners[0].Entry = false }, "tagged handover:entry=true"},
		{"negative bake", func(r *MigrateRequest) { r.Bake = -time.Second }, nil, "--bake -1s"},
		{"no group behind the entry", nil, func(x *rig) { x.cloud.groups["staging-kv"].TargetGroups = nil }, "no group of staging is attached"},
		{"bad name", func(r *MigrateRequest) { r.Name = "bad name" }, nil, "letters, digits and hyphens"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x, fr, fb, fm := migrateRig(t)
			x.wire(fr, fb, fm, true)
			req := migrateReq
			if tt.req != nil {
				tt.req(&req)
			}
			if tt.rig != nil {
				tt.rig(x)
			}
			_, _, err := x.r.StartMigrate(t.Context(), fr, req)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("err %v, want a bad request saying %q", err, tt.says)
			}
			ops, _ := x.led.ListEnvOps(t.Context(), ledger.EnvOpQuery{})
			if len(ops) != 0 || x.cloud.calls != 0 {
				t.Errorf("a refused migration recorded %d operations and made %d calls", len(ops), x.cloud.calls)
			}
		})
	}
}

// A fail-back killed at any of its calls, run again, still ends with the
// entry on SRC's target group and SRC unfenced.
func TestMigrateFailBackKilledAtEveryCall(t *testing.T) {
	failBack := func(t *testing.T, crashAt int, before bool) (*rig, *fakeBuild, *fakeMigrate, *ledger.EnvOp, int) {
		x, fr, fb, fm := migrateRig(t)
		start := func() string {
			x.wire(fr, fb, fm, true)
			op, _, err := x.r.StartMigrate(context.Background(), fr, migrateReq)
			must(t, err)
			return op.ID
		}
		id := start()
		x.drive(id, start, func(o *ledger.EnvOp) bool { return o.Phase == PhaseMigrateBake })
		fm.unhealthy["i-prod-kv-00"] = true
		calls := x.cloud.calls
		if crashAt > 0 {
			x.cloud.crashAt, x.cloud.crashBefore = calls+crashAt, before
		}
		op := x.drive(id, start, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
		return x, fb, fm, op, x.cloud.calls - calls
	}
	_, _, _, _, total := failBack(t, 0, false)
	if total == 0 {
		t.Fatal("the fail-back made no call")
	}
	for at := 1; at <= total; at++ {
		for _, before := range []bool{true, false} {
			t.Run(fmt.Sprintf("call %d before %v", at, before), func(t *testing.T) {
				_, fb, fm, op, _ := failBack(t, at, before)
				if op.State != ledger.UpdateFailed || !op.Migration.SwitchedBack {
					t.Fatalf("migration %s, switched back %v: %s", op.State, op.Migration.SwitchedBack, op.Error)
				}
				if got := fm.listeners["arn:l/1"]; got != "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/staging-kv-tg/abc" {
					t.Errorf("the entry forwards to %s", got)
				}
				if len(fb.fenced) != 0 || len(fm.dropped) != 0 {
					t.Errorf("fenced %v, dropped %v", fb.fenced, fm.dropped)
				}
			})
		}
	}
}

// DST's targets not healthy within the health timeout: the migration
// gives up before the switch, and SRC's writes come back.
func TestMigrateHealthTimeout(t *testing.T) {
	x, fr, fb, fm := migrateRig(t)
	fm.unhealthy["i-prod-kv-01"] = true
	req := migrateReq
	req.HealthTimeout = 10 * time.Second
	x.wire(fr, fb, fm, true)
	op, _, err := x.r.StartMigrate(t.Context(), fr, req)
	must(t, err)
	op = x.drive(op.ID, func() string { return op.ID }, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
	if op.State != ledger.UpdateFailed || !strings.Contains(op.Error, "1 of 2 healthy") || op.Migration.Switching || len(fb.fenced) != 0 {
		t.Errorf("migration %s (switching %v, fenced %v): %s", op.State, op.Migration.Switching, fb.fenced, op.Error)
	}
}
