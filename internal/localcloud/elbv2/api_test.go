package elbv2

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/handover-dev/handover/internal/clock"
)

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st := e.newStack(t, "errs")
	e.inst.Set("i-stopped", "127.0.0.1", false)
	other, err := e.client.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("other-tg"), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(80)})
	if err != nil {
		t.Fatal(err)
	}
	otherTG := other.TargetGroups[0].TargetGroupArn
	missingLB := "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/nope/0000000000000000"
	missingTG := "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nope/0000000000000000"
	forward := func(tg string) []types.Action {
		return []types.Action{{Type: types.ActionTypeEnumForward, TargetGroupArn: aws.String(tg)}}
	}

	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"describe missing lb arn", func() error {
			_, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{missingLB}})
			return err
		}, "LoadBalancerNotFound"},
		{"describe missing lb name", func() error {
			_, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{"nope"}})
			return err
		}, "LoadBalancerNotFound"},
		{"describe missing tg", func() error {
			_, err := e.client.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{missingTG}})
			return err
		}, "TargetGroupNotFound"},
		{"describe listeners of missing lb", func() error {
			_, err := e.client.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(missingLB)})
			return err
		}, "LoadBalancerNotFound"},
		{"delete missing listener", func() error {
			_, err := e.client.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: aws.String(st.listenerARN + "0")})
			return err
		}, "ListenerNotFound"},
		{"delete missing lb succeeds", func() error {
			_, err := e.client.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(missingLB)})
			return err
		}, ""},
		{"deregister unknown target succeeds", func() error {
			_, err := e.client.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(st.tgARN), Targets: []types.TargetDescription{{Id: aws.String("i-never")}}})
			return err
		}, ""},
		{"duplicate lb name, other settings", func() error {
			_, err := e.client.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("errs"), Scheme: types.LoadBalancerSchemeEnumInternal})
			return err
		}, "DuplicateLoadBalancerName"},
		{"duplicate tg name, other settings", func() error {
			_, err := e.client.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("errs-tg"), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(9090)})
			return err
		}, "DuplicateTargetGroupName"},
		{"bad lb name", func() error {
			_, err := e.client.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("-bad")})
			return err
		}, "ValidationError"},
		{"network lb", func() error {
			_, err := e.client.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("nlb"), Type: types.LoadBalancerTypeEnumNetwork})
			return err
		}, "ValidationError"},
		{"bad matcher", func() error {
			_, err := e.client.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("m"), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(80), Matcher: &types.Matcher{HttpCode: aws.String("600")}})
			return err
		}, "ValidationError"},
		{"https target group", func() error {
			_, err := e.client.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("s"), Protocol: types.ProtocolEnumHttps, Port: aws.Int32(443)})
			return err
		}, "UnsupportedProtocol"},
		{"register unknown instance", func() error {
			_, err := e.client.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(st.tgARN), Targets: []types.TargetDescription{{Id: aws.String("i-unknown")}}})
			return err
		}, "InvalidTarget"},
		{"register stopped instance", func() error {
			_, err := e.client.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(st.tgARN), Targets: []types.TargetDescription{{Id: aws.String("i-stopped")}}})
			return err
		}, "InvalidTarget"},
		{"register with missing tg", func() error {
			_, err := e.client.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(missingTG), Targets: []types.TargetDescription{{Id: aws.String("i-stopped")}}})
			return err
		}, "TargetGroupNotFound"},
		{"target health of missing tg", func() error {
			_, err := e.client.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(missingTG)})
			return err
		}, "TargetGroupNotFound"},
		{"delete tg in use", func() error {
			_, err := e.client.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(st.tgARN)})
			return err
		}, "ResourceInUse"},
		{"listener to missing tg", func() error {
			_, err := e.client.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(st.lbARN), Port: aws.Int32(81), Protocol: types.ProtocolEnumHttp, DefaultActions: forward(missingTG)})
			return err
		}, "TargetGroupNotFound"},
		{"listener on a taken port", func() error {
			_, err := e.client.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(st.lbARN), Port: aws.Int32(80), Protocol: types.ProtocolEnumHttp, DefaultActions: forward(*otherTG)})
			return err
		}, "DuplicateListener"},
		{"unknown lb attribute", func() error {
			_, err := e.client.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(st.lbARN), Attributes: []types.LoadBalancerAttribute{{Key: aws.String("no.such"), Value: aws.String("1")}}})
			return err
		}, "ValidationError"},
		{"bad deregistration delay", func() error {
			_, err := e.client.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(st.tgARN), Attributes: []types.TargetGroupAttribute{{Key: aws.String(attrDeregistrationDelay), Value: aws.String("-1")}}})
			return err
		}, "ValidationError"},
		{"access logs to a missing bucket", func() error {
			_, err := e.client.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(st.lbARN), Attributes: []types.LoadBalancerAttribute{
				{Key: aws.String(attrAccessLogsEnabled), Value: aws.String("true")}, {Key: aws.String(attrAccessLogsBucket), Value: aws.String("nobucket")}}})
			return err
		}, "InvalidConfigurationRequest"},
		{"bad page size", func() error {
			_, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{PageSize: aws.Int32(401)})
			return err
		}, "ValidationError"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := apiCode(tc.call()); got != tc.want {
				t.Errorf("error code %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.faults.Set("DescribeLoadBalancers", throttled())
	_, err := e.client.DescribeLoadBalancers(context.Background(), &elb.DescribeLoadBalancersInput{})
	if got := apiCode(err); got != "Throttling" {
		t.Fatalf("error code %q, want Throttling", got)
	}
	if _, err := e.client.DescribeTargetGroups(context.Background(), &elb.DescribeTargetGroupsInput{}); err != nil {
		t.Fatalf("an action without a fault failed: %v", err)
	}
	e.faults.Set("RegisterTargets", throttled())
	if err := e.svc.Register(context.Background(), "arn:whatever", "i-1"); err == nil || !strings.Contains(err.Error(), "Throttling") {
		t.Fatalf("Register with a fault = %v, want Throttling", err)
	}
}

func TestDeletionProtection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st := e.newStack(t, "guarded")
	set := func(v string) {
		t.Helper()
		_, err := e.client.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(st.lbARN),
			Attributes: []types.LoadBalancerAttribute{{Key: aws.String(attrDeletionProtection), Value: aws.String(v)}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	set("true")
	_, err := e.client.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(st.lbARN)})
	if got := apiCode(err); got != "OperationNotPermitted" {
		t.Fatalf("delete with protection: %q, want OperationNotPermitted", got)
	}
	set("false")
	if _, err := e.client.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(st.lbARN)}); err != nil {
		t.Fatalf("delete without protection: %v", err)
	}
}

func TestCreateDescribeDelete(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, withClock(fc), func(c *Config) { c.ProvisioningTime = time.Minute })
	ctx := context.Background()

	created, err := e.client.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Subnets: []string{"subnet-a", "subnet-b"}})
	if err != nil {
		t.Fatal(err)
	}
	lb := created.LoadBalancers[0]
	if lb.State.Code != types.LoadBalancerStateEnumProvisioning {
		t.Errorf("new load balancer state %q, want provisioning", lb.State.Code)
	}
	if !strings.HasPrefix(*lb.LoadBalancerArn, "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/") {
		t.Errorf("ARN %q", *lb.LoadBalancerArn)
	}
	if *lb.DNSName != "127.0.0.1" || lb.Type != types.LoadBalancerTypeEnumApplication || lb.Scheme != types.LoadBalancerSchemeEnumInternetFacing {
		t.Errorf("load balancer %+v", lb)
	}
	if len(lb.AvailabilityZones) != 2 || *lb.AvailabilityZones[1].SubnetId != "subnet-b" {
		t.Errorf("availability zones %+v", lb.AvailabilityZones)
	}
	if !lb.CreatedTime.Equal(fc.Now()) {
		t.Errorf("created %v, want %v", lb.CreatedTime, fc.Now())
	}

	// Same settings: the same load balancer (CreateLoadBalancer is idempotent).
	again, err := e.client.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web")})
	if err != nil || *again.LoadBalancers[0].LoadBalancerArn != *lb.LoadBalancerArn {
		t.Fatalf("repeated create = %v, %v", again, err)
	}

	state := func() types.LoadBalancerStateEnum {
		d, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{"web"}})
		if err != nil {
			t.Fatal(err)
		}
		return d.LoadBalancers[0].State.Code
	}
	if got := state(); got != types.LoadBalancerStateEnumProvisioning {
		t.Errorf("state before ProvisioningTime %q", got)
	}
	fc.Advance(time.Minute)
	if got := state(); got != types.LoadBalancerStateEnumActive {
		t.Errorf("state after ProvisioningTime %q", got)
	}

	tgOut, err := e.client.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{
		Name: aws.String("web-tg"), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(8080), VpcId: aws.String("vpc-1"),
		HealthCheckPath: aws.String("/healthz"), HealthCheckPort: aws.String("9000"), HealthCheckIntervalSeconds: aws.Int32(10),
		HealthyThresholdCount: aws.Int32(3), UnhealthyThresholdCount: aws.Int32(4), Matcher: &types.Matcher{HttpCode: aws.String("200-299")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tg := tgOut.TargetGroups[0]
	if *tg.HealthCheckPath != "/healthz" || *tg.HealthCheckPort != "9000" || *tg.HealthCheckIntervalSeconds != 10 || *tg.HealthCheckTimeoutSeconds != 5 ||
		*tg.HealthyThresholdCount != 3 || *tg.UnhealthyThresholdCount != 4 || *tg.Matcher.HttpCode != "200-299" ||
		tg.TargetType != types.TargetTypeEnumInstance || *tg.Port != 8080 || *tg.VpcId != "vpc-1" || !*tg.HealthCheckEnabled {
		t.Errorf("target group %+v", tg)
	}

	l, err := e.client.CreateListener(ctx, &elb.CreateListenerInput{
		LoadBalancerArn: lb.LoadBalancerArn, Protocol: types.ProtocolEnumHttp, Port: aws.Int32(80),
		DefaultActions: []types.Action{{Type: types.ActionTypeEnumForward, ForwardConfig: &types.ForwardActionConfig{
			TargetGroups: []types.TargetGroupTuple{{TargetGroupArn: tg.TargetGroupArn}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	li := l.Listeners[0]
	// Port 80 is below 1024: a free port is bound and reported instead.
	if *li.Port < 1024 || len(li.DefaultActions) != 1 || *li.DefaultActions[0].TargetGroupArn != *tg.TargetGroupArn || li.DefaultActions[0].Type != types.ActionTypeEnumForward {
		t.Errorf("listener %+v", li)
	}
	byLB, err := e.client.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{LoadBalancerArn: lb.LoadBalancerArn})
	if err != nil || len(byLB.TargetGroups) != 1 || byLB.TargetGroups[0].LoadBalancerArns[0] != *lb.LoadBalancerArn {
		t.Fatalf("target groups of the load balancer = %+v, %v", byLB, err)
	}

	// Attributes: defaults, then a change.
	attrs, err := e.client.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerArn: lb.LoadBalancerArn})
	if err != nil {
		t.Fatal(err)
	}
	if got := lbAttr(attrs.Attributes, attrAccessLogsEnabled); got != "false" {
		t.Errorf("%s = %q, want false", attrAccessLogsEnabled, got)
	}
	tga, err := e.client.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: tg.TargetGroupArn,
		Attributes: []types.TargetGroupAttribute{{Key: aws.String(attrDeregistrationDelay), Value: aws.String("5")}}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range tga.Attributes {
		found = found || (*a.Key == attrDeregistrationDelay && *a.Value == "5")
	}
	if !found {
		t.Errorf("modified attributes %+v lack the new delay", tga.Attributes)
	}

	// Deleting the load balancer closes its listener and frees the group.
	url := e.lbURL(t, *lb.LoadBalancerArn)
	if _, err := e.client.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: lb.LoadBalancerArn}); err != nil {
		t.Fatal(err)
	}
	if _, err := lbClient.Get(url); err == nil {
		t.Errorf("listener %s still answers after its load balancer was deleted", url)
	}
	if _, err := e.client.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: tg.TargetGroupArn}); err != nil {
		t.Fatalf("deleting the freed group: %v", err)
	}
	if _, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{"web"}}); apiCode(err) != "LoadBalancerNotFound" {
		t.Fatalf("describe after delete: %v", err)
	}
}

func lbAttr(attrs []types.LoadBalancerAttribute, key string) string {
	for _, a := range attrs {
		if *a.Key == key {
			return *a.Value
		}
	}
	return "<absent>"
}

func TestDescribePaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var want []string
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		out, err := e.client.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("page-" + n)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, *out.LoadBalancers[0].LoadBalancerName)
	}
	var got []string
	pages := 0
	p := elb.NewDescribeLoadBalancersPaginator(e.client, &elb.DescribeLoadBalancersInput{PageSize: aws.Int32(2)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, lb := range out.LoadBalancers {
			got = append(got, *lb.LoadBalancerName)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || pages != 3 {
		t.Fatalf("paged %v in %d pages, want %v in 3", got, pages, want)
	}
	_, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Marker: aws.String("garbage")})
	if apiCode(err) != "ValidationError" {
		t.Fatalf("bad marker: %v", err)
	}
}

func TestUnknownAction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.client.SetIpAddressType(context.Background(), &elb.SetIpAddressTypeInput{LoadBalancerArn: aws.String("x"), IpAddressType: types.IpAddressTypeDualstack})
	if got := apiCode(err); got != "InvalidAction" {
		t.Fatalf("unimplemented action: %q, want InvalidAction", got)
	}
}
