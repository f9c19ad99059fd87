package autoscaling

import (
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// TestInstancesKeepTheirLaunchTemplateVersion: each instance reports the
// launch template version it was launched from, in both describe calls,
// after the group moves to another version — even when the group moves
// while the instance's launch is under way.
func TestInstancesKeepTheirLaunchTemplateVersion(t *testing.T) {
	h := newHarness(t)
	const ltID = "lt-0123456789abcdef0"
	update := func(version string, desired int32) {
		t.Helper()
		if _, err := h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{
			AutoScalingGroupName: aws.String("web"),
			LaunchTemplate:       &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(ltID), Version: aws.String(version)},
			DesiredCapacity:      aws.Int32(desired),
		}); err != nil {
			t.Fatal(err)
		}
	}
	// versions returns each instance's version as DescribeAutoScalingGroups
	// reports it, after checking DescribeAutoScalingInstances agrees.
	versions := func() map[string]string {
		t.Helper()
		fromGroup := map[string]string{}
		for _, i := range h.instances("web") {
			if lt := i.LaunchTemplate; lt == nil || aws.ToString(lt.LaunchTemplateId) != ltID {
				t.Fatalf("instance %s has launch template %+v", aws.ToString(i.InstanceId), lt)
			}
			fromGroup[aws.ToString(i.InstanceId)] = aws.ToString(i.LaunchTemplate.Version)
		}
		fromInstances := map[string]string{}
		out, err := h.as.DescribeAutoScalingInstances(h.ctx, &as.DescribeAutoScalingInstancesInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range out.AutoScalingInstances {
			if lt := i.LaunchTemplate; lt == nil || aws.ToString(lt.LaunchTemplateId) != ltID {
				t.Fatalf("instance %s has launch template %+v", aws.ToString(i.InstanceId), lt)
			}
			fromInstances[aws.ToString(i.InstanceId)] = aws.ToString(i.LaunchTemplate.Version)
		}
		if !maps.Equal(fromGroup, fromInstances) {
			t.Fatalf("DescribeAutoScalingGroups says %v, DescribeAutoScalingInstances %v", fromGroup, fromInstances)
		}
		return fromGroup
	}
	// want maps each launch so far, in order, to the version it asked EC2
	// for, and checks the instances report the same.
	check := func(wantByLaunch ...string) {
		t.Helper()
		if len(h.ec2.Launches) != len(wantByLaunch) {
			t.Fatalf("%d launches, want %d", len(h.ec2.Launches), len(wantByLaunch))
		}
		got := versions()
		for n, l := range h.ec2.Launches {
			if l.Version != wantByLaunch[n] {
				t.Errorf("launch %d asked EC2 for version %s, want %s", n+1, l.Version, wantByLaunch[n])
			}
		}
		if len(got) != len(wantByLaunch) {
			t.Fatalf("%d instances, want %d", len(got), len(wantByLaunch))
		}
		// The fake numbers its instances in launch order.
		for n, v := range wantByLaunch {
			id := h.ec2.nthID(n)
			if got[id] != v {
				t.Errorf("%s (launch %d) reports version %s, want %s", id, n+1, got[id], v)
			}
		}
	}

	h.createGroup("web", 0, 9, 2) // version 1
	h.step()
	check("1", "1")

	update("2", 4)
	h.step()
	check("1", "1", "2", "2")

	// The group moves to version 3 while a version-2 launch is in flight.
	moved := false
	h.ec2.BeforeLaunch = func(LaunchRequest) {
		if !moved {
			moved = true
			update("3", 5)
		}
	}
	h.setDesired("web", 5)
	h.step()
	check("1", "1", "2", "2", "2")

	h.setDesired("web", 6)
	h.step()
	check("1", "1", "2", "2", "2", "3")
	if g := h.group("web"); aws.ToString(g.LaunchTemplate.Version) != "3" {
		t.Errorf("group version %s, want 3", aws.ToString(g.LaunchTemplate.Version))
	}
}
