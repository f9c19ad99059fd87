package pacing_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/handover/handovertest"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/pacing"
)

const (
	launchHook = "handover-launch"
	// tick is the simulation's time step: the daemon's loops and event
	// deliveries happen on tick boundaries.
	tick = 250 * time.Millisecond
	// maxSim bounds a run; one not done by then is a failure.
	maxSim = 6 * time.Hour
)

// scenario is one fleet run.
type scenario struct {
	name string
	n    int
	// pacer overrides the controller's DefaultBuckets, family by family.
	pacer map[pacing.Family]pacing.Bucket
	// other is another tool's draw on the server buckets (calls/s).
	other map[pacing.Family]float64
	// tune changes the controller's config from the production defaults.
	tune func(*handover.Config)
}

// raisedAutoScaling gives Auto Scaling the size of EC2's describe bucket.
// AWS publishes no Auto Scaling limits; DefaultBuckets' own choice (20 at
// 2/s, plus 10 at 1/s for heartbeats and completions) is handover's, and
// this variant shows where the EC2 buckets alone put a fleet.
var raisedAutoScaling = map[pacing.Family]pacing.Bucket{
	pacing.FamilyAutoScaling: {Burst: 100, Refill: 20},
	pacing.FamilyLifecycle:   {Burst: 100, Refill: 20},
}

// sharedAccount is another tool taking a fifth of the snapshot and volume
// refill and of the describe refill: the controller's local buckets then
// believe in tokens the cloud no longer has, and it is throttled.
var sharedAccount = map[pacing.Family]float64{
	pacing.FamilySnapshot: 1, pacing.FamilyVolume: 1, pacing.FamilyDescribe: 4,
}

// patient lets a step wait an hour instead of the default ten minutes, so
// that a step held back by pacing is not rolled back (see README: with the
// defaults, pacing delays alone abort handovers of a large fleet).
func patient(c *handover.Config) { c.StepTimeout = time.Hour }

// scenarios are the fleet runs: the production defaults alone in the
// account and sharing it, then with patient steps so that every handover
// finishes and the completion time means something, then with Auto
// Scaling's budget raised so that only the EC2 buckets bind.
func scenarios(n int) []scenario {
	return []scenario{
		{name: "buckets=default/account=alone/step-timeout=10m", n: n},
		{name: "buckets=default/account=shared/step-timeout=10m", n: n, other: sharedAccount},
		{name: "buckets=default/account=alone/step-timeout=1h", n: n, tune: patient},
		{name: "buckets=raised-autoscaling/account=alone/step-timeout=1h", n: n, pacer: raisedAutoScaling, tune: patient},
		{name: "buckets=raised-autoscaling/account=shared/step-timeout=1h", n: n, pacer: raisedAutoScaling, other: sharedAccount, tune: patient},
	}
}

// bound is the earliest any controller could finish n handovers against
// the server buckets. The snapshot bucket must serve 2n CreateSnapshot
// calls (a pre-copy and a final snapshot each), at its refill rate less
// what the other tool takes, once its burst is spent; after the last one,
// which is some handover's final snapshot, that handover still waits for
// the snapshot, its volume, the attachment and InService. The volume
// bucket likewise serves n CreateVolume calls. Describe calls are not in
// the bound: a controller could learn everything from events, so the
// describes handover makes are its own cost, reported beside.
func bound(n int, lat Latencies, other map[pacing.Family]float64) time.Duration {
	b := serverBuckets()
	drain := func(f pacing.Family, calls int) time.Duration {
		secs := (float64(calls) - b[f].Burst) / (b[f].Refill - other[f])
		return time.Duration(max(0, secs) * float64(time.Second))
	}
	afterVolume := lat.Volume + lat.Attach + lat.InService
	return max(drain(pacing.FamilySnapshot, 2*n)+lat.Snapshot+afterVolume, drain(pacing.FamilyVolume, n)+afterVolume)
}

// result is what a fleet run did.
type result struct {
	n                 int
	completion, bound time.Duration
	// throttles counts RequestLimitExceeded answers the cloud gave the
	// controller, by family.
	throttles map[pacing.Family]int
	calls     map[string]int
	pacer     map[pacing.Family]pacing.FamilyStats
	buckets   map[pacing.Family]pacing.Bucket // the pacer's
	// reconcileErrs counts reconcile passes that returned an error (a
	// paced describe ends a pass early; the next one goes on).
	reconcileErrs, redelivered int
	committed                  int
	// problems are broken expectations: a migration not committed, one
	// that ever rolled back, a database not on its new volume.
	problems []string
	// inState sums, per state, the time migrations spent in it, and
	// maxInState the longest one did.
	inState, maxInState map[ledger.State]time.Duration
}

func (r result) throttleTotal() int {
	t := 0
	for _, v := range r.throttles {
		t += v
	}
	return t
}

type tenant struct{ db, group, oldID, newID, token string }

// runFleet starts sc.n handovers at once — every database's replacement
// launches at time 0 — and runs the controller the way the daemon does
// (events as they arrive, every unfinished migration every AdvanceEvery,
// reconcile and sweep on their intervals), on a fake clock, until every
// migration has ended.
func runFleet(ctx context.Context, sc scenario, lat Latencies) (result, error) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	w := newWorld(clk, lat, sc.other)
	led := memory.New()
	res := result{n: sc.n, bound: bound(sc.n, lat, sc.other), buckets: pacing.DefaultBuckets()}
	maps.Copy(res.buckets, sc.pacer)

	var tenants []tenant
	for i := range sc.n {
		t := tenant{
			db: fmt.Sprintf("tenant-%04d", i), group: fmt.Sprintf("asg-tenant-%04d", i),
			oldID: fmt.Sprintf("i-0%07x", i), newID: fmt.Sprintf("i-1%07x", i), token: fmt.Sprintf("tok-%04d", i),
		}
		tenants = append(tenants, t)
		vol := fmt.Sprintf("vol-0%07x", i)
		w.AddInstance(handover.Instance{ID: t.oldID, Zone: "us-east-1a", State: handover.InstanceRunning, PrivateIP: "old-" + t.db})
		w.AddInstance(handover.Instance{ID: t.newID, Zone: "us-east-1b", State: handover.InstanceRunning, PrivateIP: "new-" + t.db})
		w.AddVolume(handover.Volume{ID: vol, Zone: "us-east-1a", State: handover.VolumeInUse, SizeGiB: 100,
			AttachedTo: t.oldID, AttachState: "attached", Tags: map[string]string{handover.TagManaged: "true", handover.TagDatabase: t.db}})
		w.AddGroup(t.group, handover.GroupMember{Instance: t.oldID, Lifecycle: handover.LifecycleInService})
		w.AddHook(t.group, launchHook, handover.Hook{HeartbeatTimeout: time.Hour, DefaultResult: handover.ResultAbandon,
			Metadata: fmt.Sprintf(`{"database":%q}`, t.db)})
		if err := led.SaveDatabase(ctx, &ledger.Database{ID: t.db, Volume: vol, Zone: "us-east-1a", Instance: t.oldID,
			Group: t.group, Epoch: 1, UpdatedAt: start}); err != nil {
			return res, err
		}
		ref := ledger.HookRef{Group: t.group, Hook: launchHook, Token: t.token, Instance: t.newID}
		w.StartAction(ref, handover.TransitionLaunching)
		err := w.send(events.Event{Kind: events.KindLaunchAction, Lifecycle: &events.LifecycleAction{
			Group: t.group, Hook: launchHook, Token: t.token, InstanceID: t.newID,
			Transition: events.TransitionLaunching, Metadata: fmt.Sprintf(`{"database":%q}`, t.db),
		}})
		if err != nil {
			return res, err
		}
	}

	pacer, err := pacing.New(clk, pacing.Config{Buckets: sc.pacer, Rand: rand.New(rand.NewPCG(7, 11))})
	if err != nil {
		return res, err
	}
	cfg := handover.DefaultConfig()
	cfg.Holder = "fleet"
	if sc.tune != nil {
		sc.tune(&cfg)
	}
	ctl, err := handover.New(cfg, handover.Deps{
		Cloud: w, Service: handovertest.NewService(), Ledger: led, Pacer: pacer, Clock: clk,
	})
	if err != nil {
		return res, err
	}
	d := daemon.DefaultConfig()
	nextAdvance, nextReconcile, nextSweep := start, start.Add(d.ReconcileEvery), start.Add(d.SweepEvery)
	for {
		now := clk.Now()
		if now.Sub(start) > maxSim {
			return res, fmt.Errorf("%d handovers not done after %s of simulated time", sc.n, maxSim)
		}
		if err := w.progress(); err != nil {
			return res, err
		}
		for _, m := range w.due() {
			ids, err := ctl.HandleMessage(ctx, m.body)
			var poison *handover.PoisonError
			switch {
			case errors.As(err, &poison):
				return res, fmt.Errorf("a well-formed event was refused as poison: %w", err)
			case err != nil: // left on the queue: back after the visibility timeout
				res.redelivered++
				w.outbox = append(w.outbox, message{at: now.Add(30 * time.Second), body: m.body})
				continue
			}
			for _, id := range ids {
				if err := ctl.Advance(ctx, id); err != nil {
					return res, fmt.Errorf("advancing %s: %w", id, err)
				}
			}
		}
		if !now.Before(nextAdvance) {
			nextAdvance = now.Add(d.AdvanceEvery)
			all, err := led.ListMigrations(ctx, ledger.MigrationQuery{})
			if err != nil {
				return res, err
			}
			unfinished := 0
			for _, m := range all {
				if m.State.Terminal() {
					continue
				}
				unfinished++
				if err := ctl.Advance(ctx, m.ID); err != nil {
					return res, fmt.Errorf("advancing %s: %w", m.ID, err)
				}
			}
			if len(all) == sc.n && unfinished == 0 {
				break
			}
		}
		if !now.Before(nextReconcile) {
			nextReconcile = now.Add(d.ReconcileEvery)
			if err := ctl.Reconcile(ctx); err != nil {
				res.reconcileErrs++
			}
		}
		if !now.Before(nextSweep) {
			nextSweep = now.Add(d.SweepEvery)
			if _, err := ctl.Sweep(ctx); err != nil {
				res.reconcileErrs++
			}
		}
		w.otherTool(tick)
		clk.Advance(tick)
	}

	res.throttles, res.calls, res.pacer = w.throttles, w.calls, pacer.Stats()
	res.completion, res.committed, res.problems, err = verify(ctx, led, tenants, start)
	if err != nil {
		return res, err
	}
	res.inState, res.maxInState, err = timeInStates(ctx, led)
	return res, err
}

// verify checks the end state — every handover committed, none ever rolled
// back (so no throttling answer became a failure), every database on its
// new instance's volume under epoch 2 — and returns when the last handover
// committed, and how many did.
func verify(ctx context.Context, led ledger.Ledger, tenants []tenant, start time.Time) (time.Duration, int, []string, error) {
	var problems []string
	ms, err := led.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		return 0, 0, nil, err
	}
	committed := 0
	byID := map[string]*ledger.Migration{}
	var last time.Time
	for _, m := range ms {
		byID[m.ID] = m
		if m.State == ledger.Committed {
			committed++
		} else {
			problems = append(problems, fmt.Sprintf("migration %s of %s ended %s: %s", m.ID, m.Database, m.State, m.LastError))
		}
		for _, s := range m.Timeline {
			if s.State == ledger.RollingBack {
				problems = append(problems, fmt.Sprintf("migration %s of %s rolled back: %s", m.ID, m.Database, s.Note))
			}
			if s.State == ledger.Committed && s.Start.After(last) {
				last = s.Start
			}
		}
	}
	for _, t := range tenants {
		m := byID[t.token]
		if m == nil {
			problems = append(problems, fmt.Sprintf("no migration for %s", t.db))
			continue
		}
		db, err := led.GetDatabase(ctx, t.db)
		if err != nil {
			return 0, 0, nil, err
		}
		if db.Epoch != 2 || db.Instance != t.newID || db.Volume != m.Volume || db.Volume == "" || db.Claim != "" {
			problems = append(problems, fmt.Sprintf("database %s: epoch %d instance %s volume %s claim %q; want 2 %s %s and no claim",
				t.db, db.Epoch, db.Instance, db.Volume, db.Claim, t.newID, m.Volume))
		}
	}
	return last.Sub(start), committed, problems, nil
}

// timeInStates adds up, from the timelines, how long migrations spent in
// each state: where a fleet's time goes.
func timeInStates(ctx context.Context, led ledger.Ledger) (sum, longest map[ledger.State]time.Duration, err error) {
	ms, err := led.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		return nil, nil, err
	}
	sum, longest = map[ledger.State]time.Duration{}, map[ledger.State]time.Duration{}
	for _, m := range ms {
		for _, s := range m.Timeline {
			if s.End.IsZero() {
				continue
			}
			d := s.End.Sub(s.Start)
			sum[s.State] += d
			longest[s.State] = max(longest[s.State], d)
		}
	}
	return sum, longest, nil
}

// summary is the account of a run in four lines (a benchmark's log is cut
// at ten): the outcome; per pacer family the tokens taken, the Take calls
// denied, the throttles reported, and the time the family's bucket needs to
// hand out what was taken (the largest is the bound handover set itself);
// the mean and longest time in each state; the cloud calls per handover.
func (r result) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d handovers committed, the last at %.1f s simulated; bound %.1f s (%.3f×); %d throttles from the cloud %v; %d reconcile/sweep passes cut short; %d events redelivered\n",
		r.committed, r.n, r.completion.Seconds(), r.bound.Seconds(), r.completion.Seconds()/r.bound.Seconds(), r.throttleTotal(), r.throttles, r.reconcileErrs, r.redelivered)
	fmt.Fprintf(&b, "pacer taken/denied/throttled (time its bucket needs):")
	for _, f := range slices.Sorted(maps.Keys(r.pacer)) {
		s, bk := r.pacer[f], r.buckets[f]
		need := max(0, (float64(s.Taken)-bk.Burst)/bk.Refill)
		fmt.Fprintf(&b, " %s %d/%d/%d (%.0f s)", f, s.Taken, s.Denied, s.Throttles, need)
	}
	fmt.Fprintf(&b, "\nmean/longest s in state:")
	for _, st := range ledger.States() {
		if d, ok := r.inState[st]; ok && !st.Terminal() {
			fmt.Fprintf(&b, " %s %.1f/%.0f", st, d.Seconds()/float64(r.n), r.maxInState[st].Seconds())
		}
	}
	fmt.Fprintf(&b, "\ncalls per handover:")
	for _, op := range slices.Sorted(maps.Keys(r.calls)) {
		fmt.Fprintf(&b, " %s %.2f", op, float64(r.calls[op])/float64(r.n))
	}
	return b.String()
}

// check fails t for every broken expectation of a run, listing the first
// few.
func check(t *testing.T, sc scenario, res result) {
	t.Helper()
	for i, p := range res.problems {
		if i == 10 {
			t.Errorf("… and %d more", len(res.problems)-i)
			break
		}
		t.Error(p)
	}
	if sc.other != nil && res.throttleTotal() == 0 {
		t.Errorf("the shared account never throttled the controller: the run tests nothing")
	}
	t.Log(res.summary())
}

// TestFleetThrottlesNeverFail runs small fleets, alone and in an account
// another tool draws from, and checks that every handover commits without
// a rollback even though the cloud throttled the controller. It asserts
// nothing about time.
func TestFleetThrottlesNeverFail(t *testing.T) {
	for _, sc := range scenarios(150) {
		t.Run(sc.name, func(t *testing.T) {
			res, err := runFleet(t.Context(), sc, defaultLatencies)
			if err != nil {
				t.Fatal(err)
			}
			check(t, sc, res)
		})
	}
}

// TestFleet1000 is the same check on the 1,000-handover fleets of
// BenchmarkFleet: no throttle or pacing delay may end as a failed
// migration. It takes about a minute, so it runs only with
// HANDOVER_BENCH=1 (bench/run.sh sets it).
func TestFleet1000(t *testing.T) {
	if os.Getenv("HANDOVER_BENCH") != "1" {
		t.Skip("set HANDOVER_BENCH=1 to run the 1,000-handover fleets (bench/run.sh does)")
	}
	for _, sc := range scenarios(1000) {
		t.Run(sc.name, func(t *testing.T) {
			res, err := runFleet(t.Context(), sc, defaultLatencies)
			if err != nil {
				t.Fatal(err)
			}
			check(t, sc, res)
		})
	}
}

// BenchmarkFleet runs 1,000 concurrent handovers per scenario and reports
// the simulated completion time against the bound; TestFleet1000 asserts
// on the same runs. A run is deterministic (seeded jitter, one goroutine,
// a fake clock): repeated runs give the same simulated figures, and ns/op
// is only the wall time the simulation took.
func BenchmarkFleet(b *testing.B) {
	for _, sc := range scenarios(1000) {
		b.Run(sc.name, func(b *testing.B) {
			var res result
			for range b.N {
				var err error
				if res, err = runFleet(b.Context(), sc, defaultLatencies); err != nil {
					b.Fatal(err)
				}
			}
			failed := 0
			for _, p := range res.problems {
				if strings.HasPrefix(p, "migration ") && strings.Contains(p, " ended ") {
					failed++
				}
			}
			b.ReportMetric(res.completion.Seconds(), "sim-s")
			b.ReportMetric(res.bound.Seconds(), "bound-s")
			b.ReportMetric(res.completion.Seconds()/res.bound.Seconds(), "x-bound")
			b.ReportMetric(float64(res.throttleTotal()), "throttles")
			b.ReportMetric(float64(failed), "failed-migrations")
			b.ReportMetric(float64(res.calls["DescribeInstances"]+res.calls["DescribeSnapshots"]+res.calls["DescribeSnapshots(tags)"]+
				res.calls["DescribeVolumes"]+res.calls["DescribeVolumes(tags)"])/float64(res.n), "describes/handover")
			b.Log(res.summary())
		})
	}
}
