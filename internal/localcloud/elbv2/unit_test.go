package elbv2

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Region: "us-east-1", AccountID: "123456789012", Instances: newFakeInstances()}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error, "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no region", func(c *Config) { c.Region = "" }, "Region"},
		{"short account", func(c *Config) { c.AccountID = "123" }, "AccountID"},
		{"no instances", func(c *Config) { c.Instances = nil }, "Instances"},
		{"hostname", func(c *Config) { c.ListenHost = "example.com" }, "ListenHost"},
		{"localhost", func(c *Config) { c.ListenHost = "localhost" }, ""},
		{"tiny health interval", func(c *Config) { c.HealthInterval = time.Microsecond }, "HealthInterval"},
		{"negative flush", func(c *Config) { c.LogFlushInterval = -time.Second }, "LogFlushInterval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error about %s", err, tc.want)
			}
		})
	}
}

func TestParseMatcher(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		ok      bool
		match   []int
		noMatch []int
	}{
		{"200", true, []int{200}, []int{201, 500}},
		{"200,202", true, []int{200, 202}, []int{201}},
		{"200-299", true, []int{200, 250, 299}, []int{300, 199}},
		{"200-299,302", true, []int{302, 204}, []int{301}},
		{"", false, nil, nil},
		{"199", false, nil, nil},
		{"500", false, nil, nil},
		{"300-200", false, nil, nil},
		{"abc", false, nil, nil},
		{"200,", false, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			m, err := parseMatcher(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("parseMatcher(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			}
			for _, c := range tc.match {
				if !m.match(c) {
					t.Errorf("%q does not match %d", tc.in, c)
				}
			}
			for _, c := range tc.noMatch {
				if m.match(c) {
					t.Errorf("%q matches %d", tc.in, c)
				}
			}
		})
	}
}

// FuzzParseMatcher: Matcher.HttpCode comes from API callers.
func FuzzParseMatcher(f *testing.F) {
	for _, s := range []string{"200", "200-299", "200,202,300-399", "-", ",", "499-499"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMatcher(s)
		if err != nil {
			return
		}
		for c := 0; c < 1000; c++ {
			if m.match(c) && (c < 200 || c > 499) {
				t.Fatalf("%q matches %d, outside 200-499", s, c)
			}
		}
	})
}

func TestHealthTransitions(t *testing.T) {
	t.Parallel()
	hc := healthCheck{Healthy: 3, Unhealthy: 2}
	pass := probeResult{ok: true, addr: "127.0.0.1:1"}
	fail := probeResult{reason: reasonTimeout, description: "Request timed out", addr: "127.0.0.1:1"}
	stopped := probeResult{invalid: true, reason: reasonInvalidState, description: "Target is in the stopped state"}
	tests := []struct {
		name  string
		steps []probeResult
		want  string
	}{
		{"one pass makes a new target healthy", []probeResult{pass}, stateHealthy},
		{"one failure keeps it initial", []probeResult{fail}, stateInitial},
		{"threshold failures make it unhealthy", []probeResult{fail, fail}, stateUnhealthy},
		{"a healthy target survives one failure", []probeResult{pass, fail}, stateHealthy},
		{"and falls at the threshold", []probeResult{pass, fail, fail}, stateUnhealthy},
		{"recovery needs the healthy threshold", []probeResult{fail, fail, pass, pass}, stateUnhealthy},
		{"and gets there", []probeResult{fail, fail, pass, pass, pass}, stateHealthy},
		{"a stopped instance is unused", []probeResult{pass, stopped}, stateUnused},
	}
	s := &Service{log: newFakeLogger()}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := &targetGroup{HC: hc}
			tr := newTarget("i-1", 1, 1, time.Time{})
			for _, st := range tc.steps {
				s.applyLocked(tg, tr, st)
			}
			if tr.state != tc.want {
				t.Fatalf("state %s (%s), want %s", tr.state, tr.reason, tc.want)
			}
		})
	}
}

func TestInProcessMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// The group's port is 1, where nothing listens: an instance registered
	// on it fails its health checks.
	st := e.newStack(t, "asg", func(in *elb.CreateTargetGroupInput) { in.Port = aws.Int32(1) })
	b := newBackend(t, e.inst, "i-asg")
	b.healthy.Store(false)

	if _, known, err := e.svc.Health(ctx, st.tgARN, "i-asg"); err != nil || known {
		t.Fatalf("Health of an unregistered instance: known=%v err=%v", known, err)
	}
	if err := e.svc.Register(ctx, st.tgARN, "i-asg"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Register(ctx, st.tgARN, "i-asg"); err != nil {
		t.Fatalf("repeated Register: %v", err)
	}
	e.waitState(t, st.tgARN, "i-asg", stateUnhealthy)
	if healthy, known, err := e.svc.Health(ctx, st.tgARN, "i-asg"); err != nil || !known || healthy {
		t.Fatalf("Health of an unhealthy instance = %v %v %v", healthy, known, err)
	}
	if err := e.svc.Deregister(ctx, st.tgARN, "i-asg"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Deregister(ctx, st.tgARN, "i-asg"); err != nil {
		t.Fatalf("repeated Deregister: %v", err)
	}
	if _, known, _ := e.svc.Health(ctx, st.tgARN, "i-asg"); known {
		t.Errorf("a draining instance has a verdict")
	}

	// A healthy registration through the API, read through Health.
	b.healthy.Store(true)
	e.register(t, st.tgARN, b)
	eventually(t, 5*time.Second, func() bool {
		healthy, known, _ := e.svc.Health(ctx, st.tgARN, "i-asg")
		return healthy && known
	}, func() string { return "Health never reported healthy" })

	if err := e.svc.Register(ctx, st.tgARN, "i-nope"); !IsInvalidTarget(err) {
		t.Errorf("Register(unknown instance) = %v, want InvalidTarget", err)
	}
	missing := st.tgARN + "x"
	if err := e.svc.Register(ctx, missing, "i-asg"); !IsTargetGroupNotFound(err) {
		t.Errorf("Register(missing group) = %v", err)
	}
	if err := e.svc.Deregister(ctx, missing, "i-asg"); !IsTargetGroupNotFound(err) {
		t.Errorf("Deregister(missing group) = %v", err)
	}
	if _, _, err := e.svc.Health(ctx, missing, "i-asg"); !IsTargetGroupNotFound(err) {
		t.Errorf("Health(missing group) = %v", err)
	}
}

func TestStartAndCloseOrder(t *testing.T) {
	t.Parallel()
	svc, err := New(Config{Region: testRegion, AccountID: testAccount, Instances: newFakeInstances()})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := svc.Start(context.Background()); err == nil {
		t.Error("Start after Close succeeded")
	}
}
