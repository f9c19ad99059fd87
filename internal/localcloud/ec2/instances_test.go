package ec2_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

var bootLine = regexp.MustCompile(`booted (i-[0-9a-f]+) ip=(\S+) imds=(\S+) img=(\S+)`)

func TestInstanceLifecycle(t *testing.T) {
	e := newEnv(t)
	inst := e.runInstance(zoneB, "", "Name", "db-1")
	id := aws.ToString(inst.InstanceId)
	if inst.State.Name != types.InstanceStateNamePending || aws.ToString(inst.Placement.AvailabilityZone) != zoneB || inst.InstanceType != "m1.small" {
		t.Errorf("RunInstances answered %+v", inst)
	}
	ip := aws.ToString(inst.PrivateIpAddress)
	if !strings.HasPrefix(ip, "127.") || ip == "127.0.0.1" {
		t.Errorf("private ip %q, want a loopback address other than 127.0.0.1", ip)
	}
	w := awsec2.NewInstanceRunningWaiter(e.client, func(o *awsec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(ctx(t), &awsec2.DescribeInstancesInput{InstanceIds: []string{id}}, waitLonger); err != nil {
		t.Fatal(err)
	}
	m := bootLine.FindStringSubmatch(e.console(id, "booted", 1))
	if m == nil || m[1] != id || m[2] != ip || m[4] != "from-image" || !strings.HasPrefix(m[3], "http://127.0.0.1:") {
		t.Fatalf("the instance booted with %q", m)
	}
	e.processAlive(id, true)

	// Stop: the process goes, the state follows EC2's.
	stop, err := e.client.StopInstances(ctx(t), &awsec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if c := stop.StoppingInstances[0]; c.PreviousState.Name != types.InstanceStateNameRunning || c.CurrentState.Name != types.InstanceStateNameStopping {
		t.Errorf("StopInstances answered %+v", c)
	}
	stopped := awsec2.NewInstanceStoppedWaiter(e.client, func(o *awsec2.InstanceStoppedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	if err := stopped.Wait(ctx(t), &awsec2.DescribeInstancesInput{InstanceIds: []string{id}}, waitLonger); err != nil {
		t.Fatal(err)
	}
	e.processAlive(id, false)
	_, err = e.client.StopInstances(ctx(t), &awsec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Errorf("stopping a stopped instance: %v", err)
	}

	// Start: booted again, same address.
	start, err := e.client.StartInstances(ctx(t), &awsec2.StartInstancesInput{InstanceIds: []string{id}})
	if err != nil || start.StartingInstances[0].CurrentState.Name != types.InstanceStateNamePending {
		t.Fatalf("StartInstances: %+v %v", start, err)
	}
	if got := e.waitInstance(id, types.InstanceStateNameRunning); aws.ToString(got.PrivateIpAddress) != ip {
		t.Errorf("address after restart %s, want %s", aws.ToString(got.PrivateIpAddress), ip)
	}
	e.console(id, "booted", 2)
	e.processAlive(id, true)

	// Terminate: killed, and still described for a while.
	term, err := e.client.TerminateInstances(ctx(t), &awsec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil || term.TerminatingInstances[0].CurrentState.Name != types.InstanceStateNameShuttingDown {
		t.Fatalf("TerminateInstances: %+v %v", term, err)
	}
	e.waitInstance(id, types.InstanceStateNameTerminated)
	e.processAlive(id, false)
	_, err = e.client.StartInstances(ctx(t), &awsec2.StartInstancesInput{InstanceIds: []string{id}})
	wantCode(t, err, "IncorrectInstanceState")
	if _, err := e.client.TerminateInstances(ctx(t), &awsec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Errorf("terminating a terminated instance: %v", err)
	}

	evs := e.pub.waitFor(t, 8, forInstance(id))
	want := []string{"pending", "running", "stopping", "stopped", "pending", "running", "shutting-down", "terminated"}
	if got := instanceStates(evs); !slices.Equal(got, want) {
		t.Errorf("state events %v, want %v", got, want)
	}
	if evs[0].Resources[0] != "arn:aws:ec2:us-east-1:"+ec2.DefaultAccountID+":instance/"+id {
		t.Errorf("event resources %v", evs[0].Resources)
	}
}

func TestInstanceMetadata(t *testing.T) {
	e := newEnv(t)
	inst := e.runInstance(zoneA, "")
	id := aws.ToString(inst.InstanceId)
	e.waitInstance(id, types.InstanceStateNameRunning)
	endpoint := bootLine.FindStringSubmatch(e.console(id, "booted", 1))[3]

	client := imds.New(imds.Options{Endpoint: endpoint})
	get := func(p string) string {
		t.Helper()
		out, err := client.GetMetadata(ctx(t), &imds.GetMetadataInput{Path: p})
		if err != nil {
			t.Fatalf("GetMetadata %s: %v", p, err)
		}
		defer out.Content.Close()
		b, _ := io.ReadAll(out.Content)
		return string(b)
	}
	for p, want := range map[string]string{
		"instance-id":                 id,
		"placement/availability-zone": zoneA,
		"placement/region":            "us-east-1",
		"local-ipv4":                  aws.ToString(inst.PrivateIpAddress),
		"ami-id":                      testAMI,
		"block-device-mapping/ami":    "/dev/xvda",
	} {
		if got := get(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	doc, err := client.GetInstanceIdentityDocument(ctx(t), &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		t.Fatal(err)
	}
	if d := doc.InstanceIdentityDocument; d.InstanceID != id || d.AvailabilityZone != zoneA || d.Region != "us-east-1" || d.AccountID != ec2.DefaultAccountID || d.ImageID != testAMI {
		t.Errorf("identity document %+v", d)
	}
	if r, err := client.GetRegion(ctx(t), &imds.GetRegionInput{}); err != nil || r.Region != "us-east-1" {
		t.Errorf("GetRegion: %v %v", r, err)
	}

	vol := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	if _, err := e.client.AttachVolume(ctx(t), &awsec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(id), Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	if got := get("block-device-mapping/"); got != "ami\nebs1\nroot" {
		t.Errorf("block-device-mapping/ = %q", got)
	}
	if got := get("block-device-mapping/ebs1"); got != "sdf" {
		t.Errorf("block-device-mapping/ebs1 = %q, want sdf", got)
	}

	// IMDSv2 only: no token, no answer.
	resp, err := http.Get(endpoint + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without a token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPut, endpoint+"/latest/api/token", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("token without a TTL: %d, want 400", resp.StatusCode)
	}
}

func TestUserData(t *testing.T) {
	e := newEnv(t)
	script := "#!/bin/sh\necho \"user data ran in $PWD\"\necho hello > $HANDOVER_INSTANCE_DIR/marker\neval \"exec $HANDOVER_IMAGE_COMMAND\"\n"
	inst := e.runInstance("", script)
	id := aws.ToString(inst.InstanceId)
	e.waitInstance(id, types.InstanceStateNameRunning)
	log := e.console(id, "booted "+id, 1)
	if !strings.Contains(log, "user data ran in "+e.instanceDir(id)) {
		t.Errorf("console.log:\n%s", log)
	}
	if b, err := os.ReadFile(filepath.Join(e.instanceDir(id), "marker")); err != nil || string(b) != "hello\n" {
		t.Errorf("marker: %q %v", b, err)
	}
	e.processAlive(id, true)
}

func TestRunInstancesErrorsAndPaging(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		in   awsec2.RunInstancesInput
		code string
	}{
		{"unknown image", awsec2.RunInstancesInput{ImageId: aws.String("ami-0fffffffffffffff0"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}, "InvalidAMIID.NotFound"},
		{"malformed image", awsec2.RunInstancesInput{ImageId: aws.String("ami-x"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}, "InvalidAMIID.Malformed"},
		{"min above max", awsec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(3), MaxCount: aws.Int32(2)}, "InvalidParameterValue"},
		{"bad zone", awsec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), Placement: &types.Placement{AvailabilityZone: aws.String("us-west-2a")}}, "InvalidParameterValue"},
		{"bad user data", awsec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), UserData: aws.String("%%%")}, "InvalidParameterValue"},
		{"unknown template", awsec2.RunInstancesInput{LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("nope")}, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}, "InvalidLaunchTemplateName.NotFoundException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.RunInstances(ctx(t), &tc.in)
			wantCode(t, err, tc.code)
		})
	}

	run, err := e.client.RunInstances(ctx(t), &awsec2.RunInstancesInput{
		ImageId: aws.String(testAMI), MinCount: aws.Int32(6), MaxCount: aws.Int32(6), ClientToken: aws.String("six"),
		TagSpecifications: tagSpec(types.ResourceTypeInstance, "fleet", "six"),
	})
	if err != nil || len(run.Instances) != 6 {
		t.Fatalf("RunInstances of 6: %v", err)
	}
	ips := map[string]bool{}
	for _, in := range run.Instances {
		ips[aws.ToString(in.PrivateIpAddress)] = true
	}
	if len(ips) != 6 {
		t.Errorf("6 instances share addresses: %v", ips)
	}
	again, err := e.client.RunInstances(ctx(t), &awsec2.RunInstancesInput{
		ImageId: aws.String(testAMI), MinCount: aws.Int32(6), MaxCount: aws.Int32(6), ClientToken: aws.String("six"),
		TagSpecifications: tagSpec(types.ResourceTypeInstance, "fleet", "six"),
	})
	if err != nil || aws.ToString(again.ReservationId) != aws.ToString(run.ReservationId) {
		t.Errorf("repeated RunInstances: %v, reservation %s want %s", err, aws.ToString(again.ReservationId), aws.ToString(run.ReservationId))
	}
	_, err = e.client.RunInstances(ctx(t), &awsec2.RunInstancesInput{ImageId: aws.String(testAMI), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String("six")})
	wantCode(t, err, "IdempotentParameterMismatch")

	var ids []string
	pages := 0
	p := awsec2.NewDescribeInstancesPaginator(e.client, &awsec2.DescribeInstancesInput{
		MaxResults: aws.Int32(5), Filters: []types.Filter{{Name: aws.String("tag:fleet"), Values: []string{"six"}}},
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range out.Reservations {
			if aws.ToString(r.ReservationId) != aws.ToString(run.ReservationId) {
				t.Errorf("reservation %s, want %s", aws.ToString(r.ReservationId), aws.ToString(run.ReservationId))
			}
			for _, in := range r.Instances {
				ids = append(ids, aws.ToString(in.InstanceId))
			}
		}
	}
	if pages != 2 || len(ids) != 6 {
		t.Errorf("%d pages with %d instances, want 2 with 6", pages, len(ids))
	}
	for _, tc := range []struct {
		name   string
		filter types.Filter
		want   int
	}{
		{"state", types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}, 6},
		{"zone", types.Filter{Name: aws.String("availability-zone"), Values: []string{zoneA, zoneB, "us-east-1c"}}, 6},
		{"tag-key", types.Filter{Name: aws.String("tag-key"), Values: []string{"fleet"}}, 6},
		{"id", types.Filter{Name: aws.String("instance-id"), Values: []string{ids[0]}}, 1},
		{"terminated", types.Filter{Name: aws.String("instance-state-name"), Values: []string{"terminated"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.client.DescribeInstances(ctx(t), &awsec2.DescribeInstancesInput{Filters: []types.Filter{tc.filter}})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
			if n != tc.want {
				t.Errorf("got %d instances, want %d", n, tc.want)
			}
		})
	}
	_, err = e.client.DescribeInstances(ctx(t), &awsec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = e.client.StopInstances(ctx(t), &awsec2.StopInstancesInput{InstanceIds: []string{ids[0], "i-0123456789abcdef0"}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
}

func TestDescribeAvailabilityZones(t *testing.T) {
	e := newEnv(t)
	out, err := e.client.DescribeAvailabilityZones(ctx(t), &awsec2.DescribeAvailabilityZonesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, z := range out.AvailabilityZones {
		names = append(names, aws.ToString(z.ZoneName))
		if z.State != types.AvailabilityZoneStateAvailable || aws.ToString(z.RegionName) != "us-east-1" {
			t.Errorf("zone %+v", z)
		}
	}
	if !slices.Equal(names, []string{"us-east-1a", "us-east-1b", "us-east-1c"}) || !slices.Equal(names, e.svc.Zones()) {
		t.Errorf("zones %v", names)
	}
	out, err = e.client.DescribeAvailabilityZones(ctx(t), &awsec2.DescribeAvailabilityZonesInput{ZoneNames: []string{zoneB}})
	if err != nil || len(out.AvailabilityZones) != 1 || aws.ToString(out.AvailabilityZones[0].ZoneId) != "use1-az2" {
		t.Errorf("zone b: %+v %v", out, err)
	}
	_, err = e.client.DescribeAvailabilityZones(ctx(t), &awsec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"us-east-1q"}})
	wantCode(t, err, "InvalidParameterValue")
}

func TestInProcessLaunch(t *testing.T) {
	e := newEnv(t)
	lt, err := e.client.CreateLaunchTemplate(ctx(t), &awsec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("db-template"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeT3Micro},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.svc.Launch(ctx(t), ec2.LaunchRequest{
		LaunchTemplateID: aws.ToString(lt.LaunchTemplate.LaunchTemplateId), Version: "$Latest", Zone: zoneB,
		Tags: map[string]string{"aws:autoscaling:groupName": "db-asg"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "pending" || info.Zone != zoneB || info.Tags["aws:autoscaling:groupName"] != "db-asg" || info.LaunchTime.IsZero() {
		t.Errorf("Launch gave %+v", info)
	}
	e.processAlive(info.ID, true)
	got, err := e.svc.Instance(ctx(t), info.ID)
	if err != nil || got.State != "running" || got.PrivateIP != info.PrivateIP {
		t.Errorf("Instance: %+v %v", got, err)
	}
	described := e.waitInstance(info.ID, types.InstanceStateNameRunning)
	if described.InstanceType != types.InstanceTypeT3Micro {
		t.Errorf("instance type %s, want the template's", described.InstanceType)
	}
	if err := e.svc.Terminate(ctx(t), info.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Terminate(ctx(t), info.ID); err != nil {
		t.Errorf("terminating twice: %v", err)
	}
	e.waitInstance(info.ID, types.InstanceStateNameTerminated)
	e.processAlive(info.ID, false)
	if _, err := e.svc.Instance(ctx(t), "i-0123456789abcdef0"); err == nil {
		t.Error("Instance of an unknown id succeeded")
	}
	if _, err := e.svc.Launch(ctx(t), ec2.LaunchRequest{LaunchTemplateName: "nope"}); err == nil {
		t.Error("Launch from an unknown template succeeded")
	}
	e.pub.waitFor(t, 4, func(ev *events.Event) bool {
		return ev.Kind == events.KindInstanceState && ev.InstanceState.InstanceID == info.ID
	})
}

func TestTerminatedInstancesAreForgotten(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	e := newEnv(t, func(c *ec2.Config) { c.Clock = clk; c.TerminatedRetention = time.Hour })
	id := aws.ToString(e.runInstance(zoneA, "").InstanceId)
	got := e.waitInstance(id, types.InstanceStateNameRunning)
	if !got.LaunchTime.Equal(clk.Now()) {
		t.Errorf("launch time %v, want the injected clock's %v", got.LaunchTime, clk.Now())
	}
	if err := e.svc.Terminate(ctx(t), id); err != nil {
		t.Fatal(err)
	}
	e.waitInstance(id, types.InstanceStateNameTerminated)
	clk.Advance(59 * time.Minute)
	e.waitInstance(id, types.InstanceStateNameTerminated)
	clk.Advance(2 * time.Minute)
	_, err := e.client.DescribeInstances(ctx(t), &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	if _, err := e.svc.Instance(ctx(t), id); err == nil {
		t.Error("Instance still knows a forgotten instance")
	}
	// Its address is free again.
	again := e.runInstance(zoneA, "")
	if aws.ToString(again.PrivateIpAddress) != aws.ToString(got.PrivateIpAddress) {
		t.Errorf("new instance got %s, want the freed %s", aws.ToString(again.PrivateIpAddress), aws.ToString(got.PrivateIpAddress))
	}
}
