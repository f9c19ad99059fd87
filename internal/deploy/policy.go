package deploy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
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

// maxRolePolicySize is IAM's bound on a role's inline policies, in
// characters without whitespace.
const maxRolePolicySize = 10240

// Tag keys the policy conditions on. handover tags everything it creates
// with TagManaged; Auto Scaling tags every instance it launches with the
// group's name.
const (
	managedTag = handover.TagManaged
	groupTag   = "aws:autoscaling:groupName"
)

// ARNs of the EC2 resource types handover touches, in the stack's region
// and account (snapshots carry no account in their ARN).
var (
	arnSnapshots = cloudformation.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*")
	arnVolumes   = cloudformation.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/*")
	arnInstances = cloudformation.Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*")
)

// groupARN is the ARN pattern of the Auto Scaling group named g (the
// group's id, which the ARN carries too, is not known in advance).
func groupARN(g string) string {
	return cloudformation.Sub("arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/" +
		subLiteral(iamLiteral(g)))
}

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

// controllerPolicy is the least privilege the controller needs: every call
// in internal/awscloud/sdk.go (EC2, Auto Scaling), internal/daemon and
// internal/lambdahandler (SQS) and the DynamoDB ledger, scoped to what
// handover created (the handover:managed tag), to the named groups and
// their instances, and to this stack's queues and table. withLogs adds the
// Lambda function's log group.
func controllerPolicy(cfg Config, withLogs bool) PolicyDocument {
	var groups, groupARNs []string
	for _, g := range cfg.Groups {
		groups = append(groups, iamLiteral(g))
		groupARNs = append(groupARNs, groupARN(g))
	}
	managed := equals("ec2:ResourceTag/"+managedTag, "true")
	tagged := equals("aws:RequestTag/"+managedTag, "true")
	inGroups := equals("ec2:ResourceTag/"+groupTag, groups)
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
		allow("LifecycleActionsOfGroups", []string{
			"autoscaling:CompleteLifecycleAction",
			"autoscaling:RecordLifecycleActionHeartbeat",
			"autoscaling:TerminateInstanceInAutoScalingGroup",
		}, groupARNs, nil),
		// These calls support no resource-level permissions, so "*" is the
		// only resource IAM accepts; each is still named on its own.
		allow("DescribeCalls", []string{
			"autoscaling:DescribeAutoScalingGroups",
			"autoscaling:DescribeAutoScalingInstances",
			"autoscaling:DescribeLifecycleHooks",
			"ec2:DescribeInstances",
			"ec2:DescribeSnapshots",
			"ec2:DescribeVolumes",
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
				equals("ssm:resourceTag/"+groupTag, groups)),
			allow("ReadSSMCommandResults", []string{"ssm:GetCommandInvocation"}, []string{"*"}, nil),
		)
	}
	if withLogs {
		st = append(st, allow("FunctionLogs", []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			[]string{cloudformation.GetAtt(idLogGroup, "Arn")}, nil))
	}
	return PolicyDocument{Version: "2012-10-17", Statement: st}
}

// lambdaTrust lets Lambda assume the function's role.
func lambdaTrust() PolicyDocument {
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{{
		Effect: "Allow", Principal: map[string]any{"Service": "lambda.amazonaws.com"}, Action: []string{"sts:AssumeRole"},
	}}}
}

// controllerTrust lets an EC2 instance (through the instance profile) or an
// ECS task of this account and region assume the controller's role. ECS
// sets the source, so its statement is guarded against confused deputies;
// EC2 sets none, so its cannot be.
func controllerTrust() PolicyDocument {
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		{Sid: "Ec2", Effect: "Allow", Principal: map[string]any{"Service": "ec2.amazonaws.com"}, Action: []string{"sts:AssumeRole"}},
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
// on the side of caution: see estimate.
func checkPolicySize(doc PolicyDocument) error {
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
	if len(n) > maxRolePolicySize {
		return fmt.Errorf("the controller's policy would be about %d characters, over IAM's limit of %d for a role's inline policies: name fewer groups (or shorter ones) per stack", len(n), maxRolePolicySize)
	}
	return nil
}

// estimate replaces each encoded intrinsic of v by a string at least as
// long as what CloudFormation resolves it to: an Fn::Sub text as written
// (each pseudo parameter's name is longer than its value, but for a
// region, one character longer than ${AWS::Region}) plus a margin, and a
// Ref or Fn::GetAtt by 256 characters, more than any ARN or name it
// stands for here.
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
			return sub + strings.Repeat("x", 8)
		}
		return strings.Repeat("x", 256)
	}
	return v
}
