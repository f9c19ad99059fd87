package release

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
	"github.com/handover-dev/handover/internal/testenv"
)

// TestStatefulPoolGroupWithChannel: a pool group (one database per
// instance) that also joins a release channel. handover's controller hands
// each instance its state volume at /dev/sdf, the release controller its
// release at /dev/sdg, and the agent waits for both before it starts the
// service: both volumes land, on every instance.
func TestStatefulPoolGroupWithChannel(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	hb, _ := binaries(t)
	kvBin := testenv.Binary(t, "github.com/handover-dev/handover/examples/kvstore")
	e := startCloud(t)
	ctx := t.Context()
	dir := t.TempDir()
	led, err := sqlite.Open(ctx, filepath.Join(dir, "ledger.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	f := &fleet{env: e, t: t, led: led, asg: autoscaling.NewFromConfig(e.cfg), src: t.TempDir(), hb: hb, dir: dir}
	f.server = e.runInstance(t)
	f.pub = e.publisher(led, f.server)
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
	ctlLog := filepath.Join(dir, "handover-controller.log")
	logf, err := os.Create(ctlLog)
	if err != nil {
		t.Fatal(err)
	}
	ctl := exec.Command(hb, "controller", "--endpoint-url", endpoint, "--ledger", f.ledgerURL(), "--queue-url", aws.ToString(q.QueueUrl),
		"--listen", "127.0.0.1:0", "--advance-interval", "200ms", "--poll-interval", "200ms", "--reconcile-interval", "500ms", "--queue-wait", "1s", "--no-pre-copy")
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
exec %s agent --device /dev/sdf --release-mount "$HANDOVER_INSTANCE_DIR/current" --poll-interval 50ms --poll-max 200ms --timeout 2m -- %s --listen "$HANDOVER_PRIVATE_IP:8080"
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
	f.startController()

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
