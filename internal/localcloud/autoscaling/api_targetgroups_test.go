package autoscaling

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
)

// AttachLoadBalancerTargetGroups registers the group's InService
// instances with the target group at once, and its later launches as they
// come in service; a repeat changes nothing; bad input is refused.
func TestAttachLoadBalancerTargetGroups(t *testing.T) {
	h := newHarness(t)
	h.createGroup("web", 0, 4, 2, withTargetGroup)
	h.step()
	const entry = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/entry/0123456789abcdef"
	for range 2 {
		if _, err := h.as.AttachLoadBalancerTargetGroups(h.ctx, &as.AttachLoadBalancerTargetGroupsInput{
			AutoScalingGroupName: aws.String("web"), TargetGroupARNs: []string{entry}}); err != nil {
			t.Fatalf("AttachLoadBalancerTargetGroups: %v", err)
		}
	}
	g := h.group("web")
	if len(g.TargetGroupARNs) != 2 || g.TargetGroupARNs[1] != entry {
		t.Fatalf("TargetGroupARNs = %v, want the group's and the attached one", g.TargetGroupARNs)
	}
	for _, i := range g.Instances {
		if !h.tgs.isRegistered(entry, aws.ToString(i.InstanceId)) || !h.tgs.isRegistered(testTG, aws.ToString(i.InstanceId)) {
			t.Errorf("%s is not registered with both target groups", aws.ToString(i.InstanceId))
		}
	}
	h.setDesired("web", 3)
	h.step()
	for _, i := range h.group("web").Instances {
		if !h.tgs.isRegistered(entry, aws.ToString(i.InstanceId)) {
			t.Errorf("%s, launched after the attach, is not registered with it", aws.ToString(i.InstanceId))
		}
	}
	for _, tt := range []struct {
		name string
		in   *as.AttachLoadBalancerTargetGroupsInput
	}{
		{"no group", &as.AttachLoadBalancerTargetGroupsInput{AutoScalingGroupName: aws.String("nope"), TargetGroupARNs: []string{entry}}},
		{"no target group", &as.AttachLoadBalancerTargetGroupsInput{AutoScalingGroupName: aws.String("web")}},
	} {
		if _, err := h.as.AttachLoadBalancerTargetGroups(h.ctx, tt.in); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}
