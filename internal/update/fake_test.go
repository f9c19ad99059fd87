package update

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

// fakeCloud is an in-memory Cloud: groups with members, launch templates
// with numbered versions, and signal tags that, like EC2's, outlive the
// instance they are on (DescribeInstances shows a terminated instance for
// about an hour). The group's own behaviour — launching up to its desired
// capacity, replacing what left — runs only when the test calls converge, so
// a test decides exactly what the runner sees at each step.
type fakeCloud struct {
	mu        sync.Mutex
	groups    map[string]*Group
	hooks     map[string][]Hook
	templates map[string]*fakeTemplate     // by template id
	signals   map[string]map[string]string // group → instance → signal
	deleting  map[string]int               // group → describes left before it is gone
	counts    map[string]int               // "Method" and "Method group"
	seq       int

	// Calls lists the mutating calls in order, e.g. "SetCapacity web 1 4 4".
	Calls []string
	// Created lists every CreateGroup request, repeats included.
	Created []NewGroup
	// NextErr fails the next call of a method, once.
	NextErr map[string]error
	// LaunchAs is the lifecycle of instances converge launches
	// (default InService).
	LaunchAs string
	// DeleteLag keeps a deleted group describable for this many
	// DescribeGroup calls, as a force delete takes a while.
	DeleteLag int
	// BeforeTerminate, when set, vets a Terminate before it happens; it
	// runs with the fake locked and must not call the fake.
	BeforeTerminate func(g *Group, instance string) error
}

var _ Cloud = (*fakeCloud)(nil)

type fakeTemplate struct {
	name        string
	latest, def int
}

func newFakeCloud() *fakeCloud {
	f := &fakeCloud{}
	f.Reset()
	f.groups = map[string]*Group{}
	f.hooks = map[string][]Hook{}
	f.templates = map[string]*fakeTemplate{}
	f.signals = map[string]map[string]string{}
	f.deleting = map[string]int{}
	return f
}

// Reset forgets the recorded calls and pending errors, not the world.
func (f *fakeCloud) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls, f.Created = nil, nil
	f.counts = map[string]int{}
	f.NextErr = map[string]error{}
}

// call records a call and returns the error planned for it, if any.
func (f *fakeCloud) call(method, group string, mutating bool, args ...any) error {
	f.counts[method]++
	f.counts[method+" "+group]++
	f.counts["*"]++
	if mutating {
		s := method + " " + group
		for _, a := range args {
			s += " " + fmt.Sprint(a)
		}
		f.Calls = append(f.Calls, s)
	}
	if err := f.NextErr[method]; err != nil {
		delete(f.NextErr, method)
		return err
	}
	return nil
}

// count returns how often method was called, on group if one is given.
func (f *fakeCloud) count(method string, group ...string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(group) > 0 {
		return f.counts[method+" "+group[0]]
	}
	return f.counts[method]
}

// total counts every call, reads included.
func (f *fakeCloud) total() int { return f.count("*") }

// calls returns a copy of Calls.
func (f *fakeCloud) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Calls)
}

// callsOn returns the mutating calls made on group.
func (f *fakeCloud) callsOn(group string) []string {
	var out []string
	for _, c := range f.calls() {
		if parts := strings.Fields(c); len(parts) > 1 && parts[1] == group {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeCloud) notFound(what string) error {
	return fmt.Errorf("%s: %w", what, handover.ErrNotFound)
}

func (f *fakeCloud) template(t ledger.TemplateRef) (*fakeTemplate, error) {
	if lt, ok := f.templates[t.ID]; ok && t.ID != "" {
		return lt, nil
	}
	for _, lt := range f.templates {
		if t.Name != "" && lt.name == t.Name {
			return lt, nil
		}
	}
	return nil, f.notFound("launch template " + t.ID + t.Name)
}

func (f *fakeCloud) resolve(t ledger.TemplateRef) (string, error) {
	if _, err := strconv.Atoi(t.Version); err == nil {
		return t.Version, nil
	}
	lt, err := f.template(t)
	if err != nil {
		return "", err
	}
	switch t.Version {
	case "$Latest":
		return strconv.Itoa(lt.latest), nil
	case "$Default", "":
		return strconv.Itoa(lt.def), nil
	}
	return "", fmt.Errorf("launch template version %q is not $Latest, $Default or a number", t.Version)
}

func cloneGroup(g *Group) Group {
	c := *g
	c.Zones = slices.Clone(g.Zones)
	c.TargetGroups = slices.Clone(g.TargetGroups)
	c.Tags = slices.Clone(g.Tags)
	c.Instances = slices.Clone(g.Instances)
	return c
}

// DescribeGroup implements Cloud.
func (f *fakeCloud) DescribeGroup(_ context.Context, name string) (Group, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DescribeGroup", name, false); err != nil {
		return Group{}, err
	}
	if n, ok := f.deleting[name]; ok {
		if n <= 0 {
			delete(f.deleting, name)
			delete(f.groups, name)
			delete(f.hooks, name)
		} else {
			f.deleting[name] = n - 1
		}
	}
	g, ok := f.groups[name]
	if !ok {
		return Group{}, f.notFound("describing group " + name)
	}
	return cloneGroup(g), nil
}

// Hooks implements Cloud.
func (f *fakeCloud) Hooks(_ context.Context, group string) ([]Hook, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Hooks", group, false); err != nil {
		return nil, err
	}
	if _, ok := f.groups[group]; !ok {
		return nil, f.notFound("listing hooks of group " + group)
	}
	return slices.Clone(f.hooks[group]), nil
}

// ResolveVersion implements Cloud.
func (f *fakeCloud) ResolveVersion(_ context.Context, t ledger.TemplateRef) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ResolveVersion", cmp.Or(t.ID, t.Name), false); err != nil {
		return "", err
	}
	return f.resolve(t)
}

// NewTemplateVersion implements Cloud.
func (f *fakeCloud) NewTemplateVersion(_ context.Context, t ledger.TemplateRef, imageID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("NewTemplateVersion", cmp.Or(t.ID, t.Name), true, t.Version, imageID); err != nil {
		return "", err
	}
	lt, err := f.template(t)
	if err != nil {
		return "", err
	}
	lt.latest++
	return strconv.Itoa(lt.latest), nil
}

// SetTemplate implements Cloud.
func (f *fakeCloud) SetTemplate(_ context.Context, group string, t ledger.TemplateRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("SetTemplate", group, true, t.Version); err != nil {
		return err
	}
	g, ok := f.groups[group]
	if !ok {
		return f.notFound("setting the template of group " + group)
	}
	g.Template = t
	return nil
}

// SetCapacity implements Cloud. Like Auto Scaling it refuses min > desired
// or desired > max.
func (f *fakeCloud) SetCapacity(_ context.Context, group string, lo, hi, desired int32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("SetCapacity", group, true, lo, hi, desired); err != nil {
		return err
	}
	g, ok := f.groups[group]
	if !ok {
		return f.notFound("setting the capacity of group " + group)
	}
	if lo > desired || desired > hi {
		return fmt.Errorf("ValidationError: desired capacity %d is not within min %d and max %d", desired, lo, hi)
	}
	g.Min, g.Max, g.Desired = lo, hi, desired
	return nil
}

// Terminate implements Cloud: the member goes Terminating (converge removes
// it) and desired capacity drops by one.
func (f *fakeCloud) Terminate(_ context.Context, group, instance string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Terminate", group, true, instance); err != nil {
		return err
	}
	g, ok := f.groups[group]
	if !ok {
		return nil
	}
	for i := range g.Instances {
		m := &g.Instances[i]
		if m.ID != instance || isLeaving(m.Lifecycle) {
			continue
		}
		if g.Desired-1 < g.Min {
			return fmt.Errorf("ValidationError: terminating %s would take group %s below its minimum %d", instance, group, g.Min)
		}
		if f.BeforeTerminate != nil {
			if err := f.BeforeTerminate(g, instance); err != nil {
				return err
			}
		}
		m.Lifecycle = "Terminating"
		g.Desired--
	}
	return nil
}

// CreateGroup implements Cloud.
func (f *fakeCloud) CreateGroup(_ context.Context, n NewGroup) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CreateGroup", n.Name, true, n.Template.Version, n.Min, n.Max, n.Desired); err != nil {
		return err
	}
	f.Created = append(f.Created, n)
	if _, ok := f.groups[n.Name]; ok {
		return nil
	}
	g := &Group{
		Name: n.Name, Template: n.Template, Min: n.Min, Max: n.Max, Desired: n.Desired,
		Zones: slices.Clone(n.Like.Zones), Subnets: n.Like.Subnets, TargetGroups: slices.Clone(n.Like.TargetGroups),
		HealthCheckType: n.Like.HealthCheckType, HealthCheckGrace: n.Like.HealthCheckGrace,
		MaintenanceMin: n.Like.MaintenanceMin, MaintenanceMax: n.Like.MaintenanceMax,
	}
	for _, t := range n.Like.Tags {
		if _, over := n.Tags[t.Key]; !over {
			g.Tags = append(g.Tags, t)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(n.Tags)) {
		g.Tags = append(g.Tags, Tag{Key: k, Value: n.Tags[k], Propagate: true})
	}
	f.groups[n.Name] = g
	f.hooks[n.Name] = slices.Clone(n.Hooks)
	return nil
}

// DeleteGroup implements Cloud.
func (f *fakeCloud) DeleteGroup(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DeleteGroup", name, true); err != nil {
		return err
	}
	g, ok := f.groups[name]
	if !ok {
		return nil
	}
	if _, already := f.deleting[name]; already {
		return nil
	}
	for i := range g.Instances {
		g.Instances[i].Lifecycle = "Terminating"
	}
	g.Min, g.Max, g.Desired = 0, 0, 0
	f.deleting[name] = f.DeleteLag
	return nil
}

// Signals implements Cloud: like the EC2 tag filter it reads, it reports
// the instances that left the group too.
func (f *fakeCloud) Signals(_ context.Context, group string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Signals", group, false); err != nil {
		return nil, err
	}
	return maps.Clone(f.signals[group]), nil
}

// --- what the test does to the world ---

// addTemplate adds a launch template with versions 1..latest.
func (f *fakeCloud) addTemplate(id, name string, def, latest int) ledger.TemplateRef {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.templates[id] = &fakeTemplate{name: name, latest: latest, def: def}
	return ledger.TemplateRef{ID: id, Name: name}
}

// addGroup adds g; each member with an empty ID gets the next one.
func (f *fakeCloud) addGroup(g Group, hooks ...Hook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := cloneGroup(&g)
	for i := range c.Instances {
		m := &c.Instances[i]
		if m.ID == "" {
			m.ID = f.nextID()
		}
		if m.Lifecycle == "" {
			m.Lifecycle = "InService"
		}
		if m.Health == "" {
			m.Health = "Healthy"
		}
		if m.Version == "" {
			m.Version = g.Template.Version
		}
	}
	f.groups[g.Name] = &c
	f.hooks[g.Name] = slices.Clone(hooks)
}

func (f *fakeCloud) nextID() string {
	f.seq++
	return fmt.Sprintf("i-%04d", f.seq)
}

// group returns a copy of a group, or fails the test.
func (f *fakeCloud) group(t *testing.T, name string) Group {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups[name]
	if !ok {
		t.Fatalf("group %s does not exist", name)
	}
	return cloneGroup(g)
}

// exists reports whether a group exists and is not being deleted.
func (f *fakeCloud) exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.groups[name]
	_, deleting := f.deleting[name]
	return ok && !deleting
}

// converge does what the group does on its own: terminating members are
// gone, extra members go (newest first), and members on the group's
// template version are launched up to desired capacity, each in the zone
// with fewest members. It returns the launched ids.
func (f *fakeCloud) converge(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups[name]
	if !ok {
		return nil
	}
	if _, gone := f.deleting[name]; gone {
		return nil
	}
	g.Instances = slices.DeleteFunc(g.Instances, func(m Member) bool { return isLeaving(m.Lifecycle) })
	for int32(len(g.Instances)) > g.Desired {
		g.Instances = g.Instances[:len(g.Instances)-1]
	}
	var launched []string
	for int32(len(g.Instances)) < g.Desired {
		zone := ""
		if len(g.Zones) > 0 {
			zone = g.Zones[0]
			per := map[string]int{}
			for _, m := range g.Instances {
				per[m.Zone]++
			}
			for _, z := range g.Zones {
				if per[z] < per[zone] {
					zone = z
				}
			}
		}
		lc := f.LaunchAs
		if lc == "" {
			lc = "InService"
		}
		m := Member{ID: f.nextID(), Zone: zone, Lifecycle: lc, Health: "Healthy", Version: g.Template.Version}
		g.Instances = append(g.Instances, m)
		launched = append(launched, m.ID)
	}
	return launched
}

// setLifecycle changes a member's lifecycle state.
func (f *fakeCloud) setLifecycle(t *testing.T, group, id, lifecycle string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if g, ok := f.groups[group]; ok {
		for i := range g.Instances {
			if g.Instances[i].ID == id {
				g.Instances[i].Lifecycle = lifecycle
				return
			}
		}
	}
	t.Fatalf("instance %s is not in group %s", id, group)
}

// launch adds a serving member on version, as if the group had launched
// it from another template version than its current one.
func (f *fakeCloud) launch(group, zone, version string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextID()
	f.groups[group].Instances = append(f.groups[group].Instances, Member{ID: id, Zone: zone, Lifecycle: "InService", Health: "Healthy", Version: version})
	return id
}

// setHealth changes a member's health.
func (f *fakeCloud) setHealth(group, id, health string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range f.groups[group].Instances {
		if m.ID == id {
			f.groups[group].Instances[i].Health = health
		}
	}
}

// drop removes a member as the group does after an ABANDON: desired
// capacity stays, so the next converge launches a replacement.
func (f *fakeCloud) drop(group, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g, ok := f.groups[group]; ok {
		g.Instances = slices.DeleteFunc(g.Instances, func(m Member) bool { return m.ID == id })
	}
}

// signal tags an instance with a signal, what `handover signal` does.
func (f *fakeCloud) signal(group, id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.signals[group] == nil {
		f.signals[group] = map[string]string{}
	}
	f.signals[group][id] = status
}

// scale sets a group's capacity behind the runner's back, as an operator
// (or a scaling policy) would.
func (f *fakeCloud) scale(name string, lo, hi, desired int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[name]
	g.Min, g.Max, g.Desired = lo, hi, desired
}

// --- the test environment: ledger, clock, runner and the core's part ---

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Fake
	led   *ledger.Records
	cloud *fakeCloud
	cfg   Config
	r     *Runner
	migs  int
	seen  map[string]bool // instances autoCore has run a launch for
}

func newEnv(t *testing.T, tune ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), clk: clock.NewFake(t0), led: memory.New(), cloud: newFakeCloud(), seen: map[string]bool{}}
	e.cfg = DefaultConfig()
	e.cfg.Holder = "ctl-1"
	for _, f := range tune {
		f(&e.cfg)
	}
	e.r = e.runner(e.cfg.Holder)
	return e
}

// runner returns another Runner on the same ledger, cloud and clock.
func (e *env) runner(holder string) *Runner {
	e.t.Helper()
	cfg := e.cfg
	cfg.Holder = holder
	r, err := New(cfg, e.led, e.cloud, e.clk, slog.New(slog.NewTextHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// webTemplate is the main group's launch template: versions 1 (default)
// and 2 (latest).
func (e *env) webTemplate() ledger.TemplateRef {
	return e.cloud.addTemplate("lt-web", "web", 1, 2)
}

// rollingWorld is group web (min 1, max 3) with n instances on version 1,
// spread over zones a, b, c, each holding database db-<n>.
func (e *env) rollingWorld(n int) {
	e.t.Helper()
	tmpl := e.webTemplate()
	tmpl.Version = "1"
	zones := []string{"za", "zb", "zc"}
	g := Group{Name: "web", Template: tmpl, Min: 1, Max: int32(n), Desired: int32(n), Zones: zones, MaintenanceMin: -1, MaintenanceMax: -1}
	for i := range n {
		g.Instances = append(g.Instances, Member{Zone: zones[i%len(zones)]})
	}
	e.cloud.addGroup(g, Hook{Name: "handover-launch", Transition: "autoscaling:EC2_INSTANCE_LAUNCHING", HeartbeatTimeout: 10 * time.Minute, DefaultResult: "ABANDON", Metadata: `{"pool":"web"}`})
	for i, m := range e.cloud.group(e.t, "web").Instances {
		e.addDB(fmt.Sprintf("db-%d", i+1), m.ID, "web")
	}
}

func (e *env) addDB(id, instance, group string) {
	e.t.Helper()
	if err := e.led.SaveDatabase(e.ctx, &ledger.Database{ID: id, Volume: "vol-" + id, Instance: instance, Group: group, Epoch: 1}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) db(id string) *ledger.Database {
	e.t.Helper()
	db, err := e.led.GetDatabase(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return db
}

func (e *env) putDB(db *ledger.Database) {
	e.t.Helper()
	db.UpdatedAt = e.clk.Now()
	if err := e.led.SaveDatabase(e.ctx, db); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) upd(id string) *ledger.Update {
	e.t.Helper()
	u, err := e.led.GetUpdate(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) start(req Request) *ledger.Update {
	e.t.Helper()
	u, err := e.r.Start(e.ctx, req)
	if err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	return u
}

// advance runs one Advance and fails the test on an error.
func (e *env) advance(id string) *ledger.Update {
	e.t.Helper()
	if err := e.r.Advance(e.ctx, id); err != nil {
		e.t.Fatalf("Advance: %v", err)
	}
	return e.upd(id)
}

// The core's part. The update only marks databases and watches the
// ledger; these helpers write what the handover core would.

// claim starts a handover of database dbID to instance inst: a running
// migration that took over the database's mark, as the core's claim does.
func (e *env) claim(dbID, inst string) string {
	e.t.Helper()
	db := e.db(dbID)
	e.migs++
	now := e.clk.Now()
	m := &ledger.Migration{
		ID: fmt.Sprintf("mig-%02d", e.migs), Instance: inst, Database: dbID, Update: db.ReplaceBy, Gated: db.Gated,
		State: ledger.AwaitingHealth, Source: db.Instance, FromEpoch: db.Epoch,
		CreatedAt: now, UpdatedAt: now, StepStartedAt: now,
	}
	if err := e.led.CreateMigration(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
	db.Claim = m.ID
	e.putDB(db)
	return m.ID
}

// commit ends database dbID's handover to inst: the claimant (one is made
// if there is none) commits, the database moves with epoch + 1, and its
// mark is cleared.
func (e *env) commit(dbID, inst string) {
	e.t.Helper()
	if e.db(dbID).Claim == "" {
		e.claim(dbID, inst)
	}
	db := e.db(dbID)
	m, err := e.led.GetMigration(e.ctx, db.Claim)
	if err != nil {
		e.t.Fatal(err)
	}
	m.State, m.UpdatedAt = ledger.Committed, e.clk.Now()
	if err := e.led.SaveMigration(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
	db.Instance, db.Claim, db.ReplaceBy, db.Gated = inst, "", "", false
	db.Epoch++
	e.putDB(db)
}

// rollBack ends a claimed handover as the core's rollback does: the
// migration is Aborted and the database released where it was.
func (e *env) rollBack(migID, why string) {
	e.t.Helper()
	m, err := e.led.GetMigration(e.ctx, migID)
	if err != nil {
		e.t.Fatal(err)
	}
	m.State, m.LastError, m.UpdatedAt = ledger.Aborted, why, e.clk.Now()
	if err := e.led.SaveMigration(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
	if db := e.db(m.Database); db.Claim == migID {
		db.Claim = ""
		e.putDB(db)
	}
}

// autoCore runs the core's launch handover for every member of group it
// has not seen yet: a new member on version that holds no database takes a
// marked, unclaimed one, the way the core's pool migration picks a marked
// database at launch. A member gets that one chance: the core does not
// move databases to instances that are already running.
func (e *env) autoCore(group, version string) {
	e.t.Helper()
	dbs, err := e.led.ListDatabases(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	held := map[string]bool{}
	for _, db := range dbs {
		held[db.Instance] = true
	}
	for _, m := range e.cloud.group(e.t, group).Instances {
		if e.seen[m.ID] || isLeaving(m.Lifecycle) {
			continue
		}
		e.seen[m.ID] = true
		if m.Version != version || held[m.ID] {
			continue
		}
		for _, db := range dbs {
			if db.ReplaceBy != "" && db.Claim == "" && !held[m.ID] && db.Instance != m.ID {
				e.commit(db.ID, m.ID)
				db.Claim = "taken"
				held[m.ID] = true
			}
		}
	}
}

// holders maps instance → database.
func (e *env) holders() map[string]string {
	e.t.Helper()
	dbs, err := e.led.ListDatabases(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, db := range dbs {
		out[db.Instance] = db.ID
	}
	return out
}

// noMarks fails the test if a database still carries an update's mark.
func (e *env) noMarks() {
	e.t.Helper()
	dbs, err := e.led.ListDatabases(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, db := range dbs {
		if db.ReplaceBy != "" || db.Gated {
			e.t.Errorf("database %s still marked: ReplaceBy %q, Gated %v", db.ID, db.ReplaceBy, db.Gated)
		}
	}
}

// guardTerminate makes every Terminate on group check that no database
// still sits on the instance, and that each database of the group is on a
// serving member (launch before terminate).
func (e *env) guardTerminate(group string) {
	e.cloud.BeforeTerminate = func(g *Group, id string) error {
		if g.Name != group {
			return nil
		}
		dbs, err := e.led.ListDatabases(context.Background())
		if err != nil {
			return err
		}
		for _, db := range dbs {
			if db.Instance == id {
				return fmt.Errorf("test: terminating %s while it holds database %s", id, db.ID)
			}
			if db.Group != group {
				continue
			}
			serving := false
			for _, m := range g.Instances {
				if m.ID == db.Instance && m.InService() {
					serving = true
				}
			}
			if !serving {
				return fmt.Errorf("test: terminating %s while database %s is on %s, which does not serve", id, db.ID, db.Instance)
			}
		}
		return nil
	}
}

// phases lists an update's timeline phases; a name that does not parse
// shows as Phase(0).
func phases(u *ledger.Update) []Phase {
	var out []Phase
	for _, s := range u.Timeline {
		p, _ := ParsePhase(s.Phase)
		out = append(out, p)
	}
	return out
}

// samePhases compares timelines, ignoring an empty batch entry (one that
// only found every batch done) before cleanup or restore.
func samePhases(got, want []Phase) bool {
	norm := func(l []Phase) []Phase {
		var out []Phase
		for i, p := range l {
			if (p == PhaseBatch || p == PhaseRollbackBatch) && i+1 < len(l) && (l[i+1] == PhaseCleanup || l[i+1] == PhaseRestore) {
				continue
			}
			out = append(out, p)
		}
		return out
	}
	return slices.Equal(norm(got), norm(want))
}

func wantState(t *testing.T, u *ledger.Update, state ledger.UpdateState, phase Phase) {
	t.Helper()
	if u.State != state || u.Phase != phase.String() {
		t.Fatalf("update is %s in phase %s, want %s in %s (error %q, timeline %v)", u.State, u.Phase, state, phase, u.Error, phases(u))
	}
}

func wantCapacity(t *testing.T, g Group, lo, hi, desired int32) {
	t.Helper()
	if g.Min != lo || g.Max != hi || g.Desired != desired {
		t.Fatalf("group %s capacity min %d max %d desired %d, want %d %d %d", g.Name, g.Min, g.Max, g.Desired, lo, hi, desired)
	}
}

func errContains(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

var errBoom = errors.New("boom")

// TestFakeCloud checks the fake itself where the runner's tests rely on it.
func TestFakeCloud(t *testing.T) {
	ctx := context.Background()
	f := newFakeCloud()
	tmpl := f.addTemplate("lt-1", "app", 1, 3)
	for _, tc := range []struct{ in, want string }{{"$Latest", "3"}, {"$Default", "1"}, {"", "1"}, {"2", "2"}} {
		tmpl.Version = tc.in
		if got, err := f.ResolveVersion(ctx, tmpl); err != nil || got != tc.want {
			t.Errorf("ResolveVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	tmpl.Version = "1"
	f.addGroup(Group{Name: "app", Template: tmpl, Min: 1, Max: 2, Desired: 1, Zones: []string{"za"}, Instances: []Member{{}}})
	if _, err := f.DescribeGroup(ctx, "nope"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("DescribeGroup(nope) = %v, want ErrNotFound", err)
	}
	if err := f.Terminate(ctx, "app", "i-0001"); err == nil {
		t.Error("Terminate below min succeeded")
	}
	if err := f.SetCapacity(ctx, "app", 1, 2, 2); err != nil {
		t.Fatal(err)
	}
	if got := f.converge("app"); len(got) != 1 {
		t.Fatalf("converge launched %v, want one", got)
	}
	if err := f.Terminate(ctx, "app", "i-0001"); err != nil {
		t.Fatal(err)
	}
	if err := f.Terminate(ctx, "app", "i-0001"); err != nil {
		t.Fatalf("repeated Terminate: %v", err)
	}
	if g := f.group(t, "app"); g.Desired != 1 {
		t.Errorf("desired %d after terminate, want 1", g.Desired)
	}
	f.NextErr["Signals"] = errBoom
	if _, err := f.Signals(ctx, "app"); !errors.Is(err, errBoom) {
		t.Errorf("NextErr not returned: %v", err)
	}
	if _, err := f.Signals(ctx, "app"); err != nil {
		t.Errorf("NextErr returned twice: %v", err)
	}
	f.DeleteLag = 1
	if err := f.DeleteGroup(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.DescribeGroup(ctx, "app"); err != nil {
		t.Errorf("group gone before its delete lag: %v", err)
	}
	if _, err := f.DescribeGroup(ctx, "app"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("group still there after its delete lag: %v", err)
	}
	if err := f.DeleteGroup(ctx, "app"); err != nil {
		t.Errorf("deleting a missing group: %v", err)
	}
}
