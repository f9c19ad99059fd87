package awscloud_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/testenv"
)

func newDeleter(e builderEnv) *awscloud.EnvDeleter {
	d := awscloud.NewEnvDeleter(e.ec2, e.asg, e.elb, e.rds, e.s3, "us-east-1", clock.Real{})
	d.Poll = 50 * time.Millisecond
	d.Wait = time.Minute
	return d
}

// TestEnvDeleterLocalCloud makes an operation's resources on the real
// local cloud (a group with an instance in a target group, its launch
// template, a load balancer forwarding to the target group, a bucket with
// objects, a volume and a snapshot), next to resources that are not the
// operation's, then lists and deletes the operation's: dependents first,
// each gone when its delete returns, the others untouched, and a second
// pass over the same list is a no-op.
func TestEnvDeleterLocalCloud(t *testing.T) {
	ctx := t.Context()
	e := newBuilderEnvIn(t, testenv.OpenTempDir(t)) // RDS is listed too: PostgreSQL's user must reach it
	d := newDeleter(e)
	tags := opTags("op-1")

	// Not the operation's: SRC's, and another operation's bucket.
	if _, err := e.ec2.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); err != nil {
		t.Fatal(err)
	}
	srcTG, err := e.elb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("web"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(8080), VpcId: aws.String("vpc-local"), TargetType: elbtypes.TargetTypeEnumInstance})
	if err != nil {
		t.Fatal(err)
	}
	srcLB, err := e.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Subnets: []string{"subnet-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.b.CreateBucket(ctx, "other-op", opTags("op-2")); err != nil {
		t.Fatal(err)
	}

	// The operation's.
	ref, err := e.b.CopyLaunchTemplate(ctx, ledger.TemplateRef{Name: "web"}, "web-prod", "", tags)
	if err != nil {
		t.Fatal(err)
	}
	tgARN, err := e.b.CreateTargetGroup(ctx, aws.ToString(srcTG.TargetGroups[0].TargetGroupArn), "web-prod", tags)
	if err != nil {
		t.Fatal(err)
	}
	lbARN, _, err := e.b.CreateLoadBalancer(ctx, aws.ToString(srcLB.LoadBalancers[0].LoadBalancerArn), "web-prod",
		[]env.ListenerSpec{{Protocol: "HTTP", Port: 80, TargetGroup: tgARN}}, tags)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web-prod"),
		MinSize: aws.Int32(1), MaxSize: aws.Int32(2), DesiredCapacity: aws.Int32(1), AvailabilityZones: []string{"us-east-1a"},
		LaunchTemplate:  &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(ref.ID), Version: aws.String("1")},
		TargetGroupARNs: []string{tgARN},
		Tags:            []astypes.Tag{{Key: aws.String(env.TagEnvOp), Value: aws.String("op-1")}, {Key: aws.String(env.TagEnvironment), Value: aws.String("prod")}},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the group's instance to be in service", func() (bool, error) {
		g := describeGroup(t, e.asg, "web-prod")
		return len(g.Instances) == 1 && g.Instances[0].LifecycleState == astypes.LifecycleStateInService, nil
	})
	if err := e.b.CreateBucket(ctx, "prod-assets", tags); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		put(t, e.s3, "prod-assets", fmt.Sprintf("k%d", i), "v")
	}
	vol, err := e.ec2.CreateVolume(ctx, &awsec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{{Key: aws.String(env.TagEnvOp), Value: aws.String("op-1")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	volID := aws.ToString(vol.VolumeId)
	eventually(t, "the volume to be available", func() (bool, error) {
		out, err := e.ec2.DescribeVolumes(ctx, &awsec2.DescribeVolumesInput{VolumeIds: []string{volID}})
		return err == nil && out.Volumes[0].State == ec2types.VolumeStateAvailable, err
	})
	snapID, err := e.b.SnapshotVolume(ctx, volID, tags)
	if err != nil {
		t.Fatal(err)
	}

	owned, err := d.OwnedResources(ctx, "op-1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range owned {
		got = append(got, o.Kind+":"+o.Name)
	}
	want := []string{"group:web-prod", "launch-template:web-prod", "load-balancer:web-prod", "target-group:web-prod", "bucket:prod-assets", "volume:" + volID, "ebs-snapshot:" + snapID}
	if !slices.Equal(got, want) {
		t.Fatalf("OwnedResources(op-1) = %v\nwant %v", got, want)
	}
	if _, err := d.OwnedResources(ctx, ""); err == nil {
		t.Error("OwnedResources of an empty id: no error")
	}
	// Every operation's, for the sweeper: op-1's and op-2's bucket, not SRC's.
	all, warnings, err := d.EnvOpResources(ctx)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("EnvOpResources: %v %v", err, warnings)
	}
	byOp := map[string]int{}
	for _, r := range all {
		byOp[r.Op]++
		if r.Name == "web" {
			t.Errorf("EnvOpResources lists SRC's %s", r.Owned)
		}
	}
	if byOp["op-1"] != len(want) || byOp["op-2"] != 1 || len(byOp) != 2 {
		t.Errorf("EnvOpResources by operation %v, want op-1: %d, op-2: 1", byOp, len(want))
	}

	// The target group first, while the listener still forwards to it:
	// refused, retried, and failing once the wait runs out, naming why.
	short := newDeleter(e)
	short.Wait = 300 * time.Millisecond
	if err := short.DeleteTargetGroup(ctx, tgARN); err == nil || !strings.Contains(err.Error(), "ResourceInUse") || !strings.Contains(err.Error(), "still refused") {
		t.Errorf("deleting a target group a listener forwards to = %v; want still refused, ResourceInUse", err)
	}

	for pass := range 2 {
		for _, o := range owned {
			if err := env.DeleteResource(ctx, d, o); err != nil {
				t.Fatalf("pass %d: %v", pass, err)
			}
		}
	}
	if left, err := d.OwnedResources(ctx, "op-1"); err != nil || len(left) != 0 {
		t.Errorf("after the deletes, op-1 owns %v (%v)", left, err)
	}
	// Gone as each service reports it.
	if out, err := e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web-prod"}}); err != nil || len(out.AutoScalingGroups) != 0 {
		t.Errorf("group web-prod after its delete: %v, %v", out, err)
	}
	if _, err := e.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{lbARN}}); !apiCode(err, "LoadBalancerNotFound") {
		t.Errorf("load balancer after its delete: %v", err)
	}
	if _, err := e.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("prod-assets")}); err == nil {
		t.Error("bucket prod-assets is still there")
	}
	// The others are untouched.
	if _, err := e.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("other-op")}); err != nil {
		t.Errorf("another operation's bucket: %v", err)
	}
	if out, err := e.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: []string{"web"}}); err != nil || len(out.TargetGroups) != 1 {
		t.Errorf("SRC's target group: %v", err)
	}
	if out, err := e.ec2.DescribeLaunchTemplates(ctx, &awsec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"web"}}); err != nil || len(out.LaunchTemplates) != 1 {
		t.Errorf("SRC's launch template: %v", err)
	}
}

func apiCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

// TestEnvDeleterRDS deletes an RDS instance with a final snapshot (kept)
// and one without, and a manual snapshot, on the local cloud's RDS (real
// PostgreSQL).
func TestEnvDeleterRDS(t *testing.T) {
	ctx := t.Context()
	e := newBuilderEnvIn(t, testenv.OpenTempDir(t))
	d := newDeleter(e)
	for _, id := range []string{"prod-db", "prod-db2"} {
		_, err := e.rds.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
			DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.t3.small"), Engine: aws.String("postgres"),
			MasterUsername: aws.String("app"), MasterUserPassword: aws.String("app-password-1"),
		})
		if err != nil {
			if strings.Contains(err.Error(), "RDS is not available on this local cloud") {
				t.Skipf("the local cloud has no RDS here (PostgreSQL missing? make deps installs it): %v", err)
			}
			t.Fatal(err)
		}
	}
	for _, id := range []string{"prod-db", "prod-db2"} {
		eventually(t, id+" to be available", func() (bool, error) {
			st, _, err := e.b.DBInstanceState(ctx, id)
			return st == "available", err
		})
	}
	if err := e.b.SnapshotDBInstance(ctx, "prod-db2", "prod-seed", opTags("op-1")); err != nil {
		t.Fatal(err)
	}
	// Deleted while the snapshot is still being taken: retried until RDS
	// takes the delete.
	if err := d.DeleteDBInstance(ctx, "prod-db", "prod-db-final"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteDBInstance(ctx, "prod-db", "prod-db-final"); err != nil {
		t.Errorf("a repeated delete: %v", err)
	}
	if err := d.DeleteDBInstance(ctx, "prod-db2", ""); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"prod-db", "prod-db2"} {
		if _, err := e.rds.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}); !apiCode(err, "DBInstanceNotFound") {
			t.Errorf("%s after its delete: %v", id, err)
		}
	}
	if st, err := e.b.DBSnapshotState(ctx, "prod-db-final"); err != nil || st != "available" {
		t.Errorf("the final snapshot: %s, %v", st, err)
	}
	owned, err := d.OwnedResources(ctx, "op-1")
	if err != nil || len(owned) != 1 || owned[0] != (env.Owned{Kind: env.KindRDSSnapshot, ID: "prod-seed", Name: "prod-seed"}) {
		t.Fatalf("op-1 owns %v (%v); want its snapshot", owned, err)
	}
	for range 2 {
		if err := env.DeleteResource(ctx, d, owned[0]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.b.DBSnapshotState(ctx, "prod-seed"); err == nil {
		t.Error("the snapshot is still there")
	}
}

// fakeTG is DeleteTargetGroup answering ResourceInUse a number of times.
type fakeTG struct {
	awscloud.DeleteELBAPI
	inUse   int
	deletes int
	gone    bool
	other   error
}

func (f *fakeTG) DeleteTargetGroup(context.Context, *elb.DeleteTargetGroupInput, ...func(*elb.Options)) (*elb.DeleteTargetGroupOutput, error) {
	f.deletes++
	if f.other != nil {
		return nil, f.other
	}
	if f.inUse > 0 {
		f.inUse--
		return nil, &smithy.GenericAPIError{Code: "ResourceInUse", Message: "in use by a listener"}
	}
	f.gone = true
	return &elb.DeleteTargetGroupOutput{}, nil
}

func (f *fakeTG) DescribeTargetGroups(context.Context, *elb.DescribeTargetGroupsInput, ...func(*elb.Options)) (*elb.DescribeTargetGroupsOutput, error) {
	if f.gone {
		return nil, &smithy.GenericAPIError{Code: "TargetGroupNotFound", Message: "gone"}
	}
	return &elb.DescribeTargetGroupsOutput{TargetGroups: []elbtypes.TargetGroup{{}}}, nil
}

// TestEnvDeleterBackoff: refusals are retried with a doubling backoff
// capped at 16 polls, on the injected clock; an error that is not a
// refusal is returned at once; past the wait, the last refusal is.
func TestEnvDeleterBackoff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		f      fakeTG
		wait   time.Duration
		sleeps []time.Duration
		err    string
	}{
		{"gone at once", fakeTG{}, time.Hour, nil, ""},
		{"refused 6 times", fakeTG{inUse: 6}, time.Hour, []time.Duration{1, 2, 4, 8, 16, 16}, ""},
		{"not a refusal", fakeTG{other: &smithy.GenericAPIError{Code: "AccessDenied", Message: "no"}}, time.Hour, nil, "AccessDenied"},
		{"refused past the wait", fakeTG{inUse: 100}, 10 * time.Second, []time.Duration{1, 2, 4, 3}, "still refused after 10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewFake(time.Unix(0, 0))
			f := tc.f
			d := awscloud.NewEnvDeleter(nil, nil, &f, nil, nil, "us-east-1", clk)
			d.Poll, d.Wait = time.Second, tc.wait
			var sleeps []time.Duration
			d.Sleep = func(_ context.Context, s time.Duration) error {
				sleeps = append(sleeps, s/time.Second)
				clk.Advance(s)
				return nil
			}
			err := d.DeleteTargetGroup(t.Context(), "arn:tg")
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("err = %v, want %q", err, tc.err)
			}
			if !slices.Equal(sleeps, tc.sleeps) {
				t.Errorf("slept %v polls, want %v", sleeps, tc.sleeps)
			}
		})
	}
}

func TestSortForDelete(t *testing.T) {
	rs := []env.Owned{{Kind: env.KindEBSSnapshot, ID: "s"}, {Kind: "mystery", ID: "m"}, {Kind: env.KindBucket, ID: "b2"}, {Kind: env.KindBucket, ID: "b1"},
		{Kind: env.KindTargetGroup, ID: "tg"}, {Kind: env.KindGroup, ID: "g"}, {Kind: env.KindVolume, ID: "v"}, {Kind: env.KindLoadBalancer, ID: "lb"}}
	env.SortForDelete(rs)
	var got []string
	for _, r := range rs {
		got = append(got, r.ID)
	}
	if want := []string{"g", "lb", "tg", "b1", "b2", "v", "s", "m"}; !slices.Equal(got, want) {
		t.Errorf("delete order %v, want %v", got, want)
	}
}
