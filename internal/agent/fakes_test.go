package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/agent"
	"github.com/handover-dev/handover/internal/clock"
)

// fakeIMDS answers with a fixed identity, or NextErr.
type fakeIMDS struct {
	InstanceID, Region string
	NextErr            error
}

var _ agent.IMDS = (*fakeIMDS)(nil)

func (f *fakeIMDS) GetInstanceIdentityDocument(context.Context, *imds.GetInstanceIdentityDocumentInput, ...func(*imds.Options)) (*imds.GetInstanceIdentityDocumentOutput, error) {
	if f.NextErr != nil {
		return nil, f.NextErr
	}
	return &imds.GetInstanceIdentityDocumentOutput{InstanceIdentityDocument: imds.InstanceIdentityDocument{
		InstanceID: f.InstanceID, Region: f.Region,
	}}, nil
}

// answer is one DescribeVolumes reply.
type answer struct {
	vols []types.Volume
	err  error
}

// fakeEC2 replies with Answers in turn, the last one over and over.
type fakeEC2 struct {
	mu      sync.Mutex
	Answers []answer
	Calls   []*ec2.DescribeVolumesInput
}

var _ agent.EC2 = (*fakeEC2)(nil)

func (f *fakeEC2) DescribeVolumes(_ context.Context, in *ec2.DescribeVolumesInput, _ ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, in)
	if len(f.Answers) == 0 {
		return &ec2.DescribeVolumesOutput{}, nil
	}
	a := f.Answers[0]
	if len(f.Answers) > 1 {
		f.Answers = f.Answers[1:]
	}
	return &ec2.DescribeVolumesOutput{Volumes: a.vols}, a.err
}

func (f *fakeEC2) Reset() {
	f.mu.Lock()
	f.Answers, f.Calls = nil, nil
	f.mu.Unlock()
}

// vol is a volume attached to instance at device in state, with tags k, v, ….
func vol(id, instance, device string, state types.VolumeAttachmentState, kv ...string) types.Volume {
	v := types.Volume{VolumeId: aws.String(id), Attachments: []types.VolumeAttachment{{
		VolumeId: aws.String(id), InstanceId: aws.String(instance), Device: aws.String(device), State: state,
	}}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Tags = append(v.Tags, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return v
}

// fakeSystem is a machine's block devices and mount table in memory.
type fakeSystem struct {
	mu sync.Mutex
	// Devices maps a path to the device it resolves to; absent paths are
	// not there (yet).
	Devices map[string]string
	// Sigs is each device's signature; a device without one probes blank.
	Sigs map[string]agent.Signature
	// Mounts maps a mount point to its source.
	Mounts            map[string]string
	ProbeErr, FormErr error
	// Calls records probe, format and mount calls, in order.
	Calls []string
}

var _ agent.System = (*fakeSystem)(nil)

func newFakeSystem() *fakeSystem {
	return &fakeSystem{Devices: map[string]string{}, Sigs: map[string]agent.Signature{}, Mounts: map[string]string{}}
}

func (f *fakeSystem) Resolve(p string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.Devices[p]; ok {
		return d, nil
	}
	return "", fmt.Errorf("resolving %s: %w", p, fs.ErrNotExist)
}

func (f *fakeSystem) Probe(_ context.Context, dev string) (agent.Signature, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "probe "+dev)
	if f.ProbeErr != nil {
		return agent.Signature{}, f.ProbeErr
	}
	if s, ok := f.Sigs[dev]; ok {
		return s, nil
	}
	return agent.Signature{Blank: true}, nil
}

func (f *fakeSystem) Format(_ context.Context, dev, fsType string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "format "+dev+" "+fsType)
	if f.FormErr != nil {
		return f.FormErr
	}
	if s, ok := f.Sigs[dev]; ok && !s.Blank {
		return errors.New("fake: formatted a device with a signature")
	}
	f.Sigs[dev] = agent.Signature{Type: fsType, Desc: "TYPE=" + fsType}
	return nil
}

func (f *fakeSystem) Mount(_ context.Context, dev, dir, fsType string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "mount "+dev+" "+dir+" "+fsType)
	f.Mounts[filepath.Clean(dir)] = dev
	return nil
}

func (f *fakeSystem) MountedAt(dir string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Mounts[filepath.Clean(dir)], nil
}

// fakeTime is a fake clock whose Sleep advances it and records the waits.
type fakeTime struct {
	*clock.Fake
	mu     sync.Mutex
	sleeps []time.Duration
	// onSleep, if set, runs after each sleep (to attach a volume midway).
	onSleep func(n int)
}

func newFakeTime() *fakeTime {
	return &fakeTime{Fake: clock.NewFake(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))}
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.Advance(d)
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	n, hook := len(f.sleeps), f.onSleep
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return nil
}
