package awscloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// EnvASGAPI is the subset of *autoscaling.Client that Environments calls.
type EnvASGAPI interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeLifecycleHooks(ctx context.Context, in *autoscaling.DescribeLifecycleHooksInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeLifecycleHooksOutput, error)
	UpdateAutoScalingGroup(ctx context.Context, in *autoscaling.UpdateAutoScalingGroupInput, opts ...func(*autoscaling.Options)) (*autoscaling.UpdateAutoScalingGroupOutput, error)
	EnterStandby(ctx context.Context, in *autoscaling.EnterStandbyInput, opts ...func(*autoscaling.Options)) (*autoscaling.EnterStandbyOutput, error)
	ExitStandby(ctx context.Context, in *autoscaling.ExitStandbyInput, opts ...func(*autoscaling.Options)) (*autoscaling.ExitStandbyOutput, error)
}

// EnvELBAPI is the subset of *elasticloadbalancingv2.Client that
// Environments calls.
type EnvELBAPI interface {
	DescribeLoadBalancers(ctx context.Context, in *elb.DescribeLoadBalancersInput, opts ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error)
	DescribeTargetGroups(ctx context.Context, in *elb.DescribeTargetGroupsInput, opts ...func(*elb.Options)) (*elb.DescribeTargetGroupsOutput, error)
	DescribeListeners(ctx context.Context, in *elb.DescribeListenersInput, opts ...func(*elb.Options)) (*elb.DescribeListenersOutput, error)
	DescribeTags(ctx context.Context, in *elb.DescribeTagsInput, opts ...func(*elb.Options)) (*elb.DescribeTagsOutput, error)
}

// EnvRDSAPI is the subset of *rds.Client that Environments calls.
type EnvRDSAPI interface {
	DescribeDBInstances(ctx context.Context, in *rds.DescribeDBInstancesInput, opts ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
}

// EnvS3API is the subset of *s3.Client that Environments calls.
type EnvS3API interface {
	ListBuckets(ctx context.Context, in *s3.ListBucketsInput, opts ...func(*s3.Options)) (*s3.ListBucketsOutput, error)
	GetBucketTagging(ctx context.Context, in *s3.GetBucketTaggingInput, opts ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error)
}

var (
	_ EnvASGAPI = (*autoscaling.Client)(nil)
	_ EnvELBAPI = (*elb.Client)(nil)
	_ EnvRDSAPI = (*rds.Client)(nil)
	_ EnvS3API  = (*s3.Client)(nil)
)

// Environments is env.Cloud and env.StandbyCloud over the Auto Scaling,
// ELBv2, RDS and S3 APIs. It finds resources by tag the way each service
// offers: Auto Scaling by a tag filter, ELBv2 by DescribeTags (20 ARNs a
// call), RDS by the TagList DescribeDBInstances returns, S3 by each
// bucket's tag set (S3 cannot list buckets by tag).
type Environments struct {
	asg    EnvASGAPI
	elb    EnvELBAPI
	rds    EnvRDSAPI
	s3     EnvS3API
	region string
}

var (
	_ env.Cloud        = (*Environments)(nil)
	_ env.StandbyCloud = (*Environments)(nil)
)

// NewEnvironments returns Environments over the given clients; region is
// the one buckets are looked for in.
func NewEnvironments(asg EnvASGAPI, elbAPI EnvELBAPI, rdsAPI EnvRDSAPI, s3API EnvS3API, region string) *Environments {
	return &Environments{asg: asg, elb: elbAPI, rds: rdsAPI, s3: s3API, region: region}
}

// TaggedGroups implements env.Cloud.
func (e *Environments) TaggedGroups(ctx context.Context, sel env.Selector) ([]env.Group, error) {
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(e.asg, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("tag:" + sel.Key), Values: []string{sel.Value}}},
	})
	var out []env.Group
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing groups: %w", translate(err))
		}
		for _, a := range page.AutoScalingGroups {
			g := envGroup(a)
			if !sel.Matches(g.Tags) {
				continue // a filter the endpoint ignored
			}
			hooks, err := e.hooks(ctx, g.Name)
			if err != nil {
				return nil, err
			}
			g.Hooks = hooks
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b env.Group) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func envGroup(a astypes.AutoScalingGroup) env.Group {
	g := env.Group{
		Name: aws.ToString(a.AutoScalingGroupName), Min: aws.ToInt32(a.MinSize), Max: aws.ToInt32(a.MaxSize),
		Desired: aws.ToInt32(a.DesiredCapacity), TargetGroups: a.TargetGroupARNs,
		LaunchConfiguration: aws.ToString(a.LaunchConfigurationName), Tags: map[string]string{}, Instances: []env.Instance{},
	}
	if lt := a.LaunchTemplate; lt != nil {
		g.Template = ledger.TemplateRef{ID: aws.ToString(lt.LaunchTemplateId), Name: aws.ToString(lt.LaunchTemplateName), Version: aws.ToString(lt.Version)}
	}
	for _, t := range a.Tags {
		g.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	for _, i := range a.Instances {
		g.Instances = append(g.Instances, env.Instance{ID: aws.ToString(i.InstanceId), Zone: aws.ToString(i.AvailabilityZone),
			Lifecycle: string(i.LifecycleState), Health: aws.ToString(i.HealthStatus)})
	}
	slices.SortFunc(g.Instances, func(a, b env.Instance) int { return strings.Compare(a.ID, b.ID) })
	return g
}

func (e *Environments) hooks(ctx context.Context, group string) ([]env.Hook, error) {
	out, err := e.asg.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String(group)})
	if err != nil {
		return nil, fmt.Errorf("listing lifecycle hooks of group %s: %w", group, translate(err))
	}
	var hooks []env.Hook
	for _, h := range out.LifecycleHooks {
		hooks = append(hooks, env.Hook{Name: aws.ToString(h.LifecycleHookName), Transition: aws.ToString(h.LifecycleTransition),
			Metadata: aws.ToString(h.NotificationMetadata)})
	}
	return hooks, nil
}

// elbTags returns the tags of each of arns.
func (e *Environments) elbTags(ctx context.Context, arns []string) (map[string]map[string]string, error) {
	return describeELBTags(ctx, e.elb, arns)
}

// TaggedLoadBalancers implements env.Cloud.
func (e *Environments) TaggedLoadBalancers(ctx context.Context, sel env.Selector) ([]env.LoadBalancer, error) {
	p := elb.NewDescribeLoadBalancersPaginator(e.elb, &elb.DescribeLoadBalancersInput{})
	var all []env.LoadBalancer
	var arns []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing load balancers: %w", translate(err))
		}
		for _, lb := range page.LoadBalancers {
			all = append(all, env.LoadBalancer{ARN: aws.ToString(lb.LoadBalancerArn), Name: aws.ToString(lb.LoadBalancerName), DNSName: aws.ToString(lb.DNSName)})
			arns = append(arns, aws.ToString(lb.LoadBalancerArn))
		}
	}
	tags, err := e.elbTags(ctx, arns)
	if err != nil {
		return nil, err
	}
	var out []env.LoadBalancer
	for _, lb := range all {
		if !sel.Matches(tags[lb.ARN]) {
			continue
		}
		if lb.Listeners, err = e.listeners(ctx, lb.ARN); err != nil {
			return nil, err
		}
		out = append(out, lb)
	}
	slices.SortFunc(out, func(a, b env.LoadBalancer) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (e *Environments) listeners(ctx context.Context, lbARN string) ([]env.Listener, error) {
	p := elb.NewDescribeListenersPaginator(e.elb, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)})
	var out []env.Listener
	var arns []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing the listeners of %s: %w", lbARN, translate(err))
		}
		for _, l := range page.Listeners {
			li := env.Listener{ARN: aws.ToString(l.ListenerArn), Protocol: string(l.Protocol), Port: aws.ToInt32(l.Port)}
			for _, a := range l.DefaultActions {
				if a.TargetGroupArn != nil {
					li.TargetGroup = aws.ToString(a.TargetGroupArn)
				} else if a.ForwardConfig != nil && len(a.ForwardConfig.TargetGroups) == 1 {
					li.TargetGroup = aws.ToString(a.ForwardConfig.TargetGroups[0].TargetGroupArn)
				}
			}
			out = append(out, li)
			arns = append(arns, li.ARN)
		}
	}
	tags, err := e.elbTags(ctx, arns)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Entry = tags[out[i].ARN][env.TagEntry] == "true"
	}
	slices.SortFunc(out, func(a, b env.Listener) int { return int(a.Port - b.Port) })
	return out, nil
}

// TaggedTargetGroups implements env.Cloud.
func (e *Environments) TaggedTargetGroups(ctx context.Context, sel env.Selector) ([]env.TargetGroup, error) {
	p := elb.NewDescribeTargetGroupsPaginator(e.elb, &elb.DescribeTargetGroupsInput{})
	var all []env.TargetGroup
	var arns []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing target groups: %w", translate(err))
		}
		for _, tg := range page.TargetGroups {
			all = append(all, env.TargetGroup{ARN: aws.ToString(tg.TargetGroupArn), Name: aws.ToString(tg.TargetGroupName)})
			arns = append(arns, aws.ToString(tg.TargetGroupArn))
		}
	}
	tags, err := e.elbTags(ctx, arns)
	if err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(all, func(tg env.TargetGroup) bool { return !sel.Matches(tags[tg.ARN]) })
	slices.SortFunc(out, func(a, b env.TargetGroup) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// TaggedDBInstances implements env.Cloud.
func (e *Environments) TaggedDBInstances(ctx context.Context, sel env.Selector) ([]env.DBInstance, error) {
	p := rds.NewDescribeDBInstancesPaginator(e.rds, &rds.DescribeDBInstancesInput{})
	var out []env.DBInstance
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing RDS instances: %w", translate(err))
		}
		for _, d := range page.DBInstances {
			tags := map[string]string{}
			for _, t := range d.TagList {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			if !sel.Matches(tags) {
				continue
			}
			di := env.DBInstance{ID: aws.ToString(d.DBInstanceIdentifier), Engine: aws.ToString(d.Engine), Status: aws.ToString(d.DBInstanceStatus)}
			if d.Endpoint != nil && d.Endpoint.Address != nil {
				di.Endpoint = fmt.Sprintf("%s:%d", aws.ToString(d.Endpoint.Address), aws.ToInt32(d.Endpoint.Port))
			}
			out = append(out, di)
		}
	}
	slices.SortFunc(out, func(a, b env.DBInstance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// TaggedBuckets implements env.Cloud. Buckets of other regions are
// skipped: their tags must be read from their own region.
func (e *Environments) TaggedBuckets(ctx context.Context, sel env.Selector) ([]env.Bucket, error) {
	p := s3.NewListBucketsPaginator(e.s3, &s3.ListBucketsInput{})
	var out []env.Bucket
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing buckets: %w", translate(err))
		}
		for _, b := range page.Buckets {
			name := aws.ToString(b.Name)
			if r := aws.ToString(b.BucketRegion); r != "" && e.region != "" && r != e.region {
				continue
			}
			res, err := e.s3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(name)})
			var ae smithy.APIError
			if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchTagSet" || ae.ErrorCode() == "NoSuchBucket") {
				continue // untagged, or deleted since the listing
			}
			if err != nil {
				return nil, fmt.Errorf("reading the tags of bucket %s: %w", name, translate(err))
			}
			tags := map[string]string{}
			for _, t := range res.TagSet {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			if sel.Matches(tags) {
				out = append(out, env.Bucket{Name: name})
			}
		}
	}
	slices.SortFunc(out, func(a, b env.Bucket) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DescribeGroup implements env.StandbyCloud.
func (e *Environments) DescribeGroup(ctx context.Context, name string) (env.Group, error) {
	out, err := e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		return env.Group{}, fmt.Errorf("describing group %s: %w", name, translate(err))
	}
	for _, a := range out.AutoScalingGroups {
		if aws.ToString(a.AutoScalingGroupName) == name {
			return envGroup(a), nil
		}
	}
	return env.Group{}, fmt.Errorf("describing group %s: %w", name, handover.ErrNotFound)
}

// SetCapacity implements env.StandbyCloud.
func (e *Environments) SetCapacity(ctx context.Context, group string, minSize, desired int32) error {
	in := &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(group), MinSize: aws.Int32(minSize)}
	if desired >= 0 {
		in.DesiredCapacity = aws.Int32(desired)
	}
	if _, err := e.asg.UpdateAutoScalingGroup(ctx, in); err != nil {
		return fmt.Errorf("updating the capacity of group %s: %w", group, translate(err))
	}
	return nil
}

// EnterStandby implements env.StandbyCloud.
func (e *Environments) EnterStandby(ctx context.Context, group string, ids []string) error {
	_, err := e.asg.EnterStandby(ctx, &autoscaling.EnterStandbyInput{AutoScalingGroupName: aws.String(group), InstanceIds: ids,
		ShouldDecrementDesiredCapacity: aws.Bool(true)})
	if err != nil {
		return fmt.Errorf("EnterStandby of %d instances in group %s: %w", len(ids), group, translate(err))
	}
	return nil
}

// ExitStandby implements env.StandbyCloud.
func (e *Environments) ExitStandby(ctx context.Context, group string, ids []string) error {
	if _, err := e.asg.ExitStandby(ctx, &autoscaling.ExitStandbyInput{AutoScalingGroupName: aws.String(group), InstanceIds: ids}); err != nil {
		return fmt.Errorf("ExitStandby of %d instances in group %s: %w", len(ids), group, translate(err))
	}
	return nil
}
