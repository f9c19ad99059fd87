package elbv2

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

func forwardTo(arn string) []types.Action {
	return []types.Action{{Type: types.ActionTypeEnumForward, TargetGroupArn: aws.String(arn)}}
}

// TestModifyListenerSwitchesTargetGroup: the entry listener is switched to
// a second target group of the same load balancer (kept healthy by a
// second listener) while requests flow: none fails, and every request
// after the switch reaches the new group.
func TestModifyListenerSwitchesTargetGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st := e.newStack(t, "entry")
	oldB := newBackend(t, e.inst, "i-old")
	e.register(t, st.tgARN, oldB)
	e.waitState(t, st.tgARN, "i-old", stateHealthy)

	tg, err := e.client.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("entry-next"), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(8080),
		HealthCheckPath: aws.String("/health"), HealthyThresholdCount: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	nextARN := aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	if _, err := e.client.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(st.lbARN), Protocol: types.ProtocolEnumHttp,
		Port: aws.Int32(8081), DefaultActions: forwardTo(nextARN)}); err != nil {
		t.Fatal(err)
	}
	newB := newBackend(t, e.inst, "i-new")
	e.register(t, nextARN, newB)
	e.waitState(t, nextARN, "i-new", stateHealthy)

	var failed, sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			sent.Add(1)
			resp, err := lbClient.Get(st.url)
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	}()
	eventually(t, 10*time.Second, func() bool { return sent.Load() > 20 }, func() string { return "no traffic" })
	out, err := e.client.ModifyListener(ctx, &elb.ModifyListenerInput{ListenerArn: aws.String(st.listenerARN), DefaultActions: forwardTo(nextARN)})
	if err != nil {
		t.Fatalf("ModifyListener: %v", err)
	}
	if got := aws.ToString(out.Listeners[0].DefaultActions[0].TargetGroupArn); got != nextARN {
		t.Errorf("ModifyListener answered forward to %s", got)
	}
	after := sent.Load()
	eventually(t, 10*time.Second, func() bool { return sent.Load() > after+20 }, func() string { return "no traffic after the switch" })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across the switch", failed.Load(), sent.Load())
	}
	for range 5 {
		if code, body := get(t, st.url); code != 200 || body != "i-new" {
			t.Fatalf("after the switch: %d %q, want i-new", code, body)
		}
	}
	ls, err := e.client.DescribeListeners(ctx, &elb.DescribeListenersInput{ListenerArns: []string{st.listenerARN}})
	if err != nil || aws.ToString(ls.Listeners[0].DefaultActions[0].TargetGroupArn) != nextARN {
		t.Fatalf("DescribeListeners after the switch: %v", err)
	}

	other := e.newStack(t, "other")
	for _, tt := range []struct {
		name string
		in   *elb.ModifyListenerInput
		code string
	}{
		{"unknown listener", &elb.ModifyListenerInput{ListenerArn: aws.String(st.listenerARN + "0"), DefaultActions: forwardTo(nextARN)}, "ListenerNotFound"},
		{"unknown target group", &elb.ModifyListenerInput{ListenerArn: aws.String(st.listenerARN), DefaultActions: forwardTo(nextARN + "0")}, "TargetGroupNotFound"},
		{"another load balancer's group", &elb.ModifyListenerInput{ListenerArn: aws.String(st.listenerARN), DefaultActions: forwardTo(other.tgARN)}, "TargetGroupAssociationLimit"},
		{"a port taken on the load balancer", &elb.ModifyListenerInput{ListenerArn: aws.String(st.listenerARN), Port: aws.Int32(8081)}, "DuplicateListener"},
		{"not a forward", &elb.ModifyListenerInput{ListenerArn: aws.String(st.listenerARN), DefaultActions: []types.Action{{Type: types.ActionTypeEnumFixedResponse}}}, "ValidationError"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.ModifyListener(ctx, tt.in)
			if got := apiCode(err); got != tt.code {
				t.Errorf("got %q (%v), want %s", got, err, tt.code)
			}
		})
	}
	if code, body := get(t, st.url); code != 200 || body != "i-new" {
		t.Fatalf("a refused ModifyListener changed the listener: %d %q", code, body)
	}
}
