package autoscaling

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/handover-dev/handover/internal/events"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// cliRequest sends a request exactly as Debian's awscli 2.9.19 does: the
// body and headers below were captured from `aws autoscaling …` pointed at
// a listener with --endpoint-url (signature and date aside, which the local
// cloud does not check).
func cliRequest(t *testing.T, h *harness, command, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("User-Agent", "aws-cli/2.9.19 Python/3.11.2 Linux/6.1.0 source/x86_64.debian.12 prompt/off command/autoscaling."+command)
	req.Header.Set("X-Amz-Date", "20260301T120000Z")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260301/us-east-1/autoscaling/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=70670bcb8dedf9f2c09da8af8e9530c48a33320e82cc2956792b9ab6e12da22f")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Fatalf("Content-Type %q", ct)
	}
	return resp.StatusCode, string(b)
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// golden compares got, with its random ids masked, to testdata/name.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = uuidRE.ReplaceAllString(got, "UUID")
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n got: %s\nwant: %s", path, got, want)
	}
}

func TestAWSCLIWireFormat(t *testing.T) {
	h := newHarness(t)
	h.createGroup("my-asg", 0, 2, 1, withTargetGroup, withHook("launch-hook", events.TransitionLaunching, 300, "ABANDON", metadata))
	h.step()
	id := aws.ToString(h.only("my-asg", types.LifecycleStatePendingWait).InstanceId)

	status, body := cliRequest(t, h, "describe-auto-scaling-groups",
		"Action=DescribeAutoScalingGroups&Version=2011-01-01&AutoScalingGroupNames.member.1=my-asg")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if err := xml.Unmarshal([]byte(body), new(any)); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	golden(t, "describe-auto-scaling-groups.xml", body)

	complete := "Action=CompleteLifecycleAction&Version=2011-01-01&LifecycleHookName=launch-hook&AutoScalingGroupName=my-asg&LifecycleActionResult=CONTINUE&InstanceId=" + id
	status, body = cliRequest(t, h, "complete-lifecycle-action", complete)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	golden(t, "complete-lifecycle-action.xml", body)

	// Completing it again: the error AWS gives, in its error document.
	status, body = cliRequest(t, h, "complete-lifecycle-action", complete)
	if status != http.StatusBadRequest {
		t.Fatalf("status %d: %s", status, body)
	}
	var e struct {
		XMLName xml.Name
		Type    string `xml:"Error>Type"`
		Code    string `xml:"Error>Code"`
		Message string `xml:"Error>Message"`
		ID      string `xml:"RequestId"`
	}
	if err := xml.Unmarshal([]byte(body), &e); err != nil {
		t.Fatal(err)
	}
	if e.XMLName.Local != "ErrorResponse" || e.XMLName.Space != xmlns || e.Type != "Sender" || e.Code != "ValidationError" || e.Message != "No active Lifecycle Action found with instance ID "+id || e.ID == "" {
		t.Fatalf("error document = %+v", e)
	}

	// By token, the form the CLI sends with --lifecycle-action-token.
	status, body = cliRequest(t, h, "complete-lifecycle-action",
		"Action=CompleteLifecycleAction&Version=2011-01-01&LifecycleHookName=launch-hook&AutoScalingGroupName=my-asg&LifecycleActionToken=bfa2a8d4-4e7b-4c3e-8a5a-1c3e7a0d2f11&LifecycleActionResult=ABANDON")
	if status != http.StatusBadRequest || !strings.Contains(body, "<Message>No active Lifecycle Action found with token bfa2a8d4-4e7b-4c3e-8a5a-1c3e7a0d2f11</Message>") {
		t.Fatalf("status %d: %s", status, body)
	}
}

// TestRealAWSCLI runs Debian's AWS CLI v2 against the service. The CLI
// takes seconds to start each time, so the test runs only when asked
// (HANDOVER_TEST_AWSCLI=1) and the CLI is installed (apt-get install
// awscli); TestAWSCLIWireFormat covers the same requests on every run.
func TestRealAWSCLI(t *testing.T) {
	const cli = "/usr/bin/aws"
	if os.Getenv("HANDOVER_TEST_AWSCLI") != "1" {
		t.Skip("set HANDOVER_TEST_AWSCLI=1 to run the real AWS CLI")
	}
	out, err := exec.Command(cli, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "aws-cli/2.") {
		t.Skipf("no AWS CLI v2 at %s", cli)
	}
	h := newHarness(t)
	h.createGroup("my-asg", 0, 2, 1, withHook("launch-hook", events.TransitionLaunching, 300, "ABANDON", metadata))
	h.step()
	id := aws.ToString(h.only("my-asg", types.LifecycleStatePendingWait).InstanceId)

	run := cliRunner(cli, h)
	stdout, stderr, err := run("describe-auto-scaling-groups", "--auto-scaling-group-names", "my-asg")
	if err != nil {
		t.Fatalf("describe-auto-scaling-groups: %v\n%s", err, stderr)
	}
	var groups struct {
		AutoScalingGroups []struct {
			AutoScalingGroupName string
			DesiredCapacity      int
			Instances            []struct{ InstanceId, LifecycleState, HealthStatus string }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &groups); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(groups.AutoScalingGroups) != 1 || groups.AutoScalingGroups[0].DesiredCapacity != 1 || len(groups.AutoScalingGroups[0].Instances) != 1 ||
		groups.AutoScalingGroups[0].Instances[0].LifecycleState != "Pending:Wait" || groups.AutoScalingGroups[0].Instances[0].InstanceId != id {
		t.Fatalf("CLI output: %s", stdout)
	}

	args := []string{"complete-lifecycle-action", "--auto-scaling-group-name", "my-asg", "--lifecycle-hook-name", "launch-hook", "--lifecycle-action-result", "CONTINUE", "--instance-id", id}
	if _, stderr, err := run(args...); err != nil {
		t.Fatalf("complete-lifecycle-action: %v\n%s", err, stderr)
	}
	_, stderr, err = run(args...)
	want := "An error occurred (ValidationError) when calling the CompleteLifecycleAction operation (reached max retries: 0): No active Lifecycle Action found with instance ID " + id
	if err == nil || !strings.Contains(stderr, want) {
		t.Fatalf("second complete: %v\n%s", err, stderr)
	}
}

// cliRunner runs the AWS CLI's autoscaling commands against h.
func cliRunner(cli string, h *harness) func(args ...string) (stdout, stderr string, err error) {
	return func(args ...string) (string, string, error) {
		cmd := exec.Command(cli, append([]string{"--endpoint-url", h.srv.URL, "--output", "json", "autoscaling"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1", "AWS_PAGER=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
}

// TestAWSCLIInstanceMaintenancePolicy sends the body `aws autoscaling
// update-auto-scaling-group --instance-maintenance-policy
// MinHealthyPercentage=100,MaxHealthyPercentage=200` sends (captured from
// awscli 1.45.11; 2.9.19 predates the option, and the query serializer
// is botocore's in both) and reads the policy back as the CLI would.
func TestAWSCLIInstanceMaintenancePolicy(t *testing.T) {
	h := newHarness(t)
	h.createGroup("my-asg", 0, 2, 1)
	status, body := cliRequest(t, h, "update-auto-scaling-group",
		"Action=UpdateAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=my-asg&InstanceMaintenancePolicy.MinHealthyPercentage=100&InstanceMaintenancePolicy.MaxHealthyPercentage=200")
	if status != http.StatusOK || !strings.HasPrefix(body, "<?xml") || !strings.Contains(body, "<UpdateAutoScalingGroupResponse xmlns=\""+xmlns+"\">") {
		t.Fatalf("status %d: %s", status, body)
	}
	status, body = cliRequest(t, h, "describe-auto-scaling-groups",
		"Action=DescribeAutoScalingGroups&Version=2011-01-01&AutoScalingGroupNames.member.1=my-asg")
	want := "<InstanceMaintenancePolicy><MinHealthyPercentage>100</MinHealthyPercentage><MaxHealthyPercentage>200</MaxHealthyPercentage></InstanceMaintenancePolicy>"
	if status != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("status %d, want %s in: %s", status, want, body)
	}

	// Clearing it drops the element, as for a group that never had one.
	status, body = cliRequest(t, h, "update-auto-scaling-group",
		"Action=UpdateAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=my-asg&InstanceMaintenancePolicy.MinHealthyPercentage=-1&InstanceMaintenancePolicy.MaxHealthyPercentage=-1")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if _, body = cliRequest(t, h, "describe-auto-scaling-groups", "Action=DescribeAutoScalingGroups&Version=2011-01-01&AutoScalingGroupNames.member.1=my-asg"); strings.Contains(body, "InstanceMaintenancePolicy") {
		t.Fatalf("cleared policy still described: %s", body)
	}
}

// TestRealAWSCLIInstanceMaintenancePolicy is the same with the CLI itself,
// any version that knows the option (AWS added it in November 2023, after
// Debian's 2.9.19), when asked as for TestRealAWSCLI.
// HANDOVER_TEST_AWSCLI_BIN names another CLI to run, e.g. a pip-installed
// one.
func TestRealAWSCLIInstanceMaintenancePolicy(t *testing.T) {
	cli := "/usr/bin/aws"
	if bin := os.Getenv("HANDOVER_TEST_AWSCLI_BIN"); bin != "" {
		cli = bin
	}
	if os.Getenv("HANDOVER_TEST_AWSCLI") != "1" {
		t.Skip("set HANDOVER_TEST_AWSCLI=1 to run the real AWS CLI")
	}
	if _, err := exec.LookPath(cli); err != nil {
		t.Skipf("no AWS CLI at %s", cli)
	}
	h := newHarness(t)
	h.createGroup("my-asg", 0, 2, 1)
	run := cliRunner(cli, h)
	_, stderr, err := run("update-auto-scaling-group", "--auto-scaling-group-name", "my-asg", "--instance-maintenance-policy", "MinHealthyPercentage=100,MaxHealthyPercentage=200")
	if err != nil && strings.Contains(stderr, "Unknown options") {
		t.Skipf("this AWS CLI predates --instance-maintenance-policy: %s", stderr)
	}
	if err != nil {
		t.Fatalf("update-auto-scaling-group: %v\n%s", err, stderr)
	}
	stdout, stderr, err := run("describe-auto-scaling-groups", "--auto-scaling-group-names", "my-asg")
	if err != nil {
		t.Fatalf("describe-auto-scaling-groups: %v\n%s", err, stderr)
	}
	var groups struct {
		AutoScalingGroups []struct {
			InstanceMaintenancePolicy *struct{ MinHealthyPercentage, MaxHealthyPercentage int }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &groups); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(groups.AutoScalingGroups) != 1 || groups.AutoScalingGroups[0].InstanceMaintenancePolicy == nil ||
		*groups.AutoScalingGroups[0].InstanceMaintenancePolicy != (struct{ MinHealthyPercentage, MaxHealthyPercentage int }{100, 200}) {
		t.Fatalf("CLI output: %s", stdout)
	}
	// Out of range: the CLI shows the service's validation error.
	_, stderr, err = run("update-auto-scaling-group", "--auto-scaling-group-name", "my-asg", "--instance-maintenance-policy", "MinHealthyPercentage=0,MaxHealthyPercentage=150")
	if err == nil || !strings.Contains(stderr, "ValidationError") || !strings.Contains(stderr, "cannot be greater than 100") {
		t.Fatalf("invalid policy: %v\n%s", err, stderr)
	}
}
