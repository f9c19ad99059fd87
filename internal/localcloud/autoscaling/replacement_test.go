package autoscaling

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/handover-dev/handover/internal/events"
)

func policy(lo, hi int32) *types.InstanceMaintenancePolicy {
	return &types.InstanceMaintenancePolicy{MinHealthyPercentage: aws.Int32(lo), MaxHealthyPercentage: aws.Int32(hi)}
}

func withPolicy(p *types.InstanceMaintenancePolicy) groupOpt {
	return func(in *as.CreateAutoScalingGroupInput) { in.InstanceMaintenancePolicy = p }
}

// complete completes the hook's action on an instance.
func (h *harness) complete(group, hook, id, result string) {
	h.t.Helper()
	if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String(group), LifecycleHookName: aws.String(hook),
		InstanceId: aws.String(id), LifecycleActionResult: aws.String(result),
	}); err != nil {
		h.t.Fatalf("CompleteLifecycleAction(%s, %s): %v", id, result, err)
	}
}

// completeWaiting completes the launch hook of every instance in
// Pending:Wait and runs a pass.
func (h *harness) completeWaiting(group, hook string) {
	h.t.Helper()
	for _, i := range h.instances(group) {
		if i.LifecycleState == types.LifecycleStatePendingWait {
			h.complete(group, hook, aws.ToString(i.InstanceId), "CONTINUE")
		}
	}
	h.step()
}

func (h *harness) setUnhealthy(id string) {
	h.t.Helper()
	if _, err := h.as.SetInstanceHealth(h.ctx, &as.SetInstanceHealthInput{InstanceId: aws.String(id), HealthStatus: aws.String("Unhealthy")}); err != nil {
		h.t.Fatalf("SetInstanceHealth(%s): %v", id, err)
	}
}

// instance returns one instance of the group by id, or nil.
func (h *harness) instance(group, id string) *types.Instance {
	h.t.Helper()
	for _, i := range h.instances(group) {
		if aws.ToString(i.InstanceId) == id {
			return &i
		}
	}
	return nil
}

// callIndex is where a target group call first appears, or -1.
func (f *fakeTargets) callIndex(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Index(f.Calls, call)
}

// activityCause returns the cause of the activity with a description.
func (h *harness) activityCause(group, description string) string {
	h.t.Helper()
	for _, a := range h.activities(group) {
		if aws.ToString(a.Description) == description {
			return aws.ToString(a.Cause)
		}
	}
	h.t.Fatalf("no activity %q in %s", description, group)
	return ""
}

// TestUnhealthyInstanceReplacement is handover's case: one stateful
// instance whose replacement's launch hook moves the data. With a policy
// that launches first the old instance must serve until the replacement
// is InService; without one, or when EC2 no longer runs it, it goes first.
func TestUnhealthyInstanceReplacement(t *testing.T) {
	for _, tc := range []struct {
		name        string
		policy      *types.InstanceMaintenancePolicy
		checkType   string
		breakIt     func(h *harness, id string)
		cause       string
		launchFirst bool
	}{
		{"no policy terminates first", nil, "EC2", (*harness).setUnhealthy, "in response to a user health-check.", false},
		{"100/110 user health check", policy(100, 110), "EC2", (*harness).setUnhealthy, "in response to a user health-check.", true},
		{"100/200 ELB failure", policy(100, 200), "ELB", func(h *harness, id string) { h.tgs.setUnhealthy(id) }, "in response to an ELB system health check failure.", true},
		{"100/110 process died", policy(100, 110), "EC2", func(h *harness, id string) { h.ec2.kill(id) }, "EC2 health check", true},
		{"100/110 stopped instance is terminated first", policy(100, 110), "EC2", func(h *harness, id string) {
			h.ec2.mu.Lock()
			h.ec2.insts[id].State = "stopped"
			h.ec2.mu.Unlock()
		}, "EC2 health check indicating it has been terminated or stopped", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			// Max size 1: launching first takes the group above it, as the
			// policy's percentages are of the desired capacity.
			h.createGroup("db", 1, 1, 1, withTargetGroup, withPolicy(tc.policy), func(in *as.CreateAutoScalingGroupInput) {
				in.HealthCheckType = aws.String(tc.checkType)
			}, withHook("handover", events.TransitionLaunching, 300, "ABANDON", ""))
			h.step()
			h.completeWaiting("db", "handover")
			old := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId)

			tc.breakIt(h, old)
			h.step()
			repl := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId)
			if !tc.launchFirst {
				if !h.ec2.terminated(old) || h.instance("db", old) != nil || h.tgs.isRegistered(testTG, old) {
					t.Fatalf("old instance %s not terminated first: %+v", old, h.instance("db", old))
				}
				if c := h.activityCause("db", "Terminating EC2 instance: "+old); !strings.Contains(c, tc.cause) {
					t.Fatalf("termination cause %q, want %q in it", c, tc.cause)
				}
				return
			}

			// The launch hook holds the replacement for as long as it
			// likes; the old instance keeps serving all along.
			for range 4 {
				got := h.instance("db", old)
				if got == nil || got.LifecycleState != types.LifecycleStateInService || aws.ToString(got.HealthStatus) != "Unhealthy" {
					t.Fatalf("old instance while the replacement waits: %+v", got)
				}
				if !h.tgs.isRegistered(testTG, old) || h.ec2.terminated(old) {
					t.Fatal("old instance left service before its replacement was InService")
				}
				h.only("db", types.LifecycleStatePendingWait)
				h.clock.Advance(time.Minute)
				h.step()
			}
			if n := len(h.ec2.Launches); n != 2 {
				t.Fatalf("%d launches, want the first and one replacement", n)
			}
			if c := h.activityCause("db", "Launching a new EC2 instance: "+repl); !strings.HasSuffix(c, "an instance was launched in response to an unhealthy instance needing to be replaced.") {
				t.Fatalf("replacement's launch cause = %q", c)
			}

			h.complete("db", "handover", repl, "CONTINUE")
			h.step()
			if got := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId); got != repl {
				t.Fatalf("InService: %s, want the replacement %s", got, repl)
			}
			if !h.ec2.terminated(old) || h.instance("db", old) != nil {
				t.Fatalf("old instance %s still there once its replacement is InService", old)
			}
			reg, dereg := h.tgs.callIndex("register "+repl), h.tgs.callIndex("deregister "+old)
			if reg < 0 || dereg < reg {
				t.Fatalf("target calls %v: the replacement must be registered before the old instance is deregistered", h.tgs.Calls)
			}
			if c := h.activityCause("db", "Terminating EC2 instance: "+old); !strings.Contains(c, tc.cause) {
				t.Fatalf("termination cause %q, want %q in it", c, tc.cause)
			}
			// Settled: nothing more happens.
			h.step()
			if n := len(h.ec2.Launches); n != 2 || len(h.instances("db")) != 1 {
				t.Fatalf("after settling: %d launches, instances %v", n, h.states("db"))
			}
		})
	}
}

// A replacement that fails, by its hook or by EC2, must not cost the old
// instance its place: it keeps serving and the group tries again.
func TestFailedReplacementKeepsOldInstance(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 1, 1, 1, withTargetGroup, withPolicy(policy(100, 110)),
		withHook("handover", events.TransitionLaunching, 300, "ABANDON", ""))
	h.step()
	h.completeWaiting("db", "handover")
	old := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId)
	stillServing := func(when string) {
		t.Helper()
		got := h.instance("db", old)
		if got == nil || got.LifecycleState != types.LifecycleStateInService || !h.tgs.isRegistered(testTG, old) || h.ec2.terminated(old) {
			t.Fatalf("%s: old instance %+v no longer serving", when, got)
		}
	}

	// EC2 has no capacity anywhere: nothing to launch, nothing terminated.
	for _, z := range testZones {
		h.ec2.LaunchErr[z] = errors.New("We currently do not have sufficient capacity in the Availability Zone you requested")
	}
	h.setUnhealthy(old)
	h.step()
	stillServing("launch failed")
	if n := len(h.ec2.Launches); n != 1 {
		t.Fatalf("%d launches", n)
	}
	clear(h.ec2.LaunchErr)
	h.clock.Advance(time.Minute) // past the zones' backoff
	h.step()
	first := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId)

	// The hook abandons it: it is terminated, another is tried.
	h.complete("db", "handover", first, "ABANDON")
	h.step()
	stillServing("replacement abandoned")
	if !h.ec2.terminated(first) {
		t.Fatalf("abandoned replacement %s not terminated", first)
	}
	second := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId)
	if second == first {
		t.Fatal("no new replacement after the abandoned one")
	}

	// The hook times out with its default result, ABANDON: the same.
	h.clock.Advance(301 * time.Second)
	h.step()
	stillServing("replacement timed out")
	third := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId)
	if third == second || !h.ec2.terminated(second) {
		t.Fatalf("after the timeout: replacement %s, second %s terminated %v", third, second, h.ec2.terminated(second))
	}

	h.complete("db", "handover", third, "CONTINUE")
	h.step()
	if got := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId); got != third || !h.ec2.terminated(old) {
		t.Fatalf("InService %s, old terminated %v", got, h.ec2.terminated(old))
	}
}

// TestMaxHealthyPercentageBoundsReplacements replaces two unhealthy
// instances of four: the policy bounds how many replacements run at once,
// and a policy without headroom terminates first, one at a time.
func TestMaxHealthyPercentageBoundsReplacements(t *testing.T) {
	for _, tc := range []struct {
		policy *types.InstanceMaintenancePolicy
		// After the first pass: replacements pending, unhealthy still
		// InService.
		wantPending, wantServingSick int
	}{
		{policy(100, 110), 1, 2}, // at least one extra, however small the group
		{policy(100, 125), 1, 2},
		{policy(100, 150), 2, 2},
		{policy(100, 200), 2, 2}, // room for four, but only two needed
		{policy(90, 100), 1, 1},  // no room: terminate first, one at a time
		{policy(50, 100), 2, 0},  // two may go at once
	} {
		t.Run(fmt.Sprintf("%d-%d", aws.ToInt32(tc.policy.MinHealthyPercentage), aws.ToInt32(tc.policy.MaxHealthyPercentage)), func(t *testing.T) {
			h := newHarness(t)
			h.createGroup("db", 0, 4, 4, withPolicy(tc.policy), withHook("handover", events.TransitionLaunching, 300, "ABANDON", ""))
			h.step()
			h.completeWaiting("db", "handover")
			all := ids(h.instances("db"))
			sick := all[:2]
			for _, id := range sick {
				h.setUnhealthy(id)
			}
			h.step()
			states := h.states("db")
			servingSick := 0
			for _, id := range sick {
				if i := h.instance("db", id); i != nil && i.LifecycleState == types.LifecycleStateInService {
					servingSick++
				}
			}
			if states[types.LifecycleStatePendingWait] != tc.wantPending || servingSick != tc.wantServingSick {
				t.Fatalf("after the first pass: %v, %d unhealthy serving; want %d pending, %d serving", states, servingSick, tc.wantPending, tc.wantServingSick)
			}
			for range 6 {
				h.completeWaiting("db", "handover")
			}
			got := h.instances("db")
			if len(got) != 4 || h.states("db")[types.LifecycleStateInService] != 4 || len(h.ec2.Launches) != 6 {
				t.Fatalf("settled at %v with %d launches, want 4 InService from 6", h.states("db"), len(h.ec2.Launches))
			}
			for _, i := range got {
				if slices.Contains(sick, aws.ToString(i.InstanceId)) || aws.ToString(i.HealthStatus) != "Healthy" {
					t.Fatalf("instance %+v left after replacement", i)
				}
			}
		})
	}
}

func TestInstanceMaintenancePolicyValidation(t *testing.T) {
	h := newHarness(t)
	lt := &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("db")}
	for _, tc := range []struct {
		name    string
		policy  *types.InstanceMaintenancePolicy
		message string // "" accepts it
		want    *types.InstanceMaintenancePolicy
	}{
		{"launch before terminating", policy(100, 110), "", policy(100, 110)},
		{"terminate and launch", policy(90, 100), "", policy(90, 100)},
		{"widest", policy(100, 200), "", policy(100, 200)},
		{"both -1 is none", policy(-1, -1), "", nil},
		{"min below -1", policy(-2, 110), "1 validation error detected: Value '-2' at 'instanceMaintenancePolicy.minHealthyPercentage' failed to satisfy constraint: Member must have value greater than or equal to -1", nil},
		{"min above 100", policy(101, 150), "1 validation error detected: Value '101' at 'instanceMaintenancePolicy.minHealthyPercentage' failed to satisfy constraint: Member must have value less than or equal to 100", nil},
		{"max above 200", policy(100, 201), "1 validation error detected: Value '201' at 'instanceMaintenancePolicy.maxHealthyPercentage' failed to satisfy constraint: Member must have value less than or equal to 200", nil},
		{"max below 100", policy(50, 90), "MaxHealthyPercentage must be between 100 and 200 (or -1 to clear the policy), not 90.", nil},
		{"range over 100", policy(0, 150), "The difference between MaxHealthyPercentage (150) and MinHealthyPercentage (0) cannot be greater than 100.", nil},
		{"only one -1", policy(-1, 150), "To clear the instance maintenance policy, set both MinHealthyPercentage and MaxHealthyPercentage to -1.", nil},
		{"only min", &types.InstanceMaintenancePolicy{MinHealthyPercentage: aws.Int32(100)}, "Both MinHealthyPercentage and MaxHealthyPercentage must be specified in the instance maintenance policy.", nil},
		{"only max", &types.InstanceMaintenancePolicy{MaxHealthyPercentage: aws.Int32(150)}, "Both MinHealthyPercentage and MaxHealthyPercentage must be specified in the instance maintenance policy.", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "g-" + strings.ReplaceAll(tc.name, " ", "-")
			_, err := h.as.CreateAutoScalingGroup(h.ctx, &as.CreateAutoScalingGroupInput{
				AutoScalingGroupName: aws.String(name), LaunchTemplate: lt, MinSize: aws.Int32(0), MaxSize: aws.Int32(1),
				AvailabilityZones: testZones, InstanceMaintenancePolicy: tc.policy,
			})
			if tc.message != "" {
				apiError(t, err, "ValidationError", tc.message)
				// Update refuses it too, and changes nothing.
				h.createGroup(name, 0, 1, 0, withPolicy(policy(100, 110)))
				_, err = h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name), InstanceMaintenancePolicy: tc.policy, MaxSize: aws.Int32(5)})
				apiError(t, err, "ValidationError", tc.message)
				if g := h.group(name); !samePolicy(g.InstanceMaintenancePolicy, policy(100, 110)) || aws.ToInt32(g.MaxSize) != 1 {
					t.Fatalf("a rejected update changed the group: %+v", g)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := h.group(name).InstanceMaintenancePolicy; !samePolicy(got, tc.want) {
				t.Fatalf("described policy %+v, want %+v", got, tc.want)
			}
		})
	}

	// Round trip through UpdateAutoScalingGroup: set, kept by an update
	// that does not name it, cleared with -1.
	h.createGroup("web", 0, 2, 0)
	for _, step := range []struct {
		in   *types.InstanceMaintenancePolicy
		want *types.InstanceMaintenancePolicy
	}{
		{policy(100, 200), policy(100, 200)},
		{nil, policy(100, 200)},
		{policy(0, 100), policy(0, 100)},
		{policy(-1, -1), nil},
	} {
		if _, err := h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), InstanceMaintenancePolicy: step.in, MaxSize: aws.Int32(3)}); err != nil {
			t.Fatal(err)
		}
		if got := h.group("web").InstanceMaintenancePolicy; !samePolicy(got, step.want) {
			t.Fatalf("after updating with %+v: policy %+v, want %+v", step.in, got, step.want)
		}
	}
}

func samePolicy(a, b *types.InstanceMaintenancePolicy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return aws.ToInt32(a.MinHealthyPercentage) == aws.ToInt32(b.MinHealthyPercentage) && aws.ToInt32(a.MaxHealthyPercentage) == aws.ToInt32(b.MaxHealthyPercentage)
}

// TestZoneRemovalLaunchesFirst removes a zone from a group at its max size:
// rebalancing replaces the instance there in the zone that is kept,
// launching first (above the max size, as AWS allows), with both lifecycle
// hooks run.
func TestZoneRemovalLaunchesFirst(t *testing.T) {
	for _, tc := range []struct {
		name   string
		update func(in *as.UpdateAutoScalingGroupInput)
	}{
		{"AvailabilityZones", func(in *as.UpdateAutoScalingGroupInput) { in.AvailabilityZones = []string{"us-east-1a"} }},
		{"VPCZoneIdentifier", func(in *as.UpdateAutoScalingGroupInput) { in.VPCZoneIdentifier = aws.String("us-east-1a") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.createGroup("db", 0, 2, 2, withTargetGroup, func(in *as.CreateAutoScalingGroupInput) {
				in.AvailabilityZones = []string{"us-east-1a", "us-east-1b"}
			}, withHook("handover", events.TransitionLaunching, 300, "ABANDON", ""), withHook("drain", events.TransitionTerminating, 300, "CONTINUE", ""))
			h.step()
			h.completeWaiting("db", "handover")
			var old string
			for _, i := range h.instances("db") {
				if aws.ToString(i.AvailabilityZone) == "us-east-1b" {
					old = aws.ToString(i.InstanceId)
				}
			}
			if old == "" {
				t.Fatalf("no instance in us-east-1b: %v", zoneCounts(h.instances("db")))
			}

			in := &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("db")}
			tc.update(in)
			if _, err := h.as.UpdateAutoScalingGroup(h.ctx, in); err != nil {
				t.Fatal(err)
			}
			h.step()
			repl := h.only("db", types.LifecycleStatePendingWait)
			if aws.ToString(repl.AvailabilityZone) != "us-east-1a" {
				t.Fatalf("replacement in %s", aws.ToString(repl.AvailabilityZone))
			}
			if i := h.instance("db", old); i == nil || i.LifecycleState != types.LifecycleStateInService || !h.tgs.isRegistered(testTG, old) {
				t.Fatalf("old instance while its replacement waits: %+v", i)
			}
			if c := h.activityCause("db", "Launching a new EC2 instance: "+aws.ToString(repl.InstanceId)); !strings.Contains(c, "instances were launched to balance instances in zones us-east-1a with other zones") {
				t.Fatalf("replacement's launch cause = %q", c)
			}
			h.step() // the hook still holds it: no second replacement
			if n := len(h.ec2.Launches); n != 3 {
				t.Fatalf("%d launches, want 3", n)
			}

			h.complete("db", "handover", aws.ToString(repl.InstanceId), "CONTINUE")
			h.step()
			// In service now: the old one is out of its target group and
			// held by its terminate hook.
			if got := h.only("db", types.LifecycleStateTerminatingWait); aws.ToString(got.InstanceId) != old {
				t.Fatalf("Terminating:Wait holds %s, want %s", aws.ToString(got.InstanceId), old)
			}
			reg, dereg := h.tgs.callIndex("register "+aws.ToString(repl.InstanceId)), h.tgs.callIndex("deregister "+old)
			if reg < 0 || dereg < reg {
				t.Fatalf("target calls %v: the replacement must be registered before the old instance is deregistered", h.tgs.Calls)
			}
			if c := h.activityCause("db", "Terminating EC2 instance: "+old); !strings.Contains(c, "shrinking the capacity from 3 to 2.  At ") || !strings.Contains(c, "instance "+old+" was selected for termination.") {
				t.Fatalf("termination cause = %q", c)
			}
			h.complete("db", "drain", old, "CONTINUE")
			h.step()
			if got := zoneCounts(h.instances("db")); !maps.Equal(got, map[string]int{"us-east-1a": 2}) || !h.ec2.terminated(old) {
				t.Fatalf("zones after rebalancing: %v", got)
			}
			if got := h.states("db"); got[types.LifecycleStateInService] != 2 || len(h.ec2.Launches) != 3 {
				t.Fatalf("states %v after %d launches", got, len(h.ec2.Launches))
			}
		})
	}
}

// TestReplacementResumesAfterRestart restarts the service while a
// replacement's launch hook holds it: the restarted service must wait for
// the same replacement, not launch a second one, and keep the old instance
// serving meanwhile.
func TestReplacementResumesAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(h *harness) (old string)
		cause string // of the old instance's termination
	}{
		{"unhealthy instance", func(h *harness) string {
			old := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId)
			h.tgs.setUnhealthy(old)
			return old
		}, "in response to an ELB system health check failure."},
		{"removed zone", func(h *harness) string {
			old := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId)
			zone := aws.ToString(h.instance("db", old).AvailabilityZone)
			var keep []string
			for _, z := range testZones {
				if z != zone {
					keep = append(keep, z)
				}
			}
			if _, err := h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("db"), AvailabilityZones: keep}); err != nil {
				h.t.Fatal(err)
			}
			return old
		}, "was selected for termination."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHarness(t, func(c *Config) { c.DataDir = dir })
			h.createGroup("db", 1, 1, 1, withTargetGroup, withPolicy(policy(100, 110)), withHook("handover", events.TransitionLaunching, 300, "ABANDON", ""),
				func(in *as.CreateAutoScalingGroupInput) { in.HealthCheckType = aws.String("ELB") })
			h.step()
			h.completeWaiting("db", "handover")
			old := tc.start(h)
			h.step()
			repl := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId)

			h.start() // a new Service over the same directory
			for range 3 {
				h.step()
			}
			if n := len(h.ec2.Launches); n != 2 {
				t.Fatalf("%d launches after the restart, want 2 (no second replacement)", n)
			}
			if got := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId); got != repl {
				t.Fatalf("waiting replacement %s, want %s", got, repl)
			}
			if i := h.instance("db", old); i == nil || i.LifecycleState != types.LifecycleStateInService || !h.tgs.isRegistered(testTG, old) {
				t.Fatalf("old instance after the restart: %+v", i)
			}
			if !samePolicy(h.group("db").InstanceMaintenancePolicy, policy(100, 110)) {
				t.Fatal("policy lost across the restart")
			}

			h.complete("db", "handover", repl, "CONTINUE")
			h.step()
			if got := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId); got != repl || !h.ec2.terminated(old) || len(h.ec2.Launches) != 2 {
				t.Fatalf("InService %s, old terminated %v, %d launches", got, h.ec2.terminated(old), len(h.ec2.Launches))
			}
			// The termination gives the cause found before the restart.
			if c := h.activityCause("db", "Terminating EC2 instance: "+old); !strings.Contains(c, tc.cause) {
				t.Fatalf("termination cause %q, want %q in it", c, tc.cause)
			}
		})
	}
}

// TestReplacementWaitsForTargetHealth: an InService replacement the load
// balancer does not route to yet (initial health checks) does not retire
// the old instance; once it is healthy there, the old one goes.
func TestReplacementWaitsForTargetHealth(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 1, 1, 1, withTargetGroup, withPolicy(policy(100, 200)), withHook("handover", events.TransitionLaunching, 300, "ABANDON", ""))
	h.step()
	h.completeWaiting("db", "handover")
	old := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId)
	h.setUnhealthy(old)
	h.step()
	repl := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId)
	h.tgs.setWarming(repl, true)
	h.complete("db", "handover", repl, "CONTINUE")
	for range 3 {
		h.step()
		if got := h.instance("db", old); got == nil || got.LifecycleState != types.LifecycleStateInService || !h.tgs.isRegistered(testTG, old) {
			t.Fatalf("old instance retired while its replacement was not yet healthy in the target group: %+v", got)
		}
	}
	h.tgs.setWarming(repl, false)
	h.step()
	if h.instance("db", old) != nil || !h.ec2.terminated(old) {
		t.Fatalf("old instance %s kept after its replacement became healthy: %v", old, h.states("db"))
	}
}
