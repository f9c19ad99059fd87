package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/localcloud"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

// execCall is what the agent would have exec'd.
type execCall struct {
	path       string
	argv, envv []string
}

// runAgent runs the agent command with args and a recording exec.
func runAgent(t *testing.T, args ...string) (calls []execCall, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newAgentExec(&out, &errb, func(path string, argv, envv []string) error {
		calls = append(calls, execCall{path, argv, envv})
		return nil
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return calls, errb.String() + out.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 2 // what Execute makes of cobra's own errors
	}
	return 0
}

func TestAgentUsage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		errHas string
	}{
		{"no command", nil, 2, "missing the service to start"},
		{"dash and nothing", []string{"--device", "/dev/sdf", "--"}, 2, "missing the service to start"},
		{"command without dash", []string{"kvstore"}, 2, "before --"},
		{"arguments before the dash", []string{"kvstore", "--", "x"}, 2, "before --"},
		{"unknown flag", []string{"--colour", "red", "--", "true"}, 2, "unknown flag: --colour"},
		{"bad timeout", []string{"--timeout", "ten", "--", "true"}, 2, "--timeout"},
		{"bad device", []string{"--device", "sdf", "--", "true"}, 2, "--device"},
		{"relative mount", []string{"--mount", "state", "--", "true"}, 2, "--mount"},
		{"command not found", []string{"--", "no-such-service-handover-test"}, 2, "no-such-service-handover-test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, _, err := runAgent(t, tc.args...)
			if code := exitCode(err); code != tc.code || err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("exit %d, %v; want exit %d with %q", code, err, tc.code, tc.errHas)
			}
			if len(calls) > 0 {
				t.Errorf("exec'd %v after a usage error", calls)
			}
		})
	}
}

func TestAgentHelp(t *testing.T) {
	_, out, err := runAgent(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Examples:", "exec /usr/local/bin/handover agent --device /dev/sdf", `eval "exec handover agent -- $HANDOVER_IMAGE_COMMAND"`,
		"HANDOVER_STATE_DIR", "HANDOVER_VOLUME_ID", "HANDOVER_EPOCH", "--fs-type", "--timeout", "--mount", "never formatted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// agentCloud is a local cloud with one running instance, whose metadata
// endpoint and directory the agent is pointed at through the environment,
// as on the instance itself.
func agentCloud(t *testing.T) (cl *awsec2.Client, endpoint, dataDir, id, imdsURL string) {
	t.Helper()
	dataDir = t.TempDir()
	lc, err := localcloud.New(localcloud.Config{DataDir: dataDir,
		Catalog: map[string]ec2.Image{"ami-0123456789abcdef0": {Command: []string{"/bin/sh", "-c", `echo "imds=$AWS_EC2_METADATA_SERVICE_ENDPOINT"; exec sleep 600`}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lc.Handler())
	t.Cleanup(func() { srv.Close(); lc.Close() })
	cl = awsec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")})
	ctx := context.Background()
	out, err := cl.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1b")}})
	if err != nil {
		t.Fatal(err)
	}
	id = aws.ToString(out.Instances[0].InstanceId)
	re := regexp.MustCompile(`imds=(http://\S+)`)
	for deadline := time.Now().Add(30 * time.Second); imdsURL == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dataDir, "ec2", "instances", id, "console.log"))
		if m := re.FindSubmatch(b); m != nil {
			imdsURL = string(m[1])
		}
	}
	if imdsURL == "" {
		t.Fatalf("instance %s never printed its metadata endpoint", id)
	}
	return cl, srv.URL, dataDir, id, imdsURL
}

// setAgentEnv is the environment of a local cloud instance whose user data
// exported the endpoint and static credentials, and nothing of the machine
// running the test.
func setAgentEnv(t *testing.T, endpoint, imdsURL, instanceDir string) {
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imdsURL, "HANDOVER_INSTANCE_DIR": instanceDir,
		"AWS_ACCESS_KEY_ID": "AKIDLOCAL", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_EC2_METADATA_DISABLED": "",
		"AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
		"HANDOVER_DEVICE": "", "HANDOVER_MOUNT": "", "HANDOVER_EPOCH": "17",
	} {
		t.Setenv(k, v)
	}
}

// The command end to end on a local cloud: the SDK finds the cloud and the
// instance's metadata through the standard variables alone, and the service
// would be exec'd with the volume's directory and epoch.
func TestAgentOnLocalCloud(t *testing.T) {
	cl, endpoint, dataDir, id, imdsURL := agentCloud(t)
	ctx := context.Background()
	vol, err := cl.CreateVolume(ctx, &awsec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), Size: aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume,
			Tags: []ec2types.Tag{{Key: aws.String("handover:epoch"), Value: aws.String("5")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	volID := aws.ToString(vol.VolumeId)
	if _, err := cl.AttachVolume(ctx, &awsec2.AttachVolumeInput{VolumeId: vol.VolumeId, InstanceId: aws.String(id), Device: aws.String("/dev/sdh")}); err != nil {
		t.Fatal(err)
	}
	setAgentEnv(t, endpoint, imdsURL, filepath.Join(dataDir, "ec2", "instances", id))

	calls, stderr, err := runAgent(t, "--device", "/dev/sdh", "--timeout", "30s", "--", "sh", "-c", "echo hi")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if len(calls) != 1 {
		t.Fatalf("exec'd %d times", len(calls))
	}
	c := calls[0]
	if filepath.Base(c.path) != "sh" || !filepath.IsAbs(c.path) || !slices.Equal(c.argv, []string{"sh", "-c", "echo hi"}) {
		t.Errorf("exec'd %s %q", c.path, c.argv)
	}
	env := map[string][]string{}
	for _, kv := range c.envv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = append(env[k], v)
	}
	wantDir := filepath.Join(dataDir, "ec2", "instances", id, "volumes", "sdh")
	for k, want := range map[string]string{"HANDOVER_STATE_DIR": wantDir, "HANDOVER_VOLUME_ID": volID, "HANDOVER_EPOCH": "5", "HANDOVER_INSTANCE_DIR": filepath.Dir(filepath.Dir(wantDir))} {
		if !slices.Equal(env[k], []string{want}) {
			t.Errorf("%s = %q, want just %q", k, env[k], want)
		}
	}
	for _, want := range []string{"state volume attached", "volume-id=" + volID, "starting the service"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("log lacks %q:\n%s", want, stderr)
		}
	}
}

// Off an instance (no metadata service) the agent says so, without waiting
// the whole --timeout.
func TestAgentWithoutIMDS(t *testing.T) {
	setAgentEnv(t, "http://127.0.0.1:1", "http://127.0.0.1:1", t.TempDir())
	start := time.Now()
	calls, _, err := runAgent(t, "--timeout", "10m", "--", "true")
	if exitCode(err) != 1 || err == nil || !strings.Contains(err.Error(), "instance metadata service (IMDS)") || len(calls) != 0 {
		t.Errorf("exit %d, %v, exec'd %v; want exit 1 naming IMDS", exitCode(err), err, calls)
	}
	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("took %v to notice there is no IMDS", d)
	}
}

// TestAgentFenceExitCodes: `handover agent fence|unfence|retire|health` (what the
// SSM fence runs) reports the fence protocol's outcome in its exit code.
func TestAgentFenceExitCodes(t *testing.T) {
	gate := fence.NewGate(false, 0)
	mux := http.NewServeMux()
	mux.Handle("/admin/", gate.Handler(func() error { return nil }))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// A service with only fence and unfence: retire is a 404.
	old := http.NewServeMux()
	old.Handle(fence.PathFence, fence.NewGate(false, 0).Handler(nil))
	oldSrv := httptest.NewServer(old)
	defer oldSrv.Close()
	_, bare, _ := net.SplitHostPort(oldSrv.Listener.Addr().String())
	closed := func() string { // a port nothing listens on
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		return p
	}()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"fence", []string{"agent", "fence", "--host", host, "--port", port, "--epoch", "5"}, 0},
		{"fence again", []string{"agent", "fence", "--host", host, "--port", port, "--epoch", "5"}, 0},
		{"stale epoch", []string{"agent", "fence", "--host", host, "--port", port, "--epoch", "4"}, 3},
		{"unfence", []string{"agent", "unfence", "--host", host, "--port", port, "--epoch", "5"}, 0},
		{"health", []string{"agent", "health", "--host", host, "--port", port}, 0},
		{"service down", []string{"agent", "fence", "--host", "127.0.0.1", "--port", closed, "--epoch", "6"}, 4},
		{"no epoch", []string{"agent", "fence", "--port", port}, 2},
		{"retire", []string{"agent", "retire", "--host", host, "--port", port, "--epoch", "6", "--successor", "10.0.0.9:8080"}, 0},
		{"retire stale", []string{"agent", "retire", "--host", host, "--port", port, "--epoch", "5", "--successor", "10.0.0.9:8080"}, 3},
		{"retire without successor", []string{"agent", "retire", "--host", host, "--port", port, "--epoch", "6"}, 2},
		{"retire successor without port", []string{"agent", "retire", "--host", host, "--port", port, "--epoch", "6", "--successor", "10.0.0.9"}, 2},
		{"retire, service without the endpoint", []string{"agent", "retire", "--host", host, "--port", bare, "--epoch", "6", "--successor", "10.0.0.9:8080"}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := Execute(t.Context(), tt.args, &out, &errb); code != tt.code {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, out.String(), errb.String())
			}
		})
	}
	if st := gate.State(); st != (fence.State{Fenced: true, Epoch: 6, Successor: "10.0.0.9:8080"}) {
		t.Errorf("gate after fence, unfence and retire: %+v", st)
	}
}
