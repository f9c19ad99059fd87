package update

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

func validRolling() Request {
	return Request{Group: "web", Strategy: Rolling, Version: "2", BatchSize: 1}
}

func TestRequestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Request)
		want   []string // each error names the flag to change
	}{
		{"valid rolling", func(*Request) {}, nil},
		{"valid replace-all", func(q *Request) { q.Strategy, q.SignalTimeout = ReplaceAll, time.Minute }, nil},
		{"valid image", func(q *Request) { q.Version, q.ImageID = "", "ami-1" }, nil},
		{"valid migration group", func(q *Request) { q.MigrationGroup, q.MigrationTimeout = "web-migrate", time.Minute }, nil},
		{"valid edges", func(q *Request) { q.MinHealthyPercent, q.Pause, q.Bake = 100, 0, 0 }, nil},
		{"no group", func(q *Request) { q.Group = "" }, []string{"--group is required"}},
		{"no strategy", func(q *Request) { q.Strategy = "" }, []string{`--strategy "" is not rolling or replace-all`}},
		{"bad strategy", func(q *Request) { q.Strategy = "blue-green" }, []string{`--strategy "blue-green"`}},
		{"version and image", func(q *Request) { q.ImageID = "ami-1" }, []string{"--launch-template-version or --image-id, not both"}},
		{"batch size 0", func(q *Request) { q.BatchSize = 0 }, []string{"--batch-size must be at least 1, got 0"}},
		{"batch size negative", func(q *Request) { q.BatchSize = -2 }, []string{"--batch-size must be at least 1, got -2"}},
		{"min healthy negative", func(q *Request) { q.MinHealthyPercent = -1 }, []string{"--min-healthy-percent must be 0 to 100, got -1"}},
		{"min healthy over 100", func(q *Request) { q.MinHealthyPercent = 101 }, []string{"--min-healthy-percent must be 0 to 100, got 101"}},
		{"negative pause", func(q *Request) { q.Pause = -time.Second }, []string{"--pause and --bake must not be negative"}},
		{"negative bake", func(q *Request) { q.Bake = -time.Second }, []string{"--pause and --bake must not be negative"}},
		{"replace-all without signal timeout", func(q *Request) { q.Strategy = ReplaceAll }, []string{"--signal-timeout must be positive for replace-all"}},
		{"rolling needs no signal timeout", func(q *Request) { q.SignalTimeout = 0 }, nil},
		{"migration group without timeout", func(q *Request) { q.MigrationGroup = "web-migrate" }, []string{"--migration-timeout must be positive with --migration-group"}},
		{"migration group is the group", func(q *Request) { q.MigrationGroup, q.MigrationTimeout = "web", time.Minute }, []string{"--migration-group must name another group than --group"}},
		{"every mistake at once", func(q *Request) {
			*q = Request{Strategy: ReplaceAll, Version: "2", ImageID: "ami-1", MinHealthyPercent: 200, Pause: -1, MigrationGroup: "m"}
		}, []string{"--group", "--launch-template-version or --image-id", "--batch-size", "--min-healthy-percent", "--pause", "--signal-timeout", "--migration-timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := validRolling()
			tc.change(&q)
			err := q.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			errContains(t, err, tc.want...)
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.Contains(line, "--") {
					t.Errorf("error line %q names no flag to change", line)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // what the error says: the field and what it may be
		wrong  int      // how many fields are wrong: one error line each
	}{
		{"defaults with a holder", func(*Config) {}, nil, 0},
		{"smallest valid", func(c *Config) { c.LeaseTTL, c.BatchTimeout, c.Poll, c.MaxAborts = 1, 1, 1, 1 }, nil, 0},
		{"no holder", func(c *Config) { c.Holder = "" }, []string{"holder must not be empty"}, 1},
		{"no lease ttl", func(c *Config) { c.LeaseTTL = 0 }, []string{"lease TTL must be positive, got 0s"}, 1},
		{"negative batch timeout", func(c *Config) { c.BatchTimeout = -time.Minute }, []string{"batch timeout must be positive, got -1m0s"}, 1},
		{"negative poll", func(c *Config) { c.Poll = -time.Second }, []string{"poll interval must be positive, got -1s"}, 1},
		{"max aborts 0", func(c *Config) { c.MaxAborts = 0 }, []string{"max aborts must be at least 1", "got 0"}, 1},
		{"every mistake at once", func(c *Config) { *c = Config{} }, []string{"holder", "lease TTL", "batch timeout", "poll interval", "max aborts"}, 5},
	}
	e := newEnv(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Holder = "ctl"
			tc.change(&cfg)
			err := cfg.Validate()
			_, newErr := New(cfg, e.led, e.cloud, e.clk, nil)
			if tc.wrong == 0 {
				if err != nil || newErr != nil {
					t.Fatalf("Validate() = %v, New() = %v; want both nil", err, newErr)
				}
				return
			}
			errContains(t, err, tc.want...)
			if n := len(strings.Split(err.Error(), "\n")); n != tc.wrong {
				t.Errorf("%d error lines, want %d: %v", n, tc.wrong, err)
			}
			errContains(t, newErr, append([]string{"invalid update runner config"}, tc.want...)...)
		})
	}
}

// snapshot is what Plan must leave alone.
type snapshot struct {
	groups  map[string]Group
	dbs     map[string]ledger.Database
	updates int
	calls   []string
	latest  int
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	s := snapshot{groups: map[string]Group{}, dbs: map[string]ledger.Database{}}
	e.cloud.mu.Lock()
	for n, g := range e.cloud.groups {
		s.groups[n] = cloneGroup(g)
	}
	if lt := e.cloud.templates["lt-web"]; lt != nil {
		s.latest = lt.latest
	}
	e.cloud.mu.Unlock()
	dbs, err := e.led.ListDatabases(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, db := range dbs {
		s.dbs[db.ID] = *db
	}
	us, err := e.led.ListUpdates(e.ctx, ledger.UpdateQuery{})
	if err != nil {
		e.t.Fatal(err)
	}
	s.updates = len(us)
	s.calls = e.cloud.calls()
	return s
}

func batchIDs(p Plan) [][]string {
	var out [][]string
	for _, s := range p.Steps {
		if s.Phase == PhaseBatch {
			var b []string
			for _, i := range s.Instances {
				b = append(b, i.ID)
			}
			out = append(out, b)
		}
	}
	return out
}

func TestPlanRolling(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3) // i-0001 za db-1, i-0002 zb db-2, i-0003 zc db-3
	before := e.snapshot()

	req := validRolling()
	req.Bake, req.Pause = 2*time.Minute, 5*time.Minute
	p, err := e.r.Plan(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if p.Group != "web" || p.Strategy != Rolling || p.From.Version != "1" || p.To.Version != "2" || p.Capacity != 3 {
		t.Errorf("plan header %+v", p)
	}
	if got, want := batchIDs(p), [][]string{{"i-0001"}, {"i-0002"}, {"i-0003"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("batches %v, want %v", got, want)
	}
	for i, s := range p.Steps {
		in := s.Instances[0]
		if want := "db-" + in.ID[len(in.ID)-1:]; in.Database != want || in.Zone == "" {
			t.Errorf("step %d instance %+v, want database %s and a zone", i, in, want)
		}
		if !strings.Contains(s.WaitsFor, "bake 2m0s") {
			t.Errorf("step %d waits for %q, no bake", i, s.WaitsFor)
		}
		if hasPause := strings.Contains(s.WaitsFor, "pause 5m0s"); hasPause != (i < 2) {
			t.Errorf("step %d waits for %q: pause after the last batch, or none before", i, s.WaitsFor)
		}
	}
	if after := e.snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("Plan changed the world:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestPlanBatches(t *testing.T) {
	tests := []struct {
		name       string
		members    []Member // Version "" is 1
		desired    int32
		batch, min int32
		want       [][]string
		err        []string
	}{
		{
			name:    "skips instances on the target and leaving ones",
			members: []Member{{ID: "i-a", Zone: "za"}, {ID: "i-b", Zone: "zb", Version: "2"}, {ID: "i-c", Zone: "zc", Lifecycle: "Terminating"}, {ID: "i-d", Zone: "zc", Lifecycle: "Detaching"}, {ID: "i-e", Zone: "zb"}},
			desired: 5, batch: 1,
			want: [][]string{{"i-a"}, {"i-e"}},
		},
		{
			name:    "same zone by id",
			members: []Member{{ID: "i-c", Zone: "za"}, {ID: "i-a", Zone: "za"}, {ID: "i-b", Zone: "za"}},
			desired: 3, batch: 2,
			want: [][]string{{"i-a", "i-b"}, {"i-c"}},
		},
		{
			name:    "min healthy caps the batch",
			members: []Member{{ID: "i-a", Zone: "za"}, {ID: "i-b", Zone: "zb"}, {ID: "i-c", Zone: "zc"}},
			desired: 3, batch: 2, min: 50,
			err: []string{"--batch-size 2 would pause writes on 2 of 3 instances at once; --min-healthy-percent 50 allows at most 1: lower the batch size or the percentage"},
		},
		{
			name:    "min healthy allows the batch",
			members: []Member{{ID: "i-a", Zone: "za"}, {ID: "i-b", Zone: "zb"}, {ID: "i-c", Zone: "zc"}, {ID: "i-d", Zone: "za"}},
			desired: 4, batch: 2, min: 50,
			want: [][]string{{"i-a", "i-b"}, {"i-c", "i-d"}}, // zone by zone in turn
		},
		{
			name:    "min healthy 100 still allows one",
			members: []Member{{ID: "i-a", Zone: "za"}, {ID: "i-b", Zone: "zb"}},
			desired: 2, batch: 1, min: 100,
			want: [][]string{{"i-a"}, {"i-b"}},
		},
		{
			name:    "desired above the members counts",
			members: []Member{{ID: "i-a", Zone: "za"}, {ID: "i-b", Zone: "zb"}},
			desired: 4, batch: 2, min: 50,
			want: [][]string{{"i-a", "i-b"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tmpl := e.webTemplate()
			tmpl.Version = "1"
			for i := range tc.members {
				if tc.members[i].Version == "" {
					tc.members[i].Version = "1"
				}
			}
			e.cloud.addGroup(Group{Name: "web", Template: tmpl, Min: 0, Max: 10, Desired: tc.desired, Zones: []string{"za", "zb", "zc"}, Instances: tc.members})
			req := validRolling()
			req.BatchSize, req.MinHealthyPercent = tc.batch, tc.min
			p, err := e.r.Plan(e.ctx, req)
			if tc.err != nil {
				errContains(t, err, tc.err...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := batchIDs(p); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("batches %v, want %v", got, tc.want)
			}
		})
	}
}

// The comment on rollingBatches says "zone by zone in turn, so a batch
// spreads its pauses over zones".
func TestPlanBatchesSpreadOverZones(t *testing.T) {
	e := newEnv(t)
	tmpl := e.webTemplate()
	tmpl.Version = "1"
	e.cloud.addGroup(Group{Name: "web", Template: tmpl, Max: 4, Desired: 4, Zones: []string{"za", "zb"}, Instances: []Member{
		{ID: "i-a1", Zone: "za"}, {ID: "i-a2", Zone: "za"}, {ID: "i-b1", Zone: "zb"}, {ID: "i-b2", Zone: "zb"},
	}})
	req := validRolling()
	req.BatchSize = 2
	p, err := e.r.Plan(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := batchIDs(p), [][]string{{"i-a1", "i-b1"}, {"i-a2", "i-b2"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("regression: rollingBatches sorts by zone, so a batch of 2 takes both instances of one zone: got %v, want %v", got, want)
	}
}

func TestPlanVersions(t *testing.T) {
	tests := []struct {
		name           string
		version, image string
		wantTo         string
		batches        int
	}{
		{"a number", "2", "", "2", 3},
		{"empty is $Latest", "", "", "2", 3},
		{"$Latest", "$Latest", "", "2", 3},
		{"$Default is what runs", "$Default", "", "1", 0},
		{"image planned, not created", "", "ami-new", "(new version of 1 with image ami-new)", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.rollingWorld(3)
			before := e.snapshot()
			req := validRolling()
			req.Version, req.ImageID = tc.version, tc.image
			p, err := e.r.Plan(e.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if p.To.Version != tc.wantTo || p.To.ID != "lt-web" || len(batchIDs(p)) != tc.batches {
				t.Errorf("to %+v with %d batches, want version %q with %d", p.To, len(batchIDs(p)), tc.wantTo, tc.batches)
			}
			if n := e.cloud.count("NewTemplateVersion"); n != 0 {
				t.Errorf("Plan created %d template versions", n)
			}
			if after := e.snapshot(); !reflect.DeepEqual(before, after) {
				t.Errorf("Plan changed the world")
			}
		})
	}
}

func TestPlanReplaceAll(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	before := e.snapshot()
	req := Request{Group: "web", Strategy: ReplaceAll, BatchSize: 1, SignalTimeout: 10 * time.Minute, MigrationGroup: "web-migrate", MigrationTimeout: 5 * time.Minute}
	tmpl := e.cloud.group(t, "web").Template
	e.cloud.addGroup(Group{Name: "web-migrate", Template: tmpl, Max: 1, Desired: 1, Zones: []string{"za"}, Instances: []Member{{ID: "i-m1", Zone: "za"}}})
	p, err := e.r.Plan(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var got []Phase
	for _, s := range p.Steps {
		got = append(got, s.Phase)
	}
	if want := []Phase{PhaseMigrationGroup, PhaseLaunch, PhaseCutover, PhaseDeleteOld, PhaseCleanup}; !reflect.DeepEqual(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	if p.Capacity != 3 || !strings.Contains(p.Steps[1].WaitsFor, "3 SUCCESS signals") || len(p.Steps[1].Instances) != 3 || p.Steps[1].Instances[0].Database != "db-1" {
		t.Errorf("launch step %+v, capacity %d", p.Steps[1], p.Capacity)
	}
	if p.Steps[0].Instances[0].ID != "i-m1" || p.MigrationGroup != "web-migrate" {
		t.Errorf("migration group step %+v", p.Steps[0])
	}
	before.groups["web-migrate"] = e.cloud.group(t, "web-migrate")
	if after := e.snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("Plan changed the world")
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		req   Request
		want  []string
	}{
		{"invalid request", nil, Request{Group: "web", Strategy: Rolling}, []string{"--batch-size"}},
		{"unknown group", nil, Request{Group: "nope", Strategy: Rolling, BatchSize: 1}, []string{"group nope does not exist: check --group"}},
		{"unknown migration group", nil, Request{Group: "web", Strategy: Rolling, BatchSize: 1, MigrationGroup: "nope", MigrationTimeout: time.Minute}, []string{"migration group nope does not exist: check --migration-group"}},
		{"replace-all of an empty group", func(e *env) { e.cloud.scale("web", 0, 3, 0) }, Request{Group: "web", Strategy: ReplaceAll, BatchSize: 1, SignalTimeout: time.Minute}, []string{"desired capacity 0: nothing to replace"}},
		{"no launch template", func(e *env) {
			e.cloud.addGroup(Group{Name: "old", Max: 1, Desired: 1})
		}, Request{Group: "old", Strategy: Rolling, BatchSize: 1}, []string{"does not use a launch template", "update-auto-scaling-group"}},
		{"launch configuration", func(e *env) {
			e.cloud.addGroup(Group{Name: "lc", Max: 1, Desired: 1, LaunchConfiguration: "kv-v1"})
		}, Request{Group: "lc", Strategy: Rolling, BatchSize: 1}, []string{"group lc launches from launch configuration kv-v1", "create-launch-template", "--launch-template LaunchTemplateName=lc"}},
		{"migration group on a launch configuration", func(e *env) {
			e.cloud.addGroup(Group{Name: "mg", Max: 1, Desired: 1, LaunchConfiguration: "mg-v1"})
		}, Request{Group: "web", Strategy: Rolling, BatchSize: 1, MigrationGroup: "mg", MigrationTimeout: time.Minute}, []string{"migration group mg launches from launch configuration mg-v1"}},
		{"unknown version", nil, Request{Group: "web", Strategy: Rolling, BatchSize: 1, Version: "$Newest"}, []string{"resolving --launch-template-version $Newest"}},
		{"describe fails", func(e *env) { e.cloud.NextErr["DescribeGroup"] = errBoom }, Request{Group: "web", Strategy: Rolling, BatchSize: 1}, []string{"boom"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.rollingWorld(3)
			if tc.setup != nil {
				tc.setup(e)
			}
			before := e.snapshot()
			_, err := e.r.Plan(e.ctx, tc.req)
			errContains(t, err, tc.want...)
			if after := e.snapshot(); !reflect.DeepEqual(before, after) {
				t.Errorf("Plan changed the world")
			}
			// Start refuses the same way, and records nothing.
			if tc.setup != nil {
				tc.setup(e)
			}
			_, err = e.r.Start(e.ctx, tc.req)
			if err == nil {
				t.Errorf("Start succeeded")
			}
			if after := e.snapshot(); after.updates != 0 {
				t.Errorf("Start recorded an update")
			}
		})
	}
}

func TestStartRecords(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.cloud.scale("web", 2, 5, 3)
	req := validRolling()
	req.Bake, req.Pause, req.MinHealthyPercent = time.Minute, 2*time.Minute, 10
	u := e.start(req)
	if !strings.HasPrefix(u.ID, "upd-") || u.Group != "web" || u.State != ledger.UpdateRunning || u.Phase != PhaseBatch.String() {
		t.Errorf("update %+v", u)
	}
	if u.OldTemplate != (ledger.TemplateRef{ID: "lt-web", Name: "web", Version: "1"}) || u.OldMin != 2 || u.OldMax != 5 || u.OldDesired != 3 {
		t.Errorf("old group: template %+v min %d max %d desired %d", u.OldTemplate, u.OldMin, u.OldMax, u.OldDesired)
	}
	want := ledger.UpdateSpec{Strategy: Rolling, Template: ledger.TemplateRef{ID: "lt-web", Name: "web", Version: "2"}, BatchSize: 1, MinHealthyPercent: 10, Pause: 2 * time.Minute, Bake: time.Minute}
	if u.Spec != want {
		t.Errorf("spec %+v, want %+v", u.Spec, want)
	}
	if !reflect.DeepEqual(u.Batches, [][]string{{"i-0001"}, {"i-0002"}, {"i-0003"}}) || u.NewGroup != "" {
		t.Errorf("batches %v, new group %q", u.Batches, u.NewGroup)
	}
	if !u.CreatedAt.Equal(t0) || !u.BatchAt.Equal(t0) || len(u.Timeline) != 1 || u.Timeline[0].Phase != PhaseBatch.String() {
		t.Errorf("times %v %v, timeline %+v", u.CreatedAt, u.BatchAt, u.Timeline)
	}
	if stored := e.upd(u.ID); !reflect.DeepEqual(stored, u) {
		t.Errorf("stored update differs from the returned one:\n%+v\n%+v", stored, u)
	}
	if calls := e.cloud.calls(); len(calls) != 0 {
		t.Errorf("Start changed the cloud: %v", calls)
	}
}

func TestStartReplaceAllNamesTheNewGroup(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(2)
	u := e.start(Request{Group: "web", Strategy: ReplaceAll, BatchSize: 1, SignalTimeout: time.Minute})
	if u.Phase != PhaseLaunch.String() || u.NewGroup != "web-"+strings.TrimPrefix(u.ID, "upd-") || u.Batches != nil {
		t.Errorf("phase %s, new group %q, batches %v", u.Phase, u.NewGroup, u.Batches)
	}
}

func TestStartBusy(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.cloud.addGroup(Group{Name: "api", Template: e.cloud.group(t, "web").Template, Max: 1, Desired: 1, Zones: []string{"za"}, Instances: []Member{{}}})
	first := e.start(validRolling())

	_, err := e.r.Start(e.ctx, validRolling())
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second Start: %v, want ErrBusy", err)
	}
	errContains(t, err, first.ID, "handover update --abort "+first.ID)

	// Another group is free.
	other := validRolling()
	other.Group = "api"
	e.start(other)

	// A rolling-back update still holds the group.
	if _, err := e.r.Abort(e.ctx, first.ID, "operator"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Start(e.ctx, validRolling()); !errors.Is(err, ErrBusy) {
		t.Fatalf("Start during an abort: %v, want ErrBusy", err)
	}
	// Once it ended, the group is free again.
	u := e.advance(first.ID)
	if u.State != ledger.UpdateAborted {
		t.Fatalf("aborted update is %s", u.State)
	}
	e.start(validRolling())
}

// An invalid request must get the validation error that says what to
// change, whatever else runs.
func TestStartValidatesBeforeBusy(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	e.start(validRolling())
	_, err := e.r.Start(e.ctx, Request{Strategy: Rolling, BatchSize: 1})
	if errors.Is(err, ErrBusy) {
		t.Fatalf("regression: Start checks ListUpdates{Group: \"\"} (every group) before Validate: %v", err)
	}
	errContains(t, err, "--group is required")
}

func TestStartNothingToRollOut(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	req := validRolling()
	req.Version = "1"
	_, err := e.r.Start(e.ctx, req)
	errContains(t, err, "already runs launch template version 1 on every instance: nothing to roll out")
}

func TestStartImageCreatesVersion(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	req := validRolling()
	req.Version, req.ImageID = "", "ami-new"
	u := e.start(req)
	if u.Spec.Template.Version != "3" || u.OldTemplate.Version != "1" {
		t.Errorf("template %+v from %+v, want version 3 from 1", u.Spec.Template, u.OldTemplate)
	}
	if got := e.cloud.calls(); !reflect.DeepEqual(got, []string{"NewTemplateVersion lt-web 1 ami-new"}) {
		t.Errorf("calls %v", got)
	}
}

// A request refused after planning must not leave a launch template
// version behind.
func TestStartRefusedCreatesNoVersion(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	req := validRolling()
	req.Version, req.ImageID, req.BatchSize, req.MinHealthyPercent = "", "ami-new", 3, 50
	_, err := e.r.Start(e.ctx, req)
	errContains(t, err, "--batch-size 3")
	if n := e.cloud.count("NewTemplateVersion"); n != 0 {
		t.Fatalf("regression: Start created %d launch template version(s) before refusing the batch size (plan creates the version before rollingBatches checks)", n)
	}
}

func TestAbort(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	if _, err := e.r.Abort(e.ctx, "upd-nope", ""); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Abort(unknown) = %v, want ErrNotFound", err)
	}
	u := e.start(validRolling())
	got, err := e.r.Abort(e.ctx, u.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if !got.AbortRequested || got.Error != "aborted by request" || got.State != ledger.UpdateRunning {
		t.Errorf("after abort %+v", got)
	}
	// A second abort changes nothing, not even the reason.
	again, err := e.r.Abort(e.ctx, u.ID, "other reason")
	if err != nil || again.Error != "aborted by request" || again.Version != got.Version {
		t.Errorf("second abort: %v, %+v", err, again)
	}
	if calls := e.cloud.calls(); len(calls) != 0 {
		t.Errorf("Abort touched the cloud: %v", calls)
	}
	done := e.advance(u.ID)
	wantState(t, done, ledger.UpdateAborted, PhaseDone)
	if done.Error != "aborted by request" || done.EndedAt.IsZero() {
		t.Errorf("ended %+v", done)
	}
	// Nothing had been changed: no batch started, nothing to roll back.
	wantCapacity(t, e.cloud.group(t, "web"), 1, 3, 3)
	e.noMarks()
	// Aborting an ended update returns it as it is.
	ended, err := e.r.Abort(e.ctx, u.ID, "late")
	if err != nil || ended.State != ledger.UpdateAborted || ended.Error != "aborted by request" {
		t.Errorf("abort after the end: %v, %+v", err, ended)
	}
}

// A step that keeps failing rolls back after 20 attempts; the error counts
// are kept in the ledger.
func TestAdvanceRetriesThenFails(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(2)
	u := e.start(Request{Group: "web", Strategy: ReplaceAll, BatchSize: 1, SignalTimeout: time.Hour})
	e.advance(u.ID) // creates the new group, waits for signals
	for i := 1; i < 20; i++ {
		e.cloud.NextErr["Signals"] = errBoom
		if err := e.r.Advance(e.ctx, u.ID); !errors.Is(err, errBoom) {
			t.Fatalf("attempt %d: Advance = %v, want boom", i, err)
		}
		if got := e.upd(u.ID); got.Attempts != i || got.State != ledger.UpdateRunning {
			t.Fatalf("attempt %d: attempts %d state %s", i, got.Attempts, got.State)
		}
	}
	e.cloud.NextErr["Signals"] = errBoom
	_ = e.r.Advance(e.ctx, u.ID)
	got := e.upd(u.ID)
	if got.State != ledger.UpdateRollingBack || !strings.Contains(got.Error, "signals kept failing: boom") {
		t.Fatalf("after 20 failures: %s %q", got.State, got.Error)
	}
	got = e.advance(u.ID)
	wantState(t, got, ledger.UpdateFailed, PhaseDone)
	if e.cloud.exists(got.NewGroup) {
		t.Error("new group not deleted")
	}
	// One success resets the count.
	e2 := newEnv(t)
	e2.rollingWorld(2)
	u2 := e2.start(Request{Group: "web", Strategy: ReplaceAll, BatchSize: 1, SignalTimeout: time.Hour})
	e2.advance(u2.ID)
	e2.cloud.NextErr["Signals"] = errBoom
	_ = e2.r.Advance(e2.ctx, u2.ID)
	if got := e2.advance(u2.ID); got.Attempts != 0 {
		t.Errorf("attempts %d after a success, want 0", got.Attempts)
	}
}

func TestAdvanceAll(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	tmpl := e.cloud.group(t, "web").Template
	e.cloud.addGroup(Group{Name: "api", Template: tmpl, Min: 1, Max: 1, Desired: 1, Zones: []string{"za"}, Instances: []Member{{}}})
	a := e.start(validRolling())
	req := validRolling()
	req.Group = "api"
	b := e.start(req)
	if err := e.r.AdvanceAll(e.ctx); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"web", "api"} {
		if n := e.cloud.count("SetCapacity", g); n != 1 {
			t.Errorf("group %s: %d SetCapacity calls, want 1", g, n)
		}
	}
	// An ended update is not advanced; a failing one does not stop the others.
	if _, err := e.r.Abort(e.ctx, b.ID, ""); err != nil {
		t.Fatal(err)
	}
	e.advance(b.ID)
	e.cloud.NextErr["DescribeGroup"] = errBoom
	err := e.r.AdvanceAll(e.ctx)
	errContains(t, err, "advancing update "+a.ID, "boom")
	if got := e.upd(b.ID); got.State != ledger.UpdateAborted {
		t.Errorf("update b %s", got.State)
	}
}

// Another controller (another holder) advances nothing while the lease is
// held, and takes over once it expired.
func TestAdvanceLease(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	u := e.start(validRolling())
	e.advance(u.ID)
	other := e.runner("ctl-2")
	before, version := e.cloud.total(), e.upd(u.ID).Version
	e.cloud.converge("web")
	if err := other.Advance(e.ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if e.cloud.total() != before || e.upd(u.ID).Version != version {
		t.Fatalf("a second holder advanced a leased update")
	}
	e.clk.Advance(e.cfg.LeaseTTL)
	e.autoCore("web", "2")
	if err := other.Advance(e.ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.upd(u.ID); got.Phase != PhaseBatch.String() || got.Batch != 1 || e.cloud.count("Terminate") != 1 {
		t.Errorf("after the lease expired the other holder left the update in %s batch %d with %d terminates", got.Phase, got.Batch, e.cloud.count("Terminate"))
	}
	// Now the first one is locked out.
	before = e.cloud.total()
	if err := e.r.Advance(e.ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if e.cloud.total() != before {
		t.Errorf("the first holder advanced while the second held the lease")
	}
}

// Advance run at once by many goroutines of two controllers does each side
// effect once.
func TestAdvanceConcurrent(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	u := e.start(validRolling())
	runners := []*Runner{e.r, e.runner("ctl-2")}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := runners[i%2].Advance(e.ctx, u.ID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, m := e.cloud.count("SetTemplate"), e.cloud.count("SetCapacity"); n != 1 || m != 1 {
		t.Errorf("%d SetTemplate and %d SetCapacity calls, want 1 each", n, m)
	}
	if got := e.upd(u.ID); len(got.Replacements) != 1 {
		t.Errorf("replacements %+v, want one", got.Replacements)
	}
}

// leaseCounter counts AcquireLease calls, each a ledger write.
type leaseCounter struct {
	ledger.Ledger
	n atomic.Int32
}

func (l *leaseCounter) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error) {
	l.n.Add(1)
	return l.Ledger.AcquireLease(ctx, name, holder, now, ttl)
}

// A waiting update is advanced on every poll, but its lease is written
// only once half of LeaseTTL has gone.
func TestAdvanceRenewsLeaseNearExpiry(t *testing.T) {
	e := newEnv(t)
	e.rollingWorld(3)
	u := e.start(validRolling())
	led := &leaseCounter{Ledger: e.led}
	r, err := New(e.cfg, led, e.cloud, e.clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	step := e.cfg.LeaseTTL / 8
	for range 8 {
		if err := r.Advance(e.ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(step)
	}
	// Polls at 0, 1/8, …, 7/8 of the TTL: taken at 0, renewed at 1/2.
	if n := led.n.Load(); n != 2 {
		t.Errorf("%d AcquireLease calls over 8 polls in one TTL, want 2", n)
	}
}

func TestAdvanceUnknown(t *testing.T) {
	e := newEnv(t)
	if err := e.r.Advance(e.ctx, "upd-nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Advance(unknown) = %v, want ErrNotFound", err)
	}
}
