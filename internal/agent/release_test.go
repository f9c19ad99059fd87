package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/agent"
	"github.com/handover-dev/handover/internal/release"
)

// releaseVol is a release volume attached to the test instance at device,
// attached at the given time.
func releaseVol(id, device string, at time.Time) types.Volume {
	v := vol(id, testInstance, device, types.VolumeAttachmentStateAttached)
	v.Attachments[0].AttachTime = aws.Time(at)
	return v
}

// TestPrepareRelease: on the local cloud's layout, the agent takes the
// release volume attached last of those at the two release devices, reads
// its marker and points --release-mount at the volume itself; with
// --state=false it waits for no state volume.
func TestPrepareRelease(t *testing.T) {
	t.Parallel()
	inst := t.TempDir()
	vols := t.TempDir()
	for _, v := range []struct{ id, dev, name string }{{"vol-r1", "sdg", "v1"}, {"vol-r2", "sdh", "v2"}} {
		dir := filepath.Join(vols, v.id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, release.MarkerFile), []byte(`{"channel":"web","name":"`+v.name+`","manifest_hash":"blake3:00"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(inst, "volumes"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(dir, filepath.Join(inst, "volumes", v.dev)); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := &fakeEC2{Answers: []answer{{vols: []types.Volume{releaseVol("vol-r2", "/dev/sdh", t0.Add(time.Millisecond)), releaseVol("vol-r1", "/dev/sdg", t0)}}}}
	mount := filepath.Join(t.TempDir(), "current")
	tm := newFakeTime()
	res, err := agent.Prepare(context.Background(), agent.Config{NoState: true, ReleaseMount: mount, InstanceDir: inst}, agent.Deps{
		IMDS: &fakeIMDS{InstanceID: testInstance, Region: "us-east-1"},
		EC2:  func(string) (agent.EC2, error) { return f, nil }, Clock: tm, Sleep: tm.Sleep,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Release != "v2" || res.ReleaseChannel != "web" || res.ReleaseVolumeID != "vol-r2" || res.ReleaseDir != mount || res.VolumeID != "" {
		t.Fatalf("result %+v: want release v2 of web on vol-r2 at %s, and no state volume", res, mount)
	}
	if got, _ := os.Readlink(mount); got != filepath.Join(vols, "vol-r2") {
		t.Errorf("the release link points at %q, want the volume's own directory", got)
	}
	if in := f.Calls[0]; len(in.Filters) != 2 || strings.Join(in.Filters[1].Values, ",") != "/dev/sdg,/dev/sdh" {
		t.Errorf("DescribeVolumes filters %+v: want this instance at /dev/sdg or /dev/sdh", in.Filters)
	}
	env := strings.Join(res.Environ(nil), " ")
	if !strings.Contains(env, agent.EnvReleaseDir+"="+mount) || !strings.Contains(env, agent.EnvRelease+"=v2") || strings.Contains(env, agent.EnvStateDir) {
		t.Errorf("environment %q", env)
	}
}

func TestReleaseConfigRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  agent.Config
		want string
	}{
		{"nothing to prepare", agent.Config{NoState: true}, "--state=false leaves nothing to prepare"},
		{"relative release mount", agent.Config{ReleaseMount: "current"}, "--release-mount"},
		{"one device for both", agent.Config{ReleaseMount: "/srv/current", ReleaseDevice: "/dev/sdf"}, "--release-device /dev/sdf is the state volume's --device too"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAltDevice(t *testing.T) {
	for in, want := range map[string]string{"/dev/sdg": "/dev/sdh", "/dev/sdh": "/dev/sdg", "/dev/xvdk": "/dev/xvdl", "/dev/xvdz": "/dev/xvdy"} {
		if got := release.AltDevice(in); got != want || release.AltDevice(got) != in {
			t.Errorf("AltDevice(%s) = %s, want %s (and back)", in, got, want)
		}
	}
}
