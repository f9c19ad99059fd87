package handovertest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

func TestCloudVolumes(t *testing.T) {
	ctx := t.Context()
	c := NewCloud(clock.NewFake(time.Unix(0, 0)))
	c.AddInstance(handover.Instance{ID: "i-1", Zone: "a", State: handover.InstanceRunning})
	c.AddInstance(handover.Instance{ID: "i-2", Zone: "b", State: handover.InstanceRunning})
	c.AddSnapshot(handover.Snapshot{ID: "snap-1", State: handover.SnapshotCompleted, SizeGiB: 10})

	spec := handover.VolumeSpec{Zone: "b", SnapshotID: "snap-1", ClientToken: "t1", Tags: map[string]string{"k": "v"}}
	v1, err := c.CreateVolume(ctx, spec)
	if err != nil || v1.State != handover.VolumeCreating || v1.SizeGiB != 10 {
		t.Fatalf("CreateVolume = %+v, %v", v1, err)
	}
	if v2, err := c.CreateVolume(ctx, spec); err != nil || v2.ID != v1.ID {
		t.Fatalf("repeated CreateVolume = %+v, %v; want %s again", v2, err, v1.ID)
	}
	if _, err := c.CreateVolume(ctx, handover.VolumeSpec{Zone: "b", SnapshotID: "snap-x"}); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("CreateVolume from a missing snapshot: %v, want ErrNotFound", err)
	}
	if err := c.AttachVolume(ctx, v1.ID, "i-2", "/dev/sdf"); !errors.Is(err, handover.ErrIncorrectState) {
		t.Errorf("attach while creating: %v, want ErrIncorrectState", err)
	}
	c.MakeAvailable(v1.ID)
	if err := c.AttachVolume(ctx, v1.ID, "i-1", "/dev/sdf"); !errors.Is(err, handover.ErrInvalid) {
		t.Errorf("attach across zones: %v, want ErrInvalid", err)
	}
	found, _ := c.FindVolumes(ctx, map[string]string{"k": "v"})
	if len(found) != 1 || found[0].ID != v1.ID {
		t.Errorf("FindVolumes by tag = %+v", found)
	}
	if found, _ := c.FindVolumes(ctx, map[string]string{"k": "other"}); len(found) != 0 {
		t.Errorf("FindVolumes with a wrong tag value = %+v", found)
	}
	if err := c.DeleteVolume(ctx, v1.ID); err != nil || !c.Deleted(v1.ID) {
		t.Errorf("DeleteVolume: %v deleted=%v", err, c.Deleted(v1.ID))
	}
	if _, err := c.DescribeVolume(ctx, v1.ID); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("DescribeVolume of a deleted volume: %v, want ErrNotFound", err)
	}
	if err := c.DeleteVolume(ctx, v1.ID); err != nil {
		t.Errorf("deleting a missing volume: %v, want nil", err)
	}
}

func TestCloudActionsAndErrors(t *testing.T) {
	ctx := t.Context()
	c := NewCloud(nil)
	c.AddGroup("g")
	ref := ledger.HookRef{Group: "g", Hook: "h", Token: "tok", Instance: "i-1"}
	c.StartAction(ref, handover.TransitionLaunching)
	if got := c.Lifecycle("g", "i-1"); got != handover.LifecyclePendingWait {
		t.Fatalf("lifecycle = %q", got)
	}
	if w, _ := c.WaitingActions(ctx); len(w) != 1 || w[0].Instance != "i-1" {
		t.Fatalf("WaitingActions = %+v", w)
	}
	byInstance := ref
	byInstance.Token = ""
	if err := c.RecordLifecycleActionHeartbeat(ctx, byInstance); err != nil {
		t.Fatalf("heartbeat by instance id: %v", err)
	}
	c.NextErr["CompleteLifecycleAction"] = handover.ErrUnavailable
	if err := c.CompleteLifecycleAction(ctx, ref, handover.ResultContinue); !errors.Is(err, handover.ErrUnavailable) {
		t.Fatalf("injected error: %v", err)
	}
	if err := c.CompleteLifecycleAction(ctx, ref, handover.ResultContinue); err != nil {
		t.Fatalf("NextErr used more than once: %v", err)
	}
	if err := c.CompleteLifecycleAction(ctx, ref, handover.ResultAbandon); !errors.Is(err, handover.ErrNoActiveAction) {
		t.Errorf("completing an ended action: %v, want ErrNoActiveAction", err)
	}
	want := []string{
		"WaitingActions", "RecordLifecycleActionHeartbeat i-1 h",
		"CompleteLifecycleAction i-1 h CONTINUE", "CompleteLifecycleAction i-1 h CONTINUE", "CompleteLifecycleAction i-1 h ABANDON",
	}
	if !slices.Equal(c.Calls, want) {
		t.Errorf("calls = %q\nwant    %q", c.Calls, want)
	}
	if _, err := c.DescribeInstance(ctx, "i-x"); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("DescribeInstance of a missing instance: %v", err)
	}
	c.Reset()
	if len(c.Calls) != 0 || len(c.NextErr) != 0 || len(c.Volumes()) != 0 {
		t.Errorf("Reset left state behind")
	}
}

func TestServiceGate(t *testing.T) {
	ctx := t.Context()
	s := NewService()
	if err := s.Fence(ctx, handover.Target{Addr: "10.0.0.1"}, 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Fence(ctx, handover.Target{Addr: "10.0.0.1"}, 3); !errors.Is(err, fence.ErrStaleEpoch) {
		t.Errorf("fence under a lower epoch: %v, want ErrStaleEpoch", err)
	}
	if f, ep := s.Gate("10.0.0.1").Fenced(); !f || ep != 4 {
		t.Errorf("gate fenced=%v epoch=%d", f, ep)
	}
	s.SetReachable("10.0.0.1", false)
	if err := s.Unfence(ctx, handover.Target{Addr: "10.0.0.1"}, 4); !errors.Is(err, fence.ErrUnreachable) {
		t.Errorf("unfence while unreachable: %v, want ErrUnreachable", err)
	}
	s.SetHealthy("10.0.0.2", false)
	if err := s.Healthy(ctx, handover.Target{Addr: "10.0.0.2"}); err == nil {
		t.Errorf("unhealthy address reported healthy")
	}
	if got := s.CallsOf("Fence"); len(got) != 2 {
		t.Errorf("fence calls = %q", got)
	}
}
