package env

import (
	"context"
	"errors"

	"github.com/handover-dev/handover/internal/ledger"
)

// Tags a clone puts on everything it makes, besides DST's
// handover:environment tag: the operation that made it, so a run killed
// between a create and its record finds the resource again instead of
// making a second, an abort deletes exactly what the operation made, and
// the sweeper knows whose it is.
const TagEnvOp = "handover:env-op"

// Snapshot and resource states a clone waits on, as the services name them.
const (
	SnapPending   = "pending"
	SnapCompleted = "completed"
	SnapError     = "error"
)

// ListenerSpec is one listener of DST's load balancer: SRC's listener's
// protocol and port, forwarding to DST's target group.
type ListenerSpec struct {
	Protocol    string            `json:"protocol"`
	Port        int32             `json:"port"`
	TargetGroup string            `json:"target_group,omitempty"` // DST's target group ARN; "" for none
	Tags        map[string]string `json:"tags,omitempty"`         // e.g. handover:entry=true
}

// GroupSpec is DST's copy of one of SRC's groups.
type GroupSpec struct {
	Name string `json:"name"`
	// From is SRC's group: its zones or subnets, health check, capacity,
	// termination policies and hooks (timeouts, default results,
	// notification targets) are copied from it.
	From     string             `json:"from"`
	Template ledger.TemplateRef `json:"launch_template"`
	// TargetGroups are DST's target group ARNs, in place of SRC's.
	TargetGroups []string `json:"target_groups,omitempty"`
	// HookMetadata replaces the NotificationMetadata of SRC's hook of that
	// name; hooks not listed keep theirs.
	HookMetadata map[string]string `json:"hook_metadata,omitempty"`
	Tags         map[string]string `json:"tags"`
}

// CopyResult is what a bucket copy did.
type CopyResult struct {
	Objects int   `json:"objects"` // current objects in the source
	Copied  int   `json:"copied"`  // copied because the destination lacked them or its checksum differed
	Same    int   `json:"same"`    // already in the destination with the same checksum
	Bytes   int64 `json:"bytes"`   // bytes copied
}

// CloneCloud is what running a clone does to the cloud. It is implemented
// over aws-sdk-go-v2 by awscloud.CloneBuilder.
//
// Every create is by DST's physical name (or, for EBS snapshots, by tags)
// and carries tags (DST's environment tag and TagEnvOp): repeated after a
// kill, it returns the resource the first call made instead of failing or
// making a second. A resource of that name that lacks tags' TagEnvOp value
// is someone else's: the call fails with ErrNameTaken, changing nothing.
type CloneCloud interface {
	// InstanceAddr returns an instance's private address, where its
	// service's fence listens.
	InstanceAddr(ctx context.Context, instance string) (string, error)

	// SnapshotVolume starts an EBS snapshot of volume tagged tags, or
	// returns the one that carries tags already (a kill between the call
	// and its record). It returns once the snapshot is pending: EBS takes
	// it at that point in time.
	SnapshotVolume(ctx context.Context, volume string, tags map[string]string) (id string, err error)
	// VolumeSnapshotState returns SnapPending, SnapCompleted or SnapError
	// (with the reason).
	VolumeSnapshotState(ctx context.Context, id string) (state, reason string, err error)
	// SnapshotDBInstance starts a manual RDS snapshot named snapshot of
	// instance; one of that name taken of that instance already is fine.
	SnapshotDBInstance(ctx context.Context, instance, snapshot string, tags map[string]string) error
	// DBSnapshotState returns the RDS snapshot's status (creating,
	// available, failed...).
	DBSnapshotState(ctx context.Context, snapshot string) (string, error)

	// CreateBucket creates DST's bucket (one this account owns with tags
	// already is fine).
	CreateBucket(ctx context.Context, name string, tags map[string]string) error
	// CopyObjects copies every current object of from into to whose
	// checksum differs there or that to lacks; safe to repeat. progress,
	// when not nil, hears each object done, with the SHA-256 (base64)
	// compared, which to's object now has.
	CopyObjects(ctx context.Context, from, to string, progress func(key, sum string, copied bool)) (CopyResult, error)

	// CreateTargetGroup creates DST's target group name with the settings
	// of SRC's target group fromARN, and returns its ARN.
	CreateTargetGroup(ctx context.Context, fromARN, name string, tags map[string]string) (arn string, err error)
	// CreateLoadBalancer creates DST's load balancer name with the
	// settings of SRC's fromARN (type, scheme, subnets, security groups)
	// and the listeners given, and returns its ARN and DNS name.
	CreateLoadBalancer(ctx context.Context, fromARN, name string, listeners []ListenerSpec, tags map[string]string) (arn, dnsName string, err error)
	// RestoreDBInstance restores DST's RDS instance name from snapshot
	// with SRC's instance from's class, storage and placement.
	RestoreDBInstance(ctx context.Context, from, snapshot, name string, tags map[string]string) error
	// DBInstanceState returns an RDS instance's status and endpoint
	// (host:port, once it has one).
	DBInstanceState(ctx context.Context, name string) (status, endpoint string, err error)
	// CopyLaunchTemplate creates DST's launch template name from the
	// version of SRC's template ref, with userData (plain text, not base64)
	// in place of SRC's, and returns a reference to its version 1.
	CopyLaunchTemplate(ctx context.Context, from ledger.TemplateRef, name, userData string, tags map[string]string) (ledger.TemplateRef, error)
	// CreateGroup creates DST's group, its hooks included, as spec says.
	CreateGroup(ctx context.Context, spec GroupSpec) error
}

// ErrNameTaken: a resource of the name a clone creates exists and is not
// the operation's (it lacks the operation's TagEnvOp tag).
var ErrNameTaken = errors.New("the name is taken by a resource this operation did not make")
