package release

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/testenv"
)

// TestStatefulPoolGroupWithChannel: a pool group (one database per
// instance) that also joins a release channel. handover's controller hands
// each instance its state volume at /dev/sdf and, with --releases, its
// release at /dev/sdg, and the agent waits for both before it starts the
// service: both volumes land, on every instance.
func TestStatefulPoolGroupWithChannel(t *testing.T) {
	// The release controller runs inside handover's controller here
	// (--releases): one process serves both volumes.
	f := newStatefulFleet(t, "--releases", "--release-interval", "100ms")
	ctx := t.Context()
	e := f.env

	waitFor(t, "both instances in service with a state and a release volume each", func() (bool, error) {
		out, err := f.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"tenants"}})
		if err != nil {
			return false, err
		}
		var status []string
		ok := 0
		dbs := map[string]bool{}
		for _, i := range out.AutoScalingGroups[0].Instances {
			id := aws.ToString(i.InstanceId)
			vols, err := e.ec2.DescribeVolumes(ctx, &awsec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{id}}}})
			if err != nil {
				return false, err
			}
			got := map[string]string{}
			for _, v := range vols.Volumes {
				tags := map[string]string{}
				for _, tg := range v.Tags {
					tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
				}
				switch dev := aws.ToString(v.Attachments[0].Device); {
				case dev == "/dev/sdf" && tags[handover.TagDatabase] != "":
					got["state"] = tags[handover.TagDatabase]
				case dev == DefaultDevice && tags[TagRelease] == "v1":
					got["release"] = "v1"
				}
			}
			status = append(status, fmt.Sprintf("%s %s %v", id, i.LifecycleState, got))
			if i.LifecycleState == astypes.LifecycleStateInService && got["state"] != "" && got["release"] == "v1" {
				ok++
				dbs[got["state"]] = true
			}
		}
		return ok == 2 && len(dbs) == 2, fmt.Errorf("%s", strings.Join(status, "; "))
	})
	// The agent saw both.
	logs, _ := filepath.Glob(filepath.Join(e.dataDir, "ec2", "instances", "*", "console.log"))
	seen := 0
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if strings.Contains(string(b), `msg="state ready"`) && strings.Contains(string(b), `msg="release mounted"`) && strings.Contains(string(b), "release=v1") {
			seen++
		}
	}
	if seen != 2 {
		t.Errorf("%d agents logged both the state and the release, want 2", seen)
	}
}

// newStatefulFleet is channel "web" with v1 published, handover's
// controller running as a process (with ctlArgs), and a pool group
// "tenants" of two (kvstore under the agent, with a state volume and a
// release) that joins the channel; `handover release controller` is not
// started.
func newStatefulFleet(t *testing.T, ctlArgs ...string) *fleet {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	hb, _ := binaries(t)
	kvBin := testenv.Binary(t, "github.com/handover-dev/handover/examples/kvstore")
	f := newReleaseServer(t, hb)
	e, ctx := f.env, t.Context()
	f.pub = e.publisher(f.led, f.server)
	if _, err := f.pub.Init(ctx, InitSpec{Channel: "web", Instance: f.server, Device: DefaultDevice, SizeGiB: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.publish("v1", nil); err != nil {
		t.Fatal(err)
	}

	sq := sqs.NewFromConfig(e.cfg)
	dlq, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("handover-events-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("handover-events"), Attributes: map[string]string{
		"RedrivePolicy": `{"deadLetterTargetArn":"` + attrs.Attributes["QueueArn"] + `","maxReceiveCount":"5"}`}})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := aws.ToString(e.cfg.BaseEndpoint)
	ctlLog := filepath.Join(f.dir, "handover-controller.log")
	logf, err := os.Create(ctlLog)
	if err != nil {
		t.Fatal(err)
	}
	ctl := exec.Command(hb, "controller", "--endpoint-url", endpoint, "--ledger", f.ledgerURL(), "--queue-url", aws.ToString(q.QueueUrl),
		"--listen", "127.0.0.1:0", "--advance-interval", "200ms", "--poll-interval", "200ms", "--reconcile-interval", "500ms", "--queue-wait", "1s", "--no-pre-copy")
	ctl.Args = append(ctl.Args, ctlArgs...)
	ctl.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=secret", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
	ctl.Stdout, ctl.Stderr = logf, logf
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() {
		_ = ctl.Process.Kill()
		_ = ctl.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(ctlLog)
			t.Logf("%s:\n%s", ctlLog, tail(string(b), 30))
		}
	})

	script := fmt.Sprintf(`#!/bin/sh
export AWS_ENDPOINT_URL=%s AWS_ACCESS_KEY_ID=AKIDLOCAL AWS_SECRET_ACCESS_KEY=secret AWS_REGION=us-east-1
exec %s agent --device /dev/sdf --release-mount "$HANDOVER_INSTANCE_DIR/current" --poll-interval 50ms --poll-max 200ms --release-poll 100ms --timeout 2m -- %s --listen "$HANDOVER_PRIVATE_IP:8080"
`, endpoint, hb, kvBin)
	if _, err := e.ec2.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("tenants"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(testAMI),
			UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(script)))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("tenants"), MinSize: aws.Int32(0), MaxSize: aws.Int32(4), DesiredCapacity: aws.Int32(2),
		AvailabilityZones: []string{"us-east-1a", "us-east-1b"},
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("tenants"), Version: aws.String("$Latest")},
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{{
			LifecycleHookName: aws.String("handover-launch"), LifecycleTransition: aws.String(handover.TransitionLaunching),
			HeartbeatTimeout: aws.Int32(300), DefaultResult: aws.String("ABANDON"),
			NotificationMetadata: aws.String(`{"databases":["tenant-a","tenant-b"],"size_gib":1,"channel":"web"}`)}},
	}); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestStatefulLaunchHeldForANewerRelease: issue 16's guarantee for a
// stateful group. Its instances launch with v1 attached (as a release
// controller killed right after attaching it left them) and become
// healthy on it; v2 is published meanwhile; only then does the release
// controller run. The migrations hold the launches until the instances
// serve v2: no instance enters service on v1, publish returns with both
// in service on v2, and each has its state volume and one release volume.
func TestStatefulLaunchHeldForANewerRelease(t *testing.T) {
	f := newStatefulFleet(t)
	ctx := t.Context()
	ch, err := f.led.GetChannel(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	var insts []handover.Instance
	waitFor(t, "two launches waiting", func() (bool, error) {
		acts, err := f.cloud.WaitingActions(ctx)
		insts = nil
		for _, a := range acts {
			if a.Transition == handover.TransitionLaunching && a.Group == "tenants" {
				inst, err := f.cloud.DescribeInstance(ctx, a.Instance)
				if err != nil {
					return false, err
				}
				insts = append(insts, inst)
			}
		}
		return err == nil && len(insts) == 2, err
	})
	for _, inst := range insts {
		v, err := f.cloud.CreateVolume(ctx, instanceVolume(inst, "web", "v1", ch.LatestSnapshot, ch.Version))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "v1's volume for "+inst.ID, func() (bool, error) {
			got, err := f.cloud.DescribeVolume(ctx, v.ID)
			return got.State == handover.VolumeAvailable, err
		})
		must(t, f.cloud.AttachVolume(ctx, v.ID, inst.ID, DefaultDevice))
	}
	prober := HTTPProber{Port: 8080}
	// Healthy on v1, and held there.
	waitFor(t, "both migrations healthy on v1 and held for the release controller", func() (bool, error) {
		ms, err := f.led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
		if err != nil {
			return false, err
		}
		held := 0
		var status []string
		for _, m := range ms {
			status = append(status, fmt.Sprintf("%s %s %q", m.Instance, m.State, m.LastError))
			if m.State == ledger.AwaitingHealth && strings.Contains(m.LastError, "release controller") {
				held++
			}
		}
		return held == 2, fmt.Errorf("%s", strings.Join(status, "; "))
	})
	for _, inst := range insts {
		if got, err := prober.Serving(ctx, inst.PrivateIP); err != nil || got != "v1" {
			t.Fatalf("%s answers %q (%v), want v1 while held", inst.ID, got, err)
		}
	}

	// v2 is published while they wait; the release controller starts.
	f.pub.Rollout = &Rollout{Cloud: f.cloud, Ledger: f.led, Prober: prober, Batch: 2, MinHealthyPercent: 50,
		StepTimeout: 20 * time.Second, Timeout: 3 * time.Minute, Poll: 50 * time.Millisecond}
	published := make(chan error, 1)
	go func() {
		_, err := f.publish("v2", nil)
		published <- err
	}()
	waitFor(t, "v2 recorded", func() (bool, error) {
		c, err := f.led.GetChannel(ctx, "web")
		return err == nil && c.Latest == "v2", err
	})
	f.startController()

	// Until publish returns, every instance seen in service serves v2.
	var pubErr error
	for done := false; !done; {
		select {
		case pubErr = <-published:
			done = true
		case <-time.After(50 * time.Millisecond):
		}
		out, err := f.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"tenants"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range out.AutoScalingGroups[0].Instances {
			if i.LifecycleState != astypes.LifecycleStateInService {
				continue
			}
			inst, err := f.cloud.DescribeInstance(ctx, aws.ToString(i.InstanceId))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := prober.Serving(ctx, inst.PrivateIP); err == nil && got != "v2" {
				t.Fatalf("%s is in service on %s after v2 was recorded", inst.ID, got)
			}
		}
	}
	if pubErr != nil {
		t.Fatalf("publish v2: %v", pubErr)
	}
	// Converged: both serve v2 (in service, or about to enter it: their
	// migrations' CONTINUE may not have been sent yet), and enter on it.
	for _, inst := range insts {
		if got, err := prober.Serving(ctx, inst.PrivateIP); err != nil || got != "v2" {
			t.Errorf("after publish returned: %s serves %q (%v), want v2", inst.ID, got, err)
		}
	}
	waitFor(t, "both in service", func() (bool, error) {
		ms := f.members("tenants")
		n := 0
		for _, lc := range ms {
			if lc == handover.LifecycleInService {
				n++
			}
		}
		return n == 2, fmt.Errorf("%v", ms)
	})
	for _, inst := range insts {
		if got, err := prober.Serving(ctx, inst.PrivateIP); err != nil || got != "v2" {
			t.Errorf("in service: %s serves %q (%v), want v2", inst.ID, got, err)
		}
		vols, err := f.ec2.DescribeVolumes(ctx, &awsec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{inst.ID}}}})
		if err != nil {
			t.Fatal(err)
		}
		var devs []string
		for _, v := range vols.Volumes {
			devs = append(devs, aws.ToString(v.Attachments[0].Device))
		}
		slices.Sort(devs)
		if len(devs) != 2 || devs[0] != "/dev/sdf" {
			t.Errorf("%s has volumes at %v, want its state at /dev/sdf and one release", inst.ID, devs)
		}
	}
	waitFor(t, "no loose release volumes", func() (bool, error) {
		vols, err := f.cloud.FindVolumes(ctx, map[string]string{TagManaged: "true", handover.TagPurpose: PurposeInstance})
		loose := 0
		for _, v := range vols {
			if v.AttachedTo == "" {
				loose++
			}
		}
		return err == nil && len(vols) == 2 && loose == 0, fmt.Errorf("%d release volumes, %d unattached (%v)", len(vols), loose, err)
	})
}

// members maps the group's instances to their lifecycle states.
func (f *fleet) members(group string) map[string]string {
	f.t.Helper()
	ms, err := f.cloud.GroupMembers(f.t.Context(), group)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Instance] = m.Lifecycle
	}
	return out
}
