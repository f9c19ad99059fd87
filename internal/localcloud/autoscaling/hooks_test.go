package autoscaling

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/handover-dev/handover/internal/events"
)

const metadata = `{"database":"tenant-42"}`

// launchWaiting creates a one-instance group with a launch hook and returns
// the instance waiting in Pending:Wait with its lifecycle event.
func launchWaiting(t *testing.T, h *harness, heartbeat int32, defaultResult string) (string, *events.LifecycleAction) {
	t.Helper()
	h.createGroup("db", 0, 3, 1, withTargetGroup, withHook("handover", events.TransitionLaunching, heartbeat, defaultResult, metadata))
	h.step()
	id := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId)
	evs := h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action")
	if len(evs) != 1 {
		t.Fatalf("%d launch lifecycle events, want 1", len(evs))
	}
	return id, evs[0].Lifecycle
}

func TestLaunchHookContinue(t *testing.T) {
	h := newHarness(t)
	id, l := launchWaiting(t, h, 300, "ABANDON")
	if l.InstanceID != id || l.Group != "db" || l.Hook != "handover" || l.Metadata != metadata || l.Transition != events.TransitionLaunching || len(l.Token) != 36 {
		t.Fatalf("lifecycle event = %+v", l)
	}
	if h.tgs.isRegistered(testTG, id) {
		t.Fatal("registered before the hook completed")
	}
	// It waits however often the controller runs.
	h.clock.Advance(299 * time.Second)
	h.step()
	h.only("db", types.LifecycleStatePendingWait)

	if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"),
		LifecycleActionToken: aws.String(l.Token), LifecycleActionResult: aws.String("CONTINUE"),
	}); err != nil {
		t.Fatal(err)
	}
	h.step()
	if got := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId); got != id {
		t.Fatalf("InService instance %s, want %s", got, id)
	}
	if !h.tgs.isRegistered(testTG, id) {
		t.Fatal("not registered once InService")
	}
	ok := h.pub.decoded(t, "EC2 Instance Launch Successful")
	if len(ok) != 1 {
		t.Fatalf("%d launch-successful events", len(ok))
	}
	e := ok[0]
	if e.Launch.InstanceID != id || e.Launch.Group != "db" || !e.Launch.Successful || e.Launch.StatusCode != "Successful" || e.Launch.AvailabilityZone == "" || e.Region != testRegion || e.Account != testAccount {
		t.Fatalf("launch-successful event = %+v %+v", e, e.Launch)
	}
	if len(e.Resources) != 2 || !strings.HasPrefix(e.Resources[0], "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:") || e.Resources[1] != "arn:aws:ec2:us-east-1:123456789012:instance/"+id {
		t.Fatalf("resources = %v", e.Resources)
	}
	acts := h.activities("db")
	if len(acts) != 1 || acts[0].StatusCode != types.ScalingActivityStatusCodeSuccessful || aws.ToString(acts[0].Description) != "Launching a new EC2 instance: "+id || aws.ToInt32(acts[0].Progress) != 100 {
		t.Fatalf("activities = %+v", acts)
	}
}

func TestLaunchHookAbandon(t *testing.T) {
	h := newHarness(t)
	id, l := launchWaiting(t, h, 300, "CONTINUE")
	if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"),
		InstanceId: aws.String(id), LifecycleActionResult: aws.String("ABANDON"),
	}); err != nil {
		t.Fatal(err)
	}
	h.step()
	if !h.ec2.terminated(id) || h.tgs.isRegistered(testTG, id) {
		t.Fatalf("abandoned instance: terminated %v, registered %v", h.ec2.terminated(id), h.tgs.isRegistered(testTG, id))
	}
	// The group replaces it: a new instance waits on the hook.
	if got := aws.ToString(h.only("db", types.LifecycleStatePendingWait).InstanceId); got == id {
		t.Fatal("abandoned instance still in the group")
	}
	bad := h.pub.decoded(t, "EC2 Instance Launch Unsuccessful")
	want := "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token " + l.Token + " was abandoned: Lifecycle Action Completed with ABANDON Result"
	if len(bad) != 1 || bad[0].Launch.InstanceID != id || bad[0].Launch.StatusCode != "Cancelled" || bad[0].Launch.StatusMessage != want {
		t.Fatalf("launch-unsuccessful events = %+v", bad)
	}
	if n := len(h.pub.decoded(t, "EC2 Instance Launch Successful")); n != 0 {
		t.Fatalf("%d launch-successful events", n)
	}
	// No terminate-successful event either: the launch is what failed.
	if n := len(h.pub.raw(t, detailTypeTerminateSuccessful)); n != 0 {
		t.Fatalf("%d terminate-successful events", n)
	}
	var cancelled bool
	for _, a := range h.activities("db") {
		if a.StatusCode == types.ScalingActivityStatusCodeCancelled {
			cancelled = aws.ToString(a.StatusMessage) == want && strings.HasPrefix(aws.ToString(a.Description), "Launching a new EC2 instance: "+id+".  Status Reason: ")
		}
	}
	if !cancelled {
		t.Fatalf("no cancelled activity: %+v", h.activities("db"))
	}
}

func TestHeartbeatExtendsAndTimeoutAppliesDefault(t *testing.T) {
	for _, tc := range []struct {
		defaultResult string
		wantState     types.LifecycleState // of the first instance, "" when gone
	}{
		{"CONTINUE", types.LifecycleStateInService},
		{"ABANDON", ""},
	} {
		t.Run(tc.defaultResult, func(t *testing.T) {
			h := newHarness(t)
			id, l := launchWaiting(t, h, 60, tc.defaultResult)
			heartbeat := func() error {
				_, err := h.as.RecordLifecycleActionHeartbeat(h.ctx, &as.RecordLifecycleActionHeartbeatInput{
					AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"), LifecycleActionToken: aws.String(l.Token),
				})
				return err
			}
			// Heartbeats every 50s keep it waiting well past 60s.
			for range 4 {
				h.clock.Advance(50 * time.Second)
				if err := heartbeat(); err != nil {
					t.Fatal(err)
				}
				h.step()
				h.only("db", types.LifecycleStatePendingWait)
			}
			// Then 60s without one: the default result applies.
			h.clock.Advance(59 * time.Second)
			h.step()
			h.only("db", types.LifecycleStatePendingWait)
			h.clock.Advance(time.Second)
			// The action is over even before the controller notices.
			err := heartbeat()
			apiError(t, err, "ValidationError", "No active Lifecycle Action found with token "+l.Token)
			h.step()

			var state types.LifecycleState
			for _, i := range h.instances("db") {
				if aws.ToString(i.InstanceId) == id {
					state = i.LifecycleState
				}
			}
			if state != tc.wantState {
				t.Fatalf("instance is %q, want %q", state, tc.wantState)
			}
			if tc.defaultResult == "ABANDON" {
				bad := h.pub.decoded(t, "EC2 Instance Launch Unsuccessful")
				if len(bad) != 1 || !strings.HasSuffix(bad[0].Launch.StatusMessage, "was abandoned: Heartbeat Timeout") {
					t.Fatalf("launch-unsuccessful = %+v", bad)
				}
			}
		})
	}
}

func TestGlobalTimeout(t *testing.T) {
	h := newHarness(t)
	_, l := launchWaiting(t, h, 30, "CONTINUE")
	// 100 × 30s: heartbeats cannot keep the action alive past 3000s.
	for elapsed := 25; elapsed < 3000; elapsed += 25 {
		h.clock.Advance(25 * time.Second)
		if _, err := h.as.RecordLifecycleActionHeartbeat(h.ctx, &as.RecordLifecycleActionHeartbeatInput{
			AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"), LifecycleActionToken: aws.String(l.Token),
		}); err != nil {
			t.Fatalf("heartbeat at %ds: %v", elapsed, err)
		}
	}
	h.step()
	h.only("db", types.LifecycleStatePendingWait)
	h.clock.Advance(25 * time.Second) // 3000s
	h.step()
	h.only("db", types.LifecycleStateInService)

	hooks, err := h.as.DescribeLifecycleHooks(h.ctx, &as.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("db")})
	if err != nil || len(hooks.LifecycleHooks) != 1 || aws.ToInt32(hooks.LifecycleHooks[0].GlobalTimeout) != 3000 {
		t.Fatalf("hooks = %+v %v", hooks, err)
	}
}

func TestCompletingEndedActionIsValidationError(t *testing.T) {
	h := newHarness(t)
	id, l := launchWaiting(t, h, 300, "ABANDON")
	complete := func(token, instanceID string) error {
		in := &as.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"), LifecycleActionResult: aws.String("CONTINUE")}
		if token != "" {
			in.LifecycleActionToken = aws.String(token)
		}
		if instanceID != "" {
			in.InstanceId = aws.String(instanceID)
		}
		_, err := h.as.CompleteLifecycleAction(h.ctx, in)
		return err
	}
	if err := complete("", id); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token, instance, want string }{
		{"by instance, before the controller ran", "", id, "No active Lifecycle Action found with instance ID " + id},
		{"by token", l.Token, "", "No active Lifecycle Action found with token " + l.Token},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apiError(t, complete(tc.token, tc.instance), "ValidationError", tc.want)
		})
	}
	h.step()
	h.only("db", types.LifecycleStateInService)
	apiError(t, complete("", id), "ValidationError", "No active Lifecycle Action found with instance ID "+id)
	apiError(t, complete("", "i-0000000000000dead"), "ValidationError", "No active Lifecycle Action found with instance ID i-0000000000000dead")
}

func TestTerminateHookHoldsInstance(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 0, 3, 1, withTargetGroup, withHook("drain", events.TransitionTerminating, 600, "ABANDON", "bye"))
	h.step()
	id := aws.ToString(h.only("db", types.LifecycleStateInService).InstanceId)

	h.setDesired("db", 0)
	h.step()
	h.step()
	h.only("db", types.LifecycleStateTerminatingWait)
	if h.ec2.terminated(id) {
		t.Fatal("terminated while the hook holds it")
	}
	if h.tgs.isRegistered(testTG, id) {
		t.Fatal("still registered in Terminating:Wait")
	}
	evs := h.pub.decoded(t, "EC2 Instance-terminate Lifecycle Action")
	if len(evs) != 1 || evs[0].Lifecycle.InstanceID != id || evs[0].Lifecycle.Metadata != "bye" || evs[0].Lifecycle.Transition != events.TransitionTerminating {
		t.Fatalf("terminate lifecycle events = %+v", evs)
	}
	acts := h.activities("db")
	if acts[0].StatusCode != types.ScalingActivityStatusCodeMidLifecycleAction {
		t.Fatalf("termination activity = %+v", acts[0])
	}

	// ABANDON on a terminating instance still terminates it.
	if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("drain"),
		LifecycleActionToken: aws.String(evs[0].Lifecycle.Token), LifecycleActionResult: aws.String("ABANDON"),
	}); err != nil {
		t.Fatal(err)
	}
	h.step()
	if len(h.instances("db")) != 0 || !h.ec2.terminated(id) {
		t.Fatalf("instances %v, terminated %v", h.instances("db"), h.ec2.terminated(id))
	}
	done := h.pub.raw(t, detailTypeTerminateSuccessful)
	if len(done) != 1 {
		t.Fatalf("%d terminate-successful events", len(done))
	}
	detail := done[0]["detail"].(map[string]any)
	if detail["EC2InstanceId"] != id || detail["Description"] != "Terminating EC2 instance: "+id || done[0]["source"] != "aws.autoscaling" || detail["Origin"] != "AutoScalingGroup" {
		t.Fatalf("terminate-successful event = %v", done[0])
	}
	if acts := h.activities("db"); acts[0].StatusCode != types.ScalingActivityStatusCodeSuccessful {
		t.Fatalf("termination activity = %+v", acts[0])
	}
}

func TestDeleteHookEndsItsActions(t *testing.T) {
	h := newHarness(t)
	id, _ := launchWaiting(t, h, 300, "CONTINUE")
	if _, err := h.as.DeleteLifecycleHook(h.ctx, &as.DeleteLifecycleHookInput{AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover")}); err != nil {
		t.Fatal(err)
	}
	h.step()
	// A launching instance is abandoned; its replacement has no hook to wait on.
	if !h.ec2.terminated(id) {
		t.Fatal("instance of the deleted hook not abandoned")
	}
	h.only("db", types.LifecycleStateInService)
	_, err := h.as.DeleteLifecycleHook(h.ctx, &as.DeleteLifecycleHookInput{AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover")})
	apiError(t, err, "ValidationError", "")
}

func TestPutLifecycleHookValidation(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 0, 3, 0)
	put := func(in *as.PutLifecycleHookInput) error {
		in.AutoScalingGroupName = aws.String("db")
		_, err := h.as.PutLifecycleHook(h.ctx, in)
		return err
	}
	for _, tc := range []struct {
		name string
		in   as.PutLifecycleHookInput
		code string
	}{
		{"defaults", as.PutLifecycleHookInput{LifecycleHookName: aws.String("a"), LifecycleTransition: aws.String(events.TransitionLaunching)}, ""},
		{"update keeps the transition", as.PutLifecycleHookInput{LifecycleHookName: aws.String("a"), HeartbeatTimeout: aws.Int32(30)}, ""},
		{"new hook needs a transition", as.PutLifecycleHookInput{LifecycleHookName: aws.String("b")}, "ValidationError"},
		{"unknown transition", as.PutLifecycleHookInput{LifecycleHookName: aws.String("b"), LifecycleTransition: aws.String("autoscaling:TEST_NOTIFICATION")}, "ValidationError"},
		{"heartbeat too short", as.PutLifecycleHookInput{LifecycleHookName: aws.String("a"), HeartbeatTimeout: aws.Int32(29)}, "ValidationError"},
		{"heartbeat too long", as.PutLifecycleHookInput{LifecycleHookName: aws.String("a"), HeartbeatTimeout: aws.Int32(7201)}, "ValidationError"},
		{"bad default result", as.PutLifecycleHookInput{LifecycleHookName: aws.String("a"), DefaultResult: aws.String("MAYBE")}, "ValidationError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := put(&tc.in)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			apiError(t, err, tc.code, "")
		})
	}
	out, err := h.as.DescribeLifecycleHooks(h.ctx, &as.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("db")})
	if err != nil {
		t.Fatal(err)
	}
	hk := out.LifecycleHooks[0]
	if len(out.LifecycleHooks) != 1 || aws.ToString(hk.LifecycleTransition) != events.TransitionLaunching || aws.ToInt32(hk.HeartbeatTimeout) != 30 || aws.ToString(hk.DefaultResult) != "ABANDON" || aws.ToInt32(hk.GlobalTimeout) != 3000 {
		t.Fatalf("hooks = %+v", out.LifecycleHooks)
	}
}
