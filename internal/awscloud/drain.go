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
	RegisterTargets(ctx context.Context, in *elb.RegisterTargetsInput, opts ...func(*elb.Options)) (*elb.RegisterTargetsOutput, error)
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
	tgs, err := c.targetGroups(ctx, group, instance)
	if err != nil {
		return false, fmt.Errorf("draining %s: %w", instance, err)
	}
	drained := true
	for _, tg := range tgs {
		done, err := c.drainFrom(ctx, tg, instance)
		if err != nil {
			return false, err
		}
		drained = drained && done
	}
	return drained, nil
}

// UndrainInstance implements handover.Drainer: it registers instance again
// with every target group of its group (RegisterTargets is a no-op for a
// target already registered). A target group or instance that is gone
// needs nothing.
func (c *Cloud) UndrainInstance(ctx context.Context, group, instance string) error {
	tgs, err := c.targetGroups(ctx, group, instance)
	if err != nil {
		return fmt.Errorf("registering %s again: %w", instance, err)
	}
	for _, tg := range tgs {
		_, err := c.elb.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(tg), Targets: []elbtypes.TargetDescription{{Id: aws.String(instance)}}})
		switch {
		case isAPICode(err, "TargetGroupNotFound"), isAPICode(err, "InvalidTarget"):
		case err != nil:
			return fmt.Errorf("registering %s with target group %s again: %w", instance, tg, translate(err))
		}
	}
	return nil
}

// targetGroups lists the target groups instance's group (its own group; ""
// means look it up) registers it with: none for an instance in no group or
// a group that is gone. Classic load balancers are refused, as is a group
// with target groups when the cloud has no ELBv2 client.
func (c *Cloud) targetGroups(ctx context.Context, group, instance string) ([]string, error) {
	if group == "" {
		out, err := c.asg.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{instance}})
		if err != nil {
			return nil, fmt.Errorf("finding the group of %s: %w", instance, translate(err))
		}
		if len(out.AutoScalingInstances) == 0 {
			return nil, nil // in no group: no group registers it anywhere
		}
		group = aws.ToString(out.AutoScalingInstances[0].AutoScalingGroupName)
	}
	g, err := c.group(ctx, group)
	if errors.Is(err, handover.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(g.LoadBalancerNames) > 0 {
		return nil, fmt.Errorf("group %s uses Classic Load Balancers %v, which the drain cutover does not support; use the retire cutover: %w",
			group, g.LoadBalancerNames, handover.ErrInvalid)
	}
	if len(g.TargetGroupARNs) > 0 && c.elb == nil {
		return nil, fmt.Errorf("group %s has target groups, but the controller has no ELBv2 client: %w", group, handover.ErrInvalid)
	}
	return g.TargetGroupARNs, nil
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
