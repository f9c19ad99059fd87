// Package demo runs handover's main job end to end on the local cloud: a
// local cloud in this process, controllers as real child processes talking
// to it through the AWS SDK, and a group of one kvstore instance behind a
// load balancer, replaced while a load generator reads and writes through
// the load balancer. `handover demo` and the end-to-end tests both drive it.
//
// Everything the demo asserts is observed from outside, as a user would:
// through the load balancer, the AWS APIs and the controller's HTTP API.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/localcloud"
	lcec2 "github.com/handover-dev/handover/internal/localcloud/ec2"
)

// Options shape an environment.
type Options struct {
	// DataDir holds the local cloud, the ledger and every log. Required.
	DataDir string
	// HandoverBin and KVStoreBin are the programs instances and
	// controllers run.
	HandoverBin, KVStoreBin string
	// Ledger is the controllers' ledger URL; empty means SQLite in DataDir.
	Ledger string
	// Controllers is how many controllers to start (default 1).
	Controllers int
	// PreCopy off passes --no-pre-copy to the controllers.
	NoPreCopy bool
	// HookTimeout is the launch hook's heartbeat timeout (default 2 min).
	HookTimeout time.Duration
	// ControllerArgs are added to every controller's command line.
	ControllerArgs []string
	// APIToken, if set, is the bearer token every controller's API (and
	// dashboard) requires; the Env's API clients send it.
	APIToken string
	// RDSPassword, if set, is $HANDOVER_RDS_PASSWORD for every handover
	// process the Env runs (controllers included): what lifts a
	// migration's RDS fence when a controller carries its abort.
	RDSPassword string
	// Listen is the first controller's API address (default: a free
	// loopback port), so `handover demo --dashboard` can print a stable URL.
	Listen string
	Logger *slog.Logger
}

const (
	region     = "us-east-1"
	groupName  = "kvstore"
	database   = "demo"
	launchHook = "handover-launch"
	termHook   = "handover-terminate"
	amiV1      = "ami-00000000000000001"
	amiV2      = "ami-00000000000000002"
	device     = "/dev/sdf"
	// servicePort is kvstore's port on each instance's private address.
	servicePort = 8080
)

// Env is a running demo environment.
type Env struct {
	opts  Options
	log   *slog.Logger
	cloud *localcloud.Cloud
	srv   *http.Server
	// Endpoint is the local cloud's URL.
	Endpoint string

	EC2 *ec2.Client
	ASG *autoscaling.Client
	ELB *elb.Client
	SQS *sqs.Client
	EB  *eventbridge.Client
	S3  *s3.Client

	QueueURL, DLQURL string
	// LBURL reaches the load balancer's listener.
	LBURL string

	// OnStep, if set, is told each state Run sees the handover in (at
	// most once per poll), so benchmarks can act at a step.
	OnStep func(state string)

	// logsMetricsAddr is where the logs scenario's pipeline serves its
	// metrics, which the controllers watch (--logs-metrics-url) for the
	// dashboard.
	logsMetricsAddr string

	mu          sync.Mutex
	controllers []*Controller
}

// Cloud is the in-process local cloud, for faults.
func (e *Env) Cloud() *localcloud.Cloud { return e.cloud }

// Start brings up the local cloud and the controllers, and creates the
// queue and the rule that feeds it. The group comes with CreateGroup.
func Start(ctx context.Context, o Options) (_ *Env, err error) {
	if o.DataDir == "" || o.HandoverBin == "" || o.KVStoreBin == "" {
		return nil, errors.New("demo needs a data directory and the handover and kvstore programs")
	}
	if o.Controllers == 0 {
		o.Controllers = 1
	}
	if o.HookTimeout == 0 {
		o.HookTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Ledger == "" {
		o.Ledger = "sqlite://" + filepath.Join(o.DataDir, "ledger.db")
	}
	e := &Env{opts: o, log: o.Logger}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	lcLog, err := os.Create(filepath.Join(o.DataDir, "localcloud.log"))
	if err != nil {
		return nil, fmt.Errorf("creating the local cloud's log: %w", err)
	}
	e.cloud, err = localcloud.New(localcloud.Config{
		DataDir: filepath.Join(o.DataDir, "cloud"), Region: region, Tick: 100 * time.Millisecond, HealthInterval: time.Second,
		// Access logs reach the bucket within seconds, not ALB's 5 minutes,
		// so the logs scenario sees its traffic indexed while it runs.
		LogFlushInterval: logFlushInterval,
		Catalog: map[string]lcec2.Image{
			amiV1: {Command: []string{"/bin/false"}, Env: map[string]string{"KVSTORE_VERSION": "1"}, Description: "kvstore v1"},
			amiV2: {Command: []string{"/bin/false"}, Env: map[string]string{"KVSTORE_VERSION": "2"}, Description: "kvstore v2"},
		},
		Logger: slog.New(slog.NewTextHandler(lcLog, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		return nil, fmt.Errorf("starting the local cloud: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the local cloud: %w", err)
	}
	e.Endpoint = "http://" + ln.Addr().String()
	e.srv = &http.Server{Handler: e.cloud.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()

	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(e.Endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDDEMO", "demo", "")}
	e.EC2, e.ASG, e.ELB = ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg), elb.NewFromConfig(cfg)
	e.SQS, e.EB = sqs.NewFromConfig(cfg), eventbridge.NewFromConfig(cfg)
	e.S3 = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if err := e.createQueue(ctx); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e.logsMetricsAddr = "127.0.0.1:" + strconv.Itoa(port)
	for i := range o.Controllers {
		if _, err := e.StartController(ctx, i+1); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Close stops the controllers and the local cloud (and with it every
// instance).
func (e *Env) Close() {
	e.mu.Lock()
	cs := e.controllers
	e.mu.Unlock()
	for _, c := range cs {
		c.Stop()
	}
	if e.srv != nil {
		_ = e.srv.Close()
	}
	if e.cloud != nil {
		_ = e.cloud.Close()
	}
}

// awsEnv is the environment of every process that calls the local cloud.
func (e *Env) awsEnv() []string {
	env := []string{"AWS_ACCESS_KEY_ID=AKIDDEMO", "AWS_SECRET_ACCESS_KEY=demo", "AWS_REGION=" + region,
		"AWS_ENDPOINT_URL=" + e.Endpoint, "AWS_EC2_METADATA_DISABLED=true"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if e.opts.RDSPassword != "" {
		env = append(env, "HANDOVER_RDS_PASSWORD="+e.opts.RDSPassword)
	}
	return env
}

// Controller is a controller child process.
type Controller struct {
	N       int
	API     *api.Client
	APIAddr string
	cmd     *exec.Cmd
	done    chan struct{}
	// waitErr is what Wait returned; read it only once done is closed.
	waitErr error
	LogPath string
}

// Exited returns a *ControllerExitedError once the process has exited,
// and nil while it runs.
func (c *Controller) Exited() error {
	select {
	case <-c.done:
		return &ControllerExitedError{N: c.N, Status: c.waitErr, LogPath: c.LogPath}
	default:
		return nil
	}
}

// ControllerExitedError says that a controller's process is gone, and
// where its log is: the one place that says why.
type ControllerExitedError struct {
	N int
	// Status is the process's exit (an *exec.ExitError, or nil for exit
	// status 0).
	Status  error
	LogPath string
}

func (e *ControllerExitedError) Error() string {
	how := "exit status 0"
	if e.Status != nil {
		how = e.Status.Error()
	}
	return fmt.Sprintf("controller %d exited (%s); read its log: %s", e.N, how, e.LogPath)
}

// StartController starts controller number n (its holder is "controller-n")
// and waits until its API answers.
func (e *Env) StartController(ctx context.Context, n int) (*Controller, error) {
	addr := e.opts.Listen
	if addr == "" || n != 1 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
	}
	logPath := filepath.Join(e.opts.DataDir, fmt.Sprintf("controller-%d.log", n))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the controller's log: %w", err)
	}
	args := []string{"controller", "--endpoint-url", e.Endpoint, "--queue-url", e.QueueURL, "--ledger", e.opts.Ledger,
		"--listen", addr, "--holder", fmt.Sprintf("controller-%d", n),
		"--poll-interval", "100ms", "--advance-interval", "100ms", "--reconcile-interval", "2s",
		"--sweep-interval", "2s", "--lease-ttl", "3s", "--sweep-grace", "1m", "--queue-wait", "1s", "--log-level", "debug",
		// The logs scenario's pipeline, for the dashboard.
		"--logs-metrics-url", "http://" + e.logsMetricsAddr + "/metrics", "--logs-metrics-interval", "1s",
		"--logs-dead-letter-queue-url", strings.TrimSuffix(e.QueueURL, "handover-events") + logDLQ}
	if e.opts.NoPreCopy {
		args = append(args, "--no-pre-copy")
	}
	args = append(args, e.opts.ControllerArgs...)
	cmd := exec.Command(e.opts.HandoverBin, args...)
	cmd.Env = e.awsEnv()
	if e.opts.APIToken != "" {
		// In the environment, not on the command line where ps shows it.
		cmd.Env = append(cmd.Env, "HANDOVER_API_TOKEN="+e.opts.APIToken)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Killed with the demo, even on SIGKILL of the demo itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting controller %d: %w", n, err)
	}
	c := &Controller{N: n, APIAddr: addr, cmd: cmd, done: make(chan struct{}), LogPath: logPath}
	go func() { c.waitErr = cmd.Wait(); logf.Close(); close(c.done) }()
	c.API, _ = api.NewClient("http://"+addr, e.opts.APIToken, nil)
	e.mu.Lock()
	e.controllers = append(e.controllers, c)
	e.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.API.Status(ctx); err == nil {
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("starting controller %d: %w", n, c.Exited())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("controller %d's API did not answer within 30s; see %s", n, logPath)
		}
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (c *Controller) Kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Stop asks the controller to stop (SIGTERM) and waits.
func (c *Controller) Stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.Kill()
	}
}

// API returns the first running controller's API client. When none runs,
// it returns a client whose every call fails with the last controller's
// *ControllerExitedError (errors.As finds it), never nil: a scenario that
// polls the API then reports which controller died and where its log is,
// and a test that restarts controllers just sees its poll fail once.
func (e *Env) API() *api.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.controllers {
		if c.Exited() == nil {
			return c.API
		}
	}
	return e.deadAPILocked()
}

// deadAPILocked is the client API returns when no controller runs.
func (e *Env) deadAPILocked() *api.Client {
	addr := "127.0.0.1:0"
	if n := len(e.controllers); n > 0 {
		addr = e.controllers[n-1].APIAddr
	}
	c, _ := api.NewClient("http://"+addr, e.opts.APIToken, &http.Client{Transport: failingTransport{e.goneLocked()}})
	return c
}

// failingTransport answers every request with err.
type failingTransport struct{ err error }

func (t failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, t.err }

// WatchControllers returns a child of ctx that is cancelled, with a
// *ControllerExitedError as its cause, once no controller is running: a
// caller blocked on the cloud or the API then stops at once, and
// context.Cause says which controller died and where its log is.
// Controllers started meanwhile keep it alive. `handover demo`, which
// never restarts its controller, runs under it; the tests that kill and
// restart controllers do not.
func (e *Env) WatchControllers(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		for {
			c, gone := e.firstRunning()
			if c == nil {
				cancel(gone)
				return
			}
			select {
			case <-c.done:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// firstRunning returns the first controller still running or, when none
// is, the error that says so.
func (e *Env) firstRunning() (*Controller, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.controllers {
		if c.Exited() == nil {
			return c, nil
		}
	}
	return nil, e.goneLocked()
}

// goneLocked is why no controller answers: the last one's exit.
func (e *Env) goneLocked() error {
	if n := len(e.controllers); n > 0 {
		return e.controllers[n-1].Exited()
	}
	return errors.New("no controller was started")
}

// Controllers lists the controllers started so far.
func (e *Env) Controllers() []*Controller {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Controller(nil), e.controllers...)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
