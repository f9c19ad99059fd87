package elbv2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

const (
	testRegion  = "us-east-1"
	testAccount = "123456789012"
)

// fakeInstances maps instance ids to addresses, as EC2 would.
type fakeInstances struct {
	mu      sync.Mutex
	byID    map[string]fakeInstance
	NextErr error
	Calls   int
}

type fakeInstance struct {
	ip      string
	running bool
}

var _ Instances = (*fakeInstances)(nil)

func newFakeInstances() *fakeInstances { return &fakeInstances{byID: map[string]fakeInstance{}} }

func (f *fakeInstances) Set(id, ip string, running bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byID[id] = fakeInstance{ip, running}
}

func (f *fakeInstances) PrivateIP(_ context.Context, id string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	if err := f.NextErr; err != nil {
		f.NextErr = nil
		return "", false, err
	}
	in, ok := f.byID[id]
	if !ok {
		return "", false, fmt.Errorf("instance %s: InvalidInstanceID.NotFound", id)
	}
	return in.ip, in.running, nil
}

// fakeS3 keeps objects of the buckets it was given.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string]map[string][]byte // bucket → key → body
	NextErr error
	Calls   int
}

var _ ObjectPutter = (*fakeS3)(nil)

func newFakeS3(buckets ...string) *fakeS3 {
	f := &fakeS3{objects: map[string]map[string][]byte{}}
	for _, b := range buckets {
		f.objects[b] = map[string][]byte{}
	}
	return f
}

func (f *fakeS3) PutObject(_ context.Context, bucket, key string, body []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	if err := f.NextErr; err != nil {
		f.NextErr = nil
		return err
	}
	b, ok := f.objects[bucket]
	if !ok {
		return errors.New("NoSuchBucket: " + bucket)
	}
	b[key] = append([]byte(nil), body...)
	return nil
}

// Objects returns a copy of bucket's objects.
func (f *fakeS3) Objects(bucket string) map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range f.objects[bucket] {
		out[k] = v
	}
	return out
}

// fakeFaults fails the actions it is told to.
type fakeFaults struct {
	mu   sync.Mutex
	fail map[string]error
}

var _ FaultInjector = (*fakeFaults)(nil)

func (f *fakeFaults) Set(action string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]error{}
	}
	f.fail[action] = err
}

func (f *fakeFaults) Inject(_ context.Context, service, action string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if service != ServiceName {
		return fmt.Errorf("unexpected service %q", service)
	}
	return f.fail[action]
}

// env is one Service behind an httptest server with a real SDK client.
type env struct {
	svc    *Service
	client *elb.Client
	inst   *fakeInstances
	s3     *fakeS3
	faults *fakeFaults
	cfg    Config
}

type envOption func(*Config)

func withClock(c clock.Clock) envOption { return func(cfg *Config) { cfg.Clock = c } }
func withDataDir(d string) envOption    { return func(cfg *Config) { cfg.DataDir = d } }
func withFailOpen() envOption           { return func(cfg *Config) { cfg.FailOpen = true } }
func withLogFlush(d time.Duration) envOption {
	return func(cfg *Config) { cfg.LogFlushInterval = d }
}

// newEnv starts a Service (health checks every 30ms) and a client for it.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{inst: newFakeInstances(), s3: newFakeS3("logs"), faults: &fakeFaults{}}
	e.cfg = Config{
		Region: testRegion, AccountID: testAccount,
		Instances: e.inst, Logs: e.s3, Faults: e.faults,
		HealthInterval: 30 * time.Millisecond,
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.start(t)
	return e
}

// start builds the Service from e.cfg (again, after a restart).
func (e *env) start(t *testing.T) {
	t.Helper()
	svc, err := New(e.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	api := httptest.NewServer(svc)
	t.Cleanup(api.Close)
	e.svc = svc
	e.client = newClient(t, api.URL)
}

// sdkConfig is loaded once: loading it costs more than most tests.
var sdkConfig = sync.OnceValues(func() (aws.Config, error) {
	return config.LoadDefaultConfig(context.Background(),
		config.WithRegion(testRegion),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")),
		config.WithRetryMaxAttempts(1),
	)
})

// newClient is an unmodified SDK client whose only change is the endpoint.
func newClient(t *testing.T, endpoint string) *elb.Client {
	t.Helper()
	cfg, err := sdkConfig()
	if err != nil {
		t.Fatalf("loading SDK config: %v", err)
	}
	return elb.NewFromConfig(cfg, func(o *elb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// backend is a target: an HTTP server on its own loopback address whose
// health endpoint can be made to fail.
type backend struct {
	name    string
	srv     *httptest.Server
	hits    atomic.Int64
	healthy atomic.Bool
	// block, when set, holds /slow requests until it is closed.
	block chan struct{}
	// lastHeaders is the header set of the last proxied request.
	mu          sync.Mutex
	lastHeaders http.Header
}

var nextIP atomic.Int32

// newBackend starts a backend on 127.0.0.N (N ≥ 2, distinct per backend)
// and registers it with inst as instance id.
func newBackend(t *testing.T, inst *fakeInstances, id string) *backend {
	t.Helper()
	ip := fmt.Sprintf("127.0.0.%d", 2+nextIP.Add(1)%250)
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listening on %s: %v", ip, err)
	}
	return startBackend(t, inst, id, ln)
}

func startBackend(t *testing.T, inst *fakeInstances, id string, ln net.Listener) *backend {
	t.Helper()
	b := &backend{name: id, block: make(chan struct{})}
	b.healthy.Store(true)
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if r.UserAgent() != healthCheckUserAgent {
				http.Error(w, "unexpected user agent "+r.UserAgent(), http.StatusTeapot)
				return
			}
			if !b.healthy.Load() {
				http.Error(w, "sick", http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, "ok")
			return
		}
		b.hits.Add(1)
		b.mu.Lock()
		b.lastHeaders = r.Header.Clone()
		b.mu.Unlock()
		if r.URL.Path == "/slow" {
			select {
			case <-b.block:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", b.name)
		_, _ = io.WriteString(w, b.name)
	}))
	b.srv.Listener.Close()
	b.srv.Listener = ln
	b.srv.Start()
	t.Cleanup(func() {
		b.release()
		b.srv.Close()
	})
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	_ = port
	inst.Set(id, host, true)
	return b
}

var releaseMu sync.Mutex

func (b *backend) release() {
	releaseMu.Lock()
	defer releaseMu.Unlock()
	select {
	case <-b.block:
	default:
		close(b.block)
	}
}

func (b *backend) port() int32 { return int32(b.srv.Listener.Addr().(*net.TCPAddr).Port) }

func (b *backend) headers() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastHeaders
}

// stack is a load balancer with one HTTP listener forwarding to one
// target group.
type stack struct {
	lbARN, tgARN, listenerARN string
	url                       string // http://DNSName:Port
}

type tgOption func(*elb.CreateTargetGroupInput)

// newStack creates lb/tg/listener through the SDK. The group checks
// /health with thresholds 2/2 unless opts say otherwise.
func (e *env) newStack(t *testing.T, name string, opts ...tgOption) stack {
	t.Helper()
	ctx := context.Background()
	lb, err := e.client.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateLoadBalancer: %v", err)
	}
	in := &elb.CreateTargetGroupInput{
		Name: aws.String(name + "-tg"), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(8080),
		TargetType: types.TargetTypeEnumInstance, HealthCheckPath: aws.String("/health"),
		HealthyThresholdCount: aws.Int32(2), UnhealthyThresholdCount: aws.Int32(2),
	}
	for _, o := range opts {
		o(in)
	}
	tg, err := e.client.CreateTargetGroup(ctx, in)
	if err != nil {
		t.Fatalf("CreateTargetGroup: %v", err)
	}
	st := stack{lbARN: *lb.LoadBalancers[0].LoadBalancerArn, tgARN: *tg.TargetGroups[0].TargetGroupArn}
	l, err := e.client.CreateListener(ctx, &elb.CreateListenerInput{
		LoadBalancerArn: aws.String(st.lbARN), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(80),
		DefaultActions: []types.Action{{Type: types.ActionTypeEnumForward, TargetGroupArn: aws.String(st.tgARN)}},
	})
	if err != nil {
		t.Fatalf("CreateListener: %v", err)
	}
	st.listenerARN = *l.Listeners[0].ListenerArn
	st.url = e.lbURL(t, st.lbARN)
	return st
}

// lbURL learns a load balancer's address the way a user would: DNSName
// from DescribeLoadBalancers, Port from DescribeListeners.
func (e *env) lbURL(t *testing.T, lbARN string) string {
	t.Helper()
	ctx := context.Background()
	d, err := e.client.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{lbARN}})
	if err != nil {
		t.Fatalf("DescribeLoadBalancers: %v", err)
	}
	ls, err := e.client.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)})
	if err != nil {
		t.Fatalf("DescribeListeners: %v", err)
	}
	if len(ls.Listeners) == 0 {
		t.Fatalf("load balancer %s has no listener", lbARN)
	}
	return fmt.Sprintf("http://%s:%d", *d.LoadBalancers[0].DNSName, *ls.Listeners[0].Port)
}

// register registers backends with their own ports.
func (e *env) register(t *testing.T, tgARN string, bs ...*backend) {
	t.Helper()
	var targets []types.TargetDescription
	for _, b := range bs {
		targets = append(targets, types.TargetDescription{Id: aws.String(b.name), Port: aws.Int32(b.port())})
	}
	if _, err := e.client.RegisterTargets(context.Background(), &elb.RegisterTargetsInput{TargetGroupArn: aws.String(tgARN), Targets: targets}); err != nil {
		t.Fatalf("RegisterTargets: %v", err)
	}
}

// health returns id's state and reason codes.
func (e *env) health(t *testing.T, tgARN, id string) (state, reason string) {
	t.Helper()
	out, err := e.client.DescribeTargetHealth(context.Background(), &elb.DescribeTargetHealthInput{
		TargetGroupArn: aws.String(tgARN), Targets: []types.TargetDescription{{Id: aws.String(id)}},
	})
	if err != nil {
		t.Fatalf("DescribeTargetHealth: %v", err)
	}
	if len(out.TargetHealthDescriptions) != 1 {
		t.Fatalf("DescribeTargetHealth(%s) = %d descriptions, want 1", id, len(out.TargetHealthDescriptions))
	}
	th := out.TargetHealthDescriptions[0].TargetHealth
	return string(th.State), string(th.Reason)
}

// waitState polls until id is in state.
func (e *env) waitState(t *testing.T, tgARN, id, want string) {
	t.Helper()
	var got, reason string
	eventually(t, 5*time.Second, func() bool {
		got, reason = e.health(t, tgARN, id)
		return got == want
	}, func() string { return fmt.Sprintf("target %s is %s (%s), want %s", id, got, reason, want) })
}

func eventually(t *testing.T, within time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lbClient is the client tests send traffic through; no keep-alive, so a
// closed listener shows up at once.
var lbClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// get sends one request through the load balancer and returns the status
// and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := lbClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// apiCode returns the AWS error code of err, "" for nil.
func apiCode(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "not an API error: " + err.Error()
}

func throttled() error {
	return &awsproto.Error{Code: "Throttling", Message: "Rate exceeded", Status: http.StatusBadRequest}
}

func hasPrefixAny(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func newFakeLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
