package autoscaling

import (
	"context"
	"errors"
	"time"
)

// The interfaces below are what this service needs from the rest of the
// local cloud. They are owned here, so this package never imports the EC2,
// ELBv2 or EventBridge services; the localcloud wiring adapts those to them.

// ErrInstanceNotFound is what Instances returns (wrapped or bare, tested with
// errors.Is) when EC2 has no such instance: never launched, or terminated
// long enough ago to be forgotten. A terminated instance that EC2 still
// describes is not "not found"; it comes back with State "terminated".
var ErrInstanceNotFound = errors.New("instance not found")

// LaunchRequest asks for one instance, from a launch template or from a
// launch configuration.
type LaunchRequest struct {
	// LaunchTemplateID or LaunchTemplateName names the template, exactly as
	// the group was given it; the other is empty. Both are empty when the
	// group launches from a launch configuration.
	LaunchTemplateID, LaunchTemplateName string
	// Version is as the group was given it: a number, "$Latest" or
	// "$Default" (the default when the group named none).
	Version string
	// Zone is the availability zone to launch in, one of Zones().
	Zone string
	// SubnetID is the subnet VPCZoneIdentifier named for Zone, when it
	// named subnets (see SubnetResolver); "" otherwise.
	SubnetID string
	// Tags are the group's tags with PropagateAtLaunch, plus
	// aws:autoscaling:groupName.
	Tags map[string]string
	// Configuration is set, and the template fields empty, when the group
	// launches from a launch configuration: what to launch.
	Configuration *ConfigurationLaunch
}

// ConfigurationLaunch is what a launch configuration says to launch.
type ConfigurationLaunch struct {
	// Name is the launch configuration's.
	Name                  string
	ImageID, InstanceType string
	// UserData is decoded: the bytes the instance runs.
	UserData []byte
}

// InstanceInfo is what this service needs to know about an instance.
type InstanceInfo struct {
	ID, Zone string
	// State is the EC2 state name: pending, running, stopping, stopped,
	// shutting-down or terminated.
	State     string
	PrivateIP string
	// LaunchTime is when EC2 launched the instance.
	LaunchTime time.Time
	// ProcessAlive reports whether the instance's process (the local
	// cloud's stand-in for the operating system) is running.
	ProcessAlive bool
}

// Instances is the EC2 side of the group controller. The wiring maps it onto
// the EC2 service: Launch is RunInstances with MinCount = MaxCount = 1, the
// launch template and version (or a launch configuration's image, instance
// type and user data), Placement.AvailabilityZone and the tags as
// instance TagSpecifications; Terminate is TerminateInstances; Instance is
// DescribeInstances of one id, with InvalidInstanceID.NotFound (or an empty
// answer) mapped to ErrInstanceNotFound and ProcessAlive taken from the
// local cloud's process supervisor; Zones is the region's zone list.
type Instances interface {
	// Launch starts one instance from a launch template version (or a
	// launch configuration) in a zone,
	// tagged with req.Tags. It is not safe to repeat: each call that
	// succeeds makes a new instance. An error means no instance was made;
	// its text becomes the failed scaling activity's status message, as in
	// AWS, so it should say what was wrong.
	Launch(ctx context.Context, req LaunchRequest) (InstanceInfo, error)
	// Terminate terminates an instance. It is safe to repeat; terminating an
	// instance that is already terminated, or that EC2 no longer knows
	// (ErrInstanceNotFound), counts as done.
	Terminate(ctx context.Context, id string) error
	// Instance describes one instance, or returns an error wrapping
	// ErrInstanceNotFound. It is read-only and safe to repeat.
	Instance(ctx context.Context, id string) (InstanceInfo, error)
	// Zones lists the region's availability zones, in a stable order.
	Zones() []string
}

// SubnetResolver is an optional capability of Instances: when the EC2 side
// has subnets, VPCZoneIdentifier may name them and each is launched into in
// its zone. Without it VPCZoneIdentifier must list zone names.
type SubnetResolver interface {
	// SubnetZone returns the zone of a subnet, or an error wrapping
	// ErrSubnetNotFound. Read-only and safe to repeat.
	SubnetZone(ctx context.Context, subnetID string) (string, error)
}

// ErrSubnetNotFound is what a SubnetResolver returns for an unknown subnet.
var ErrSubnetNotFound = errors.New("subnet not found")

// Publisher delivers events to EventBridge. The event is one EventBridge
// event document, as AWS would send it. Publish must be safe to repeat: an
// event that fails is published again on the next controller pass, so a
// subscriber may see it more than once (as EventBridge's at-least-once
// delivery allows anyway), and events carry a stable id to deduplicate on.
type Publisher interface {
	Publish(ctx context.Context, event []byte) error
}

// Targets is the ELBv2 side: the target groups named in a group's
// TargetGroupARNs, mapped onto RegisterTargets, DeregisterTargets and
// DescribeTargetHealth. Register and Deregister must be safe to repeat, and
// succeed when the instance is already (de)registered.
type Targets interface {
	Register(ctx context.Context, targetGroupARN, instanceID string) error
	Deregister(ctx context.Context, targetGroupARN, instanceID string) error
	// Health reports a target's health: TargetHealth.State "healthy" is
	// healthy, "unhealthy" is not, and anything else (initial, unused,
	// draining, unavailable, or a target the group does not have) is
	// known = false. Only known && !healthy makes an ELB-checked instance
	// unhealthy. Read-only and safe to repeat.
	Health(ctx context.Context, targetGroupARN, instanceID string) (healthy bool, known bool, err error)
}

// Notifier delivers what Auto Scaling sends a lifecycle hook's own
// notification target (its NotificationTargetARN), besides the EventBridge
// events: a test message when the hook is put, and a message per lifecycle
// action (both in the shapes of the events package, notification.go). The
// wiring maps SQS queue ARNs onto the local SQS; the local cloud has no SNS
// or Lambda, so their ARNs name targets that do not exist.
type Notifier interface {
	// Notify sends body to the target. It is not idempotent: a retry
	// after an unclear failure may deliver twice, which SQS's
	// at-least-once delivery allows anyway. It returns an error wrapping
	// ErrNoTarget when nothing by that ARN can take the message; retrying
	// that is pointless until the target exists.
	Notify(ctx context.Context, targetARN, body string) error
}

// ErrNoTarget is what a Notifier returns (wrapped) for a notification
// target that does not exist or cannot receive hook notifications.
var ErrNoTarget = errors.New("no such notification target")

// FaultInjector lets tests and `handover localcloud` make API calls fail on
// demand. Inject is called before each request is served with service
// "autoscaling" and the action name; a non-nil error is answered instead of
// the request (an *awsproto.Error keeps its code and status; any other error
// becomes an InternalFailure). It may also sleep to add latency.
type FaultInjector interface {
	Inject(ctx context.Context, service, action string) error
}
