package localcloud

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
	"github.com/handover-dev/handover/internal/localcloud/faults"
)

const ami = "ami-0123456789abcdef0"

type clients struct {
	ec2 *awsec2.Client
	asg *autoscaling.Client
	sqs *awssqs.Client
	eb  *eventbridge.Client
}

func start(t *testing.T) (*Cloud, clients) { t.Helper(); return startB(t) }

func startB(t testing.TB) (*Cloud, clients) {
	t.Helper()
	c, err := New(Config{
		DataDir: t.TempDir(), Tick: 100 * time.Millisecond,
		Catalog: map[string]ec2.Image{ami: {Command: []string{"/bin/sh", "-c", "sleep 600"}, Description: "sleeper"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { srv.Close(); c.Close() })
	creds := credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")
	cfg := aws.Config{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL)}
	return c, clients{
		ec2: awsec2.NewFromConfig(cfg), asg: autoscaling.NewFromConfig(cfg),
		sqs: awssqs.NewFromConfig(cfg), eb: eventbridge.NewFromConfig(cfg),
	}
}

// receive long-polls the queue until pick returns true for a decoded event.
func receive(t *testing.T, cl clients, url string, pick func(*events.Event) bool) *events.Event {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := cl.sqs.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			ev, err := events.DecodeSQSBody(aws.ToString(m.Body))
			if err != nil {
				continue
			}
			if _, err := cl.sqs.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
			if pick(ev) {
				return ev
			}
		}
	}
	t.Fatal("no matching event arrived within 60s")
	return nil
}

// TestLaunchHookEndToEnd drives the services together through the real
// SDK, as handover's controller will: a group launches an instance process
// that waits in Pending:Wait; the lifecycle event travels EventBridge → SQS
// in the shape handover decodes; completing the action puts the instance in
// service; a snapshot's EBS event arrives the same way.
func TestLaunchHookEndToEnd(t *testing.T) {
	ctx := context.Background()
	_, cl := start(t)

	q, err := cl.sqs.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("handover-events")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := cl.sqs.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("handover"),
		EventPattern: aws.String(`{"source":["aws.autoscaling","aws.ec2"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("handover"),
		Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(attrs.Attributes["QueueArn"])}}}); err != nil {
		t.Fatal(err)
	}

	userData := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho booted $HANDOVER_INSTANCE_ID\nexec sleep 600\n"))
	if _, err := cl.ec2.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("kvstore"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), UserData: aws.String(userData)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("kv"), MinSize: aws.Int32(0), MaxSize: aws.Int32(2), DesiredCapacity: aws.Int32(1),
		AvailabilityZones: []string{"us-east-1a", "us-east-1b"},
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("kvstore"), Version: aws.String("$Latest")},
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{{
			LifecycleHookName: aws.String("handover"), LifecycleTransition: aws.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
			HeartbeatTimeout: aws.Int32(300), NotificationMetadata: aws.String(`{"database":"orders"}`),
		}},
	}); err != nil {
		t.Fatal(err)
	}

	ev := receive(t, cl, *q.QueueUrl, func(e *events.Event) bool { return e.Kind == events.KindLaunchAction })
	if ev.Lifecycle.Group != "kv" || ev.Lifecycle.Metadata != `{"database":"orders"}` || ev.Lifecycle.Token == "" {
		t.Fatalf("launch event: %+v", ev.Lifecycle)
	}
	id := ev.Lifecycle.InstanceID
	inst, err := cl.asg.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(inst.AutoScalingInstances) != 1 || aws.ToString(inst.AutoScalingInstances[0].LifecycleState) != "Pending:Wait" {
		t.Fatalf("instance %s should wait in Pending:Wait: %+v %v", id, inst, err)
	}
	if _, err := cl.asg.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("kv"),
		LifecycleHookName: aws.String("handover"), LifecycleActionToken: aws.String(ev.Lifecycle.Token), LifecycleActionResult: aws.String("CONTINUE")}); err != nil {
		t.Fatal(err)
	}
	receive(t, cl, *q.QueueUrl, func(e *events.Event) bool { return e.Kind == events.KindLaunchSuccessful && e.Launch.InstanceID == id })

	// A volume in the instance's zone, a snapshot of it, and its event.
	desc, err := cl.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	zone := aws.ToString(desc.Reservations[0].Instances[0].Placement.AvailabilityZone)
	vol, err := cl.ec2.CreateVolume(ctx, &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := awsec2.NewVolumeAvailableWaiter(cl.ec2, func(o *awsec2.VolumeAvailableWaiterOptions) { o.MinDelay = 100 * time.Millisecond }).
		Wait(ctx, &awsec2.DescribeVolumesInput{VolumeIds: []string{*vol.VolumeId}}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	snap, err := cl.ec2.CreateSnapshot(ctx, &awsec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, cl, *q.QueueUrl, func(e *events.Event) bool { return e.Kind == events.KindSnapshot })
	if got.Snapshot.SnapshotID != aws.ToString(snap.SnapshotId) || !got.Snapshot.Succeeded || got.Snapshot.VolumeID != *vol.VolumeId {
		t.Errorf("snapshot event: %+v", got.Snapshot)
	}
	if !strings.HasPrefix(got.Snapshot.SnapshotID, "snap-") {
		t.Errorf("snapshot id %q", got.Snapshot.SnapshotID)
	}
}

// TestFaultsReachTheSDK: a fault rule reaches
// the SDK as the AWS error it mimics, and removing it restores service.
func TestFaultsReachTheSDK(t *testing.T) {
	ctx := context.Background()
	c, cl := start(t)
	rule, err := c.Faults.Add(faults.Rule{Service: "ec2", Action: "DescribeAvailabilityZones", Kind: faults.Error})
	if err != nil {
		t.Fatal(err)
	}
	noRetry := func(o *awsec2.Options) { o.RetryMaxAttempts = 1 }
	_, err = cl.ec2.DescribeAvailabilityZones(ctx, &awsec2.DescribeAvailabilityZonesInput{}, noRetry)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InternalError" {
		t.Fatalf("want InternalError, got %v", err)
	}
	c.Faults.Remove(rule.ID)
	if _, err := c.Faults.Add(faults.Rule{Service: "ec2", Action: "DescribeAvailabilityZones", Kind: faults.Throttle, Count: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = cl.ec2.DescribeAvailabilityZones(ctx, &awsec2.DescribeAvailabilityZonesInput{}, noRetry)
	if !errors.As(err, &ae) || ae.ErrorCode() != "RequestLimitExceeded" {
		t.Fatalf("want RequestLimitExceeded, got %v", err)
	}
	out, err := cl.ec2.DescribeAvailabilityZones(ctx, &awsec2.DescribeAvailabilityZonesInput{}, noRetry)
	if err != nil || len(out.AvailabilityZones) != 3 {
		t.Fatalf("after the counted fault: %v %v", out, err)
	}
}

// TestRequireCredentials: with access keys required, a request signed with
// another key is refused in the service's error shape.
func TestRequireCredentials(t *testing.T) {
	ctx := context.Background()
	c, err := New(Config{DataDir: t.TempDir(), AccessKeys: []string{"AKIDGOOD"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { srv.Close(); c.Close() })
	client := func(key string) *awsec2.Client {
		return awsec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
			Credentials: credentials.NewStaticCredentialsProvider(key, "secret", "")})
	}
	if _, err := client("AKIDGOOD").DescribeAvailabilityZones(ctx, &awsec2.DescribeAvailabilityZonesInput{}); err != nil {
		t.Fatalf("known key refused: %v", err)
	}
	_, err = client("AKIDBAD").DescribeAvailabilityZones(ctx, &awsec2.DescribeAvailabilityZonesInput{})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AuthFailure" {
		t.Fatalf("unknown key: want AuthFailure, got %v", err)
	}
}

// TestInstanceFaultsAreReplaced: killing an instance's processes, or taking
// its zone down, fails its EC2 status checks, and its group replaces it in
// a zone that is up.
func TestInstanceFaultsAreReplaced(t *testing.T) {
	ctx := context.Background()
	c, cl := start(t)
	if _, err := cl.ec2.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("sleeper"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("g"), MinSize: aws.Int32(1), MaxSize: aws.Int32(2), DesiredCapacity: aws.Int32(1),
		AvailabilityZones:      []string{"us-east-1a", "us-east-1b"},
		HealthCheckGracePeriod: aws.Int32(0),
		LaunchTemplate:         &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("sleeper")},
	}); err != nil {
		t.Fatal(err)
	}
	inService := func() (id, zone string) {
		out, err := cl.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"g"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range out.AutoScalingGroups[0].Instances {
			if string(i.LifecycleState) == "InService" && aws.ToString(i.HealthStatus) == "Healthy" {
				return aws.ToString(i.InstanceId), aws.ToString(i.AvailabilityZone)
			}
		}
		return "", ""
	}
	wait := func(what string, ok func(id, zone string) bool) (string, string) {
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if id, zone := inService(); id != "" && ok(id, zone) {
				return id, zone
			}
		}
		t.Fatalf("timed out waiting for %s", what)
		return "", ""
	}
	first, _ := wait("the first instance", func(string, string) bool { return true })
	if err := c.EC2.KillProcesses(ctx, first); err != nil {
		t.Fatal(err)
	}
	second, zone := wait("a replacement for the killed instance", func(id, _ string) bool { return id != first })
	if err := c.EC2.SetZoneDown(zone, true); err != nil {
		t.Fatal(err)
	}
	_, newZone := wait("a replacement outside the zone that is down", func(id, z string) bool { return id != second })
	if newZone == zone {
		t.Errorf("replacement launched in %s, which is down", zone)
	}
	if _, err := cl.ec2.CreateVolume(ctx, &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(1)}); err == nil {
		t.Errorf("a volume was created in %s, which is down", zone)
	}
	if err := c.EC2.SetZoneDown(zone, false); err != nil {
		t.Fatal(err)
	}
}

// TestRestart: the whole cloud survives a restart of itself. Groups,
// hooks, queues (with their messages), rules, volumes and snapshots are
// still there, and an instance that was running comes back as after a
// reboot, with a new process.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Tick: 100 * time.Millisecond,
		Catalog: map[string]ec2.Image{ami: {Command: []string{"/bin/sh", "-c", "exec sleep 600"}}}}
	open := func() (*Cloud, clients, func()) {
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(c.Handler())
		creds := credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")
		awsCfg := aws.Config{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(srv.URL)}
		return c, clients{ec2: awsec2.NewFromConfig(awsCfg), asg: autoscaling.NewFromConfig(awsCfg),
				sqs: awssqs.NewFromConfig(awsCfg), eb: eventbridge.NewFromConfig(awsCfg)},
			func() { srv.Close(); c.Close() }
	}
	c, cl, stop := open()
	q, err := cl.sqs.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String("kept")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.sqs.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("still here")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("r"), EventPattern: aws.String(`{"source":["aws.ec2"]}`)}); err != nil {
		t.Fatal(err)
	}
	run, err := cl.ec2.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	var before int
	for deadline := time.Now().Add(30 * time.Second); before == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		info, err := c.EC2.Instance(ctx, id)
		if err == nil && info.ProcessAlive {
			before = 1
		}
	}
	if before == 0 {
		t.Fatal("the instance process never started")
	}
	stop()

	c, cl, stop = open()
	defer stop()
	if _, err := cl.eb.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("r")}); err != nil {
		t.Errorf("rule lost: %v", err)
	}
	msgs, err := cl.sqs.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 1})
	if err != nil || len(msgs.Messages) != 1 || aws.ToString(msgs.Messages[0].Body) != "still here" {
		t.Errorf("queued message lost: %+v %v", msgs, err)
	}
	alive := false
	for deadline := time.Now().Add(30 * time.Second); !alive && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		info, err := c.EC2.Instance(ctx, id)
		alive = err == nil && info.State == "running" && info.ProcessAlive
	}
	if !alive {
		t.Errorf("instance %s did not come back after the restart", id)
	}
}
