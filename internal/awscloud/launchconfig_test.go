package awscloud_test

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// TestLaunchConfigurationGroup: the calls handover's core makes work the
// same on a group that launches from a launch configuration: nothing in
// them depends on a launch template.
func TestLaunchConfigurationGroup(t *testing.T) {
	ctx := context.Background()
	c, e, a := start(t, "kv")
	if _, err := a.CreateLaunchConfiguration(ctx, &autoscaling.CreateLaunchConfigurationInput{LaunchConfigurationName: aws.String("kv-v1"),
		ImageId: aws.String(ami), InstanceType: aws.String("t3.micro")}); err != nil {
		t.Fatal(err)
	}
	const meta = `{"database":"orders"}`
	if _, err := a.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("kv"), MinSize: aws.Int32(0), MaxSize: aws.Int32(2), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1a", "us-east-1b"}, LaunchConfigurationName: aws.String("kv-v1"),
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{{
			LifecycleHookName: aws.String("handover"), LifecycleTransition: aws.String(handover.TransitionLaunching),
			HeartbeatTimeout: aws.Int32(300), NotificationMetadata: aws.String(meta),
		}},
	}); err != nil {
		t.Fatal(err)
	}
	if hook, err := c.DescribeHook(ctx, "kv", "handover"); err != nil || hook.Metadata != meta {
		t.Fatalf("DescribeHook = %+v, %v", hook, err)
	}
	var act handover.WaitingAction
	eventually(t, "a waiting launch action", func() (bool, error) {
		acts, err := c.WaitingActions(ctx)
		if len(acts) == 1 {
			act = acts[0]
		}
		return len(acts) == 1, err
	})
	if want := (handover.WaitingAction{Group: "kv", Hook: "handover", Instance: act.Instance, Transition: handover.TransitionLaunching, Metadata: meta}); act != want {
		t.Fatalf("WaitingActions = %+v, want %+v", act, want)
	}
	members, err := c.GroupMembers(ctx, "kv")
	if err != nil || !slices.Contains(members, handover.GroupMember{Instance: act.Instance, Lifecycle: handover.LifecyclePendingWait, Health: "Healthy"}) {
		t.Fatalf("GroupMembers = %+v, %v", members, err)
	}
	if inst, err := c.DescribeInstance(ctx, act.Instance); err != nil || inst.Zone == "" {
		t.Fatalf("DescribeInstance = %+v, %v", inst, err)
	}
	ref := ledger.HookRef{Group: "kv", Hook: "handover", Instance: act.Instance}
	if err := c.RecordLifecycleActionHeartbeat(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := c.CompleteLifecycleAction(ctx, ref, handover.ResultContinue); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the instance in service", func() (bool, error) {
		st, err := c.GroupInstanceState(ctx, "kv", act.Instance)
		return st == handover.LifecycleInService, err
	})
	if err := c.ReplaceInstance(ctx, "kv", act.Instance); err != nil {
		t.Fatal(err)
	}
	var next handover.WaitingAction
	eventually(t, "a replacement from the launch configuration", func() (bool, error) {
		acts, err := c.WaitingActions(ctx)
		if len(acts) == 1 && acts[0].Instance != act.Instance {
			next = acts[0]
		}
		return next.Instance != "", err
	})
	out, err := a.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{next.Instance}})
	if err != nil || len(out.AutoScalingInstances) != 1 || aws.ToString(out.AutoScalingInstances[0].LaunchConfigurationName) != "kv-v1" {
		t.Fatalf("replacement %s: %+v, %v", next.Instance, out, err)
	}

	// Group updates read what the group launches from, so that they can
	// refuse it saying how to move it to a template.
	g, err := awscloud.NewGroups(e, a).DescribeGroup(ctx, "kv")
	if err != nil || g.LaunchConfiguration != "kv-v1" || g.Template != (ledger.TemplateRef{}) {
		t.Fatalf("DescribeGroup = %+v, %v; want launch configuration kv-v1 and no template", g, err)
	}
}
