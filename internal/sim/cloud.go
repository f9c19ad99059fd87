package sim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// fakeCloud is the in-memory cloud the simulator drives. It implements
// handover.Cloud with EC2 and Auto Scaling semantics where handover's
// correctness depends on them: point-in-time snapshots that complete later,
// zone-bound volumes, client tokens, lifecycle actions with heartbeat
// timeouts, and server-side token buckets that throttle.
type fakeCloud struct{ w *world }

var (
	_ handover.Cloud   = fakeCloud{}
	_ handover.Drainer = fakeCloud{}
)

// enter is the common prologue of every API call: a possible controller
// crash, injected faults and throttling.
func (c fakeCloud) enter(family pacing.Family, op string) error {
	w := c.w
	w.maybeCrash()
	w.stats.APICalls++
	if l := w.limiters[family]; l != nil && !l.Allow(w.clk.Now()) {
		w.stats.Throttles++
		return fmt.Errorf("%s: RequestLimitExceeded: %w", op, handover.ErrThrottled)
	}
	if w.chance(w.f.Throttle) {
		w.stats.Throttles++
		return fmt.Errorf("%s: RequestLimitExceeded (injected): %w", op, handover.ErrThrottled)
	}
	if w.chance(w.f.ServerError) {
		w.stats.ServerErrors++
		return fmt.Errorf("%s: InternalError (injected): %w", op, handover.ErrUnavailable)
	}
	return nil
}

// leave may crash the controller after the call took effect but before it
// saw the answer: the nastiest place for a crash.
func (c fakeCloud) leave() { c.w.maybeCrash() }

func (c fakeCloud) DescribeInstance(_ context.Context, id string) (handover.Instance, error) {
	if err := c.enter(pacing.FamilyDescribe, "DescribeInstances"); err != nil {
		return handover.Instance{}, err
	}
	i, ok := c.w.instances[id]
	if !ok {
		return handover.Instance{}, fmt.Errorf("instance %s: InvalidInstanceID.NotFound: %w", id, handover.ErrNotFound)
	}
	return handover.Instance{ID: i.id, Zone: i.zone, State: i.state, PrivateIP: i.ip}, nil
}

func (c fakeCloud) StopInstance(_ context.Context, id string) error {
	if err := c.enter(pacing.FamilyMutate, "StopInstances"); err != nil {
		return err
	}
	defer c.leave()
	i, ok := c.w.instances[id]
	if !ok {
		return fmt.Errorf("instance %s: InvalidInstanceID.NotFound: %w", id, handover.ErrNotFound)
	}
	if i.state == handover.InstanceRunning || i.state == handover.InstancePending {
		c.w.stopInstance(i)
	}
	return nil
}

func (c fakeCloud) StartInstance(_ context.Context, id string) error {
	if err := c.enter(pacing.FamilyMutate, "StartInstances"); err != nil {
		return err
	}
	defer c.leave()
	i, ok := c.w.instances[id]
	if !ok {
		return fmt.Errorf("instance %s: InvalidInstanceID.NotFound: %w", id, handover.ErrNotFound)
	}
	switch i.state {
	case handover.InstanceStopped:
		c.w.startInstance(i)
	case handover.InstanceTerminated, handover.InstanceShuttingDown:
		return fmt.Errorf("instance %s is %s: IncorrectInstanceState: %w", id, i.state, handover.ErrIncorrectState)
	}
	return nil
}

func (c fakeCloud) CreateSnapshot(_ context.Context, volumeID string, tags map[string]string) (handover.Snapshot, error) {
	if err := c.enter(pacing.FamilySnapshot, "CreateSnapshot"); err != nil {
		return handover.Snapshot{}, err
	}
	defer c.leave()
	v, ok := c.w.volumes[volumeID]
	if !ok || v.state == handover.VolumeDeleted {
		return handover.Snapshot{}, fmt.Errorf("volume %s: InvalidVolume.NotFound: %w", volumeID, handover.ErrNotFound)
	}
	s := c.w.snapshotVolume(v, tags)
	return s.view(), nil
}

func (c fakeCloud) DescribeSnapshot(_ context.Context, id string) (handover.Snapshot, error) {
	if err := c.enter(pacing.FamilyDescribe, "DescribeSnapshots"); err != nil {
		return handover.Snapshot{}, err
	}
	s, ok := c.w.snapshots[id]
	if !ok || s.deleted {
		return handover.Snapshot{}, fmt.Errorf("snapshot %s: InvalidSnapshot.NotFound: %w", id, handover.ErrNotFound)
	}
	return s.view(), nil
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func (c fakeCloud) FindSnapshots(_ context.Context, tags map[string]string) ([]handover.Snapshot, error) {
	if err := c.enter(pacing.FamilyDescribe, "DescribeSnapshots"); err != nil {
		return nil, err
	}
	var out []handover.Snapshot
	for _, id := range slices.Sorted(maps.Keys(c.w.snapshots)) {
		if s := c.w.snapshots[id]; !s.deleted && matches(s.tags, tags) {
			out = append(out, s.view())
		}
	}
	return out, nil
}

func (c fakeCloud) DeleteSnapshot(_ context.Context, id string) error {
	if err := c.enter(pacing.FamilyDelete, "DeleteSnapshot"); err != nil {
		return err
	}
	defer c.leave()
	s, ok := c.w.snapshots[id]
	if !ok || s.deleted {
		return nil
	}
	if s.state == handover.SnapshotPending {
		return fmt.Errorf("snapshot %s is pending: IncorrectState: %w", id, handover.ErrIncorrectState)
	}
	s.deleted = true
	return nil
}

func (c fakeCloud) CreateVolume(_ context.Context, spec handover.VolumeSpec) (handover.Volume, error) {
	if err := c.enter(pacing.FamilyVolume, "CreateVolume"); err != nil {
		return handover.Volume{}, err
	}
	defer c.leave()
	w := c.w
	if spec.ClientToken != "" {
		if id, ok := w.clientTokens[spec.ClientToken]; ok {
			return w.volumes[id].view(), nil
		}
	}
	if !slices.Contains(w.zones, spec.Zone) {
		return handover.Volume{}, fmt.Errorf("zone %q: InvalidParameterValue: %w", spec.Zone, handover.ErrInvalid)
	}
	var data map[string]string
	var st fence.State
	size := spec.SizeGiB
	if spec.SnapshotID != "" {
		s, ok := w.snapshots[spec.SnapshotID]
		if !ok || s.deleted {
			return handover.Volume{}, fmt.Errorf("snapshot %s: InvalidSnapshot.NotFound: %w", spec.SnapshotID, handover.ErrNotFound)
		}
		if s.state != handover.SnapshotCompleted {
			return handover.Volume{}, fmt.Errorf("snapshot %s is %s: IncorrectState: %w", s.id, s.state, handover.ErrIncorrectState)
		}
		data = maps.Clone(s.data)
		st = s.fence
		size = max(size, s.size)
	}
	if size <= 0 {
		return handover.Volume{}, fmt.Errorf("size 0 without a snapshot: InvalidParameterValue: %w", handover.ErrInvalid)
	}
	v := w.newVolume(spec.Zone, size, data, spec.Tags, st)
	v.snapshotID = spec.SnapshotID
	if spec.ClientToken != "" {
		w.clientTokens[spec.ClientToken] = v.id
	}
	return v.view(), nil
}

func (c fakeCloud) DescribeVolume(_ context.Context, id string) (handover.Volume, error) {
	if err := c.enter(pacing.FamilyDescribe, "DescribeVolumes"); err != nil {
		return handover.Volume{}, err
	}
	v, ok := c.w.volumes[id]
	if !ok || v.state == handover.VolumeDeleted {
		return handover.Volume{}, fmt.Errorf("volume %s: InvalidVolume.NotFound: %w", id, handover.ErrNotFound)
	}
	return v.view(), nil
}

func (c fakeCloud) FindVolumes(_ context.Context, tags map[string]string) ([]handover.Volume, error) {
	if err := c.enter(pacing.FamilyDescribe, "DescribeVolumes"); err != nil {
		return nil, err
	}
	var out []handover.Volume
	for _, id := range slices.Sorted(maps.Keys(c.w.volumes)) {
		if v := c.w.volumes[id]; v.state != handover.VolumeDeleted && matches(v.tags, tags) {
			out = append(out, v.view())
		}
	}
	return out, nil
}

func (c fakeCloud) AttachVolume(_ context.Context, volumeID, instanceID, device string) error {
	if err := c.enter(pacing.FamilyMutate, "AttachVolume"); err != nil {
		return err
	}
	defer c.leave()
	w := c.w
	v, ok := w.volumes[volumeID]
	if !ok || v.state == handover.VolumeDeleted {
		return fmt.Errorf("volume %s: InvalidVolume.NotFound: %w", volumeID, handover.ErrNotFound)
	}
	i, ok := w.instances[instanceID]
	if !ok || i.state == handover.InstanceTerminated {
		return fmt.Errorf("instance %s: InvalidInstanceID.NotFound: %w", instanceID, handover.ErrNotFound)
	}
	if v.zone != i.zone {
		return fmt.Errorf("volume %s is in %s, instance %s in %s: InvalidVolume.ZoneMismatch: %w", v.id, v.zone, i.id, i.zone, handover.ErrInvalid)
	}
	if v.state != handover.VolumeAvailable || v.attachedTo != "" {
		return fmt.Errorf("volume %s is %s: VolumeInUse: %w", v.id, v.state, handover.ErrIncorrectState)
	}
	w.attach(v, i)
	return nil
}

func (c fakeCloud) DetachVolume(_ context.Context, volumeID string, force bool) error {
	if err := c.enter(pacing.FamilyMutate, "DetachVolume"); err != nil {
		return err
	}
	defer c.leave()
	v, ok := c.w.volumes[volumeID]
	if !ok || v.state == handover.VolumeDeleted {
		return fmt.Errorf("volume %s: InvalidVolume.NotFound: %w", volumeID, handover.ErrNotFound)
	}
	if v.attachedTo != "" && v.attachState != "detaching" {
		c.w.detach(v)
	}
	return nil
}

func (c fakeCloud) DeleteVolume(_ context.Context, volumeID string) error {
	if err := c.enter(pacing.FamilyDelete, "DeleteVolume"); err != nil {
		return err
	}
	defer c.leave()
	v, ok := c.w.volumes[volumeID]
	if !ok || v.state == handover.VolumeDeleted {
		return nil
	}
	if v.attachedTo != "" || v.state == handover.VolumeInUse {
		return fmt.Errorf("volume %s is attached to %s: VolumeInUse: %w", v.id, v.attachedTo, handover.ErrIncorrectState)
	}
	if v.state == handover.VolumeCreating {
		return fmt.Errorf("volume %s is creating: IncorrectState: %w", v.id, handover.ErrIncorrectState)
	}
	v.state = handover.VolumeDeleted
	return nil
}

func (c fakeCloud) DescribeHook(_ context.Context, group, hook string) (handover.Hook, error) {
	if err := c.enter(pacing.FamilyAutoScaling, "DescribeLifecycleHooks"); err != nil {
		return handover.Hook{}, err
	}
	g, ok := c.w.groups[group]
	if !ok || (hook != g.launchHook && hook != g.terminateHook) {
		return handover.Hook{}, fmt.Errorf("hook %s of group %s: ValidationError: %w", hook, group, handover.ErrNotFound)
	}
	return handover.Hook{HeartbeatTimeout: c.w.hookTimeout, DefaultResult: handover.ResultAbandon, Metadata: g.metadata}, nil
}

func (c fakeCloud) findAction(ref ledger.HookRef) *action {
	if ref.Token != "" {
		return c.w.actions[ref.Token]
	}
	for _, a := range c.w.actions {
		if a.instance == ref.Instance && a.hook == ref.Hook && !a.ended {
			return a
		}
	}
	return nil
}

func (c fakeCloud) CompleteLifecycleAction(_ context.Context, ref ledger.HookRef, result string) error {
	if err := c.enter(pacing.FamilyAutoScaling, "CompleteLifecycleAction"); err != nil {
		return err
	}
	defer c.leave()
	a := c.findAction(ref)
	if a == nil || a.ended {
		return fmt.Errorf("ValidationError: No active Lifecycle Action found with instance ID %s: %w", ref.Instance, handover.ErrNoActiveAction)
	}
	if result != handover.ResultContinue && result != handover.ResultAbandon {
		return fmt.Errorf("result %q: ValidationError: %w", result, handover.ErrInvalid)
	}
	c.w.endAction(a, result, "completed")
	return nil
}

func (c fakeCloud) RecordLifecycleActionHeartbeat(_ context.Context, ref ledger.HookRef) error {
	if err := c.enter(pacing.FamilyAutoScaling, "RecordLifecycleActionHeartbeat"); err != nil {
		return err
	}
	defer c.leave()
	a := c.findAction(ref)
	if a == nil || a.ended {
		return fmt.Errorf("ValidationError: No active Lifecycle Action found with instance ID %s: %w", ref.Instance, handover.ErrNoActiveAction)
	}
	a.deadline = c.w.clk.Now().Add(c.w.hookTimeout)
	return nil
}

func (c fakeCloud) GroupInstanceState(_ context.Context, group, instance string) (string, error) {
	if err := c.enter(pacing.FamilyAutoScaling, "DescribeAutoScalingInstances"); err != nil {
		return "", err
	}
	i, ok := c.w.instances[instance]
	if !ok || i.group != group || i.lifecycle == "Terminated" {
		return "", fmt.Errorf("instance %s not in group %s: %w", instance, group, handover.ErrNotFound)
	}
	return i.lifecycle, nil
}

func (c fakeCloud) GroupMembers(_ context.Context, group string) ([]handover.GroupMember, error) {
	if err := c.enter(pacing.FamilyAutoScaling, "DescribeAutoScalingGroups"); err != nil {
		return nil, err
	}
	g, ok := c.w.groups[group]
	if !ok {
		return nil, fmt.Errorf("group %s: %w", group, handover.ErrNotFound)
	}
	var out []handover.GroupMember
	for _, id := range g.members {
		out = append(out, handover.GroupMember{Instance: id, Lifecycle: c.w.instances[id].lifecycle})
	}
	return out, nil
}

func (c fakeCloud) ReplaceInstance(_ context.Context, group, instance string) error {
	if err := c.enter(pacing.FamilyAutoScaling, "TerminateInstanceInAutoScalingGroup"); err != nil {
		return err
	}
	defer c.leave()
	w := c.w
	i, ok := w.instances[instance]
	if !ok || i.group != group {
		return fmt.Errorf("instance %s not in group %s: ValidationError: %w", instance, group, handover.ErrNotFound)
	}
	// Only an injected fault strands an instance, so its reads going away
	// while it is replaced are expected.
	if g := w.groups[group]; g != nil {
		w.excused[g.db] = i.id
	}
	w.beginTerminate(i)
	return nil
}

// DrainInstance takes the instance out of its load balancer at once (a
// deregistered target gets no new requests) and reports it drained after a
// deregistration delay.
func (c fakeCloud) DrainInstance(_ context.Context, group, instance string) (bool, error) {
	if err := c.enter(pacing.FamilyAutoScaling, "DeregisterTargets"); err != nil {
		return false, err
	}
	defer c.leave()
	i, ok := c.w.instances[instance]
	if !ok || i.lifecycle == lcTerminated {
		return true, nil
	}
	if !i.deregistered {
		i.deregistered = true
		i.drainUntil = c.w.clk.Now().Add(c.w.between(time.Second, 15*time.Second))
		c.w.stats.Drains++
	}
	return !c.w.clk.Now().Before(i.drainUntil), nil
}

// UndrainInstance puts the instance back in its load balancer.
func (c fakeCloud) UndrainInstance(_ context.Context, group, instance string) error {
	if err := c.enter(pacing.FamilyAutoScaling, "RegisterTargets"); err != nil {
		return err
	}
	defer c.leave()
	if i, ok := c.w.instances[instance]; ok {
		i.deregistered, i.drainUntil = false, time.Time{}
	}
	return nil
}

func (c fakeCloud) WaitingActions(_ context.Context) ([]handover.WaitingAction, error) {
	if err := c.enter(pacing.FamilyAutoScaling, "DescribeAutoScalingGroups"); err != nil {
		return nil, err
	}
	var out []handover.WaitingAction
	for _, id := range slices.Sorted(maps.Keys(c.w.actions)) {
		a := c.w.actions[id]
		if a.ended {
			continue
		}
		g := c.w.groups[a.group]
		out = append(out, handover.WaitingAction{Group: a.group, Hook: a.hook, Instance: a.instance, Transition: a.transition, Metadata: g.metadata})
	}
	return out, nil
}

// view helpers

func (s *snapshot) view() handover.Snapshot {
	return handover.Snapshot{ID: s.id, VolumeID: s.volumeID, State: s.state, SizeGiB: s.size, Tags: maps.Clone(s.tags), StartTime: s.start}
}

func (v *volume) view() handover.Volume {
	return handover.Volume{
		ID: v.id, Zone: v.zone, State: v.state, SizeGiB: v.size, SnapshotID: v.snapshotID,
		AttachedTo: v.attachedTo, AttachState: v.attachState, Tags: maps.Clone(v.tags), CreateTime: v.created,
	}
}
