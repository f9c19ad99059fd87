// Package events decodes the EventBridge events handover consumes — Auto
// Scaling lifecycle actions and launch results, EBS snapshot and volume
// notifications, EC2 instance state changes — whether they arrive bare or in
// an SQS message body, and the messages a lifecycle hook sends its own
// notification target (notification.go); and it encodes the same shapes for
// the simulator and the local cloud, so both sides of the wire share one
// definition.
//
// Events are outside input and only hints (the reconcile loop's Describe
// calls are the truth). This package must never call the cloud, never panic
// on any input, and never hand back a half-valid event: whatever Decode
// returns carries every field its Kind needs.
package events

import "time"

// Kind says which of the consumed events an Event is, and so which of its
// detail pointers is set.
type Kind int

// The kinds of event handover consumes. The zero value is no kind: Decode
// never returns it and Encode refuses it.
const (
	KindUnknown            Kind = iota
	KindLaunchAction            // EC2 Instance-launch Lifecycle Action → Lifecycle
	KindTerminateAction         // EC2 Instance-terminate Lifecycle Action → Lifecycle
	KindLaunchSuccessful        // EC2 Instance Launch Successful → Launch
	KindLaunchUnsuccessful      // EC2 Instance Launch Unsuccessful → Launch
	KindSnapshot                // EBS Snapshot Notification, createSnapshot → Snapshot
	KindVolume                  // EBS Volume Notification, createVolume → Volume
	KindInstanceState           // EC2 Instance State-change Notification → InstanceState
)

// Event sources, as they appear in an event's "source" field.
const (
	SourceAutoScaling = "aws.autoscaling"
	SourceEC2         = "aws.ec2"
)

// Lifecycle transitions, as they appear in detail.LifecycleTransition.
const (
	TransitionLaunching   = "autoscaling:EC2_INSTANCE_LAUNCHING"
	TransitionTerminating = "autoscaling:EC2_INSTANCE_TERMINATING"
)

var kindInfo = [...]struct {
	name, detailType, source string
}{
	KindUnknown:            {"unknown", "", ""},
	KindLaunchAction:       {"launch-action", "EC2 Instance-launch Lifecycle Action", SourceAutoScaling},
	KindTerminateAction:    {"terminate-action", "EC2 Instance-terminate Lifecycle Action", SourceAutoScaling},
	KindLaunchSuccessful:   {"launch-successful", "EC2 Instance Launch Successful", SourceAutoScaling},
	KindLaunchUnsuccessful: {"launch-unsuccessful", "EC2 Instance Launch Unsuccessful", SourceAutoScaling},
	KindSnapshot:           {"snapshot", "EBS Snapshot Notification", SourceEC2},
	KindVolume:             {"volume", "EBS Volume Notification", SourceEC2},
	KindInstanceState:      {"instance-state", "EC2 Instance State-change Notification", SourceEC2},
}

// String returns a stable kebab-case name for logs ("launch-action").
func (k Kind) String() string {
	if k <= KindUnknown || int(k) >= len(kindInfo) {
		return "unknown"
	}
	return kindInfo[k].name
}

// DetailType returns the EventBridge detail-type of events of this kind, or
// "" for KindUnknown.
func (k Kind) DetailType() string {
	if k <= KindUnknown || int(k) >= len(kindInfo) {
		return ""
	}
	return kindInfo[k].detailType
}

// Source returns the EventBridge source of events of this kind, or "" for
// KindUnknown.
func (k Kind) Source() string {
	if k <= KindUnknown || int(k) >= len(kindInfo) {
		return ""
	}
	return kindInfo[k].source
}

func kindOf(detailType string) (Kind, bool) {
	for k := KindLaunchAction; int(k) < len(kindInfo); k++ {
		if kindInfo[k].detailType == detailType {
			return k, true
		}
	}
	return KindUnknown, false
}

// Event is one decoded EventBridge event. Exactly one of the detail pointers
// is set, the one Kind names.
type Event struct {
	ID, DetailType, Source, Region, Account string
	// Time is when the event happened, in UTC.
	Time time.Time
	// Resources is the event's resources list as received (nil when empty).
	Resources []string
	Kind      Kind
	// Delivery is the wire shape the event came in (and Encode writes):
	// an EventBridge event, or a lifecycle hook's own notification, which
	// has no Region and no Resources.
	Delivery Delivery

	Lifecycle     *LifecycleAction     // KindLaunchAction, KindTerminateAction
	Launch        *LaunchResult        // KindLaunchSuccessful, KindLaunchUnsuccessful
	Snapshot      *SnapshotResult      // KindSnapshot
	Volume        *VolumeResult        // KindVolume
	InstanceState *InstanceStateChange // KindInstanceState
}

// LifecycleAction is an instance waiting in Pending:Wait or
// Terminating:Wait for its lifecycle hook to be completed.
type LifecycleAction struct {
	Group, Hook, Token, InstanceID string
	// Transition is TransitionLaunching or TransitionTerminating, matching
	// the event's Kind.
	Transition string
	// Origin and Destination are set only when Auto Scaling knows them
	// (warm pools); either may be empty.
	Origin, Destination string
	// Metadata is the hook's NotificationMetadata exactly as configured (often
	// JSON text); empty when the hook has none. This package does not parse it.
	Metadata string
}

// LaunchResult is the outcome of an Auto Scaling launch activity.
type LaunchResult struct {
	Group string
	// InstanceID is always set when Successful; a failed launch may have had
	// no instance, so it can be empty then.
	InstanceID                                   string
	ActivityID, StatusCode, StatusMessage, Cause string
	AvailabilityZone                             string
	Successful                                   bool
}

// SnapshotResult is a finished createSnapshot.
type SnapshotResult struct {
	// SnapshotID and VolumeID are plain ids ("snap-…", "vol-…"), whatever
	// form (plain id or one of the ARN shapes) the event carried them in.
	SnapshotID, VolumeID string
	Succeeded            bool
	Cause, RequestID     string
	// Region is the event's region. ARNs inside EBS events sometimes name
	// another region; the event's is the one the snapshot lives in.
	Region string
}

// VolumeResult is a finished createVolume.
type VolumeResult struct {
	// VolumeID comes from the event's resources, as EBS puts it only there.
	VolumeID         string
	Available        bool
	Cause, RequestID string
	// Region is the event's region (see SnapshotResult.Region).
	Region string
}

// InstanceStateChange is an EC2 instance entering State.
type InstanceStateChange struct {
	InstanceID string
	// State is pending, running, stopping, stopped, shutting-down or
	// terminated.
	State string
}

var instanceStates = []string{"pending", "running", "stopping", "stopped", "shutting-down", "terminated"}
