package localcloud

import (
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// TestAWSCLITags tags the parts of an environment with the real AWS CLI
// and reads the tags back the ways handover finds environments:
// describe-tags, get-bucket-tagging, and a group tag filter; and switches
// the entry listener with modify-listener.
func TestAWSCLITags(t *testing.T) {
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
	c := cli{t: t, endpoint: srv.URL, env: []string{
		"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin", "AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true",
	}}

	lb := c.text("elbv2", "create-load-balancer", "--name", "web", "--query", "LoadBalancers[0].LoadBalancerArn")
	tg := c.text("elbv2", "create-target-group", "--name", "web-tg", "--protocol", "HTTP", "--port", "8080",
		"--tags", "Key=handover:environment,Value=staging", "--query", "TargetGroups[0].TargetGroupArn")
	l := c.text("elbv2", "create-listener", "--load-balancer-arn", lb, "--protocol", "HTTP", "--port", "80",
		"--default-actions", "Type=forward,TargetGroupArn="+tg, "--query", "Listeners[0].ListenerArn")
	c.run("elbv2", "add-tags", "--resource-arns", lb, l, "--tags", "Key=handover:environment,Value=staging", "Key=handover:entry,Value=true")
	for _, arn := range []string{lb, tg, l} {
		if got := c.text("elbv2", "describe-tags", "--resource-arns", arn,
			"--query", "TagDescriptions[0].Tags[?Key=='handover:environment'].Value | [0]"); got != "staging" {
			t.Errorf("describe-tags %s: handover:environment = %q", arn, got)
		}
	}
	c.run("elbv2", "remove-tags", "--resource-arns", l, "--tag-keys", "handover:entry")
	if got := c.run("elbv2", "describe-tags", "--resource-arns", l, "--query", "length(TagDescriptions[0].Tags)"); got != "1" {
		t.Errorf("after remove-tags the listener has %s tags, want 1", got)
	}

	// The cutover: the entry listener forwards to another target group.
	tg2 := c.text("elbv2", "create-target-group", "--name", "web-next", "--protocol", "HTTP", "--port", "8080", "--query", "TargetGroups[0].TargetGroupArn")
	c.run("elbv2", "modify-listener", "--listener-arn", l, "--default-actions", "Type=forward,TargetGroupArn="+tg2)
	if got := c.text("elbv2", "describe-listeners", "--listener-arns", l, "--query", "Listeners[0].DefaultActions[0].TargetGroupArn"); got != tg2 {
		t.Errorf("after modify-listener the listener forwards to %s, want %s", got, tg2)
	}

	c.run("s3api", "create-bucket", "--bucket", "staging-assets")
	c.run("s3api", "put-bucket-tagging", "--bucket", "staging-assets", "--tagging", "TagSet=[{Key=handover:environment,Value=staging}]")
	if got := c.text("s3api", "get-bucket-tagging", "--bucket", "staging-assets", "--query", "TagSet[0].Value"); got != "staging" {
		t.Errorf("get-bucket-tagging: %q", got)
	}

	c.run("ec2", "create-launch-template", "--launch-template-name", "orders", "--launch-template-data", `{"ImageId":"`+ami+`"}`)
	c.run("autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "orders", "--min-size", "0", "--max-size", "1",
		"--launch-template", "LaunchTemplateName=orders", "--availability-zones", "us-east-1a")
	c.run("autoscaling", "create-or-update-tags", "--tags", "ResourceId=orders,ResourceType=auto-scaling-group,Key=handover:environment,Value=staging,PropagateAtLaunch=true")
	if got := c.run("autoscaling", "describe-auto-scaling-groups", "--filters", "Name=tag:handover:environment,Values=staging",
		"--query", "AutoScalingGroups[].AutoScalingGroupName"); got != "[\n    \"orders\"\n]" {
		t.Errorf("groups tagged staging: %s", got)
	}
	c.run("autoscaling", "delete-tags", "--tags", "ResourceId=orders,ResourceType=auto-scaling-group,Key=handover:environment")
	if got := c.run("autoscaling", "describe-auto-scaling-groups", "--filters", "Name=tag:handover:environment,Values=staging",
		"--query", "length(AutoScalingGroups)"); got != "0" {
		t.Errorf("after delete-tags %s groups are tagged staging", got)
	}
}
