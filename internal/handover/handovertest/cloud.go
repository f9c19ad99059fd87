// Package handovertest holds hand-written fakes of the interfaces the
// handover state machine consumes (Cloud, Service, Pacer), for exact,
// step-by-step unit tests.
//
// The fakes are synchronous and never change a resource on their own: a
// snapshot stays pending until the test calls CompleteSnapshot, a volume
// stays creating until MakeAvailable, an attachment stays attaching until
// FinishAttach. Every call is recorded in Calls, and NextErr injects one
// failure per method. This package must never be imported by production
// code.
package handovertest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// Action is a lifecycle action an instance waits on.
type Action struct {
	Ref        ledger.HookRef
	Transition string // handover.TransitionLaunching or TransitionTerminating
	Metadata   string
	// Result is "" while the action is active, then CONTINUE, ABANDON, or
	// "TIMEOUT" when the test ended it with EndAction.
	Result     string
	Heartbeats int
}

// Active reports whether the action still waits.
func (a Action) Active() bool { return a.Result == "" }

// Cloud is an in-memory handover.Cloud. It is safe for concurrent use, but
// Calls and NextErr must only be touched by the test while no controller
// call is in flight.
type Cloud struct {
	mu  sync.Mutex
	clk clock.Clock

	// Calls records every call as "Method main-argument…", in order, failed
	// ones included. See each method for its arguments.
	Calls []string
	// NextErr maps a method name ("CreateSnapshot") to an error the next
	// call of that method returns instead of doing anything. Each entry is
	// used once.
	NextErr map[string]error

	seq       int
	instances map[string]*handover.Instance
	volumes   map[string]*handover.Volume
	snapshots map[string]*handover.Snapshot
	deleted   map[string]bool   // volume and snapshot ids deleted
	tokens    map[string]string // CreateVolume client token → volume id
	hooks     map[string]handover.Hook
	actions   []*Action
	groups    map[string]map[string]string // group → instance → lifecycle state
	health    map[string]string            // "group/instance" → health status, when set
	outOfZone map[string]bool              // "group/instance" → its zone left the group
	drains    map[string]string            // instance → "draining" or "drained"
}

var (
	_ handover.Cloud   = (*Cloud)(nil)
	_ handover.Drainer = (*Cloud)(nil)
)

// NewCloud returns an empty cloud that stamps creation times from clk.
func NewCloud(clk clock.Clock) *Cloud {
	c := &Cloud{clk: clk}
	c.Reset()
	return c
}

// Reset forgets every resource, call and injected error.
func (c *Cloud) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Calls = nil
	c.NextErr = map[string]error{}
	c.seq = 0
	c.instances = map[string]*handover.Instance{}
	c.volumes = map[string]*handover.Volume{}
	c.snapshots = map[string]*handover.Snapshot{}
	c.deleted = map[string]bool{}
	c.tokens = map[string]string{}
	c.hooks = map[string]handover.Hook{}
	c.actions = nil
	c.groups = map[string]map[string]string{}
	c.health = map[string]string{}
	c.outOfZone = map[string]bool{}
	c.drains = map[string]string{}
}

// enter records the call and returns the injected error, if any. c.mu must
// be held.
func (c *Cloud) enter(method string, args ...string) error {
	c.Calls = append(c.Calls, strings.Join(append([]string{method}, args...), " "))
	if err, ok := c.NextErr[method]; ok {
		delete(c.NextErr, method)
		return fmt.Errorf("%s (injected): %w", method, err)
	}
	return nil
}

func (c *Cloud) now() time.Time {
	if c.clk == nil {
		return time.Time{}
	}
	return c.clk.Now()
}

func (c *Cloud) nextID(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s-%04d", prefix, c.seq)
}

// CallsOf returns the recorded calls of method, in order.
func (c *Cloud) CallsOf(method string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, call := range c.Calls {
		if call == method || strings.HasPrefix(call, method+" ") {
			out = append(out, call)
		}
	}
	return out
}

// ---- test controls ----

// AddInstance adds (or replaces) an instance.
func (c *Cloud) AddInstance(i handover.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.instances[i.ID] = &i
}

// SetInstanceState moves an instance to state. It panics on an unknown id,
// which is always a test bug.
func (c *Cloud) SetInstanceState(id, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mustInstance(id).State = state
}

// Instance returns an instance as stored.
func (c *Cloud) Instance(id string) (handover.Instance, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.instances[id]
	if !ok {
		return handover.Instance{}, false
	}
	return *i, true
}

func (c *Cloud) mustInstance(id string) *handover.Instance {
	i, ok := c.instances[id]
	if !ok {
		panic("handovertest: no instance " + id)
	}
	return i
}

// AddVolume adds (or replaces) a volume as given.
func (c *Cloud) AddVolume(v handover.Volume) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v.Tags = maps.Clone(v.Tags)
	c.volumes[v.ID] = &v
	delete(c.deleted, v.ID)
}

// Volume returns a volume as stored; deleted volumes are not.
func (c *Cloud) Volume(id string) (handover.Volume, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.volumes[id]
	if !ok {
		return handover.Volume{}, false
	}
	return cloneVolume(v), true
}

// Volumes returns every volume not deleted, by id.
func (c *Cloud) Volumes() []handover.Volume {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []handover.Volume
	for _, id := range slices.Sorted(maps.Keys(c.volumes)) {
		out = append(out, cloneVolume(c.volumes[id]))
	}
	return out
}

// MakeAvailable finishes creating a volume.
func (c *Cloud) MakeAvailable(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mustVolume(id).State = handover.VolumeAvailable
}

// FailVolume puts a volume in the error state.
func (c *Cloud) FailVolume(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mustVolume(id).State = handover.VolumeError
}

// FinishAttach completes an attachment started by AttachVolume.
func (c *Cloud) FinishAttach(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.mustVolume(id)
	if v.AttachedTo == "" {
		panic("handovertest: volume " + id + " is not attaching")
	}
	v.AttachState = "attached"
}

// FinishDetach completes a detachment started by DetachVolume: the volume
// is available again.
func (c *Cloud) FinishDetach(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.mustVolume(id)
	v.AttachedTo, v.AttachState, v.State = "", "", handover.VolumeAvailable
}

func (c *Cloud) mustVolume(id string) *handover.Volume {
	v, ok := c.volumes[id]
	if !ok {
		panic("handovertest: no volume " + id)
	}
	return v
}

// AddSnapshot adds (or replaces) a snapshot as given.
func (c *Cloud) AddSnapshot(s handover.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.Tags = maps.Clone(s.Tags)
	c.snapshots[s.ID] = &s
	delete(c.deleted, s.ID)
}

// Snapshot returns a snapshot as stored; deleted snapshots are not.
func (c *Cloud) Snapshot(id string) (handover.Snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.snapshots[id]
	if !ok {
		return handover.Snapshot{}, false
	}
	return cloneSnapshot(s), true
}

// Snapshots returns every snapshot not deleted, by id.
func (c *Cloud) Snapshots() []handover.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []handover.Snapshot
	for _, id := range slices.Sorted(maps.Keys(c.snapshots)) {
		out = append(out, cloneSnapshot(c.snapshots[id]))
	}
	return out
}

// CompleteSnapshot finishes a pending snapshot.
func (c *Cloud) CompleteSnapshot(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mustSnapshot(id).State = handover.SnapshotCompleted
}

// FailSnapshot puts a snapshot in the error state.
func (c *Cloud) FailSnapshot(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mustSnapshot(id).State = handover.SnapshotError
}

func (c *Cloud) mustSnapshot(id string) *handover.Snapshot {
	s, ok := c.snapshots[id]
	if !ok {
		panic("handovertest: no snapshot " + id)
	}
	return s
}

// Deleted reports whether a volume or snapshot was deleted.
func (c *Cloud) Deleted(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleted[id]
}

// AddHook configures a lifecycle hook.
func (c *Cloud) AddHook(group, name string, h handover.Hook) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks[group+"/"+name] = h
}

// AddGroup creates (or empties) a group with the given members.
func (c *Cloud) AddGroup(name string, members ...handover.GroupMember) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := map[string]string{}
	for _, m := range members {
		g[m.Instance] = m.Lifecycle
	}
	c.groups[name] = g
}

// SetLifecycle sets an instance's lifecycle state in a group, adding it to
// the group if needed.
func (c *Cloud) SetLifecycle(group, instance, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.groups[group]
	if !ok {
		panic("handovertest: no group " + group)
	}
	g[instance] = state
}

// SetHealth sets the health status ("Healthy", "Unhealthy") GroupMembers
// reports for an instance of a group; "" means unknown, as at the start.
func (c *Cloud) SetHealth(group, instance, health string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.health[group+"/"+instance] = health
}

// SetOutOfZone marks an instance of a group as standing in a zone the group
// no longer uses, as after its zone was taken out of the group.
func (c *Cloud) SetOutOfZone(group, instance string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outOfZone[group+"/"+instance] = true
}

// Lifecycle returns an instance's lifecycle state in a group.
func (c *Cloud) Lifecycle(group, instance string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups[group][instance]
}

// StartAction puts an instance in Pending:Wait or Terminating:Wait on a
// hook, with the hook's metadata. The group must exist.
func (c *Cloud) StartAction(ref ledger.HookRef, transition string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.groups[ref.Group]
	if !ok {
		panic("handovertest: no group " + ref.Group)
	}
	state := "Pending:Wait"
	if transition == handover.TransitionTerminating {
		state = "Terminating:Wait"
	}
	g[ref.Instance] = state
	c.actions = append(c.actions, &Action{
		Ref: ref, Transition: transition, Metadata: c.hooks[ref.Group+"/"+ref.Hook].Metadata,
	})
}

// Action returns the latest action of instance on hook.
func (c *Cloud) Action(instance, hook string) (Action, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.actions) - 1; i >= 0; i-- {
		if a := c.actions[i]; a.Ref.Instance == instance && a.Ref.Hook == hook {
			return *a, true
		}
	}
	return Action{}, false
}

// EndAction ends an action the way a timeout does (Result "TIMEOUT"), so
// later calls about it get ErrNoActiveAction.
func (c *Cloud) EndAction(instance, hook string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.actions {
		if a.Ref.Instance == instance && a.Ref.Hook == hook && a.Active() {
			a.Result = "TIMEOUT"
		}
	}
}

// ---- handover.Cloud ----

// DescribeInstance implements handover.Cloud. Call: "DescribeInstance id".
func (c *Cloud) DescribeInstance(_ context.Context, id string) (handover.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DescribeInstance", id); err != nil {
		return handover.Instance{}, err
	}
	i, ok := c.instances[id]
	if !ok {
		return handover.Instance{}, fmt.Errorf("instance %s: %w", id, handover.ErrNotFound)
	}
	return *i, nil
}

// StopInstance implements handover.Cloud: a running instance becomes
// stopping (SetInstanceState finishes it). Call: "StopInstance id".
func (c *Cloud) StopInstance(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("StopInstance", id); err != nil {
		return err
	}
	i, ok := c.instances[id]
	switch {
	case !ok:
		return fmt.Errorf("instance %s: %w", id, handover.ErrNotFound)
	case i.State == handover.InstanceRunning || i.State == handover.InstancePending:
		i.State = handover.InstanceStopping
	}
	return nil
}

// StartInstance implements handover.Cloud: a stopped instance becomes
// pending. Call: "StartInstance id".
func (c *Cloud) StartInstance(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("StartInstance", id); err != nil {
		return err
	}
	i, ok := c.instances[id]
	switch {
	case !ok:
		return fmt.Errorf("instance %s: %w", id, handover.ErrNotFound)
	case i.State == handover.InstanceStopped:
		i.State = handover.InstancePending
	case i.State == handover.InstanceTerminated || i.State == handover.InstanceShuttingDown:
		return fmt.Errorf("instance %s is %s: %w", id, i.State, handover.ErrIncorrectState)
	}
	return nil
}

// CreateSnapshot implements handover.Cloud: the snapshot starts pending.
// Call: "CreateSnapshot volume-id".
func (c *Cloud) CreateSnapshot(_ context.Context, volumeID string, tags map[string]string) (handover.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("CreateSnapshot", volumeID); err != nil {
		return handover.Snapshot{}, err
	}
	v, ok := c.volumes[volumeID]
	if !ok {
		return handover.Snapshot{}, fmt.Errorf("volume %s: %w", volumeID, handover.ErrNotFound)
	}
	s := &handover.Snapshot{
		ID: c.nextID("snap"), VolumeID: volumeID, State: handover.SnapshotPending,
		SizeGiB: v.SizeGiB, Tags: maps.Clone(tags), StartTime: c.now(),
	}
	c.snapshots[s.ID] = s
	return cloneSnapshot(s), nil
}

// DescribeSnapshot implements handover.Cloud. Call: "DescribeSnapshot id".
func (c *Cloud) DescribeSnapshot(_ context.Context, id string) (handover.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DescribeSnapshot", id); err != nil {
		return handover.Snapshot{}, err
	}
	s, ok := c.snapshots[id]
	if !ok {
		return handover.Snapshot{}, fmt.Errorf("snapshot %s: %w", id, handover.ErrNotFound)
	}
	return cloneSnapshot(s), nil
}

// FindSnapshots implements handover.Cloud. Call: "FindSnapshots k=v,…".
func (c *Cloud) FindSnapshots(_ context.Context, tags map[string]string) ([]handover.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("FindSnapshots", tagString(tags)); err != nil {
		return nil, err
	}
	var out []handover.Snapshot
	for _, id := range slices.Sorted(maps.Keys(c.snapshots)) {
		if s := c.snapshots[id]; hasTags(s.Tags, tags) {
			out = append(out, cloneSnapshot(s))
		}
	}
	return out, nil
}

// DeleteSnapshot implements handover.Cloud. Call: "DeleteSnapshot id".
func (c *Cloud) DeleteSnapshot(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DeleteSnapshot", id); err != nil {
		return err
	}
	if _, ok := c.snapshots[id]; ok {
		delete(c.snapshots, id)
		c.deleted[id] = true
	}
	return nil
}

// CreateVolume implements handover.Cloud: the volume starts creating. A
// repeated client token returns the first volume. A snapshot that is
// missing is ErrNotFound, one not yet completed ErrIncorrectState.
// Call: "CreateVolume zone snapshot-id-or-blank".
func (c *Cloud) CreateVolume(_ context.Context, spec handover.VolumeSpec) (handover.Volume, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := spec.SnapshotID
	if from == "" {
		from = "blank"
	}
	if err := c.enter("CreateVolume", spec.Zone, from); err != nil {
		return handover.Volume{}, err
	}
	if id, ok := c.tokens[spec.ClientToken]; ok && spec.ClientToken != "" {
		if v, ok := c.volumes[id]; ok {
			return cloneVolume(v), nil
		}
	}
	if spec.Zone == "" {
		return handover.Volume{}, fmt.Errorf("creating volume: no availability zone: %w", handover.ErrInvalid)
	}
	size := spec.SizeGiB
	if spec.SnapshotID != "" {
		s, ok := c.snapshots[spec.SnapshotID]
		switch {
		case !ok:
			return handover.Volume{}, fmt.Errorf("snapshot %s: %w", spec.SnapshotID, handover.ErrNotFound)
		case s.State != handover.SnapshotCompleted:
			return handover.Volume{}, fmt.Errorf("snapshot %s is %s: %w", s.ID, s.State, handover.ErrIncorrectState)
		case size == 0:
			size = s.SizeGiB
		case size < s.SizeGiB:
			return handover.Volume{}, fmt.Errorf("size %d GiB is below snapshot %s's %d GiB: %w", size, s.ID, s.SizeGiB, handover.ErrInvalid)
		}
	}
	if size <= 0 {
		return handover.Volume{}, fmt.Errorf("creating volume: size %d GiB: %w", size, handover.ErrInvalid)
	}
	v := &handover.Volume{
		ID: c.nextID("vol"), Zone: spec.Zone, State: handover.VolumeCreating, SizeGiB: size,
		SnapshotID: spec.SnapshotID, Tags: maps.Clone(spec.Tags), CreateTime: c.now(),
	}
	c.volumes[v.ID] = v
	if spec.ClientToken != "" {
		c.tokens[spec.ClientToken] = v.ID
	}
	return cloneVolume(v), nil
}

// DescribeVolume implements handover.Cloud. Call: "DescribeVolume id".
func (c *Cloud) DescribeVolume(_ context.Context, id string) (handover.Volume, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DescribeVolume", id); err != nil {
		return handover.Volume{}, err
	}
	v, ok := c.volumes[id]
	if !ok {
		return handover.Volume{}, fmt.Errorf("volume %s: %w", id, handover.ErrNotFound)
	}
	return cloneVolume(v), nil
}

// FindVolumes implements handover.Cloud. Call: "FindVolumes k=v,…".
func (c *Cloud) FindVolumes(_ context.Context, tags map[string]string) ([]handover.Volume, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("FindVolumes", tagString(tags)); err != nil {
		return nil, err
	}
	var out []handover.Volume
	for _, id := range slices.Sorted(maps.Keys(c.volumes)) {
		if v := c.volumes[id]; hasTags(v.Tags, tags) {
			out = append(out, cloneVolume(v))
		}
	}
	return out, nil
}

// AttachVolume implements handover.Cloud: the attachment starts attaching
// (FinishAttach completes it). A volume in another zone than the instance is
// ErrInvalid. Call: "AttachVolume volume-id instance-id".
func (c *Cloud) AttachVolume(_ context.Context, volumeID, instanceID, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("AttachVolume", volumeID, instanceID); err != nil {
		return err
	}
	v, ok := c.volumes[volumeID]
	if !ok {
		return fmt.Errorf("volume %s: %w", volumeID, handover.ErrNotFound)
	}
	i, ok := c.instances[instanceID]
	switch {
	case !ok:
		return fmt.Errorf("instance %s: %w", instanceID, handover.ErrNotFound)
	case v.Zone != i.Zone:
		return fmt.Errorf("volume %s is in %s, instance %s in %s: %w", v.ID, v.Zone, i.ID, i.Zone, handover.ErrInvalid)
	case v.State != handover.VolumeAvailable:
		return fmt.Errorf("volume %s is %s: %w", v.ID, v.State, handover.ErrIncorrectState)
	}
	v.State, v.AttachedTo, v.AttachState = handover.VolumeInUse, instanceID, "attaching"
	return nil
}

// DetachVolume implements handover.Cloud: the attachment starts detaching
// (FinishDetach completes it). Call: "DetachVolume volume-id".
func (c *Cloud) DetachVolume(_ context.Context, volumeID string, _ bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DetachVolume", volumeID); err != nil {
		return err
	}
	v, ok := c.volumes[volumeID]
	if !ok {
		return fmt.Errorf("volume %s: %w", volumeID, handover.ErrNotFound)
	}
	if v.AttachedTo != "" {
		v.AttachState = "detaching"
	}
	return nil
}

// DeleteVolume implements handover.Cloud. Call: "DeleteVolume id".
func (c *Cloud) DeleteVolume(_ context.Context, volumeID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DeleteVolume", volumeID); err != nil {
		return err
	}
	v, ok := c.volumes[volumeID]
	switch {
	case !ok:
		return nil
	case v.AttachedTo != "":
		return fmt.Errorf("volume %s is attached to %s: %w", v.ID, v.AttachedTo, handover.ErrIncorrectState)
	}
	delete(c.volumes, volumeID)
	c.deleted[volumeID] = true
	return nil
}

// DescribeHook implements handover.Cloud. Call: "DescribeHook group hook".
func (c *Cloud) DescribeHook(_ context.Context, group, hook string) (handover.Hook, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DescribeHook", group, hook); err != nil {
		return handover.Hook{}, err
	}
	h, ok := c.hooks[group+"/"+hook]
	if !ok {
		return handover.Hook{}, fmt.Errorf("hook %s of group %s: %w", hook, group, handover.ErrNotFound)
	}
	return h, nil
}

// active returns the active action ref names: by token when it has one,
// else by group, hook and instance. c.mu must be held.
func (c *Cloud) active(ref ledger.HookRef) *Action {
	for _, a := range c.actions {
		if !a.Active() || a.Ref.Group != ref.Group || a.Ref.Hook != ref.Hook || a.Ref.Instance != ref.Instance {
			continue
		}
		if ref.Token != "" && ref.Token != a.Ref.Token {
			continue
		}
		return a
	}
	return nil
}

// CompleteLifecycleAction implements handover.Cloud. It ends the action and
// leaves the instance's lifecycle state to the test (SetLifecycle).
// Call: "CompleteLifecycleAction instance hook result".
func (c *Cloud) CompleteLifecycleAction(_ context.Context, ref ledger.HookRef, result string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("CompleteLifecycleAction", ref.Instance, ref.Hook, result); err != nil {
		return err
	}
	if result != handover.ResultContinue && result != handover.ResultAbandon {
		return fmt.Errorf("lifecycle action result %q: %w", result, handover.ErrInvalid)
	}
	a := c.active(ref)
	if a == nil {
		return fmt.Errorf("instance %s on hook %s: %w", ref.Instance, ref.Hook, handover.ErrNoActiveAction)
	}
	a.Result = result
	return nil
}

// RecordLifecycleActionHeartbeat implements handover.Cloud.
// Call: "RecordLifecycleActionHeartbeat instance hook".
func (c *Cloud) RecordLifecycleActionHeartbeat(_ context.Context, ref ledger.HookRef) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("RecordLifecycleActionHeartbeat", ref.Instance, ref.Hook); err != nil {
		return err
	}
	a := c.active(ref)
	if a == nil {
		return fmt.Errorf("instance %s on hook %s: %w", ref.Instance, ref.Hook, handover.ErrNoActiveAction)
	}
	a.Heartbeats++
	return nil
}

// GroupInstanceState implements handover.Cloud.
// Call: "GroupInstanceState group instance".
func (c *Cloud) GroupInstanceState(_ context.Context, group, instance string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("GroupInstanceState", group, instance); err != nil {
		return "", err
	}
	state, ok := c.groups[group][instance]
	if !ok {
		return "", fmt.Errorf("instance %s in group %s: %w", instance, group, handover.ErrNotFound)
	}
	return state, nil
}

// GroupMembers implements handover.Cloud. Call: "GroupMembers group".
func (c *Cloud) GroupMembers(_ context.Context, group string) ([]handover.GroupMember, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("GroupMembers", group); err != nil {
		return nil, err
	}
	g, ok := c.groups[group]
	if !ok {
		return nil, fmt.Errorf("group %s: %w", group, handover.ErrNotFound)
	}
	var out []handover.GroupMember
	for _, id := range slices.Sorted(maps.Keys(g)) {
		out = append(out, handover.GroupMember{Instance: id, Lifecycle: g[id], Health: c.health[group+"/"+id], OutOfZone: c.outOfZone[group+"/"+id]})
	}
	return out, nil
}

// ReplaceInstance implements handover.Cloud: the member goes to
// Terminating (the test launches the replacement).
// Call: "ReplaceInstance group instance".
func (c *Cloud) ReplaceInstance(_ context.Context, group, instance string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("ReplaceInstance", group, instance); err != nil {
		return err
	}
	g, ok := c.groups[group]
	if !ok {
		return fmt.Errorf("group %s: %w", group, handover.ErrNotFound)
	}
	if _, ok := g[instance]; !ok {
		return fmt.Errorf("instance %s in group %s: %w", instance, group, handover.ErrNotFound)
	}
	g[instance] = "Terminating"
	return nil
}

// WaitingActions implements handover.Cloud: every active action, in the
// order they started. Call: "WaitingActions".
func (c *Cloud) WaitingActions(_ context.Context) ([]handover.WaitingAction, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("WaitingActions"); err != nil {
		return nil, err
	}
	var out []handover.WaitingAction
	for _, a := range c.actions {
		if a.Active() {
			out = append(out, handover.WaitingAction{
				Group: a.Ref.Group, Hook: a.Ref.Hook, Instance: a.Ref.Instance,
				Transition: a.Transition, Metadata: a.Metadata,
			})
		}
	}
	return out, nil
}

// DrainInstance implements handover.Drainer: the first call takes the
// instance out of its load balancers and reports it still draining until
// the test calls FinishDrain. Call: "DrainInstance group instance".
func (c *Cloud) DrainInstance(_ context.Context, group, instance string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("DrainInstance", group, instance); err != nil {
		return false, err
	}
	if c.drains[instance] == "" {
		c.drains[instance] = "draining"
	}
	return c.drains[instance] == "drained", nil
}

// UndrainInstance implements handover.Drainer: the instance is back in its
// load balancers. Call: "UndrainInstance group instance".
func (c *Cloud) UndrainInstance(_ context.Context, group, instance string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("UndrainInstance", group, instance); err != nil {
		return err
	}
	delete(c.drains, instance)
	return nil
}

// FinishDrain ends the drain of an instance DrainInstance started.
func (c *Cloud) FinishDrain(instance string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drains[instance] != "" {
		c.drains[instance] = "drained"
	}
}

// Drain returns "", "draining" or "drained" for an instance.
func (c *Cloud) Drain(instance string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drains[instance]
}

func hasTags(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func tagString(tags map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ",")
}

func cloneVolume(v *handover.Volume) handover.Volume {
	out := *v
	out.Tags = maps.Clone(v.Tags)
	return out
}

func cloneSnapshot(s *handover.Snapshot) handover.Snapshot {
	out := *s
	out.Tags = maps.Clone(s.Tags)
	return out
}
