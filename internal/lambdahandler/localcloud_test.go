package lambdahandler

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/handover-dev/handover/internal/awscloud"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/sqlite"
	"github.com/handover-dev/handover/internal/localcloud"
	lcec2 "github.com/handover-dev/handover/internal/localcloud/ec2"
	"github.com/handover-dev/handover/internal/pacing"
)

const ami = "ami-0123456789abcdef0"

// TestOnTheLocalCloud invokes the handler in-process with SQS batches built
// from the messages the local cloud really delivers, against the real
// controller over the real SDK: the launch record starts and advances a
// migration, a poison record goes to the dead-letter queue, and a scheduled
// invocation reconciles.
func TestOnTheLocalCloud(t *testing.T) {
	ctx := context.Background()
	lc, err := localcloud.New(localcloud.Config{DataDir: t.TempDir(), Tick: 100 * time.Millisecond,
		Catalog: map[string]lcec2.Image{ami: {Command: []string{"/bin/sh", "-c", "exec sleep 600"}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lc.Handler())
	t.Cleanup(func() { srv.Close(); lc.Close() })
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")}
	ec2c, asg, q, eb := ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg), sqs.NewFromConfig(cfg), eventbridge.NewFromConfig(cfg)

	dlq, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("handover-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	dlqARN := queueARN(t, q, *dlq.QueueUrl)
	redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": dlqARN, "maxReceiveCount": "5"})
	main, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("handover-events"), Attributes: map[string]string{"RedrivePolicy": string(redrive)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("handover"), EventPattern: aws.String(`{"source":["aws.autoscaling"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("handover"),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(queueARN(t, q, *main.QueueUrl))}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ec2c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("orders"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("orders"), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1a"},
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("orders"), Version: aws.String("$Latest")},
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{{
			LifecycleHookName: aws.String("handover-launch"), LifecycleTransition: aws.String(handover.TransitionLaunching),
			HeartbeatTimeout: aws.Int32(300), NotificationMetadata: aws.String(`{"database":"orders"}`),
		}},
	}); err != nil {
		t.Fatal(err)
	}

	// The launch lifecycle message, as SQS delivers it.
	var launch sqstypes.Message
	deadline := time.Now().Add(30 * time.Second)
	for launch.Body == nil {
		if time.Now().After(deadline) {
			t.Fatal("no launch lifecycle message within 30s")
		}
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: main.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if strings.Contains(aws.ToString(m.Body), "EC2 Instance-launch Lifecycle Action") {
				launch = m
			}
		}
	}

	led, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	hcfg := handover.DefaultConfig()
	hcfg.Holder, hcfg.HookPrefix, hcfg.PollInterval = "lambda", "handover", 100*time.Millisecond
	pacer, err := pacing.New(clock.Real{}, pacing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := handover.New(hcfg, handover.Deps{Cloud: awscloud.New(ec2c, asg, nil), Service: handover.HTTPService{Client: &fence.Client{}}, Ledger: led, Pacer: pacer})
	if err != nil {
		t.Fatal(err)
	}
	dlqURL, err := daemon.FindDeadLetter(ctx, q, *main.QueueUrl)
	if err != nil || dlqURL != *dlq.QueueUrl {
		t.Fatalf("dead-letter queue from the redrive policy: %q, %v", dlqURL, err)
	}
	h := New(ctl, q, dlqURL, nil)

	poison := `{"version":"0","id":"e-poison","detail-type":"EC2 Instance-launch Lifecycle Action","source":"aws.autoscaling","account":"000000000000","time":"2026-11-26T09:00:00Z","region":"us-east-1","resources":[],"detail":{"AutoScalingGroupName":"orders","LifecycleHookName":"handover-launch","EC2InstanceId":"i-1","LifecycleTransition":"autoscaling:EC2_INSTANCE_LAUNCHING"}}`
	payload, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: aws.ToString(launch.MessageId), Body: aws.ToString(launch.Body), EventSource: "aws:sqs"},
		{MessageId: "poison-1", Body: poison, EventSource: "aws:sqs"},
	}})
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	if resp := out.(events.SQSEventResponse); len(resp.BatchItemFailures) != 0 {
		t.Errorf("batchItemFailures = %v, want none (the poison record is dead-lettered)", resp.BatchItemFailures)
	}
	ms, err := led.ListMigrations(ctx, ledger.MigrationQuery{Database: "orders"})
	if err != nil || len(ms) != 1 {
		t.Fatalf("migrations after the batch: %v, %v", ms, err)
	}
	// First boot, advanced within the invocation: a blank volume made and
	// attached; the "service" (sleep) never answers, so it waits for health.
	if m := ms[0]; m.State < ledger.Attaching || m.Volume == "" {
		t.Errorf("migration after the invocation: %s, volume %q", m.State, m.Volume)
	}
	got, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: dlq.QueueUrl, WaitTimeSeconds: 2,
		MessageAttributeNames: []string{"All"}})
	if err != nil || len(got.Messages) != 1 || aws.ToString(got.Messages[0].Body) != poison ||
		!strings.Contains(aws.ToString(got.Messages[0].MessageAttributes["handover-reason"].StringValue), "LifecycleActionToken") {
		t.Errorf("dead-letter queue: %+v, %v", got, err)
	}

	// The same record again (SQS redelivers at least once): a duplicate.
	again, _ := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{{MessageId: "x", Body: aws.ToString(launch.Body), EventSource: "aws:sqs"}}})
	if out, err := h.Invoke(ctx, again); err != nil || len(out.(events.SQSEventResponse).BatchItemFailures) != 0 {
		t.Errorf("redelivered record: %v, %v", out, err)
	}
	if ms, _ := led.ListMigrations(ctx, ledger.MigrationQuery{}); len(ms) != 1 {
		t.Errorf("%d migrations after a redelivery, want 1", len(ms))
	}

	scheduled := `{"version":"0","id":"s1","detail-type":"Scheduled Event","source":"aws.events","account":"000000000000","time":"2026-11-26T09:01:00Z","region":"us-east-1","resources":[],"detail":{}}`
	out, err = h.Invoke(ctx, json.RawMessage(scheduled))
	if res, ok := out.(Result); err != nil || !ok || !res.Reconciled || res.ReconcileError != "" {
		t.Errorf("scheduled invocation: %+v, %v", out, err)
	}
}

func queueARN(t *testing.T, q *sqs.Client, url string) string {
	t.Helper()
	out, err := q.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["QueueArn"]
}
