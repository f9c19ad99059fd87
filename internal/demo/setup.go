package demo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// eventPattern is what handover consumes: lifecycle actions and launch
// results from Auto Scaling, snapshot and volume notifications and
// instance state changes from EC2.
const eventPattern = `{"source":["aws.autoscaling","aws.ec2"],"detail-type":[
 "EC2 Instance-launch Lifecycle Action","EC2 Instance-terminate Lifecycle Action",
 "EC2 Instance Launch Successful","EC2 Instance Launch Unsuccessful",
 "EBS Snapshot Notification","EBS Volume Notification","EC2 Instance State-change Notification"]}`

func (e *Env) createQueue(ctx context.Context) error {
	dlq, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("handover-events-dlq")})
	if err != nil {
		return fmt.Errorf("creating the dead-letter queue: %w", err)
	}
	e.DLQURL = aws.ToString(dlq.QueueUrl)
	attrs, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return fmt.Errorf("reading the dead-letter queue's ARN: %w", err)
	}
	redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": attrs.Attributes["QueueArn"], "maxReceiveCount": "5"})
	q, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("handover-events"),
		Attributes: map[string]string{"RedrivePolicy": string(redrive), "VisibilityTimeout": "10"}})
	if err != nil {
		return fmt.Errorf("creating the events queue: %w", err)
	}
	e.QueueURL = aws.ToString(q.QueueUrl)
	qa, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return fmt.Errorf("reading the events queue's ARN: %w", err)
	}
	if _, err := e.EB.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("handover"), EventPattern: aws.String(eventPattern)}); err != nil {
		return fmt.Errorf("creating the EventBridge rule: %w", err)
	}
	if _, err := e.EB.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("handover"),
		Targets: []ebtypes.Target{{Id: aws.String("handover-events"), Arn: aws.String(qa.Attributes["QueueArn"])}}}); err != nil {
		return fmt.Errorf("pointing the EventBridge rule at the queue: %w", err)
	}
	return nil
}

// userData boots an instance as a user would on AWS: the agent waits for
// the state volume, then starts kvstore on it.
func (e *Env) userData() string { return encodeUserData(e.userDataScript()) }

func encodeUserData(script string) string { return base64.StdEncoding.EncodeToString([]byte(script)) }

func (e *Env) userDataScript() string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, kv := range e.awsEnv() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "AWS_EC2_METADATA_DISABLED" || k == "PATH" || k == "HOME" || k == "TMPDIR" {
			continue
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	fmt.Fprintf(&b, "exec %s agent --device %s --timeout 5m --poll-interval 100ms --poll-max 500ms -- %s --listen \"$HANDOVER_PRIVATE_IP:%d\"\n",
		shellQuote(e.opts.HandoverBin), device, shellQuote(e.opts.KVStoreBin), servicePort)
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// CreateGroup creates the launch template (v1), the load balancer and the
// group of one kvstore instance with handover's hooks, and waits until the
// load balancer serves it. The first instance's migration is a first boot.
func (e *Env) CreateGroup(ctx context.Context) error { return e.CreateGroupWith(ctx, GroupOptions{}) }

// GroupOptions vary the demo's group.
type GroupOptions struct {
	// Cutover goes into the launch hook's metadata ("" leaves it to the
	// controller's default).
	Cutover string
	// DeregistrationDelay, when positive, is the target group's
	// deregistration_delay.timeout_seconds (AWS's default is 300 s): how
	// long the drain cutover waits for the old instance to drain.
	DeregistrationDelay time.Duration
}

// CreateGroupWith is CreateGroup with options.
func (e *Env) CreateGroupWith(ctx context.Context, o GroupOptions) error {
	if _, err := e.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(groupName),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(amiV1), UserData: aws.String(e.userData())}}); err != nil {
		return fmt.Errorf("creating the launch template: %w", err)
	}
	tgARN, lbURL, err := e.createLB(ctx, groupName)
	if err != nil {
		return err
	}
	e.LBURL = lbURL
	if o.DeregistrationDelay > 0 {
		if _, err := e.ELB.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(tgARN),
			Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"),
				Value: aws.String(strconv.Itoa(int(o.DeregistrationDelay / time.Second)))}}}); err != nil {
			return fmt.Errorf("setting the target group's deregistration delay: %w", err)
		}
	}
	metadata := `{"database":"` + database + `","size_gib":1}`
	if o.Cutover != "" {
		metadata = `{"database":"` + database + `","size_gib":1,"cutover":"` + o.Cutover + `"}`
	}

	zones, err := e.zones(ctx)
	if err != nil {
		return err
	}
	timeout := int32(e.opts.HookTimeout / time.Second)
	if _, err := e.ASG.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(groupName), MinSize: aws.Int32(1), MaxSize: aws.Int32(2), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: zones, TargetGroupARNs: []string{tgARN}, HealthCheckGracePeriod: aws.Int32(30),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(groupName), Version: aws.String("$Latest")},
		// Launch before terminating, for health replacements and
		// rebalancing alike: the old instance serves until the new one is
		// in service.
		InstanceMaintenancePolicy: &astypes.InstanceMaintenancePolicy{MinHealthyPercentage: aws.Int32(100), MaxHealthyPercentage: aws.Int32(200)},
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{
			{LifecycleHookName: aws.String(launchHook), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
				HeartbeatTimeout: aws.Int32(timeout), DefaultResult: aws.String("ABANDON"),
				NotificationMetadata: aws.String(metadata)},
			{LifecycleHookName: aws.String(termHook), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_TERMINATING"),
				HeartbeatTimeout: aws.Int32(timeout), DefaultResult: aws.String("CONTINUE")},
		},
	}); err != nil {
		return fmt.Errorf("creating the group: %w", err)
	}
	return e.waitServing(ctx, 3*time.Minute)
}

func (e *Env) zones(ctx context.Context) ([]string, error) {
	out, err := e.EC2.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil {
		return nil, fmt.Errorf("listing zones: %w", err)
	}
	var zs []string
	for _, z := range out.AvailabilityZones {
		zs = append(zs, aws.ToString(z.ZoneName))
	}
	return zs, nil
}
