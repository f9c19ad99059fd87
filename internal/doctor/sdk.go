package doctor

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// The SDK methods the checks call, and only those: every one of them
// reads. (SQS is daemon.Redrive, the start checks' own subset.)

// EventsAPI is the subset of *eventbridge.Client the rule checks call.
type EventsAPI interface {
	ListRules(ctx context.Context, in *eventbridge.ListRulesInput, opts ...func(*eventbridge.Options)) (*eventbridge.ListRulesOutput, error)
	ListRuleNamesByTarget(ctx context.Context, in *eventbridge.ListRuleNamesByTargetInput, opts ...func(*eventbridge.Options)) (*eventbridge.ListRuleNamesByTargetOutput, error)
	ListTargetsByRule(ctx context.Context, in *eventbridge.ListTargetsByRuleInput, opts ...func(*eventbridge.Options)) (*eventbridge.ListTargetsByRuleOutput, error)
	TestEventPattern(ctx context.Context, in *eventbridge.TestEventPatternInput, opts ...func(*eventbridge.Options)) (*eventbridge.TestEventPatternOutput, error)
}

// AutoScalingAPI is the subset of *autoscaling.Client the hook checks call.
type AutoScalingAPI interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	DescribeLifecycleHooks(ctx context.Context, in *autoscaling.DescribeLifecycleHooksInput, opts ...func(*autoscaling.Options)) (*autoscaling.DescribeLifecycleHooksOutput, error)
}

// IAMAPI is the subset of *iam.Client the IAM check calls. The local cloud
// serves no IAM, so its tests fake exactly this.
type IAMAPI interface {
	// SimulatePrincipalPolicy evaluates the principal's policies for the
	// actions on the resources; it changes nothing, so it is safe to repeat.
	SimulatePrincipalPolicy(ctx context.Context, in *iam.SimulatePrincipalPolicyInput, opts ...func(*iam.Options)) (*iam.SimulatePrincipalPolicyOutput, error)
}

var (
	_ EventsAPI      = (*eventbridge.Client)(nil)
	_ AutoScalingAPI = (*autoscaling.Client)(nil)
	_ IAMAPI         = (*iam.Client)(nil)
)
