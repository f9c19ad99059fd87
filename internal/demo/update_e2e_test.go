package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/ledger"
)

func checkUpdate(t *testing.T, r UpdateResult) {
	t.Helper()
	t.Logf("%s: update %s %s in %d ms, %d handovers, longest write pause %d ms (client: %d ms), writes %d acked / %d lost, reads %d ok / %d failed, left over %d volumes %d snapshots",
		r.Scenario, r.UpdateID, r.State, r.DurationMS, r.Handovers, r.MaxWritePauseMS, r.ClientWritePauseMS, r.WritesAcked, r.WritesLost, r.ReadsOK, r.ReadsFailed, r.LeakedVolumes, r.LeakedSnapshots)
	for _, p := range r.Phases {
		t.Logf("  %-12s %8s  %s", p.Phase, p.End.Sub(p.Start).Round(time.Millisecond), p.Note)
	}
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

// TestRollingUpdate: 3 instances, one database each, batch size 1; every
// database ends on a new-version instance with its data, no read fails.
func TestRollingUpdate(t *testing.T) {
	e := newBareEnv(t, Options{})
	r, err := e.RunUpdate(t.Context(), ScenarioRolling, 16, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	checkUpdate(t, r)
}

// TestReplaceAllUpdate: 3 instances replaced by a new group that must
// collect 3 success signals; the old group is deleted.
func TestReplaceAllUpdate(t *testing.T) {
	e := newBareEnv(t, Options{})
	r, err := e.RunUpdate(t.Context(), ScenarioReplaceAll, 16, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	checkUpdate(t, r)
}

// poolSetup creates a pool group, preloads it and adds a new version.
func poolSetup(t *testing.T, e *Env, o PoolOptions, failOnce bool) (*Pool, string) {
	t.Helper()
	p, err := e.CreatePool(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Preload(t.Context(), 4); err != nil {
		t.Fatal(err)
	}
	dir := ""
	if failOnce {
		dir = e.failOnceDir(o.Name)
	}
	v, err := p.NewVersion(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return p, v
}

func memberIDs(t *testing.T, e *Env, group string) []string {
	t.Helper()
	ms, err := e.Members(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

func (e *Env) waitPhase(t *testing.T, id string, ok func(api.Update) bool) api.Update {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		u, err := e.API().Update(t.Context(), id)
		if err == nil && ok(u) {
			return u
		}
		if err == nil && u.State.Terminal() {
			t.Fatalf("update ended %s (%s) before the awaited phase", u.State, u.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("update %s never reached the awaited phase (now %s %s, err %v)", id, u.State, u.Phase, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func finished(t *testing.T, e *Env, id string) api.Update {
	t.Helper()
	u, err := e.WaitUpdate(t.Context(), id, 6*time.Minute, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// checkWrites: every write acknowledged by a database's holder during the
// test is on the instance that holds the database now.
func checkWrites(t *testing.T, w *TenantWrites) {
	t.Helper()
	w.Stop()
	r, err := w.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tenant writes: %d acknowledged, %d lost, longest pause %s, %d read back, %d stale", r.Acked, r.Lost, r.MaxPause, r.FreshReads, r.StaleReads)
	if r.Lost > 0 || r.Acked == 0 {
		t.Errorf("tenant writes: %d acknowledged, %d lost %v", r.Acked, r.Lost, r.LostKeys)
	}
	if r.StaleReads > 0 || r.FreshReads == 0 {
		t.Errorf("tenant writes read back: %d fresh, %d stale (invariant no-stale-reads) %v", r.FreshReads, r.StaleReads, r.StaleKeys)
	}
}

func noProblems(t *testing.T, what string, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Errorf("%s: %s", what, p)
	}
}

// TestReplaceAllTwelve: more instances than one launch batch (10); N = 12
// signals, 12 handovers, the old group deleted.
func TestReplaceAllTwelve(t *testing.T) {
	e := newBareEnv(t, Options{})
	p, v := poolSetup(t, e, PoolOptions{Name: "twelve", Instances: 12, Signal: true, HookTimeout: 5 * time.Minute}, false)
	reads := StartReads(p.LBURL, p.Keys)
	u, err := e.StartUpdate(t.Context(), api.UpdateRequest{Group: "twelve", Strategy: "replace-all", BatchSize: 1, SignalTimeout: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	u = finished(t, e, u.ID)
	reads.Stop()
	if u.State != ledger.UpdateSucceeded || u.OldDesired != 12 {
		t.Fatalf("update %s with N=%d: %s", u.State, u.OldDesired, u.Error)
	}
	if committed := committedSoon(t, e, u, time.Minute); committed != 12 {
		t.Errorf("%d handovers committed, want 12", committed)
	}
	noProblems(t, "after the update", p.CheckMoved(t.Context(), u.NewGroup, v))
	if err := e.WaitGroupGone(t.Context(), "twelve", 2*time.Minute); err != nil {
		t.Error(err)
	}
	// The new group launched in two batches: 10, then 2.
	acts, err := e.ASG.DescribeScalingActivities(t.Context(), &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(u.NewGroup)})
	if err != nil {
		t.Fatal(err)
	}
	var starts []time.Time
	for _, a := range acts.Activities {
		if aws.ToString(a.Description) != "" && len(starts) < 64 && a.StartTime != nil && strings.Contains(aws.ToString(a.Description), "Launching") {
			starts = append(starts, *a.StartTime)
		}
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	if len(starts) < 12 || starts[10].Sub(starts[9]) < time.Second {
		t.Errorf("launches of the new group: %d, want 12 in two batches (gap between the 10th and 11th: %v)", len(starts), gap(starts))
	}
	if r := reads.Result(); r.ReadsFailed > 0 || r.ReadsOK == 0 {
		t.Errorf("reads: %d ok, %d failed %v", r.ReadsOK, r.ReadsFailed, r.ReadFailures)
	}
	noLeaks(t, e)
}

// committedSoon counts the update's handovers that commit within limit. An
// update ends once every new instance is in service; a handover past
// CONTINUE may still be in Unfencing then, committing a moment later.
func committedSoon(t *testing.T, e *Env, u api.Update, limit time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(limit)
	committed := 0
	for _, s := range u.Migrations {
		for {
			m, err := e.API().Migration(t.Context(), s.ID)
			if err == nil && m.State == ledger.Committed.String() {
				committed++
				break
			}
			if time.Now().After(deadline) {
				t.Logf("migration %s: %s (%v)", s.ID, m.State, err)
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	return committed
}

func gap(ts []time.Time) time.Duration {
	if len(ts) < 11 {
		return 0
	}
	return ts[10].Sub(ts[9])
}

// TestReplaceAllFailure: one new instance signals FAILURE; the new group is
// deleted, the old one is untouched and takes writes again, nothing leaks.
func TestReplaceAllFailure(t *testing.T) {
	e := newBareEnv(t, Options{})
	p, _ := poolSetup(t, e, PoolOptions{Name: "failing", Instances: 3, Signal: true}, true)
	before := memberIDs(t, e, "failing")
	reads := StartReads(p.LBURL, p.Keys)
	writes := p.StartTenantWrites()
	u, err := e.StartUpdate(t.Context(), api.UpdateRequest{Group: "failing", Strategy: "replace-all", BatchSize: 1, SignalTimeout: "3m"})
	if err != nil {
		t.Fatal(err)
	}
	u = finished(t, e, u.ID)
	reads.Stop()
	checkWrites(t, writes)
	if u.State != ledger.UpdateFailed || !strings.Contains(u.Error, "FAILURE") {
		t.Fatalf("update ended %s (%s), want Failed on a FAILURE signal", u.State, u.Error)
	}
	if after := memberIDs(t, e, "failing"); !slices.Equal(before, after) {
		t.Errorf("the old group's instances changed: %v -> %v", before, after)
	}
	if err := e.WaitGroupGone(t.Context(), u.NewGroup, time.Minute); err != nil {
		t.Error(err)
	}
	noProblems(t, "after the rollback", p.CheckMoved(t.Context(), "failing", ""))
	// Every old instance takes writes again: its fence was lifted.
	ms, err := e.Members(t.Context(), "failing")
	if err != nil {
		t.Fatal(err)
	}
	hc := newClient()
	for _, m := range ms {
		if err := put(t.Context(), hc, m.Addr, "after-rollback", []byte("x")); err != nil {
			t.Errorf("instance %s does not take writes after the rollback: %v", m.ID, err)
		}
	}
	if r := reads.Result(); r.ReadsFailed > 0 {
		t.Errorf("reads: %d ok, %d failed %v", r.ReadsOK, r.ReadsFailed, r.ReadFailures)
	}
	noLeaks(t, e)
}

// TestUpdateScaledOut: the group was scaled from 2 to 4 after it was
// created; replace-all takes N = 4, the current desired capacity.
func TestUpdateScaledOut(t *testing.T) {
	e := newBareEnv(t, Options{})
	o := PoolOptions{Name: "scaled", Instances: 2, Databases: 4, Signal: true}
	p, v := poolSetup(t, e, o, false)
	if _, err := e.ASG.SetDesiredCapacity(t.Context(), &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("scaled"), DesiredCapacity: aws.Int32(4)}); err != nil {
		t.Fatal(err)
	}
	p.opts.Instances = 4
	if err := p.waitSettled(t.Context(), "scaled", 4, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.Preload(t.Context(), 4); err != nil {
		t.Fatal(err)
	}
	u, err := e.StartUpdate(t.Context(), api.UpdateRequest{Group: "scaled", Strategy: "replace-all", BatchSize: 1, SignalTimeout: "3m"})
	if err != nil {
		t.Fatal(err)
	}
	u = finished(t, e, u.ID)
	if u.State != ledger.UpdateSucceeded || u.OldDesired != 4 {
		t.Fatalf("update %s with N=%d (want 4): %s", u.State, u.OldDesired, u.Error)
	}
	if got := memberIDs(t, e, u.NewGroup); len(got) != 4 {
		t.Errorf("new group has %d instances, want 4", len(got))
	}
	noProblems(t, "after the update", p.CheckMoved(t.Context(), u.NewGroup, v))
	noLeaks(t, e)
}

// TestAbortRollingUpdate: aborted while baking its first batch, the update
// rolls that batch back: every instance is on the old version again, every
// database on an instance with its data, reads never fail.
func TestAbortRollingUpdate(t *testing.T) {
	e := newBareEnv(t, Options{})
	p, v := poolSetup(t, e, PoolOptions{Name: "aborted", Instances: 3}, false)
	reads := StartReads(p.LBURL, p.Keys)
	writes := p.StartTenantWrites()
	u, err := e.StartUpdate(t.Context(), api.UpdateRequest{Group: "aborted", Strategy: "rolling", BatchSize: 1, MinHealthyPercent: 50, Bake: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitPhase(t, u.ID, func(u api.Update) bool { return u.Phase == "bake" })
	if _, err := e.API().AbortUpdate(t.Context(), u.ID, "test abort"); err != nil {
		t.Fatal(err)
	}
	u = finished(t, e, u.ID)
	reads.Stop()
	checkWrites(t, writes)
	if u.State != ledger.UpdateAborted {
		t.Fatalf("update ended %s (%s), want Aborted", u.State, u.Error)
	}
	ms, err := e.Members(t.Context(), "aborted")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version == v && !strings.HasPrefix(m.Lifecycle, "Terminat") {
			t.Errorf("instance %s (%s) still runs the new version %s after the abort", m.ID, m.Lifecycle, v)
		}
	}
	noProblems(t, "after the abort", p.CheckMoved(t.Context(), "aborted", ""))
	if r := reads.Result(); r.ReadsFailed > 0 || r.ReadsOK == 0 {
		t.Errorf("reads: %d ok, %d failed %v", r.ReadsOK, r.ReadsFailed, r.ReadFailures)
	}
	rolledBack := 0
	for _, m := range u.Migrations {
		if m.State == ledger.Committed.String() {
			rolledBack++
		}
	}
	if rolledBack < 2 {
		t.Errorf("%d handovers committed; want the batch's forward one and its way back", rolledBack)
	}
	noLeaks(t, e)
}

// TestUpdateControllerKilled: the controller is SIGKILLed in the middle of
// a rolling update (at its second batch) and restarted; the update resumes
// from the ledger and succeeds.
func TestUpdateControllerKilled(t *testing.T) {
	e := newBareEnv(t, Options{})
	p, v := poolSetup(t, e, PoolOptions{Name: "killed", Instances: 3}, false)
	reads := StartReads(p.LBURL, p.Keys)
	writes := p.StartTenantWrites()
	u, err := e.StartUpdate(t.Context(), api.UpdateRequest{Group: "killed", Strategy: "rolling", BatchSize: 1, MinHealthyPercent: 50})
	if err != nil {
		t.Fatal(err)
	}
	e.waitPhase(t, u.ID, func(u api.Update) bool { return u.Phase == "batch" && u.Batch == 1 })
	cs := e.Controllers()
	cs[len(cs)-1].Kill()
	if _, err := e.StartController(t.Context(), len(cs)+1); err != nil {
		t.Fatal(err)
	}
	u = finished(t, e, u.ID)
	reads.Stop()
	checkWrites(t, writes)
	if u.State != ledger.UpdateSucceeded {
		t.Fatalf("update ended %s: %s", u.State, u.Error)
	}
	noProblems(t, "after the update", p.CheckMoved(t.Context(), "killed", v))
	if r := reads.Result(); r.ReadsFailed > 0 {
		t.Errorf("reads: %d ok, %d failed %v", r.ReadsOK, r.ReadsFailed, r.ReadFailures)
	}
	noLeaks(t, e)
}

// TestMigrationGroupFirst: a single-instance migration group rolls to its
// new version and signals before the main group starts; it is scaled to 0
// afterwards.
func TestMigrationGroupFirst(t *testing.T) {
	e := newBareEnv(t, Options{})
	ctx := t.Context()
	p, v := poolSetup(t, e, PoolOptions{Name: "app", Instances: 2}, false)
	marks := t.TempDir()
	script := func(version string) string {
		return e.userDataScript()[:0] + "#!/bin/sh\n" + exports(e) +
			fmt.Sprintf("date +%%s%%N > %s\n", filepath.Join(marks, "schema-"+version)) +
			fmt.Sprintf("%s signal --status SUCCESS >>\"$HANDOVER_INSTANCE_DIR/signal.log\" 2>&1\nexec sleep 3600\n", shellQuote(e.opts.HandoverBin))
	}
	if _, err := e.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("migrate"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amiV1), UserData: aws.String(encodeUserData(script("v1")))}}); err != nil {
		t.Fatal(err)
	}
	zones, err := e.zones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ASG.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("migrate"), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(0),
		AvailabilityZones: zones, LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("migrate"), Version: aws.String("1")},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateName: aws.String("migrate"), SourceVersion: aws.String("1"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{UserData: aws.String(encodeUserData(script("v2")))}}); err != nil {
		t.Fatal(err)
	}
	reads := StartReads(p.LBURL, p.Keys)
	u, err := e.StartUpdate(ctx, api.UpdateRequest{Group: "app", Strategy: "rolling", BatchSize: 1, MinHealthyPercent: 50,
		MigrationGroup: "migrate", MigrationTimeout: "2m"})
	if err != nil {
		t.Fatal(err)
	}
	u = finished(t, e, u.ID)
	reads.Stop()
	if u.State != ledger.UpdateSucceeded {
		t.Fatalf("update ended %s: %s", u.State, u.Error)
	}
	if len(u.Timeline) < 2 || u.Timeline[0].Phase != "migration-group" || u.Timeline[1].Phase != "batch" {
		t.Errorf("phases %+v: want the migration group first", u.Timeline)
	}
	st, err := os.Stat(filepath.Join(marks, "schema-v2"))
	if err != nil {
		t.Fatalf("the migration group's new version never ran: %v", err)
	}
	for _, m := range u.Migrations {
		if m.CreatedAt.Before(st.ModTime().Add(-time.Second)) {
			t.Errorf("handover %s started %s, before the schema migration ran (%s)", m.ID, m.CreatedAt, st.ModTime())
		}
	}
	g, err := e.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"migrate"}})
	if err != nil || len(g.AutoScalingGroups) != 1 || aws.ToInt32(g.AutoScalingGroups[0].DesiredCapacity) != 0 {
		t.Errorf("migration group not scaled to 0: %v %+v", err, g)
	}
	noProblems(t, "after the update", p.CheckMoved(ctx, "app", v))
	if r := reads.Result(); r.ReadsFailed > 0 {
		t.Errorf("reads: %d ok, %d failed %v", r.ReadsOK, r.ReadsFailed, r.ReadFailures)
	}
	noLeaks(t, e)
	_ = http.StatusOK
	_ = context.Background
}

// exports is the environment lines of the demo's user data.
func exports(e *Env) string {
	s := e.userDataScript()
	i := len("#!/bin/sh\n")
	j := len(s)
	for k := i; k < len(s); k++ {
		if s[k:min(len(s), k+5)] == "exec " {
			j = k
			break
		}
	}
	return s[i:j]
}

// TestUpdateCommand drives the real `handover update` program against the
// controller: a dry run changes nothing, then the update runs to the end
// and --output json reports it.
func TestUpdateCommand(t *testing.T) {
	e := newBareEnv(t, Options{})
	p, v := poolSetup(t, e, PoolOptions{Name: "cli", Instances: 2}, false)
	before := memberIDs(t, e, "cli")
	apiURL := "http://" + e.Controllers()[0].APIAddr
	run := func(args ...string) (string, string, error) {
		cmd := exec.CommandContext(t.Context(), e.opts.HandoverBin, append([]string{"update", "--api", apiURL}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	out, stderr, err := run("--group", "cli", "--min-healthy-percent", "50", "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s%s", err, out, stderr)
	}
	for _, want := range append([]string{"nothing was changed", "to " + v}, before...) {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if after := memberIDs(t, e, "cli"); !slices.Equal(before, after) {
		t.Errorf("the dry run changed the group: %v -> %v", before, after)
	}
	out, stderr, err = run("--group", "cli", "--min-healthy-percent", "50", "--poll", "200ms", "--output", "json")
	if err != nil {
		t.Fatalf("update: %v\n%s%s", err, out, stderr)
	}
	var u api.Update
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, out)
	}
	if u.State != ledger.UpdateSucceeded || len(u.Migrations) != 2 {
		t.Errorf("update %s with %d handovers, want Succeeded with 2", u.State, len(u.Migrations))
	}
	if !strings.Contains(stderr, "update: ") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
	noProblems(t, "after the update", p.CheckMoved(t.Context(), "cli", v))
}

// TestPoolZoneMove: a zone is taken out of a group whose instances each
// hold their own database; the rebalance launches a replacement in another
// zone first, which takes the database of the instance in the removed zone
// while that instance still serves reads.
func TestPoolZoneMove(t *testing.T) {
	e := newBareEnv(t, Options{})
	ctx := t.Context()
	p, _ := poolSetup(t, e, PoolOptions{Name: "zones", Instances: 3}, false)
	ms, err := e.Members(ctx, "zones")
	if err != nil {
		t.Fatal(err)
	}
	gone := ms[0].Zone
	zones, err := e.zones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reads := StartReads(p.LBURL, p.Keys)
	if _, err := e.ASG.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("zones"),
		AvailabilityZones: slices.DeleteFunc(slices.Clone(zones), func(z string) bool { return z == gone })}); err != nil {
		t.Fatal(err)
	}
	_, err = e.waitFor(ctx, 3*time.Minute, "every database on an instance outside "+gone, func() (string, bool, error) {
		ms, err := e.Members(ctx, "zones")
		if err != nil {
			return "", false, err
		}
		for _, m := range ms {
			if m.Zone == gone {
				return "", false, nil
			}
		}
		return "", len(p.CheckMoved(ctx, "zones", "")) == 0, nil
	})
	reads.Stop()
	if err != nil {
		t.Fatal(err)
	}
	noProblems(t, "after the rebalance", p.CheckMoved(ctx, "zones", ""))
	if r := reads.Result(); r.ReadsFailed > 0 || r.ReadsOK == 0 {
		t.Errorf("reads: %d ok, %d failed %v", r.ReadsOK, r.ReadsFailed, r.ReadFailures)
	}
	noLeaks(t, e)
}
