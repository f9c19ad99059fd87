package env

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Kinds of resources an operation owns besides those a clone creates by
// name (the Kind* of clone.go): the snapshots it takes and the volumes its
// databases boot on.
const (
	KindEBSSnapshot = "ebs-snapshot"
	KindRDSSnapshot = "rds-snapshot"
	KindVolume      = "volume"
)

// Owned is a resource an environment operation made, as the cloud lists
// it by the operation's TagEnvOp tag.
type Owned struct {
	Kind string `json:"kind"`
	// ID is what deleting it takes: the name of a group, RDS instance,
	// RDS snapshot or bucket; the id of a launch template, EBS snapshot
	// or volume; the ARN of a load balancer or target group.
	ID string `json:"id"`
	// Name is what a person calls it (a launch template's, load
	// balancer's or target group's name; else the ID).
	Name string `json:"name"`
}

func (o Owned) String() string {
	if o.Name != "" && o.Name != o.ID {
		return o.Kind + " " + o.Name + " (" + o.ID + ")"
	}
	return o.Kind + " " + o.ID
}

// DeleteCloud deletes an environment's resources. It is implemented over
// aws-sdk-go-v2 by awscloud.EnvDeleter.
//
// Every delete is idempotent: a resource that is not there (never made,
// or deleted by an earlier run that was killed before recording it) is
// done, not an error. Each waits until the resource is gone, so the next
// delete, of what it depended on, does not meet it. A delete refused
// because a dependent still holds the resource (ResourceInUse,
// DependencyViolation, VolumeInUse: an instance still terminating, a
// listener still forwarding) is retried with backoff until it goes
// through or the deleter's wait runs out.
type DeleteCloud interface {
	// OwnedResources lists every resource tagged TagEnvOp=opID, in the
	// order DeleteOrder gives (dependents first).
	OwnedResources(ctx context.Context, opID string) ([]Owned, error)

	// DeleteGroup force-deletes an Auto Scaling group (its instances
	// terminated, without terminate hooks) and waits until it is gone.
	DeleteGroup(ctx context.Context, name string) error
	// DeleteLaunchTemplate deletes a launch template, every version, by id.
	DeleteLaunchTemplate(ctx context.Context, id string) error
	// DeleteLoadBalancer deletes a load balancer's listeners and then the
	// load balancer, and waits until it is gone.
	DeleteLoadBalancer(ctx context.Context, arn string) error
	// DeleteTargetGroup deletes a target group (retried while a listener
	// or rule still forwards to it).
	DeleteTargetGroup(ctx context.Context, arn string) error
	// DeleteDBInstance deletes an RDS instance and waits until it is gone.
	// finalSnapshot names the snapshot RDS takes first; "" takes none.
	// A final snapshot of that name there already (an earlier run) is
	// fine.
	DeleteDBInstance(ctx context.Context, id, finalSnapshot string) error
	// DeleteDBSnapshot deletes a manual RDS snapshot and waits until it is
	// gone.
	DeleteDBSnapshot(ctx context.Context, id string) error
	// DeleteBucket empties a bucket, every version and delete marker, and
	// deletes it.
	DeleteBucket(ctx context.Context, name string) error
	// DeleteVolumeSnapshot deletes an EBS snapshot.
	DeleteVolumeSnapshot(ctx context.Context, id string) error
	// DeleteVolume deletes an EBS volume, retried while it is attached (its
	// instance terminating).
	DeleteVolume(ctx context.Context, id string) error
}

// DeleteOrder is the order resources are deleted in: each after what
// depends on it. Groups first (their instances hold the volumes and sit in
// the target groups), then their launch templates; load balancers (whose
// listeners forward to the target groups) before target groups; RDS
// instances before the snapshots they were restored from; buckets; the
// volumes once their instances are gone, and the EBS snapshots last (the
// volumes were made from them).
var DeleteOrder = []string{KindGroup, KindLaunchTemplate, KindLoadBalancer, KindTargetGroup, KindRDS, KindRDSSnapshot, KindBucket, KindVolume, KindEBSSnapshot}

// SortForDelete orders rs by DeleteOrder, then by ID; kinds it does not
// know go last.
func SortForDelete(rs []Owned) {
	rank := func(kind string) int {
		if i := slices.Index(DeleteOrder, kind); i >= 0 {
			return i
		}
		return len(DeleteOrder)
	}
	slices.SortStableFunc(rs, func(a, b Owned) int {
		if d := rank(a.Kind) - rank(b.Kind); d != 0 {
			return d
		}
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// DeleteResource deletes one resource with the call its kind takes. An RDS
// instance is deleted without a final snapshot: what an operation made
// holds nothing of its own (DST's data is SRC's, copied).
func DeleteResource(ctx context.Context, c DeleteCloud, o Owned) error {
	var err error
	switch o.Kind {
	case KindGroup:
		err = c.DeleteGroup(ctx, o.ID)
	case KindLaunchTemplate:
		err = c.DeleteLaunchTemplate(ctx, o.ID)
	case KindLoadBalancer:
		err = c.DeleteLoadBalancer(ctx, o.ID)
	case KindTargetGroup:
		err = c.DeleteTargetGroup(ctx, o.ID)
	case KindRDS:
		err = c.DeleteDBInstance(ctx, o.ID, "")
	case KindRDSSnapshot:
		err = c.DeleteDBSnapshot(ctx, o.ID)
	case KindBucket:
		err = c.DeleteBucket(ctx, o.ID)
	case KindVolume:
		err = c.DeleteVolume(ctx, o.ID)
	case KindEBSSnapshot:
		err = c.DeleteVolumeSnapshot(ctx, o.ID)
	default:
		return fmt.Errorf("deleting %s: no delete for resources of kind %q", o, o.Kind)
	}
	if err != nil {
		return fmt.Errorf("deleting %s: %w", o, err)
	}
	return nil
}
