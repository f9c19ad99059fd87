package awscloud

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// BuildEC2API is the subset of *ec2.Client that a clone's run calls.
type BuildEC2API interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateSnapshot(ctx context.Context, in *ec2.CreateSnapshotInput, opts ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error)
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, opts ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, opts ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	CreateLaunchTemplate(ctx context.Context, in *ec2.CreateLaunchTemplateInput, opts ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
}

// BuildASGAPI is the subset of *autoscaling.Client that a clone's run
// calls.
type BuildASGAPI interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeLifecycleHooks(ctx context.Context, in *autoscaling.DescribeLifecycleHooksInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeLifecycleHooksOutput, error)
	CreateAutoScalingGroup(ctx context.Context, in *autoscaling.CreateAutoScalingGroupInput, opts ...func(*autoscaling.Options)) (*autoscaling.CreateAutoScalingGroupOutput, error)
}

// BuildELBAPI is the subset of *elasticloadbalancingv2.Client that a
// clone's run calls.
type BuildELBAPI interface {
	DescribeTargetGroups(ctx context.Context, in *elb.DescribeTargetGroupsInput, opts ...func(*elb.Options)) (*elb.DescribeTargetGroupsOutput, error)
	CreateTargetGroup(ctx context.Context, in *elb.CreateTargetGroupInput, opts ...func(*elb.Options)) (*elb.CreateTargetGroupOutput, error)
	DescribeLoadBalancers(ctx context.Context, in *elb.DescribeLoadBalancersInput, opts ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error)
	CreateLoadBalancer(ctx context.Context, in *elb.CreateLoadBalancerInput, opts ...func(*elb.Options)) (*elb.CreateLoadBalancerOutput, error)
	DescribeListeners(ctx context.Context, in *elb.DescribeListenersInput, opts ...func(*elb.Options)) (*elb.DescribeListenersOutput, error)
	CreateListener(ctx context.Context, in *elb.CreateListenerInput, opts ...func(*elb.Options)) (*elb.CreateListenerOutput, error)
	DescribeTags(ctx context.Context, in *elb.DescribeTagsInput, opts ...func(*elb.Options)) (*elb.DescribeTagsOutput, error)
	AddTags(ctx context.Context, in *elb.AddTagsInput, opts ...func(*elb.Options)) (*elb.AddTagsOutput, error)
}

// BuildRDSAPI is the subset of *rds.Client that a clone's run calls.
type BuildRDSAPI interface {
	DescribeDBInstances(ctx context.Context, in *rds.DescribeDBInstancesInput, opts ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
	CreateDBSnapshot(ctx context.Context, in *rds.CreateDBSnapshotInput, opts ...func(*rds.Options)) (*rds.CreateDBSnapshotOutput, error)
	DescribeDBSnapshots(ctx context.Context, in *rds.DescribeDBSnapshotsInput, opts ...func(*rds.Options)) (*rds.DescribeDBSnapshotsOutput, error)
	RestoreDBInstanceFromDBSnapshot(ctx context.Context, in *rds.RestoreDBInstanceFromDBSnapshotInput, opts ...func(*rds.Options)) (*rds.RestoreDBInstanceFromDBSnapshotOutput, error)
}

// BuildS3API is the subset of *s3.Client that a clone's run calls.
type BuildS3API interface {
	CreateBucket(ctx context.Context, in *s3.CreateBucketInput, opts ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	GetBucketTagging(ctx context.Context, in *s3.GetBucketTaggingInput, opts ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error)
	PutBucketTagging(ctx context.Context, in *s3.PutBucketTaggingInput, opts ...func(*s3.Options)) (*s3.PutBucketTaggingOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
}

var (
	_ BuildEC2API = (*ec2.Client)(nil)
	_ BuildASGAPI = (*autoscaling.Client)(nil)
	_ BuildELBAPI = (*elb.Client)(nil)
	_ BuildRDSAPI = (*rds.Client)(nil)
	_ BuildS3API  = (*s3.Client)(nil)
)

// CloneBuilder is env.CloneCloud over aws-sdk-go-v2.
//
// Each create goes by DST's physical name with the operation's tags on
// it, atomically where the service allows (EC2's TagSpecifications, the
// Tags of ELBv2, RDS and Auto Scaling creates); S3 is the exception, whose
// bucket is tagged right after it is made. When the name is taken, the
// resource's env.TagEnvOp tag says whether it is this operation's (a
// repeat after a kill: returned as it is) or someone else's
// (env.ErrNameTaken, nothing changed).
type CloneBuilder struct {
	ec2 BuildEC2API
	asg BuildASGAPI
	elb BuildELBAPI
	rds BuildRDSAPI
	s3  BuildS3API
	// region is the one buckets are created in.
	region string
	// workers is how many objects CopyObjects handles at once.
	workers int
}

var _ env.CloneCloud = (*CloneBuilder)(nil)

// NewCloneBuilder returns a CloneBuilder over the given clients; region
// is the one DST's buckets are created in (the S3 client's).
func NewCloneBuilder(ec2API BuildEC2API, asg BuildASGAPI, elbAPI BuildELBAPI, rdsAPI BuildRDSAPI, s3API BuildS3API, region string) *CloneBuilder {
	return &CloneBuilder{ec2: ec2API, asg: asg, elb: elbAPI, rds: rdsAPI, s3: s3API, region: region, workers: CopyWorkers}
}

// WithCopyWorkers returns a copy of b that copies n objects at once (at
// least 1) instead of CopyWorkers.
func (b *CloneBuilder) WithCopyWorkers(n int) *CloneBuilder {
	c := *b
	c.workers = max(n, 1)
	return &c
}

// CopyWorkers is how many objects CopyObjects compares and copies at
// once, as aws s3 sync runs 10 requests at once: on S3 each object costs
// two or three round trips (HEADs, the copy) of S3's latency. On the local
// cloud it gains nothing (its store writes one object at a time, with an
// fsync each); bench/envcopy has the figures.
const CopyWorkers = 16

// MaxCopyObjectBytes is the largest object one CopyObject copies (5 GiB,
// S3's limit); bigger ones need a multipart copy, which CopyObjects does
// not do: it refuses them by name before copying anything.
const MaxCopyObjectBytes = 5 << 30

// ours reports whether have (a found resource's tags) carries tags'
// operation tag; with no operation tag in tags, nothing is ours.
func ours(have, tags map[string]string) bool {
	op, ok := tags[env.TagEnvOp]
	return ok && op != "" && have[env.TagEnvOp] == op
}

// requireOp refuses a create whose tags lack the operation tag: a repeat
// could not tell the resource it made from someone else's.
func requireOp(kind, name string, tags map[string]string) error {
	if tags[env.TagEnvOp] == "" {
		return fmt.Errorf("creating %s %s: its tags carry no %s, so a repeat after a kill could not find it: %w", kind, name, env.TagEnvOp, handover.ErrInvalid)
	}
	return nil
}

func nameTaken(kind, name string, have map[string]string, tags map[string]string) error {
	if v, ok := have[env.TagEnvOp]; ok {
		return fmt.Errorf("%s %s exists and was made by operation %s, not %s; finish or abort that operation, or pick another DST name: %w", kind, name, v, tags[env.TagEnvOp], env.ErrNameTaken)
	}
	return fmt.Errorf("%s %s exists and is not this operation's (it has no %s tag); pick another DST name or delete it: %w", kind, name, env.TagEnvOp, env.ErrNameTaken)
}

// InstanceAddr implements env.CloneCloud.
func (b *CloneBuilder) InstanceAddr(ctx context.Context, instance string) (string, error) {
	out, err := b.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instance}})
	if err != nil {
		return "", fmt.Errorf("describing instance %s for its private address: %w", instance, translate(err))
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			if aws.ToString(i.InstanceId) != instance {
				continue
			}
			if ip := aws.ToString(i.PrivateIpAddress); ip != "" {
				return ip, nil
			}
			return "", fmt.Errorf("instance %s has no private address (it is %s): %w", instance, stateName(i.State), handover.ErrIncorrectState)
		}
	}
	return "", fmt.Errorf("describing instance %s: %w", instance, handover.ErrNotFound)
}

func stateName(s *ec2types.InstanceState) string {
	if s == nil {
		return "in no state EC2 reports"
	}
	return string(s.Name)
}

// SnapshotVolume implements env.CloneCloud. EBS snapshots have no name,
// so the tags are the name: a snapshot of volume carrying every one of
// them, not in error, is the one an earlier call started.
func (b *CloneBuilder) SnapshotVolume(ctx context.Context, volume string, tags map[string]string) (string, error) {
	if err := requireOp("a snapshot of volume", volume, tags); err != nil {
		return "", err
	}
	filters := append([]ec2types.Filter{{Name: aws.String("volume-id"), Values: []string{volume}}}, tagFilters(tags)...)
	p := ec2.NewDescribeSnapshotsPaginator(b.ec2, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("looking for a snapshot of volume %s this operation started: %w", volume, translate(err))
		}
		for _, s := range page.Snapshots {
			if s.State != ec2types.SnapshotStateError && aws.ToString(s.VolumeId) == volume && hasAll(fromTags(s.Tags), tags) {
				return aws.ToString(s.SnapshotId), nil
			}
		}
	}
	out, err := b.ec2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{
		VolumeId:          aws.String(volume),
		Description:       aws.String("handover env clone " + tags[env.TagEnvOp]),
		TagSpecifications: tagSpecs(ec2types.ResourceTypeSnapshot, tags),
	})
	if err != nil {
		return "", fmt.Errorf("snapshotting volume %s: %w", volume, translate(err))
	}
	return aws.ToString(out.SnapshotId), nil
}

// hasAll reports whether have carries every tag of want (a filter the
// endpoint ignored must not pass).
func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// VolumeSnapshotState implements env.CloneCloud.
func (b *CloneBuilder) VolumeSnapshotState(ctx context.Context, id string) (string, string, error) {
	out, err := b.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil {
		return "", "", fmt.Errorf("describing snapshot %s: %w", id, translate(err))
	}
	for _, s := range out.Snapshots {
		if aws.ToString(s.SnapshotId) != id {
			continue
		}
		switch s.State {
		case ec2types.SnapshotStateCompleted:
			return env.SnapCompleted, "", nil
		case ec2types.SnapshotStateError:
			return env.SnapError, aws.ToString(s.StateMessage), nil
		default: // pending, and the newer recoverable/recovering
			return env.SnapPending, "", nil
		}
	}
	return "", "", fmt.Errorf("describing snapshot %s: %w", id, handover.ErrNotFound)
}

func rdsTags(tags map[string]string) []rdstypes.Tag {
	var out []rdstypes.Tag
	for _, k := range sortedKeys(tags) {
		out = append(out, rdstypes.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}

func rdsTagMap(ts []rdstypes.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range ts {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// rdsErr maps RDS's codes for a missing resource or one in the wrong
// state (not yet available: wait and call again), which translate's
// suffix rules do not catch.
func rdsErr(err error) error {
	for _, c := range []string{"DBInstanceNotFound", "DBSnapshotNotFound", "DBInstanceNotFoundFault", "DBSnapshotNotFoundFault"} {
		if isCode(err, c) {
			return fmt.Errorf("%w: %w", handover.ErrNotFound, err)
		}
	}
	for _, c := range []string{"InvalidDBInstanceState", "InvalidDBSnapshotState", "InvalidDBInstanceStateFault", "InvalidDBSnapshotStateFault"} {
		if isCode(err, c) {
			return fmt.Errorf("%w: %w", handover.ErrIncorrectState, err)
		}
	}
	return translate(err)
}

// SnapshotDBInstance implements env.CloneCloud.
func (b *CloneBuilder) SnapshotDBInstance(ctx context.Context, instance, snapshot string, tags map[string]string) error {
	if err := requireOp("RDS snapshot", snapshot, tags); err != nil {
		return err
	}
	_, err := b.rds.CreateDBSnapshot(ctx, &rds.CreateDBSnapshotInput{
		DBInstanceIdentifier: aws.String(instance), DBSnapshotIdentifier: aws.String(snapshot), Tags: rdsTags(tags),
	})
	if err == nil {
		return nil
	}
	if !isCode(err, "DBSnapshotAlreadyExists") {
		return fmt.Errorf("snapshotting RDS instance %s as %s: %w", instance, snapshot, rdsErr(err))
	}
	sn, err := b.dbSnapshot(ctx, snapshot)
	if err != nil {
		return fmt.Errorf("snapshotting RDS instance %s as %s: the name is taken, and %w", instance, snapshot, err)
	}
	if aws.ToString(sn.DBInstanceIdentifier) != instance {
		return fmt.Errorf("RDS snapshot %s exists and is of instance %s, not %s; pick another DST name or delete it: %w",
			snapshot, aws.ToString(sn.DBInstanceIdentifier), instance, env.ErrNameTaken)
	}
	return nil
}

func (b *CloneBuilder) dbSnapshot(ctx context.Context, snapshot string) (rdstypes.DBSnapshot, error) {
	out, err := b.rds.DescribeDBSnapshots(ctx, &rds.DescribeDBSnapshotsInput{DBSnapshotIdentifier: aws.String(snapshot)})
	if err != nil {
		return rdstypes.DBSnapshot{}, fmt.Errorf("describing RDS snapshot %s: %w", snapshot, rdsErr(err))
	}
	for _, s := range out.DBSnapshots {
		if aws.ToString(s.DBSnapshotIdentifier) == snapshot {
			return s, nil
		}
	}
	return rdstypes.DBSnapshot{}, fmt.Errorf("describing RDS snapshot %s: %w", snapshot, handover.ErrNotFound)
}

// DBSnapshotState implements env.CloneCloud.
func (b *CloneBuilder) DBSnapshotState(ctx context.Context, snapshot string) (string, error) {
	s, err := b.dbSnapshot(ctx, snapshot)
	if err != nil {
		return "", err
	}
	return aws.ToString(s.Status), nil
}

// CreateBucket implements env.CloneCloud. S3 cannot tag a bucket as it
// makes it, and in us-east-1 it answers a create of a bucket the account
// owns with 200, as if new; so whatever the create says, the bucket's tags
// decide: this operation's (done, tags completed), someone's (refused),
// or none — the bucket a killed call made before tagging it, taken as
// ours only while it holds no objects (nobody's data can be in it).
func (b *CloneBuilder) CreateBucket(ctx context.Context, name string, tags map[string]string) error {
	if err := requireOp("bucket", name, tags); err != nil {
		return err
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if b.region != "" && b.region != "us-east-1" {
		// us-east-1 refuses a location constraint naming itself.
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(b.region)}
	}
	_, err := b.s3.CreateBucket(ctx, in)
	switch {
	case err == nil, isCode(err, "BucketAlreadyOwnedByYou"):
	case isCode(err, "BucketAlreadyExists"):
		return fmt.Errorf("bucket %s belongs to another AWS account (bucket names are global); pick another DST bucket name: %w", name, env.ErrNameTaken)
	default:
		return fmt.Errorf("creating bucket %s: %w", name, translate(err))
	}
	have, err := b.bucketTags(ctx, name)
	if err != nil {
		return fmt.Errorf("creating bucket %s: %w", name, err)
	}
	switch {
	case ours(have, tags) && hasAll(have, tags):
		return nil
	case ours(have, tags):
		// Ours, some tags missing: put the whole set again.
	case len(have) > 0:
		return nameTaken("bucket", name, have, tags)
	default:
		empty, err := b.bucketEmpty(ctx, name)
		if err != nil {
			return fmt.Errorf("creating bucket %s: it is untagged, and %w", name, err)
		}
		if !empty {
			return nameTaken("bucket", name, have, tags)
		}
	}
	set := make([]s3types.Tag, 0, len(tags))
	for _, k := range sortedKeys(tags) {
		set = append(set, s3types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	if _, err := b.s3.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(name), Tagging: &s3types.Tagging{TagSet: set}}); err != nil {
		return fmt.Errorf("tagging bucket %s: %w", name, translate(err))
	}
	return nil
}

func (b *CloneBuilder) bucketTags(ctx context.Context, name string) (map[string]string, error) {
	out, err := b.s3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(name)})
	if isCode(err, "NoSuchTagSet") {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the tags of bucket %s: %w", name, translate(err))
	}
	m := map[string]string{}
	for _, t := range out.TagSet {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m, nil
}

func (b *CloneBuilder) bucketEmpty(ctx context.Context, name string) (bool, error) {
	out, err := b.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(name), MaxKeys: aws.Int32(1)})
	if err != nil {
		return false, fmt.Errorf("listing bucket %s: %w", name, translate(err))
	}
	return len(out.Contents) == 0, nil
}

// CopyObjects implements env.CloneCloud (progress is called from one
// goroutine at a time, objects in no set order, each with the SHA-256 the
// copy compared). It compares SHA-256 checksums,
// never sizes or times (a same-size change is a change): S3's stored
// additional checksum where the object has one, the SHA-256 of its bytes
// read back otherwise. Copies ask S3 for a SHA-256 checksum, so a repeat
// compares by HeadObject alone. Only current versions are copied.
func (b *CloneBuilder) CopyObjects(ctx context.Context, from, to string, progress func(key, sum string, copied bool)) (env.CopyResult, error) {
	var objs []s3types.Object
	p := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: aws.String(from)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return env.CopyResult{}, fmt.Errorf("listing bucket %s: %w", from, translate(err))
		}
		objs = append(objs, page.Contents...)
	}
	// Refuse what cannot be copied before copying anything, so a bucket
	// is never left half-copied by a refusal.
	var big []string
	for _, o := range objs {
		if aws.ToInt64(o.Size) > MaxCopyObjectBytes {
			big = append(big, fmt.Sprintf("%s (%d bytes)", aws.ToString(o.Key), aws.ToInt64(o.Size)))
		}
	}
	if len(big) > 0 {
		return env.CopyResult{}, fmt.Errorf("copying bucket %s to %s: %d objects are over CopyObject's 5 GiB limit and would need a multipart copy, which handover does not do yet: %v: %w",
			from, to, len(big), big, handover.ErrInvalid)
	}
	res := env.CopyResult{Objects: len(objs)}
	var mu sync.Mutex // res and progress
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.workers)
	for _, o := range objs {
		g.Go(func() error {
			key := aws.ToString(o.Key)
			sum, copied, err := b.copyObject(gctx, from, to, key)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if copied {
				res.Copied++
				res.Bytes += aws.ToInt64(o.Size)
			} else {
				res.Same++
			}
			if progress != nil {
				progress(key, sum, copied)
			}
			return nil
		})
	}
	err := g.Wait()
	mu.Lock()
	defer mu.Unlock()
	return res, err
}

// copyObject copies from/key to to/key unless to has it with the same
// SHA-256, and returns that SHA-256 and whether it copied.
func (b *CloneBuilder) copyObject(ctx context.Context, from, to, key string) (string, bool, error) {
	src, etag, err := b.objectSHA256(ctx, from, key, true)
	if errors.Is(err, handover.ErrNotFound) {
		return "", false, fmt.Errorf("copying s3://%s/%s: it was deleted after the bucket was listed; copy again: %w", from, key, handover.ErrIncorrectState)
	}
	if err != nil {
		return "", false, err
	}
	dst, _, err := b.objectSHA256(ctx, to, key, false)
	if err != nil && !errors.Is(err, handover.ErrNotFound) {
		return "", false, err
	}
	if err == nil && dst == src {
		return src, false, nil
	}
	in := &s3.CopyObjectInput{
		Bucket: aws.String(to), Key: aws.String(key), CopySource: aws.String(copySource(from, key)),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256,
	}
	if etag != "" {
		// The version compared, or none: a source written since fails
		// the copy instead of copying bytes nobody checksummed.
		in.CopySourceIfMatch = aws.String(etag)
	}
	out, err := b.s3.CopyObject(ctx, in)
	if isCode(err, "PreconditionFailed") {
		return "", false, fmt.Errorf("copying s3://%s/%s: it was written while being copied; copy again: %w", from, key, handover.ErrIncorrectState)
	}
	if err != nil {
		return "", false, fmt.Errorf("copying s3://%s/%s to bucket %s: %w", from, key, to, translate(err))
	}
	got := ""
	if out.CopyObjectResult != nil {
		got = aws.ToString(out.CopyObjectResult.ChecksumSHA256)
	}
	if got == "" {
		if got, _, err = b.objectSHA256(ctx, to, key, false); err != nil {
			return "", false, fmt.Errorf("reading back the copy of s3://%s/%s: %w", from, key, err)
		}
	}
	if got != src {
		// S3 computed the copy's checksum from the bytes it wrote: not
		// the source's means the copy is not what was compared (a
		// source written between the checksum and the copy, where S3
		// does not honour the ETag condition).
		return "", false, fmt.Errorf("copying s3://%s/%s: the copy's SHA-256 %q is not the source's %s; copy again: %w",
			from, key, got, src, handover.ErrIncorrectState)
	}
	return src, true, nil
}

// copySource is CopyObject's x-amz-copy-source: bucket/key, the key
// URL-encoded (the SDK sends it as given).
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		// PathEscape leaves '+', which S3 (and gofakes3) would read as
		// a space.
		segs[i] = strings.ReplaceAll(url.PathEscape(s), "+", "%2B")
	}
	return bucket + "/" + strings.Join(segs, "/")
}

// objectSHA256 returns an object's SHA-256 (base64, as S3 gives it) and
// ETag: its stored checksum, or, when it has none and compute is set,
// that of its bytes (else ""). ErrNotFound when there is no such object. A
// destination object without a stored SHA-256 was not copied by a clone,
// so it is not read: it is copied over.
func (b *CloneBuilder) objectSHA256(ctx context.Context, bucket, key string, compute bool) (sum, etag string, err error) {
	h, err := b.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: s3types.ChecksumModeEnabled})
	if isNotFoundS3(err) {
		return "", "", fmt.Errorf("s3://%s/%s: %w", bucket, key, handover.ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("reading the checksum of s3://%s/%s: %w", bucket, key, translate(err))
	}
	etag = aws.ToString(h.ETag)
	if sum := aws.ToString(h.ChecksumSHA256); sum != "" && h.ChecksumType != s3types.ChecksumTypeComposite {
		// A composite checksum (multipart) is of the parts' checksums,
		// not of the bytes: comparable only to one made the same way.
		return sum, etag, nil
	}
	if !compute {
		return "", etag, nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if etag != "" {
		in.IfMatch = aws.String(etag) // the bytes of the version headed
	}
	// An object without a stored checksum is what this read is for: the
	// SDK, validating responses, would log a line for each one.
	g, err := b.s3.GetObject(ctx, in, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	if isCode(err, "PreconditionFailed") {
		return "", "", fmt.Errorf("reading s3://%s/%s to checksum it: it was written meanwhile; copy again: %w", bucket, key, handover.ErrIncorrectState)
	}
	if err != nil {
		return "", "", fmt.Errorf("reading s3://%s/%s to checksum it: %w", bucket, key, translate(err))
	}
	defer g.Body.Close()
	hash := sha256.New()
	if _, err := io.Copy(hash, g.Body); err != nil {
		return "", "", fmt.Errorf("reading s3://%s/%s to checksum it: %w", bucket, key, translate(err))
	}
	return base64.StdEncoding.EncodeToString(hash.Sum(nil)), etag, nil
}

func isNotFoundS3(err error) bool {
	if isCode(err, "NotFound") || isCode(err, "NoSuchKey") {
		return true
	}
	var nf *s3types.NotFound
	var nk *s3types.NoSuchKey
	return errors.As(err, &nf) || errors.As(err, &nk)
}

func elbTags(tags map[string]string) []elbtypes.Tag {
	var out []elbtypes.Tag
	for _, k := range sortedKeys(tags) {
		out = append(out, elbtypes.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}

// elbTagsOf returns the tags of one ELBv2 resource.
func (b *CloneBuilder) elbTagsOf(ctx context.Context, arn string) (map[string]string, error) {
	out, err := b.elb.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{arn}})
	if err != nil {
		return nil, fmt.Errorf("describing the tags of %s: %w", arn, translate(err))
	}
	m := map[string]string{}
	for _, d := range out.TagDescriptions {
		if aws.ToString(d.ResourceArn) != arn {
			continue
		}
		for _, t := range d.Tags {
			m[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return m, nil
}

// CreateTargetGroup implements env.CloneCloud.
func (b *CloneBuilder) CreateTargetGroup(ctx context.Context, fromARN, name string, tags map[string]string) (string, error) {
	if err := requireOp("target group", name, tags); err != nil {
		return "", err
	}
	src, err := b.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{fromARN}})
	if isCode(err, "TargetGroupNotFound") {
		return "", fmt.Errorf("describing SRC's target group %s: %w: %w", fromARN, handover.ErrNotFound, err)
	}
	if err != nil {
		return "", fmt.Errorf("describing SRC's target group %s: %w", fromARN, translate(err))
	}
	if len(src.TargetGroups) != 1 {
		return "", fmt.Errorf("describing SRC's target group %s: %w", fromARN, handover.ErrNotFound)
	}
	tg := src.TargetGroups[0]
	in := &elb.CreateTargetGroupInput{
		Name: aws.String(name), Protocol: tg.Protocol, ProtocolVersion: tg.ProtocolVersion, Port: tg.Port, VpcId: tg.VpcId,
		TargetType: tg.TargetType, IpAddressType: tg.IpAddressType,
		HealthCheckEnabled: tg.HealthCheckEnabled, HealthCheckProtocol: tg.HealthCheckProtocol, HealthCheckPort: tg.HealthCheckPort,
		HealthCheckPath: tg.HealthCheckPath, HealthCheckIntervalSeconds: tg.HealthCheckIntervalSeconds,
		HealthCheckTimeoutSeconds: tg.HealthCheckTimeoutSeconds, HealthyThresholdCount: tg.HealthyThresholdCount,
		UnhealthyThresholdCount: tg.UnhealthyThresholdCount, Matcher: tg.Matcher, Tags: elbTags(tags),
	}
	out, err := b.elb.CreateTargetGroup(ctx, in)
	var arn string
	switch {
	case err == nil && len(out.TargetGroups) == 1:
		// ELBv2 answers a create of an existing name with the same
		// settings with that group, whoever made it: its tags tell.
		arn = aws.ToString(out.TargetGroups[0].TargetGroupArn)
	case err == nil:
		return "", fmt.Errorf("creating target group %s: ELBv2 returned %d target groups", name, len(out.TargetGroups))
	case isCode(err, "DuplicateTargetGroupName"):
		found, derr := b.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: []string{name}})
		if derr != nil {
			return "", fmt.Errorf("creating target group %s: the name is taken, and describing it failed: %w", name, translate(derr))
		}
		if len(found.TargetGroups) != 1 {
			return "", fmt.Errorf("creating target group %s: the name is taken, yet ELBv2 describes %d target groups of that name", name, len(found.TargetGroups))
		}
		arn = aws.ToString(found.TargetGroups[0].TargetGroupArn)
	default:
		return "", fmt.Errorf("creating target group %s like %s: %w", name, fromARN, translate(err))
	}
	have, err := b.elbTagsOf(ctx, arn)
	if err != nil {
		return "", fmt.Errorf("creating target group %s: %w", name, err)
	}
	if !ours(have, tags) {
		return "", nameTaken("target group", name, have, tags)
	}
	return arn, nil
}

// CreateLoadBalancer implements env.CloneCloud: the load balancer, then
// each listener not on it yet (by port, a load balancer's listeners' key).
func (b *CloneBuilder) CreateLoadBalancer(ctx context.Context, fromARN, name string, listeners []env.ListenerSpec, tags map[string]string) (string, string, error) {
	if err := requireOp("load balancer", name, tags); err != nil {
		return "", "", err
	}
	src, err := b.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{fromARN}})
	if isCode(err, "LoadBalancerNotFound") {
		return "", "", fmt.Errorf("describing SRC's load balancer %s: %w: %w", fromARN, handover.ErrNotFound, err)
	}
	if err != nil {
		return "", "", fmt.Errorf("describing SRC's load balancer %s: %w", fromARN, translate(err))
	}
	if len(src.LoadBalancers) != 1 {
		return "", "", fmt.Errorf("describing SRC's load balancer %s: %w", fromARN, handover.ErrNotFound)
	}
	lb := src.LoadBalancers[0]
	in := &elb.CreateLoadBalancerInput{
		Name: aws.String(name), Type: lb.Type, Scheme: lb.Scheme, IpAddressType: lb.IpAddressType,
		SecurityGroups: lb.SecurityGroups, Tags: elbTags(tags),
	}
	for _, az := range lb.AvailabilityZones {
		if az.SubnetId != nil {
			in.Subnets = append(in.Subnets, aws.ToString(az.SubnetId))
		}
	}
	var made elbtypes.LoadBalancer
	out, err := b.elb.CreateLoadBalancer(ctx, in)
	switch {
	case err == nil && len(out.LoadBalancers) == 1:
		made = out.LoadBalancers[0]
	case err == nil:
		return "", "", fmt.Errorf("creating load balancer %s: ELBv2 returned %d load balancers", name, len(out.LoadBalancers))
	case isCode(err, "DuplicateLoadBalancerName"):
		found, derr := b.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{name}})
		if derr != nil {
			return "", "", fmt.Errorf("creating load balancer %s: the name is taken, and describing it failed: %w", name, translate(derr))
		}
		if len(found.LoadBalancers) != 1 {
			return "", "", fmt.Errorf("creating load balancer %s: the name is taken, yet ELBv2 describes %d load balancers of that name", name, len(found.LoadBalancers))
		}
		made = found.LoadBalancers[0]
	default:
		return "", "", fmt.Errorf("creating load balancer %s like %s: %w", name, fromARN, translate(err))
	}
	arn := aws.ToString(made.LoadBalancerArn)
	have, err := b.elbTagsOf(ctx, arn)
	if err != nil {
		return "", "", fmt.Errorf("creating load balancer %s: %w", name, err)
	}
	if !ours(have, tags) {
		return "", "", nameTaken("load balancer", name, have, tags)
	}
	if err := b.listeners(ctx, arn, name, listeners, tags); err != nil {
		return "", "", err
	}
	return arn, aws.ToString(made.DNSName), nil
}

func (b *CloneBuilder) listeners(ctx context.Context, lbARN, name string, specs []env.ListenerSpec, tags map[string]string) error {
	existing := map[int32]string{}
	p := elb.NewDescribeListenersPaginator(b.elb, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describing the listeners of load balancer %s: %w", name, translate(err))
		}
		for _, l := range page.Listeners {
			existing[aws.ToInt32(l.Port)] = aws.ToString(l.ListenerArn)
		}
	}
	for _, l := range specs {
		lt := maps.Clone(tags)
		maps.Copy(lt, l.Tags)
		if arn, ok := existing[l.Port]; ok {
			// Made by an earlier call (the load balancer is this
			// operation's, so are its listeners); its tags again, in
			// case that call was killed before a version that tagged
			// separately.
			if _, err := b.elb.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{arn}, Tags: elbTags(lt)}); err != nil {
				return fmt.Errorf("tagging listener %d of load balancer %s: %w", l.Port, name, translate(err))
			}
			continue
		}
		in := &elb.CreateListenerInput{LoadBalancerArn: aws.String(lbARN), Protocol: elbtypes.ProtocolEnum(l.Protocol), Port: aws.Int32(l.Port), Tags: elbTags(lt)}
		if l.TargetGroup != "" {
			in.DefaultActions = []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(l.TargetGroup)}}
		} else {
			// A listener needs a default action; with no target group
			// to forward to, it answers 503 as a load balancer with no
			// healthy target would.
			in.DefaultActions = []elbtypes.Action{{Type: elbtypes.ActionTypeEnumFixedResponse, FixedResponseConfig: &elbtypes.FixedResponseActionConfig{
				StatusCode: aws.String("503"), ContentType: aws.String("text/plain"), MessageBody: aws.String("no target group yet")}}}
		}
		if _, err := b.elb.CreateListener(ctx, in); err != nil && !isCode(err, "DuplicateListener") {
			return fmt.Errorf("creating listener %s:%d of load balancer %s: %w", l.Protocol, l.Port, name, translate(err))
		}
	}
	return nil
}

// RestoreDBInstance implements env.CloneCloud. SRC's deletion
// protection is not copied: an abort must be able to delete DST.
func (b *CloneBuilder) RestoreDBInstance(ctx context.Context, from, snapshot, name string, tags map[string]string) error {
	if err := requireOp("RDS instance", name, tags); err != nil {
		return err
	}
	src, err := b.dbInstance(ctx, from)
	if err != nil {
		return fmt.Errorf("reading SRC's RDS instance for its settings: %w", err)
	}
	in := &rds.RestoreDBInstanceFromDBSnapshotInput{
		DBInstanceIdentifier: aws.String(name), DBSnapshotIdentifier: aws.String(snapshot),
		DBInstanceClass: src.DBInstanceClass, StorageType: src.StorageType, Iops: src.Iops, StorageThroughput: src.StorageThroughput,
		MultiAZ: src.MultiAZ, PubliclyAccessible: src.PubliclyAccessible, Tags: rdsTags(tags),
	}
	if src.AllocatedStorage != nil {
		in.AllocatedStorage = src.AllocatedStorage
	}
	if !aws.ToBool(src.MultiAZ) {
		in.AvailabilityZone = src.AvailabilityZone // a Multi-AZ restore takes no zone
	}
	if g := src.DBSubnetGroup; g != nil && g.DBSubnetGroupName != nil {
		in.DBSubnetGroupName = g.DBSubnetGroupName
	}
	if len(src.DBParameterGroups) == 1 {
		in.DBParameterGroupName = src.DBParameterGroups[0].DBParameterGroupName
	}
	for _, sg := range src.VpcSecurityGroups {
		in.VpcSecurityGroupIds = append(in.VpcSecurityGroupIds, aws.ToString(sg.VpcSecurityGroupId))
	}
	_, err = b.rds.RestoreDBInstanceFromDBSnapshot(ctx, in)
	if err == nil {
		return nil
	}
	if !isCode(err, "DBInstanceAlreadyExists") {
		return fmt.Errorf("restoring RDS instance %s from snapshot %s: %w", name, snapshot, rdsErr(err))
	}
	have, derr := b.dbInstance(ctx, name)
	if derr != nil {
		return fmt.Errorf("restoring RDS instance %s: the name is taken, and %w", name, derr)
	}
	if m := rdsTagMap(have.TagList); !ours(m, tags) {
		return nameTaken("RDS instance", name, m, tags)
	}
	return nil
}

func (b *CloneBuilder) dbInstance(ctx context.Context, id string) (rdstypes.DBInstance, error) {
	out, err := b.rds.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if err != nil {
		return rdstypes.DBInstance{}, fmt.Errorf("describing RDS instance %s: %w", id, rdsErr(err))
	}
	for _, d := range out.DBInstances {
		if aws.ToString(d.DBInstanceIdentifier) == id {
			return d, nil
		}
	}
	return rdstypes.DBInstance{}, fmt.Errorf("describing RDS instance %s: %w", id, handover.ErrNotFound)
}

// DBInstanceState implements env.CloneCloud.
func (b *CloneBuilder) DBInstanceState(ctx context.Context, name string) (string, string, error) {
	d, err := b.dbInstance(ctx, name)
	if err != nil {
		return "", "", err
	}
	endpoint := ""
	if d.Endpoint != nil && d.Endpoint.Address != nil {
		endpoint = fmt.Sprintf("%s:%d", aws.ToString(d.Endpoint.Address), aws.ToInt32(d.Endpoint.Port))
	}
	return aws.ToString(d.DBInstanceStatus), endpoint, nil
}

// requestTemplateData turns the launch template data EC2 describes into
// the data a create takes. The two shapes are the same fields under
// different type names (the response's nested types are not the
// request's), so encoding/json carries them across by field name; a
// response-only field (none carries a setting) is dropped.
func requestTemplateData(d *ec2types.ResponseLaunchTemplateData) (*ec2types.RequestLaunchTemplateData, error) {
	out := &ec2types.RequestLaunchTemplateData{}
	if d == nil {
		return out, nil
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encoding the launch template data: %w", err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("carrying the launch template data over to a create (a field's shape differs between EC2's response and request): %w", err)
	}
	// A template an AWS service manages names it as operator; the copy
	// is handover's, and only that service may create one so named.
	out.Operator = nil
	return out, nil
}

// CopyLaunchTemplate implements env.CloneCloud.
func (b *CloneBuilder) CopyLaunchTemplate(ctx context.Context, from ledger.TemplateRef, name, userData string, tags map[string]string) (ledger.TemplateRef, error) {
	if err := requireOp("launch template", name, tags); err != nil {
		return ledger.TemplateRef{}, err
	}
	in := &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{from.Version}}
	if from.Version == "" {
		in.Versions = []string{"$Default"}
	}
	if from.ID != "" {
		in.LaunchTemplateId = aws.String(from.ID)
	} else {
		in.LaunchTemplateName = aws.String(from.Name)
	}
	vs, err := b.ec2.DescribeLaunchTemplateVersions(ctx, in)
	if err != nil {
		return ledger.TemplateRef{}, fmt.Errorf("describing SRC's launch template %s version %s: %w", templateName(from), in.Versions[0], translate(err))
	}
	if len(vs.LaunchTemplateVersions) != 1 {
		return ledger.TemplateRef{}, fmt.Errorf("describing SRC's launch template %s: EC2 returned %d versions for %s: %w", templateName(from), len(vs.LaunchTemplateVersions), in.Versions[0], handover.ErrNotFound)
	}
	data, err := requestTemplateData(vs.LaunchTemplateVersions[0].LaunchTemplateData)
	if err != nil {
		return ledger.TemplateRef{}, fmt.Errorf("copying launch template %s: %w", templateName(from), err)
	}
	data.UserData = nil
	if userData != "" {
		data.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(userData)))
	}
	out, err := b.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name), LaunchTemplateData: data,
		VersionDescription: aws.String(fmt.Sprintf("copy of %s version %s", templateName(from), in.Versions[0])),
		TagSpecifications:  tagSpecs(ec2types.ResourceTypeLaunchTemplate, tags),
	})
	if err == nil {
		return ledger.TemplateRef{ID: aws.ToString(out.LaunchTemplate.LaunchTemplateId), Name: name, Version: "1"}, nil
	}
	if !isCode(err, "InvalidLaunchTemplateName.AlreadyExistsException") {
		return ledger.TemplateRef{}, fmt.Errorf("creating launch template %s: %w", name, translate(err))
	}
	found, err := b.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{name}})
	if err != nil {
		return ledger.TemplateRef{}, fmt.Errorf("creating launch template %s: the name is taken, and describing it failed: %w", name, translate(err))
	}
	if len(found.LaunchTemplates) != 1 {
		return ledger.TemplateRef{}, fmt.Errorf("creating launch template %s: the name is taken, yet EC2 describes %d templates of that name", name, len(found.LaunchTemplates))
	}
	lt := found.LaunchTemplates[0]
	if have := fromTags(lt.Tags); !ours(have, tags) {
		return ledger.TemplateRef{}, nameTaken("launch template", name, have, tags)
	}
	return ledger.TemplateRef{ID: aws.ToString(lt.LaunchTemplateId), Name: name, Version: "1"}, nil
}

func templateName(r ledger.TemplateRef) string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}

// CreateGroup implements env.CloneCloud. SRC's hooks go in the create
// itself (LifecycleHookSpecificationList): hooks put after it would miss
// the instances the group launches at once, which would boot without
// their databases' launch hook. SRC's Classic Load Balancers and traffic
// sources are not copied (DST's instances would serve SRC's traffic);
// DST's target groups are spec.TargetGroups.
func (b *CloneBuilder) CreateGroup(ctx context.Context, spec env.GroupSpec) error {
	if err := requireOp("group", spec.Name, spec.Tags); err != nil {
		return err
	}
	src, err := b.group(ctx, spec.From)
	if err != nil {
		return fmt.Errorf("reading SRC's group for its settings: %w", err)
	}
	if src.MixedInstancesPolicy != nil {
		return fmt.Errorf("copying group %s: it has a mixed instances policy, which handover does not copy yet: %w", spec.From, handover.ErrInvalid)
	}
	hooks, err := b.asg.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String(spec.From)})
	if err != nil {
		return fmt.Errorf("listing the lifecycle hooks of SRC's group %s: %w", spec.From, translate(err))
	}
	var specs []astypes.LifecycleHookSpecification
	for _, h := range hooks.LifecycleHooks {
		hs := astypes.LifecycleHookSpecification{
			LifecycleHookName: h.LifecycleHookName, LifecycleTransition: h.LifecycleTransition, HeartbeatTimeout: h.HeartbeatTimeout,
			DefaultResult: h.DefaultResult, NotificationMetadata: h.NotificationMetadata,
			NotificationTargetARN: h.NotificationTargetARN, RoleARN: h.RoleARN,
		}
		if md, ok := spec.HookMetadata[aws.ToString(h.LifecycleHookName)]; ok {
			hs.NotificationMetadata = aws.String(md)
		}
		specs = append(specs, hs)
	}
	propagate := map[string]bool{}
	for _, t := range src.Tags {
		propagate[aws.ToString(t.Key)] = aws.ToBool(t.PropagateAtLaunch)
	}
	var tags []astypes.Tag
	for _, k := range sortedKeys(spec.Tags) {
		p, ok := propagate[k]
		if !ok {
			p = true // handover's own tags: on the instances too, as AWS's default
		}
		tags = append(tags, astypes.Tag{Key: aws.String(k), Value: aws.String(spec.Tags[k]), PropagateAtLaunch: aws.Bool(p),
			ResourceId: aws.String(spec.Name), ResourceType: aws.String("auto-scaling-group")})
	}
	lt := &astypes.LaunchTemplateSpecification{Version: aws.String(spec.Template.Version)}
	if spec.Template.ID != "" {
		lt.LaunchTemplateId = aws.String(spec.Template.ID)
	} else {
		lt.LaunchTemplateName = aws.String(spec.Template.Name)
	}
	if spec.Template.Version == "" {
		lt.Version = nil
	}
	in := &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(spec.Name), LaunchTemplate: lt,
		MinSize: src.MinSize, MaxSize: src.MaxSize, DesiredCapacity: src.DesiredCapacity,
		AvailabilityZones: src.AvailabilityZones, HealthCheckType: src.HealthCheckType,
		HealthCheckGracePeriod: src.HealthCheckGracePeriod, DefaultCooldown: src.DefaultCooldown,
		TerminationPolicies: src.TerminationPolicies, NewInstancesProtectedFromScaleIn: src.NewInstancesProtectedFromScaleIn,
		CapacityRebalance: src.CapacityRebalance, MaxInstanceLifetime: src.MaxInstanceLifetime,
		DefaultInstanceWarmup: src.DefaultInstanceWarmup, InstanceMaintenancePolicy: src.InstanceMaintenancePolicy,
		PlacementGroup: src.PlacementGroup, ServiceLinkedRoleARN: src.ServiceLinkedRoleARN, Context: src.Context,
		DesiredCapacityType: src.DesiredCapacityType, CapacityReservationSpecification: src.CapacityReservationSpecification,
		AvailabilityZoneDistribution: src.AvailabilityZoneDistribution, AvailabilityZoneImpairmentPolicy: src.AvailabilityZoneImpairmentPolicy,
		TargetGroupARNs: spec.TargetGroups, LifecycleHookSpecificationList: specs, Tags: tags,
	}
	if v := aws.ToString(src.VPCZoneIdentifier); v != "" {
		in.VPCZoneIdentifier = src.VPCZoneIdentifier
		in.AvailabilityZones = nil // the subnets say the zones
	}
	_, err = b.asg.CreateAutoScalingGroup(ctx, in)
	if err == nil {
		return nil
	}
	if !isCode(err, "AlreadyExists") {
		return fmt.Errorf("creating group %s like %s: %w", spec.Name, spec.From, translate(err))
	}
	have, err := b.group(ctx, spec.Name)
	if err != nil {
		return fmt.Errorf("creating group %s: the name is taken, and %w", spec.Name, err)
	}
	m := map[string]string{}
	for _, t := range have.Tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	if !ours(m, spec.Tags) {
		return nameTaken("group", spec.Name, m, spec.Tags)
	}
	return nil
}

func (b *CloneBuilder) group(ctx context.Context, name string) (astypes.AutoScalingGroup, error) {
	out, err := b.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		return astypes.AutoScalingGroup{}, fmt.Errorf("describing group %s: %w", name, translate(err))
	}
	for _, g := range out.AutoScalingGroups {
		if aws.ToString(g.AutoScalingGroupName) == name {
			return g, nil
		}
	}
	return astypes.AutoScalingGroup{}, fmt.Errorf("describing group %s: %w", name, handover.ErrNotFound)
}
