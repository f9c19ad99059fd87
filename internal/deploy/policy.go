package deploy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation"

	"github.com/handover-dev/handover/internal/handover"
)

// PolicyDocument is an IAM policy. Resource and condition values may hold
// goformation-encoded intrinsics, which the rendered template turns into
// Ref, Fn::Sub and Fn::GetAtt.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a PolicyDocument. Action is always a list
// of exact action names: a wildcard action would grant whatever AWS adds
// to a service later.
type Statement struct {
	Sid       string                    `json:"Sid,omitempty"`
	Effect    string                    `json:"Effect"`
	Principal map[string]any            `json:"Principal,omitempty"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource,omitempty"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// IAM's bounds on policy sizes, in characters without whitespace: all of
// a role's inline policies together, and one managed policy.
const (
	maxRolePolicySize    = 10240
	maxManagedPolicySize = 6144
)

// Tag keys the policy conditions on. handover tags everything it creates
// with TagManaged; Auto Scaling tags every instance it launches with the
// group's name.
const (
	managedTag = handover.TagManaged
	groupTag   = "aws:autoscaling:groupName"
)

// The tags `handover signal` puts on its instance, as internal/awscloud
// names them (TagSignal, TagSignalReason); that package brings the AWS
// SDK, which this one must not.
const (
	tagSignal       = "handover:signal"
	tagSignalReason = "handover:signal-reason"
)

// ARNs of the EC2 resource types handover touches, in the stack's region
// and account (snapshots carry no account in their ARN).
var (
	arnSnapshots       = cloudformation.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*")
	arnVolumes         = cloudformation.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*")
	arnInstances       = cloudformation.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*")
	arnLaunchTemplates = cloudformation.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:launch-template/*")
)

// UpdatableTag is the tag (with the value "true") a launch template must
// carry for the controller to add versions to it and point groups at it
// in a group update. The template cannot know the groups' launch
// templates, so the user opts each one in.
const UpdatableTag = "handover:updatable"

// groupARN is the ARN pattern of the Auto Scaling group named g (the
// group's id, which the ARN carries too, is not known in advance).
func groupARN(g string) string {
	return cloudformation.Sub(groupARNPrefix + subLiteral(iamLiteral(g)))
}

// replacementsARN is the ARN pattern of the groups a replace-all creates
// in place of g, "<g>-<12 hex digits>" (and, after another, "<g>-<hex>-<hex>").
// IAM has no pattern for "12 hex digits", so it is "<g>-*", which also
// covers any other group whose name starts with "<g>-".
func replacementsARN(g string) string {
	return cloudformation.Sub(groupARNPrefix + subLiteral(iamLiteral(g)) + "-*")
}

const groupARNPrefix = "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/"

// iamLiteral makes s match itself in an ARN or a condition value: IAM
// reads * and ? there as wildcards and ${…} as a variable, and group names
// may contain all three. IAM's fixed variables ${*}, ${?} and ${$} stand
// for the characters themselves.
var iamLiteral = strings.NewReplacer("$", "${$}", "*", "${*}", "?", "${?}").Replace

// subLiteral keeps ${ literal inside Fn::Sub, which would otherwise read it
// as a reference.
func subLiteral(s string) string { return strings.ReplaceAll(s, "${", "${!") }

func allow(sid string, actions, resources []string, cond map[string]map[string]any) Statement {
	return Statement{Sid: sid, Effect: "Allow", Action: actions, Resource: resources, Condition: cond}
}

func equals(key string, v any) map[string]map[string]any {
	return map[string]map[string]any{"StringEquals": {key: v}}
}

// served is how the policy names the groups a deployment serves: the
// named groups and, when it runs group updates, the groups a replace-all
// creates in their place (see replacementsARN).
type served struct {
	arns         []string // each group's ARN, then its replacements' (if any)
	replacements []string // the replacements' ARNs alone
	tagValues    []string // values of the aws:autoscaling:groupName tag
	like         bool     // tagValues holds patterns: compare with StringLike
}

func servedGroups(cfg Config) served {
	var s served
	s.like = cfg.updates()
	for _, g := range cfg.Groups {
		s.arns = append(s.arns, groupARN(g))
		s.tagValues = append(s.tagValues, iamLiteral(g))
		if s.like {
			s.arns = append(s.arns, replacementsARN(g))
			s.replacements = append(s.replacements, replacementsARN(g))
			s.tagValues = append(s.tagValues, iamLiteral(g)+"-*")
		}
	}
	return s
}

// tagged is the condition that a resource's tag key names one of the
// served groups.
func (s served) tagged(key string) map[string]map[string]any {
	if s.like {
		return map[string]map[string]any{"StringLike": {key: s.tagValues}}
	}
	return equals(key, s.tagValues)
}

// controllerPolicy is the least privilege the controller needs: every call
// in internal/awscloud/sdk.go (EC2, Auto Scaling), internal/daemon and
// internal/lambdahandler (SQS) and the DynamoDB ledger, scoped to what
// handover created (the handover:managed tag), to the named groups and
// their instances, and to this stack's queues and table. withLogs adds the
// Lambda function's log group. In controller mode every group-scoped
// statement also covers the groups a replace-all creates; the group
// updates themselves are in updatePolicy.
func controllerPolicy(cfg Config, withLogs bool) PolicyDocument {
	grp := servedGroups(cfg)
	managed := equals("ec2:ResourceTag/"+managedTag, "true")
	tagged := equals("aws:RequestTag/"+managedTag, "true")
	inGroups := grp.tagged("ec2:ResourceTag/" + groupTag)
	st := []Statement{
		// A create is authorized against the new resource and its source
		// separately: the new one must be tagged in the request, the
		// source must be one handover made (the authoritative volume, the
		// final snapshot).
		allow("CreateTaggedSnapshots", []string{"ec2:CreateSnapshot"}, []string{arnSnapshots}, tagged),
		allow("SnapshotManagedVolumes", []string{"ec2:CreateSnapshot"}, []string{arnVolumes}, managed),
		allow("CreateTaggedVolumes", []string{"ec2:CreateVolume"}, []string{arnVolumes}, tagged),
		allow("VolumesFromManagedSnapshots", []string{"ec2:CreateVolume"}, []string{arnSnapshots}, managed),
		// Tags only as part of those creates, never on existing resources.
		allow("TagOnCreate", []string{"ec2:CreateTags"}, []string{arnSnapshots, arnVolumes}, map[string]map[string]any{
			"StringEquals": {
				"aws:RequestTag/" + managedTag: "true",
				"ec2:CreateAction":             []string{"CreateSnapshot", "CreateVolume"},
			},
		}),
		allow("DeleteManaged", []string{"ec2:DeleteSnapshot", "ec2:DeleteVolume"}, []string{arnSnapshots, arnVolumes}, managed),
		allow("AttachManagedVolumes", []string{"ec2:AttachVolume", "ec2:DetachVolume"}, []string{arnVolumes}, managed),
		allow("AttachToGroupInstances", []string{"ec2:AttachVolume", "ec2:DetachVolume"}, []string{arnInstances}, inGroups),
		// The hard fence: stop an unreachable source, start it again on
		// rollback.
		allow("FenceGroupInstances", []string{"ec2:StartInstances", "ec2:StopInstances"}, []string{arnInstances}, inGroups),
		// The drain cutover takes an old instance out of its group's
		// target groups. Which target groups the groups use is not known
		// here (a group's TargetGroupARNs may change), so any of the
		// account's in the region; the controller names only the old
		// instance of a handover.
		allow("Drain", []string{"elasticloadbalancing:DeregisterTargets"},
			[]string{cloudformation.Sub("arn:${AWS::Partition}:elasticloadbalancing:${AWS::Region}:${AWS::AccountId}:targetgroup/*")}, nil),
		groupActions(cfg, grp),
		// These calls support no resource-level permissions, so "*" is the
		// only resource IAM accepts; each is still named on its own.
		allow("DescribeCalls", []string{
			"autoscaling:DescribeAutoScalingGroups",
			"autoscaling:DescribeAutoScalingInstances",
			"autoscaling:DescribeLifecycleHooks",
			"ec2:DescribeInstances",
			"ec2:DescribeSnapshots",
			"ec2:DescribeVolumes",
			"elasticloadbalancing:DescribeTargetHealth",
		}, []string{"*"}, nil),
		allow("ConsumeEventsQueue", []string{"sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
			[]string{cloudformation.GetAtt(idQueue, "Arn")}, nil),
		// Poison messages are copied to the dead-letter queue, which is
		// found through the events queue's redrive policy by name.
		allow("DeadLetter", []string{"sqs:GetQueueUrl", "sqs:SendMessage"},
			[]string{cloudformation.GetAtt(idDeadLetterQueue, "Arn")}, nil),
		allow("Ledger", ledgerActions, []string{cloudformation.GetAtt(idTable, "Arn")}, nil),
	}
	if cfg.Fence == FenceSSM {
		// The SSM fence: Run Command's shell document on the groups'
		// instances only; invocations support no resource-level
		// permissions.
		st = append(st,
			allow("FenceBySSMDocument", []string{"ssm:SendCommand"},
				[]string{cloudformation.Sub("arn:${AWS::Partition}:ssm:${AWS::Region}::document/AWS-RunShellScript")}, nil),
			allow("FenceBySSMOnGroupInstances", []string{"ssm:SendCommand"}, []string{arnInstances},
				grp.tagged("ssm:resourceTag/"+groupTag)),
			allow("ReadSSMCommandResults", []string{"ssm:GetCommandInvocation"}, []string{"*"}, nil),
		)
	}
	if withLogs {
		st = append(st, allow("FunctionLogs", []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			[]string{cloudformation.GetAtt(idLogGroup, "Arn")}, nil))
	}
	return PolicyDocument{Version: "2012-10-17", Statement: st}
}

// groupActions is the statement on the served groups themselves: their
// lifecycle actions, and terminating an instance stranded without its
// data. With group updates it also lets the controller set a group's
// launch template version and capacity (rolling), set a replace-all's new
// group's size, and delete the group a replace-all replaced (the named
// group the first time, a replacement after) or, on rollback, the new
// one. Those share the statement because they share its resources, the
// longest part of the policy: two ARNs per group.
func groupActions(cfg Config, grp served) Statement {
	actions := []string{
		"autoscaling:CompleteLifecycleAction",
		"autoscaling:RecordLifecycleActionHeartbeat",
		"autoscaling:TerminateInstanceInAutoScalingGroup",
	}
	if !cfg.updates() {
		return allow("LifecycleActionsOfGroups", actions, grp.arns, nil)
	}
	actions = append(actions, "autoscaling:DeleteAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup")
	slices.Sort(actions)
	return allow("GroupsAndReplacements", actions, grp.arns, nil)
}

// updatePolicy lets the controller run group updates: exactly the
// calls of internal/awscloud/groups.go, and what Auto Scaling checks on
// the caller when a group is created or pointed at a launch template
// (ec2:RunInstances, ec2:CreateTags on launch, iam:PassRole; see the
// Auto Scaling user guide, "Amazon EC2 Auto Scaling API permissions" and
// "Control Amazon EC2 launch template usage in Auto Scaling groups").
// The controller never launches an instance itself: Auto Scaling does,
// under its service-linked role. It is a managed policy of its own on the
// controller's role, because IAM bounds the role's inline policies
// together, and one policy could not hold both for a realistic fleet.
func updatePolicy(cfg Config) PolicyDocument {
	grp := servedGroups(cfg)
	updatable := equals("ec2:ResourceTag/"+UpdatableTag, "true")
	st := []Statement{
		// (Updating and deleting groups is in groupActions.) A
		// replace-all creates "<group>-<id>" with the old group's tags and
		// hooks in the same call, which IAM authorizes as
		// CreateOrUpdateTags and PutLifecycleHook on the new group too.
		// Only replacements: never a group of another name.
		allow("CreateReplacementGroups", []string{
			"autoscaling:CreateAutoScalingGroup",
			"autoscaling:CreateOrUpdateTags",
			"autoscaling:PutLifecycleHook",
		}, grp.replacements, nil),
		// Resolving $Latest and $Default to a version number; no
		// resource-level permissions.
		allow("ReadLaunchTemplates", []string{"ec2:DescribeLaunchTemplates"}, []string{"*"}, nil),
		// An update to a new image adds a version to the group's launch
		// template. IAM cannot limit what a version holds, so only
		// templates the user opted in by tag.
		allow("VersionUpdatableTemplates", []string{"ec2:CreateLaunchTemplateVersion"}, []string{arnLaunchTemplates}, updatable),
		// Auto Scaling checks that whoever creates a group or points it at
		// a launch template may launch from it (the user guide's "require
		// launch templates that have a specific tag").
		allow("LaunchFromUpdatableTemplates", []string{"ec2:RunInstances"}, []string{arnLaunchTemplates}, updatable),
		// ... and, when the template has tag specifications, tag what
		// the launch creates; only as part of a launch.
		allow("TagOnLaunch", []string{"ec2:CreateTags"}, []string{arnInstances, arnVolumes},
			equals("ec2:CreateAction", "RunInstances")),
	}
	if len(cfg.InstanceRoles) > 0 {
		// ... and pass the role of the template's instance profile: only
		// the roles named, and only to EC2.
		var roles []string
		for _, r := range cfg.InstanceRoles {
			roles = append(roles, cloudformation.Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"+r))
		}
		st = append(st, allow("PassInstanceRoles", []string{"iam:PassRole"}, roles,
			equals("iam:PassedToService", "ec2.amazonaws.com")))
	}
	return PolicyDocument{Version: "2012-10-17", Statement: st}
}

// The tags of release resources (package release's TagManaged, and the
// served mark the release gate reads), spelled here as the signal tags
// are.
const (
	releaseManagedTag = "handover:release-managed"
	releaseServedTag  = handover.TagReleaseServed
)

// releasePolicy lets the controller's role run the release controller
// (`handover controller --releases`, or `handover release controller`):
// the calls of internal/release's Launcher, Rollout and Controller that
// the controller's policy does not grant already (it has the describes,
// the groups' lifecycle actions, attaching to the groups' instances and
// the ledger). Each is on release resources only: volumes made with the
// handover:release-managed tag, from release snapshots, and, on existing
// release volumes, no tag but the served mark. A managed policy of its
// own, like updatePolicy, to keep the inline policy within IAM's bound.
// Publishing (the release server's snapshots and retention) is not here:
// it runs under the release server's role.
func releasePolicy() PolicyDocument {
	managed := equals("ec2:ResourceTag/"+releaseManagedTag, "true")
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		allow("CreateReleaseVolumes", []string{"ec2:CreateVolume"}, []string{arnVolumes}, equals("aws:RequestTag/"+releaseManagedTag, "true")),
		allow("VolumesFromReleaseSnapshots", []string{"ec2:CreateVolume"}, []string{arnSnapshots}, managed),
		allow("TagReleaseVolumesOnCreate", []string{"ec2:CreateTags"}, []string{arnVolumes}, map[string]map[string]any{
			"StringEquals": {"aws:RequestTag/" + releaseManagedTag: "true", "ec2:CreateAction": "CreateVolume"},
		}),
		allow("MarkReleaseServed", []string{"ec2:CreateTags"}, []string{arnVolumes}, map[string]map[string]any{
			"StringEquals":              {"ec2:ResourceTag/" + releaseManagedTag: "true"},
			"ForAllValues:StringEquals": {"aws:TagKeys": []string{releaseServedTag}},
		}),
		allow("AttachAndDeleteReleaseVolumes", []string{"ec2:AttachVolume", "ec2:DeleteVolume", "ec2:DetachVolume"}, []string{arnVolumes}, managed),
	}}
}

// signalPolicy is what `handover signal` needs on an instance's role:
// tagging an instance of the served groups with the signal tags and no
// others. IAM has no documented way to limit the target to the calling
// instance itself, so an instance with this policy can tag any instance
// of those groups; the tag keys keep it to signals.
func signalPolicy(cfg Config) PolicyDocument {
	cond := servedGroups(cfg).tagged("aws:ResourceTag/" + groupTag)
	cond["ForAllValues:StringEquals"] = map[string]any{"aws:TagKeys": []string{tagSignal, tagSignalReason}}
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		allow("SignalOnGroupInstances", []string{"ec2:CreateTags"}, []string{arnInstances}, cond),
	}}
}

// lambdaTrust lets Lambda assume the function's role.
func lambdaTrust() PolicyDocument {
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{{
		Effect: "Allow", Principal: map[string]any{"Service": "lambda.amazonaws.com"}, Action: []string{"sts:AssumeRole"},
	}}}
}

// ec2Assume lets an EC2 instance assume a role through its instance
// profile. EC2 sets no source, so it cannot be guarded against confused
// deputies.
var ec2Assume = Statement{Sid: "Ec2", Effect: "Allow", Principal: map[string]any{"Service": "ec2.amazonaws.com"}, Action: []string{"sts:AssumeRole"}}

// ec2Trust lets an EC2 instance of this account (through the instance
// profile) assume the role, and nothing else.
func ec2Trust() PolicyDocument {
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{ec2Assume}}
}

// controllerTrust lets an EC2 instance (through the instance profile) or an
// ECS task of this account and region assume the controller's role. ECS
// sets the source, so its statement is guarded against confused deputies;
// EC2 sets none, so its cannot be.
func controllerTrust() PolicyDocument {
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		ec2Assume,
		{
			Sid: "EcsTasks", Effect: "Allow", Principal: map[string]any{"Service": "ecs-tasks.amazonaws.com"}, Action: []string{"sts:AssumeRole"},
			Condition: map[string]map[string]any{
				"ArnLike":      {"aws:SourceArn": cloudformation.Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:*")},
				"StringEquals": {"aws:SourceAccount": cloudformation.Ref("AWS::AccountId")},
			},
		},
	}}
}

// queuePolicy lets this stack's rules, and nothing else, send to the
// events queue.
func queuePolicy(ruleIDs []string) PolicyDocument {
	var arns []string
	for _, id := range ruleIDs {
		arns = append(arns, cloudformation.GetAtt(id, "Arn"))
	}
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{{
		Sid: "EventBridgeRulesOnly", Effect: "Allow",
		Principal: map[string]any{"Service": "events.amazonaws.com"},
		Action:    []string{"sqs:SendMessage"},
		Resource:  []string{cloudformation.GetAtt(idQueue, "Arn")},
		Condition: map[string]map[string]any{"ArnEquals": {"aws:SourceArn": arns}},
	}}}
}

// checkPolicySize refuses a policy IAM would reject for size, estimated
// on the side of caution (see estimate): limit is maxRolePolicySize for
// the role's inline policy, maxManagedPolicySize for a managed one.
func checkPolicySize(doc PolicyDocument, what string, limit int) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	n, err := json.Marshal(estimate(v))
	if err != nil {
		return err
	}
	if len(n) > limit {
		return fmt.Errorf("%s would be about %d characters, over IAM's limit of %d: name fewer groups (or shorter ones) per stack", what, len(n), limit)
	}
	return nil
}

// pseudoLengths bound what the pseudo parameters of an Fn::Sub resolve
// to: the longest partition (aws-us-gov) and account id, and a region
// longer than any there is (us-isof-south-1 has 15 characters).
var pseudoLengths = strings.NewReplacer(
	"${AWS::Partition}", strings.Repeat("p", 10),
	"${AWS::Region}", strings.Repeat("r", 16),
	"${AWS::AccountId}", strings.Repeat("a", 12),
)

// estimate replaces each encoded intrinsic of v by a string at least as
// long as what CloudFormation resolves it to: an Fn::Sub text with its
// pseudo parameters at their longest (pseudoLengths), any other variable
// or literal ${! kept as written, plus a margin; a Ref or Fn::GetAtt by
// 256 characters, more than any ARN or name it stands for here.
func estimate(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = estimate(e)
		}
	case []any:
		for i, e := range x {
			x[i] = estimate(e)
		}
	case string:
		if !readsAsIntrinsic(x) {
			return x
		}
		b, _ := base64.StdEncoding.DecodeString(x)
		var fn map[string]any
		_ = json.Unmarshal(b, &fn)
		if sub, ok := fn["Fn::Sub"].(string); ok {
			return pseudoLengths.Replace(sub) + strings.Repeat("x", 8)
		}
		return strings.Repeat("x", 256)
	}
	return v
}
