package autoscaling

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

const testAMI = "ami-0123456789abcdef0"

func (h *harness) createLaunchConfiguration(name, image, userData string) {
	h.t.Helper()
	in := &as.CreateLaunchConfigurationInput{LaunchConfigurationName: aws.String(name), ImageId: aws.String(image), InstanceType: aws.String("t3.micro")}
	if userData != "" {
		in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(userData)))
	}
	if _, err := h.as.CreateLaunchConfiguration(h.ctx, in); err != nil {
		h.t.Fatalf("CreateLaunchConfiguration %s: %v", name, err)
	}
}

func withConfiguration(name string) groupOpt {
	return func(in *as.CreateAutoScalingGroupInput) {
		in.LaunchTemplate, in.LaunchConfigurationName = nil, aws.String(name)
	}
}

func TestLaunchConfigurationAPI(t *testing.T) {
	h := newHarness(t)
	if _, err := h.as.CreateLaunchConfiguration(h.ctx, &as.CreateLaunchConfigurationInput{
		LaunchConfigurationName: aws.String("db-v1"), ImageId: aws.String(testAMI), InstanceType: aws.String("m5.large"),
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n"))),
		KeyName:  aws.String("ops"), SecurityGroups: []string{"sg-0a", "sg-0b"},
		IamInstanceProfile: aws.String("handover-instance"), InstanceMonitoring: &types.InstanceMonitoring{Enabled: aws.Bool(false)},
		AssociatePublicIpAddress: aws.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
	out, err := h.as.DescribeLaunchConfigurations(h.ctx, &as.DescribeLaunchConfigurationsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.LaunchConfigurations) != 1 {
		t.Fatalf("%d launch configurations", len(out.LaunchConfigurations))
	}
	lc := out.LaunchConfigurations[0]
	arn := regexp.MustCompile(`^arn:aws:autoscaling:us-east-1:123456789012:launchConfiguration:[0-9a-f-]{36}:launchConfigurationName/db-v1$`)
	if aws.ToString(lc.LaunchConfigurationName) != "db-v1" || !arn.MatchString(aws.ToString(lc.LaunchConfigurationARN)) ||
		aws.ToString(lc.ImageId) != testAMI || aws.ToString(lc.InstanceType) != "m5.large" || aws.ToString(lc.KeyName) != "ops" ||
		fmt.Sprint(lc.SecurityGroups) != "[sg-0a sg-0b]" || aws.ToString(lc.IamInstanceProfile) != "handover-instance" ||
		aws.ToBool(lc.InstanceMonitoring.Enabled) || !aws.ToBool(lc.AssociatePublicIpAddress) || !aws.ToTime(lc.CreatedTime).Equal(epoch) {
		t.Fatalf("described %+v", lc)
	}
	if ud, _ := base64.StdEncoding.DecodeString(aws.ToString(lc.UserData)); string(ud) != "#!/bin/sh\necho hi\n" {
		t.Fatalf("user data %q", aws.ToString(lc.UserData))
	}

	_, err = h.as.CreateLaunchConfiguration(h.ctx, &as.CreateLaunchConfigurationInput{LaunchConfigurationName: aws.String("db-v1"), ImageId: aws.String(testAMI), InstanceType: aws.String("m5.large")})
	apiError(t, err, "AlreadyExists", "Launch Configuration by this name already exists - A launch configuration already exists with the name db-v1")
	var exists *types.AlreadyExistsFault
	if !errors.As(err, &exists) {
		t.Fatalf("error %T is not the SDK's modeled AlreadyExistsFault", err)
	}
	for _, tc := range []struct {
		name string
		in   as.CreateLaunchConfigurationInput
		msg  string
	}{
		{"no image", as.CreateLaunchConfigurationInput{InstanceType: aws.String("m5.large")}, "Valid requests must contain either the InstanceID parameter or both the ImageId and InstanceType parameters."},
		{"no instance type", as.CreateLaunchConfigurationInput{ImageId: aws.String(testAMI)}, "Valid requests must contain either the InstanceID parameter or both the ImageId and InstanceType parameters."},
		{"user data not base64", as.CreateLaunchConfigurationInput{ImageId: aws.String(testAMI), InstanceType: aws.String("m5.large"), UserData: aws.String("#!/bin/sh")}, "Invalid BASE64 encoding of user data."},
		{"from an instance", as.CreateLaunchConfigurationInput{InstanceId: aws.String("i-0123456789abcdef0")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.LaunchConfigurationName = aws.String("bad")
			_, err := h.as.CreateLaunchConfiguration(h.ctx, &tc.in)
			apiError(t, err, "ValidationError", tc.msg)
		})
	}

	// Paging over every configuration, and a names filter that leaves
	// unknown names out (no error, as in AWS).
	h.createLaunchConfiguration("db-v2", testAMI, "")
	h.createLaunchConfiguration("db-v3", testAMI, "")
	var names []string
	p := as.NewDescribeLaunchConfigurationsPaginator(h.as, &as.DescribeLaunchConfigurationsInput{MaxRecords: aws.Int32(1)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, lc := range page.LaunchConfigurations {
			names = append(names, aws.ToString(lc.LaunchConfigurationName))
		}
	}
	if pages != 3 || strings.Join(names, ",") != "db-v1,db-v2,db-v3" {
		t.Fatalf("%d pages: %v", pages, names)
	}
	out, err = h.as.DescribeLaunchConfigurations(h.ctx, &as.DescribeLaunchConfigurationsInput{LaunchConfigurationNames: []string{"db-v3", "nope", "db-v1"}})
	if err != nil || len(out.LaunchConfigurations) != 2 || aws.ToString(out.LaunchConfigurations[0].LaunchConfigurationName) != "db-v1" {
		t.Fatalf("filtered: %+v, %v", out, err)
	}
	_, err = h.as.DescribeLaunchConfigurations(h.ctx, &as.DescribeLaunchConfigurationsInput{NextToken: aws.String("garbage")})
	apiError(t, err, "InvalidNextToken", "")
	_, err = h.as.DescribeLaunchConfigurations(h.ctx, &as.DescribeLaunchConfigurationsInput{MaxRecords: aws.Int32(101)})
	apiError(t, err, "ValidationError", "")

	if _, err := h.as.DeleteLaunchConfiguration(h.ctx, &as.DeleteLaunchConfigurationInput{LaunchConfigurationName: aws.String("db-v3")}); err != nil {
		t.Fatal(err)
	}
	_, err = h.as.DeleteLaunchConfiguration(h.ctx, &as.DeleteLaunchConfigurationInput{LaunchConfigurationName: aws.String("db-v3")})
	apiError(t, err, "ValidationError", "Launch configuration name not found - Launch configuration db-v3 not found")
}

// TestGroupOnALaunchConfiguration: a group launches what its configuration
// says, reports it for the group and each instance, keeps the
// configuration from being deleted, and moves between configurations and
// templates with UpdateAutoScalingGroup.
func TestGroupOnALaunchConfiguration(t *testing.T) {
	h := newHarness(t)
	h.createLaunchConfiguration("db-v1", testAMI, "#!/bin/sh\necho v1\n")
	h.createLaunchConfiguration("db-v2", "ami-00000000000000002", "")

	_, err := h.as.CreateAutoScalingGroup(h.ctx, &as.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("db"),
		MinSize: aws.Int32(0), MaxSize: aws.Int32(3), AvailabilityZones: testZones, LaunchConfigurationName: aws.String("nope")})
	apiError(t, err, "ValidationError", "Launch configuration name not found - Launch configuration nope not found")
	_, err = h.as.CreateAutoScalingGroup(h.ctx, &as.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("db"),
		MinSize: aws.Int32(0), MaxSize: aws.Int32(3), AvailabilityZones: testZones, LaunchConfigurationName: aws.String("db-v1"),
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("db")}})
	apiError(t, err, "ValidationError", "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")

	// One zone, so that scale-in below chooses by launch configuration
	// alone (AWS balances zones first).
	h.createGroup("db", 0, 3, 2, withConfiguration("db-v1"), func(in *as.CreateAutoScalingGroupInput) { in.AvailabilityZones = testZones[:1] })
	h.step()
	g := h.group("db")
	if aws.ToString(g.LaunchConfigurationName) != "db-v1" || g.LaunchTemplate != nil || len(g.Instances) != 2 {
		t.Fatalf("group %+v", g)
	}
	for _, l := range h.ec2.Launches {
		c := l.Configuration
		if c == nil || c.Name != "db-v1" || c.ImageID != testAMI || c.InstanceType != "t3.micro" || string(c.UserData) != "#!/bin/sh\necho v1\n" || l.LaunchTemplateID != "" || l.LaunchTemplateName != "" {
			t.Fatalf("launch %+v (configuration %+v)", l, c)
		}
	}
	for _, i := range g.Instances {
		if aws.ToString(i.LaunchConfigurationName) != "db-v1" || i.LaunchTemplate != nil {
			t.Fatalf("instance %+v", i)
		}
	}
	details, err := h.as.DescribeAutoScalingInstances(h.ctx, &as.DescribeAutoScalingInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range details.AutoScalingInstances {
		if aws.ToString(i.LaunchConfigurationName) != "db-v1" {
			t.Fatalf("instance details %+v", i)
		}
	}

	_, err = h.as.DeleteLaunchConfiguration(h.ctx, &as.DeleteLaunchConfigurationInput{LaunchConfigurationName: aws.String("db-v1")})
	apiError(t, err, "ResourceInUse", "Cannot delete launch configuration db-v1 because it is attached to AutoScalingGroup db")
	var inUse *types.ResourceInUseFault
	if !errors.As(err, &inUse) {
		t.Fatalf("error %T is not the SDK's modeled ResourceInUseFault", err)
	}

	// A rejected update changes nothing; a good one moves later launches.
	_, err = h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("db"), LaunchConfigurationName: aws.String("nope"), DesiredCapacity: aws.Int32(3)})
	apiError(t, err, "ValidationError", "Launch configuration name not found - Launch configuration nope not found")
	if g := h.group("db"); aws.ToString(g.LaunchConfigurationName) != "db-v1" || aws.ToInt32(g.DesiredCapacity) != 2 {
		t.Fatalf("a rejected update changed the group: %+v", g)
	}
	if _, err := h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("db"), LaunchConfigurationName: aws.String("db-v2"), DesiredCapacity: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	h.step()
	if l := h.ec2.Launches[2]; l.Configuration == nil || l.Configuration.Name != "db-v2" || l.Configuration.ImageID != "ami-00000000000000002" || len(l.Configuration.UserData) != 0 {
		t.Fatalf("third launch %+v", l)
	}
	// The old configuration is free now, though instances still run it.
	if _, err := h.as.DeleteLaunchConfiguration(h.ctx, &as.DeleteLaunchConfigurationInput{LaunchConfigurationName: aws.String("db-v1")}); err != nil {
		t.Fatal(err)
	}
	// Scale-in takes the instances of the older configuration first.
	newest := h.ec2.nthID(2)
	h.setDesired("db", 1)
	h.step()
	h.step()
	if left := ids(h.instances("db")); fmt.Sprint(left) != "["+newest+"]" {
		t.Fatalf("after scale-in %v, want the db-v2 instance %s", left, newest)
	}

	// To a template: the configuration is no longer the group's, and an
	// instance from a configuration is the first to go from a group on a
	// template.
	if _, err := h.as.UpdateAutoScalingGroup(h.ctx, &as.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("db"),
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String("lt-0123456789abcdef0"), Version: aws.String("1")}, DesiredCapacity: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	h.step()
	if g := h.group("db"); g.LaunchConfigurationName != nil || aws.ToString(g.LaunchTemplate.LaunchTemplateId) != "lt-0123456789abcdef0" {
		t.Fatalf("group %+v", g)
	}
	if l := h.ec2.Launches[len(h.ec2.Launches)-1]; l.Configuration != nil || l.LaunchTemplateID != "lt-0123456789abcdef0" {
		t.Fatalf("launch after moving to a template %+v", l)
	}
	if _, err := h.as.DeleteLaunchConfiguration(h.ctx, &as.DeleteLaunchConfigurationInput{LaunchConfigurationName: aws.String("db-v2")}); err != nil {
		t.Fatal(err)
	}
	h.setDesired("db", 1)
	h.step()
	h.step()
	if left := h.instances("db"); len(left) != 1 || left[0].LaunchTemplate == nil || aws.ToString(left[0].InstanceId) == newest {
		t.Fatalf("after scale-in %+v, want the template's instance kept", left)
	}
}

func TestLaunchConfigurationsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, func(c *Config) { c.DataDir = dir })
	h.createLaunchConfiguration("db-v1", testAMI, "#!/bin/sh\n")
	h.createGroup("db", 0, 3, 1, withConfiguration("db-v1"))
	h.step()
	h.start()
	out, err := h.as.DescribeLaunchConfigurations(h.ctx, &as.DescribeLaunchConfigurationsInput{})
	if err != nil || len(out.LaunchConfigurations) != 1 || !aws.ToTime(out.LaunchConfigurations[0].CreatedTime).Equal(epoch) {
		t.Fatalf("after restart: %+v, %v", out, err)
	}
	if i := h.only("db", types.LifecycleStateInService); aws.ToString(i.LaunchConfigurationName) != "db-v1" {
		t.Fatalf("instance after restart %+v", i)
	}
	h.clock.Advance(time.Second)
	_, err = h.as.DeleteLaunchConfiguration(h.ctx, &as.DeleteLaunchConfigurationInput{LaunchConfigurationName: aws.String("db-v1")})
	apiError(t, err, "ResourceInUse", "")
}
