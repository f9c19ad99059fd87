package awscloud_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/localcloud"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

const ami = "ami-0123456789abcdef0"

// start runs the real local cloud and returns a Cloud over real SDK clients
// pointed at it, plus the raw clients for setting the scene.
func start(t *testing.T, groups ...string) (*awscloud.Cloud, *awsec2.Client, *autoscaling.Client) {
	t.Helper()
	cfg := localCloud(t, localcloud.Config{})
	e, a := awsec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg)
	return awscloud.New(e, a, groups), e, a
}

// localCloud starts the real local cloud (lc's zero fields filled in: a
// temporary data directory (one the postgres user cannot enter: RDS needs
// testenv.OpenTempDir), a fast tick, the test image) and returns an
// SDK configuration pointed at it.
func localCloud(t testing.TB, lc localcloud.Config) aws.Config {
	t.Helper()
	if lc.DataDir == "" {
		lc.DataDir = t.TempDir()
	}
	if lc.Tick == 0 {
		lc.Tick = 100 * time.Millisecond
	}
	lc.Catalog = map[string]ec2.Image{ami: {Command: []string{"/bin/sh", "-c", "exec sleep 600"}}}
	cloud, err := localcloud.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cloud.Handler())
	t.Cleanup(func() { srv.Close(); cloud.Close() })
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")}
}

// eventually polls f until it reports done, failing the test after 60s.
func eventually(t *testing.T, what string, f func() (bool, error)) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		done, err := f()
		if done {
			return
		}
		last = err
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, last)
}

func TestVolumesAndSnapshots(t *testing.T) {
	ctx := context.Background()
	c, e, _ := start(t)
	tags := map[string]string{"handover:migration": "m-1", "handover:epoch": "3"}

	vol, err := c.CreateVolume(ctx, handover.VolumeSpec{Zone: "us-east-1a", SizeGiB: 1, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		tags map[string]string
		want int
	}{
		{"all tags", tags, 1},
		{"one tag", map[string]string{"handover:migration": "m-1"}, 1},
		{"other value", map[string]string{"handover:migration": "m-2"}, 0},
	} {
		t.Run("find volumes/"+tt.name, func(t *testing.T) {
			got, err := c.FindVolumes(ctx, tt.tags)
			if err != nil || len(got) != tt.want {
				t.Fatalf("FindVolumes(%v) = %+v, %v; want %d", tt.tags, got, err, tt.want)
			}
			if tt.want == 1 && (got[0].ID != vol.ID || got[0].Tags["handover:epoch"] != "3") {
				t.Errorf("found %+v, want %s with its tags", got[0], vol.ID)
			}
		})
	}

	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"volume", func() error { _, err := c.DescribeVolume(ctx, "vol-0123456789abcdef0"); return err }},
		{"snapshot", func() error { _, err := c.DescribeSnapshot(ctx, "snap-0123456789abcdef0"); return err }},
		{"instance", func() error { _, err := c.DescribeInstance(ctx, "i-0123456789abcdef0"); return err }},
	} {
		t.Run("not found/"+tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, handover.ErrNotFound) {
				t.Errorf("want ErrNotFound, got %v", err)
			}
		})
	}
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"delete volume", func() error { return c.DeleteVolume(ctx, "vol-0123456789abcdef0") }},
		{"delete snapshot", func() error { return c.DeleteSnapshot(ctx, "snap-0123456789abcdef0") }},
	} {
		t.Run("missing is fine/"+tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Errorf("want nil, got %v", err)
			}
		})
	}

	eventually(t, "the volume to be available", func() (bool, error) {
		v, err := c.DescribeVolume(ctx, vol.ID)
		return v.State == handover.VolumeAvailable, err
	})
	if err := c.DetachVolume(ctx, vol.ID, false); err != nil {
		t.Errorf("detaching a detached volume: %v", err)
	}

	snap, err := c.CreateSnapshot(ctx, vol.ID, tags)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the snapshot to complete", func() (bool, error) {
		s, err := c.DescribeSnapshot(ctx, snap.ID)
		return s.State == handover.SnapshotCompleted, err
	})
	snaps, err := c.FindSnapshots(ctx, tags)
	if err != nil || len(snaps) != 1 || snaps[0].ID != snap.ID || snaps[0].VolumeID != vol.ID {
		t.Fatalf("FindSnapshots = %+v, %v", snaps, err)
	}

	spec := handover.VolumeSpec{Zone: "us-east-1b", SnapshotID: snap.ID, ClientToken: "m-1-restore", Tags: tags}
	first, err := c.CreateVolume(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateVolume(ctx, spec)
	if err != nil || again.ID != first.ID {
		t.Fatalf("repeated CreateVolume with one ClientToken = %s, %v; want %s", again.ID, err, first.ID)
	}
	if first.Zone != "us-east-1b" || first.SnapshotID != snap.ID {
		t.Errorf("restored volume %+v", first)
	}

	run, err := e.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1a")}})
	if err != nil {
		t.Fatal(err)
	}
	inst := aws.ToString(run.Instances[0].InstanceId)
	eventually(t, "the instance to run and the volume to be available", func() (bool, error) {
		i, err := c.DescribeInstance(ctx, inst)
		if err != nil || i.State != handover.InstanceRunning {
			return false, err
		}
		v, err := c.DescribeVolume(ctx, first.ID)
		return v.State == handover.VolumeAvailable, err
	})
	if err := c.AttachVolume(ctx, first.ID, inst, "/dev/sdf"); !errors.Is(err, handover.ErrInvalid) {
		t.Errorf("attaching across zones: want ErrInvalid, got %v", err)
	}
	if err := c.AttachVolume(ctx, vol.ID, inst, "/dev/sdf"); err != nil {
		t.Fatalf("attaching in the same zone: %v", err)
	}
	eventually(t, "the volume to show its attachment", func() (bool, error) {
		v, err := c.DescribeVolume(ctx, vol.ID)
		return v.AttachedTo == inst && v.AttachState != "", err
	})
	if err := c.DeleteVolume(ctx, vol.ID); !errors.Is(err, handover.ErrIncorrectState) {
		t.Errorf("deleting an attached volume: want ErrIncorrectState, got %v", err)
	}
}

func TestLaunchHook(t *testing.T) {
	ctx := context.Background()
	c, e, a := start(t, "kv")
	if _, err := e.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("kvstore"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); err != nil {
		t.Fatal(err)
	}
	const meta = `{"database":"orders"}`
	if _, err := a.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("kv"), MinSize: aws.Int32(0), MaxSize: aws.Int32(2), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1a", "us-east-1b"},
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("kvstore"), Version: aws.String("$Latest")},
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{{
			LifecycleHookName: aws.String("handover"), LifecycleTransition: aws.String(handover.TransitionLaunching),
			HeartbeatTimeout: aws.Int32(300), NotificationMetadata: aws.String(meta), DefaultResult: aws.String("ABANDON"),
		}},
	}); err != nil {
		t.Fatal(err)
	}

	hook, err := c.DescribeHook(ctx, "kv", "handover")
	if err != nil || hook.HeartbeatTimeout != 300*time.Second || hook.Metadata != meta || hook.DefaultResult != "ABANDON" {
		t.Fatalf("DescribeHook = %+v, %v", hook, err)
	}
	if _, err := c.DescribeHook(ctx, "kv", "nope"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("missing hook: want ErrNotFound, got %v", err)
	}
	if _, err := c.GroupMembers(ctx, "nope"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("missing group: want ErrNotFound, got %v", err)
	}

	var act handover.WaitingAction
	eventually(t, "a waiting launch action", func() (bool, error) {
		acts, err := c.WaitingActions(ctx)
		if len(acts) == 1 {
			act = acts[0]
		}
		return len(acts) == 1, err
	})
	want := handover.WaitingAction{Group: "kv", Hook: "handover", Instance: act.Instance, Transition: handover.TransitionLaunching, Metadata: meta}
	if act != want || act.Instance == "" {
		t.Fatalf("WaitingActions = %+v, want %+v", act, want)
	}
	// Without configured groups, every group is looked at.
	if acts, err := awscloud.New(e, a, nil).WaitingActions(ctx); err != nil || len(acts) != 1 || acts[0] != want {
		t.Errorf("WaitingActions over discovered groups = %+v, %v; want [%+v]", acts, err, want)
	}
	if st, err := c.GroupInstanceState(ctx, "kv", act.Instance); err != nil || st != handover.LifecyclePendingWait {
		t.Errorf("GroupInstanceState = %q, %v; want Pending:Wait", st, err)
	}
	members, err := c.GroupMembers(ctx, "kv")
	if err != nil || !slices.Contains(members, handover.GroupMember{Instance: act.Instance, Lifecycle: handover.LifecyclePendingWait, Health: "Healthy"}) {
		t.Errorf("GroupMembers = %+v, %v", members, err)
	}

	ref := ledger.HookRef{Group: "kv", Hook: "handover", Instance: act.Instance}
	if err := c.RecordLifecycleActionHeartbeat(ctx, ref); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if err := c.CompleteLifecycleAction(ctx, ref, handover.ResultContinue); err != nil {
		t.Fatalf("complete: %v", err)
	}
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"second completion", func() error { return c.CompleteLifecycleAction(ctx, ref, handover.ResultContinue) }},
		{"late heartbeat", func() error { return c.RecordLifecycleActionHeartbeat(ctx, ref) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, handover.ErrNoActiveAction) {
				t.Errorf("want ErrNoActiveAction, got %v", err)
			}
		})
	}
	eventually(t, "the instance to be in service", func() (bool, error) {
		st, err := c.GroupInstanceState(ctx, "kv", act.Instance)
		return st == handover.LifecycleInService, err
	})
	if acts, err := c.WaitingActions(ctx); err != nil || len(acts) != 0 {
		t.Errorf("WaitingActions after completion = %+v, %v", acts, err)
	}
	if _, err := c.GroupInstanceState(ctx, "kv", "i-0123456789abcdef0"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("unknown instance: want ErrNotFound, got %v", err)
	}

	if err := c.ReplaceInstance(ctx, "kv", act.Instance); err != nil {
		t.Fatalf("ReplaceInstance: %v", err)
	}
	eventually(t, "a replacement waiting on the launch hook", func() (bool, error) {
		acts, err := c.WaitingActions(ctx)
		return len(acts) == 1 && acts[0].Instance != act.Instance, err
	})
}

// TestWatchedGroups: configured groups are watched with their replace-all
// replacements ("<group>-…") but not groups that merely share a prefix, and
// a configured group that is gone (deleted by a replace-all) is no error.
func TestWatchedGroups(t *testing.T) {
	ctx := context.Background()
	c, e, a := start(t, "kv", "gone")
	if _, err := e.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("kvstore"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kv-0123456789ab", "kvx", "other"} {
		if _, err := a.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
			AutoScalingGroupName: aws.String(name), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1),
			AvailabilityZones: []string{"us-east-1a"},
			LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("kvstore"), Version: aws.String("$Latest")},
			LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{{
				LifecycleHookName: aws.String("handover-launch"), LifecycleTransition: aws.String(handover.TransitionLaunching),
				HeartbeatTimeout: aws.Int32(300), NotificationMetadata: aws.String(name), DefaultResult: aws.String("ABANDON"),
			}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the replacement group's launch waiting", func() (bool, error) {
		acts, err := c.WaitingActions(ctx)
		if err != nil {
			return false, err
		}
		var groups []string
		for _, act := range acts {
			groups = append(groups, act.Group)
		}
		if len(groups) > 1 || (len(groups) == 1 && groups[0] != "kv-0123456789ab") {
			t.Fatalf("watched groups %v, want only kv-0123456789ab", groups)
		}
		return len(groups) == 1, nil
	})
}
