package awscloud

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/update"
)

// Tags `handover signal` puts on the instance that signals. An instance tag
// needs no path from the instance to the controller (only ec2:CreateTags on
// itself), and the controller reads it with the DescribeInstances it makes
// anyway.
const (
	TagSignal       = "handover:signal"
	TagSignalReason = "handover:signal-reason"
	tagGroupName    = "aws:autoscaling:groupName"
)

// GroupsEC2API is the subset of *ec2.Client that Groups calls.
type GroupsEC2API interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, opts ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	CreateLaunchTemplateVersion(ctx context.Context, in *ec2.CreateLaunchTemplateVersionInput, opts ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateVersionOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, opts ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// GroupsASGAPI is the subset of *autoscaling.Client that Groups calls.
type GroupsASGAPI interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeLifecycleHooks(ctx context.Context, in *autoscaling.DescribeLifecycleHooksInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeLifecycleHooksOutput, error)
	UpdateAutoScalingGroup(ctx context.Context, in *autoscaling.UpdateAutoScalingGroupInput, opts ...func(*autoscaling.Options)) (*autoscaling.UpdateAutoScalingGroupOutput, error)
	CreateAutoScalingGroup(ctx context.Context, in *autoscaling.CreateAutoScalingGroupInput, opts ...func(*autoscaling.Options)) (*autoscaling.CreateAutoScalingGroupOutput, error)
	DeleteAutoScalingGroup(ctx context.Context, in *autoscaling.DeleteAutoScalingGroupInput, opts ...func(*autoscaling.Options)) (*autoscaling.DeleteAutoScalingGroupOutput, error)
	TerminateInstanceInAutoScalingGroup(ctx context.Context, in *autoscaling.TerminateInstanceInAutoScalingGroupInput, opts ...func(*autoscaling.Options)) (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error)
}

var (
	_ GroupsEC2API = (*ec2.Client)(nil)
	_ GroupsASGAPI = (*autoscaling.Client)(nil)
)

// Groups is update.Cloud over the EC2 and Auto Scaling APIs.
type Groups struct {
	ec2 GroupsEC2API
	asg GroupsASGAPI
}

var _ update.Cloud = (*Groups)(nil)

// NewGroups returns Groups over the given clients.
func NewGroups(ec2 GroupsEC2API, asg GroupsASGAPI) *Groups { return &Groups{ec2: ec2, asg: asg} }

// DescribeGroup implements update.Cloud.
func (g *Groups) DescribeGroup(ctx context.Context, name string) (update.Group, error) {
	out, err := g.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		return update.Group{}, fmt.Errorf("describing group %s: %w", name, translate(err))
	}
	for _, a := range out.AutoScalingGroups {
		if aws.ToString(a.AutoScalingGroupName) != name {
			continue
		}
		grp := update.Group{
			Name: name, Min: aws.ToInt32(a.MinSize), Max: aws.ToInt32(a.MaxSize), Desired: aws.ToInt32(a.DesiredCapacity),
			Zones: a.AvailabilityZones, Subnets: aws.ToString(a.VPCZoneIdentifier), TargetGroups: a.TargetGroupARNs,
			HealthCheckType: aws.ToString(a.HealthCheckType), HealthCheckGrace: seconds(a.HealthCheckGracePeriod),
			MaintenanceMin: -1, MaintenanceMax: -1,
		}
		if lt := a.LaunchTemplate; lt != nil {
			grp.Template = ledger.TemplateRef{ID: aws.ToString(lt.LaunchTemplateId), Name: aws.ToString(lt.LaunchTemplateName), Version: aws.ToString(lt.Version)}
		}
		grp.LaunchConfiguration = aws.ToString(a.LaunchConfigurationName)
		if p := a.InstanceMaintenancePolicy; p != nil {
			if p.MinHealthyPercentage != nil {
				grp.MaintenanceMin = *p.MinHealthyPercentage
			}
			if p.MaxHealthyPercentage != nil {
				grp.MaintenanceMax = *p.MaxHealthyPercentage
			}
		}
		for _, t := range a.Tags {
			grp.Tags = append(grp.Tags, update.Tag{Key: aws.ToString(t.Key), Value: aws.ToString(t.Value), Propagate: aws.ToBool(t.PropagateAtLaunch)})
		}
		for _, i := range a.Instances {
			m := update.Member{ID: aws.ToString(i.InstanceId), Zone: aws.ToString(i.AvailabilityZone), Lifecycle: string(i.LifecycleState), Health: aws.ToString(i.HealthStatus)}
			if i.LaunchTemplate != nil {
				m.Version = aws.ToString(i.LaunchTemplate.Version)
			}
			grp.Instances = append(grp.Instances, m)
		}
		// Only template instances have template versions to look up.
		if grp.Template.ID != "" || grp.Template.Name != "" {
			if err := g.resolveVersions(ctx, grp.Instances); err != nil {
				return update.Group{}, fmt.Errorf("describing group %s: %w", name, err)
			}
		}
		return grp, nil
	}
	return update.Group{}, fmt.Errorf("describing group %s: %w", name, handover.ErrNotFound)
}

// Hooks implements update.Cloud.
func (g *Groups) Hooks(ctx context.Context, group string) ([]update.Hook, error) {
	out, err := g.asg.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String(group)})
	if err != nil {
		return nil, fmt.Errorf("listing lifecycle hooks of group %s: %w", group, translate(err))
	}
	hooks := make([]update.Hook, 0, len(out.LifecycleHooks))
	for _, h := range out.LifecycleHooks {
		hooks = append(hooks, update.Hook{
			Name: aws.ToString(h.LifecycleHookName), Transition: aws.ToString(h.LifecycleTransition),
			HeartbeatTimeout: seconds(h.HeartbeatTimeout), DefaultResult: aws.ToString(h.DefaultResult),
			Metadata: aws.ToString(h.NotificationMetadata),
		})
	}
	return hooks, nil
}

// inSeconds is the inverse of seconds: the whole seconds the Auto Scaling
// API takes.
func inSeconds(d time.Duration) *int32 { return aws.Int32(int32(d / time.Second)) }

func templateInput(t ledger.TemplateRef) (id, name *string) {
	if t.ID != "" {
		return aws.String(t.ID), nil
	}
	return nil, aws.String(t.Name)
}

// ResolveVersion implements update.Cloud.
func (g *Groups) ResolveVersion(ctx context.Context, t ledger.TemplateRef) (string, error) {
	if _, err := strconv.ParseInt(t.Version, 10, 64); err == nil {
		return t.Version, nil
	}
	in := &ec2.DescribeLaunchTemplatesInput{}
	if t.ID != "" {
		in.LaunchTemplateIds = []string{t.ID}
	} else {
		in.LaunchTemplateNames = []string{t.Name}
	}
	out, err := g.ec2.DescribeLaunchTemplates(ctx, in)
	if err != nil {
		return "", fmt.Errorf("describing launch template %s%s: %w", t.ID, t.Name, translate(err))
	}
	if len(out.LaunchTemplates) != 1 {
		return "", fmt.Errorf("describing launch template %s%s: %w", t.ID, t.Name, handover.ErrNotFound)
	}
	lt := out.LaunchTemplates[0]
	switch t.Version {
	case "$Latest":
		return strconv.FormatInt(aws.ToInt64(lt.LatestVersionNumber), 10), nil
	case "$Default", "":
		return strconv.FormatInt(aws.ToInt64(lt.DefaultVersionNumber), 10), nil
	}
	return "", fmt.Errorf("launch template version %q is not $Latest, $Default or a number", t.Version)
}

// NewTemplateVersion implements update.Cloud.
func (g *Groups) NewTemplateVersion(ctx context.Context, t ledger.TemplateRef, imageID string) (string, error) {
	id, name := templateInput(t)
	out, err := g.ec2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: id, LaunchTemplateName: name, SourceVersion: aws.String(t.Version),
		VersionDescription: aws.String("handover update: image " + imageID),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(imageID)},
	})
	if err != nil {
		return "", fmt.Errorf("creating a version of launch template %s%s with image %s: %w", t.ID, t.Name, imageID, translate(err))
	}
	if out.LaunchTemplateVersion == nil {
		return "", fmt.Errorf("creating a version of launch template %s%s: no version in the answer", t.ID, t.Name)
	}
	return strconv.FormatInt(aws.ToInt64(out.LaunchTemplateVersion.VersionNumber), 10), nil
}

func asgTemplate(t ledger.TemplateRef) *astypes.LaunchTemplateSpecification {
	id, name := templateInput(t)
	return &astypes.LaunchTemplateSpecification{LaunchTemplateId: id, LaunchTemplateName: name, Version: aws.String(t.Version)}
}

// SetTemplate implements update.Cloud.
func (g *Groups) SetTemplate(ctx context.Context, group string, t ledger.TemplateRef) error {
	_, err := g.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(group), LaunchTemplate: asgTemplate(t)})
	if err != nil {
		return fmt.Errorf("setting group %s to launch template version %s: %w", group, t.Version, translate(err))
	}
	return nil
}

// SetCapacity implements update.Cloud.
func (g *Groups) SetCapacity(ctx context.Context, group string, min, max, desired int32) error {
	_, err := g.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(group), MinSize: aws.Int32(min), MaxSize: aws.Int32(max), DesiredCapacity: aws.Int32(desired),
	})
	if err != nil {
		return fmt.Errorf("setting capacity of group %s to min %d, max %d, desired %d: %w", group, min, max, desired, translate(err))
	}
	return nil
}

// Terminate implements update.Cloud.
func (g *Groups) Terminate(ctx context.Context, group, instance string) error {
	_, err := g.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(instance), ShouldDecrementDesiredCapacity: aws.Bool(true),
	})
	if err = translate(err); err != nil && !errors.Is(err, handover.ErrNotFound) && !isCode(err, "ValidationError") {
		return fmt.Errorf("terminating instance %s of group %s: %w", instance, group, err)
	}
	return nil
}

// CreateGroup implements update.Cloud.
func (g *Groups) CreateGroup(ctx context.Context, n update.NewGroup) error {
	in := &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(n.Name), LaunchTemplate: asgTemplate(n.Template),
		MinSize: aws.Int32(n.Min), MaxSize: aws.Int32(n.Max), DesiredCapacity: aws.Int32(n.Desired),
		TargetGroupARNs: n.Like.TargetGroups,
	}
	if n.Like.Subnets != "" {
		in.VPCZoneIdentifier = aws.String(n.Like.Subnets)
	} else {
		in.AvailabilityZones = n.Like.Zones
	}
	if n.Like.HealthCheckType != "" {
		in.HealthCheckType = aws.String(n.Like.HealthCheckType)
		in.HealthCheckGracePeriod = inSeconds(n.Like.HealthCheckGrace)
	}
	if n.Like.MaintenanceMin >= 0 || n.Like.MaintenanceMax >= 0 {
		in.InstanceMaintenancePolicy = &astypes.InstanceMaintenancePolicy{
			MinHealthyPercentage: aws.Int32(n.Like.MaintenanceMin), MaxHealthyPercentage: aws.Int32(n.Like.MaintenanceMax),
		}
	}
	for _, h := range n.Hooks {
		spec := astypes.LifecycleHookSpecification{LifecycleHookName: aws.String(h.Name), LifecycleTransition: aws.String(h.Transition)}
		if h.HeartbeatTimeout > 0 {
			spec.HeartbeatTimeout = inSeconds(h.HeartbeatTimeout)
		}
		if h.DefaultResult != "" {
			spec.DefaultResult = aws.String(h.DefaultResult)
		}
		if h.Metadata != "" {
			spec.NotificationMetadata = aws.String(h.Metadata)
		}
		in.LifecycleHookSpecificationList = append(in.LifecycleHookSpecificationList, spec)
	}
	tag := func(k, v string, p bool) astypes.Tag {
		return astypes.Tag{Key: aws.String(k), Value: aws.String(v), PropagateAtLaunch: aws.Bool(p), ResourceId: aws.String(n.Name), ResourceType: aws.String("auto-scaling-group")}
	}
	for _, t := range n.Like.Tags {
		// aws: tags (aws:cloudformation:stack-name, …) are reserved: a
		// create that carries them is refused.
		if _, over := n.Tags[t.Key]; !over && !strings.HasPrefix(t.Key, "aws:") {
			in.Tags = append(in.Tags, tag(t.Key, t.Value, t.Propagate))
		}
	}
	for k, v := range n.Tags {
		in.Tags = append(in.Tags, tag(k, v, true))
	}
	_, err := g.asg.CreateAutoScalingGroup(ctx, in)
	if err != nil && !isCode(err, "AlreadyExists") {
		return fmt.Errorf("creating group %s: %w", n.Name, translate(err))
	}
	return nil
}

// DeleteGroup implements update.Cloud.
func (g *Groups) DeleteGroup(ctx context.Context, name string) error {
	_, err := g.asg.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String(name), ForceDelete: aws.Bool(true)})
	if err = translate(err); err != nil && !errors.Is(err, handover.ErrNotFound) {
		if isCode(err, "ValidationError") { // "AutoScalingGroup name not found"
			return nil
		}
		return fmt.Errorf("deleting group %s: %w", name, err)
	}
	return nil
}

// Signals implements update.Cloud.
func (g *Groups) Signals(ctx context.Context, group string) (map[string]string, error) {
	in := &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + tagGroupName), Values: []string{group}},
		{Name: aws.String("tag-key"), Values: []string{TagSignal}},
	}}
	out := map[string]string{}
	p := ec2.NewDescribeInstancesPaginator(g.ec2, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading signals of group %s: %w", group, translate(err))
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				for _, t := range i.Tags {
					if aws.ToString(t.Key) == TagSignal {
						out[aws.ToString(i.InstanceId)] = aws.ToString(t.Value)
					}
				}
			}
		}
	}
	return out, nil
}

// SendSignal tags instance with a signal, what `handover signal` does.
func SendSignal(ctx context.Context, api GroupsEC2API, instance, status, reason string) error {
	tags := []ec2types.Tag{{Key: aws.String(TagSignal), Value: aws.String(status)}}
	if reason != "" {
		if len(reason) > 255 { // EC2's limit on a tag value
			reason = reason[:255]
		}
		tags = append(tags, ec2types.Tag{Key: aws.String(TagSignalReason), Value: aws.String(reason)})
	}
	if _, err := api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{instance}, Tags: tags}); err != nil {
		return fmt.Errorf("tagging instance %s with signal %s: %w", instance, status, translate(err))
	}
	return nil
}

// GroupOf returns the Auto Scaling group an instance belongs to, from its
// aws:autoscaling:groupName tag.
func GroupOf(ctx context.Context, api GroupsEC2API, instance string) (string, error) {
	out, err := api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instance}})
	if err != nil {
		return "", fmt.Errorf("describing instance %s: %w", instance, translate(err))
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			for _, t := range i.Tags {
				if aws.ToString(t.Key) == tagGroupName {
					return aws.ToString(t.Value), nil
				}
			}
		}
	}
	return "", fmt.Errorf("instance %s has no %s tag: it is not in an Auto Scaling group (pass --group)", instance, tagGroupName)
}

func isCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

// tagTemplateVersion is the tag EC2 puts on every instance launched from a
// launch template: the version number it was launched from. A group on
// $Latest or $Default reports that name for its instances instead, which
// says nothing about what they run.
const tagTemplateVersion = "aws:ec2launchtemplate:version"

// resolveVersions replaces symbolic versions ($Latest, $Default) of members
// by the number their instance was launched from.
func (g *Groups) resolveVersions(ctx context.Context, ms []update.Member) error {
	var ids []string
	for _, m := range ms {
		if _, err := strconv.Atoi(m.Version); err != nil {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	p := ec2.NewDescribeInstancesPaginator(g.ec2, &ec2.DescribeInstancesInput{InstanceIds: ids})
	byID := map[string]string{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err = translate(err); errors.Is(err, handover.ErrNotFound) {
			return nil // an instance just went away; the next look will do
		}
		if err != nil {
			return fmt.Errorf("reading the launch template versions of its instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				for _, t := range i.Tags {
					if aws.ToString(t.Key) == tagTemplateVersion {
						byID[aws.ToString(i.InstanceId)] = aws.ToString(t.Value)
					}
				}
			}
		}
	}
	for k := range ms {
		if v, ok := byID[ms[k].ID]; ok {
			ms[k].Version = v
		}
	}
	return nil
}
