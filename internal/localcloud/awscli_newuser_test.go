package localcloud

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

// What a new user does with the AWS CLI against a local cloud started with
// no catalog: the default image, groups on launch configurations, and
// lifecycle hooks that notify a queue directly.

// newUserCLI starts a local cloud without a catalog and returns the CLI
// pointed at it.
func newUserCLI(t *testing.T) cli {
	t.Helper()
	if _, err := os.Stat(awsCLI); err != nil {
		if os.Getenv("HANDOVER_SKIP_AWSCLI") == "1" {
			t.Skip("HANDOVER_SKIP_AWSCLI=1 and no AWS CLI at " + awsCLI)
		}
		t.Fatalf("%s is missing: run `make deps` (installs Debian's awscli), or set HANDOVER_SKIP_AWSCLI=1", awsCLI)
	}
	lc, err := New(Config{DataDir: t.TempDir(), Tick: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lc.Handler())
	t.Cleanup(func() { srv.Close(); lc.Close() })
	home := t.TempDir()
	return cli{t: t, endpoint: srv.URL, env: []string{
		"HOME=" + home, "PATH=/usr/bin:/bin", "AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1",
	}}
}

// fails runs a command that must fail and returns its stderr.
func (c cli) fails(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(awsCLI, append([]string{"--endpoint-url", c.endpoint, "--output", "json"}, args...)...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err == nil {
		c.t.Fatalf("aws %s succeeded: %s", strings.Join(args, " "), out.String())
	}
	return errb.String()
}

func (c cli) json(v any, args ...string) {
	c.t.Helper()
	if err := json.Unmarshal([]byte(c.run(args...)), v); err != nil {
		c.t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
	}
}

func waitFile(c cli, path, want string) {
	c.t.Helper()
	c.eventually(path+" written by user data", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.TrimSpace(string(b)) == want
	})
}

// TestAWSCLIDefaultImage: without a catalog, describe-images lists the
// default image, and run-instances from it runs the user data, which writes
// a file.
func TestAWSCLIDefaultImage(t *testing.T) {
	c := newUserCLI(t)
	var images struct {
		Images []struct{ ImageId, Name, State, OwnerId string }
	}
	c.json(&images, "ec2", "describe-images")
	if len(images.Images) != 1 || images.Images[0].ImageId != ec2.DefaultImageID || images.Images[0].Name != "handover-localcloud-default" || images.Images[0].State != "available" {
		t.Fatalf("describe-images: %+v", images)
	}
	if got := c.text("ec2", "describe-images", "--filters", "Name=name,Values=handover-localcloud-*", "--query", "Images[0].ImageId"); got != ec2.DefaultImageID {
		t.Fatalf("by name: %s", got)
	}
	if got := c.text("ec2", "describe-images", "--image-ids", ec2.DefaultImageID, "--owners", "self", "--query", "Images[0].ImageId"); got != ec2.DefaultImageID {
		t.Fatalf("by id: %s", got)
	}
	if stderr := c.fails("ec2", "describe-images", "--image-ids", "ami-0fffffffffffffff0"); !strings.Contains(stderr, "InvalidAMIID.NotFound") {
		t.Fatalf("unknown image: %s", stderr)
	}

	out := filepath.Join(t.TempDir(), "hello")
	id := c.text("ec2", "run-instances", "--image-id", ec2.DefaultImageID, "--count", "1",
		"--user-data", "#!/bin/sh\necho \"hello from $HANDOVER_INSTANCE_ID\" > "+out+"\n", "--query", "Instances[0].InstanceId")
	waitFile(c, out, "hello from "+id)
	if got := c.text("ec2", "describe-instances", "--instance-ids", id, "--query", "Reservations[0].Instances[0].State.Name"); got != "running" {
		t.Fatalf("instance %s is %s after its user data", id, got)
	}
}

// TestAWSCLILaunchConfigurations: a group on a launch configuration
// launches its image and user data; the configuration is paged through,
// filtered by name, and kept from deletion while the group uses it.
func TestAWSCLILaunchConfigurations(t *testing.T) {
	c := newUserCLI(t)
	dir := t.TempDir()
	// The CLI base64-encodes --user-data for create-launch-configuration.
	c.run("autoscaling", "create-launch-configuration", "--launch-configuration-name", "kv-v1",
		"--image-id", ec2.DefaultImageID, "--instance-type", "t3.micro",
		"--user-data", "#!/bin/sh\necho v1 > "+dir+"/$HANDOVER_INSTANCE_ID\n")
	c.run("autoscaling", "create-launch-configuration", "--launch-configuration-name", "kv-v2",
		"--image-id", ec2.DefaultImageID, "--instance-type", "t3.small", "--key-name", "ops", "--security-groups", "sg-0a")
	if stderr := c.fails("autoscaling", "create-launch-configuration", "--launch-configuration-name", "kv-v1",
		"--image-id", ec2.DefaultImageID, "--instance-type", "t3.micro"); !strings.Contains(stderr, "(AlreadyExists)") ||
		!strings.Contains(stderr, "A launch configuration already exists with the name kv-v1") {
		t.Fatalf("duplicate: %s", stderr)
	}
	var lcs struct {
		LaunchConfigurations []struct {
			LaunchConfigurationName, ImageId, InstanceType, UserData, KeyName, LaunchConfigurationARN string
			SecurityGroups                                                                            []string
			InstanceMonitoring                                                                        struct{ Enabled bool }
		}
	}
	// --page-size 1 makes the CLI follow NextToken.
	c.json(&lcs, "autoscaling", "describe-launch-configurations", "--page-size", "1")
	if len(lcs.LaunchConfigurations) != 2 || lcs.LaunchConfigurations[0].LaunchConfigurationName != "kv-v1" || lcs.LaunchConfigurations[1].KeyName != "ops" ||
		lcs.LaunchConfigurations[1].InstanceType != "t3.small" || len(lcs.LaunchConfigurations[1].SecurityGroups) != 1 || !lcs.LaunchConfigurations[0].InstanceMonitoring.Enabled ||
		!strings.HasPrefix(lcs.LaunchConfigurations[0].LaunchConfigurationARN, "arn:aws:autoscaling:us-east-1:000000000000:launchConfiguration:") {
		t.Fatalf("describe-launch-configurations: %+v", lcs)
	}
	if ud, _ := base64.StdEncoding.DecodeString(lcs.LaunchConfigurations[0].UserData); !strings.HasPrefix(string(ud), "#!/bin/sh\necho v1") {
		t.Fatalf("user data %q", lcs.LaunchConfigurations[0].UserData)
	}
	if got := c.run("autoscaling", "describe-launch-configurations", "--launch-configuration-names", "kv-v2", "nope", "--query", "LaunchConfigurations[].LaunchConfigurationName"); got != "[\n    \"kv-v2\"\n]" {
		t.Fatalf("by name: %s", got)
	}

	c.run("autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "kv", "--launch-configuration-name", "kv-v1",
		"--min-size", "1", "--max-size", "2", "--availability-zones", "us-east-1a")
	var id string
	c.eventually("an instance in service", func() bool {
		id = c.text("autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", "kv", "--query", "AutoScalingGroups[0].Instances[0].InstanceId || ''")
		return id != "" && c.text("autoscaling", "describe-auto-scaling-instances", "--instance-ids", id, "--query", "AutoScalingInstances[0].LifecycleState") == "InService"
	})
	waitFile(c, filepath.Join(dir, id), "v1")
	if got := c.text("autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", "kv", "--query", "AutoScalingGroups[0].LaunchConfigurationName"); got != "kv-v1" {
		t.Fatalf("group's launch configuration %s", got)
	}
	if got := c.text("autoscaling", "describe-auto-scaling-instances", "--instance-ids", id, "--query", "AutoScalingInstances[0].LaunchConfigurationName"); got != "kv-v1" {
		t.Fatalf("instance's launch configuration %s", got)
	}
	if got := c.text("ec2", "describe-instances", "--instance-ids", id, "--query", "Reservations[0].Instances[0].InstanceType"); got != "t3.micro" {
		t.Fatalf("instance type %s", got)
	}
	if stderr := c.fails("autoscaling", "delete-launch-configuration", "--launch-configuration-name", "kv-v1"); !strings.Contains(stderr, "(ResourceInUse)") ||
		!strings.Contains(stderr, "Cannot delete launch configuration kv-v1 because it is attached to AutoScalingGroup kv") {
		t.Fatalf("delete in use: %s", stderr)
	}
	c.run("autoscaling", "update-auto-scaling-group", "--auto-scaling-group-name", "kv", "--launch-configuration-name", "kv-v2")
	c.run("autoscaling", "delete-launch-configuration", "--launch-configuration-name", "kv-v1")
	if stderr := c.fails("autoscaling", "delete-launch-configuration", "--launch-configuration-name", "kv-v1"); !strings.Contains(stderr, "Launch configuration name not found - Launch configuration kv-v1 not found") {
		t.Fatalf("delete twice: %s", stderr)
	}
}

// TestAWSCLIHookNotifiesQueue: a hook whose NotificationTargetARN is a
// queue puts AWS's test message there when it is put, then a message per
// lifecycle action, with no EventBridge rule anywhere; the token in it
// completes the action.
func TestAWSCLIHookNotifiesQueue(t *testing.T) {
	c := newUserCLI(t)
	url := c.text("sqs", "create-queue", "--queue-name", "hooks", "--query", "QueueUrl")
	arn := c.text("sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "QueueArn", "--query", "Attributes.QueueArn")
	const role = "arn:aws:iam::000000000000:role/asg-notifications"
	c.run("autoscaling", "create-launch-configuration", "--launch-configuration-name", "kv", "--image-id", ec2.DefaultImageID, "--instance-type", "t3.micro")
	c.run("autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "kv", "--launch-configuration-name", "kv",
		"--min-size", "0", "--max-size", "1", "--availability-zones", "us-east-1a")

	if stderr := c.fails("autoscaling", "put-lifecycle-hook", "--lifecycle-hook-name", "h", "--auto-scaling-group-name", "kv",
		"--lifecycle-transition", "autoscaling:EC2_INSTANCE_LAUNCHING", "--notification-target-arn", arn+"-missing", "--role-arn", role); !strings.Contains(stderr,
		"Unable to publish test message to notification target "+arn+"-missing using IAM role "+role+". Please check your target and role configuration and try to put lifecycle hook again.") {
		t.Fatalf("missing queue: %s", stderr)
	}
	if stderr := c.fails("autoscaling", "put-lifecycle-hook", "--lifecycle-hook-name", "h", "--auto-scaling-group-name", "kv",
		"--lifecycle-transition", "autoscaling:EC2_INSTANCE_LAUNCHING", "--notification-target-arn", arn); !strings.Contains(stderr, "(ValidationError)") || !strings.Contains(stderr, "no RoleARN") {
		t.Fatalf("no role: %s", stderr)
	}
	c.run("autoscaling", "put-lifecycle-hook", "--lifecycle-hook-name", "handover", "--auto-scaling-group-name", "kv",
		"--lifecycle-transition", "autoscaling:EC2_INSTANCE_LAUNCHING", "--heartbeat-timeout", "300",
		"--notification-target-arn", arn, "--role-arn", role, "--notification-metadata", `{"database":"orders"}`)

	type message struct{ Body, ReceiptHandle string }
	receive := func() []message {
		var out struct{ Messages []message }
		raw := c.run("sqs", "receive-message", "--queue-url", url, "--max-number-of-messages", "10", "--wait-time-seconds", "1")
		if raw != "" {
			if err := json.Unmarshal([]byte(raw), &out); err != nil {
				t.Fatalf("receive-message: %v\n%s", err, raw)
			}
		}
		for _, m := range out.Messages {
			c.run("sqs", "delete-message", "--queue-url", url, "--receipt-handle", m.ReceiptHandle)
		}
		return out.Messages
	}
	var test map[string]string
	c.eventually("the test notification", func() bool {
		for _, m := range receive() {
			if _, err := events.DecodeSQSBody(m.Body); events.IsTestNotification(err) {
				_ = json.Unmarshal([]byte(m.Body), &test)
			}
		}
		return test != nil
	})
	if test["AutoScalingGroupName"] != "kv" || test["Service"] != "AWS Auto Scaling" || test["AccountId"] != "000000000000" ||
		!strings.HasPrefix(test["AutoScalingGroupARN"], "arn:aws:autoscaling:us-east-1:000000000000:autoScalingGroup:") {
		t.Fatalf("test notification %v", test)
	}
	if got := c.text("autoscaling", "describe-lifecycle-hooks", "--auto-scaling-group-name", "kv", "--query", "LifecycleHooks[0].RoleARN"); got != role {
		t.Fatalf("hook's role %s", got)
	}

	c.run("autoscaling", "set-desired-capacity", "--auto-scaling-group-name", "kv", "--desired-capacity", "1")
	var launch *events.Event
	c.eventually("the lifecycle notification", func() bool {
		for _, m := range receive() {
			ev, err := events.DecodeSQSBody(m.Body)
			if err != nil {
				t.Fatalf("message %s: %v", m.Body, err)
			}
			launch = ev
		}
		return launch != nil
	})
	l := launch.Lifecycle
	if launch.Delivery != events.DeliveryHookNotification || launch.Kind != events.KindLaunchAction || l.Group != "kv" || l.Hook != "handover" || l.Metadata != `{"database":"orders"}` {
		t.Fatalf("notification: %+v %+v", launch, l)
	}
	if got := c.text("autoscaling", "describe-auto-scaling-instances", "--instance-ids", l.InstanceID, "--query", "AutoScalingInstances[0].LifecycleState"); got != "Pending:Wait" {
		t.Fatalf("instance %s is %s", l.InstanceID, got)
	}
	c.run("autoscaling", "complete-lifecycle-action", "--lifecycle-hook-name", "handover", "--auto-scaling-group-name", "kv",
		"--lifecycle-action-result", "CONTINUE", "--lifecycle-action-token", l.Token)
	c.eventually("InService", func() bool {
		return c.text("autoscaling", "describe-auto-scaling-instances", "--instance-ids", l.InstanceID, "--query", "AutoScalingInstances[0].LifecycleState") == "InService"
	})
}
