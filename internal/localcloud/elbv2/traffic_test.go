package elbv2

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

func TestForwardsOnlyToHealthyTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := e.newStack(t, "healthy-only")
	good := newBackend(t, e.inst, "i-good")
	sick := newBackend(t, e.inst, "i-sick")
	sick.healthy.Store(false)
	e.register(t, st.tgARN, good, sick)

	e.waitState(t, st.tgARN, "i-good", stateHealthy)
	e.waitState(t, st.tgARN, "i-sick", stateUnhealthy)
	if _, reason := e.health(t, st.tgARN, "i-sick"); reason != reasonResponseCodeMismatch {
		t.Errorf("sick target's reason %q, want %s", reason, reasonResponseCodeMismatch)
	}
	out, err := e.client.DescribeTargetHealth(context.Background(), &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(st.tgARN), Targets: []types.TargetDescription{{Id: aws.String("i-sick")}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := *out.TargetHealthDescriptions[0].TargetHealth.Description; d != "Health checks failed with these codes: [500]" {
		t.Errorf("description %q", d)
	}
	if hp := *out.TargetHealthDescriptions[0].HealthCheckPort; hp != strconv.Itoa(int(sick.port())) {
		t.Errorf("health check port %q, want the traffic port %d", hp, sick.port())
	}
	for i := range 6 {
		code, body := get(t, st.url+"/")
		if code != http.StatusOK || body != "i-good" {
			t.Fatalf("request %d: %d %q, want 200 from i-good", i, code, body)
		}
	}
	if n := sick.hits.Load(); n != 0 {
		t.Errorf("the unhealthy target got %d requests", n)
	}
	// ALB's headers reach the target.
	h := good.headers()
	if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "http" || !strings.HasPrefix(h.Get("X-Amzn-Trace-Id"), "Root=1-") ||
		h.Get("X-Forwarded-Port") == "" || h.Get("X-Forwarded-Host") != "" {
		t.Errorf("forwarded headers %v", h)
	}
}

func TestFailingTargetStopsReceivingTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := e.newStack(t, "flaky")
	a := newBackend(t, e.inst, "i-a")
	b := newBackend(t, e.inst, "i-b")
	e.register(t, st.tgARN, a, b)
	e.waitState(t, st.tgARN, "i-a", stateHealthy)
	e.waitState(t, st.tgARN, "i-b", stateHealthy)

	a.healthy.Store(false)
	e.waitState(t, st.tgARN, "i-a", stateUnhealthy)
	if _, reason := e.health(t, st.tgARN, "i-a"); reason != reasonResponseCodeMismatch {
		t.Errorf("reason %q", reason)
	}
	before := a.hits.Load()
	for i := range 5 {
		if code, body := get(t, st.url+"/"); code != http.StatusOK || body != "i-b" {
			t.Fatalf("request %d: %d %q, want 200 from i-b", i, code, body)
		}
	}
	if a.hits.Load() != before {
		t.Errorf("the unhealthy target got traffic")
	}

	// A target that goes away fails with Target.FailedHealthChecks.
	b.srv.Close()
	e.waitState(t, st.tgARN, "i-b", stateUnhealthy)
	if _, reason := e.health(t, st.tgARN, "i-b"); reason != reasonFailedHealthChecks {
		t.Errorf("closed target's reason %q, want %s", reason, reasonFailedHealthChecks)
	}

	// Recovery takes HealthyThresholdCount passes.
	a.healthy.Store(true)
	e.waitState(t, st.tgARN, "i-a", stateHealthy)
	if code, body := get(t, st.url+"/"); code != http.StatusOK || body != "i-a" {
		t.Fatalf("after recovery: %d %q", code, body)
	}
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := e.newStack(t, "rr")
	var bs []*backend
	for i := range 3 {
		bs = append(bs, newBackend(t, e.inst, fmt.Sprintf("i-rr%d", i)))
	}
	e.register(t, st.tgARN, bs...)
	for _, b := range bs {
		e.waitState(t, st.tgARN, b.name, stateHealthy)
	}
	var order []string
	for range 9 {
		_, body := get(t, st.url+"/")
		order = append(order, body)
	}
	// Each target once per cycle, in the same order every cycle.
	for i := 3; i < 9; i++ {
		if order[i] != order[i-3] {
			t.Fatalf("order %v is not a repeating cycle", order)
		}
	}
	seen := map[string]bool{order[0]: true, order[1]: true, order[2]: true}
	if len(seen) != 3 {
		t.Fatalf("order %v: a cycle does not visit every target", order)
	}
	for _, b := range bs {
		if b.hits.Load() != 3 {
			t.Errorf("%s got %d requests, want 3", b.name, b.hits.Load())
		}
	}
}

func TestGroupPortIsUsedWithoutTargetPort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Two instances on different addresses listening on the same port: the
	// group's port, with no per-target override.
	var lns []net.Listener
	var port int
	for attempt := 0; attempt < 20 && len(lns) < 2; attempt++ {
		for _, l := range lns {
			l.Close()
		}
		lns = nil
		first, err := net.Listen("tcp", "127.0.0.200:0")
		if err != nil {
			t.Fatal(err)
		}
		port = first.Addr().(*net.TCPAddr).Port
		second, err := net.Listen("tcp", "127.0.0.201:"+strconv.Itoa(port))
		if err != nil {
			first.Close()
			continue
		}
		lns = []net.Listener{first, second}
	}
	if len(lns) < 2 {
		t.Skip("no port free on both 127.0.0.200 and 127.0.0.201")
	}
	a := startBackend(t, e.inst, "i-gp-a", lns[0])
	b := startBackend(t, e.inst, "i-gp-b", lns[1])
	st := e.newStack(t, "groupport", func(in *elb.CreateTargetGroupInput) { in.Port = aws.Int32(int32(port)) })
	if _, err := e.client.RegisterTargets(context.Background(), &elb.RegisterTargetsInput{TargetGroupArn: aws.String(st.tgARN),
		Targets: []types.TargetDescription{{Id: aws.String(a.name)}, {Id: aws.String(b.name)}}}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, st.tgARN, a.name, stateHealthy)
	e.waitState(t, st.tgARN, b.name, stateHealthy)
	got := map[string]int{}
	for range 4 {
		_, body := get(t, st.url+"/")
		got[body]++
	}
	if got["i-gp-a"] != 2 || got["i-gp-b"] != 2 {
		t.Fatalf("traffic %v, want 2 each", got)
	}
}

func TestNoHealthyTarget503(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failOpen bool
		targets  int  // registered backends
		sick     bool // their health checks fail
		want     int
	}{
		{"no targets", false, 0, false, http.StatusServiceUnavailable},
		{"only unhealthy targets", false, 1, true, http.StatusServiceUnavailable},
		{"only unhealthy targets, fail open", true, 1, true, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []envOption
			if tc.failOpen {
				opts = append(opts, withFailOpen())
			}
			e := newEnv(t, opts...)
			st := e.newStack(t, "empty")
			for i := range tc.targets {
				b := newBackend(t, e.inst, fmt.Sprintf("i-%d", i))
				b.healthy.Store(!tc.sick)
				e.register(t, st.tgARN, b)
				if tc.sick {
					e.waitState(t, st.tgARN, b.name, stateUnhealthy)
				}
			}
			resp, err := lbClient.Get(st.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusServiceUnavailable && resp.Header.Get("Server") != "awselb/2.0" {
				t.Errorf("503 from %q, want the load balancer itself", resp.Header.Get("Server"))
			}
		})
	}
}

func TestInitialTargetGetsNoTraffic(t *testing.T) {
	t.Parallel()
	// Without Start there are no health checks: the target stays initial
	// and the load balancer has nobody to forward to.
	inst := newFakeInstances()
	svc, err := New(Config{Region: testRegion, AccountID: testAccount, Instances: inst})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	api := httptest.NewServer(svc)
	t.Cleanup(api.Close)
	e := &env{svc: svc, client: newClient(t, api.URL), inst: inst}
	st := e.newStack(t, "initial")
	b := newBackend(t, inst, "i-new")
	e.register(t, st.tgARN, b)
	if state, reason := e.health(t, st.tgARN, "i-new"); state != stateInitial || reason != reasonRegistrationInProgress {
		t.Errorf("new target: %s %s, want initial %s", state, reason, reasonRegistrationInProgress)
	}
	if code, _ := get(t, st.url+"/"); code != http.StatusServiceUnavailable {
		t.Errorf("status %d with only an initial target, want 503", code)
	}
	if b.hits.Load() != 0 {
		t.Errorf("the initial target got traffic")
	}
}

func TestUnusedAndUnregisteredTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := e.newStack(t, "unused")
	// A group no listener forwards to is not health-checked: its targets
	// are unused.
	tg, err := e.client.CreateTargetGroup(context.Background(), &elb.CreateTargetGroupInput{Name: aws.String("spare"), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(80)})
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, e.inst, "i-spare")
	e.register(t, *tg.TargetGroups[0].TargetGroupArn, b)
	if state, reason := e.health(t, *tg.TargetGroups[0].TargetGroupArn, "i-spare"); state != stateUnused || reason != reasonNotInUse {
		t.Errorf("target of an unused group: %s %s", state, reason)
	}
	if state, reason := e.health(t, st.tgARN, "i-spare"); state != stateUnused || reason != reasonNotRegistered {
		t.Errorf("unregistered target: %s %s", state, reason)
	}
}

func TestDeregistrationDrains(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st := e.newStack(t, "drain")
	if _, err := e.client.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(st.tgARN),
		Attributes: []types.TargetGroupAttribute{{Key: aws.String(attrDeregistrationDelay), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	old := newBackend(t, e.inst, "i-old")
	e.register(t, st.tgARN, old)
	e.waitState(t, st.tgARN, "i-old", stateHealthy)

	// Two requests in flight on the old target: one finishes during the
	// drain, one outlives it.
	type result struct {
		code int
		body string
		err  error
	}
	results := make(chan result, 1)
	var wg sync.WaitGroup
	start := func(path string, to chan<- result) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := lbClient.Get(st.url + path)
			if err != nil {
				to <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			to <- result{code: resp.StatusCode, body: string(b), err: err}
		}()
	}
	start("/slow", results)
	eventually(t, 5*time.Second, func() bool { return old.hits.Load() == 1 }, func() string { return "the slow request did not reach i-old" })

	repl := newBackend(t, e.inst, "i-new")
	e.register(t, st.tgARN, repl)
	e.waitState(t, st.tgARN, "i-new", stateHealthy)
	if _, err := e.client.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(st.tgARN),
		Targets: []types.TargetDescription{{Id: aws.String("i-old"), Port: aws.Int32(old.port())}}}); err != nil {
		t.Fatal(err)
	}
	if state, reason := e.health(t, st.tgARN, "i-old"); state != stateDraining || reason != reasonDeregistrationInProgress {
		t.Fatalf("deregistered target: %s %s, want draining", state, reason)
	}
	for i := range 4 {
		if code, body := get(t, st.url+"/"); code != http.StatusOK || body != "i-new" {
			t.Fatalf("request %d during the drain: %d %q, want i-new", i, code, body)
		}
	}
	old.release()
	if r := <-results; r.err != nil || r.code != http.StatusOK || r.body != "i-old" {
		t.Fatalf("in-flight request during the drain: %+v, want 200 from i-old", r)
	}
	e.waitState(t, st.tgARN, "i-old", stateUnused)
	if _, reason := e.health(t, st.tgARN, "i-old"); reason != reasonNotRegistered {
		t.Errorf("after the drain: reason %q, want %s", reason, reasonNotRegistered)
	}
	wg.Wait()
}

func TestDrainEndAbortsRequestsStillInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st := e.newStack(t, "abort")
	if _, err := e.client.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(st.tgARN),
		Attributes: []types.TargetGroupAttribute{{Key: aws.String(attrDeregistrationDelay), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, e.inst, "i-stuck")
	e.register(t, st.tgARN, b)
	e.waitState(t, st.tgARN, "i-stuck", stateHealthy)
	codes := make(chan int, 1)
	go func() {
		resp, err := lbClient.Get(st.url + "/slow")
		if err != nil {
			codes <- -1
			return
		}
		resp.Body.Close()
		codes <- resp.StatusCode
	}()
	eventually(t, 5*time.Second, func() bool { return b.hits.Load() == 1 }, func() string { return "the request did not arrive" })
	began := time.Now()
	if err := e.svc.Deregister(ctx, st.tgARN, "i-stuck"); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-codes:
		if code != http.StatusBadGateway {
			t.Errorf("request cut by the drain's end: %d, want 502", code)
		}
		if d := time.Since(began); d < 900*time.Millisecond {
			t.Errorf("request ended %v after deregistration, before the 1s delay", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request outlived the drain")
	}
}
