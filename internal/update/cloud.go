// Package update is S2 of docs/design.md: group replacement that knows about
// state. It rolls a launch template version through an Auto Scaling group
// (rolling), or replaces the whole group by a new one that must collect a
// success signal from every instance (replace-all), optionally after a
// single-instance migration group ran the schema migrations. Every instance
// it replaces hands its database over through the handover core: the update
// only marks which databases must move (ledger.Database.ReplaceBy), changes
// capacity, and waits; the migrations do the moving.
//
// An update is a durable ledger record advanced one idempotent step at a
// time under a lease, like a migration, so a controller that restarts picks
// it up where it stood.
package update

import (
	"context"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// Group is what an update needs to know of an Auto Scaling group.
type Group struct {
	Name     string
	Template ledger.TemplateRef
	// LaunchConfiguration names the launch configuration a group launches
	// from instead of a template (updates refuse such a group).
	LaunchConfiguration string
	Min, Max, Desired   int32
	Zones               []string
	Subnets             string // VPCZoneIdentifier
	TargetGroups        []string
	HealthCheckType     string
	// HealthCheckGrace is whole seconds on AWS.
	HealthCheckGrace time.Duration
	// MaintenanceMin/Max are the instance maintenance policy's percentages,
	// -1 when the group has none.
	MaintenanceMin, MaintenanceMax int32
	Tags                           []Tag
	Instances                      []Member
}

// Tag is a group tag.
type Tag struct {
	Key, Value string
	Propagate  bool
}

// Member is an instance of a group.
type Member struct {
	ID        string
	Zone      string
	Lifecycle string // Pending:Wait, InService, Terminating, ...
	Health    string // Healthy, Unhealthy
	// Version is the launch template version the instance was launched
	// from.
	Version string
}

// InService reports whether m serves: in service and healthy.
func (m Member) InService() bool { return m.Lifecycle == "InService" && m.Health != "Unhealthy" }

// Hook is a lifecycle hook to copy onto a new group.
type Hook struct {
	Name       string
	Transition string
	// HeartbeatTimeout is whole seconds from 30 s to 2 h on AWS.
	HeartbeatTimeout time.Duration
	DefaultResult    string
	Metadata         string
}

// NewGroup is the group a replace-all creates beside the old one.
type NewGroup struct {
	Like     Group // the old group: zones, subnets, target groups, policy, tags
	Name     string
	Template ledger.TemplateRef
	Min, Max int32
	Desired  int32
	Hooks    []Hook
	Tags     map[string]string // added to Like's tags, propagated to instances
}

// Cloud is the group operations an update makes. It is implemented over
// aws-sdk-go-v2 by awscloud.Groups; errors are wrapped with handover's
// sentinels (handover.ErrNotFound for a missing group).
type Cloud interface {
	// DescribeGroup returns the group with its instances.
	DescribeGroup(ctx context.Context, name string) (Group, error)
	// Hooks lists the group's lifecycle hooks.
	Hooks(ctx context.Context, group string) ([]Hook, error)
	// ResolveVersion turns "$Latest", "$Default" or "" (= $Default) into
	// the version number.
	ResolveVersion(ctx context.Context, t ledger.TemplateRef) (string, error)
	// NewTemplateVersion creates a version of t's template from version
	// t.Version with another image, and returns its number.
	NewTemplateVersion(ctx context.Context, t ledger.TemplateRef, imageID string) (string, error)
	// SetTemplate points the group at a launch template version.
	SetTemplate(ctx context.Context, group string, t ledger.TemplateRef) error
	// SetCapacity sets min, max and desired capacity.
	SetCapacity(ctx context.Context, group string, min, max, desired int32) error
	// Terminate terminates a group member and lowers the desired capacity
	// by one. A member already gone is not an error.
	Terminate(ctx context.Context, group, instance string) error
	// CreateGroup creates a group; one that exists already is not an
	// error (the create is repeated after a crash).
	CreateGroup(ctx context.Context, g NewGroup) error
	// DeleteGroup force-deletes a group with its instances; a missing group
	// is not an error.
	DeleteGroup(ctx context.Context, name string) error
	// Signals returns the signal each instance of the group sent, by
	// instance id (handover signal tags the instance).
	Signals(ctx context.Context, group string) (map[string]string, error)
}

func member(g Group, id string) (Member, bool) {
	for _, m := range g.Instances {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

func isLeaving(lifecycle string) bool {
	return len(lifecycle) >= 9 && (lifecycle[:9] == "Terminati" || lifecycle[:6] == "Detach")
}

// inService counts the group's in-service, healthy instances, and those of
// them on version.
func inService(g Group, version string) (all, onVersion int) {
	for _, m := range g.Instances {
		if m.InService() {
			all++
			if m.Version == version {
				onVersion++
			}
		}
	}
	return all, onVersion
}
