package autoscaling

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// lifecycleState is an instance's Auto Scaling lifecycle state, spelled as
// the API spells it. The controller has one step function per state (see
// steps.go).
type lifecycleState string

const (
	statePending            lifecycleState = "Pending"
	statePendingWait        lifecycleState = "Pending:Wait"
	statePendingProceed     lifecycleState = "Pending:Proceed"
	stateInService          lifecycleState = "InService"
	stateEnteringStandby    lifecycleState = "EnteringStandby"
	stateStandby            lifecycleState = "Standby"
	stateTerminating        lifecycleState = "Terminating"
	stateTerminatingWait    lifecycleState = "Terminating:Wait"
	stateTerminatingProceed lifecycleState = "Terminating:Proceed"
	stateTerminated         lifecycleState = "Terminated"
)

const (
	transitionLaunching   = "autoscaling:EC2_INSTANCE_LAUNCHING"
	transitionTerminating = "autoscaling:EC2_INSTANCE_TERMINATING"
	resultContinue        = "CONTINUE"
	resultAbandon         = "ABANDON"
	healthHealthy         = "Healthy"
	healthUnhealthy       = "Unhealthy"
	checkEC2              = "EC2"
	checkELB              = "ELB"
)

func (s lifecycleState) String() string { return string(s) }

// counted reports whether an instance in this state counts toward the
// desired capacity. Instances on their way out (Terminating*) do not, so a
// replacement launches while a terminate hook holds the old one; nor do
// instances in Standby, which AWS also leaves out.
func (s lifecycleState) counted() bool {
	switch s {
	case statePending, statePendingWait, statePendingProceed, stateInService:
		return true
	}
	return false
}

func (s lifecycleState) terminating() bool {
	switch s {
	case stateTerminating, stateTerminatingWait, stateTerminatingProceed, stateTerminated:
		return true
	}
	return false
}

func (s lifecycleState) pending() bool {
	switch s {
	case statePending, statePendingWait, statePendingProceed:
		return true
	}
	return false
}

// state is everything the service keeps, and what is saved to DataDir.
type state struct {
	Groups     map[string]*group `json:"groups"`
	Activities []*activity       `json:"activities"`
	// Outbox holds events not yet published, so a failed or interrupted
	// publish is retried (see events.go).
	Outbox []outboxEvent `json:"outbox,omitempty"`
	// LaunchConfigurations are by name (api_launchconfigs.go).
	LaunchConfigurations map[string]*launchConfiguration `json:"launchConfigurations,omitempty"`
}

func newState() *state {
	return &state{Groups: map[string]*group{}, LaunchConfigurations: map[string]*launchConfiguration{}}
}

type launchTemplate struct {
	ID      string `json:"id,omitempty"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

type tag struct {
	Key               string `json:"key"`
	Value             string `json:"value"`
	PropagateAtLaunch bool   `json:"propagate"`
}

// launchConfiguration is a launch configuration: what a group that names
// it launches, fixed once created (AWS has no way to change one).
type launchConfiguration struct {
	Name         string `json:"name"`
	ARN          string `json:"arn"`
	ImageID      string `json:"imageId"`
	InstanceType string `json:"instanceType"`
	// UserData is as given: base64 text.
	UserData           string    `json:"userData,omitempty"`
	KeyName            string    `json:"keyName,omitempty"`
	SecurityGroups     []string  `json:"securityGroups,omitempty"`
	IamInstanceProfile string    `json:"iamInstanceProfile,omitempty"`
	KernelID           string    `json:"kernelId,omitempty"`
	RamdiskID          string    `json:"ramdiskId,omitempty"`
	SpotPrice          string    `json:"spotPrice,omitempty"`
	Monitoring         bool      `json:"monitoring"`
	EbsOptimized       bool      `json:"ebsOptimized,omitempty"`
	AssociatePublicIP  *bool     `json:"associatePublicIp,omitempty"`
	PlacementTenancy   string    `json:"placementTenancy,omitempty"`
	Created            time.Time `json:"created"`
}

type group struct {
	Name string `json:"name"`
	ARN  string `json:"arn"`
	// A group launches from LaunchTemplate or, when that is zero, from
	// the launch configuration named LaunchConfiguration.
	LaunchTemplate      launchTemplate `json:"launchTemplate"`
	LaunchConfiguration string         `json:"launchConfiguration,omitempty"`
	MinSize             int            `json:"minSize"`
	MaxSize             int            `json:"maxSize"`
	Desired             int            `json:"desired"`
	// Zones is where instances go; Subnets, when VPCZoneIdentifier named
	// subnets, maps each zone to the subnet it came from.
	Zones               []string             `json:"zones"`
	Subnets             map[string]string    `json:"subnets,omitempty"`
	VPCZoneIdentifier   string               `json:"vpcZoneIdentifier,omitempty"`
	HealthCheckType     string               `json:"healthCheckType"`
	GracePeriod         time.Duration        `json:"gracePeriod"`
	DefaultCooldown     time.Duration        `json:"defaultCooldown"`
	TargetGroupARNs     []string             `json:"targetGroupARNs,omitempty"`
	TerminationPolicies []string             `json:"terminationPolicies,omitempty"`
	NewProtected        bool                 `json:"newInstancesProtected,omitempty"`
	Tags                []tag                `json:"tags,omitempty"`
	Created             time.Time            `json:"created"`
	Hooks               map[string]*hook     `json:"hooks"`
	Instances           map[string]*instance `json:"instances"`
	// Maintenance is the group's instance maintenance policy; nil is
	// none, which keeps AWS's default behaviours (see replacement.go).
	Maintenance *maintenancePolicy `json:"maintenancePolicy,omitempty"`
	// Deleting is set by a forced delete: the group empties itself
	// (skipping terminate hooks, as AWS does) and then disappears.
	Deleting bool `json:"deleting,omitempty"`
}

// maintenancePolicy is an InstanceMaintenancePolicy: during replacements
// the group keeps at least MinHealthy and at most MaxHealthy percent of its
// desired capacity healthy (MaxHealthy also counts pending instances).
type maintenancePolicy struct {
	MinHealthy int `json:"minHealthyPercentage"`
	MaxHealthy int `json:"maxHealthyPercentage"`
}

func (g *group) sortedInstances() []*instance {
	out := make([]*instance, 0, len(g.Instances))
	for _, i := range g.Instances {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b *instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// capacity counts the instances that count toward the desired capacity.
func (g *group) capacity() int {
	n := 0
	for _, i := range g.Instances {
		if g.counts(i) {
			n++
		}
	}
	return n
}

// counts reports whether i counts toward the desired capacity. An instance
// awaiting its replacement does not, so the replacement is launched while
// it still serves (see replacement.go).
func (g *group) counts(i *instance) bool {
	return i.State.counted() && !g.awaitingReplacement(i)
}

// awaitingReplacement reports whether i still serves but is to be
// terminated once enough replacements are in service: it was found
// unhealthy under a maintenance policy that launches first, or its zone was
// removed from the group (rebalancing, which launches first in any case;
// scale-in protection spares an instance from it, as from scale-in). It is
// worked out from the saved state each time, so a restart resumes a
// replacement instead of starting another.
func (g *group) awaitingReplacement(i *instance) bool {
	if i.State != stateInService || g.Deleting {
		return false
	}
	return i.ReplaceCause != "" || (!i.Protected && !slices.Contains(g.Zones, i.Zone))
}

// hooksFor returns the group's hooks for a transition, by name.
func (g *group) hooksFor(transition string) []*hook {
	var out []*hook
	for _, h := range g.Hooks {
		if h.Transition == transition {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b *hook) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (g *group) propagatedTags() map[string]string {
	tags := map[string]string{}
	for _, t := range g.Tags {
		if t.PropagateAtLaunch {
			tags[t.Key] = t.Value
		}
	}
	tags["aws:autoscaling:groupName"] = g.Name
	return tags
}

type hook struct {
	Name             string        `json:"name"`
	Transition       string        `json:"transition"`
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout"`
	DefaultResult    string        `json:"defaultResult"`
	Metadata         string        `json:"metadata,omitempty"`
	// TargetARN is the NotificationTargetARN that gets a message per
	// lifecycle action (besides EventBridge), RoleARN the role Auto
	// Scaling publishes to it as.
	TargetARN string `json:"targetARN,omitempty"`
	RoleARN   string `json:"roleARN,omitempty"`
}

// Hook timeouts, as AWS bounds them.
const (
	minHeartbeat     = 30 * time.Second
	maxHeartbeat     = 7200 * time.Second
	defaultHeartbeat = 3600 * time.Second
	maxGlobalTimeout = 48 * time.Hour
	maxHooksPerGroup = 50
)

// globalTimeout is how long an action may be kept alive by heartbeats.
func (h *hook) globalTimeout() time.Duration {
	return min(maxGlobalTimeout, 100*h.HeartbeatTimeout)
}

type instance struct {
	ID             string         `json:"id"`
	Zone           string         `json:"zone"`
	State          lifecycleState `json:"state"`
	Health         string         `json:"health"`
	LaunchTemplate launchTemplate `json:"launchTemplate"`
	// LaunchConfiguration names the configuration the instance was
	// launched from, when it was not from a template.
	LaunchConfiguration string    `json:"launchConfiguration,omitempty"`
	Protected           bool      `json:"protected,omitempty"`
	LaunchTime          time.Time `json:"launchTime"`
	// ActivityID is the activity that tracks the instance's current
	// transition (launch, standby, termination).
	ActivityID string `json:"activityId,omitempty"`
	// FromStandby marks a Pending instance that is leaving Standby rather
	// than launching.
	FromStandby bool `json:"fromStandby,omitempty"`
	// EverInService is set once the instance has been InService; an
	// instance terminated before that had a launch that did not succeed.
	EverInService bool `json:"everInService,omitempty"`
	// SkipHooks makes a termination skip the terminate hooks: forced group
	// deletes, and launches that were abandoned.
	SkipHooks bool `json:"skipHooks,omitempty"`
	// ReplaceCause is set on an InService instance found unhealthy when the
	// group's maintenance policy launches its replacement first; it is the
	// cause its termination activity will give once the replacement is in
	// service.
	ReplaceCause string    `json:"replaceCause,omitempty"`
	Actions      []*action `json:"actions,omitempty"`
}

// action is one lifecycle action: an instance waiting on one hook.
type action struct {
	Token            string        `json:"token"`
	Hook             string        `json:"hook"`
	Transition       string        `json:"transition"`
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout"`
	DefaultResult    string        `json:"defaultResult"`
	Started          time.Time     `json:"started"`
	HeartbeatDue     time.Time     `json:"heartbeatDue"`
	GlobalDue        time.Time     `json:"globalDue"`
	// Result is "" while the action is active, then CONTINUE or ABANDON.
	Result string `json:"result,omitempty"`
	// Reason says how it ended, in the words of AWS's activity messages:
	// "Lifecycle Action Completed with ABANDON Result", "Heartbeat Timeout".
	Reason string `json:"reason,omitempty"`
}

// active reports whether the action can still be completed or heartbeaten
// at now. An action past its deadline is over even before the controller
// applies its default result.
func (a *action) active(now time.Time) bool {
	return a.Result == "" && now.Before(a.HeartbeatDue) && now.Before(a.GlobalDue)
}

// activity is one scaling activity, as DescribeScalingActivities shows it.
type activity struct {
	ID            string     `json:"id"`
	Group         string     `json:"group"`
	GroupARN      string     `json:"groupARN"`
	Description   string     `json:"description"`
	Cause         string     `json:"cause"`
	Details       string     `json:"details"`
	Start         time.Time  `json:"start"`
	End           *time.Time `json:"end,omitempty"`
	Status        string     `json:"status"`
	StatusMessage string     `json:"statusMessage,omitempty"`
	Progress      int        `json:"progress"`
	GroupDeleted  bool       `json:"groupDeleted,omitempty"`
}

// Activity status codes used here (a subset of AWS's).
const (
	activityInProgress         = "InProgress"
	activityPreInService       = "PreInService"
	activityMidLifecycleAction = "MidLifecycleAction"
	activitySuccessful         = "Successful"
	activityFailed             = "Failed"
	activityCancelled          = "Cancelled"
)

// maxActivitiesPerGroup bounds the activity history (AWS keeps six weeks).
const maxActivitiesPerGroup = 1000

func (a *activity) finish(now time.Time, status, message string) {
	a.Status, a.StatusMessage, a.Progress = status, message, 100
	t := now
	a.End = &t
}

// newUUID returns a random version-4 UUID, the shape of AWS's activity ids
// and lifecycle action tokens.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// stamp formats a time as AWS writes it in activity causes.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
