package awscloud_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/localcloud"
	"github.com/handover-dev/handover/internal/testenv"
)

// builderEnv is the real local cloud with a CloneBuilder over real SDK
// clients, and those clients for setting the scene.
type builderEnv struct {
	b   *awscloud.CloneBuilder
	ec2 *awsec2.Client
	asg *autoscaling.Client
	elb *elb.Client
	rds *rds.Client
	s3  *s3.Client
	// endpoint is the local cloud's URL.
	endpoint string
}

func newBuilderEnv(t *testing.T) builderEnv {
	t.Helper()
	return newBuilderEnvIn(t, "")
}

// newBuilderEnvIn keeps the local cloud's state in dataDir ("" for a
// temporary directory).
func newBuilderEnvIn(t testing.TB, dataDir string) builderEnv {
	t.Helper()
	cfg := localCloud(t, localcloud.Config{DataDir: dataDir})
	e := builderEnv{endpoint: aws.ToString(cfg.BaseEndpoint),
		ec2: awsec2.NewFromConfig(cfg), asg: autoscaling.NewFromConfig(cfg), elb: elb.NewFromConfig(cfg),
		rds: rds.NewFromConfig(cfg), s3: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
	}
	e.b = awscloud.NewCloneBuilder(e.ec2, e.asg, e.elb, e.rds, e.s3, cfg.Region)
	return e
}

// opTags are DST's tags for operation op.
func opTags(op string) map[string]string {
	return map[string]string{env.TagEnvironment: "prod", env.TagEnvOp: op}
}

func TestCloneBuilderVolumeSnapshots(t *testing.T) {
	ctx := t.Context()
	e := newBuilderEnv(t)
	vol, err := e.ec2.CreateVolume(ctx, &awsec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	volID := aws.ToString(vol.VolumeId)
	eventually(t, "the volume to be available", func() (bool, error) {
		out, err := e.ec2.DescribeVolumes(ctx, &awsec2.DescribeVolumesInput{VolumeIds: []string{volID}})
		return err == nil && out.Volumes[0].State == ec2types.VolumeStateAvailable, err
	})
	tags := maps.Clone(opTags("op-1"))
	tags["handover:database"] = "orders-1"
	id, err := e.b.SnapshotVolume(ctx, volID, tags)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.b.SnapshotVolume(ctx, volID, tags)
	if err != nil || again != id {
		t.Fatalf("repeated SnapshotVolume = %s, %v; want the first call's %s", again, err, id)
	}
	other, err := e.b.SnapshotVolume(ctx, volID, opTags("op-2"))
	if err != nil || other == id {
		t.Fatalf("another operation's snapshot = %s, %v; want a new one", other, err)
	}
	out, err := e.ec2.DescribeSnapshots(ctx, &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil || len(out.Snapshots) != 1 || len(out.Snapshots[0].Tags) != 3 {
		t.Fatalf("the snapshot's tags: %+v, %v", out.Snapshots, err)
	}
	eventually(t, "the snapshot to complete", func() (bool, error) {
		state, reason, err := e.b.VolumeSnapshotState(ctx, id)
		if state == env.SnapError {
			t.Fatalf("snapshot failed: %s", reason)
		}
		return state == env.SnapCompleted, err
	})
	if _, _, err := e.b.VolumeSnapshotState(ctx, "snap-0000000000000000f"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("state of an unknown snapshot: %v, want ErrNotFound", err)
	}
}

func TestCloneBuilderTemplatesAndGroups(t *testing.T) {
	ctx := t.Context()
	e := newBuilderEnv(t)
	srcUD := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho staging\n"))
	if _, err := e.ec2.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeT3Small, UserData: aws.String(srcUD),
			TagSpecifications: []ec2types.LaunchTemplateTagSpecificationRequest{{ResourceType: ec2types.ResourceTypeInstance,
				Tags: []ec2types.Tag{{Key: aws.String("app"), Value: aws.String("web")}}}}}}); err != nil {
		t.Fatal(err)
	}
	tags := opTags("op-1")

	// The launch template: SRC's data, DST's user data, tagged.
	ref, err := e.b.CopyLaunchTemplate(ctx, ledger.TemplateRef{Name: "web"}, "web-prod", "#!/bin/sh\necho prod\n", tags)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Name != "web-prod" || ref.Version != "1" || ref.ID == "" {
		t.Errorf("copied template ref %+v", ref)
	}
	vs, err := e.ec2.DescribeLaunchTemplateVersions(ctx, &awsec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String("web-prod"), Versions: []string{"1"}})
	if err != nil {
		t.Fatal(err)
	}
	d := vs.LaunchTemplateVersions[0].LaunchTemplateData
	ud, _ := base64.StdEncoding.DecodeString(aws.ToString(d.UserData))
	if aws.ToString(d.ImageId) != ami || d.InstanceType != ec2types.InstanceTypeT3Small || string(ud) != "#!/bin/sh\necho prod\n" ||
		len(d.TagSpecifications) != 1 || aws.ToString(d.TagSpecifications[0].Tags[0].Value) != "web" {
		t.Errorf("copied template data %+v (user data %q)", d, ud)
	}
	again, err := e.b.CopyLaunchTemplate(ctx, ledger.TemplateRef{Name: "web"}, "web-prod", "#!/bin/sh\necho prod\n", tags)
	if err != nil || again != ref {
		t.Errorf("repeated CopyLaunchTemplate = %+v, %v; want %+v", again, err, ref)
	}
	if _, err := e.ec2.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("theirs"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CopyLaunchTemplate(ctx, ledger.TemplateRef{Name: "web"}, "theirs", "x", tags); !errors.Is(err, env.ErrNameTaken) {
		t.Errorf("copying onto someone else's template: %v, want ErrNameTaken", err)
	}
	if _, err := e.b.CopyLaunchTemplate(ctx, ledger.TemplateRef{Name: "gone"}, "gone-prod", "x", tags); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("copying a missing template: %v, want ErrNotFound", err)
	}

	// SRC's group: capacity, zones, health check, cooldown, termination
	// policies, tags and two hooks.
	if _, err := e.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"), MinSize: aws.Int32(0), MaxSize: aws.Int32(3), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1a", "us-east-1b"}, HealthCheckType: aws.String("ELB"), HealthCheckGracePeriod: aws.Int32(45),
		DefaultCooldown: aws.Int32(120), TerminationPolicies: []string{"OldestInstance"},
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web"), Version: aws.String("$Default")},
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{
			{LifecycleHookName: aws.String("handover-launch"), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
				HeartbeatTimeout: aws.Int32(600), DefaultResult: aws.String("ABANDON"), NotificationMetadata: aws.String(`{"database":"staging"}`)},
			{LifecycleHookName: aws.String("drain"), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"),
				HeartbeatTimeout: aws.Int32(300), DefaultResult: aws.String("CONTINUE"), NotificationMetadata: aws.String("keep me")},
		},
		Tags: []astypes.Tag{{Key: aws.String("app"), Value: aws.String("web"), PropagateAtLaunch: aws.Bool(false)}},
	}); err != nil {
		t.Fatal(err)
	}
	spec := env.GroupSpec{Name: "web-prod", From: "web", Template: ref, HookMetadata: map[string]string{"handover-launch": `{"database":"prod"}`},
		Tags: map[string]string{env.TagEnvironment: "prod", env.TagEnvOp: "op-1", "app": "web"}}
	if err := e.b.CreateGroup(ctx, spec); err != nil {
		t.Fatal(err)
	}
	g := describeGroup(t, e.asg, "web-prod")
	if aws.ToInt32(g.MinSize) != 0 || aws.ToInt32(g.MaxSize) != 3 || aws.ToInt32(g.DesiredCapacity) != 1 ||
		!slices.Equal(g.AvailabilityZones, []string{"us-east-1a", "us-east-1b"}) || aws.ToString(g.HealthCheckType) != "ELB" ||
		aws.ToInt32(g.HealthCheckGracePeriod) != 45 || aws.ToInt32(g.DefaultCooldown) != 120 || !slices.Equal(g.TerminationPolicies, []string{"OldestInstance"}) ||
		g.LaunchTemplate == nil || aws.ToString(g.LaunchTemplate.LaunchTemplateId) != ref.ID || aws.ToString(g.LaunchTemplate.Version) != "1" {
		t.Errorf("DST's group %+v", g)
	}
	propagate := map[string]bool{}
	for _, tg := range g.Tags {
		propagate[aws.ToString(tg.Key)] = aws.ToBool(tg.PropagateAtLaunch)
	}
	if len(propagate) != 3 || propagate["app"] || !propagate[env.TagEnvOp] {
		t.Errorf("DST's group tags %v: want SRC's app tag not propagated, as SRC's is, and handover's propagated", propagate)
	}
	hooks, err := e.asg.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("web-prod")})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]astypes.LifecycleHook{}
	for _, h := range hooks.LifecycleHooks {
		got[aws.ToString(h.LifecycleHookName)] = h
	}
	if h := got["handover-launch"]; aws.ToString(h.NotificationMetadata) != `{"database":"prod"}` || aws.ToInt32(h.HeartbeatTimeout) != 600 ||
		aws.ToString(h.DefaultResult) != "ABANDON" || aws.ToString(h.LifecycleTransition) != "autoscaling:EC2_INSTANCE_LAUNCHING" {
		t.Errorf("DST's launch hook %+v", h)
	}
	if h := got["drain"]; aws.ToString(h.NotificationMetadata) != "keep me" || aws.ToInt32(h.HeartbeatTimeout) != 300 || aws.ToString(h.DefaultResult) != "CONTINUE" {
		t.Errorf("DST's terminate hook %+v", h)
	}
	// The hooks were there from the start: the first instance waits on the
	// launch hook.
	eventually(t, "DST's first instance to wait on its launch hook", func() (bool, error) {
		g := describeGroup(t, e.asg, "web-prod")
		return len(g.Instances) == 1 && g.Instances[0].LifecycleState == astypes.LifecycleStatePendingWait, nil
	})
	if err := e.b.CreateGroup(ctx, spec); err != nil {
		t.Errorf("repeated CreateGroup: %v", err)
	}
	theirs := spec
	theirs.Name = "web" // SRC's own name: not this operation's
	if err := e.b.CreateGroup(ctx, theirs); !errors.Is(err, env.ErrNameTaken) {
		t.Errorf("creating onto someone else's group: %v, want ErrNameTaken", err)
	}
}

func describeGroup(t *testing.T, a *autoscaling.Client, name string) astypes.AutoScalingGroup {
	t.Helper()
	out, err := a.DescribeAutoScalingGroups(t.Context(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("describing group %s: %v", name, err)
	}
	return out.AutoScalingGroups[0]
}

func TestCloneBuilderInstanceAddr(t *testing.T) {
	ctx := t.Context()
	e := newBuilderEnv(t)
	run, err := e.ec2.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	var want string
	eventually(t, "the instance to have a private address", func() (bool, error) {
		out, err := e.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return false, err
		}
		want = aws.ToString(out.Reservations[0].Instances[0].PrivateIpAddress)
		return want != "", nil
	})
	if got, err := e.b.InstanceAddr(ctx, id); err != nil || got != want {
		t.Errorf("InstanceAddr = %q, %v; want %q", got, err, want)
	}
	if _, err := e.b.InstanceAddr(ctx, "i-0000000000000000f"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("an unknown instance: %v, want ErrNotFound", err)
	}
}

func TestCloneBuilderLoadBalancer(t *testing.T) {
	ctx := t.Context()
	e := newBuilderEnv(t)
	srcTG, err := e.elb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("web"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(8080), VpcId: aws.String("vpc-local"), TargetType: elbtypes.TargetTypeEnumInstance,
		HealthCheckPath: aws.String("/healthz"), HealthCheckIntervalSeconds: aws.Int32(7), HealthyThresholdCount: aws.Int32(3), Matcher: &elbtypes.Matcher{HttpCode: aws.String("200-299")}})
	if err != nil {
		t.Fatal(err)
	}
	srcTGARN := aws.ToString(srcTG.TargetGroups[0].TargetGroupArn)
	srcLB, err := e.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Scheme: elbtypes.LoadBalancerSchemeEnumInternal,
		Subnets: []string{"subnet-a", "subnet-b"}, SecurityGroups: []string{"sg-web"}})
	if err != nil {
		t.Fatal(err)
	}
	srcLBARN := aws.ToString(srcLB.LoadBalancers[0].LoadBalancerArn)
	tags := opTags("op-1")

	arn, err := e.b.CreateTargetGroup(ctx, srcTGARN, "web-prod", tags)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{arn}})
	if err != nil {
		t.Fatal(err)
	}
	tg := out.TargetGroups[0]
	if aws.ToString(tg.TargetGroupName) != "web-prod" || tg.Protocol != elbtypes.ProtocolEnumHttp || aws.ToInt32(tg.Port) != 8080 ||
		aws.ToString(tg.VpcId) != "vpc-local" || aws.ToString(tg.HealthCheckPath) != "/healthz" || aws.ToInt32(tg.HealthCheckIntervalSeconds) != 7 ||
		aws.ToInt32(tg.HealthyThresholdCount) != 3 || tg.Matcher == nil || aws.ToString(tg.Matcher.HttpCode) != "200-299" {
		t.Errorf("DST's target group %+v", tg)
	}
	if again, err := e.b.CreateTargetGroup(ctx, srcTGARN, "web-prod", tags); err != nil || again != arn {
		t.Errorf("repeated CreateTargetGroup = %s, %v; want %s", again, err, arn)
	}
	// SRC's own target group: ELBv2 answers a create of its name and
	// settings with it, which is still not this operation's.
	if _, err := e.b.CreateTargetGroup(ctx, srcTGARN, "web", tags); !errors.Is(err, env.ErrNameTaken) {
		t.Errorf("creating onto someone else's target group (same settings): %v, want ErrNameTaken", err)
	}
	if _, err := e.elb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("other"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(9999)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateTargetGroup(ctx, srcTGARN, "other", tags); !errors.Is(err, env.ErrNameTaken) {
		t.Errorf("creating onto someone else's target group (other settings): %v, want ErrNameTaken", err)
	}

	listeners := []env.ListenerSpec{{Protocol: "HTTP", Port: 80, TargetGroup: arn, Tags: map[string]string{env.TagEntry: "true"}}}
	lbARN, dns, err := e.b.CreateLoadBalancer(ctx, srcLBARN, "web-prod", listeners, tags)
	if err != nil {
		t.Fatal(err)
	}
	lbs, err := e.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{lbARN}})
	if err != nil {
		t.Fatal(err)
	}
	lb := lbs.LoadBalancers[0]
	var subnets []string
	for _, az := range lb.AvailabilityZones {
		subnets = append(subnets, aws.ToString(az.SubnetId))
	}
	if aws.ToString(lb.DNSName) != dns || dns == "" || lb.Scheme != elbtypes.LoadBalancerSchemeEnumInternal || lb.Type != elbtypes.LoadBalancerTypeEnumApplication ||
		!slices.Equal(subnets, []string{"subnet-a", "subnet-b"}) || !slices.Equal(lb.SecurityGroups, []string{"sg-web"}) {
		t.Errorf("DST's load balancer %+v (subnets %v), DNS %q", lb, subnets, dns)
	}
	checkListeners := func() {
		t.Helper()
		ls, err := e.elb.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)})
		if err != nil || len(ls.Listeners) != 1 {
			t.Fatalf("DST's listeners %+v, %v; want one", ls, err)
		}
		l := ls.Listeners[0]
		// (The local cloud listens on a free port for the 80 asked.)
		if aws.ToInt32(l.Port) == 0 || len(l.DefaultActions) != 1 || aws.ToString(l.DefaultActions[0].TargetGroupArn) != arn {
			t.Errorf("DST's listener %+v", l)
		}
		tt, err := e.elb.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{aws.ToString(l.ListenerArn)}})
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]string{}
		for _, t := range tt.TagDescriptions[0].Tags {
			have[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		if have[env.TagEntry] != "true" || have[env.TagEnvOp] != "op-1" || have[env.TagEnvironment] != "prod" {
			t.Errorf("DST's listener tags %v", have)
		}
	}
	checkListeners()
	again, dns2, err := e.b.CreateLoadBalancer(ctx, srcLBARN, "web-prod", listeners, tags)
	if err != nil || again != lbARN || dns2 != dns {
		t.Errorf("repeated CreateLoadBalancer = %s %s, %v; want %s %s", again, dns2, err, lbARN, dns)
	}
	checkListeners()
	if _, _, err := e.b.CreateLoadBalancer(ctx, srcLBARN, "web", nil, tags); !errors.Is(err, env.ErrNameTaken) {
		t.Errorf("creating onto someone else's load balancer: %v, want ErrNameTaken", err)
	}
	if _, _, err := e.b.CreateLoadBalancer(ctx, "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/gone/1", "x", nil, tags); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("copying a missing load balancer: %v, want ErrNotFound", err)
	}
}

func TestCloneBuilderBuckets(t *testing.T) {
	ctx := t.Context()
	e := newBuilderEnv(t)
	tags := opTags("op-1")
	if err := e.b.CreateBucket(ctx, "prod-assets", tags); err != nil {
		t.Fatal(err)
	}
	if err := e.b.CreateBucket(ctx, "prod-assets", tags); err != nil {
		t.Errorf("repeated CreateBucket: %v", err)
	}
	tt, err := e.s3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String("prod-assets")})
	if err != nil || len(tt.TagSet) != 2 {
		t.Errorf("DST's bucket tags %+v, %v", tt, err)
	}
	if err := e.b.CreateBucket(ctx, "prod-assets", opTags("op-2")); !errors.Is(err, env.ErrNameTaken) {
		t.Errorf("another operation's bucket: %v, want ErrNameTaken", err)
	}
	// Untagged: a kill between create and tag if empty, someone's if not.
	for _, b := range []string{"killed", "theirs"} {
		if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	put(t, e.s3, "theirs", "data", "not ours")
	if err := e.b.CreateBucket(ctx, "killed", tags); err != nil {
		t.Errorf("an untagged empty bucket (a killed create): %v", err)
	}
	if err := e.b.CreateBucket(ctx, "theirs", tags); !errors.Is(err, env.ErrNameTaken) {
		t.Errorf("an untagged bucket with objects: %v, want ErrNameTaken", err)
	}

	// SRC's objects: with and without stored checksums, keys that need
	// encoding.
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("staging-assets")}); err != nil {
		t.Fatal(err)
	}
	put(t, e.s3, "staging-assets", "index.html", "<html>v1</html>")
	put(t, e.s3, "staging-assets", "css/site a+b.css", "body{}")
	putWithSum(t, e.s3, "staging-assets", "data/blob", strings.Repeat("x", 100_000))
	var heard []string
	sums := map[string]string{}
	res, err := e.b.CopyObjects(ctx, "staging-assets", "prod-assets", func(key, sum string, copied bool) {
		if copied {
			heard = append(heard, key)
		}
		sums[key] = sum
	})
	if err != nil {
		t.Fatal(err)
	}
	if res != (env.CopyResult{Objects: 3, Copied: 3, Bytes: 15 + 6 + 100_000}) || len(heard) != 3 {
		t.Errorf("first copy %+v, heard %v", res, heard)
	}
	for _, k := range []string{"index.html", "css/site a+b.css", "data/blob"} {
		got, want := get(t, e.s3, "prod-assets", k), get(t, e.s3, "staging-assets", k)
		if got != want {
			t.Errorf("copy of %s is %q, want %q", k, got, want)
		}
		// What progress heard is the content's SHA-256: what verify
		// compares DST's bucket with.
		if h := sha256.Sum256([]byte(want)); sums[k] != base64.StdEncoding.EncodeToString(h[:]) {
			t.Errorf("progress heard SHA-256 %q for %s", sums[k], k)
		}
	}
	res, err = e.b.CopyObjects(ctx, "staging-assets", "prod-assets", nil)
	if err != nil || res != (env.CopyResult{Objects: 3, Same: 3}) {
		t.Errorf("a repeat copied: %+v, %v", res, err)
	}
	// The same size, other bytes (what aws s3 sync skips): copied; the
	// identical others not.
	put(t, e.s3, "staging-assets", "index.html", "<html>v2</html>")
	res, err = e.b.CopyObjects(ctx, "staging-assets", "prod-assets", nil)
	if err != nil || res != (env.CopyResult{Objects: 3, Copied: 1, Same: 2, Bytes: 15}) {
		t.Errorf("after a same-size change: %+v, %v", res, err)
	}
	if got := get(t, e.s3, "prod-assets", "index.html"); got != "<html>v2</html>" {
		t.Errorf("DST's index.html is %q after the copy", got)
	}
	// A destination object changed behind the clone's back is copied over.
	put(t, e.s3, "prod-assets", "css/site a+b.css", "body{x}")
	if res, err = e.b.CopyObjects(ctx, "staging-assets", "prod-assets", nil); err != nil || res.Copied != 1 || get(t, e.s3, "prod-assets", "css/site a+b.css") != "body{}" {
		t.Errorf("a changed destination object: %+v, %v", res, err)
	}
	if _, err := e.b.CopyObjects(ctx, "no-such-bucket", "prod-assets", nil); !errors.Is(err, handover.ErrNotFound) && err == nil {
		t.Errorf("copying a missing bucket: %v", err)
	}
}

func put(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

func putWithSum(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("getting s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestCloneBuilderNeedsTheOperationTag: every create refuses tags
// without env.TagEnvOp (a repeat could not find what it made), before
// calling the cloud (the builder has no clients here).
func TestCloneBuilderNeedsTheOperationTag(t *testing.T) {
	ctx := t.Context()
	b := awscloud.NewCloneBuilder(nil, nil, nil, nil, nil, "us-east-1")
	tags := map[string]string{env.TagEnvironment: "prod"}
	_, err1 := b.SnapshotVolume(ctx, "vol-1", tags)
	_, err2 := b.CreateTargetGroup(ctx, "arn", "tg", tags)
	_, _, err3 := b.CreateLoadBalancer(ctx, "arn", "lb", nil, tags)
	_, err4 := b.CopyLaunchTemplate(ctx, ledger.TemplateRef{Name: "web"}, "web-prod", "", tags)
	for i, err := range []error{err1, err2, err3, err4,
		b.SnapshotDBInstance(ctx, "db", "snap", tags), b.CreateBucket(ctx, "bucket", tags),
		b.RestoreDBInstance(ctx, "db", "snap", "db2", tags), b.CreateGroup(ctx, env.GroupSpec{Name: "g", From: "f", Tags: tags})} {
		if !errors.Is(err, handover.ErrInvalid) || !strings.Contains(err.Error(), env.TagEnvOp) {
			t.Errorf("create %d without %s: %v, want ErrInvalid naming it", i+1, env.TagEnvOp, err)
		}
	}
}

// bigBucket lists one object over CopyObject's limit and counts copies.
type bigBucket struct {
	awscloud.BuildS3API
	copies int
}

func (f *bigBucket) ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return &s3.ListObjectsV2Output{Contents: []s3types.Object{{Key: aws.String("small"), Size: aws.Int64(1)}, {Key: aws.String("video.raw"), Size: aws.Int64(6 << 30)}}}, nil
}

func (f *bigBucket) CopyObject(context.Context, *s3.CopyObjectInput, ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	f.copies++
	return &s3.CopyObjectOutput{}, nil
}

// TestCopyObjectsRefusesBigObjects: an object over 5 GiB (which the local
// cloud's S3 cannot hold) is refused by name before anything is copied.
func TestCopyObjectsRefusesBigObjects(t *testing.T) {
	f := &bigBucket{}
	b := awscloud.NewCloneBuilder(nil, nil, nil, nil, f, "us-east-1")
	_, err := b.CopyObjects(t.Context(), "src", "dst", nil)
	if !errors.Is(err, handover.ErrInvalid) || !strings.Contains(err.Error(), "video.raw") || !strings.Contains(err.Error(), "multipart") || f.copies != 0 {
		t.Errorf("CopyObjects with a 6 GiB object: %v after %d copies; want ErrInvalid naming it, nothing copied", err, f.copies)
	}
}

func TestCloneBuilderRDS(t *testing.T) {
	ctx := t.Context()
	e := newBuilderEnvIn(t, testenv.OpenTempDir(t)) // PostgreSQL runs as postgres, who must reach it
	_, err := e.rds.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String("staging-db"), DBInstanceClass: aws.String("db.t3.small"), Engine: aws.String("postgres"),
		MasterUsername: aws.String("app"), MasterUserPassword: aws.String("app-password-1"), DBName: aws.String("app"),
		AvailabilityZone: aws.String("us-east-1b"),
	})
	if err != nil {
		if strings.Contains(err.Error(), "RDS is not available on this local cloud") {
			t.Skipf("the local cloud has no RDS here (PostgreSQL missing? make deps installs it): %v", err)
		}
		t.Fatal(err)
	}
	waitDB := func(id string) string {
		t.Helper()
		var ep string
		eventually(t, id+" to be available", func() (bool, error) {
			st, endpoint, err := e.b.DBInstanceState(ctx, id)
			ep = endpoint
			return st == "available" && endpoint != "", err
		})
		return ep
	}
	waitDB("staging-db")
	tags := opTags("op-1")
	if err := e.b.SnapshotDBInstance(ctx, "staging-db", "prod-seed", tags); err != nil {
		t.Fatal(err)
	}
	if err := e.b.SnapshotDBInstance(ctx, "staging-db", "prod-seed", tags); err != nil {
		t.Errorf("repeated SnapshotDBInstance: %v", err)
	}
	eventually(t, "the RDS snapshot to be available", func() (bool, error) {
		st, err := e.b.DBSnapshotState(ctx, "prod-seed")
		if st == "failed" {
			t.Fatal("the RDS snapshot failed")
		}
		return st == "available", err
	})
	if _, err := e.b.DBSnapshotState(ctx, "no-such-snap"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("state of a missing RDS snapshot: %v, want ErrNotFound", err)
	}

	if err := e.b.RestoreDBInstance(ctx, "staging-db", "prod-seed", "prod-db", tags); err != nil {
		t.Fatal(err)
	}
	// prod-db is being restored, not available: a snapshot of it waits.
	if err := e.b.SnapshotDBInstance(ctx, "prod-db", "prod-db-early", tags); !errors.Is(err, handover.ErrIncorrectState) {
		t.Errorf("a snapshot of an instance being restored: %v, want ErrIncorrectState", err)
	}
	if err := e.b.RestoreDBInstance(ctx, "staging-db", "prod-seed", "prod-db", tags); err != nil {
		t.Errorf("repeated RestoreDBInstance: %v", err)
	}
	if err := e.b.RestoreDBInstance(ctx, "staging-db", "prod-seed", "staging-db", tags); !errors.Is(err, env.ErrNameTaken) {
		t.Errorf("restoring onto someone else's instance: %v, want ErrNameTaken", err)
	}
	ep := waitDB("prod-db")
	out, err := e.rds.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("prod-db")})
	if err != nil {
		t.Fatal(err)
	}
	d := out.DBInstances[0]
	have := map[string]string{}
	for _, tg := range d.TagList {
		have[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if aws.ToString(d.DBInstanceClass) != "db.t3.small" || aws.ToString(d.AvailabilityZone) != "us-east-1b" || !maps.Equal(have, tags) || !strings.Contains(ep, ":") {
		t.Errorf("DST's RDS instance: class %s, zone %s, tags %v, endpoint %q", aws.ToString(d.DBInstanceClass), aws.ToString(d.AvailabilityZone), have, ep)
	}
	// The snapshot's name, asked of another instance: someone else's.
	if err := e.b.SnapshotDBInstance(ctx, "prod-db", "prod-seed", tags); !errors.Is(err, env.ErrNameTaken) {
		t.Errorf("a snapshot of that name of another instance: %v, want ErrNameTaken", err)
	}
	if _, _, err := e.b.DBInstanceState(ctx, "no-such-db"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("state of a missing RDS instance: %v, want ErrNotFound", err)
	}
}

// BenchmarkCopyObjects copies a bucket of 1,000 objects of 4 KiB on the
// local cloud: CopyObjects one object at a time and CopyWorkers at a
// time, into an empty bucket and again over an identical one, side by
// side with what users run today, `aws s3 sync` (which compares size and
// time only).
//
//	go test ./internal/awscloud -run '^$' -bench CopyObjects -benchtime 3x
func BenchmarkCopyObjects(b *testing.B) {
	const n = 1000
	e := newBuilderEnvIn(b, "")
	ctx := b.Context()
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench-src")}); err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("x", 4096)
	for i := range n {
		if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bench-src"), Key: aws.String(fmt.Sprintf("obj/%05d", i)), Body: strings.NewReader(body)}); err != nil {
			b.Fatal(err)
		}
	}
	seq := 0
	fresh := func() string {
		seq++
		name := fmt.Sprintf("bench-dst-%d", seq)
		if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
			b.Fatal(err)
		}
		return name
	}
	for _, workers := range []int{1, awscloud.CopyWorkers} {
		cb := e.b.WithCopyWorkers(workers)
		b.Run(fmt.Sprintf("CopyObjects/workers=%d/empty", workers), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				dst := fresh()
				b.StartTimer()
				if res, err := cb.CopyObjects(ctx, "bench-src", dst, nil); err != nil || res.Copied != n {
					b.Fatalf("%+v, %v", res, err)
				}
			}
		})
		b.Run(fmt.Sprintf("CopyObjects/workers=%d/identical", workers), func(b *testing.B) {
			b.StopTimer()
			dst := fresh()
			if _, err := cb.CopyObjects(ctx, "bench-src", dst, nil); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			for range b.N {
				if res, err := cb.CopyObjects(ctx, "bench-src", dst, nil); err != nil || res.Same != n {
					b.Fatalf("%+v, %v", res, err)
				}
			}
		})
	}
	if _, err := os.Stat("/usr/bin/aws"); err != nil {
		b.Log("no /usr/bin/aws: aws s3 sync not measured")
		return
	}
	sync := func(b *testing.B, dst string) {
		cmd := exec.Command("/usr/bin/aws", "--endpoint-url", e.endpoint, "s3", "sync", "--quiet", "s3://bench-src", "s3://"+dst)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("aws s3 sync: %v\n%s", err, out)
		}
	}
	b.Run("aws-s3-sync/empty", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			dst := fresh()
			b.StartTimer()
			sync(b, dst)
		}
	})
	b.Run("aws-s3-sync/identical", func(b *testing.B) {
		b.StopTimer()
		dst := fresh()
		sync(b, dst)
		b.StartTimer()
		for range b.N {
			sync(b, dst)
		}
	})
}

// racedBucket: the source object is written between its checksum and its
// copy, so S3 refuses the copy's ETag condition.
type racedBucket struct {
	awscloud.BuildS3API
	ifMatch string
}

func (f *racedBucket) ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return &s3.ListObjectsV2Output{Contents: []s3types.Object{{Key: aws.String("k"), Size: aws.Int64(1)}}}, nil
}

func (f *racedBucket) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if aws.ToString(in.Bucket) == "dst" {
		return nil, &s3types.NotFound{}
	}
	return &s3.HeadObjectOutput{ETag: aws.String(`"v1"`), ChecksumSHA256: aws.String("c3Vt")}, nil
}

func (f *racedBucket) CopyObject(_ context.Context, in *s3.CopyObjectInput, _ ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	f.ifMatch = aws.ToString(in.CopySourceIfMatch)
	return nil, &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
}

func TestCopyObjectsSourceWrittenMeanwhile(t *testing.T) {
	f := &racedBucket{}
	_, err := awscloud.NewCloneBuilder(nil, nil, nil, nil, f, "us-east-1").CopyObjects(t.Context(), "src", "dst", nil)
	if f.ifMatch != `"v1"` || !errors.Is(err, handover.ErrIncorrectState) || !strings.Contains(err.Error(), "written while being copied") {
		t.Errorf("copy of a source written meanwhile: if-match %q, %v; want the ETag headed and ErrIncorrectState", f.ifMatch, err)
	}
}
