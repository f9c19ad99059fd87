package cli

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/localcloud"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
	"github.com/handover-dev/handover/internal/release"
)

// TestReleaseCommands: on the local cloud, init, publish and list as a
// user runs them on a release server, and the bad input the issue names.
func TestReleaseCommands(t *testing.T) {
	dir := t.TempDir()
	const ami = "ami-0123456789abcdef0"
	lc, err := localcloud.New(localcloud.Config{DataDir: filepath.Join(dir, "cloud"), Tick: 100 * time.Millisecond,
		Catalog: map[string]ec2.Image{ami: {Command: []string{"/bin/sh", "-c", "exec sleep 600"}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lc.Handler())
	t.Cleanup(func() { srv.Close(); lc.Close() })
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDLOCAL", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_ENDPOINT_URL": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"HANDOVER_LEDGER": "", "HANDOVER_INSTANCE_ID": "", "HANDOVER_INSTANCE_DIR": "",
	} {
		t.Setenv(k, v)
	}
	e := awsec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", "")})
	run, err := e.RunInstances(t.Context(), &awsec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1a")}})
	if err != nil {
		t.Fatal(err)
	}
	server := aws.ToString(run.Instances[0].InstanceId)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err := e.DescribeInstances(t.Context(), &awsec2.DescribeInstancesInput{InstanceIds: []string{server}})
		if err == nil && out.Reservations[0].Instances[0].State.Name == ec2types.InstanceStateNameRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the release server did not start")
		}
	}
	ledgerURL := "sqlite://" + filepath.Join(dir, "ledger.db")
	onServer := []string{"--endpoint-url", srv.URL, "--ledger", ledgerURL, "--instance-id", server,
		"--instance-dir", filepath.Join(dir, "cloud", "ec2", "instances", server), "--poll", "20ms"}
	cmd := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := executeNoPanic(t, args, &out, &errb)
		return code, out.String(), errb.String()
	}
	build := filepath.Join(dir, "build")
	if err := os.MkdirAll(filepath.Join(build, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range map[string]string{"index.html": "<h1>v1</h1>", "bin/app": "#!/bin/sh\n"} {
		if err := os.WriteFile(filepath.Join(build, p), []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}

	// Bad input: exit 2, a message saying what to do.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"LedgerMissing", append([]string{"release", "publish", build, "--channel", "web", "--name", "v1"}, onServer...), "`handover release init` makes a new one"},
		{"EmptyDir", append([]string{"release", "publish", empty, "--channel", "web", "--name", "v1"}, onServer...), "is empty"},
		{"MissingDir", append([]string{"release", "publish", filepath.Join(dir, "nope"), "--channel", "web", "--name", "v1"}, onServer...), "does not exist"},
		{"NoName", append([]string{"release", "publish", build, "--channel", "web"}, onServer...), "--name is required"},
		{"NoChannel", append([]string{"release", "publish", build, "--name", "v1"}, onServer...), "--channel is required"},
		{"TwoDirs", []string{"release", "publish", build, build, "--channel", "web", "--name", "v1"}, "give one DIR"},
		{"NoWhere", []string{"release", "publish", build, "--channel", "web", "--name", "v1", "--endpoint-url", srv.URL, "--ledger", ledgerURL}, "--volume-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := cmd(tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}

	if code, out, stderr := cmd(append([]string{"release", "init", "--channel", "web"}, onServer...)...); code != 0 || !strings.Contains(out, "attached to "+server+" at /dev/sdg") {
		t.Fatalf("init: exit %d, %q, %q", code, out, stderr)
	}
	code, _, stderr := cmd(append([]string{"release", "publish", build, "--channel", "api", "--name", "v1"}, onServer...)...)
	if code != 2 || !strings.Contains(stderr, "channel api has no release volume") {
		t.Fatalf("publish to a channel without a volume: exit %d, %q", code, stderr)
	}
	code, out, stderr := cmd(append([]string{"release", "publish", build, "--channel", "web", "--name", "v1", "--output", "json"}, onServer...)...)
	if code != 0 {
		t.Fatalf("publish: exit %d, %q", code, stderr)
	}
	var res release.PublishResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Release == nil || res.Release.SnapshotID == "" || res.Sync.Copied != 2 {
		t.Fatalf("publish --output json: %v, %q", err, out)
	}
	code, out, stderr = cmd(append([]string{"release", "publish", build, "--channel", "web", "--name", "v2"}, onServer...)...)
	if code != 0 || !strings.Contains(out, "published v2 of channel web") || !strings.Contains(stderr, "snapshot") {
		t.Fatalf("publish v2: exit %d, %q, %q (want progress on stderr)", code, out, stderr)
	}
	code, out, _ = cmd("release", "list", "--ledger", ledgerURL)
	if code != 0 || !strings.Contains(out, "web      v1") || !regexpMatch(out, `web\s+v2\s+Published\s+snap-\S+\s+2\s+\d+\s+\S+\s+\*`) {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if code, _, stderr := cmd("release", "list", "--channel", "nope", "--ledger", ledgerURL); code != 2 || !strings.Contains(stderr, "channel nope has no releases") {
		t.Fatalf("list of an unknown channel: exit %d, %q", code, stderr)
	}
	cloudFlags := []string{"--endpoint-url", srv.URL, "--ledger", ledgerURL}
	if code, _, stderr := cmd(append([]string{"release", "rollback", "--channel", "web", "--to", "v9"}, cloudFlags...)...); code != 2 || !strings.Contains(stderr, "has no release v9; its published releases: v1, v2") {
		t.Fatalf("rollback to an unknown release: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cmd(append([]string{"release", "rollback", "--channel", "web", "--to", "v1", "--min-healthy-percent", "100"}, cloudFlags...)...); code != 2 || !strings.Contains(stderr, "--min-healthy-percent 100") {
		t.Fatalf("rollback with a bad flag: exit %d, %q", code, stderr)
	}
	code, out, stderr = cmd(append([]string{"release", "rollback", "--channel", "web", "--to", "v1"}, cloudFlags...)...)
	if code != 0 || !strings.Contains(out, "channel web is back on v1 (was \"v2\")") {
		t.Fatalf("rollback: exit %d, %q, %q", code, out, stderr)
	}
	code, out, stderr = cmd(append([]string{"release", "instances", "--channel", "web"}, cloudFlags...)...)
	if code != 0 || !strings.Contains(out, "channel web, latest v1") {
		t.Fatalf("instances: exit %d, %q, %q", code, out, stderr)
	}
}

func regexpMatch(s, re string) bool { return regexp.MustCompile(re).MatchString(s) }
