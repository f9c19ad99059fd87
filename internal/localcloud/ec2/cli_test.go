package ec2_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// awsCLIv2 returns an AWS CLI version 2 on this machine, or skips.
func awsCLIv2(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/aws", "/usr/local/bin/aws"} {
		out, err := exec.Command(p, "--version").CombinedOutput()
		if err == nil && strings.HasPrefix(string(out), "aws-cli/2.") {
			return p
		}
	}
	t.Skip("no AWS CLI version 2 installed (Debian package awscli)")
	return ""
}

// TestAWSCLI drives the local EC2 with the real AWS CLI v2, only the
// endpoint URL changed.
func TestAWSCLI(t *testing.T) {
	cli := awsCLIv2(t)
	e := newEnv(t)
	home := t.TempDir()
	run := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(cli, append([]string{"ec2", "--endpoint-url", e.srv.URL, "--output", "json"}, args...)...)
		cmd.Env = []string{
			"HOME=" + home, "PATH=" + os.Getenv("PATH"),
			"AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=" + filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
			"AWS_PAGER=",
		}
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("aws ec2 %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("aws ec2 %s printed %q: %v", strings.Join(args, " "), out, err)
		}
		return v
	}
	vol := run("create-volume", "--availability-zone", zoneA, "--size", "2",
		"--tag-specifications", "ResourceType=volume,Tags=[{Key=db,Value=orders}]")
	id, _ := vol["VolumeId"].(string)
	if !strings.HasPrefix(id, "vol-") || vol["State"] != "creating" {
		t.Fatalf("create-volume printed %v", vol)
	}
	for range 5 {
		run("create-volume", "--availability-zone", zoneB, "--size", "1")
	}
	// --page-size makes the CLI page with MaxResults/NextToken itself.
	all := run("describe-volumes", "--page-size", "5")
	if n := len(all["Volumes"].([]any)); n != 6 {
		t.Errorf("describe-volumes listed %d volumes, want 6", n)
	}
	byTag := run("describe-volumes", "--filters", "Name=tag:db,Values=orders", "Name=availability-zone,Values="+zoneA)
	if vs := byTag["Volumes"].([]any); len(vs) != 1 || vs[0].(map[string]any)["VolumeId"] != id {
		t.Errorf("filtered describe-volumes: %v", byTag)
	}
	snap := run("create-snapshot", "--volume-id", id, "--description", "from the CLI")
	if snap["State"] != "pending" {
		t.Errorf("create-snapshot printed %v", snap)
	}
	e.waitSnapshotCompleted(snap["SnapshotId"].(string))
	snaps := run("describe-snapshots", "--owner-ids", "self")
	if s := snaps["Snapshots"].([]any); len(s) != 1 || s[0].(map[string]any)["State"] != "completed" {
		t.Errorf("describe-snapshots: %v", snaps)
	}
	zones := run("describe-availability-zones")
	if len(zones["AvailabilityZones"].([]any)) != 3 {
		t.Errorf("describe-availability-zones: %v", zones)
	}
}
