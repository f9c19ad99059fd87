package autoscaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/handover-dev/handover/internal/events"
)

func putNotifiedHook(h *harness, group, name, transition, target, role string) error {
	in := &as.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String(group), LifecycleHookName: aws.String(name),
		LifecycleTransition: aws.String(transition), HeartbeatTimeout: aws.Int32(300),
		NotificationMetadata: aws.String(metadata), NotificationTargetARN: aws.String(target),
	}
	if role != "" {
		in.RoleARN = aws.String(role)
	}
	_, err := h.as.PutLifecycleHook(h.ctx, in)
	return err
}

// decodeNote decodes a message sent to a hook's target as a consumer of the
// queue does.
func decodeNote(t *testing.T, n sentNotification) (*events.Event, error) {
	t.Helper()
	if !json.Valid([]byte(n.Body)) {
		t.Fatalf("notification is not JSON: %s", n.Body)
	}
	return events.DecodeSQSBody(n.Body)
}

// TestHookNotifiesItsTarget: a hook with an SQS target gets AWS's test
// message when it is put and a message per lifecycle action, carrying the
// same action (token, instance, metadata) as the EventBridge event, for
// launches and terminations alike.
func TestHookNotifiesItsTarget(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 0, 3, 0)
	h.clock.Advance(123456789 * time.Nanosecond) // AWS writes milliseconds
	for _, hk := range []struct{ name, transition string }{
		{"handover-launch", events.TransitionLaunching}, {"handover-terminate", events.TransitionTerminating},
	} {
		if err := putNotifiedHook(h, "db", hk.name, hk.transition, testQueue, testRole); err != nil {
			t.Fatal(err)
		}
	}
	tests := h.notes.take()
	if len(tests) != 2 {
		t.Fatalf("%d test notifications, want one per hook put", len(tests))
	}
	groupARN := aws.ToString(h.group("db").AutoScalingGroupARN)
	for _, n := range tests {
		if _, err := decodeNote(t, n); !events.IsTestNotification(err) || n.Target != testQueue {
			t.Fatalf("test notification to %s decodes to %v", n.Target, err)
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(n.Body), &m); err != nil {
			t.Fatal(err)
		}
		if m["Time"] != "2026-03-01T12:00:00.123Z" {
			t.Fatalf("test notification time %q, want AWS's milliseconds", m["Time"])
		}
		if m["AutoScalingGroupName"] != "db" || m["AutoScalingGroupARN"] != groupARN || m["AccountId"] != testAccount || m["Service"] != "AWS Auto Scaling" || len(m["RequestId"]) != 36 {
			t.Fatalf("test notification %s", n.Body)
		}
	}
	hooks, err := h.as.DescribeLifecycleHooks(h.ctx, &as.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("db")})
	if err != nil {
		t.Fatal(err)
	}
	for _, hk := range hooks.LifecycleHooks {
		if aws.ToString(hk.NotificationTargetARN) != testQueue || aws.ToString(hk.RoleARN) != testRole {
			t.Fatalf("hook %s: target %q role %q", aws.ToString(hk.LifecycleHookName), aws.ToString(hk.NotificationTargetARN), aws.ToString(hk.RoleARN))
		}
	}

	h.setDesired("db", 1)
	h.step()
	id := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId)
	eb := h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action")
	sent := h.notes.take()
	if len(eb) != 1 || len(sent) != 1 {
		t.Fatalf("%d EventBridge events and %d notifications for one launch", len(eb), len(sent))
	}
	n, err := decodeNote(t, sent[0])
	if err != nil {
		t.Fatalf("launch notification %s: %v", sent[0].Body, err)
	}
	if n.Delivery != events.DeliveryHookNotification || n.Kind != events.KindLaunchAction || *n.Lifecycle != *eb[0].Lifecycle || n.Lifecycle.InstanceID != id || n.Lifecycle.Metadata != metadata || n.ID == eb[0].ID || n.Account != testAccount {
		t.Fatalf("notification %s\ndoes not carry the EventBridge event's action %+v", sent[0].Body, *eb[0].Lifecycle)
	}
	if n.Lifecycle.Origin != "EC2" || n.Lifecycle.Destination != "AutoScalingGroup" {
		t.Fatalf("origin %q destination %q", n.Lifecycle.Origin, n.Lifecycle.Destination)
	}
	if !strings.Contains(sent[0].Body, `"Time":"2026-03-01T12:00:00.123Z"`) {
		t.Fatalf("notification time not in milliseconds: %s", sent[0].Body)
	}
	// The token in the notification completes the action.
	if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String(n.Lifecycle.Hook),
		LifecycleActionToken: aws.String(n.Lifecycle.Token), LifecycleActionResult: aws.String("CONTINUE"),
	}); err != nil {
		t.Fatal(err)
	}
	h.step()
	h.only("db", types.LifecycleStateInService)

	h.setDesired("db", 0)
	h.step()
	h.only("db", types.LifecycleStateTerminatingWait)
	sent = h.notes.take()
	if len(sent) != 1 {
		t.Fatalf("%d notifications for one termination", len(sent))
	}
	n, err = decodeNote(t, sent[0])
	if err != nil || n.Kind != events.KindTerminateAction || n.Lifecycle.InstanceID != id || n.Lifecycle.Hook != "handover-terminate" || n.Lifecycle.Origin != "AutoScalingGroup" || n.Lifecycle.Destination != "EC2" {
		t.Fatalf("terminate notification %s: %v", sent[0].Body, err)
	}
}

func TestHookNotificationTargetErrors(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 0, 3, 0)
	const publishErr = "Unable to publish test message to notification target %s using IAM role %s. Please check your target and role configuration and try to put lifecycle hook again."
	for _, tt := range []struct {
		name, target, role, msg string
	}{
		{"a queue that does not exist", "arn:aws:sqs:us-east-1:123456789012:nobody", testRole, ""},
		{"a FIFO queue", "arn:aws:sqs:us-east-1:123456789012:handover.fifo", testRole, ""},
		{"an SNS topic (the local cloud has no SNS)", "arn:aws:sns:us-east-1:123456789012:hooks", testRole, ""},
		{"a role that is no role", testQueue, "arn:aws:iam::123456789012:user/alice", ""},
		{"no role on a new hook", testQueue, "", "Lifecycle hook bad has NotificationTargetARN " + testQueue + " but no RoleARN: give the ARN of the IAM role that lets Auto Scaling publish to the target."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "a FIFO queue" {
				h.notes.add(tt.target) // exists, but cannot take hook messages
			}
			want := tt.msg
			if want == "" {
				want = fmtErr(publishErr, tt.target, tt.role)
			}
			apiError(t, putNotifiedHook(h, "db", "bad", events.TransitionLaunching, tt.target, tt.role), "ValidationError", want)
			if len(h.describeHooks("db")) != 0 {
				t.Fatal("a refused hook was created")
			}
			if sent := h.notes.take(); len(sent) != 0 {
				t.Fatalf("sent %v", sent)
			}
		})
	}

	// A group whose hook specification names a target it cannot reach is
	// not created; one whose target works gets the test message.
	_, err := h.as.CreateAutoScalingGroup(h.ctx, &as.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("other"), MinSize: aws.Int32(0), MaxSize: aws.Int32(1), AvailabilityZones: testZones,
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String("lt-0123456789abcdef0")},
		LifecycleHookSpecificationList: []types.LifecycleHookSpecification{{
			LifecycleHookName: aws.String("handover"), LifecycleTransition: aws.String(events.TransitionLaunching),
			NotificationTargetARN: aws.String("arn:aws:sqs:us-east-1:123456789012:nobody"), RoleARN: aws.String(testRole),
		}},
	})
	apiError(t, err, "ValidationError", fmtErr(publishErr, "arn:aws:sqs:us-east-1:123456789012:nobody", testRole))
	if out, err := h.as.DescribeAutoScalingGroups(h.ctx, &as.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"other"}}); err != nil || len(out.AutoScalingGroups) != 0 {
		t.Fatalf("refused group exists: %v, %v", out, err)
	}
	h.createGroup("other", 0, 1, 0, func(in *as.CreateAutoScalingGroupInput) {
		in.LifecycleHookSpecificationList = []types.LifecycleHookSpecification{{
			LifecycleHookName: aws.String("handover"), LifecycleTransition: aws.String(events.TransitionLaunching),
			NotificationTargetARN: aws.String(testQueue), RoleARN: aws.String(testRole),
		}}
	})
	sent := h.notes.take()
	if len(sent) != 1 {
		t.Fatalf("%d test notifications for the group's hook", len(sent))
	}
	var m map[string]string
	_ = json.Unmarshal([]byte(sent[0].Body), &m)
	if m["Event"] != events.TestNotification || m["AutoScalingGroupARN"] != aws.ToString(h.group("other").AutoScalingGroupARN) {
		t.Fatalf("test notification %s", sent[0].Body)
	}
}

// TestHookNotificationTargetUpdates: updating a hook keeps its role, a new
// target gets its own test message, an empty NotificationTargetARN clears
// the target, and a hook without one notifies nobody but EventBridge.
func TestHookNotificationTargetUpdates(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 0, 3, 0)
	if err := putNotifiedHook(h, "db", "handover", events.TransitionLaunching, testQueue, testRole); err != nil {
		t.Fatal(err)
	}
	const second = "arn:aws:sqs:us-east-1:123456789012:second"
	h.notes.add(second)
	h.notes.take()
	// No RoleARN: optional when the hook has one.
	if _, err := h.as.PutLifecycleHook(h.ctx, &as.PutLifecycleHookInput{AutoScalingGroupName: aws.String("db"),
		LifecycleHookName: aws.String("handover"), NotificationTargetARN: aws.String(second)}); err != nil {
		t.Fatal(err)
	}
	if sent := h.notes.take(); len(sent) != 1 || sent[0].Target != second {
		t.Fatalf("sent %v, want one test message to %s", sent, second)
	}
	hk := h.describeHooks("db")[0]
	if aws.ToString(hk.NotificationTargetARN) != second || aws.ToString(hk.RoleARN) != testRole || aws.ToString(hk.NotificationMetadata) != metadata {
		t.Fatalf("updated hook %+v", hk)
	}
	// Changing something else sends nothing.
	if _, err := h.as.PutLifecycleHook(h.ctx, &as.PutLifecycleHookInput{AutoScalingGroupName: aws.String("db"),
		LifecycleHookName: aws.String("handover"), HeartbeatTimeout: aws.Int32(600)}); err != nil {
		t.Fatal(err)
	}
	if sent := h.notes.take(); len(sent) != 0 {
		t.Fatalf("sent %v for a heartbeat change", sent)
	}
	if _, err := h.as.PutLifecycleHook(h.ctx, &as.PutLifecycleHookInput{AutoScalingGroupName: aws.String("db"),
		LifecycleHookName: aws.String("handover"), NotificationTargetARN: aws.String("")}); err != nil {
		t.Fatal(err)
	}
	if hk := h.describeHooks("db")[0]; hk.NotificationTargetARN != nil {
		t.Fatalf("target %q not cleared", aws.ToString(hk.NotificationTargetARN))
	}
	h.setDesired("db", 1)
	h.step()
	h.only("db", types.LifecycleStatePendingWait)
	if sent := h.notes.take(); len(sent) != 0 || len(h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action")) != 1 {
		t.Fatalf("sent %v for a hook without a target", sent)
	}
}

// TestHookNotificationToAGoneTarget: a target deleted after the hook was
// put loses its messages (AWS cannot deliver them either) without holding
// up the EventBridge events behind them; a failure that may pass is
// retried in order on the next pass.
func TestHookNotificationToAGoneTarget(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 0, 3, 0)
	if err := putNotifiedHook(h, "db", "handover", events.TransitionLaunching, testQueue, testRole); err != nil {
		t.Fatal(err)
	}
	h.notes.take()
	h.notes.mu.Lock()
	h.notes.NextErr = errors.New("connection reset")
	h.notes.mu.Unlock()
	h.setDesired("db", 1)
	if err := h.svc.Step(h.ctx); err == nil {
		t.Fatal("a failed delivery was not reported")
	}
	if sent := h.notes.take(); len(sent) != 0 {
		t.Fatalf("sent %v", sent)
	}
	h.step()
	if sent := h.notes.take(); len(sent) != 1 {
		t.Fatalf("%d notifications after the retry, want 1", len(sent))
	}

	h.notes.drop(testQueue)
	h.pub.Reset()
	h.setDesired("db", 2)
	h.step()
	h.step()
	if n := len(h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action")); n != 1 {
		t.Fatalf("%d EventBridge events behind a dropped notification, want 1", n)
	}
	h.svc.mu.Lock()
	left := len(h.svc.st.Outbox)
	h.svc.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d messages stuck in the outbox", left)
	}
	// The hook's waiting instances are unaffected: they time out as usual.
	h.clock.Advance(301 * time.Second)
	h.step()
}

func fmtErr(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func (h *harness) describeHooks(group string) []types.LifecycleHook {
	h.t.Helper()
	out, err := h.as.DescribeLifecycleHooks(h.ctx, &as.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String(group)})
	if err != nil {
		h.t.Fatal(err)
	}
	return out.LifecycleHooks
}
