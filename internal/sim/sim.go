// Package sim is handover's deterministic simulation: from one seed it runs
// many concurrent handovers against an in-memory cloud while it drops,
// duplicates, delays and reorders events, throttles and fails API calls,
// crashes the controller between any two actions and restarts it from the
// ledger, and kills, sickens or cuts off instances; then it checks the
// eight invariants of docs/design.md. A client reads back its own fresh
// writes through the load balancer, where old and new instances overlap,
// so a read answered from an older epoch's data is caught (invariant no-stale-reads).
//
// Everything runs on one goroutine on a fake clock, so a seed replays
// exactly. The package must never read the wall clock or start goroutines.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/pacing"
)

// Faults are the failure rates and budgets of one run.
type Faults struct {
	DropEvent, DuplicateEvent float64
	EventDelayMax             time.Duration
	Throttle, ServerError     float64
	SnapshotFail              float64
	SnapshotMax               time.Duration
	// Crashes is how many times the controller is killed; InstanceFaults how
	// many instances are killed, made unhealthy or cut off.
	Crashes, InstanceFaults int
	// Overlap is the chance that an update starts while another handover of
	// the same database is still running.
	Overlap float64
}

// randomFaults draws a run's faults from its seed: most runs are rough.
func randomFaults(rng *rand.Rand) Faults {
	pick := func(xs ...float64) float64 { return xs[rng.IntN(len(xs))] }
	return Faults{
		DropEvent:      pick(0, 0.05, 0.2, 0.5),
		DuplicateEvent: pick(0, 0.1, 0.3),
		EventDelayMax:  time.Duration(pick(1, 10, 60)) * time.Second,
		Throttle:       pick(0, 0.02, 0.1),
		ServerError:    pick(0, 0.02, 0.05),
		SnapshotFail:   pick(0, 0, 0.1),
		SnapshotMax:    time.Duration(pick(10, 60, 300)) * time.Second,
		Crashes:        rng.IntN(4),
		InstanceFaults: rng.IntN(3),
		Overlap:        pick(0, 0.2),
	}
}

// Options configure one run.
type Options struct {
	Seed uint64
	// Databases and Replacements (per database) are drawn from the seed
	// when zero.
	Databases, Replacements int
	// Faults are drawn from the seed when nil.
	Faults *Faults
	// NewLedger opens the ledger (memory when nil). The simulator reopens
	// nothing: a restarted controller gets the same ledger, as a restarted
	// process gets the same database.
	NewLedger func() (ledger.Ledger, error)
	Logger    *slog.Logger
	// MaxTime bounds simulated time; a run not settled by then is a
	// violation.
	MaxTime time.Duration
	// Cutover, when set, is every database's cutover (hook metadata);
	// otherwise each draws one from the seed: mostly auto, some retire,
	// some drain.
	Cutover string
}

// Stats count what happened in a run.
type Stats struct {
	APICalls, Throttles, ServerErrors        int
	Events, EventsDropped, EventsDuplicated  int
	Fences, Unfences                         int
	WritesAcked, WritesRefused, WritesFailed int
	ReadsOK, ReadsFailed, ReadsFailedExcused int
	// FreshReadsOK are reads of the client's own latest write that
	// returned it; StaleReads are reads answered from an older epoch's
	// data (each one an invariant no-stale-reads violation).
	FreshReadsOK, StaleReads int
	// Retires and Drains count the cutovers' calls; the forwarded counts
	// are requests a retired instance passed to its successor.
	Retires, Drains                   int
	ReadsForwarded, WritesForwarded   int
	Crashes, InstanceFaults, Triggers int
	SimulatedTime                     time.Duration
}

// Result is the outcome of one run.
type Result struct {
	Seed               uint64
	Databases          int
	Handovers          int // migrations that ended
	Committed, Aborted int
	Violations         []string
	Stats              Stats
}

const (
	// sweepGrace is the controller's SweepGrace in the simulation; the
	// final phase waits it out so the sweeper may take everything.
	sweepGrace     = 5 * time.Minute
	tick           = 2 * time.Second
	reconcileEvery = 15 * time.Second
	sweepEvery     = 2 * time.Minute
)

type trigger int

const (
	trigUpdate trigger = iota
	trigUnhealthy
	trigAZMove
)

func (t trigger) String() string { return [...]string{"update", "unhealthy", "az-move"}[t] }

type sim struct {
	ctx    context.Context
	opts   Options
	rng    *rand.Rand
	w      *world
	cl     *client
	led    ledger.Ledger
	ctrl   *handover.Controller
	logger *slog.Logger

	restartAt     time.Time
	nextReconcile time.Time
	nextSweep     time.Time
	triggers      map[string][]trigger // group → triggers still to issue
	nextTriggerAt map[string]time.Time
	recoverAt     map[string]time.Time // instance → when it becomes reachable again
	crashTimes    []time.Time
	faultTimes    []time.Time
	epochs        map[string]int64
	violations    []string
}

// Run runs one seed and checks the invariants.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.MaxTime <= 0 {
		opts.MaxTime = 8 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x68616e646f766572))
	f := randomFaults(rng)
	if opts.Faults != nil {
		f = *opts.Faults
	}
	if f.SnapshotMax <= 3*time.Second {
		f.SnapshotMax = 10 * time.Second
	}
	nDB := opts.Databases
	if nDB <= 0 {
		nDB = 1 + rng.IntN(3)
	}
	var led ledger.Ledger = memory.New()
	if opts.NewLedger != nil {
		l, err := opts.NewLedger()
		if err != nil {
			return Result{}, fmt.Errorf("opening the simulation ledger: %w", err)
		}
		led = l
	}
	defer led.Close()

	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	s := &sim{
		ctx: ctx, opts: opts, rng: rng, logger: slog.New(simTime{opts.Logger.Handler(), clk}),
		triggers: map[string][]trigger{}, nextTriggerAt: map[string]time.Time{}, recoverAt: map[string]time.Time{},
		epochs: map[string]int64{},
	}
	stats := &Stats{}
	w := &world{
		clk: clk, rng: rng, f: f, stats: stats, zones: []string{"us-east-1a", "us-east-1b", "us-east-1c"},
		down: map[string]bool{}, excused: map[string]string{}, instances: map[string]*instance{}, volumes: map[string]*volume{},
		snapshots: map[string]*snapshot{}, groups: map[string]*group{}, actions: map[string]*action{},
		clientTokens: map[string]string{}, hookTimeout: 5 * time.Minute, violations: &s.violations,
		// The server side throttles like EC2 but with smaller buckets, so
		// the controller's pacing and back-off are exercised.
		limiters: map[pacing.Family]*pacing.Limiter{
			pacing.FamilySnapshot: pacing.NewLimiter(pacing.Bucket{Burst: 4, Refill: 0.5}, start),
			pacing.FamilyVolume:   pacing.NewLimiter(pacing.Bucket{Burst: 4, Refill: 0.5}, start),
			pacing.FamilyDescribe: pacing.NewLimiter(pacing.Bucket{Burst: 30, Refill: 10}, start),
		},
	}
	w.bus = &bus{w: w}
	s.w = w
	s.cl = &client{w: w, acked: map[string]map[string]ackedWrite{}, keys: map[string][]string{}, newest: map[string]int64{}}
	s.led = &crashLedger{Ledger: led, w: w}

	for d := range nDB {
		db := fmt.Sprintf("db%d", d)
		cutover := opts.Cutover
		if cutover == "" {
			cutover = []string{handover.CutoverAuto, handover.CutoverAuto, handover.CutoverRetire, handover.CutoverDrain}[rng.IntN(4)]
		}
		g := &group{name: "asg-" + db, db: db, launchHook: "handover-launch", terminateHook: "handover-terminate", desired: 1,
			metadata: fmt.Sprintf(`{"database":%q,"size_gib":8,"cutover":%q}`, db, cutover)}
		w.groups[g.name] = g
		n := opts.Replacements
		if n <= 0 {
			n = 1 + rng.IntN(3)
		}
		for range n {
			s.triggers[g.name] = append(s.triggers[g.name], trigger(rng.IntN(3)))
		}
		s.nextTriggerAt[g.name] = start.Add(w.between(time.Minute, 3*time.Minute))
	}
	for range f.Crashes {
		s.crashTimes = append(s.crashTimes, start.Add(w.between(30*time.Second, 40*time.Minute)))
	}
	for range f.InstanceFaults {
		s.faultTimes = append(s.faultTimes, start.Add(w.between(2*time.Minute, 40*time.Minute)))
	}
	if err := s.startController(); err != nil {
		return Result{}, err
	}

	deadline := start.Add(opts.MaxTime)
	for clk.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		w.advance()
		s.issueTriggers()
		s.injectFaults()
		s.cl.tick()
		s.runController()
		s.checkEpochs()
		if s.settled() {
			break
		}
		clk.Advance(tick)
	}
	if !s.settled() {
		s.violate("run did not settle within %s: %s", opts.MaxTime, s.unsettled())
	}
	s.finish()
	res := Result{Seed: opts.Seed, Databases: nDB, Violations: s.violations, Stats: *stats}
	res.Stats.SimulatedTime = clk.Now().Sub(start)
	ms, err := led.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		return res, fmt.Errorf("listing migrations: %w", err)
	}
	for _, m := range ms {
		switch m.State {
		case ledger.Committed:
			res.Committed++
			res.Handovers++
		case ledger.Aborted:
			res.Aborted++
			res.Handovers++
		}
	}
	return res, nil
}

func (s *sim) violate(format string, args ...any) { s.w.violate(format, args...) }

func (s *sim) startController() error {
	cfg := handover.DefaultConfig()
	cfg.Holder = "sim-controller"
	cfg.LeaseTTL = 30 * time.Second
	cfg.PollInterval = 3 * time.Second
	cfg.RetryBase = time.Second
	cfg.RetryMax = 30 * time.Second
	cfg.StepTimeout = 4 * time.Minute
	cfg.SnapshotTimeout = 30 * time.Minute
	cfg.DefaultHeartbeatTimeout = s.w.hookTimeout
	cfg.DeadlineMargin = time.Minute
	cfg.SweepGrace = sweepGrace
	pacer, err := pacing.New(s.w.clk, pacing.Config{Rand: rand.New(rand.NewPCG(s.rng.Uint64(), 1)), BackoffMax: 20 * time.Second})
	if err != nil {
		return fmt.Errorf("building the pacer: %w", err)
	}
	c, err := handover.New(cfg, handover.Deps{
		Cloud: fakeCloud{s.w}, Service: fakeService{s.w}, Ledger: s.led, Pacer: pacer, Clock: s.w.clk, Logger: s.logger,
	})
	if err != nil {
		return fmt.Errorf("building the controller: %w", err)
	}
	s.ctrl = c
	now := s.w.clk.Now()
	s.nextReconcile = now.Add(s.w.between(0, reconcileEvery))
	return nil
}

// safely runs fn as the controller; a crash panic kills the controller.
func (s *sim) safely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crashSignal); !ok {
				panic(r)
			}
			s.ctrl = nil
			s.w.stats.Crashes++
			s.restartAt = s.w.clk.Now().Add(s.w.between(5*time.Second, time.Minute))
			err = errCrashed
		}
	}()
	return fn()
}

var errCrashed = errors.New("controller crashed")

func (s *sim) runController() {
	now := s.w.clk.Now()
	if s.ctrl == nil {
		if now.Before(s.restartAt) {
			return
		}
		if err := s.startController(); err != nil {
			s.violate("restarting the controller: %v", err)
			return
		}
	}
	if len(s.crashTimes) > 0 && !now.Before(s.crashTimes[0]) {
		s.crashTimes = s.crashTimes[1:]
		s.w.crashAt = s.w.calls + 1 + s.rng.IntN(40)
	}
	for _, m := range s.w.bus.visible() {
		if s.ctrl == nil {
			return
		}
		var ids []string
		err := s.safely(func() (err error) {
			ids, err = s.ctrl.HandleMessage(s.ctx, m.body)
			return err
		})
		var poison *handover.PoisonError
		switch {
		case errors.Is(err, errCrashed):
			return // unacknowledged: it comes back after the visibility timeout
		case errors.As(err, &poison):
			s.violate("controller rejected a well-formed event as poison: %v", err)
			s.w.bus.remove(m)
		case err != nil:
			m.receives++
			m.visibleAt = now.Add(30 * time.Second)
			continue
		default:
			s.w.bus.remove(m)
		}
		for _, id := range ids {
			if s.safely(func() error { return s.ctrl.Advance(s.ctx, id) }) == errCrashed {
				return
			}
		}
	}
	if !now.Before(s.nextReconcile) {
		s.nextReconcile = now.Add(reconcileEvery)
		if s.safely(func() error { return s.ctrl.Reconcile(s.ctx) }) == errCrashed {
			return
		}
	}
	if !now.Before(s.nextSweep) {
		s.nextSweep = now.Add(sweepEvery)
		s.safely(func() error { _, err := s.ctrl.Sweep(s.ctx); return err })
	}
}

// steady reports whether g serves from exactly its desired instances with
// no lifecycle action open.
func (s *sim) steady(g *group) bool {
	if len(g.members) != g.desired {
		return false
	}
	for _, id := range g.members {
		i := s.w.instances[id]
		if i.lifecycle != lcInService || !i.serving() {
			return false
		}
	}
	for _, a := range s.w.actions {
		if a.group == g.name && !a.ended {
			return false
		}
	}
	return true
}

func (s *sim) issueTriggers() {
	w := s.w
	now := w.clk.Now()
	for _, name := range slices.Sorted(maps.Keys(w.groups)) {
		g := w.groups[name]
		steady := s.steady(g)
		if steady && g.avoidZone != "" {
			// The zone outage is over once every group in it has moved away.
			z := g.avoidZone
			g.avoidZone = ""
			if !slices.ContainsFunc(slices.Collect(maps.Values(w.groups)), func(o *group) bool { return o.avoidZone == z }) {
				w.down[z] = false
			}
		}
		queue := s.triggers[name]
		if len(queue) == 0 || now.Before(s.nextTriggerAt[name]) {
			continue
		}
		t := queue[0]
		overlap := !steady && t == trigUpdate && len(g.members) > 0 && w.chance(w.f.Overlap)
		if !steady && !overlap {
			continue
		}
		s.triggers[name] = queue[1:]
		s.nextTriggerAt[name] = now.Add(w.between(30*time.Second, 5*time.Minute))
		w.stats.Triggers++
		var cur *instance
		for _, id := range g.members {
			if i := w.instances[id]; i.lifecycle == lcInService {
				cur = i
			}
		}
		if t == trigAZMove && slices.Contains(slices.Collect(maps.Values(w.down)), true) {
			t = trigUpdate // one zone outage at a time, as regions are built
		}
		switch {
		case t == trigUpdate || cur == nil:
			w.launch(g, w.pickZone(g))
		case t == trigUnhealthy:
			cur.unhealthy = true
			cur.broken = true
			s.w.excused[g.db] = cur.id
			w.beginTerminate(cur)
		case t == trigAZMove:
			s.zoneOutage(cur.zone)
		}
	}
}

// zoneOutage takes a zone down: every group with instances there sees them
// fail their health checks and replaces them in another zone.
func (s *sim) zoneOutage(zone string) {
	w := s.w
	w.down[zone] = true
	for _, name := range slices.Sorted(maps.Keys(w.groups)) {
		g := w.groups[name]
		for _, id := range slices.Clone(g.members) {
			i := w.instances[id]
			if i.zone != zone {
				continue
			}
			g.avoidZone = zone
			i.broken = true
			s.w.excused[g.db] = i.id
			if i.lifecycle == lcInService {
				w.beginTerminate(i)
			}
		}
	}
}

// injectFaults breaks an instance in the middle of a handover: the new one
// (killed or never healthy) or the old one (killed or cut off for a while).
func (s *sim) injectFaults() {
	w := s.w
	now := w.clk.Now()
	for id, at := range s.recoverAt {
		if !now.Before(at) {
			if i := w.instances[id]; i != nil {
				i.unreachable, i.broken = false, false
			}
			delete(s.recoverAt, id)
		}
	}
	if len(s.faultTimes) == 0 || now.Before(s.faultTimes[0]) {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(w.groups)) {
		g := w.groups[name]
		var waiting, serving *instance
		for _, id := range g.members {
			i := w.instances[id]
			switch {
			case i.lifecycle == lcPendingWait:
				waiting = i
			case i.lifecycle == lcInService && i.serving():
				serving = i
			}
		}
		if waiting == nil {
			continue
		}
		s.faultTimes = s.faultTimes[1:]
		w.stats.InstanceFaults++
		switch k := w.rng.IntN(4); {
		case k == 0:
			waiting.broken = true
			w.kill(waiting)
		case k == 1:
			waiting.broken = true
			waiting.unhealthy = true
		case k == 2 && serving != nil:
			s.w.excused[g.db] = serving.id
			serving.broken = true
			w.kill(serving)
		case serving != nil:
			s.w.excused[g.db] = serving.id
			serving.broken = true
			serving.unreachable = true
			s.recoverAt[serving.id] = now.Add(w.between(20*time.Second, 5*time.Minute))
		default:
			waiting.broken = true
			w.kill(waiting)
		}
		return
	}
}

func (s *sim) checkEpochs() {
	dbs, err := s.led.ListDatabases(s.ctx)
	if err != nil {
		return
	}
	for _, d := range dbs {
		if prev, ok := s.epochs[d.ID]; ok && d.Epoch < prev {
			s.violate("invariant one-authority: epoch of database %s went back from %d to %d", d.ID, prev, d.Epoch)
		}
		s.epochs[d.ID] = d.Epoch
	}
}

func (s *sim) settled() bool { return s.unsettled() == "" }

// unsettled says what is still moving, or "" when the run may end.
func (s *sim) unsettled() string {
	var why []string
	for _, name := range slices.Sorted(maps.Keys(s.w.groups)) {
		g := s.w.groups[name]
		if len(s.triggers[name]) > 0 {
			why = append(why, fmt.Sprintf("%s has %d triggers left", name, len(s.triggers[name])))
		}
		if !s.steady(g) || g.avoidZone != "" {
			why = append(why, fmt.Sprintf("%s is not steady (members %v)", name, s.describeMembers(g)))
		}
	}
	if len(s.recoverAt) > 0 {
		why = append(why, "an instance is still cut off")
	}
	ms, err := s.led.ListMigrations(s.ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		why = append(why, err.Error())
	}
	for _, m := range ms {
		why = append(why, fmt.Sprintf("migration %s of %s is %s (last error %q)", m.ID, m.Database, m.State, m.LastError))
	}
	return strings.Join(why, "; ")
}

func (s *sim) describeMembers(g *group) []string {
	var out []string
	for _, id := range g.members {
		i := s.w.instances[id]
		out = append(out, fmt.Sprintf("%s:%s/%s", id, i.state, i.lifecycle))
	}
	return out
}

// finish lets the old instances go and the sweeper run, then checks the
// end state: invariants one-authority, no-lost-ack, no-leaks and replay-safe.
func (s *sim) finish() {
	w := s.w
	for range int((sweepGrace + 2*time.Minute) / tick) {
		w.advance()
		s.runController()
		w.clk.Advance(tick)
	}
	if s.ctrl == nil {
		_ = s.startController()
	}
	// The storm passes: the sweeper gets a calm cloud to finish on, since
	// invariant no-leaks asks for no leak in the end, not at every instant.
	w.crashAt = 0
	w.f.Throttle, w.f.ServerError = 0, 0
	for range 3 {
		s.safely(func() error { return s.ctrl.Reconcile(s.ctx) })
		s.safely(func() error { _, err := s.ctrl.Sweep(s.ctx); return err })
		w.clk.Advance(10 * time.Second)
		w.advance()
	}

	dbs, err := s.led.ListDatabases(s.ctx)
	if err != nil {
		s.violate("listing databases: %v", err)
		return
	}
	byID := map[string]*ledger.Database{}
	for _, d := range dbs {
		byID[d.ID] = d
	}
	authoritative := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(w.groups)) {
		g := w.groups[name]
		d := byID[g.db]
		if d == nil {
			s.violate("database %s has no ledger record", g.db)
			continue
		}
		authoritative[d.Volume] = true
		authoritative[d.BaseSnapshot] = true
		v := w.volumes[d.Volume]
		if v == nil || v.state == handover.VolumeDeleted {
			s.violate("invariant one-authority: authoritative volume %q of %s does not exist", d.Volume, g.db)
			continue
		}
		var holder *instance
		for _, id := range g.members {
			if i := w.instances[id]; i.lifecycle == lcInService {
				holder = i
			}
		}
		if holder == nil || holder.vol != v || d.Instance != holder.id {
			s.violate("invariant replay-safe: database %s: in-service instance %v does not hold authoritative volume %s (ledger says instance %s)", g.db, holder, v.id, d.Instance)
		}
		if d.Claim != "" {
			s.violate("database %s is still claimed by %s", g.db, d.Claim)
		}
		for _, k := range s.cl.keys[g.db] {
			if want, got := s.cl.acked[g.db][k].val, v.data[k]; got != want {
				s.violate("invariant no-lost-ack: acknowledged write %s=%q is %q on authoritative volume %s", k, want, got, v.id)
				break
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.volumes)) {
		v := w.volumes[id]
		if v.tags[handover.TagManaged] == "true" && v.state != handover.VolumeDeleted && !authoritative[id] {
			s.violate("invariant no-leaks: volume %s (%s of migration %s) leaked: %s, attached to %q", id, v.tags[handover.TagPurpose], v.tags[handover.TagMigration], v.state, v.attachedTo)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.snapshots)) {
		sn := w.snapshots[id]
		if sn.tags[handover.TagManaged] == "true" && !sn.deleted && !authoritative[id] {
			s.violate("invariant no-leaks: snapshot %s (%s of migration %s) leaked: %s", id, sn.tags[handover.TagPurpose], sn.tags[handover.TagMigration], sn.state)
		}
	}
	for _, a := range w.actions {
		if !a.ended {
			s.violate("invariant hooks-end: lifecycle action %s of %s never ended", a.token, a.instance)
		}
	}
}
