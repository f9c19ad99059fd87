package localcloud_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/demo"
	"github.com/handover-dev/handover/internal/testenv"
)

// TestHandoverFromHookNotifications runs the real controller (a child
// process talking to the local cloud through the SDK) on a group whose
// lifecycle hooks notify the controller's queue directly, with no
// EventBridge rule anywhere, and whose instances launch from a launch
// configuration: an unhealthy instance is replaced and its state handed
// over, the launch action having reached the controller only as the hook's
// own message. Reconcile runs every ten minutes, so it cannot have found
// the launch instead.
func TestHandoverFromHookNotifications(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	handoverBin := testenv.Binary(t, "github.com/handover-dev/handover/cmd/handover")
	kvBin := testenv.Binary(t, "github.com/handover-dev/handover/examples/kvstore")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), HandoverBin: handoverBin, KVStoreBin: kvBin,
		ControllerArgs: []string{"--reconcile-interval", "10m"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range e.Controllers() {
				b, _ := os.ReadFile(c.LogPath)
				lines := strings.Split(string(b), "\n")
				t.Logf("controller %d log (tail):\n%s", c.N, strings.Join(lines[max(0, len(lines)-60):], "\n"))
			}
		}
		e.Close()
	})
	// The demo's group, first booted through its EventBridge rule.
	if err := e.CreateGroup(ctx); err != nil {
		t.Fatal(err)
	}
	const group, lcName = "kvstore", "kvstore-lc"
	keys, err := e.Load(ctx, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}

	// No EventBridge rule from here on.
	rules, err := e.EB.ListRules(ctx, &eventbridge.ListRulesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules.Rules {
		targets, err := e.EB.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: r.Name})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tg := range targets.Targets {
			ids = append(ids, aws.ToString(tg.Id))
		}
		if len(ids) > 0 {
			if _, err := e.EB.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: r.Name, Ids: ids}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.EB.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: r.Name}); err != nil {
			t.Fatal(err)
		}
	}
	if rules, err := e.EB.ListRules(ctx, &eventbridge.ListRulesInput{}); err != nil || len(rules.Rules) != 0 {
		t.Fatalf("rules left: %+v, %v", rules, err)
	}

	// The group moves to a launch configuration with the template's image
	// and user data.
	g, err := e.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
	if err != nil || len(g.AutoScalingGroups) != 1 {
		t.Fatalf("describing the group: %v", err)
	}
	lt := g.AutoScalingGroups[0].LaunchTemplate
	versions, err := e.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
		LaunchTemplateName: lt.LaunchTemplateName, Versions: []string{"$Latest"}})
	if err != nil || len(versions.LaunchTemplateVersions) != 1 {
		t.Fatalf("describing the template: %v", err)
	}
	data := versions.LaunchTemplateVersions[0].LaunchTemplateData
	if _, err := e.ASG.CreateLaunchConfiguration(ctx, &autoscaling.CreateLaunchConfigurationInput{LaunchConfigurationName: aws.String(lcName),
		ImageId: data.ImageId, InstanceType: aws.String("t3.small"), UserData: data.UserData}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ASG.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(group),
		LaunchConfigurationName: aws.String(lcName)}); err != nil {
		t.Fatal(err)
	}

	// Both hooks notify the queue directly; each puts a test message there,
	// which the controller must drop, not dead-letter.
	qa, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(e.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	for _, hook := range []string{"handover-launch", "handover-terminate"} {
		if _, err := e.ASG.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String(group), LifecycleHookName: aws.String(hook),
			NotificationTargetARN: aws.String(qa.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]),
			RoleARN:               aws.String("arn:aws:iam::000000000000:role/asg-lifecycle-notifications")}); err != nil {
			t.Fatalf("putting hook %s: %v", hook, err)
		}
	}

	r, err := e.Run(ctx, demo.ScenarioUnhealthy, keys, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: write pause %d ms, reads %d ok / %d failed, writes %d acked / %d lost, %s -> %s",
		r.Scenario, r.WritePauseMS, r.ReadsOK, r.ReadsFailed, r.WritesAcked, r.WritesLost, r.OldInstance, r.NewInstance)
	if !r.OK || r.MigrationState != "Committed" {
		t.Fatalf("handover not ok (%s): %v", r.MigrationState, r.Problems)
	}
	ms, err := e.API().Migrations(ctx, url.Values{"database": {"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	var cause string
	for _, m := range ms {
		if m.ID == r.MigrationID {
			cause = m.Cause
		}
	}
	if cause != "event" {
		t.Fatalf("the handover to %s was started by %q, want the hook's notification (event)", r.NewInstance, cause)
	}
	inst, err := e.ASG.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{r.NewInstance}})
	if err != nil || len(inst.AutoScalingInstances) != 1 || aws.ToString(inst.AutoScalingInstances[0].LaunchConfigurationName) != lcName {
		t.Fatalf("new instance %s: %+v, %v", r.NewInstance, inst, err)
	}
	// The test messages were acknowledged and dropped.
	dlq, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(e.DLQURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatal(err)
	}
	if n := dlq.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]; n != "0" {
		t.Fatalf("%s messages in the dead-letter queue", n)
	}
}
