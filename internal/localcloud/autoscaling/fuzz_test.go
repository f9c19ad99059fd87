package autoscaling

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/clock"
)

func serve(svc *Service, method, target, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	rec := httptest.NewRecorder()
	svc.ServeHTTP(rec, req)
	return rec
}

func TestRequestErrors(t *testing.T) {
	c := clock.NewFake(epoch)
	svc, err := New(Config{Region: testRegion, AccountID: testAccount, Instances: newFakeInstances(c, testZones...), Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, target, body string
		status                     int
		code                       string
	}{
		{"no action", http.MethodPost, "/", "Version=2011-01-01", 400, "MissingAction"},
		{"unknown action", http.MethodPost, "/", "Action=AttachInstances&Version=2011-01-01", 400, "InvalidAction"},
		{"other version", http.MethodPost, "/", "Action=DescribeAutoScalingGroups&Version=2010-08-01", 400, "InvalidAction"},
		{"missing parameter", http.MethodPost, "/", "Action=SetDesiredCapacity&Version=2011-01-01&DesiredCapacity=1", 400, "ValidationError"},
		{"not a number", http.MethodPost, "/", "Action=SetDesiredCapacity&Version=2011-01-01&AutoScalingGroupName=x&DesiredCapacity=many", 400, "ValidationError"},
		{"method", http.MethodDelete, "/", "", 405, "InvalidAction"},
		{"GET with a query string", http.MethodGet, "/?Action=DescribeAutoScalingGroups&Version=2011-01-01", "", 200, ""},
		{"heartbeat needs a token or instance", http.MethodPost, "/", "Action=RecordLifecycleActionHeartbeat&Version=2011-01-01&AutoScalingGroupName=x&LifecycleHookName=h", 400, "ValidationError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(svc, tc.method, tc.target, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.code != "" && !strings.Contains(rec.Body.String(), "<Code>"+tc.code+"</Code>") {
				t.Fatalf("body %s, want code %s", rec.Body, tc.code)
			}
		})
	}
}

// FuzzServeHTTP feeds arbitrary requests to the service, running the
// controller after each: nothing may panic, and every answer is an XML
// document with a status the SDKs understand.
func FuzzServeHTTP(f *testing.F) {
	for _, seed := range []string{
		"Action=DescribeAutoScalingGroups&Version=2011-01-01&AutoScalingGroupNames.member.1=my-asg",
		"Action=CreateAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=g&LaunchTemplate.LaunchTemplateName=t&MinSize=0&MaxSize=3&DesiredCapacity=2&AvailabilityZones.member.1=us-east-1a&LifecycleHookSpecificationList.member.1.LifecycleHookName=h&LifecycleHookSpecificationList.member.1.LifecycleTransition=autoscaling:EC2_INSTANCE_LAUNCHING",
		"Action=CreateAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=g&LaunchTemplate.LaunchTemplateId=lt-1&MinSize=0&MaxSize=3&VPCZoneIdentifier=us-east-1b,us-east-1c&Tags.member.1.Key=k",
		"Action=CompleteLifecycleAction&Version=2011-01-01&LifecycleHookName=h&AutoScalingGroupName=g&LifecycleActionResult=CONTINUE&InstanceId=i-00000000000000001",
		"Action=SetDesiredCapacity&Version=2011-01-01&AutoScalingGroupName=g&DesiredCapacity=0",
		"Action=EnterStandby&Version=2011-01-01&AutoScalingGroupName=g&InstanceIds.member.1=i-00000000000000002&ShouldDecrementDesiredCapacity=true",
		"Action=DeleteAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=g&ForceDelete=true",
		"Action=DescribeScalingActivities&Version=2011-01-01&NextToken=YWN0aXZpdGllcwB4",
		"Action=PutLifecycleHook&Version=2011-01-01&AutoScalingGroupName=g&LifecycleHookName=t&LifecycleTransition=autoscaling:EC2_INSTANCE_TERMINATING&HeartbeatTimeout=30",
		"Action=PutLifecycleHook&Version=2011-01-01&AutoScalingGroupName=g&LifecycleHookName=n&LifecycleTransition=autoscaling:EC2_INSTANCE_LAUNCHING&NotificationTargetARN=arn:aws:sqs:us-east-1:123456789012:q&RoleARN=arn:aws:iam::123456789012:role/r",
		"Action=CreateLaunchConfiguration&Version=2011-01-01&LaunchConfigurationName=lc&ImageId=ami-0123456789abcdef0&InstanceType=t3.micro&UserData=IyEvYmluL3NoCg==",
		"Action=CreateAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=c&LaunchConfigurationName=lc&MinSize=0&MaxSize=2&DesiredCapacity=1&AvailabilityZones.member.1=us-east-1a",
		"Action=DescribeLaunchConfigurations&Version=2011-01-01&MaxRecords=1&LaunchConfigurationNames.member.1=lc",
		"Action=DeleteLaunchConfiguration&Version=2011-01-01&LaunchConfigurationName=lc",
	} {
		f.Add(seed)
	}
	c := clock.NewFake(epoch)
	svc, err := New(Config{Region: testRegion, AccountID: testAccount, Instances: newFakeInstances(c, testZones...), Publisher: &fakePublisher{},
		Notifier: newFakeNotifier("arn:aws:sqs:us-east-1:123456789012:q"), Clock: c})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		rec := serve(svc, http.MethodPost, "/", body)
		if rec.Code != 200 && (rec.Code < 400 || rec.Code > 599) {
			t.Fatalf("status %d", rec.Code)
		}
		if err := xml.Unmarshal(rec.Body.Bytes(), new(struct{})); err != nil {
			t.Fatalf("answer is not XML: %v\n%s", err, rec.Body)
		}
		_ = svc.Step(context.Background())
	})
}
