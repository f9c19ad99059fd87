package awscloud

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/handover-dev/handover/internal/env"
)

// MigrateELBAPI is the subset of *elasticloadbalancingv2.Client that a
// migration calls.
type MigrateELBAPI interface {
	DescribeListeners(ctx context.Context, in *elb.DescribeListenersInput, opts ...func(*elb.Options)) (*elb.DescribeListenersOutput, error)
	CreateListener(ctx context.Context, in *elb.CreateListenerInput, opts ...func(*elb.Options)) (*elb.CreateListenerOutput, error)
	DeleteListener(ctx context.Context, in *elb.DeleteListenerInput, opts ...func(*elb.Options)) (*elb.DeleteListenerOutput, error)
	ModifyListener(ctx context.Context, in *elb.ModifyListenerInput, opts ...func(*elb.Options)) (*elb.ModifyListenerOutput, error)
	DescribeTargetHealth(ctx context.Context, in *elb.DescribeTargetHealthInput, opts ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error)
	AddTags(ctx context.Context, in *elb.AddTagsInput, opts ...func(*elb.Options)) (*elb.AddTagsOutput, error)
	RemoveTags(ctx context.Context, in *elb.RemoveTagsInput, opts ...func(*elb.Options)) (*elb.RemoveTagsOutput, error)
}

// MigrateASGAPI is the subset of *autoscaling.Client a migration's
// attach and re-tag call.
type MigrateASGAPI interface {
	AttachLoadBalancerTargetGroups(ctx context.Context, in *autoscaling.AttachLoadBalancerTargetGroupsInput, opts ...func(*autoscaling.Options)) (*autoscaling.AttachLoadBalancerTargetGroupsOutput, error)
	CreateOrUpdateTags(ctx context.Context, in *autoscaling.CreateOrUpdateTagsInput, opts ...func(*autoscaling.Options)) (*autoscaling.CreateOrUpdateTagsOutput, error)
	DeleteTags(ctx context.Context, in *autoscaling.DeleteTagsInput, opts ...func(*autoscaling.Options)) (*autoscaling.DeleteTagsOutput, error)
}

// MigrateEC2API is the subset of *ec2.Client a migration's re-tag calls
// (launch templates).
type MigrateEC2API interface {
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, opts ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, opts ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
}

// MigrateRDSAPI is the subset of *rds.Client a migration's re-tag calls.
type MigrateRDSAPI interface {
	DescribeDBInstances(ctx context.Context, in *rds.DescribeDBInstancesInput, opts ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
	AddTagsToResource(ctx context.Context, in *rds.AddTagsToResourceInput, opts ...func(*rds.Options)) (*rds.AddTagsToResourceOutput, error)
	RemoveTagsFromResource(ctx context.Context, in *rds.RemoveTagsFromResourceInput, opts ...func(*rds.Options)) (*rds.RemoveTagsFromResourceOutput, error)
}

// MigrateS3API is the subset of *s3.Client a migration's re-tag calls.
type MigrateS3API interface {
	GetBucketTagging(ctx context.Context, in *s3.GetBucketTaggingInput, opts ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error)
	PutBucketTagging(ctx context.Context, in *s3.PutBucketTaggingInput, opts ...func(*s3.Options)) (*s3.PutBucketTaggingOutput, error)
}

var (
	_ MigrateELBAPI = (*elb.Client)(nil)
	_ MigrateASGAPI = (*autoscaling.Client)(nil)
	_ MigrateEC2API = (*ec2.Client)(nil)
	_ MigrateRDSAPI = (*rds.Client)(nil)
	_ MigrateS3API  = (*s3.Client)(nil)
)

// Migrator is env.MigrateCloud over aws-sdk-go-v2.
type Migrator struct {
	elb MigrateELBAPI
	asg MigrateASGAPI
	ec2 MigrateEC2API
	rds MigrateRDSAPI
	s3  MigrateS3API
}

var _ env.MigrateCloud = (*Migrator)(nil)

// NewMigrator returns a Migrator over the given clients.
func NewMigrator(elbAPI MigrateELBAPI, asg MigrateASGAPI, ec2API MigrateEC2API, rdsAPI MigrateRDSAPI, s3API MigrateS3API) *Migrator {
	return &Migrator{elb: elbAPI, asg: asg, ec2: ec2API, rds: rdsAPI, s3: s3API}
}

// AttachTargetGroup implements env.MigrateCloud: one
// AttachLoadBalancerTargetGroups call, which Auto Scaling makes a no-op for
// an attached target group.
func (m *Migrator) AttachTargetGroup(ctx context.Context, group, tgARN string) error {
	if _, err := m.asg.AttachLoadBalancerTargetGroups(ctx, &autoscaling.AttachLoadBalancerTargetGroupsInput{
		AutoScalingGroupName: aws.String(group), TargetGroupARNs: []string{tgARN}}); err != nil {
		return fmt.Errorf("attaching %s to group %s: %w", tgARN, group, translate(err))
	}
	return nil
}

// TargetHealth implements env.MigrateCloud.
func (m *Migrator) TargetHealth(ctx context.Context, tgARN string) (map[string]string, error) {
	out, err := m.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tgARN)})
	if err != nil {
		return nil, fmt.Errorf("describing the health of %s: %w", tgARN, translate(err))
	}
	h := map[string]string{}
	for _, d := range out.TargetHealthDescriptions {
		if d.Target == nil {
			continue
		}
		st := ""
		if d.TargetHealth != nil {
			st = string(d.TargetHealth.State)
		}
		h[aws.ToString(d.Target.Id)] = st
	}
	return h, nil
}

// tempListenerPorts are the ports CreateTempListener tries, in order: high,
// so an application's own listeners (80, 443, 8080...) are not in the way.
// The temporary listener lives from the entry's health check to just
// after the switch; a load balancer whose security group admits nobody
// on it keeps it private.
var tempListenerPorts = func() []int32 {
	var ps []int32
	for p := int32(64990); p < 65010; p++ {
		ps = append(ps, p)
	}
	return ps
}()

// CreateTempListener implements env.MigrateCloud.
func (m *Migrator) CreateTempListener(ctx context.Context, lbARN, tgARN string, tags map[string]string) (string, error) {
	used := map[int32]bool{}
	p := elb.NewDescribeListenersPaginator(m.elb, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("describing the listeners of %s: %w", lbARN, translate(err))
		}
		for _, l := range page.Listeners {
			for _, a := range l.DefaultActions {
				if aws.ToString(a.TargetGroupArn) == tgARN {
					return aws.ToString(l.ListenerArn), nil // made by a killed run
				}
			}
			used[aws.ToInt32(l.Port)] = true
		}
	}
	for _, port := range tempListenerPorts {
		if used[port] {
			continue
		}
		out, err := m.elb.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(lbARN), Protocol: elbtypes.ProtocolEnumHttp,
			Port: aws.Int32(port), Tags: elbTags(tags),
			DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgARN)}}})
		if isCode(err, "DuplicateListener") {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("creating a temporary listener on port %d of %s: %w", port, lbARN, translate(err))
		}
		if len(out.Listeners) != 1 {
			return "", fmt.Errorf("creating a temporary listener on %s: ELBv2 returned %d listeners", lbARN, len(out.Listeners))
		}
		return aws.ToString(out.Listeners[0].ListenerArn), nil
	}
	return "", fmt.Errorf("every port from %d to %d of %s has a listener: free one for the migration's temporary listener", tempListenerPorts[0], tempListenerPorts[len(tempListenerPorts)-1], lbARN)
}

// DeleteListener implements env.MigrateCloud.
func (m *Migrator) DeleteListener(ctx context.Context, arn string) error {
	_, err := m.elb.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: aws.String(arn)})
	if err != nil && !isCode(err, "ListenerNotFound") {
		return fmt.Errorf("deleting listener %s: %w", arn, translate(err))
	}
	return nil
}

// SwitchListener implements env.MigrateCloud: one ModifyListener call,
// which ELBv2 applies to every new request at once.
func (m *Migrator) SwitchListener(ctx context.Context, listenerARN, tgARN string) error {
	_, err := m.elb.ModifyListener(ctx, &elb.ModifyListenerInput{ListenerArn: aws.String(listenerARN),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgARN)}}})
	if err != nil {
		return fmt.Errorf("modifying listener %s to forward to %s: %w", listenerARN, tgARN, translate(err))
	}
	return nil
}

// SetTags implements env.MigrateCloud.
func (m *Migrator) SetTags(ctx context.Context, kind, id string, set map[string]string, remove []string) error {
	remove = slices.DeleteFunc(slices.Clone(remove), func(k string) bool { _, ok := set[k]; return ok })
	switch kind {
	case env.KindGroup:
		var ts []astypes.Tag
		for _, k := range slices.Sorted(maps.Keys(set)) {
			ts = append(ts, astypes.Tag{ResourceId: aws.String(id), ResourceType: aws.String("auto-scaling-group"), Key: aws.String(k), Value: aws.String(set[k]), PropagateAtLaunch: aws.Bool(true)})
		}
		if len(ts) > 0 {
			if _, err := m.asg.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: ts}); err != nil {
				return fmt.Errorf("tagging group %s: %w", id, translate(err))
			}
		}
		var del []astypes.Tag
		for _, k := range remove {
			del = append(del, astypes.Tag{ResourceId: aws.String(id), ResourceType: aws.String("auto-scaling-group"), Key: aws.String(k)})
		}
		if len(del) > 0 {
			if _, err := m.asg.DeleteTags(ctx, &autoscaling.DeleteTagsInput{Tags: del}); err != nil {
				return fmt.Errorf("untagging group %s: %w", id, translate(err))
			}
		}
	case env.KindLaunchTemplate:
		var ts []ec2types.Tag
		for _, k := range slices.Sorted(maps.Keys(set)) {
			ts = append(ts, ec2types.Tag{Key: aws.String(k), Value: aws.String(set[k])})
		}
		if len(ts) > 0 {
			if _, err := m.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: ts}); err != nil {
				return fmt.Errorf("tagging launch template %s: %w", id, translate(err))
			}
		}
		var del []ec2types.Tag
		for _, k := range remove {
			del = append(del, ec2types.Tag{Key: aws.String(k)})
		}
		if len(del) > 0 {
			if _, err := m.ec2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{id}, Tags: del}); err != nil {
				return fmt.Errorf("untagging launch template %s: %w", id, translate(err))
			}
		}
	case env.KindLoadBalancer:
		if err := m.elbSetTags(ctx, id, set, remove); err != nil {
			return err
		}
		p := elb.NewDescribeListenersPaginator(m.elb, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(id)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("describing the listeners of %s: %w", id, translate(err))
			}
			for _, l := range page.Listeners {
				if err := m.elbSetTags(ctx, aws.ToString(l.ListenerArn), set, remove); err != nil {
					return err
				}
			}
		}
	case env.KindTargetGroup, env.KindListener:
		return m.elbSetTags(ctx, id, set, remove)
	case env.KindRDS:
		out, err := m.rds.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
		if err != nil {
			return fmt.Errorf("describing RDS instance %s: %w", id, rdsErr(err))
		}
		if len(out.DBInstances) != 1 {
			return fmt.Errorf("describing RDS instance %s: RDS returned %d instances", id, len(out.DBInstances))
		}
		arn := out.DBInstances[0].DBInstanceArn
		if len(set) > 0 {
			if _, err := m.rds.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: arn, Tags: rdsTags(set)}); err != nil {
				return fmt.Errorf("tagging RDS instance %s: %w", id, rdsErr(err))
			}
		}
		if len(remove) > 0 {
			if _, err := m.rds.RemoveTagsFromResource(ctx, &rds.RemoveTagsFromResourceInput{ResourceName: arn, TagKeys: remove}); err != nil {
				return fmt.Errorf("untagging RDS instance %s: %w", id, rdsErr(err))
			}
		}
	case env.KindBucket:
		have := map[string]string{}
		out, err := m.s3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(id)})
		switch {
		case err == nil:
			for _, t := range out.TagSet {
				have[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
		case !isCode(err, "NoSuchTagSet"):
			return fmt.Errorf("reading the tags of bucket %s: %w", id, translate(err))
		}
		maps.Copy(have, set)
		for _, k := range remove {
			delete(have, k)
		}
		var ts []s3types.Tag
		for _, k := range slices.Sorted(maps.Keys(have)) {
			ts = append(ts, s3types.Tag{Key: aws.String(k), Value: aws.String(have[k])})
		}
		// S3 replaces a bucket's whole tag set: read, changed, written.
		if _, err := m.s3.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(id), Tagging: &s3types.Tagging{TagSet: ts}}); err != nil {
			return fmt.Errorf("tagging bucket %s: %w", id, translate(err))
		}
	default:
		return fmt.Errorf("re-tagging %s %s: no tag calls for resources of kind %q", kind, id, kind)
	}
	return nil
}

func (m *Migrator) elbSetTags(ctx context.Context, arn string, set map[string]string, remove []string) error {
	if len(set) > 0 {
		if _, err := m.elb.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{arn}, Tags: elbTags(set)}); err != nil {
			return fmt.Errorf("tagging %s: %w", arn, translate(err))
		}
	}
	if len(remove) > 0 {
		_, err := m.elb.RemoveTags(ctx, &elb.RemoveTagsInput{ResourceArns: []string{arn}, TagKeys: remove})
		// Removing a tag the resource lacks is fine on ELBv2; a
		// resource gone is an error the caller should see.
		if err != nil {
			return fmt.Errorf("untagging %s: %w", arn, translate(err))
		}
	}
	return nil
}
