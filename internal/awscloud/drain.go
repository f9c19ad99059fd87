package awscloud

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/handover"
)

// ELBAPI is the subset of *elasticloadbalancingv2.Client the drain cutover
// calls.
type ELBAPI interface {
	DeregisterTargets(ctx context.Context, in *elb.DeregisterTargetsInput, opts ...func(*elb.Options)) (*elb.DeregisterTargetsOutput, error)
	DescribeTargetHealth(ctx context.Context, in *elb.DescribeTargetHealthInput, opts ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error)
}

var (
	_ ELBAPI           = (*elb.Client)(nil)
	_ handover.Drainer = (*Cloud)(nil)
)

// WithTargets gives the cloud an ELBv2 client, which the drain cutover
// needs to take an old instance out of its group's target groups. It
// returns c.
func (c *Cloud) WithTargets(api ELBAPI) *Cloud {
	c.elb = api
	return c
}

// DrainInstance implements handover.Drainer over ELBv2: every target group
// of the instance's Auto Scaling group that lists the instance (other
// than draining) gets a DeregisterTargets; it is drained once every one
// reports it unregistered. Classic load balancers are not supported.
func (c *Cloud) DrainInstance(ctx context.Context, group, instance string) (bool, error) {
	if group == "" {
		out, err := c.asg.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{instance}})
		if err != nil {
			return false, fmt.Errorf("finding the group of %s: %w", instance, translate(err))
		}
		if len(out.AutoScalingInstances) == 0 {
			return true, nil // in no group: no group registers it anywhere
		}
		group = aws.ToString(out.AutoScalingInstances[0].AutoScalingGroupName)
	}
	g, err := c.group(ctx, group)
	if errors.Is(err, handover.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if len(g.LoadBalancerNames) > 0 {
		return false, fmt.Errorf("draining %s: group %s uses Classic Load Balancers %v, which the drain cutover does not support; use the retire cutover: %w",
			instance, group, g.LoadBalancerNames, handover.ErrInvalid)
	}
	if len(g.TargetGroupARNs) == 0 {
		return true, nil
	}
	if c.elb == nil {
		return false, fmt.Errorf("draining %s from group %s's target groups: the controller has no ELBv2 client: %w", instance, group, handover.ErrInvalid)
	}
	drained := true
	for _, tg := range g.TargetGroupARNs {
		done, err := c.drainFrom(ctx, tg, instance)
		if err != nil {
			return false, err
		}
		drained = drained && done
	}
	return drained, nil
}

// drainFrom deregisters instance from one target group if it is still
// registered there, and reports whether it is gone from it.
func (c *Cloud) drainFrom(ctx context.Context, tg, instance string) (bool, error) {
	out, err := c.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{
		TargetGroupArn: aws.String(tg), Targets: []elbtypes.TargetDescription{{Id: aws.String(instance)}},
	})
	switch {
	case isAPICode(err, "TargetGroupNotFound"), isAPICode(err, "InvalidTarget"):
		// The target group is gone, or the instance is (terminated): it
		// receives nothing from there.
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading the health of %s in target group %s: %w", instance, tg, translate(err))
	}
	var registered []elbtypes.TargetDescription
	done := true
	for _, d := range out.TargetHealthDescriptions {
		if d.Target == nil || aws.ToString(d.Target.Id) != instance || d.TargetHealth == nil {
			continue
		}
		switch {
		case d.TargetHealth.State == elbtypes.TargetHealthStateEnumUnused && d.TargetHealth.Reason == elbtypes.TargetHealthReasonEnumNotRegistered:
		case d.TargetHealth.State == elbtypes.TargetHealthStateEnumDraining:
			done = false
		default:
			registered = append(registered, *d.Target)
			done = false
		}
	}
	if len(registered) > 0 {
		if _, err := c.elb.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(tg), Targets: registered}); err != nil {
			if isAPICode(err, "TargetGroupNotFound") {
				return true, nil
			}
			return false, fmt.Errorf("deregistering %s from target group %s: %w", instance, tg, translate(err))
		}
	}
	return done, nil
}

func isAPICode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
