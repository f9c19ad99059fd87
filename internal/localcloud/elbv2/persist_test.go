package elbv2

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, withDataDir(dir))
	ctx := context.Background()
	st := e.newStack(t, "durable")
	b := newBackend(t, e.inst, "i-durable")
	e.register(t, st.tgARN, b)
	e.waitState(t, st.tgARN, "i-durable", stateHealthy)
	if _, err := e.client.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerArn: aws.String(st.lbARN),
		Attributes: []types.LoadBalancerAttribute{{Key: aws.String("idle_timeout.timeout_seconds"), Value: aws.String("120")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(st.tgARN),
		Attributes: []types.TargetGroupAttribute{{Key: aws.String(attrDeregistrationDelay), Value: aws.String("7")}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := lbClient.Get(st.url); err == nil {
		t.Fatal("listener still open after Close")
	}

	e.start(t) // same DataDir
	lbs, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{"durable"}})
	if err != nil {
		t.Fatalf("load balancer lost in the restart: %v", err)
	}
	if *lbs.LoadBalancers[0].LoadBalancerArn != st.lbARN {
		t.Fatalf("ARN changed: %s → %s", st.lbARN, *lbs.LoadBalancers[0].LoadBalancerArn)
	}
	attrs, err := e.client.DescribeLoadBalancerAttributes(ctx, &elb.DescribeLoadBalancerAttributesInput{LoadBalancerArn: aws.String(st.lbARN)})
	if err != nil || lbAttr(attrs.Attributes, "idle_timeout.timeout_seconds") != "120" {
		t.Fatalf("load balancer attributes after restart: %v %v", attrs, err)
	}
	tga, err := e.client.DescribeTargetGroupAttributes(ctx, &elb.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(st.tgARN)})
	if err != nil {
		t.Fatal(err)
	}
	delay := ""
	for _, a := range tga.Attributes {
		if *a.Key == attrDeregistrationDelay {
			delay = *a.Value
		}
	}
	if delay != "7" {
		t.Errorf("deregistration delay after restart %q, want 7", delay)
	}
	// The registration survived and is health-checked anew; the listener
	// is back, on the same port when it was free.
	e.waitState(t, st.tgARN, "i-durable", stateHealthy)
	if url := e.lbURL(t, st.lbARN); url != st.url {
		t.Errorf("listener moved from %s to %s", st.url, url)
	}
	if code, body := get(t, st.url+"/"); code != http.StatusOK || body != "i-durable" {
		t.Fatalf("after restart: %d %q", code, body)
	}
}

func TestRestoredListenerMovesOffATakenPort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, withDataDir(dir))
	st := e.newStack(t, "moved")
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	// Someone else takes the port while the service is down.
	_, port, _ := net.SplitHostPort(st.url[len("http://"):])
	squatter, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Skipf("port %s was taken before the squatter: %v", port, err)
	}
	defer squatter.Close()
	e.start(t)
	url := e.lbURL(t, st.lbARN)
	if url == st.url {
		t.Fatalf("listener reported on the squatted port %s", url)
	}
	if code, _ := get(t, url+"/"); code != http.StatusServiceUnavailable {
		t.Errorf("moved listener answered %d, want 503 (no targets)", code)
	}
	// The move is persisted.
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	newPort := url[len("http://127.0.0.1:"):]
	if _, err := strconv.Atoi(newPort); err != nil || !strings.Contains(string(b), `"Port": `+newPort) {
		t.Errorf("state file does not record port %s", newPort)
	}
}

func TestCorruptStateIsReported(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Region: testRegion, AccountID: testAccount, Instances: newFakeInstances(), DataDir: dir})
	if err == nil {
		t.Fatal("New accepted a corrupt state file")
	}
}
