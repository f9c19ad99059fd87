package awscloud_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/localcloud"
)

// TestDrainInstance: the drain cutover takes an instance out of its
// group's target group through the real ELBv2 API of the local cloud, and
// reports it drained only once the deregistration delay has passed.
func TestDrainInstance(t *testing.T) {
	ctx := context.Background()
	cfg := localCloud(t, localcloud.Config{HealthInterval: time.Second})
	e, a, lb := awsec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg), elb.NewFromConfig(cfg)
	c := awscloud.New(e, a, nil).WithTargets(lb)

	tg, err := lb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("kv"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(8080), VpcId: aws.String("vpc-local"), HealthCheckPath: aws.String("/healthz")})
	if err != nil {
		t.Fatal(err)
	}
	tgARN := tg.TargetGroups[0].TargetGroupArn
	if _, err := lb.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: tgARN,
		Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("2")}}}); err != nil {
		t.Fatal(err)
	}
	lbOut, err := lb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("kv"), Subnets: []string{"subnet-local"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lbOut.LoadBalancers[0].LoadBalancerArn,
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgARN}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("kvstore"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("kv"), MinSize: aws.Int32(1), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1a"}, TargetGroupARNs: []string{aws.ToString(tgARN)},
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("kvstore"), Version: aws.String("$Latest")},
	}); err != nil {
		t.Fatal(err)
	}
	var id string
	eventually(t, "an instance registered with the target group", func() (bool, error) {
		out, err := lb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgARN})
		if err != nil || len(out.TargetHealthDescriptions) == 0 {
			return false, err
		}
		id = aws.ToString(out.TargetHealthDescriptions[0].Target.Id)
		return true, nil
	})

	started := time.Now()
	drained, err := c.DrainInstance(ctx, "", id) // the group looked up
	if err != nil || drained {
		t.Fatalf("first DrainInstance = %v, %v; want deregistration started, not drained", drained, err)
	}
	out, err := lb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgARN,
		Targets: []elbtypes.TargetDescription{{Id: aws.String(id)}}})
	if err != nil || out.TargetHealthDescriptions[0].TargetHealth.State != elbtypes.TargetHealthStateEnumDraining {
		t.Fatalf("target after DrainInstance: %+v, %v; want draining", out, err)
	}
	eventually(t, "the drain to finish", func() (bool, error) { return c.DrainInstance(ctx, "kv", id) })
	if d := time.Since(started); d < 2*time.Second {
		t.Errorf("drained after %s, before the 2 s deregistration delay", d)
	}
	if drained, err := c.DrainInstance(ctx, "kv", id); !drained || err != nil {
		t.Errorf("DrainInstance again = %v, %v; want drained (safe to repeat)", drained, err)
	}
	// A rollback registers it again (twice: safe to repeat).
	for range 2 {
		if err := c.UndrainInstance(ctx, "kv", id); err != nil {
			t.Fatalf("UndrainInstance: %v", err)
		}
	}
	out, err = lb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgARN,
		Targets: []elbtypes.TargetDescription{{Id: aws.String(id)}}})
	if err != nil || len(out.TargetHealthDescriptions) != 1 || out.TargetHealthDescriptions[0].TargetHealth.Reason == elbtypes.TargetHealthReasonEnumNotRegistered ||
		out.TargetHealthDescriptions[0].TargetHealth.State == elbtypes.TargetHealthStateEnumDraining {
		t.Fatalf("target after UndrainInstance: %+v, %v; want registered again", out, err)
	}
	if err := c.UndrainInstance(ctx, "gone", id); err != nil {
		t.Errorf("UndrainInstance in a group that does not exist = %v, want nothing to do", err)
	}
	if _, err := c.DrainInstance(ctx, "kv", id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second drain to finish", func() (bool, error) { return c.DrainInstance(ctx, "kv", id) })
	if drained, err := c.DrainInstance(ctx, "gone", id); !drained || err != nil {
		t.Errorf("DrainInstance in a group that does not exist = %v, %v; want drained", drained, err)
	}
	if _, err := awscloud.New(e, a, nil).DrainInstance(ctx, "kv", id); !errors.Is(err, handover.ErrInvalid) {
		t.Errorf("DrainInstance without an ELBv2 client = %v, want ErrInvalid saying so", err)
	}
}
