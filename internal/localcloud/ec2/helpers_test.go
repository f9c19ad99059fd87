package ec2_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
	"github.com/handover-dev/handover/internal/localcloud/snapstore"
)

const (
	testAMI    = "ami-0123456789abcdef0"
	zoneA      = "us-east-1a"
	zoneB      = "us-east-1b"
	waitLonger = 30 * time.Second
)

// testImage prints its environment and sleeps, so tests can see what the
// instance was started with and that it runs.
var testImage = ec2.Image{
	Command: []string{"/bin/sh", "-c", `echo "booted $HANDOVER_INSTANCE_ID ip=$HANDOVER_PRIVATE_IP imds=$AWS_EC2_METADATA_SERVICE_ENDPOINT img=$IMG_VAR"; exec sleep 300`},
	Env:     map[string]string{"IMG_VAR": "from-image"},
}

// env is one Service behind an httptest server with a real SDK client.
type env struct {
	t      *testing.T
	dir    string
	cfg    ec2.Config
	svc    *ec2.Service
	srv    *httptest.Server
	client *awsec2.Client
	pub    *fakePublisher
	store  *recordingStore
}

type option func(*ec2.Config)

func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := snapstore.Open(filepath.Join(dir, "snapstore"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, dir: dir, pub: &fakePublisher{}, store: &recordingStore{Store: st}}
	e.cfg = ec2.Config{
		DataDir:     filepath.Join(dir, "ec2"),
		Catalog:     map[string]ec2.Image{testAMI: testImage},
		Snapshots:   e.store,
		Publisher:   e.pub,
		StopTimeout: 2 * time.Second,
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.start()
	return e
}

// start opens the Service (again) on e.cfg and points a client at it.
func (e *env) start() {
	e.t.Helper()
	svc, err := ec2.New(e.cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.svc = svc
	e.srv = httptest.NewServer(svc)
	e.t.Cleanup(e.stop) // Close kills every instance process
	// Built by hand rather than with config.LoadDefaultConfig, so that no
	// AWS_* variable or ~/.aws file of the machine running the tests
	// changes what the client does.
	cfg := aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", ""),
		RetryMaxAttempts: 1,
		HTTPClient:       e.srv.Client(),
	}
	e.client = awsec2.NewFromConfig(cfg, func(o *awsec2.Options) { o.BaseEndpoint = aws.String(e.srv.URL) })
}

// stop closes the server and the Service; safe to repeat.
func (e *env) stop() {
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
	if e.svc != nil {
		if err := e.svc.Close(); err != nil {
			e.t.Errorf("Close: %v", err)
		}
		e.svc = nil
	}
}

// restart closes the Service and opens a new one on the same directory.
func (e *env) restart(opts ...option) {
	e.t.Helper()
	e.stop()
	for _, o := range opts {
		o(&e.cfg)
	}
	e.start()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// wantCode fails unless err is an API error with the code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v, want API error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("got error code %s (%s), want %s", ae.ErrorCode(), ae.ErrorMessage(), code)
	}
}

func tagSpec(rt types.ResourceType, kv ...string) []types.TagSpecification {
	var tags []types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		tags = append(tags, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return []types.TagSpecification{{ResourceType: rt, Tags: tags}}
}

func (e *env) createVolume(zone string, size int32, tags ...string) types.Volume {
	e.t.Helper()
	in := &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(size)}
	if len(tags) > 0 {
		in.TagSpecifications = tagSpec(types.ResourceTypeVolume, tags...)
	}
	out, err := e.client.CreateVolume(ctx(e.t), in)
	if err != nil {
		e.t.Fatalf("CreateVolume: %v", err)
	}
	return types.Volume{VolumeId: out.VolumeId, AvailabilityZone: out.AvailabilityZone, State: out.State, Size: out.Size}
}

func (e *env) volume(id string) types.Volume {
	e.t.Helper()
	out, err := e.client.DescribeVolumes(ctx(e.t), &awsec2.DescribeVolumesInput{VolumeIds: []string{id}})
	if err != nil || len(out.Volumes) != 1 {
		e.t.Fatalf("DescribeVolumes %s: %v (%d volumes)", id, err, len(out.Volumes))
	}
	return out.Volumes[0]
}

func (e *env) volumeDir(id string) string { return filepath.Join(e.cfg.DataDir, "volumes", id) }

func (e *env) instanceDir(id string) string { return filepath.Join(e.cfg.DataDir, "instances", id) }

func (e *env) waitVolumeAvailable(id string) {
	e.t.Helper()
	w := awsec2.NewVolumeAvailableWaiter(e.client, func(o *awsec2.VolumeAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx(e.t), &awsec2.DescribeVolumesInput{VolumeIds: []string{id}}, waitLonger); err != nil {
		e.t.Fatalf("waiting for %s to be available: %v", id, err)
	}
}

func (e *env) snapshot(volumeID string, tags ...string) string {
	e.t.Helper()
	in := &awsec2.CreateSnapshotInput{VolumeId: aws.String(volumeID), Description: aws.String("test")}
	if len(tags) > 0 {
		in.TagSpecifications = tagSpec(types.ResourceTypeSnapshot, tags...)
	}
	out, err := e.client.CreateSnapshot(ctx(e.t), in)
	if err != nil {
		e.t.Fatalf("CreateSnapshot: %v", err)
	}
	if out.State != types.SnapshotStatePending {
		e.t.Errorf("CreateSnapshot answered state %s, want pending", out.State)
	}
	return aws.ToString(out.SnapshotId)
}

func (e *env) waitSnapshotCompleted(id string) types.Snapshot {
	e.t.Helper()
	w := awsec2.NewSnapshotCompletedWaiter(e.client, func(o *awsec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	out, err := w.WaitForOutput(ctx(e.t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{id}}, waitLonger)
	if err != nil {
		e.t.Fatalf("waiting for %s to complete: %v", id, err)
	}
	return out.Snapshots[0]
}

func (e *env) runInstance(zone string, userData string, tags ...string) types.Instance {
	e.t.Helper()
	in := &awsec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
	if zone != "" {
		in.Placement = &types.Placement{AvailabilityZone: aws.String(zone)}
	}
	if userData != "" {
		in.UserData = aws.String(b64(userData))
	}
	if len(tags) > 0 {
		in.TagSpecifications = tagSpec(types.ResourceTypeInstance, tags...)
	}
	out, err := e.client.RunInstances(ctx(e.t), in)
	if err != nil {
		e.t.Fatalf("RunInstances: %v", err)
	}
	return out.Instances[0]
}

func (e *env) waitInstance(id string, state types.InstanceStateName) types.Instance {
	e.t.Helper()
	var last types.Instance
	deadline := time.Now().Add(waitLonger)
	for time.Now().Before(deadline) {
		out, err := e.client.DescribeInstances(ctx(e.t), &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			e.t.Fatalf("DescribeInstances: %v", err)
		}
		last = out.Reservations[0].Instances[0]
		if last.State.Name == state {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("instance %s is %s, want %s", id, last.State.Name, state)
	return last
}

// console waits until the instance's console.log holds want n times, and
// returns it.
func (e *env) console(id, want string, n int) string {
	e.t.Helper()
	var s string
	for deadline := time.Now().Add(waitLonger); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(e.instanceDir(id), "console.log"))
		s = string(b)
		if strings.Count(s, want) >= n {
			return s
		}
	}
	e.t.Fatalf("console.log of %s has %q fewer than %d times:\n%s", id, want, n, s)
	return s
}

func (e *env) processAlive(id string, want bool) {
	e.t.Helper()
	var info ec2.InstanceInfo
	for deadline := time.Now().Add(waitLonger); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		info, err = e.svc.Instance(ctx(e.t), id)
		if err != nil {
			e.t.Fatalf("Instance: %v", err)
		}
		if info.ProcessAlive == want {
			return
		}
	}
	e.t.Fatalf("instance %s ProcessAlive = %v, want %v (state %s)", id, info.ProcessAlive, want, info.State)
}

// fakePublisher keeps every event, and checks it decodes.
type fakePublisher struct {
	mu     sync.Mutex
	events []*events.Event
	errs   []error
}

func (p *fakePublisher) Publish(_ context.Context, b []byte) error {
	ev, err := events.Decode(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.errs = append(p.errs, err)
		return nil
	}
	p.events = append(p.events, ev)
	return nil
}

// waitFor returns the events matching f once there are at least n.
func (p *fakePublisher) waitFor(t *testing.T, n int, f func(*events.Event) bool) []*events.Event {
	t.Helper()
	var got []*events.Event
	for deadline := time.Now().Add(waitLonger); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		p.mu.Lock()
		if len(p.errs) > 0 {
			p.mu.Unlock()
			t.Fatalf("an event did not decode: %v", p.errs[0])
		}
		got = got[:0]
		for _, ev := range p.events {
			if f(ev) {
				got = append(got, ev)
			}
		}
		p.mu.Unlock()
		if len(got) >= n {
			return slices.Clone(got)
		}
	}
	t.Fatalf("got %d matching events, want %d", len(got), n)
	return nil
}

func instanceStates(evs []*events.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.InstanceState.State)
	}
	return out
}

func forInstance(id string) func(*events.Event) bool {
	return func(ev *events.Event) bool {
		return ev.Kind == events.KindInstanceState && ev.InstanceState.InstanceID == id
	}
}

// recordingStore is the real snapshot store, remembering each Create's
// parent and stats.
type recordingStore struct {
	*snapstore.Store
	mu      sync.Mutex
	parents map[string]string
	stats   map[string]snapstore.Stats
}

var _ ec2.SnapshotStore = (*recordingStore)(nil)
var _ ec2.SnapshotStore = (*snapstore.Store)(nil)

func (r *recordingStore) Create(ctx context.Context, id, src, parent string, progress func(done, total int64)) (*snapstore.Manifest, snapstore.Stats, error) {
	m, st, err := r.Store.Create(ctx, id, src, parent, progress)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.parents == nil {
		r.parents, r.stats = map[string]string{}, map[string]snapstore.Stats{}
	}
	r.parents[id], r.stats[id] = parent, st
	return m, st, err
}

func (r *recordingStore) created(id string) (parent string, st snapstore.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.parents[id], r.stats[id]
}

// tree reads every regular file under dir, by relative path.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
