package localcloud

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

// awsCLI is Debian's AWS CLI v2, called by path because another `aws`
// (v1, from pip) may come first on PATH. `make deps` installs it.
const awsCLI = "/usr/bin/aws"

type cli struct {
	t        *testing.T
	endpoint string
	env      []string
}

func (c cli) run(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(awsCLI, append([]string{"--endpoint-url", c.endpoint, "--output", "json"}, args...)...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

func (c cli) text(args ...string) string {
	c.t.Helper()
	var s string
	if err := json.Unmarshal([]byte(c.run(args...)), &s); err != nil {
		c.t.Fatalf("aws %s: not a JSON string: %v", strings.Join(args, " "), err)
	}
	return s
}

func (c cli) eventually(what string, f func() bool) {
	c.t.Helper()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if f() {
			return
		}
	}
	c.t.Fatalf("timed out waiting for %s", what)
}

// receiveEvents drains the queue with the CLI and returns the decoded
// events handover consumes.
func (c cli) receiveEvents(url string) []*events.Event {
	c.t.Helper()
	var out struct {
		Messages []struct{ Body, ReceiptHandle string }
	}
	raw := c.run("sqs", "receive-message", "--queue-url", url, "--max-number-of-messages", "10", "--wait-time-seconds", "1", "--attribute-names", "All")
	if raw == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		c.t.Fatalf("receive-message output: %v\n%s", err, raw)
	}
	var evs []*events.Event
	for _, m := range out.Messages {
		if ev, err := events.DecodeSQSBody(m.Body); err == nil {
			evs = append(evs, ev)
		}
		c.run("sqs", "delete-message", "--queue-url", url, "--receipt-handle", m.ReceiptHandle)
	}
	return evs
}

// TestAWSCLI drives a fresh local cloud with the real AWS CLI, an
// independent client: a launch template and a group with a launch hook, an
// instance waiting in Pending:Wait until complete-lifecycle-action, standby
// in and out, a snapshot copied to a volume in another zone, and the
// lifecycle and EBS events read from SQS.
func TestAWSCLI(t *testing.T) {
	if _, err := os.Stat(awsCLI); err != nil {
		if os.Getenv("HANDOVER_SKIP_AWSCLI") == "1" {
			t.Skip("HANDOVER_SKIP_AWSCLI=1 and no AWS CLI at " + awsCLI)
		}
		t.Fatalf("%s is missing: run `make deps` (installs Debian's awscli), or set HANDOVER_SKIP_AWSCLI=1", awsCLI)
	}
	lc, err := New(Config{
		DataDir: t.TempDir(), Tick: 200 * time.Millisecond,
		Catalog: map[string]ec2.Image{ami: {Command: []string{"/bin/sh", "-c", "exec sleep 600"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lc.Handler())
	t.Cleanup(func() { srv.Close(); lc.Close() })
	home := t.TempDir()
	c := cli{t: t, endpoint: srv.URL, env: []string{
		"HOME=" + home, "PATH=/usr/bin:/bin", "AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true",
	}}

	// Events: one queue, one rule for what handover consumes.
	url := c.text("sqs", "create-queue", "--queue-name", "handover-events", "--query", "QueueUrl")
	arn := c.text("sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "QueueArn", "--query", "Attributes.QueueArn")
	c.run("events", "put-rule", "--name", "handover", "--event-pattern", `{"source":["aws.autoscaling","aws.ec2"]}`)
	c.run("events", "put-targets", "--rule", "handover", "--targets", "Id=q,Arn="+arn)

	// A launch template and a group with a launch lifecycle hook.
	userData := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\nexec sleep 600\n"))
	c.run("ec2", "create-launch-template", "--launch-template-name", "kvstore",
		"--launch-template-data", `{"ImageId":"`+ami+`","UserData":"`+userData+`"}`)
	c.run("autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "kv",
		"--launch-template", "LaunchTemplateName=kvstore,Version=$Latest", "--min-size", "0", "--max-size", "3",
		"--desired-capacity", "0", "--availability-zones", "us-east-1a", "us-east-1b")
	c.run("autoscaling", "put-lifecycle-hook", "--lifecycle-hook-name", "handover", "--auto-scaling-group-name", "kv",
		"--lifecycle-transition", "autoscaling:EC2_INSTANCE_LAUNCHING", "--heartbeat-timeout", "300",
		"--notification-metadata", `{"database":"orders"}`)
	c.run("autoscaling", "set-desired-capacity", "--auto-scaling-group-name", "kv", "--desired-capacity", "1")
	if got := c.run("autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", "kv", "--query", "AutoScalingGroups[0].DesiredCapacity"); got != "1" {
		t.Fatalf("DesiredCapacity = %s, want 1", got)
	}

	// The instance waits in Pending:Wait; its lifecycle event reaches SQS.
	var instance string
	c.eventually("an instance in Pending:Wait", func() bool {
		out := c.run("autoscaling", "describe-auto-scaling-instances", "--query", "AutoScalingInstances[?LifecycleState=='Pending:Wait'].InstanceId")
		var ids []string
		_ = json.Unmarshal([]byte(out), &ids)
		if len(ids) == 1 {
			instance = ids[0]
		}
		return instance != ""
	})
	var launch *events.Event
	c.eventually("the launch lifecycle event", func() bool {
		for _, ev := range c.receiveEvents(url) {
			if ev.Kind == events.KindLaunchAction && ev.Lifecycle.InstanceID == instance {
				launch = ev
			}
		}
		return launch != nil
	})
	if launch.Lifecycle.Metadata != `{"database":"orders"}` || launch.Lifecycle.Hook != "handover" {
		t.Errorf("launch event: %+v", launch.Lifecycle)
	}
	c.run("autoscaling", "complete-lifecycle-action", "--lifecycle-hook-name", "handover", "--auto-scaling-group-name", "kv",
		"--lifecycle-action-result", "CONTINUE", "--lifecycle-action-token", launch.Lifecycle.Token)
	state := func() string {
		return c.text("autoscaling", "describe-auto-scaling-instances", "--instance-ids", instance, "--query", "AutoScalingInstances[0].LifecycleState")
	}
	c.eventually("InService", func() bool { return state() == "InService" })

	// Standby and back.
	c.run("autoscaling", "enter-standby", "--auto-scaling-group-name", "kv", "--instance-ids", instance, "--should-decrement-desired-capacity")
	if s := state(); s != "Standby" {
		t.Errorf("after enter-standby: %s", s)
	}
	if got := c.run("autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", "kv", "--query", "AutoScalingGroups[0].DesiredCapacity"); got != "0" {
		t.Errorf("DesiredCapacity after standby with decrement = %s, want 0", got)
	}
	c.run("autoscaling", "exit-standby", "--auto-scaling-group-name", "kv", "--instance-ids", instance)
	c.eventually("InService after exit-standby", func() bool { return state() == "InService" })

	// A snapshot, and a volume from it in another zone, found by tag.
	vol := c.text("ec2", "create-volume", "--availability-zone", "us-east-1a", "--size", "1", "--query", "VolumeId")
	c.eventually("the volume", func() bool {
		return c.text("ec2", "describe-volumes", "--volume-ids", vol, "--query", "Volumes[0].State") == "available"
	})
	snap := c.text("ec2", "create-snapshot", "--volume-id", vol, "--query", "SnapshotId")
	c.eventually("the snapshot", func() bool {
		return c.text("ec2", "describe-snapshots", "--snapshot-ids", snap, "--query", "Snapshots[0].State") == "completed"
	})
	copyVol := c.text("ec2", "create-volume", "--availability-zone", "us-east-1b", "--snapshot-id", snap,
		"--tag-specifications", "ResourceType=volume,Tags=[{Key=handover:database,Value=orders}]", "--query", "VolumeId")
	if got := c.text("ec2", "describe-volumes", "--filters", "Name=tag:handover:database,Values=orders", "--query", "Volumes[0].VolumeId"); got != copyVol {
		t.Errorf("describe-volumes by tag = %s, want %s", got, copyVol)
	}
	if got := c.text("ec2", "describe-volumes", "--volume-ids", copyVol, "--query", "Volumes[0].AvailabilityZone"); got != "us-east-1b" {
		t.Errorf("copy in %s, want us-east-1b", got)
	}
	var snapEvent *events.Event
	c.eventually("the EBS snapshot event", func() bool {
		for _, ev := range c.receiveEvents(url) {
			if ev.Kind == events.KindSnapshot && ev.Snapshot.SnapshotID == snap {
				snapEvent = ev
			}
		}
		return snapEvent != nil
	})
	if !snapEvent.Snapshot.Succeeded || snapEvent.Snapshot.VolumeID != vol {
		t.Errorf("snapshot event: %+v", snapEvent.Snapshot)
	}
}
