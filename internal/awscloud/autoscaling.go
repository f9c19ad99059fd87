package awscloud

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

const lifecycleTerminatingWait = "Terminating:Wait"

// DescribeHook implements handover.Cloud.
func (c *Cloud) DescribeHook(ctx context.Context, group, hook string) (handover.Hook, error) {
	out, err := c.asg.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{
		AutoScalingGroupName: aws.String(group), LifecycleHookNames: []string{hook},
	})
	if err != nil {
		return handover.Hook{}, fmt.Errorf("describing hook %s of group %s: %w", hook, group, translate(err))
	}
	for _, h := range out.LifecycleHooks {
		if aws.ToString(h.LifecycleHookName) == hook {
			return handover.Hook{
				HeartbeatTimeout: seconds(h.HeartbeatTimeout),
				GlobalTimeout:    seconds(h.GlobalTimeout),
				DefaultResult:    aws.ToString(h.DefaultResult),
				Metadata:         aws.ToString(h.NotificationMetadata),
			}, nil
		}
	}
	return handover.Hook{}, fmt.Errorf("describing hook %s of group %s: %w", hook, group, handover.ErrNotFound)
}

func seconds(s *int32) time.Duration { return time.Duration(aws.ToInt32(s)) * time.Second }

// CompleteLifecycleAction implements handover.Cloud. The token names the
// action exactly; without one, the instance id names its current action.
func (c *Cloud) CompleteLifecycleAction(ctx context.Context, ref ledger.HookRef, result string) error {
	in := &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String(ref.Group), LifecycleHookName: aws.String(ref.Hook),
		LifecycleActionResult: aws.String(result),
	}
	if ref.Token != "" {
		in.LifecycleActionToken = aws.String(ref.Token)
	} else {
		in.InstanceId = aws.String(ref.Instance)
	}
	if _, err := c.asg.CompleteLifecycleAction(ctx, in); err != nil {
		return fmt.Errorf("completing lifecycle action of %s (%s): %w", ref.Instance, result, translate(err))
	}
	return nil
}

// RecordLifecycleActionHeartbeat implements handover.Cloud.
func (c *Cloud) RecordLifecycleActionHeartbeat(ctx context.Context, ref ledger.HookRef) error {
	in := &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String(ref.Group), LifecycleHookName: aws.String(ref.Hook),
	}
	if ref.Token != "" {
		in.LifecycleActionToken = aws.String(ref.Token)
	} else {
		in.InstanceId = aws.String(ref.Instance)
	}
	if _, err := c.asg.RecordLifecycleActionHeartbeat(ctx, in); err != nil {
		return fmt.Errorf("heartbeating lifecycle action of %s: %w", ref.Instance, translate(err))
	}
	return nil
}

// GroupInstanceState implements handover.Cloud.
func (c *Cloud) GroupInstanceState(ctx context.Context, group, instance string) (string, error) {
	out, err := c.asg.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{instance}})
	if err != nil {
		return "", fmt.Errorf("describing instance %s in group %s: %w", instance, group, translate(err))
	}
	for _, i := range out.AutoScalingInstances {
		if aws.ToString(i.InstanceId) == instance && aws.ToString(i.AutoScalingGroupName) == group {
			return aws.ToString(i.LifecycleState), nil
		}
	}
	return "", fmt.Errorf("describing instance %s in group %s: %w", instance, group, handover.ErrNotFound)
}

// GroupMembers implements handover.Cloud.
func (c *Cloud) GroupMembers(ctx context.Context, group string) ([]handover.GroupMember, error) {
	g, err := c.group(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("listing members of group %s: %w", group, err)
	}
	members := make([]handover.GroupMember, 0, len(g.Instances))
	for _, i := range g.Instances {
		members = append(members, handover.GroupMember{
			Instance: aws.ToString(i.InstanceId), Lifecycle: string(i.LifecycleState), Health: aws.ToString(i.HealthStatus),
			OutOfZone: len(g.AvailabilityZones) > 0 && !slices.Contains(g.AvailabilityZones, aws.ToString(i.AvailabilityZone)),
		})
	}
	return members, nil
}

// group returns the group, or ErrNotFound.
func (c *Cloud) group(ctx context.Context, name string) (astypes.AutoScalingGroup, error) {
	out, err := c.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		return astypes.AutoScalingGroup{}, translate(err)
	}
	for _, g := range out.AutoScalingGroups {
		if aws.ToString(g.AutoScalingGroupName) == name {
			return g, nil
		}
	}
	return astypes.AutoScalingGroup{}, handover.ErrNotFound
}

// ReplaceInstance implements handover.Cloud.
func (c *Cloud) ReplaceInstance(ctx context.Context, group, instance string) error {
	_, err := c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(instance), ShouldDecrementDesiredCapacity: aws.Bool(false),
	})
	if err != nil {
		return fmt.Errorf("replacing instance %s of group %s: %w", instance, group, translate(err))
	}
	return nil
}

// watchedGroups lists the groups handover looks at: every group in the
// region when none were configured (the controller then tells its own hooks
// apart by name), else the configured ones and their replace-all
// replacements ("<group>-…"). Listing rather than describing each by name
// lets a configured group that a replace-all deleted simply drop out.
func (c *Cloud) watchedGroups(ctx context.Context) ([]astypes.AutoScalingGroup, error) {
	var out []astypes.AutoScalingGroup
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(c.asg, &autoscaling.DescribeAutoScalingGroupsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing Auto Scaling groups: %w", translate(err))
		}
		for _, g := range page.AutoScalingGroups {
			if c.watches(aws.ToString(g.AutoScalingGroupName)) {
				out = append(out, g)
			}
		}
	}
	return out, nil
}

func (c *Cloud) watches(name string) bool {
	if len(c.groups) == 0 {
		return true
	}
	for _, g := range c.groups {
		if name == g || strings.HasPrefix(name, g+"-") {
			return true
		}
	}
	return false
}

// WaitingActions implements handover.Cloud. Each waiting instance is paired
// with every hook of its group on that transition.
func (c *Cloud) WaitingActions(ctx context.Context) ([]handover.WaitingAction, error) {
	var acts []handover.WaitingAction
	groups, err := c.watchedGroups(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		name := aws.ToString(g.AutoScalingGroupName)
		var hooks []astypes.LifecycleHook
		for _, i := range g.Instances {
			var transition string
			switch string(i.LifecycleState) {
			case handover.LifecyclePendingWait:
				transition = handover.TransitionLaunching
			case lifecycleTerminatingWait:
				transition = handover.TransitionTerminating
			default:
				continue
			}
			if hooks == nil {
				out, err := c.asg.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String(name)})
				if err != nil {
					return nil, fmt.Errorf("listing hooks of group %s: %w", name, translate(err))
				}
				hooks = append([]astypes.LifecycleHook{}, out.LifecycleHooks...)
			}
			for _, h := range hooks {
				if aws.ToString(h.LifecycleTransition) != transition {
					continue
				}
				acts = append(acts, handover.WaitingAction{
					Group: name, Hook: aws.ToString(h.LifecycleHookName), Instance: aws.ToString(i.InstanceId),
					Transition: transition, Metadata: aws.ToString(h.NotificationMetadata),
				})
			}
		}
	}
	return acts, nil
}

// LaunchHookMetadata returns, for every watched group with a launch hook,
// the hooks' NotificationMetadata and the group's release channel tag
// (handover.TagGroupChannel), for the release controller to find a
// channel's groups.
func (c *Cloud) LaunchHookMetadata(ctx context.Context) (map[string]handover.GroupLaunch, error) {
	groups, err := c.watchedGroups(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]handover.GroupLaunch{}
	for _, g := range groups {
		name := aws.ToString(g.AutoScalingGroupName)
		hooks, err := c.asg.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("listing hooks of group %s: %w", name, translate(err))
		}
		for _, h := range hooks.LifecycleHooks {
			if aws.ToString(h.LifecycleTransition) == handover.TransitionLaunching {
				gl := out[name]
				gl.Metadata = append(gl.Metadata, aws.ToString(h.NotificationMetadata))
				gl.Channel = groupTags(g)[handover.TagGroupChannel]
				out[name] = gl
			}
		}
	}
	return out, nil
}

// GroupTags implements handover.GroupTagger.
func (c *Cloud) GroupTags(ctx context.Context, group string) (map[string]string, error) {
	g, err := c.group(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("reading the tags of group %s: %w", group, err)
	}
	return groupTags(g), nil
}

func groupTags(g astypes.AutoScalingGroup) map[string]string {
	out := make(map[string]string, len(g.Tags))
	for _, t := range g.Tags {
		out[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}
