// Package doctortest sets up, through the AWS SDK, a handover deployment
// that passes every check of package doctor, as the stack of `handover
// deploy template` would on AWS: the events queue and its dead-letter
// queue, the template's EventBridge rules targeting the queue, the queue
// policy that lets them send, and a group with handover's hooks. Tests
// of the doctor and of `handover doctor` start from it and break one
// piece at a time.
//
// It is for tests against the local cloud; it never deletes anything.
package doctortest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/deploy"
)

// Deployment is what Deploy made.
type Deployment struct {
	QueueURL, QueueARN, DeadLetterURL, DeadLetterARN string
	// Rules are the rules' names, by the template's logical ids.
	Rules    map[string]string
	RuleARNs []string
	Group    string
	// Database is what the launch hook's metadata names.
	Database string
}

// Deploy creates the deployment for group (one database, named after it)
// with hooks of the given heartbeat timeout.
func Deploy(ctx context.Context, cfg aws.Config, group string, heartbeat time.Duration) (Deployment, error) {
	d := Deployment{Group: group, Database: group, Rules: map[string]string{}}
	q := sqs.NewFromConfig(cfg)
	dlq, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("handover-events-dlq")})
	if err != nil {
		return d, fmt.Errorf("creating the dead-letter queue: %w", err)
	}
	d.DeadLetterURL = aws.ToString(dlq.QueueUrl)
	if d.DeadLetterARN, err = queueARN(ctx, q, d.DeadLetterURL); err != nil {
		return d, err
	}
	redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": d.DeadLetterARN, "maxReceiveCount": "5"})
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("handover-events"),
		Attributes: map[string]string{"RedrivePolicy": string(redrive)}})
	if err != nil {
		return d, fmt.Errorf("creating the events queue: %w", err)
	}
	d.QueueURL = aws.ToString(out.QueueUrl)
	if d.QueueARN, err = queueARN(ctx, q, d.QueueURL); err != nil {
		return d, err
	}

	rules, err := deploy.EventRules(deploy.Config{Groups: []string{group}, Mode: deploy.ModeController})
	if err != nil {
		return d, err
	}
	eb := eventbridge.NewFromConfig(cfg)
	for _, r := range rules {
		put, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(r.Name), EventPattern: aws.String(r.Pattern), Description: aws.String(r.Description)})
		if err != nil {
			return d, fmt.Errorf("creating rule %s: %w", r.Name, err)
		}
		if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(r.Name),
			Targets: []ebtypes.Target{{Id: aws.String("handover-events"), Arn: aws.String(d.QueueARN)}}}); err != nil {
			return d, fmt.Errorf("pointing rule %s at the queue: %w", r.Name, err)
		}
		d.Rules[r.ID] = r.Name
		d.RuleARNs = append(d.RuleARNs, aws.ToString(put.RuleArn))
	}
	if err := SetQueuePolicy(ctx, cfg, d, d.RuleARNs); err != nil {
		return d, err
	}

	if _, err := ec2.NewFromConfig(cfg).CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(group),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String("ami-0123456789abcdef0")}}); err != nil {
		return d, fmt.Errorf("creating the launch template: %w", err)
	}
	timeout := aws.Int32(int32(heartbeat / time.Second))
	if _, err := autoscaling.NewFromConfig(cfg).CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(group), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(0),
		AvailabilityZones: []string{cfg.Region + "a"},
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(group), Version: aws.String("$Latest")},
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{
			{LifecycleHookName: aws.String(deploy.LaunchHook), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
				HeartbeatTimeout: timeout, DefaultResult: aws.String("ABANDON"), NotificationMetadata: aws.String(`{"database":"` + d.Database + `"}`)},
			{LifecycleHookName: aws.String(deploy.TerminateHook), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"),
				HeartbeatTimeout: timeout, DefaultResult: aws.String("CONTINUE")},
		},
	}); err != nil {
		return d, fmt.Errorf("creating the group: %w", err)
	}
	return d, nil
}

// SetQueuePolicy gives the events queue the template's policy: EventBridge
// may send from the rules ruleARNs, and from nothing else.
func SetQueuePolicy(ctx context.Context, cfg aws.Config, d Deployment, ruleARNs []string) error {
	pol, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Sid": "EventBridgeRulesOnly", "Effect": "Allow", "Principal": map[string]any{"Service": "events.amazonaws.com"},
		"Action": []string{"sqs:SendMessage"}, "Resource": []string{d.QueueARN},
		"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": ruleARNs}},
	}}})
	if _, err := sqs.NewFromConfig(cfg).SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(d.QueueURL),
		Attributes: map[string]string{"Policy": string(pol)}}); err != nil {
		return fmt.Errorf("setting the queue policy: %w", err)
	}
	return nil
}

func queueARN(ctx context.Context, q *sqs.Client, url string) (string, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("reading the ARN of %s: %w", url, err)
	}
	return out.Attributes["QueueArn"], nil
}
