package autoscaling

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

func TestDescribeAutoScalingGroupsPaging(t *testing.T) {
	h := newHarness(t)
	for _, n := range []string{"e", "c", "a", "d", "b"} {
		h.createGroup("grp-"+n, 0, 1, 0)
	}
	var pages [][]string
	p := as.NewDescribeAutoScalingGroupsPaginator(h.as, &as.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(2)})
	for p.HasMorePages() {
		out, err := p.NextPage(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range out.AutoScalingGroups {
			names = append(names, aws.ToString(g.AutoScalingGroupName))
		}
		pages = append(pages, names)
	}
	want := [][]string{{"grp-a", "grp-b"}, {"grp-c", "grp-d"}, {"grp-e"}}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Fatalf("pages = %v, want %v", pages, want)
	}

	out, err := h.as.DescribeAutoScalingGroups(h.ctx, &as.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"grp-d", "nope", "grp-b"}})
	if err != nil || len(out.AutoScalingGroups) != 2 || aws.ToString(out.AutoScalingGroups[0].AutoScalingGroupName) != "grp-b" {
		t.Fatalf("by name: %+v %v", out, err)
	}
	_, err = h.as.DescribeAutoScalingGroups(h.ctx, &as.DescribeAutoScalingGroupsInput{NextToken: aws.String("garbage!")})
	apiError(t, err, "InvalidNextToken", "The token 'garbage!' is invalid.")
	var bad *types.InvalidNextToken
	if !errors.As(err, &bad) {
		t.Fatalf("error %T is not the SDK's modeled InvalidNextToken", err)
	}
	_, err = h.as.DescribeAutoScalingGroups(h.ctx, &as.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(101)})
	apiError(t, err, "ValidationError", "")
}

func TestDescribeAutoScalingGroupsTagFilter(t *testing.T) {
	h := newHarness(t)
	tagged := func(v string) groupOpt {
		return func(in *as.CreateAutoScalingGroupInput) {
			in.Tags = []types.Tag{{Key: aws.String("env"), Value: aws.String(v)}}
		}
	}
	h.createGroup("a", 0, 1, 0, tagged("prod"))
	h.createGroup("b", 0, 1, 0, tagged("dev"))
	out, err := h.as.DescribeAutoScalingGroups(h.ctx, &as.DescribeAutoScalingGroupsInput{Filters: []types.Filter{{Name: aws.String("tag:env"), Values: []string{"prod"}}}})
	if err != nil || len(out.AutoScalingGroups) != 1 || aws.ToString(out.AutoScalingGroups[0].AutoScalingGroupName) != "a" {
		t.Fatalf("filtered: %+v %v", out, err)
	}
	tags := out.AutoScalingGroups[0].Tags
	if len(tags) != 1 || aws.ToString(tags[0].ResourceId) != "a" || aws.ToString(tags[0].ResourceType) != "auto-scaling-group" || !aws.ToBool(tags[0].PropagateAtLaunch) {
		t.Fatalf("tags = %+v", tags)
	}
}

func TestDescribeAutoScalingInstances(t *testing.T) {
	h := newHarness(t)
	h.createGroup("web", 0, 9, 3)
	h.createGroup("db", 0, 9, 2)
	h.step()
	var got []types.AutoScalingInstanceDetails
	p := as.NewDescribeAutoScalingInstancesPaginator(h.as, &as.DescribeAutoScalingInstancesInput{MaxRecords: aws.Int32(2)})
	for p.HasMorePages() {
		out, err := p.NextPage(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out.AutoScalingInstances...)
	}
	if len(got) != 5 {
		t.Fatalf("%d instances, want 5", len(got))
	}
	groups := map[string]int{}
	for _, i := range got {
		groups[aws.ToString(i.AutoScalingGroupName)]++
		// The capital-letter spelling is DescribeAutoScalingInstances'.
		if aws.ToString(i.HealthStatus) != "HEALTHY" || aws.ToString(i.LifecycleState) != "InService" || aws.ToString(i.AvailabilityZone) == "" {
			t.Fatalf("instance = %+v", i)
		}
	}
	if groups["web"] != 3 || groups["db"] != 2 {
		t.Fatalf("groups = %v", groups)
	}
	one, err := h.as.DescribeAutoScalingInstances(h.ctx, &as.DescribeAutoScalingInstancesInput{InstanceIds: []string{aws.ToString(got[4].InstanceId)}})
	if err != nil || len(one.AutoScalingInstances) != 1 {
		t.Fatalf("by id: %+v %v", one, err)
	}
}

func TestDescribeScalingActivities(t *testing.T) {
	h := newHarness(t)
	h.createGroup("web", 0, 9, 3)
	h.step()
	h.clock.Advance(time.Minute)
	h.setDesired("web", 1)
	h.step()

	acts := h.activities("web")
	if len(acts) != 5 {
		t.Fatalf("%d activities, want 3 launches and 2 terminations", len(acts))
	}
	// Newest first.
	for i, a := range acts {
		want := "Launching a new EC2 instance: "
		if i < 2 {
			want = "Terminating EC2 instance: "
		}
		if !strings.HasPrefix(aws.ToString(a.Description), want) || a.StatusCode != types.ScalingActivityStatusCodeSuccessful || a.EndTime == nil || aws.ToString(a.AutoScalingGroupARN) == "" {
			t.Fatalf("activity %d = %+v", i, a)
		}
	}
	if c := aws.ToString(acts[0].Cause); !strings.Contains(c, "shrinking the capacity from 3 to 1") || !strings.HasPrefix(c, "At 2026-03-01T12:01:00Z ") {
		t.Fatalf("cause = %q", c)
	}
	for _, a := range acts[2:] { // each launch names the whole change
		if c := aws.ToString(a.Cause); !strings.Contains(c, "increasing the capacity from 0 to 3") {
			t.Fatalf("cause = %q", c)
		}
	}
	if d := aws.ToString(acts[4].Details); !strings.Contains(d, `"Availability Zone":"us-east-1`) {
		t.Fatalf("details = %q", d)
	}

	// Paging, and lookup by id.
	page, err := h.as.DescribeScalingActivities(h.ctx, &as.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("web"), MaxRecords: aws.Int32(2)})
	if err != nil || len(page.Activities) != 2 || page.NextToken == nil {
		t.Fatalf("first page: %+v %v", page, err)
	}
	byID, err := h.as.DescribeScalingActivities(h.ctx, &as.DescribeScalingActivitiesInput{ActivityIds: []string{aws.ToString(acts[3].ActivityId)}})
	if err != nil || len(byID.Activities) != 1 || aws.ToString(byID.Activities[0].ActivityId) != aws.ToString(acts[3].ActivityId) {
		t.Fatalf("by id: %+v %v", byID, err)
	}
}

func TestCreateAndUpdateGroupValidation(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Instances = fakeSubnets{fakeInstances: c.Instances.(*fakeInstances), subnets: map[string]string{"subnet-0a": "us-east-1a", "subnet-0b": "us-east-1b"}}
	})
	lt := &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("db")}
	for _, tc := range []struct {
		name    string
		in      as.CreateAutoScalingGroupInput
		code    string
		message string
	}{
		{"no template", as.CreateAutoScalingGroupInput{MinSize: aws.Int32(0), MaxSize: aws.Int32(1), AvailabilityZones: testZones}, "ValidationError", "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter."},
		{"desired out of range", as.CreateAutoScalingGroupInput{LaunchTemplate: lt, MinSize: aws.Int32(1), MaxSize: aws.Int32(3), DesiredCapacity: aws.Int32(5), AvailabilityZones: testZones}, "ValidationError", "Desired capacity:5 must be between the specified min size:1 and max size:3"},
		{"no zones", as.CreateAutoScalingGroupInput{LaunchTemplate: lt, MinSize: aws.Int32(0), MaxSize: aws.Int32(1)}, "ValidationError", "At least one Availability Zone or VPC Subnet is required."},
		{"unknown zone", as.CreateAutoScalingGroupInput{LaunchTemplate: lt, MinSize: aws.Int32(0), MaxSize: aws.Int32(1), AvailabilityZones: []string{"us-west-2a"}}, "ValidationError", ""},
		{"unknown subnet", as.CreateAutoScalingGroupInput{LaunchTemplate: lt, MinSize: aws.Int32(0), MaxSize: aws.Int32(1), VPCZoneIdentifier: aws.String("subnet-0zz")}, "ValidationError", "The subnet ID 'subnet-0zz' does not exist"},
		{"bad health check", as.CreateAutoScalingGroupInput{LaunchTemplate: lt, MinSize: aws.Int32(0), MaxSize: aws.Int32(1), AvailabilityZones: testZones, HealthCheckType: aws.String("PING")}, "ValidationError", ""},
		{"ok with subnets and zone names", as.CreateAutoScalingGroupInput{LaunchTemplate: lt, MinSize: aws.Int32(0), MaxSize: aws.Int32(4), DesiredCapacity: aws.Int32(3), VPCZoneIdentifier: aws.String("subnet-0a, subnet-0b,us-east-1c")}, "", ""},
		{"exists", as.CreateAutoScalingGroupInput{LaunchTemplate: lt, MinSize: aws.Int32(0), MaxSize: aws.Int32(1), AvailabilityZones: testZones}, "AlreadyExists", "AutoScalingGroup by this name already exists - A group with the name db already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.AutoScalingGroupName = aws.String("db")
			_, err := h.as.CreateAutoScalingGroup(h.ctx, &tc.in)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			apiError(t, err, tc.code, tc.message)
			if tc.code == "AlreadyExists" {
				var exists *types.AlreadyExistsFault
				if !errors.As(err, &exists) {
					t.Fatalf("error %T is not the SDK's modeled AlreadyExistsFault", err)
				}
			}
		})
	}
	h.step()
	g := h.group("db")
	if got := zoneCounts(g.Instances); len(got) != 3 || aws.ToString(g.VPCZoneIdentifier) == "" || aws.ToString(g.LaunchTemplate.Version) != "$Default" {
		t.Fatalf("group = %+v, zones %v", g, got)
	}
	for _, l := range h.ec2.Launches {
		if want := map[string]string{"us-east-1a": "subnet-0a", "us-east-1b": "subnet-0b"}[l.Zone]; l.SubnetID != want {
			t.Fatalf("launch into %s with subnet %q, want %q", l.Zone, l.SubnetID, want)
		}
	}
	for _, a := range h.activities("db") {
		if strings.Contains(aws.ToString(a.Details), "us-east-1a") && !strings.Contains(aws.ToString(a.Details), `"Subnet ID":"subnet-0a"`) {
			t.Fatalf("details = %s", aws.ToString(a.Details))
		}
	}

	// Update: new bounds pull the desired capacity in.
	if _, err := h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("db"), MaxSize: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	if g := h.group("db"); aws.ToInt32(g.DesiredCapacity) != 2 {
		t.Fatalf("desired = %d, want 2", aws.ToInt32(g.DesiredCapacity))
	}
	_, err := h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("db"), MinSize: aws.Int32(3)})
	apiError(t, err, "ValidationError", "")
	if g := h.group("db"); aws.ToInt32(g.MinSize) != 0 {
		t.Fatal("a rejected update changed the group")
	}
	_, err = h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("nope"), MinSize: aws.Int32(3)})
	apiError(t, err, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup nope not found")
}

func TestFaultInjection(t *testing.T) {
	h := newHarness(t)
	h.faults.set("DescribeAutoScalingGroups", &awsproto.Error{Code: "Throttling", Message: "Rate exceeded", Status: http.StatusBadRequest})
	h.faults.set("SetDesiredCapacity", errors.New("disk on fire"))
	h.createGroup("web", 0, 2, 0)

	_, err := h.as.DescribeAutoScalingGroups(h.ctx, &as.DescribeAutoScalingGroupsInput{})
	apiError(t, err, "Throttling", "Rate exceeded")
	_, err = h.as.SetDesiredCapacity(h.ctx, &as.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(1)})
	apiError(t, err, "InternalFailure", "disk on fire")
	if !slices.Contains(h.faults.Calls, "autoscaling:CreateAutoScalingGroup") {
		t.Fatalf("fault injector calls = %v", h.faults.Calls)
	}
	// The injected failure changed nothing.
	h.faults.set("DescribeAutoScalingGroups", nil)
	if g := h.group("web"); aws.ToInt32(g.DesiredCapacity) != 0 {
		t.Fatalf("desired = %d", aws.ToInt32(g.DesiredCapacity))
	}
}

func TestPublishFailureIsRetried(t *testing.T) {
	h := newHarness(t)
	h.pub.NextErr = errors.New("eventbridge down")
	h.createGroup("db", 0, 1, 1, withHook("handover", events.TransitionLaunching, 300, "ABANDON", ""))
	if err := h.svc.Step(h.ctx); err == nil || !strings.Contains(err.Error(), "eventbridge down") {
		t.Fatalf("Step error = %v", err)
	}
	if n := len(h.pub.Events); n != 0 {
		t.Fatalf("%d events published", n)
	}
	h.step()
	if n := len(h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action")); n != 1 {
		t.Fatalf("%d lifecycle events after the retry, want 1", n)
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, func(c *Config) { c.DataDir = dir })
	h.createGroup("db", 0, 3, 2, withTargetGroup, withHook("handover", events.TransitionLaunching, 300, "ABANDON", metadata))
	// The event outbox survives too: the first publish fails, and the
	// restarted service sends it.
	h.pub.NextErr = errors.New("eventbridge down")
	_ = h.svc.Step(h.ctx)
	before := h.group("db")
	if len(before.Instances) != 2 {
		t.Fatalf("%d instances", len(before.Instances))
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %v; want only %s", entries, stateFile)
	}

	h.start() // a new Service from the same directory
	after := h.group("db")
	if aws.ToString(after.AutoScalingGroupARN) != aws.ToString(before.AutoScalingGroupARN) || fmt.Sprint(ids(after.Instances)) != fmt.Sprint(ids(before.Instances)) {
		t.Fatalf("after restart: %+v", after)
	}
	for _, i := range after.Instances {
		if i.LifecycleState != types.LifecycleStatePendingWait {
			t.Fatalf("instance %s is %s after restart", aws.ToString(i.InstanceId), i.LifecycleState)
		}
	}
	h.step() // publishes the events the first service could not
	evs := h.pub.decoded(t, "EC2 Instance-launch Lifecycle Action")
	if len(evs) != 2 {
		t.Fatalf("%d lifecycle events after restart, want 2", len(evs))
	}
	// The tokens issued before the restart still complete the actions.
	for _, e := range evs {
		if _, err := h.as.CompleteLifecycleAction(h.ctx, &as.CompleteLifecycleActionInput{
			AutoScalingGroupName: aws.String("db"), LifecycleHookName: aws.String("handover"),
			LifecycleActionToken: aws.String(e.Lifecycle.Token), LifecycleActionResult: aws.String("CONTINUE"),
		}); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	h.step()
	if got := h.states("db"); got[types.LifecycleStateInService] != 2 {
		t.Fatalf("states = %v", got)
	}
	hooks, err := h.as.DescribeLifecycleHooks(h.ctx, &as.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("db")})
	if err != nil || len(hooks.LifecycleHooks) != 1 || aws.ToString(hooks.LifecycleHooks[0].NotificationMetadata) != metadata {
		t.Fatalf("hooks after restart = %+v %v", hooks, err)
	}
	if n := len(h.activities("db")); n != 2 {
		t.Fatalf("%d activities after restart", n)
	}

	// A corrupt file is refused with a way out.
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(h.cfg); err == nil || !strings.Contains(err.Error(), "move the file away") {
		t.Fatalf("New on a corrupt file: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Region: testRegion, AccountID: testAccount, Instances: newFakeInstances(nil)}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"region", func(c *Config) { c.Region = "moon" }, "region"},
		{"account", func(c *Config) { c.AccountID = "42" }, "account"},
		{"instances", func(c *Config) { c.Instances = nil }, "Instances"},
		{"tick", func(c *Config) { c.Tick = -time.Second }, "tick"},
		{"launch batch delay", func(c *Config) { c.LaunchBatchDelay = -time.Second }, "launch batch delay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestStartAndClose(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Tick = time.Millisecond })
	h.svc.Start(h.ctx)
	h.createGroup("web", 0, 3, 2)
	deadline := time.Now().Add(10 * time.Second)
	for h.states("web")[types.LifecycleStateInService] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the controller did not fill the group: %v", h.states("web"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := h.svc.Close(); err != nil {
		t.Fatal(err)
	}
	h.setDesired("web", 3)
	time.Sleep(20 * time.Millisecond)
	if n := len(h.instances("web")); n != 2 {
		t.Fatalf("%d instances after Close, want the controller stopped at 2", n)
	}
	h.svc.Start(h.ctx) // does nothing once closed
	time.Sleep(20 * time.Millisecond)
	if n := len(h.instances("web")); n != 2 {
		t.Fatalf("%d instances after a Start following Close", n)
	}
}
