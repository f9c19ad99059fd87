package demo

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/dial"
	"github.com/handover-dev/handover/internal/localcloud/faults"
	"github.com/handover-dev/handover/internal/testenv"
	"github.com/handover-dev/handover/internal/testenv/pgtest"
)

// End-to-end tests: the real local cloud, real controller processes
// talking to it through the AWS SDK, real kvstore instances started by the
// real agent, and traffic through the real load balancer.

func TestMain(m *testing.M) { pgtest.Main(m) }

// binaries builds handover and kvstore once per test binary.
func binaries(t testing.TB) (string, string) {
	t.Helper()
	return testenv.Binary(t, "github.com/handover-dev/handover/cmd/handover"), testenv.Binary(t, "github.com/handover-dev/handover/examples/kvstore")
}

// newEnv starts an environment with its group serving; on failure the
// controllers' logs are printed.
func newEnv(t *testing.T, o Options) *Env {
	t.Helper()
	e := newBareEnv(t, o)
	if err := e.CreateGroup(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e
}

// newBareEnv starts an environment without the demo's group.
func newBareEnv(t testing.TB, o Options) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	o.HandoverBin, o.KVStoreBin = binaries(t)
	// Open to the postgres user, which runs the local cloud's RDS servers.
	o.DataDir = testenv.OpenTempDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	e, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range e.Controllers() {
				b, _ := os.ReadFile(c.LogPath)
				t.Logf("controller %d log (tail):\n%s", c.N, tail(string(b), 60))
			}
		}
		e.Close()
	})
	return e
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// noLeaks: after every test, every volume and snapshot handover tagged is
// authoritative or deleted.
func noLeaks(t *testing.T, e *Env) {
	t.Helper()
	leaked, _, _, err := e.settleLeaks(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaked) > 0 {
		t.Errorf("left over after the sweeper: %v", leaked)
	}
}

func checkResult(t *testing.T, r Result) {
	t.Helper()
	t.Logf("%s: write pause %d ms, reads %d ok / %d failed, own writes read back %d / stale %d, writes %d acked / %d lost, %s (%s) -> %s (%s)",
		r.Scenario, r.WritePauseMS, r.ReadsOK, r.ReadsFailed, r.FreshReadsOK, r.StaleReads, r.WritesAcked, r.WritesLost, r.OldInstance, r.OldZone, r.NewInstance, r.NewZone)
	if !r.OK {
		t.Errorf("%s not ok: %v", r.Scenario, r.Problems)
	}
	if r.ReadsOK == 0 || r.WritesAcked == 0 || r.FreshReadsOK == 0 {
		t.Errorf("%s: no traffic got through (%d reads, %d writes, %d read back)", r.Scenario, r.ReadsOK, r.WritesAcked, r.FreshReadsOK)
	}
	if r.StaleReads > 0 {
		t.Errorf("%s: %d stale reads (invariant no-stale-reads)", r.Scenario, r.StaleReads)
	}
}

// checkTraffic: no read failed, none was stale, and the traffic read its
// own writes back.
func checkTraffic(t *testing.T, tr TrafficResult) {
	t.Helper()
	if tr.ReadsFailed > 0 {
		t.Errorf("%d reads failed: %v", tr.ReadsFailed, tr.ReadFailures)
	}
	if tr.StaleReads > 0 {
		t.Errorf("%d stale reads of acknowledged writes (invariant no-stale-reads), e.g. %v", tr.StaleReads, tr.StaleKeys)
	}
	if tr.WritesAcked > 0 && tr.FreshReads == 0 {
		t.Errorf("%d writes acknowledged, none read back", tr.WritesAcked)
	}
}

// TestScenarios: first boot, then an update, an unhealthy replacement and
// a zone move, each with no failed read, no lost write and no leak.
func TestScenarios(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := t.Context()

	// First boot: a blank volume under epoch 1.
	db, err := e.database(ctx)
	if err != nil || db.Epoch != 1 || db.Volume == "" {
		t.Fatalf("after first boot: %+v, %v", db, err)
	}
	keys, err := e.Load(ctx, 4<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := db.Epoch
	for _, s := range Scenarios {
		r, err := e.Run(ctx, s, keys, func(string) {})
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		checkResult(t, r)
		if r.Epoch != epoch+1 {
			t.Errorf("%s: epoch %d, want %d", s, r.Epoch, epoch+1)
		}
		epoch = r.Epoch
		if s == ScenarioAZMove && r.NewZone == r.OldZone {
			t.Errorf("az-move stayed in %s", r.OldZone)
		}
	}
	noLeaks(t, e)
}

// TestRollbackWhenNeverHealthy: the new version's service never becomes
// healthy, so the handover rolls back — hook ABANDONed, source unfenced,
// the created volume deleted — and a fixed version later succeeds.
func TestRollbackWhenNeverHealthy(t *testing.T) {
	e := newEnv(t, Options{ControllerArgs: []string{"--step-timeout", "8s"}})
	ctx := t.Context()
	keys, err := e.Load(ctx, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := e.serving(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The agent gets the volume, but the "service" never listens.
	broken := strings.Replace(e.userDataScript(), shellQuote(e.opts.KVStoreBin)+` --listen "$HANDOVER_PRIVATE_IP:8080"`, "sleep 600", 1)
	if broken == e.userDataScript() {
		t.Fatal("could not break the user data")
	}
	if err := e.newVersion(ctx, amiV2, broken); err != nil {
		t.Fatal(err)
	}
	traffic := e.StartTraffic(keys)
	if _, err := e.ASG.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(groupName), DesiredCapacity: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	aborted := e.waitMigration(t, func(m api.MigrationSummary) bool { return m.Instance != old.id && m.State == "Aborted" })
	detail, err := e.API().Migration(ctx, aborted.ID)
	if err != nil {
		t.Fatal(err)
	}
	if detail.Result != "ABANDON" {
		t.Errorf("aborted migration's hook result = %q, want ABANDON", detail.Result)
	}
	for _, r := range detail.Resources {
		if r.Kind == ledger.KindVolume && !r.Deleted {
			t.Errorf("volume %s created by the aborted migration not deleted", r.ID)
		}
	}
	// Unfenced: the rollback lifted the fence (the ledger records the
	// answer of the source's unfence call), and writes go through the old
	// instance again. The group keeps relaunching the broken version, and
	// each attempt fences the source anew, so writes get through in the
	// gaps between attempts: wait for one rather than for a fixed time.
	if m, err := e.openLedger(t).GetMigration(ctx, aborted.ID); err != nil || !m.Unfenced {
		t.Errorf("aborted migration: unfenced %v (%v), want the source unfenced", m != nil && m.Unfenced, err)
	}
	before := traffic.Result().WritesAcked
	if _, err := e.waitFor(ctx, 30*time.Second, "a write acknowledged after the rollback", func() (string, bool, error) {
		return "", traffic.Result().WritesAcked > before, nil
	}); err != nil {
		t.Errorf("no write acknowledged after the rollback: the source stayed fenced (%v)", err)
	}

	// Fix the version: the group's next replacement succeeds.
	if err := e.newVersion(ctx, amiV2, e.userDataScript()); err != nil {
		t.Fatal(err)
	}
	committed := e.waitMigration(t, func(m api.MigrationSummary) bool { return m.Instance != old.id && m.State == "Committed" })
	if err := e.waitHealthyTarget(ctx, committed.Instance); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ASG.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(old.id), ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.waitFor(ctx, 2*time.Minute, "the old instance to go", func() (string, bool, error) {
		m, err := e.serving(ctx)
		return "", err == nil && m.id == committed.Instance, nil
	}); err != nil {
		t.Fatal(err)
	}
	traffic.Stop()
	tr := traffic.Result()
	lost, err := e.LostWrites(ctx, tr.Acked)
	if err != nil || len(lost) > 0 {
		t.Errorf("lost %d acknowledged writes (%v)", len(lost), err)
	}
	checkTraffic(t, tr)
	noLeaks(t, e)
}

// TestControllerKilled: the controller is killed with SIGKILL as the
// migration enters each step in turn and restarted over the same ledger;
// the handover converges with nothing lost or leaked.
func TestControllerKilled(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := t.Context()
	keys, err := e.Load(ctx, 2<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Slow every EC2 call down so each step lasts long enough to be seen.
	if _, err := e.Cloud().Faults.Add(faults.Rule{Service: "ec2", Kind: faults.Latency, Delay: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	led := e.openLedger(t)
	old, err := e.serving(ctx)
	if err != nil {
		t.Fatal(err)
	}
	traffic := e.StartTraffic(keys)
	if err := e.rollOut(ctx); err != nil {
		t.Fatal(err)
	}
	killedIn := map[ledger.State]bool{}
	n := len(e.Controllers())
	deadline := time.Now().Add(4 * time.Minute)
	var final *ledger.Migration
	for final == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no convergence after 4 minutes; killed in %v", killedIn)
		}
		ms, err := led.ListMigrations(ctx, ledger.MigrationQuery{Database: database})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Instance == old.id {
				continue
			}
			switch {
			case m.State.Terminal():
				final = m
			case !killedIn[m.State]:
				killedIn[m.State] = true
				cs := e.Controllers()
				cs[len(cs)-1].Kill()
				n++
				if _, err := e.StartController(ctx, n); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("killed the controller in %d states: %v", len(killedIn), killedIn)
	if final.State != ledger.Committed {
		t.Fatalf("migration ended %s: %s", final.State, final.LastError)
	}
	if len(killedIn) < 4 {
		t.Errorf("killed in only %d states: %v", len(killedIn), killedIn)
	}
	e.Cloud().Faults.Clear()
	finishUpdate(t, e, old.id, final.Instance, traffic)
}

// TestEventFaults: events dropped, duplicated, delayed and reordered on
// their way to the queue; reconcile and the ledger's dedup reach the same
// outcome.
func TestEventFaults(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := t.Context()
	keys, err := e.Load(ctx, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []faults.Rule{
		{Service: "events", Action: "EC2 Instance-launch Lifecycle Action", Kind: faults.Drop},
		{Service: "events", Kind: faults.Duplicate, Rate: 0.5},
		{Service: "events", Kind: faults.Reorder, Rate: 0.5},
		{Service: "events", Kind: faults.Delay, Delay: time.Second, Rate: 0.3},
	} {
		if _, err := e.Cloud().Faults.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	old, err := e.serving(ctx)
	if err != nil {
		t.Fatal(err)
	}
	traffic := e.StartTraffic(keys)
	if err := e.rollOut(ctx); err != nil {
		t.Fatal(err)
	}
	m := e.waitMigration(t, func(m api.MigrationSummary) bool {
		return m.Instance != old.id && (m.State == "Committed" || m.State == "Aborted")
	})
	if m.State != "Committed" {
		t.Fatalf("migration ended %s: %s", m.State, m.LastError)
	}
	if m.Cause != "reconcile" {
		t.Errorf("with every launch event dropped the migration should come from reconcile, came from %q", m.Cause)
	}
	finishUpdate(t, e, old.id, m.Instance, traffic)
}

// TestTwoControllersOnPostgres: two controllers share one PostgreSQL
// ledger; the handover happens once.
func TestTwoControllersOnPostgres(t *testing.T) {
	dsn := pgtest.Start(t)
	e := newEnv(t, Options{Ledger: dsn, Controllers: 2})
	ctx := t.Context()
	keys, err := e.Load(ctx, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Run(ctx, ScenarioUpdate, keys, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r)
	ms, err := e.API().Migrations(ctx, url.Values{"database": {database}})
	if err != nil {
		t.Fatal(err)
	}
	// Reconcile may adopt the update's launch a moment before its event
	// arrives (seen on a loaded machine): that adoption finds the instance
	// already holding the volume the event's migration gave it, and does
	// no work. It is not a second handover; anything else is.
	var work []api.MigrationSummary
	for _, m := range ms {
		if m.Cause == "reconcile" && m.Source == m.Instance && m.State == "Committed" {
			continue
		}
		work = append(work, m)
	}
	if len(work) != 2 {
		t.Errorf("%d migrations doing work (want the first boot and the update): %+v", len(work), ms)
	}
	detail, err := e.API().Migration(ctx, r.MigrationID)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, res := range detail.Resources {
		counts[res.Kind+"/"+res.Purpose]++
	}
	for k, n := range counts {
		if n != 1 {
			t.Errorf("the migration created %d %s: double work", n, k)
		}
	}
	// Both controllers answer and see the same ledger (the committed
	// migrations listed above, a no-op adoption included).
	committed := 0
	for _, m := range ms {
		if m.State == "Committed" {
			committed++
		}
	}
	for _, c := range e.Controllers() {
		st, err := c.API.Status(ctx)
		if err != nil || st.Migrations["Committed"] != committed {
			t.Errorf("controller %d: %+v, %v", c.N, st.Migrations, err)
		}
	}
	noLeaks(t, e)
}

// finishUpdate terminates the old instance and checks the traffic.
func finishUpdate(t *testing.T, e *Env, oldID, newID string, traffic *Traffic) {
	t.Helper()
	ctx := t.Context()
	if err := e.waitHealthyTarget(ctx, newID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ASG.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(oldID), ShouldDecrementDesiredCapacity: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.waitFor(ctx, 2*time.Minute, "the old instance to go", func() (string, bool, error) {
		m, err := e.serving(ctx)
		return "", err == nil && m.id == newID, nil
	}); err != nil {
		t.Fatal(err)
	}
	traffic.Stop()
	tr := traffic.Result()
	lost, err := e.LostWrites(ctx, tr.Acked)
	if err != nil || len(lost) > 0 {
		t.Errorf("lost %d of %d acknowledged writes (%v)", len(lost), tr.WritesAcked, err)
	}
	checkTraffic(t, tr)
	db, err := e.database(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.checkHolds(ctx, newID, db); err != nil {
		t.Error(err)
	}
	noLeaks(t, e)
}

// waitMigration waits for a migration of the demo database matching ok.
func (e *Env) waitMigration(t *testing.T, ok func(api.MigrationSummary) bool) api.MigrationSummary {
	t.Helper()
	var found api.MigrationSummary
	if _, err := e.waitFor(t.Context(), 4*time.Minute, "a migration", func() (string, bool, error) {
		ms, err := e.API().Migrations(t.Context(), url.Values{"database": {database}})
		for _, m := range ms {
			if ok(m) {
				found = m
				return "", true, nil
			}
		}
		return "", false, err
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// newVersion makes a launch template version with image and user data.
func (e *Env) newVersion(ctx context.Context, image, script string) error {
	_, err := e.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateName: aws.String(groupName), SourceVersion: aws.String("$Latest"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(image), UserData: aws.String(encodeUserData(script))}})
	return err
}

// openLedger opens the controllers' SQLite ledger from the test, to watch
// migrations while no controller (and so no API) runs.
func (e *Env) openLedger(t *testing.T) ledger.Ledger {
	t.Helper()
	led, err := dial.Open(t.Context(), e.opts.Ledger, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	return led
}
