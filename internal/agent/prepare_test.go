package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/agent"
)

const (
	testInstance = "i-0123456789abcdef0"
	testVolume   = "vol-0aaaabbbbccccdddd"
	byID         = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0aaaabbbbccccdddd"
	nvme         = "/dev/nvme1n1"
	mountDir     = "/var/lib/handover/state"
)

var attached = answer{vols: []types.Volume{vol(testVolume, testInstance, "/dev/sdf", types.VolumeAttachmentStateAttached, "handover:epoch", "3", "Name", "orders")}}

// TestPrepareEBS runs the AWS path against fakes of EC2 and the machine.
func TestPrepareEBS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     agent.Config
		answers []answer
		sys     func(*fakeSystem)
		// want is the result; wantCalls the probe/format/mount calls.
		want      agent.Result
		wantCalls []string
		// wantErr, when set, are parts the error must contain.
		wantErr     []string
		wantTimeout bool
	}{
		{
			name: "blank device is formatted then mounted", answers: []answer{attached},
			sys:       func(s *fakeSystem) { s.Devices[byID] = nvme },
			want:      agent.Result{Device: nvme, StateDir: mountDir, Epoch: "3", Formatted: true},
			wantCalls: []string{"probe " + nvme, "format " + nvme + " ext4", "mount " + nvme + " " + mountDir + " ext4"},
		},
		{
			name: "blank device with another --fs-type and --mount", cfg: agent.Config{FSType: "xfs", Mount: "/srv/db/"}, answers: []answer{attached},
			sys:       func(s *fakeSystem) { s.Devices[byID] = nvme },
			want:      agent.Result{Device: nvme, StateDir: "/srv/db", Epoch: "3", Formatted: true},
			wantCalls: []string{"probe " + nvme, "format " + nvme + " xfs", "mount " + nvme + " /srv/db xfs"},
		},
		{
			name: "device with a filesystem is not formatted", answers: []answer{attached},
			sys: func(s *fakeSystem) {
				s.Devices[byID] = nvme
				s.Sigs[nvme] = agent.Signature{Type: "ext4", Desc: "TYPE=ext4"}
			},
			want:      agent.Result{Device: nvme, StateDir: mountDir, Epoch: "3"},
			wantCalls: []string{"probe " + nvme, "mount " + nvme + " " + mountDir + " ext4"},
		},
		{
			name: "a filesystem of another type is mounted as it is", answers: []answer{attached},
			sys: func(s *fakeSystem) {
				s.Devices[byID] = nvme
				s.Sigs[nvme] = agent.Signature{Type: "xfs", Desc: "TYPE=xfs"}
			},
			want:      agent.Result{Device: nvme, StateDir: mountDir, Epoch: "3"},
			wantCalls: []string{"probe " + nvme, "mount " + nvme + " " + mountDir + " xfs"},
		},
		{
			name: "a partition table is a signature: never formatted", answers: []answer{attached},
			sys: func(s *fakeSystem) {
				s.Devices[byID] = nvme
				s.Sigs[nvme] = agent.Signature{Desc: "PTUUID=1234 PTTYPE=gpt"}
			},
			wantCalls: []string{"probe " + nvme},
			wantErr:   []string{testVolume, "PTTYPE=gpt", "never formats"},
		},
		{
			name: "a failed probe is not blank", answers: []answer{attached},
			sys: func(s *fakeSystem) {
				s.Devices[byID] = nvme
				s.ProbeErr = errors.New("blkid: exit status 4")
			},
			wantCalls: []string{"probe " + nvme},
			wantErr:   []string{"exit status 4", testVolume},
		},
		{
			name: "already mounted: nothing to do", answers: []answer{attached},
			sys: func(s *fakeSystem) {
				s.Devices[byID] = nvme
				s.Mounts[mountDir] = nvme
			},
			want: agent.Result{Device: nvme, StateDir: mountDir, Epoch: "3"},
		},
		{
			name: "already mounted under another name of the device", answers: []answer{attached},
			sys: func(s *fakeSystem) {
				s.Devices[byID] = nvme
				s.Devices["/dev/sdf"] = nvme
				s.Mounts[mountDir] = "/dev/sdf"
			},
			want: agent.Result{Device: nvme, StateDir: mountDir, Epoch: "3"},
		},
		{
			name: "something else mounted there", answers: []answer{attached},
			sys: func(s *fakeSystem) {
				s.Devices[byID] = nvme
				s.Mounts[mountDir] = "/dev/nvme2n1"
			},
			wantErr: []string{mountDir, "/dev/nvme2n1", testVolume},
		},
		{
			name: "xen: the device under its xvd name", answers: []answer{attached},
			sys:       func(s *fakeSystem) { s.Devices["/dev/xvdf"] = "/dev/xvdf" },
			want:      agent.Result{Device: "/dev/xvdf", StateDir: mountDir, Epoch: "3", Formatted: true},
			wantCalls: []string{"probe /dev/xvdf", "format /dev/xvdf ext4", "mount /dev/xvdf " + mountDir + " ext4"},
		},
		{
			name: "the attachment lands after a while; no epoch tag", answers: []answer{
				{}, {err: errors.New("RequestLimitExceeded")},
				{vols: []types.Volume{vol(testVolume, testInstance, "/dev/sdf", types.VolumeAttachmentStateAttaching)}},
				{vols: []types.Volume{vol(testVolume, testInstance, "/dev/sdf", types.VolumeAttachmentStateAttached)}},
			},
			sys:       func(s *fakeSystem) { s.Devices[byID] = nvme; s.Sigs[nvme] = agent.Signature{Type: "ext4"} },
			want:      agent.Result{Device: nvme, StateDir: mountDir},
			wantCalls: []string{"probe " + nvme, "mount " + nvme + " " + mountDir + " ext4"},
		},
		{
			name: "the device never appears", answers: []answer{attached},
			sys:         func(s *fakeSystem) {},
			wantTimeout: true,
			wantErr:     []string{"device of volume " + testVolume, byID, "/dev/sdf", "/dev/xvdf", testInstance, "gave up after 10m0s"},
		},
		{
			name: "the volume is never attached", answers: []answer{{}},
			sys:         func(s *fakeSystem) { s.Devices[byID] = nvme },
			wantTimeout: true,
			wantErr:     []string{"attached at /dev/sdf to instance " + testInstance, "handover migrations list", "--device"},
		},
		{
			name: "stuck attaching, with an error on the way", answers: []answer{
				{err: errors.New("AuthFailure: no")},
				{vols: []types.Volume{vol(testVolume, testInstance, "/dev/sdf", types.VolumeAttachmentStateAttaching)}},
			},
			sys:         func(s *fakeSystem) {},
			wantTimeout: true,
			wantErr:     []string{"last seen: " + testVolume + " attaching", "AuthFailure"},
		},
		{
			name: "a volume at another device is not ours", answers: []answer{
				{vols: []types.Volume{vol(testVolume, testInstance, "/dev/sdg", types.VolumeAttachmentStateAttached)}},
			},
			sys:         func(s *fakeSystem) { s.Devices[byID] = nvme },
			wantTimeout: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sys := newFakeSystem()
			tc.sys(sys)
			ec2c := &fakeEC2{Answers: tc.answers}
			tm := newFakeTime()
			var regions []string
			res, err := agent.Prepare(context.Background(), tc.cfg, agent.Deps{
				IMDS: &fakeIMDS{InstanceID: testInstance, Region: "eu-west-1"},
				EC2: func(region string) (agent.EC2, error) {
					regions = append(regions, region)
					return ec2c, nil
				},
				System: sys, Clock: tm, Sleep: tm.Sleep,
			})
			if !slices.Equal(sys.Calls, tc.wantCalls) {
				t.Errorf("calls %q, want %q", sys.Calls, tc.wantCalls)
			}
			if !slices.Equal(regions, []string{"eu-west-1"}) {
				t.Errorf("EC2 clients for %v, want eu-west-1 from IMDS", regions)
			}
			if len(ec2c.Calls) == 0 {
				t.Fatal("DescribeVolumes was never called")
			}
			if f := ec2c.Calls[0].Filters; len(f) != 2 || aws.ToString(f[0].Name) != "attachment.instance-id" || f[0].Values[0] != testInstance ||
				aws.ToString(f[1].Name) != "attachment.device" || f[1].Values[0] != "/dev/sdf" {
				t.Errorf("filters %+v", f)
			}
			if tc.wantErr != nil || tc.wantTimeout {
				if err == nil {
					t.Fatalf("no error; result %+v", res)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q: %v", w, err)
					}
				}
				if agent.IsTimeout(err) != tc.wantTimeout {
					t.Errorf("IsTimeout = %v, want %v: %v", agent.IsTimeout(err), tc.wantTimeout, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.InstanceID, tc.want.Region, tc.want.VolumeID = testInstance, "eu-west-1", testVolume
			if res != tc.want {
				t.Errorf("got %+v\nwant %+v", res, tc.want)
			}
		})
	}
}

// The wait backs off from PollMin to PollMax and ends at the timeout, on
// the injected clock: no test waits ten minutes.
func TestPollBacksOffAndTimesOut(t *testing.T) {
	t.Parallel()
	tm := newFakeTime()
	start := tm.Now()
	ec2c := &fakeEC2{}
	_, err := agent.Prepare(context.Background(), agent.Config{Timeout: 20 * time.Second}, agent.Deps{
		IMDS:   &fakeIMDS{InstanceID: testInstance, Region: "us-east-1"},
		EC2:    func(string) (agent.EC2, error) { return ec2c, nil },
		System: newFakeSystem(), Clock: tm, Sleep: tm.Sleep,
	})
	if !agent.IsTimeout(err) {
		t.Fatalf("want a timeout, got %v", err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 3 * time.Second}
	if !slices.Equal(tm.sleeps, want) {
		t.Errorf("slept %v, want %v", tm.sleeps, want)
	}
	if got := tm.Now().Sub(start); got != 20*time.Second {
		t.Errorf("gave up after %v, want 20s", got)
	}
	if len(ec2c.Calls) != len(want)+1 {
		t.Errorf("%d DescribeVolumes calls, want %d", len(ec2c.Calls), len(want)+1)
	}
}

func TestPrepareRefusals(t *testing.T) {
	t.Parallel()
	okEC2 := func(string) (agent.EC2, error) { return &fakeEC2{Answers: []answer{attached}}, nil }
	for _, tc := range []struct {
		name string
		cfg  agent.Config
		deps agent.Deps
		want string
	}{
		{"no imds", agent.Config{}, agent.Deps{IMDS: &fakeIMDS{NextErr: errors.New("dial tcp 169.254.169.254:80: connect: no route to host")}, EC2: okEC2, System: newFakeSystem()},
			"instance metadata service (IMDS)"},
		{"empty identity", agent.Config{}, agent.Deps{IMDS: &fakeIMDS{}, EC2: okEC2, System: newFakeSystem()}, "without instance id or region"},
		{"bad device", agent.Config{Device: "sdf"}, agent.Deps{IMDS: &fakeIMDS{}, EC2: okEC2, System: newFakeSystem()}, "--device"},
		{"relative mount", agent.Config{Mount: "state"}, agent.Deps{IMDS: &fakeIMDS{}, EC2: okEC2, System: newFakeSystem()}, "--mount"},
		{"no system on AWS", agent.Config{}, agent.Deps{IMDS: &fakeIMDS{}, EC2: okEC2}, "System is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := agent.Prepare(context.Background(), tc.cfg, tc.deps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A cancelled context ends the wait with the context's error, not a
// timeout.
func TestPrepareCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	tm := newFakeTime()
	tm.onSleep = func(n int) {
		if n == 2 {
			cancel()
		}
	}
	_, err := agent.Prepare(ctx, agent.Config{}, agent.Deps{
		IMDS:   &fakeIMDS{InstanceID: testInstance, Region: "us-east-1"},
		EC2:    func(string) (agent.EC2, error) { return &fakeEC2{}, nil },
		System: newFakeSystem(), Clock: tm, Sleep: tm.Sleep,
	})
	if !errors.Is(err, context.Canceled) || agent.IsTimeout(err) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestResultEnviron(t *testing.T) {
	t.Parallel()
	base := []string{"PATH=/bin", "HANDOVER_EPOCH=99", "HANDOVER_STATE_DIR=/old", "HANDOVER_VOLUME_ID_X=keep", "HANDOVER_START_FENCED=1"}
	for _, tc := range []struct {
		name string
		r    agent.Result
		want []string
	}{
		{"with epoch", agent.Result{StateDir: "/s", VolumeID: "vol-1", Epoch: "3"},
			[]string{"PATH=/bin", "HANDOVER_VOLUME_ID_X=keep", "HANDOVER_STATE_DIR=/s", "HANDOVER_VOLUME_ID=vol-1", "HANDOVER_EPOCH=3"}},
		{"without epoch a stale one goes", agent.Result{StateDir: "/s", VolumeID: "vol-1"},
			[]string{"PATH=/bin", "HANDOVER_VOLUME_ID_X=keep", "HANDOVER_STATE_DIR=/s", "HANDOVER_VOLUME_ID=vol-1"}},
		{"start fenced", agent.Result{StateDir: "/s", VolumeID: "vol-1", Epoch: "3", StartFenced: true},
			[]string{"PATH=/bin", "HANDOVER_VOLUME_ID_X=keep", "HANDOVER_STATE_DIR=/s", "HANDOVER_VOLUME_ID=vol-1", "HANDOVER_EPOCH=3", "HANDOVER_START_FENCED=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Environ(base); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
