package release

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/localcloud"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

const testAMI = "ami-0123456789abcdef0"

// env is a real local cloud with the SDK pointed at it.
type env struct {
	dataDir string
	cfg     aws.Config
	ec2     *awsec2.Client
	cloud   *awscloud.Cloud
}

func startCloud(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	lc, err := localcloud.New(localcloud.Config{DataDir: dir, Tick: 100 * time.Millisecond,
		Catalog: map[string]ec2.Image{testAMI: {Command: []string{"/bin/sh", "-c", "exec sleep 600"}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lc.Handler())
	t.Cleanup(func() { srv.Close(); lc.Close() })
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")}
	e := awsec2.NewFromConfig(cfg)
	return &env{dataDir: dir, cfg: cfg, ec2: e, cloud: awscloud.New(e, autoscaling.NewFromConfig(cfg), nil)}
}

func (e *env) instanceDir(id string) string { return filepath.Join(e.dataDir, "ec2", "instances", id) }

// runInstance starts a release server and waits for it to run.
func (e *env) runInstance(t testing.TB) string {
	t.Helper()
	ctx := t.Context()
	out, err := e.ec2.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1a")}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	waitFor(t, "instance "+id+" to run", func() (bool, error) {
		i, err := e.cloud.DescribeInstance(ctx, id)
		return i.State == handover.InstanceRunning, err
	})
	return id
}

func waitFor(t testing.TB, what string, f func() (bool, error)) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ok, err := f()
		if ok {
			return
		}
		last = err
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, last)
}

func (e *env) publisher(l Ledger, instance string) *Publisher {
	return &Publisher{Cloud: e.cloud, Ledger: l, Locate: LocalLocate(e.instanceDir(instance)), Poll: 20 * time.Millisecond, Holder: "test publisher"}
}

// restore makes a volume from snap and returns its directory once
// available.
func (e *env) restore(t *testing.T, snap string) string {
	t.Helper()
	ctx := t.Context()
	v, err := e.cloud.CreateVolume(ctx, handover.VolumeSpec{Zone: "us-east-1b", SnapshotID: snap})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "volume from "+snap, func() (bool, error) {
		got, err := e.cloud.DescribeVolume(ctx, v.ID)
		return got.State == handover.VolumeAvailable, err
	})
	return filepath.Join(e.dataDir, "ec2", "volumes", v.ID)
}

func TestPublishOnLocalCloud(t *testing.T) {
	e := startCloud(t)
	ctx := t.Context()
	led := memory.New()
	server := e.runInstance(t)
	p := e.publisher(led, server)

	src := t.TempDir()
	_, err := p.Publish(ctx, PublishSpec{Dir: src, Channel: "web", Name: "v1", Instance: server})
	if !errors.Is(err, ErrBadDir) {
		t.Fatalf("publishing an empty DIR: %v, want ErrBadDir", err)
	}
	writeTree(t, src, []node{{path: "index.html", content: "v1"}, {path: "bin/run", content: "#!/bin/sh\n", mode: 0o755}, {path: "current", link: "index.html"}})
	_, err = p.Publish(ctx, PublishSpec{Dir: src, Channel: "web", Name: "v1", Instance: server})
	if !errors.Is(err, ErrNoVolume) || !strings.Contains(err.Error(), "handover release init --channel web") {
		t.Fatalf("publishing to a channel without a release volume: %v, want ErrNoVolume saying how to make one", err)
	}
	if rs, _ := led.ListReleases(ctx, "web"); len(rs) != 0 {
		t.Fatalf("a refused publish left records: %+v", rs)
	}

	vol, err := p.Init(ctx, InitSpec{Channel: "web", Instance: server, Device: DefaultDevice, SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := p.Init(ctx, InitSpec{Channel: "web", Instance: server, Device: DefaultDevice, SizeGiB: 1}); err != nil || again.ID != vol.ID {
		t.Fatalf("init again: %s, %v; want %s", again.ID, err, vol.ID)
	}

	res, err := p.Publish(ctx, PublishSpec{Dir: src, Channel: "web", Name: "v1", Instance: server})
	if err != nil {
		t.Fatal(err)
	}
	want := manifestOf(t, src)
	r := res.Release
	if r.State != ledger.ReleasePublished || r.SnapshotID == "" || r.ManifestHash != want.Hash() || r.Files != 2 {
		t.Fatalf("published %+v", r)
	}
	snap, err := e.cloud.DescribeSnapshot(ctx, r.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{TagRelease: "v1", TagChannel: "web", TagManifest: want.Hash(), TagManaged: "true"} {
		if snap.Tags[k] != v {
			t.Errorf("snapshot tag %s = %q, want %q", k, snap.Tags[k], v)
		}
	}
	if snap.State != handover.SnapshotCompleted {
		t.Errorf("publish returned with the snapshot %s", snap.State)
	}
	ch, err := led.GetChannel(ctx, "web")
	if err != nil || ch.Latest != "v1" || ch.LatestSnapshot != r.SnapshotID {
		t.Fatalf("channel after the publish: %+v, %v", ch, err)
	}
	restored := e.restore(t, r.SnapshotID)
	if got := manifestOf(t, restored); got.Hash() != want.Hash() {
		t.Fatalf("a volume from the snapshot differs from DIR: %s", want.Diff(got))
	}
	if m, err := ReadMarker(restored); err != nil || m.Name != "v1" || m.ManifestHash != want.Hash() {
		t.Fatalf("marker on the restored volume: %+v, %v", m, err)
	}

	// A second release: a change, a deletion, a new mode.
	if err := os.WriteFile(filepath.Join(src, "index.html"), []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "current")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "bin/run"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err = p.Publish(ctx, PublishSpec{Dir: src, Channel: "web", Name: "v1", Instance: server})
	if !errors.Is(err, ErrPublished) {
		t.Fatalf("publishing v1 again: %v, want ErrPublished", err)
	}

	// While another publish holds the channel, a publish is refused and
	// names it.
	_, done, err := HoldLease(ctx, led, p.Clock, p.Log, "web", "publish of v9 on host-x pid 7", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Publish(ctx, PublishSpec{Dir: src, Channel: "web", Name: "v2", Instance: server})
	if !IsRunning(err) || !strings.Contains(err.Error(), "publish of v9 on host-x pid 7") {
		t.Fatalf("a publish while another runs: %v, want a RunningError naming it", err)
	}
	done()
	if _, err := led.GetRelease(ctx, "web/v2"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("a refused publish recorded its release: %v", err)
	}

	res2, err := p.Publish(ctx, PublishSpec{Dir: src, Channel: "web", Name: "v2", Instance: server})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Previous != "v1" || res2.Sync.Copied != 1 || res2.Sync.Removed != 1 {
		t.Errorf("second publish: previous %q, sync %+v; want v1, one file copied and one path removed", res2.Previous, res2.Sync)
	}
	want2 := manifestOf(t, src)
	if got := manifestOf(t, e.restore(t, res2.Release.SnapshotID)); got.Hash() != want2.Hash() {
		t.Fatalf("v2's snapshot differs from DIR: %s", want2.Diff(got))
	}
	if ch, _ := led.GetChannel(ctx, "web"); ch.Latest != "v2" {
		t.Errorf("latest after v2: %q", ch.Latest)
	}
}

func TestPublishResumesAfterACrash(t *testing.T) {
	e := startCloud(t)
	ctx := t.Context()
	led := memory.New()
	server := e.runInstance(t)
	p := e.publisher(led, server)
	if _, err := p.Init(ctx, InitSpec{Channel: "web", Instance: server, Device: DefaultDevice, SizeGiB: 1}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeTree(t, src, []node{{path: "a", content: "a"}})
	// A publish that died after its snapshot started: a record left
	// Publishing, the snapshot there, and its lease lapsed.
	vol, err := FindVolume(ctx, e.cloud, "web", server)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := p.Locate(vol)
	m := manifestOf(t, src)
	if _, err := Sync(src, dir, m); err != nil {
		t.Fatal(err)
	}
	must(t, led.CreateRelease(ctx, &ledger.Release{ID: "web/v1", Channel: "web", Name: "v1", State: ledger.ReleasePublishing, CreatedAt: time.Now()}))
	snap, err := e.cloud.CreateSnapshot(ctx, vol.ID, map[string]string{TagManaged: "true", handover.TagPurpose: PurposeRelease,
		TagChannel: "web", TagRelease: "v1", TagManifest: m.Hash()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Publish(ctx, PublishSpec{Dir: src, Channel: "web", Name: "v1", Instance: server})
	if err != nil {
		t.Fatal(err)
	}
	if res.Release.SnapshotID != snap.ID {
		t.Errorf("the resumed publish took snapshot %s, want the dead one's %s", res.Release.SnapshotID, snap.ID)
	}
	snaps, _ := e.cloud.FindSnapshots(ctx, map[string]string{TagChannel: "web"})
	if len(snaps) != 1 {
		t.Errorf("%d snapshots of channel web, want 1", len(snaps))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = context.Background

// TestRetention: after each publish only the kept releases' snapshots
// stay; the records of the others are Deleted, and a rollback to one is
// refused by name.
func TestRetention(t *testing.T) {
	e := startCloud(t)
	ctx := t.Context()
	led := memory.New()
	server := e.runInstance(t)
	p := e.publisher(led, server)
	p.Keep, p.RetainCloud = 2, e.cloud
	if _, err := p.Init(ctx, InitSpec{Channel: "web", Instance: server, Device: DefaultDevice, SizeGiB: 1}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	snaps := map[string]string{}
	deleted := map[string]bool{}
	for i := 1; i <= 4; i++ {
		name := fmt.Sprintf("v%d", i)
		writeTree(t, src, nil)
		if err := os.WriteFile(filepath.Join(src, "index.html"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := p.Publish(ctx, PublishSpec{Dir: src, Channel: "web", Name: name, Instance: server})
		if err != nil {
			t.Fatal(err)
		}
		snaps[name] = res.Release.SnapshotID
		for _, k := range res.Retention {
			if k.Deleted {
				deleted[k.Release] = true
			}
		}
		if i == 1 {
			// An instance's volume of v1 keeps v1's snapshot.
			if _, err := e.cloud.CreateVolume(ctx, handover.VolumeSpec{Zone: "us-east-1a", SnapshotID: snaps["v1"],
				Tags: map[string]string{TagManaged: "true", handover.TagPurpose: PurposeInstance, TagChannel: "web", TagRelease: "v1", TagInstance: "i-0x"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(deleted) != 1 || !deleted["v2"] {
		t.Errorf("retention deleted %v, want only v2 (v1 is in use, v3 previous and recent, v4 latest)", deleted)
	}
	kept, err := Retain(ctx, e.cloud, led, "web", 2)
	if err != nil || len(kept) != 3 {
		t.Fatalf("Retain again: %v, %+v", err, kept)
	}
	for _, k := range kept {
		if k.Deleted {
			t.Errorf("a second retention deleted %s (%s)", k.Release, k.Reason)
		}
	}
	if _, err := e.cloud.DescribeSnapshot(ctx, snaps["v2"]); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("v2's snapshot: %v, want it deleted", err)
	}
	if r, _ := led.GetRelease(ctx, "web/v2"); r.State != ledger.ReleaseDeleted {
		t.Errorf("v2's record is %s, want Deleted", r.State)
	}
	if _, err := p.Rollback(ctx, RollbackSpec{Channel: "web", To: "v2"}); !errors.Is(err, ErrUnknownRelease) || !strings.Contains(err.Error(), "retention removed its snapshot") {
		t.Errorf("rollback to a deleted release: %v", err)
	}
	if _, err := Retain(ctx, e.cloud, led, "web", 0); err == nil {
		t.Error("Retain with keep 0 did not refuse")
	}
}
