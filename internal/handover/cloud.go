package handover

import (
	"context"
	"errors"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// Cloud is the set of cloud operations the state machine needs. It is
// implemented once over aws-sdk-go-v2 (which also drives the local cloud) and
// by the simulator's in-memory fake. Implementations translate provider
// error codes into the sentinel errors below, in one place.
type Cloud interface {
	// DescribeInstance returns the instance, or ErrNotFound. Safe to repeat.
	DescribeInstance(ctx context.Context, id string) (Instance, error)
	// StopInstance stops a running instance (the hard fence). Stopping a
	// stopped instance is not an error. Safe to repeat.
	StopInstance(ctx context.Context, id string) error
	// StartInstance starts a stopped instance. Safe to repeat.
	StartInstance(ctx context.Context, id string) error

	// CreateSnapshot starts a snapshot of volumeID tagged with tags. NOT safe
	// to repeat blindly: callers look one up by tag first.
	CreateSnapshot(ctx context.Context, volumeID string, tags map[string]string) (Snapshot, error)
	// DescribeSnapshot returns the snapshot, or ErrNotFound.
	DescribeSnapshot(ctx context.Context, id string) (Snapshot, error)
	// FindSnapshots returns the snapshots carrying every given tag.
	FindSnapshots(ctx context.Context, tags map[string]string) ([]Snapshot, error)
	// DeleteSnapshot deletes a snapshot; a missing one is not an error.
	DeleteSnapshot(ctx context.Context, id string) error

	// CreateVolume creates a volume. Repeating it with the same ClientToken
	// returns the same volume.
	CreateVolume(ctx context.Context, spec VolumeSpec) (Volume, error)
	// DescribeVolume returns the volume, or ErrNotFound.
	DescribeVolume(ctx context.Context, id string) (Volume, error)
	// FindVolumes returns the volumes carrying every given tag.
	FindVolumes(ctx context.Context, tags map[string]string) ([]Volume, error)
	// AttachVolume attaches a volume; ErrIncorrectState if it is not
	// available. Callers check the attachment first.
	AttachVolume(ctx context.Context, volumeID, instanceID, device string) error
	// DetachVolume detaches a volume; a detached one is not an error.
	DetachVolume(ctx context.Context, volumeID string, force bool) error
	// DeleteVolume deletes an available volume; a missing one is not an
	// error; an attached one returns ErrIncorrectState.
	DeleteVolume(ctx context.Context, volumeID string) error

	// DescribeHook returns a lifecycle hook's settings, or ErrNotFound.
	DescribeHook(ctx context.Context, group, hook string) (Hook, error)
	// CompleteLifecycleAction ends a lifecycle action with CONTINUE or
	// ABANDON. It returns ErrNoActiveAction when the action already ended.
	CompleteLifecycleAction(ctx context.Context, ref ledger.HookRef, result string) error
	// RecordLifecycleActionHeartbeat extends a lifecycle action. It returns
	// ErrNoActiveAction when the action already ended.
	RecordLifecycleActionHeartbeat(ctx context.Context, ref ledger.HookRef) error
	// GroupInstanceState returns the instance's lifecycle state in its group
	// (Pending:Wait, InService, Terminated, ...), or ErrNotFound when the
	// group no longer lists it.
	GroupInstanceState(ctx context.Context, group, instance string) (string, error)
	// GroupMembers lists a group's instances with their lifecycle states, or
	// ErrNotFound when the group does not exist.
	GroupMembers(ctx context.Context, group string) ([]GroupMember, error)
	// ReplaceInstance terminates a group member without lowering the
	// desired capacity, so the group launches a replacement. Safe to repeat.
	ReplaceInstance(ctx context.Context, group, instance string) error
	// WaitingActions lists the instances waiting on a lifecycle hook
	// (Pending:Wait or Terminating:Wait) across the groups handover watches,
	// with the hook's metadata.
	WaitingActions(ctx context.Context) ([]WaitingAction, error)
}

// Instance states as EC2 names them.
const (
	InstancePending      = "pending"
	InstanceRunning      = "running"
	InstanceStopping     = "stopping"
	InstanceStopped      = "stopped"
	InstanceShuttingDown = "shutting-down"
	InstanceTerminated   = "terminated"
)

// Auto Scaling lifecycle states handover looks at.
const (
	LifecyclePendingWait = "Pending:Wait"
	LifecycleInService   = "InService"
)

// Lifecycle action results.
const (
	ResultContinue = "CONTINUE"
	ResultAbandon  = "ABANDON"
)

// Instance is what handover needs to know of an EC2 instance.
type Instance struct {
	ID        string
	Zone      string
	State     string
	PrivateIP string
}

// Volume states as EC2 names them.
const (
	VolumeCreating  = "creating"
	VolumeAvailable = "available"
	VolumeInUse     = "in-use"
	VolumeDeleting  = "deleting"
	VolumeDeleted   = "deleted"
	VolumeError     = "error"
)

// Volume is an EBS volume.
type Volume struct {
	ID         string
	Zone       string
	State      string
	SizeGiB    int32
	SnapshotID string
	// AttachedTo is the instance it is attached (or attaching) to, and
	// AttachState the attachment's state (attaching, attached, detaching).
	AttachedTo  string
	AttachState string
	// AttachDevice is the device name of the attachment.
	AttachDevice string
	Tags         map[string]string
	CreateTime   time.Time
}

// Snapshot states as EC2 names them.
const (
	SnapshotPending   = "pending"
	SnapshotCompleted = "completed"
	SnapshotError     = "error"
)

// Snapshot is an EBS snapshot.
type Snapshot struct {
	ID        string
	VolumeID  string
	State     string
	SizeGiB   int32
	Tags      map[string]string
	StartTime time.Time
}

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	Zone        string
	SnapshotID  string // empty for a blank volume
	SizeGiB     int32
	ClientToken string
	Tags        map[string]string
}

// Hook is a lifecycle hook's settings.
type Hook struct {
	HeartbeatTimeout time.Duration
	GlobalTimeout    time.Duration
	DefaultResult    string
	Metadata         string
}

// GroupMember is an instance of an Auto Scaling group.
type GroupMember struct {
	Instance  string
	Lifecycle string
	Health    string // Healthy or Unhealthy; empty when unknown (taken as healthy)
	// OutOfZone: the instance's zone is no longer one of the group's, so a
	// rebalance is replacing it (launch first, terminate after).
	OutOfZone bool
}

// Lifecycle transitions of a WaitingAction.
const (
	TransitionLaunching   = "autoscaling:EC2_INSTANCE_LAUNCHING"
	TransitionTerminating = "autoscaling:EC2_INSTANCE_TERMINATING"
)

// WaitingAction is an instance waiting on a lifecycle hook.
type WaitingAction struct {
	Group      string
	Hook       string
	Instance   string
	Transition string
	Metadata   string
}

// Errors cloud implementations return (wrapped) so the state machine can
// classify failures without knowing the provider.
var (
	// ErrNotFound: the resource does not exist (InvalidVolume.NotFound,
	// InvalidSnapshot.NotFound, InvalidInstanceID.NotFound, ...).
	ErrNotFound = errors.New("not found")
	// ErrThrottled: the provider rate-limited the call
	// (RequestLimitExceeded, Throttling). Retry after backing off.
	ErrThrottled = errors.New("throttled")
	// ErrNoActiveAction: the lifecycle action already ended ("No active
	// Lifecycle Action found"). Done, if the instance is past Pending:Wait.
	ErrNoActiveAction = errors.New("no active lifecycle action")
	// ErrIncorrectState: the resource is not in a state that allows the call
	// yet (IncorrectState, VolumeInUse). Retry later.
	ErrIncorrectState = errors.New("incorrect state")
	// ErrUnavailable: a 5xx or network failure. Retry later.
	ErrUnavailable = errors.New("service unavailable")
	// ErrInvalid: the request itself is wrong (InvalidParameterValue,
	// ValidationError other than the lifecycle one). Retrying cannot help.
	ErrInvalid = errors.New("invalid request")
)

// Retryable reports whether repeating the failed call later may succeed.
// Unknown errors count as retryable: a step's timeout bounds them.
func Retryable(err error) bool {
	return err != nil && !errors.Is(err, ErrInvalid)
}

// GroupLaunch is what a group's launch hooks tell the release controller:
// their NotificationMetadata, and the group's TagGroupChannel tag.
type GroupLaunch struct {
	Metadata []string
	Channel  string
}

// GroupTagger is the optional capability of a Cloud to read an Auto
// Scaling group's tags (awscloud.Cloud has it): a group tagged
// TagGroupChannel joins a release channel without naming it in its hook's
// metadata. Safe to repeat; ErrNotFound for a group that is gone.
type GroupTagger interface {
	GroupTags(ctx context.Context, group string) (map[string]string, error)
}
