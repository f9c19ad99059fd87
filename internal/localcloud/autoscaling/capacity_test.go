package autoscaling

import (
	"errors"
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

func zoneCounts(in []types.Instance) map[string]int {
	out := map[string]int{}
	for _, i := range in {
		out[aws.ToString(i.AvailabilityZone)]++
	}
	return out
}

func TestDesiredCapacitySpreadOverZones(t *testing.T) {
	h := newHarness(t)
	h.createGroup("web", 0, 10, 6, withTargetGroup, func(in *as.CreateAutoScalingGroupInput) {
		in.Tags = []types.Tag{
			{Key: aws.String("team"), Value: aws.String("db"), PropagateAtLaunch: aws.Bool(true)},
			{Key: aws.String("cost"), Value: aws.String("x"), PropagateAtLaunch: aws.Bool(false)},
		}
	})
	h.step()

	g := h.group("web")
	if got := h.states("web"); got[types.LifecycleStateInService] != 6 || len(got) != 1 {
		t.Fatalf("states = %v, want 6 InService", got)
	}
	if got := zoneCounts(g.Instances); !maps.Equal(got, map[string]int{"us-east-1a": 2, "us-east-1b": 2, "us-east-1c": 2}) {
		t.Fatalf("zones = %v, want 2 per zone", got)
	}
	for _, i := range g.Instances {
		if !h.tgs.isRegistered(testTG, aws.ToString(i.InstanceId)) {
			t.Errorf("%s not registered with its target group", aws.ToString(i.InstanceId))
		}
		if i.HealthStatus == nil || *i.HealthStatus != "Healthy" || i.LaunchTemplate == nil || aws.ToString(i.LaunchTemplate.Version) != "1" {
			t.Errorf("instance = %+v", i)
		}
	}
	l := h.ec2.Launches[0]
	if l.LaunchTemplateID != "lt-0123456789abcdef0" || l.Version != "1" || l.Tags["team"] != "db" || l.Tags["aws:autoscaling:groupName"] != "web" || l.Tags["cost"] != "" {
		t.Fatalf("launch request = %+v", l)
	}
	if got := len(h.pub.decoded(t, "EC2 Instance Launch Successful")); got != 6 {
		t.Fatalf("%d launch-successful events, want 6", got)
	}

	// A steady group does nothing more.
	h.step()
	if len(h.ec2.Launches) != 6 {
		t.Fatalf("%d launches after a second pass, want 6", len(h.ec2.Launches))
	}
}

func TestLaunchSkipsFailingZone(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.LaunchRetryDelay = time.Minute })
	h.ec2.LaunchErr["us-east-1b"] = errors.New("We currently do not have sufficient capacity in the Availability Zone you requested")
	h.createGroup("web", 0, 10, 3)
	h.step()

	got := zoneCounts(h.instances("web"))
	if got["us-east-1b"] != 0 || got["us-east-1a"]+got["us-east-1c"] != 3 {
		t.Fatalf("zones = %v, want 3 instances outside us-east-1b", got)
	}
	unsuccessful := h.pub.decoded(t, "EC2 Instance Launch Unsuccessful")
	if len(unsuccessful) != 1 || unsuccessful[0].Launch.StatusCode != "Failed" || unsuccessful[0].Launch.AvailabilityZone != "us-east-1b" {
		t.Fatalf("launch-unsuccessful events = %+v", unsuccessful)
	}
	var failed []types.Activity
	for _, a := range h.activities("web") {
		if a.StatusCode == types.ScalingActivityStatusCodeFailed {
			failed = append(failed, a)
		}
	}
	if len(failed) != 1 || !strings.Contains(aws.ToString(failed[0].StatusMessage), "sufficient capacity") || !strings.Contains(aws.ToString(failed[0].Details), "us-east-1b") {
		t.Fatalf("failed activities = %+v", failed)
	}

	// Every zone failing leaves the shortfall for later, without spinning.
	h.ec2.LaunchErr["us-east-1a"] = errors.New("no capacity")
	h.ec2.LaunchErr["us-east-1c"] = errors.New("no capacity")
	h.setDesired("web", 5)
	if err := h.svc.Step(h.ctx); err != nil {
		t.Fatalf("Step: %v", err) // failed launches are activities, not controller errors
	}
	if n := len(h.instances("web")); n != 3 {
		t.Fatalf("%d instances, want 3", n)
	}
	// Once the zones recover and the backoff is over, the group fills up.
	clear(h.ec2.LaunchErr)
	h.clock.Advance(time.Minute)
	h.step()
	if n := h.states("web")[types.LifecycleStateInService]; n != 5 {
		t.Fatalf("%d InService, want 5", n)
	}
}

func TestScaleOutAndIn(t *testing.T) {
	h := newHarness(t)
	h.createGroup("web", 1, 9, 3)
	h.step()
	first := ids(h.instances("web"))

	h.clock.Advance(time.Minute)
	h.setDesired("web", 7)
	h.step()
	g := h.group("web")
	if len(g.Instances) != 7 || aws.ToInt32(g.DesiredCapacity) != 7 {
		t.Fatalf("%d instances, desired %d; want 7", len(g.Instances), aws.ToInt32(g.DesiredCapacity))
	}

	// Scale in keeps zones balanced and drops the oldest first.
	h.setDesired("web", 3)
	h.step()
	g = h.group("web")
	if got := zoneCounts(g.Instances); !maps.Equal(got, map[string]int{"us-east-1a": 1, "us-east-1b": 1, "us-east-1c": 1}) {
		t.Fatalf("zones after scale-in = %v", got)
	}
	for _, id := range ids(g.Instances) {
		if slices.Contains(first, id) {
			t.Errorf("kept %s, one of the oldest instances", id)
		}
	}
	for _, id := range first {
		if h.ec2.state(id) != "terminated" {
			t.Errorf("%s is %s, want terminated", id, h.ec2.state(id))
		}
	}
	if n := len(h.pub.raw(t, detailTypeTerminateSuccessful)); n != 4 {
		t.Fatalf("%d terminate-successful events, want 4", n)
	}

	for _, tc := range []struct {
		desired int32
		message string
	}{
		{10, "New SetDesiredCapacity value 10 is above max value 9 for the AutoScalingGroup."},
		{0, "New SetDesiredCapacity value 0 is below min value 1 for the AutoScalingGroup."},
	} {
		_, err := h.as.SetDesiredCapacity(h.ctx, &as.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(tc.desired)})
		apiError(t, err, "ValidationError", tc.message)
	}
}

func TestScaleInPrefersOldLaunchTemplateAndSparesProtected(t *testing.T) {
	h := newHarness(t)
	h.createGroup("web", 0, 9, 3)
	h.step()
	old := ids(h.instances("web"))

	// New launches use version 2 and are protected from scale-in.
	if _, err := h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{
		AutoScalingGroupName:             aws.String("web"),
		LaunchTemplate:                   &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String("lt-0123456789abcdef0"), Version: aws.String("2")},
		DesiredCapacity:                  aws.Int32(6),
		NewInstancesProtectedFromScaleIn: aws.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
	h.step()
	h.clock.Advance(time.Minute)
	// The version-1 instances are the newest now, but the oldest template.
	if _, err := h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"), NewInstancesProtectedFromScaleIn: aws.Bool(false), DesiredCapacity: aws.Int32(3),
	}); err != nil {
		t.Fatal(err)
	}
	h.step()
	g := h.group("web")
	for _, i := range g.Instances {
		if slices.Contains(old, aws.ToString(i.InstanceId)) || aws.ToString(i.LaunchTemplate.Version) != "2" || !aws.ToBool(i.ProtectedFromScaleIn) {
			t.Fatalf("after scale-in: %+v", i)
		}
	}

	// All protected: scale-in does nothing.
	h.setDesired("web", 0)
	h.step()
	if n := len(h.instances("web")); n != 3 {
		t.Fatalf("%d instances, want the 3 protected ones", n)
	}
}

func TestSelectVictimsTable(t *testing.T) {
	lt := func(v string) launchTemplate { return launchTemplate{ID: "lt-1", Version: v} }
	at := func(m int) time.Time { return epoch.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		name     string
		policies []string
		zones    []string
		insts    []*instance
		n        int
		want     []string
	}{
		{
			name: "busiest zone first", zones: []string{"a", "b"}, n: 1,
			insts: []*instance{{ID: "i-1", Zone: "a", LaunchTime: at(0)}, {ID: "i-2", Zone: "b", LaunchTime: at(1)}, {ID: "i-3", Zone: "b", LaunchTime: at(2)}},
			want:  []string{"i-2"},
		},
		{
			// Pending: an InService instance there awaits its replacement
			// by rebalancing instead (next case).
			name: "zone the group left goes first", zones: []string{"a"}, n: 1,
			insts: []*instance{{ID: "i-1", Zone: "a", LaunchTime: at(0)}, {ID: "i-2", Zone: "a", LaunchTime: at(0)}, {ID: "i-3", Zone: "z", LaunchTime: at(5), State: statePending}},
			want:  []string{"i-3"},
		},
		{
			name: "awaiting replacement is left to it", zones: []string{"a"}, n: 1,
			insts: []*instance{{ID: "i-1", Zone: "a", LaunchTime: at(0)}, {ID: "i-2", Zone: "a", LaunchTime: at(1)}, {ID: "i-3", Zone: "z", LaunchTime: at(5)}, {ID: "i-4", Zone: "a", LaunchTime: at(0), ReplaceCause: "unhealthy"}},
			want:  []string{"i-1"},
		},
		{
			name: "oldest template before oldest instance", zones: []string{"a"}, n: 1,
			insts: []*instance{{ID: "i-1", Zone: "a", LaunchTime: at(0), LaunchTemplate: lt("3")}, {ID: "i-2", Zone: "a", LaunchTime: at(9), LaunchTemplate: lt("2")}},
			want:  []string{"i-2"},
		},
		{
			name: "newest instance policy", policies: []string{"NewestInstance"}, zones: []string{"a"}, n: 1,
			insts: []*instance{{ID: "i-1", Zone: "a", LaunchTime: at(0)}, {ID: "i-2", Zone: "a", LaunchTime: at(9)}},
			want:  []string{"i-2"},
		},
		{
			name: "protected and uncounted are spared", zones: []string{"a"}, n: 3,
			insts: []*instance{{ID: "i-1", Zone: "a", Protected: true}, {ID: "i-2", Zone: "a", State: stateStandby}, {ID: "i-3", Zone: "a"}},
			want:  []string{"i-3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &group{Zones: tc.zones, LaunchTemplate: lt("3"), Instances: map[string]*instance{}, TerminationPolicies: tc.policies}
			if g.TerminationPolicies == nil {
				g.TerminationPolicies = []string{"Default"}
			}
			for _, i := range tc.insts {
				if i.State == "" {
					i.State = stateInService
				}
				if i.LaunchTemplate == (launchTemplate{}) {
					i.LaunchTemplate = lt("3")
				}
				g.Instances[i.ID] = i
			}
			var got []string
			for _, v := range selectVictims(g, tc.n) {
				got = append(got, v.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("victims = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTerminateInstanceInAutoScalingGroup(t *testing.T) {
	for _, tc := range []struct {
		decrement   bool
		wantDesired int32
		wantCount   int
	}{
		{decrement: true, wantDesired: 2, wantCount: 2},
		{decrement: false, wantDesired: 3, wantCount: 3},
	} {
		t.Run("decrement="+map[bool]string{true: "true", false: "false"}[tc.decrement], func(t *testing.T) {
			h := newHarness(t)
			h.createGroup("web", 1, 5, 3)
			h.step()
			victim := aws.ToString(h.instances("web")[0].InstanceId)

			out, err := h.as.TerminateInstanceInAutoScalingGroup(h.ctx, &as.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(tc.decrement)})
			if err != nil {
				t.Fatal(err)
			}
			if a := out.Activity; a == nil || aws.ToString(a.Description) != "Terminating EC2 instance: "+victim || a.StatusCode != types.ScalingActivityStatusCodeInProgress {
				t.Fatalf("activity = %+v", a)
			}
			h.step()
			g := h.group("web")
			if aws.ToInt32(g.DesiredCapacity) != tc.wantDesired || len(g.Instances) != tc.wantCount || slices.Contains(ids(g.Instances), victim) {
				t.Fatalf("desired %d, instances %v", aws.ToInt32(g.DesiredCapacity), ids(g.Instances))
			}
			if !h.ec2.terminated(victim) {
				t.Fatalf("%s was not terminated", victim)
			}
			_, err = h.as.TerminateInstanceInAutoScalingGroup(h.ctx, &as.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(tc.decrement)})
			apiError(t, err, "ValidationError", "Instance Id not found - No managed instance found for instance ID: "+victim)
		})
	}

	h := newHarness(t)
	h.createGroup("web", 1, 5, 1)
	h.step()
	_, err := h.as.TerminateInstanceInAutoScalingGroup(h.ctx, &as.TerminateInstanceInAutoScalingGroupInput{InstanceId: h.instances("web")[0].InstanceId, ShouldDecrementDesiredCapacity: aws.Bool(true)})
	apiError(t, err, "ValidationError", "Currently, desiredSize equals minSize (1). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.")
}

func TestUnhealthyInstanceReplaced(t *testing.T) {
	for _, tc := range []struct {
		name      string
		checkType string
		breakIt   func(h *harness, id string)
		cause     string
	}{
		{"EC2 process died", "EC2", func(h *harness, id string) { h.ec2.kill(id) }, "EC2 health check"},
		{"EC2 instance gone", "EC2", func(h *harness, id string) {
			h.ec2.mu.Lock()
			delete(h.ec2.insts, id)
			h.ec2.mu.Unlock()
		}, "EC2 health check"},
		{"ELB target unhealthy", "ELB", func(h *harness, id string) { h.tgs.setUnhealthy(id) }, "ELB system health check failure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.createGroup("db", 1, 3, 1, withTargetGroup, func(in *as.CreateAutoScalingGroupInput) {
				in.HealthCheckType = aws.String(tc.checkType)
				in.HealthCheckGracePeriod = aws.Int32(300)
			}, withHook("drain", events.TransitionTerminating, 600, "CONTINUE", ""))
			h.step()
			sick := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId)
			tc.breakIt(h, sick)

			// Inside the grace period nothing happens.
			h.clock.Advance(299 * time.Second)
			h.step()
			if got := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId); got != sick {
				t.Fatalf("replaced during the grace period")
			}

			h.clock.Advance(time.Second)
			h.step()
			// The replacement is in service while the terminate hook holds
			// the sick one.
			old := h.only("db", types.LifecycleStateTerminatingWait)
			if aws.ToString(old.InstanceId) != sick || aws.ToString(old.HealthStatus) != "Unhealthy" {
				t.Fatalf("old instance = %+v", old)
			}
			if aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId) == sick {
				t.Fatal("no replacement")
			}
			if h.tgs.isRegistered(testTG, sick) {
				t.Fatal("unhealthy instance still registered")
			}
			var found bool
			for _, a := range h.activities("db") {
				found = found || (aws.ToString(a.Description) == "Terminating EC2 instance: "+sick && strings.Contains(aws.ToString(a.Cause), tc.cause))
			}
			if !found {
				t.Fatalf("no termination activity naming %q", tc.cause)
			}
		})
	}
}

func TestDeleteGroup(t *testing.T) {
	h := newHarness(t)
	h.createGroup("web", 0, 5, 2, withHook("drain", events.TransitionTerminating, 300, "CONTINUE", ""))
	h.step()

	_, err := h.as.DeleteAutoScalingGroup(h.ctx, &as.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web")})
	apiError(t, err, "ResourceInUse", "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.")

	h.setDesired("web", 0)
	h.step()
	_, err = h.as.DeleteAutoScalingGroup(h.ctx, &as.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web")})
	apiError(t, err, "ScalingActivityInProgress", "")

	// A forced delete skips the terminate hooks and removes the group.
	if _, err := h.as.DeleteAutoScalingGroup(h.ctx, &as.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if g := h.group("web"); aws.ToString(g.Status) != "Delete in progress" {
		t.Fatalf("status = %q", aws.ToString(g.Status))
	}
	h.step()
	out, err := h.as.DescribeAutoScalingGroups(h.ctx, &as.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web"}})
	if err != nil || len(out.AutoScalingGroups) != 0 {
		t.Fatalf("group still there: %v %v", out, err)
	}
	if len(h.ec2.Terminations) != 2 {
		t.Fatalf("terminations = %v", h.ec2.Terminations)
	}
	// Its activities are kept, marked deleted.
	acts, err := h.as.DescribeScalingActivities(h.ctx, &as.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("web"), IncludeDeletedGroups: aws.Bool(true)})
	if err != nil || len(acts.Activities) == 0 || aws.ToString(acts.Activities[0].AutoScalingGroupState) != "Deleted" {
		t.Fatalf("activities of the deleted group: %+v %v", acts, err)
	}
	// The name is free again.
	h.createGroup("web", 0, 1, 0)
}

// TestForceDeleteMidLaunch force-deletes a group with one instance in
// service and one held by its launch hook: both are deregistered and
// terminated without the terminate hook, and the group goes once the last
// of them is gone.
func TestForceDeleteMidLaunch(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 0, 3, 2, withTargetGroup,
		withHook("handover", events.TransitionLaunching, 300, "ABANDON", ""),
		withHook("drain", events.TransitionTerminating, 300, "CONTINUE", ""))
	h.step()
	actions := h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action")
	if len(actions) != 2 {
		t.Fatalf("%d launch lifecycle events, want 2", len(actions))
	}
	first := actions[0].Lifecycle
	if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"),
		LifecycleActionToken: aws.String(first.Token), LifecycleActionResult: aws.String("CONTINUE"),
	}); err != nil {
		t.Fatal(err)
	}
	h.step()
	serving := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId)
	waiting := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId)
	if !h.tgs.isRegistered(testTG, serving) {
		t.Fatalf("%s InService but not registered", serving)
	}

	if _, err := h.as.DeleteAutoScalingGroup(h.ctx, &as.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("db"), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	// The delete ended the launch action at once.
	_, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"),
		InstanceId: aws.String(waiting), LifecycleActionResult: aws.String("CONTINUE"),
	})
	apiError(t, err, "ValidationError", "")

	// While one instance cannot be terminated the group stays, deleting.
	h.ec2.mu.Lock()
	h.ec2.TerminateErr[serving] = errors.New("RequestLimitExceeded")
	h.ec2.mu.Unlock()
	if err := h.svc.Step(h.ctx); err == nil {
		t.Fatal("Step hid the failed termination")
	}
	g := h.group("db")
	if aws.ToString(g.Status) != "Delete in progress" || len(g.Instances) != 1 || aws.ToString(g.Instances[0].InstanceId) != serving {
		t.Fatalf("after a failed termination: status %q, instances %v; want the group still deleting, with %s", aws.ToString(g.Status), ids(g.Instances), serving)
	}
	h.ec2.mu.Lock()
	delete(h.ec2.TerminateErr, serving)
	h.ec2.mu.Unlock()
	h.step()
	out, err := h.as.DescribeAutoScalingGroups(h.ctx, &as.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"db"}})
	if err != nil || len(out.AutoScalingGroups) != 0 {
		t.Fatalf("group still there: %+v %v", out, err)
	}
	for _, id := range []string{serving, waiting} {
		if got := h.ec2.state(id); got != "terminated" {
			t.Errorf("%s is %q in EC2, want terminated", id, got)
		}
		if h.tgs.isRegistered(testTG, id) {
			t.Errorf("%s still registered", id)
		}
	}
	h.tgs.mu.Lock()
	calls := slices.Clone(h.tgs.Calls)
	h.tgs.mu.Unlock()
	if !slices.Contains(calls, "deregister "+serving) {
		t.Errorf("target group calls %v: %s never deregistered", calls, serving)
	}
	if n := len(h.pub.decoded(t, "EC2 Instance-terminate Lifecycle Action")); n != 0 {
		t.Errorf("%d terminate lifecycle events; a forced delete skips the hook", n)
	}
	if n := len(h.pub.raw(t, "EC2 Instance Terminate Successful")); n != 2 {
		t.Errorf("%d terminate-successful events, want 2", n)
	}
}

func TestSetInstanceHealthAndProtection(t *testing.T) {
	h := newHarness(t)
	h.createGroup("web", 0, 5, 2, func(in *as.CreateAutoScalingGroupInput) { in.HealthCheckGracePeriod = aws.Int32(60) })
	h.step()
	all := ids(h.instances("web"))

	setHealth := func(id string) {
		t.Helper()
		if _, err := h.as.SetInstanceHealth(h.ctx, &as.SetInstanceHealthInput{InstanceId: aws.String(id), HealthStatus: aws.String("Unhealthy")}); err != nil {
			t.Fatal(err)
		}
	}
	// Inside the grace period the report is ignored.
	setHealth(all[0])
	h.step()
	if got := ids(h.instances("web")); !slices.Equal(got, all) {
		t.Fatalf("instances %v, want %v", got, all)
	}
	h.clock.Advance(time.Minute)
	setHealth(all[0])
	h.step()
	got := ids(h.instances("web"))
	if len(got) != 2 || slices.Contains(got, all[0]) || !h.ec2.terminated(all[0]) {
		t.Fatalf("instances %v after marking %s unhealthy", got, all[0])
	}
	var found bool
	for _, a := range h.activities("web") {
		found = found || strings.Contains(aws.ToString(a.Cause), "in response to a user health-check")
	}
	if !found {
		t.Fatal("no activity names the user health-check")
	}

	// Protection set by API holds on scale-in.
	if _, err := h.as.SetInstanceProtection(h.ctx, &as.SetInstanceProtectionInput{AutoScalingGroupName: aws.String("web"), InstanceIds: got, ProtectedFromScaleIn: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	h.setDesired("web", 0)
	h.step()
	for _, i := range h.instances("web") {
		if !aws.ToBool(i.ProtectedFromScaleIn) || i.LifecycleState != types.LifecycleStateInService {
			t.Fatalf("instance = %+v", i)
		}
	}
	_, err := h.as.SetInstanceProtection(h.ctx, &as.SetInstanceProtectionInput{AutoScalingGroupName: aws.String("web"), InstanceIds: []string{"i-0000000000000beef"}, ProtectedFromScaleIn: aws.Bool(true)})
	apiError(t, err, "ValidationError", "The instance i-0000000000000beef is not part of Auto Scaling group web.")
}
