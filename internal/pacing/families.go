package pacing

import "strings"

// Family names a group of cloud API actions that handover paces from one
// token bucket.
//
// EC2 keeps a separate bucket per API action (and, for most mutating actions,
// each action has the same size of bucket as its category). handover shares
// one bucket between the actions of a family, which can only make it slower
// than EC2 allows, never faster: the family's bucket is no larger than the
// bucket of any action in it.
type Family string

// The families handover paces. EC2Family maps an EC2 action to its family.
const (
	// FamilySnapshot is CreateSnapshot (and CreateSnapshots): the call on
	// the write-pause path, so it gets a bucket nothing else draws from.
	FamilySnapshot Family = "ec2-snapshot"
	// FamilyVolume is CreateVolume.
	FamilyVolume Family = "ec2-volume"
	// FamilyDelete is DeleteSnapshot and DeleteVolume. EC2 gives each its
	// own bucket, apart from CreateSnapshot's and from the generic mutating
	// bucket; pacing them apart keeps the sweeper's clean-up from taking
	// tokens the snapshot or attach of a handover under way needs.
	FamilyDelete Family = "ec2-delete"
	// FamilyDescribe is the non-mutating actions (Describe*, Get*, List*,
	// Search*) called with a filter or pagination, as handover always does.
	FamilyDescribe Family = "ec2-describe"
	// FamilyDescribeUnfiltered is DescribeInstances, DescribeSnapshots,
	// DescribeVolumes and the other actions of EC2's "unfiltered and
	// unpaginated" category, when called with neither a filter nor
	// pagination: EC2 charges those to a smaller bucket.
	FamilyDescribeUnfiltered Family = "ec2-describe-unfiltered"
	// FamilyMutate is every other mutating EC2 action handover calls:
	// AttachVolume, DetachVolume, StopInstances, TerminateInstances,
	// CreateTags, DeleteTags.
	FamilyMutate Family = "ec2-mutate"
	// FamilyAutoScaling is every Auto Scaling action but the two below:
	// Auto Scaling throttles all of an account's calls in a Region from one
	// shared bucket.
	FamilyAutoScaling Family = "autoscaling"
	// FamilyLifecycle is RecordLifecycleActionHeartbeat and
	// CompleteLifecycleAction: a share of the Auto Scaling budget kept for
	// the calls whose absence lets a hook time out, so that describes can
	// never starve them (the simulator found exactly that).
	FamilyLifecycle Family = "autoscaling-lifecycle"
)

// DefaultBuckets returns the bucket for each family.
//
// The EC2 numbers are EC2's documented defaults for an account and Region, from
// "Request throttling for the Amazon EC2 API" (Amazon EC2 Developer Guide,
// https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html),
// sections "Request token bucket sizes and refill rates":
//
//	CreateSnapshot, CreateSnapshots   100 burst,  5/s  (uncategorized actions)
//	CreateVolume                      100 burst,  5/s  (uncategorized actions)
//	DeleteSnapshot, DeleteVolume      100 burst,  5/s  (uncategorized actions)
//	CreateTags, DeleteTags            100 burst, 10/s  (uncategorized actions)
//	TerminateInstances                100 burst,  5/s  (uncategorized actions)
//	non-mutating actions              100 burst, 20/s
//	unfiltered and unpaginated        50 burst, 10/s
//	mutating actions (the rest)        50 burst,  5/s
//
// FamilyMutate takes the smallest bucket of its members (mutating actions,
// 50/5). Accounts may have had their limits raised; Config.Buckets overrides.
//
// Auto Scaling documents a token bucket shared by all its actions but
// publishes no sizes (Amazon EC2 Auto Scaling API Reference, "API request
// rate"); 20 burst at 2/s, plus 10 at 1/s kept for heartbeats and
// completions, is handover's own conservative choice, far above what a
// controller needs.
func DefaultBuckets() map[Family]Bucket {
	return map[Family]Bucket{
		FamilySnapshot:           {Burst: 100, Refill: 5},
		FamilyVolume:             {Burst: 100, Refill: 5},
		FamilyDelete:             {Burst: 100, Refill: 5},
		FamilyDescribe:           {Burst: 100, Refill: 20},
		FamilyDescribeUnfiltered: {Burst: 50, Refill: 10},
		FamilyMutate:             {Burst: 50, Refill: 5},
		FamilyAutoScaling:        {Burst: 20, Refill: 2},
		FamilyLifecycle:          {Burst: 10, Refill: 1},
	}
}

// fallbackBucket paces a family that neither Config.Buckets nor
// DefaultBuckets names: EC2's smallest category bucket, so that a family
// someone forgot to configure is paced too slowly rather than throttled.
var fallbackBucket = Bucket{Burst: 50, Refill: 5}

// EC2Family returns the family an EC2 API action (as named in the EC2 API
// Reference, e.g. "CreateSnapshot") is paced under. Non-mutating actions map
// to FamilyDescribe, which assumes the caller filters or paginates; unknown
// mutating actions map to FamilyMutate.
func EC2Family(action string) Family {
	switch action {
	case "CreateSnapshot", "CreateSnapshots":
		return FamilySnapshot
	case "CreateVolume":
		return FamilyVolume
	case "DeleteSnapshot", "DeleteVolume":
		return FamilyDelete
	}
	for _, p := range []string{"Describe", "Get", "List", "Search"} {
		if strings.HasPrefix(action, p) {
			return FamilyDescribe
		}
	}
	return FamilyMutate
}
