package autoscaling

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/handover-dev/handover/internal/events"
)

func TestStandby(t *testing.T) {
	for _, tc := range []struct {
		name            string
		decrement       bool
		hooksOnExit     bool
		wantDesired     int32 // while in Standby
		wantInService   int   // while in Standby
		wantAfterExit   int32 // desired after ExitStandby
		wantExitWaiting bool  // ExitStandby goes through Pending:Wait
	}{
		{name: "decrement", decrement: true, wantDesired: 2, wantInService: 2, wantAfterExit: 3},
		{name: "no decrement launches a replacement", decrement: false, wantDesired: 3, wantInService: 3, wantAfterExit: 4},
		{name: "hooks on exit", decrement: true, hooksOnExit: true, wantDesired: 2, wantInService: 2, wantAfterExit: 3, wantExitWaiting: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.HooksOnExitStandby = tc.hooksOnExit })
			h.createGroup("db", 1, 5, 3, withTargetGroup, withHook("handover", events.TransitionLaunching, 300, "CONTINUE", metadata))
			h.step()
			for _, i := range h.instances("db") {
				if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
					AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"), InstanceId: i.InstanceId, LifecycleActionResult: aws.String("CONTINUE"),
				}); err != nil {
					t.Fatal(err)
				}
			}
			h.step()
			id := aws.ToString(h.instances("db")[0].InstanceId)
			h.pub.Reset()

			out, err := h.as.EnterStandby(h.ctx, &as.EnterStandbyInput{AutoScalingGroupName: aws.String("db"), InstanceIds: []string{id}, ShouldDecrementDesiredCapacity: aws.Bool(tc.decrement)})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Activities) != 1 || aws.ToString(out.Activities[0].Description) != "Moving EC2 instance to Standby: "+id {
				t.Fatalf("EnterStandby activities = %+v", out.Activities)
			}
			h.step()
			// A replacement, if any, waits on the hook; complete it.
			for _, i := range h.instances("db") {
				if i.LifecycleState == types.LifecycleStatePendingWait {
					if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
						AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"), InstanceId: i.InstanceId, LifecycleActionResult: aws.String("CONTINUE"),
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
			h.step()
			g := h.group("db")
			if got := h.only("db", types.LifecycleStateStandby); aws.ToString(got.InstanceId) != id {
				t.Fatalf("standby instance %s, want %s", aws.ToString(got.InstanceId), id)
			}
			if aws.ToInt32(g.DesiredCapacity) != tc.wantDesired || h.states("db")[types.LifecycleStateInService] != tc.wantInService {
				t.Fatalf("desired %d, states %v", aws.ToInt32(g.DesiredCapacity), h.states("db"))
			}
			if h.tgs.isRegistered(testTG, id) {
				t.Fatal("standby instance still registered")
			}
			// Standby instances are not health-checked.
			h.ec2.kill(id)
			h.step()
			h.only("db", types.LifecycleStateStandby)
			h.ec2.mu.Lock()
			h.ec2.insts[id].ProcessAlive = true
			h.ec2.mu.Unlock()

			_, err = h.as.EnterStandby(h.ctx, &as.EnterStandbyInput{AutoScalingGroupName: aws.String("db"), InstanceIds: []string{id}, ShouldDecrementDesiredCapacity: aws.Bool(true)})
			apiError(t, err, "ValidationError", "The instance "+id+" is not in InService.")

			h.pub.Reset()
			exit, err := h.as.ExitStandby(h.ctx, &as.ExitStandbyInput{AutoScalingGroupName: aws.String("db"), InstanceIds: []string{id}})
			if err != nil {
				t.Fatal(err)
			}
			if len(exit.Activities) != 1 || exit.Activities[0].StatusCode != types.ScalingActivityStatusCodePreInService || !strings.Contains(aws.ToString(exit.Activities[0].Cause), "moved out of standby") {
				t.Fatalf("ExitStandby activities = %+v", exit.Activities)
			}
			h.step()
			waits := h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action")
			if tc.wantExitWaiting {
				if len(waits) != 1 || waits[0].Lifecycle.InstanceID != id {
					t.Fatalf("launch lifecycle events on exit = %+v", waits)
				}
				h.only("db", types.LifecycleStatePendingWait)
				if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
					AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"), LifecycleActionToken: aws.String(waits[0].Lifecycle.Token), LifecycleActionResult: aws.String("CONTINUE"),
				}); err != nil {
					t.Fatal(err)
				}
				h.step()
			} else if len(waits) != 0 {
				t.Fatalf("lifecycle hooks ran on exit from standby: %+v", waits)
			}
			g = h.group("db")
			var state types.LifecycleState
			for _, i := range g.Instances {
				if aws.ToString(i.InstanceId) == id {
					state = i.LifecycleState
				}
			}
			if state != types.LifecycleStateInService || aws.ToInt32(g.DesiredCapacity) != tc.wantAfterExit || !h.tgs.isRegistered(testTG, id) {
				t.Fatalf("after exit: %s, desired %d, registered %v", state, aws.ToInt32(g.DesiredCapacity), h.tgs.isRegistered(testTG, id))
			}
			// Leaving Standby is not a launch.
			if n := len(h.pub.decoded(t, "EC2 Instance Launch Successful")); n != 0 {
				t.Fatalf("%d launch-successful events on exit from standby", n)
			}
			if n := int(tc.wantAfterExit); len(g.Instances) != n {
				t.Fatalf("%d instances, want %d", len(g.Instances), n)
			}
		})
	}
}

func TestStandbyErrors(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 2, 3, 2)
	h.step()
	all := ids(h.instances("db"))
	_, err := h.as.EnterStandby(h.ctx, &as.EnterStandbyInput{AutoScalingGroupName: aws.String("db"), InstanceIds: all[:1], ShouldDecrementDesiredCapacity: aws.Bool(true)})
	apiError(t, err, "ValidationError", "") // below min size
	_, err = h.as.ExitStandby(h.ctx, &as.ExitStandbyInput{AutoScalingGroupName: aws.String("db"), InstanceIds: all[:1]})
	apiError(t, err, "ValidationError", "The instance "+all[0]+" is not in Standby.")
	_, err = h.as.EnterStandby(h.ctx, &as.EnterStandbyInput{AutoScalingGroupName: aws.String("db"), InstanceIds: []string{"i-0000000000000beef"}, ShouldDecrementDesiredCapacity: aws.Bool(false)})
	apiError(t, err, "ValidationError", "The instance i-0000000000000beef is not part of Auto Scaling group db.")
}
