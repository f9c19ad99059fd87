package agent_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/agent"
	"github.com/handover-dev/handover/internal/localcloud"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

const ami = "ami-0123456789abcdef0"

// cloud is a real local cloud with an SDK client, as an instance's agent
// sees it.
type cloud struct {
	t       *testing.T
	dataDir string
	ec2     *awsec2.Client
}

func startCloud(t *testing.T) *cloud {
	t.Helper()
	dir := t.TempDir()
	lc, err := localcloud.New(localcloud.Config{
		DataDir: dir,
		// The image says where its metadata endpoint is, then sleeps: the
		// test plays the agent from outside with that endpoint.
		Catalog: map[string]ec2.Image{ami: {Command: []string{"/bin/sh", "-c", `echo "imds=$AWS_EC2_METADATA_SERVICE_ENDPOINT"; exec sleep 600`}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lc.Handler())
	t.Cleanup(func() { srv.Close(); lc.Close() })
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")}
	return &cloud{t: t, dataDir: dir, ec2: awsec2.NewFromConfig(cfg)}
}

var imdsLine = regexp.MustCompile(`imds=(http://\S+)`)

// launch runs an instance in us-east-1a and returns its id, its directory
// and its metadata endpoint once it runs.
func (c *cloud) launch() (id, dir, imdsURL string) {
	c.t.Helper()
	ctx := context.Background()
	out, err := c.ec2.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1a")}})
	if err != nil {
		c.t.Fatal(err)
	}
	id = aws.ToString(out.Instances[0].InstanceId)
	dir = filepath.Join(c.dataDir, "ec2", "instances", id)
	// Its process prints the metadata endpoint as it starts, which can be
	// before EC2 moves it from pending to running (a busy machine delays
	// the tick): wait for both, as AttachVolume needs running.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
		m := imdsLine.FindSubmatch(b)
		if m == nil {
			continue
		}
		d, err := c.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err == nil && len(d.Reservations) == 1 && len(d.Reservations[0].Instances) == 1 &&
			d.Reservations[0].Instances[0].State != nil && d.Reservations[0].Instances[0].State.Name == types.InstanceStateNameRunning {
			return id, dir, string(m[1])
		}
	}
	c.t.Fatalf("instance %s never printed its metadata endpoint and ran", id)
	return
}

func (c *cloud) createVolume(zone string, kv ...string) string {
	c.t.Helper()
	in := &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(1)}
	if len(kv) > 0 {
		spec := types.TagSpecification{ResourceType: types.ResourceTypeVolume}
		for i := 0; i+1 < len(kv); i += 2 {
			spec.Tags = append(spec.Tags, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
		}
		in.TagSpecifications = []types.TagSpecification{spec}
	}
	out, err := c.ec2.CreateVolume(context.Background(), in)
	if err != nil {
		c.t.Fatal(err)
	}
	return aws.ToString(out.VolumeId)
}

func (c *cloud) attach(volume, instance, device string) {
	c.t.Helper()
	if _, err := c.ec2.AttachVolume(context.Background(), &awsec2.AttachVolumeInput{
		VolumeId: aws.String(volume), InstanceId: aws.String(instance), Device: aws.String(device)}); err != nil {
		c.t.Fatal(err)
	}
}

// countingEC2 counts DescribeVolumes calls, so a test can attach once the
// agent is surely waiting.
type countingEC2 struct {
	agent.EC2
	n atomic.Int32
}

func (c *countingEC2) DescribeVolumes(ctx context.Context, in *awsec2.DescribeVolumesInput, o ...func(*awsec2.Options)) (*awsec2.DescribeVolumesOutput, error) {
	c.n.Add(1)
	return c.EC2.DescribeVolumes(ctx, in, o...)
}

// deps wires the agent as the command does: the instance's own IMDS
// endpoint, the real SDK client, the real clock.
func (c *cloud) deps(t *testing.T, imdsURL string, ec2c agent.EC2) agent.Deps {
	return agent.Deps{
		IMDS: imds.New(imds.Options{Endpoint: imdsURL}),
		EC2: func(region string) (agent.EC2, error) {
			if region != "us-east-1" {
				t.Errorf("IMDS said region %q", region)
			}
			return ec2c, nil
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func sameDir(t *testing.T, got, want string) {
	t.Helper()
	g, err := filepath.EvalSymlinks(got)
	if err != nil {
		t.Fatalf("state dir %s: %v", got, err)
	}
	w, err := filepath.EvalSymlinks(want)
	if err != nil {
		t.Fatal(err)
	}
	if g != w {
		t.Errorf("state dir %s resolves to %s, want the volume's directory %s", got, g, w)
	}
}

// TestLocalCloud runs Prepare against a real local cloud through the real
// SDK and the instance's own metadata endpoint.
func TestLocalCloud(t *testing.T) {
	t.Parallel()
	c := startCloud(t)
	ctx := context.Background()
	cfg := func(instDir string) agent.Config {
		return agent.Config{InstanceDir: instDir, Timeout: 30 * time.Second, PollMin: 20 * time.Millisecond, PollMax: 100 * time.Millisecond}
	}

	t.Run("attached before the agent starts", func(t *testing.T) {
		id, dir, url := c.launch()
		vol := c.createVolume("us-east-1a", "handover:epoch", "3")
		c.createVolume("us-east-1a", "handover:epoch", "7") // not attached: not ours
		c.attach(vol, id, "/dev/sdf")
		res, err := agent.Prepare(ctx, cfg(dir), c.deps(t, url, c.ec2))
		if err != nil {
			t.Fatal(err)
		}
		if res.InstanceID != id || res.Region != "us-east-1" || res.VolumeID != vol || res.Epoch != "3" || res.Formatted {
			t.Errorf("result %+v", res)
		}
		sameDir(t, res.StateDir, filepath.Join(c.dataDir, "ec2", "volumes", vol))
		env := strings.Join(res.Environ(nil), " ")
		if want := "HANDOVER_STATE_DIR=" + res.StateDir + " HANDOVER_VOLUME_ID=" + vol + " HANDOVER_EPOCH=3"; env != want {
			t.Errorf("environment %q, want %q", env, want)
		}
	})

	t.Run("a volume the controller tagged to start fenced", func(t *testing.T) {
		id, dir, url := c.launch()
		vol := c.createVolume("us-east-1a", "handover:epoch", "5", "handover:start", "fenced")
		c.attach(vol, id, "/dev/sdf")
		res, err := agent.Prepare(ctx, cfg(dir), c.deps(t, url, c.ec2))
		if err != nil {
			t.Fatal(err)
		}
		if !res.StartFenced || res.Epoch != "5" {
			t.Errorf("result %+v, want start fenced under epoch 5", res)
		}
		if env := strings.Join(res.Environ(nil), " "); !strings.HasSuffix(env, " HANDOVER_EPOCH=5 HANDOVER_START_FENCED=1") {
			t.Errorf("environment %q, want HANDOVER_START_FENCED=1 after the epoch", env)
		}
	})

	t.Run("attached while the agent waits, with --mount", func(t *testing.T) {
		id, dir, url := c.launch()
		vol := c.createVolume("us-east-1a", "handover:epoch", "4")
		other := c.createVolume("us-east-1a", "handover:epoch", "9")
		counting := &countingEC2{EC2: c.ec2}
		mount := filepath.Join(t.TempDir(), "var", "lib", "kv")
		conf := cfg(dir)
		conf.Mount = mount
		type result struct {
			res agent.Result
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := agent.Prepare(ctx, conf, c.deps(t, url, counting))
			done <- result{res, err}
		}()
		for counting.n.Load() < 3 {
			select {
			case r := <-done:
				t.Fatalf("Prepare returned before the attach: %+v %v", r.res, r.err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		c.attach(other, id, "/dev/sdg") // another device: not the state volume
		c.attach(vol, id, "/dev/sdf")
		var r result
		select {
		case r = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Prepare did not return within 30s of the attach")
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.res.VolumeID != vol || r.res.Epoch != "4" || r.res.StateDir != mount {
			t.Errorf("result %+v, want volume %s, epoch 4, state dir %s", r.res, vol, mount)
		}
		sameDir(t, mount, filepath.Join(c.dataDir, "ec2", "volumes", vol))
		// What the service writes lands on the volume.
		if err := os.WriteFile(filepath.Join(mount, "probe"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(c.dataDir, "ec2", "volumes", vol, "probe")); err != nil {
			t.Errorf("a write under --mount did not reach the volume: %v", err)
		}
	})

	t.Run("never attached", func(t *testing.T) {
		id, dir, url := c.launch()
		conf := cfg(dir)
		conf.Timeout = 300 * time.Millisecond
		_, err := agent.Prepare(ctx, conf, c.deps(t, url, c.ec2))
		if !agent.IsTimeout(err) || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "/dev/sdf") {
			t.Errorf("got %v, want a timeout naming %s and /dev/sdf", err, id)
		}
	})
}
