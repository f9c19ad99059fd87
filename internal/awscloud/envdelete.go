package awscloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/handover"
)

// DeleteEC2API is the subset of *ec2.Client that EnvDeleter calls.
type DeleteEC2API interface {
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, opts ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DeleteLaunchTemplate(ctx context.Context, in *ec2.DeleteLaunchTemplateInput, opts ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error)
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, opts ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, opts ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, opts ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
}

// DeleteASGAPI is the subset of *autoscaling.Client that EnvDeleter calls.
type DeleteASGAPI interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DeleteAutoScalingGroup(ctx context.Context, in *autoscaling.DeleteAutoScalingGroupInput, opts ...func(*autoscaling.Options)) (*autoscaling.DeleteAutoScalingGroupOutput, error)
}

// DeleteELBAPI is the subset of *elasticloadbalancingv2.Client that
// EnvDeleter calls.
type DeleteELBAPI interface {
	DescribeLoadBalancers(ctx context.Context, in *elb.DescribeLoadBalancersInput, opts ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error)
	DescribeTargetGroups(ctx context.Context, in *elb.DescribeTargetGroupsInput, opts ...func(*elb.Options)) (*elb.DescribeTargetGroupsOutput, error)
	DescribeListeners(ctx context.Context, in *elb.DescribeListenersInput, opts ...func(*elb.Options)) (*elb.DescribeListenersOutput, error)
	DescribeTags(ctx context.Context, in *elb.DescribeTagsInput, opts ...func(*elb.Options)) (*elb.DescribeTagsOutput, error)
	DeleteListener(ctx context.Context, in *elb.DeleteListenerInput, opts ...func(*elb.Options)) (*elb.DeleteListenerOutput, error)
	DeleteLoadBalancer(ctx context.Context, in *elb.DeleteLoadBalancerInput, opts ...func(*elb.Options)) (*elb.DeleteLoadBalancerOutput, error)
	DeleteTargetGroup(ctx context.Context, in *elb.DeleteTargetGroupInput, opts ...func(*elb.Options)) (*elb.DeleteTargetGroupOutput, error)
}

// DeleteRDSAPI is the subset of *rds.Client that EnvDeleter calls.
type DeleteRDSAPI interface {
	DescribeDBInstances(ctx context.Context, in *rds.DescribeDBInstancesInput, opts ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
	DeleteDBInstance(ctx context.Context, in *rds.DeleteDBInstanceInput, opts ...func(*rds.Options)) (*rds.DeleteDBInstanceOutput, error)
	DescribeDBSnapshots(ctx context.Context, in *rds.DescribeDBSnapshotsInput, opts ...func(*rds.Options)) (*rds.DescribeDBSnapshotsOutput, error)
	DeleteDBSnapshot(ctx context.Context, in *rds.DeleteDBSnapshotInput, opts ...func(*rds.Options)) (*rds.DeleteDBSnapshotOutput, error)
}

// DeleteS3API is the subset of *s3.Client that EnvDeleter calls.
type DeleteS3API interface {
	ListBuckets(ctx context.Context, in *s3.ListBucketsInput, opts ...func(*s3.Options)) (*s3.ListBucketsOutput, error)
	GetBucketTagging(ctx context.Context, in *s3.GetBucketTaggingInput, opts ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error)
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, opts ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	DeleteBucket(ctx context.Context, in *s3.DeleteBucketInput, opts ...func(*s3.Options)) (*s3.DeleteBucketOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

var (
	_ DeleteEC2API = (*ec2.Client)(nil)
	_ DeleteASGAPI = (*autoscaling.Client)(nil)
	_ DeleteELBAPI = (*elb.Client)(nil)
	_ DeleteRDSAPI = (*rds.Client)(nil)
	_ DeleteS3API  = (*s3.Client)(nil)
)

// EnvDeleter is env.DeleteCloud over aws-sdk-go-v2.
//
// Each delete treats the service's not-found answer as done, and waits
// (reading the resource every Poll) until it is gone. A delete refused
// because something still depends on the resource, or because it is busy
// (ResourceInUse, DependencyViolation, VolumeInUse, an RDS instance still
// being restored, an instance still terminating), or throttled, is
// retried with a backoff doubling from Poll to 16 Polls. Past Wait, a
// delete fails saying what was still refused; run again, it goes on.
type EnvDeleter struct {
	ec2    DeleteEC2API
	asg    DeleteASGAPI
	elb    DeleteELBAPI
	rds    DeleteRDSAPI
	s3     DeleteS3API
	region string
	clk    clock.Clock

	// Poll is how often a delete's end is read, and its first backoff.
	Poll time.Duration
	// Wait is how long one delete keeps retrying and waiting.
	Wait time.Duration
	// Sleep waits d or until ctx ends (tests advance a fake clock).
	Sleep func(ctx context.Context, d time.Duration) error
}

var _ env.DeleteCloud = (*EnvDeleter)(nil)

// NewEnvDeleter returns an EnvDeleter over the given clients; region is
// the one its buckets are looked for in. It polls every second and waits
// up to 20 minutes for one delete (an RDS instance on AWS takes minutes).
func NewEnvDeleter(ec2API DeleteEC2API, asg DeleteASGAPI, elbAPI DeleteELBAPI, rdsAPI DeleteRDSAPI, s3API DeleteS3API, region string, clk clock.Clock) *EnvDeleter {
	return &EnvDeleter{ec2: ec2API, asg: asg, elb: elbAPI, rds: rdsAPI, s3: s3API, region: region, clk: clk,
		Poll: time.Second, Wait: 20 * time.Minute, Sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryCodes are refusals that end by themselves: a dependent still being
// deleted, a resource still busy.
var retryCodes = []string{
	"ResourceInUse", "DependencyViolation", "VolumeInUse", "IncorrectState", "ScalingActivityInProgress",
	"InvalidDBInstanceState", "InvalidDBSnapshotState", "BucketNotEmpty", "OperationAborted",
	"InvalidSnapshot.InUse", "InvalidVolume.InUse", "ResourceInUseFault",
}

// retryable reports whether err is a refusal that a later try may not meet.
func retryable(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && slices.Contains(retryCodes, ae.ErrorCode()) {
		return true
	}
	return errors.Is(err, handover.ErrThrottled) || errors.Is(err, handover.ErrUnavailable) || errors.Is(classify(err), handover.ErrThrottled) || errors.Is(classify(err), handover.ErrUnavailable)
}

// until calls try until it reports done. A retryable error backs off
// (doubling from Poll to 16 Polls); done false without error is a wait for
// the resource to go, read again every Poll. Past Wait it fails with the
// last refusal.
func (d *EnvDeleter) until(ctx context.Context, what string, try func() (bool, error)) error {
	deadline := d.clk.Now().Add(d.Wait)
	backoff := d.Poll
	for {
		done, err := try()
		if err == nil && done {
			return nil
		}
		if err != nil && !retryable(err) {
			return err
		}
		if !d.clk.Now().Before(deadline) {
			if err != nil {
				return fmt.Errorf("%s: still refused after %s: %w", what, d.Wait, err)
			}
			return fmt.Errorf("%s: still not gone after %s (run again to go on waiting)", what, d.Wait)
		}
		wait := d.Poll
		if err != nil {
			wait, backoff = backoff, min(backoff*2, 16*d.Poll)
		}
		wait = min(wait, deadline.Sub(d.clk.Now())) // one last try at the deadline
		if err := d.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// OwnedResources implements env.DeleteCloud: every resource tagged
// handover:env-op=opID, each service asked the way it finds tags (Auto
// Scaling and EC2 by filters, ELBv2 by DescribeTags, RDS by the TagList
// it returns, S3 by each bucket's tag set).
func (d *EnvDeleter) OwnedResources(ctx context.Context, opID string) ([]env.Owned, error) {
	if opID == "" {
		return nil, errors.New("listing an operation's resources: the operation id is empty (it would match every resource with an empty tag)")
	}
	sel := env.Selector{Key: env.TagEnvOp, Value: opID}
	rs, err := d.tagged(ctx, tagMatch{
		asg: []astypes.Filter{{Name: aws.String("tag:" + sel.Key), Values: []string{sel.Value}}},
		ec2: []ec2types.Filter{{Name: aws.String("tag:" + sel.Key), Values: []string{sel.Value}}},
		op: func(tags map[string]string) (string, bool) {
			return opID, sel.Matches(tags)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("listing the resources of operation %s: %w", opID, err)
	}
	out := make([]env.Owned, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Owned)
	}
	env.SortForDelete(out)
	return out, nil
}

// EnvOpResources lists every resource tagged handover:env-op, whatever
// the operation: what the sweeper judges. A service that answers it is
// unavailable (a local cloud without RDS) is skipped, said in the
// warnings: the sweeper then deletes none of its resources.
func (d *EnvDeleter) EnvOpResources(ctx context.Context) ([]env.OpResource, []string, error) {
	var warnings []string
	rs, err := d.tagged(ctx, tagMatch{
		skip: func(err error) bool {
			if errors.Is(err, handover.ErrUnavailable) {
				warnings = append(warnings, err.Error())
				return true
			}
			return false
		},
		// Auto Scaling filters by tag value only with tag:KEY; tag-key is
		// EC2's. Groups are few: all are read and matched here.
		ec2: []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{env.TagEnvOp}}},
		op: func(tags map[string]string) (string, bool) {
			op, ok := tags[env.TagEnvOp]
			return op, ok && op != ""
		},
	})
	if err != nil {
		return nil, warnings, fmt.Errorf("listing the resources tagged %s: %w", env.TagEnvOp, err)
	}
	return rs, warnings, nil
}

// tagMatch says which resources a listing takes: the filters each service
// narrows by (nil: none), and op, which says whose a resource is by its
// tags.
type tagMatch struct {
	asg []astypes.Filter
	ec2 []ec2types.Filter
	op  func(tags map[string]string) (string, bool)
	// skip, when set, says whether a service's listing error leaves that
	// service out instead of failing the listing.
	skip func(error) bool
}

func (d *EnvDeleter) tagged(ctx context.Context, m tagMatch) ([]env.OpResource, error) {
	var out []env.OpResource
	for _, f := range []func(context.Context, tagMatch) ([]env.OpResource, error){
		d.ownedGroups, d.ownedTemplates, d.ownedELB, d.ownedRDS, d.ownedBuckets, d.ownedEBS,
	} {
		rs, err := f(ctx, m)
		if err != nil && m.skip != nil && m.skip(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// take adds o to out when its tags are m's.
func (m tagMatch) take(out []env.OpResource, tags map[string]string, o env.Owned) []env.OpResource {
	if op, ok := m.op(tags); ok {
		out = append(out, env.OpResource{Owned: o, Op: op})
	}
	return out
}

func (d *EnvDeleter) ownedGroups(ctx context.Context, m tagMatch) ([]env.OpResource, error) {
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(d.asg, &autoscaling.DescribeAutoScalingGroupsInput{Filters: m.asg})
	var out []env.OpResource
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing groups: %w", translate(err))
		}
		for _, g := range page.AutoScalingGroups {
			tags := map[string]string{}
			for _, t := range g.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			n := aws.ToString(g.AutoScalingGroupName)
			out = m.take(out, tags, env.Owned{Kind: env.KindGroup, ID: n, Name: n})
		}
	}
	return out, nil
}

func (d *EnvDeleter) ownedTemplates(ctx context.Context, m tagMatch) ([]env.OpResource, error) {
	p := ec2.NewDescribeLaunchTemplatesPaginator(d.ec2, &ec2.DescribeLaunchTemplatesInput{Filters: m.ec2})
	var out []env.OpResource
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing launch templates: %w", translate(err))
		}
		for _, lt := range page.LaunchTemplates {
			out = m.take(out, fromTags(lt.Tags), env.Owned{Kind: env.KindLaunchTemplate, ID: aws.ToString(lt.LaunchTemplateId), Name: aws.ToString(lt.LaunchTemplateName)})
		}
	}
	return out, nil
}

func (d *EnvDeleter) ownedEBS(ctx context.Context, m tagMatch) ([]env.OpResource, error) {
	var out []env.OpResource
	sp := ec2.NewDescribeSnapshotsPaginator(d.ec2, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: m.ec2})
	for sp.HasMorePages() {
		page, err := sp.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing snapshots: %w", translate(err))
		}
		for _, s := range page.Snapshots {
			id := aws.ToString(s.SnapshotId)
			out = m.take(out, fromTags(s.Tags), env.Owned{Kind: env.KindEBSSnapshot, ID: id, Name: id})
		}
	}
	vp := ec2.NewDescribeVolumesPaginator(d.ec2, &ec2.DescribeVolumesInput{Filters: m.ec2})
	for vp.HasMorePages() {
		page, err := vp.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing volumes: %w", translate(err))
		}
		for _, v := range page.Volumes {
			if v.State != ec2types.VolumeStateDeleted {
				id := aws.ToString(v.VolumeId)
				out = m.take(out, fromTags(v.Tags), env.Owned{Kind: env.KindVolume, ID: id, Name: id})
			}
		}
	}
	return out, nil
}

func (d *EnvDeleter) ownedELB(ctx context.Context, m tagMatch) ([]env.OpResource, error) {
	var all []env.Owned
	var arns []string
	lp := elb.NewDescribeLoadBalancersPaginator(d.elb, &elb.DescribeLoadBalancersInput{})
	for lp.HasMorePages() {
		page, err := lp.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing load balancers: %w", translate(err))
		}
		for _, lb := range page.LoadBalancers {
			arn := aws.ToString(lb.LoadBalancerArn)
			all = append(all, env.Owned{Kind: env.KindLoadBalancer, ID: arn, Name: aws.ToString(lb.LoadBalancerName)})
			arns = append(arns, arn)
		}
	}
	tp := elb.NewDescribeTargetGroupsPaginator(d.elb, &elb.DescribeTargetGroupsInput{})
	for tp.HasMorePages() {
		page, err := tp.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing target groups: %w", translate(err))
		}
		for _, tg := range page.TargetGroups {
			arn := aws.ToString(tg.TargetGroupArn)
			all = append(all, env.Owned{Kind: env.KindTargetGroup, ID: arn, Name: aws.ToString(tg.TargetGroupName)})
			arns = append(arns, arn)
		}
	}
	tags, err := describeELBTags(ctx, d.elb, arns)
	if err != nil {
		return nil, err
	}
	var out []env.OpResource
	for _, o := range all {
		out = m.take(out, tags[o.ID], o)
	}
	return out, nil
}

// elbTagger is ELBv2's DescribeTags.
type elbTagger interface {
	DescribeTags(ctx context.Context, in *elb.DescribeTagsInput, opts ...func(*elb.Options)) (*elb.DescribeTagsOutput, error)
}

// describeELBTags returns the tags of each of arns, asking DescribeTags 20
// ARNs at a time (its limit).
func describeELBTags(ctx context.Context, c elbTagger, arns []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for chunk := range slices.Chunk(arns, 20) {
		res, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: chunk})
		if err != nil {
			return nil, fmt.Errorf("describing the tags of %d load balancer resources: %w", len(chunk), translate(err))
		}
		for _, t := range res.TagDescriptions {
			m := map[string]string{}
			for _, tag := range t.Tags {
				m[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
			out[aws.ToString(t.ResourceArn)] = m
		}
	}
	return out, nil
}

func (d *EnvDeleter) ownedRDS(ctx context.Context, m tagMatch) ([]env.OpResource, error) {
	var out []env.OpResource
	ip := rds.NewDescribeDBInstancesPaginator(d.rds, &rds.DescribeDBInstancesInput{})
	for ip.HasMorePages() {
		page, err := ip.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing RDS instances: %w", translate(err))
		}
		for _, i := range page.DBInstances {
			tags := map[string]string{}
			for _, t := range i.TagList {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			id := aws.ToString(i.DBInstanceIdentifier)
			out = m.take(out, tags, env.Owned{Kind: env.KindRDS, ID: id, Name: id})
		}
	}
	sp := rds.NewDescribeDBSnapshotsPaginator(d.rds, &rds.DescribeDBSnapshotsInput{SnapshotType: aws.String("manual")})
	for sp.HasMorePages() {
		page, err := sp.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing RDS snapshots: %w", translate(err))
		}
		for _, s := range page.DBSnapshots {
			tags := map[string]string{}
			for _, t := range s.TagList {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			id := aws.ToString(s.DBSnapshotIdentifier)
			out = m.take(out, tags, env.Owned{Kind: env.KindRDSSnapshot, ID: id, Name: id})
		}
	}
	return out, nil
}

func (d *EnvDeleter) ownedBuckets(ctx context.Context, m tagMatch) ([]env.OpResource, error) {
	p := s3.NewListBucketsPaginator(d.s3, &s3.ListBucketsInput{})
	var out []env.OpResource
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing buckets: %w", translate(err))
		}
		for _, b := range page.Buckets {
			name := aws.ToString(b.Name)
			if r := aws.ToString(b.BucketRegion); r != "" && d.region != "" && r != d.region {
				continue
			}
			res, err := d.s3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(name)})
			if isCode(err, "NoSuchTagSet") || isCode(err, "NoSuchBucket") {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading the tags of bucket %s: %w", name, translate(err))
			}
			tags := map[string]string{}
			for _, t := range res.TagSet {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			out = m.take(out, tags, env.Owned{Kind: env.KindBucket, ID: name, Name: name})
		}
	}
	return out, nil
}

// DeleteGroup implements env.DeleteCloud.
func (d *EnvDeleter) DeleteGroup(ctx context.Context, name string) error {
	asked := false
	return d.until(ctx, "deleting group "+name, func() (bool, error) {
		out, err := d.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		if err != nil {
			return false, translate(err)
		}
		if !slices.ContainsFunc(out.AutoScalingGroups, func(g astypes.AutoScalingGroup) bool { return aws.ToString(g.AutoScalingGroupName) == name }) {
			return true, nil
		}
		if asked {
			return false, nil // being deleted: its instances terminate first
		}
		_, err = d.asg.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String(name), ForceDelete: aws.Bool(true)})
		if err != nil && !groupGone(err) {
			return false, translate(err)
		}
		asked = true
		return false, nil
	})
}

// groupGone reports Auto Scaling's answer for a group that is not there
// (a ValidationError naming it).
func groupGone(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && (strings.Contains(ae.ErrorMessage(), "not found") || strings.Contains(ae.ErrorMessage(), "does not exist"))
}

// DeleteLaunchTemplate implements env.DeleteCloud.
func (d *EnvDeleter) DeleteLaunchTemplate(ctx context.Context, id string) error {
	return d.until(ctx, "deleting launch template "+id, func() (bool, error) {
		_, err := d.ec2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(id)})
		if err == nil || errors.Is(classify(err), handover.ErrNotFound) {
			return true, nil
		}
		return false, translate(err)
	})
}

// DeleteLoadBalancer implements env.DeleteCloud.
func (d *EnvDeleter) DeleteLoadBalancer(ctx context.Context, arn string) error {
	return d.until(ctx, "deleting load balancer "+arn, func() (bool, error) {
		_, err := d.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{arn}})
		if isCode(err, "LoadBalancerNotFound") {
			return true, nil
		}
		if err != nil {
			return false, translate(err)
		}
		// Listeners first: deleting the load balancer would take them, but
		// one by one a failure names the listener.
		p := elb.NewDescribeListenersPaginator(d.elb, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(arn)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if isCode(err, "LoadBalancerNotFound") {
				return true, nil
			}
			if err != nil {
				return false, fmt.Errorf("describing its listeners: %w", translate(err))
			}
			for _, l := range page.Listeners {
				_, err := d.elb.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: l.ListenerArn})
				if err != nil && !isCode(err, "ListenerNotFound") {
					return false, fmt.Errorf("deleting listener %s: %w", aws.ToString(l.ListenerArn), translate(err))
				}
			}
		}
		if _, err := d.elb.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(arn)}); err != nil && !isCode(err, "LoadBalancerNotFound") {
			return false, translate(err)
		}
		_, err = d.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{arn}})
		if isCode(err, "LoadBalancerNotFound") {
			return true, nil
		}
		return false, translate(err)
	})
}

// DeleteTargetGroup implements env.DeleteCloud.
func (d *EnvDeleter) DeleteTargetGroup(ctx context.Context, arn string) error {
	return d.until(ctx, "deleting target group "+arn, func() (bool, error) {
		_, err := d.elb.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(arn)})
		if err != nil && !isCode(err, "TargetGroupNotFound") {
			return false, translate(err)
		}
		_, err = d.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{arn}})
		if isCode(err, "TargetGroupNotFound") {
			return true, nil
		}
		return false, translate(err)
	})
}

// DeleteDBInstance implements env.DeleteCloud.
func (d *EnvDeleter) DeleteDBInstance(ctx context.Context, id, finalSnapshot string) error {
	return d.until(ctx, "deleting RDS instance "+id, func() (bool, error) {
		out, err := d.rds.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
		if isCode(err, "DBInstanceNotFound") || isCode(err, "DBInstanceNotFoundFault") {
			return true, nil
		}
		if err != nil {
			return false, translate(err)
		}
		if len(out.DBInstances) == 0 {
			return true, nil
		}
		if aws.ToString(out.DBInstances[0].DBInstanceStatus) == "deleting" {
			return false, nil
		}
		in := &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(id), DeleteAutomatedBackups: aws.Bool(true)}
		if finalSnapshot == "" {
			in.SkipFinalSnapshot = aws.Bool(true)
		} else {
			in.FinalDBSnapshotIdentifier = aws.String(finalSnapshot)
		}
		_, err = d.rds.DeleteDBInstance(ctx, in)
		if isCode(err, "DBInstanceNotFound") || isCode(err, "DBInstanceNotFoundFault") {
			return true, nil
		}
		if err != nil && (isCode(err, "DBSnapshotAlreadyExists") || isCode(err, "DBSnapshotAlreadyExistsFault")) {
			return false, fmt.Errorf("its final snapshot %s exists already (and the instance is not being deleted): delete or rename that snapshot, or name another: %w", finalSnapshot, translate(err))
		}
		return false, translate(err)
	})
}

// DeleteDBSnapshot implements env.DeleteCloud.
func (d *EnvDeleter) DeleteDBSnapshot(ctx context.Context, id string) error {
	return d.until(ctx, "deleting RDS snapshot "+id, func() (bool, error) {
		out, err := d.rds.DescribeDBSnapshots(ctx, &rds.DescribeDBSnapshotsInput{DBSnapshotIdentifier: aws.String(id)})
		if isCode(err, "DBSnapshotNotFound") || isCode(err, "DBSnapshotNotFoundFault") {
			return true, nil
		}
		if err != nil {
			return false, translate(err)
		}
		if len(out.DBSnapshots) == 0 || aws.ToString(out.DBSnapshots[0].Status) == "deleted" {
			return true, nil
		}
		if aws.ToString(out.DBSnapshots[0].Status) == "deleting" {
			return false, nil
		}
		_, err = d.rds.DeleteDBSnapshot(ctx, &rds.DeleteDBSnapshotInput{DBSnapshotIdentifier: aws.String(id)})
		if isCode(err, "DBSnapshotNotFound") || isCode(err, "DBSnapshotNotFoundFault") {
			return true, nil
		}
		return false, translate(err)
	})
}

// DeleteBucket implements env.DeleteCloud: every object version and delete
// marker deleted (1,000 a call, S3's limit), then the bucket. An object
// written meanwhile makes DeleteBucket answer BucketNotEmpty: emptied
// again.
func (d *EnvDeleter) DeleteBucket(ctx context.Context, name string) error {
	return d.until(ctx, "deleting bucket "+name, func() (bool, error) {
		if err := d.emptyBucket(ctx, name); err != nil {
			if isCode(err, "NoSuchBucket") {
				return true, nil
			}
			return false, err
		}
		_, err := d.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)})
		if err != nil && !isCode(err, "NoSuchBucket") {
			return false, translate(err)
		}
		_, err = d.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)})
		var re *smithyhttp.ResponseError
		if isCode(err, "NotFound") || isCode(err, "NoSuchBucket") || errors.As(err, &re) && re.HTTPStatusCode() == 404 {
			return true, nil
		}
		return false, translate(err)
	})
}

func (d *EnvDeleter) emptyBucket(ctx context.Context, name string) error {
	p := s3.NewListObjectVersionsPaginator(d.s3, &s3.ListObjectVersionsInput{Bucket: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			if isCode(err, "NoSuchBucket") {
				return err
			}
			return fmt.Errorf("listing the object versions of bucket %s: %w", name, translate(err))
		}
		var ids []s3types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, s3types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, s3types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		for chunk := range slices.Chunk(ids, 1000) {
			out, err := d.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(name), Delete: &s3types.Delete{Objects: chunk, Quiet: aws.Bool(true)}})
			if err != nil {
				return fmt.Errorf("deleting %d object versions of bucket %s: %w", len(chunk), name, translate(err))
			}
			for _, e := range out.Errors {
				if aws.ToString(e.Code) == "NoSuchKey" || aws.ToString(e.Code) == "NoSuchVersion" {
					continue
				}
				return fmt.Errorf("deleting object %s version %s of bucket %s: %s: %s", aws.ToString(e.Key), aws.ToString(e.VersionId), name, aws.ToString(e.Code), aws.ToString(e.Message))
			}
		}
	}
	return nil
}

// DeleteVolumeSnapshot implements env.DeleteCloud.
func (d *EnvDeleter) DeleteVolumeSnapshot(ctx context.Context, id string) error {
	return d.until(ctx, "deleting snapshot "+id, func() (bool, error) {
		_, err := d.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
		if err == nil || errors.Is(classify(err), handover.ErrNotFound) {
			return true, nil
		}
		return false, translate(err)
	})
}

// DeleteVolume implements env.DeleteCloud.
func (d *EnvDeleter) DeleteVolume(ctx context.Context, id string) error {
	return d.until(ctx, "deleting volume "+id, func() (bool, error) {
		out, err := d.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		if errors.Is(classify(err), handover.ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, translate(err)
		}
		if len(out.Volumes) == 0 || out.Volumes[0].State == ec2types.VolumeStateDeleted {
			return true, nil
		}
		if out.Volumes[0].State == ec2types.VolumeStateDeleting {
			return false, nil
		}
		_, err = d.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)})
		if errors.Is(classify(err), handover.ErrNotFound) {
			return true, nil
		}
		return false, err // VolumeInUse, IncorrectState: retried
	})
}
