package autoscaling

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/handover-dev/handover/internal/events"
)

// launchCauses counts a group's launch activities by cause.
func launchCauses(h *harness, name string) map[string]int {
	h.t.Helper()
	out := map[string]int{}
	for _, a := range h.activities(name) {
		if strings.HasPrefix(aws.ToString(a.Description), "Launching a new EC2 instance: ") {
			out[aws.ToString(a.Cause)]++
		}
	}
	return out
}

func TestLaunchBatches(t *testing.T) {
	for _, tc := range []struct {
		name    string
		desired int32
		delay   time.Duration // Config.LaunchBatchDelay; 0 leaves the default
		hook    bool
		batches []int // launches of each batch
	}{
		{"ten fit in one batch", 10, 0, false, []int{10}},
		{"twelve", 12, 0, false, []int{10, 2}},
		{"twelve with a configured delay", 12, 5 * time.Second, false, []int{10, 2}},
		{"twelve with a launch hook", 12, 0, true, []int{10, 2}},
		{"twenty-five", 25, 300 * time.Millisecond, false, []int{10, 10, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.LaunchBatchDelay = tc.delay })
			wait := tc.delay
			if wait == 0 {
				wait = DefaultLaunchBatchDelay
			}
			// The hook changes where the instances wait, not how they
			// are launched.
			var opts []groupOpt
			state := types.LifecycleStateInService
			if tc.hook {
				opts = append(opts, withHook("handover", events.TransitionLaunching, 300, "ABANDON", ""))
				state = types.LifecycleStatePendingWait
			}
			h.createGroup("db", 0, 30, tc.desired, opts...)

			launched := 0
			wantCauses := map[string]int{}
			for n, size := range tc.batches {
				if n > 0 {
					// However often the controller runs, the next batch
					// waits for the delay.
					h.step()
					h.clock.Advance(wait - time.Nanosecond)
					h.step()
					if got := len(h.ec2.Launches); got != launched {
						t.Fatalf("before the delay was over: %d launches, want %d", got, launched)
					}
					h.clock.Advance(time.Nanosecond)
				}
				start := h.clock.Now()
				h.step()
				launched += size
				if got := len(h.ec2.Launches); got != launched {
					t.Fatalf("batch %d: %d launches in all, want %d", n+1, got, launched)
				}
				if got := h.states("db"); !maps.Equal(got, map[types.LifecycleState]int{state: launched}) {
					t.Fatalf("batch %d: states %v, want %d %s", n+1, got, launched, state)
				}
				// One activity per instance, each giving the capacity
				// change as it stood when its batch began.
				cause := fmt.Sprintf("At %s an instance was started in response to a difference between desired and actual capacity, increasing the capacity from %d to %d.",
					start.UTC().Format("2006-01-02T15:04:05Z"), launched-size, tc.desired)
				wantCauses[cause] += size
				if got := launchCauses(h, "db"); !maps.Equal(got, wantCauses) {
					t.Fatalf("batch %d: launch activities by cause %v, want %v", n+1, got, wantCauses)
				}
			}

			// A full group launches nothing more, delay or not.
			h.clock.Advance(wait)
			h.step()
			if got := len(h.ec2.Launches); got != int(tc.desired) {
				t.Fatalf("%d launches once full, want %d", got, tc.desired)
			}
			counts := slices.Collect(maps.Values(zoneCounts(h.instances("db"))))
			if slices.Max(counts)-slices.Min(counts) > 1 {
				t.Errorf("zones %v are not balanced", zoneCounts(h.instances("db")))
			}
			if tc.hook {
				if got := len(h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action")); got != int(tc.desired) {
					t.Errorf("%d launch lifecycle events, want %d", got, tc.desired)
				}
			}
			// The last batch met the desired capacity, so a later
			// scale-out does not wait.
			h.setDesired("db", tc.desired+1)
			h.step()
			if got := len(h.ec2.Launches); got != int(tc.desired)+1 {
				t.Fatalf("%d launches after a scale-out by one, want %d", got, tc.desired+1)
			}
		})
	}
}

// TestBatchPauseIsPerGroup shows that one group waiting between batches
// neither holds up another group nor outlives its own deletion.
func TestBatchPauseIsPerGroup(t *testing.T) {
	h := newHarness(t)
	h.createGroup("big", 0, 20, 12)
	h.step()
	if n := len(h.instances("big")); n != 10 {
		t.Fatalf("%d instances in big after its first batch, want 10", n)
	}
	h.createGroup("small", 0, 5, 3)
	h.step()
	if n, m := len(h.instances("small")), len(h.instances("big")); n != 3 || m != 10 {
		t.Fatalf("small has %d instances (want 3), big %d (want 10, still waiting)", n, m)
	}

	// A group deleted mid-pause and made again starts afresh.
	if _, err := h.as.DeleteAutoScalingGroup(h.ctx, &as.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("big"), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	h.step()
	h.createGroup("big", 0, 20, 3)
	h.step()
	if n := len(h.instances("big")); n != 3 {
		t.Fatalf("%d instances in the new big, want 3 at once", n)
	}
}

// TestLargeGroupWithHooksTargetGroupAndTags creates a group of twelve with
// everything handover's replace-all gives it in one CreateAutoScalingGroup:
// every instance gets the launch hook and the propagated tags, whichever
// batch it came in, and is registered with the target group once in
// service.
func TestLargeGroupWithHooksTargetGroupAndTags(t *testing.T) {
	h := newHarness(t)
	h.createGroup("db", 0, 12, 12, withTargetGroup, withHook("handover", events.TransitionLaunching, 300, "ABANDON", metadata), func(in *as.CreateAutoScalingGroupInput) {
		in.Tags = []types.Tag{
			{Key: aws.String("team"), Value: aws.String("db"), PropagateAtLaunch: aws.Bool(true)},
			{Key: aws.String("cost"), Value: aws.String("x"), PropagateAtLaunch: aws.Bool(false)},
		}
	})
	completed := map[string]bool{} // instance → its launch action completed
	completeAll := func() {
		t.Helper()
		for _, e := range h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action") {
			l := e.Lifecycle
			if completed[l.InstanceID] {
				continue
			}
			if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
				AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String(l.Hook),
				LifecycleActionToken: aws.String(l.Token), LifecycleActionResult: aws.String("CONTINUE"),
			}); err != nil {
				t.Fatalf("completing the action of %s: %v", l.InstanceID, err)
			}
			completed[l.InstanceID] = true
		}
	}
	registered := func() int {
		n := 0
		for _, i := range h.instances("db") {
			if h.tgs.isRegistered(testTG, aws.ToString(i.InstanceId)) {
				n++
			}
		}
		return n
	}
	for _, step := range []struct {
		name       string
		do         func()
		states     map[types.LifecycleState]int
		registered int
	}{
		{"first batch waits in its hook", func() {}, map[types.LifecycleState]int{types.LifecycleStatePendingWait: 10}, 0},
		{"first batch in service", completeAll, map[types.LifecycleState]int{types.LifecycleStateInService: 10}, 10},
		{"second batch waits in its hook", func() { h.clock.Advance(DefaultLaunchBatchDelay) },
			map[types.LifecycleState]int{types.LifecycleStateInService: 10, types.LifecycleStatePendingWait: 2}, 10},
		{"all in service", completeAll, map[types.LifecycleState]int{types.LifecycleStateInService: 12}, 12},
	} {
		step.do()
		h.step()
		if got := h.states("db"); !maps.Equal(got, step.states) {
			t.Fatalf("%s: states %v, want %v", step.name, got, step.states)
		}
		if got := registered(); got != step.registered {
			t.Fatalf("%s: %d registered with the target group, want %d", step.name, got, step.registered)
		}
	}

	all := ids(h.instances("db"))
	var hooked []string
	for _, e := range h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action") {
		if l := e.Lifecycle; l.Hook != "handover" || l.Metadata != metadata || l.Group != "db" {
			t.Errorf("lifecycle action %+v", l)
		}
		hooked = append(hooked, e.Lifecycle.InstanceID)
	}
	slices.Sort(hooked)
	if !slices.Equal(hooked, all) {
		t.Errorf("launch hook ran for %v, want each of %v once", hooked, all)
	}
	wantTags := map[string]string{"team": "db", "aws:autoscaling:groupName": "db"}
	if len(h.ec2.Launches) != 12 {
		t.Fatalf("%d launches, want 12", len(h.ec2.Launches))
	}
	for n, l := range h.ec2.Launches {
		if !maps.Equal(l.Tags, wantTags) {
			t.Errorf("launch %d tagged %v, want %v", n+1, l.Tags, wantTags)
		}
	}
	if got := len(h.pub.decoded(t, "EC2 Instance Launch Successful")); got != 12 {
		t.Errorf("%d launch-successful events, want 12", got)
	}
}
