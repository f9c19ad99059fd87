package elbv2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

// ServiceName is the name passed to FaultInjector.Inject: the endpoint
// prefix and signing name of ELBv2.
const ServiceName = "elasticloadbalancing"

// Instances resolves an EC2 instance to the address the load balancer
// sends traffic and health checks to. The local cloud's EC2 service
// implements it.
type Instances interface {
	// PrivateIP returns the instance's private IPv4 address and whether the
	// instance is running. An unknown (or long-terminated) instance is an
	// error. It is read-only and safe to repeat.
	PrivateIP(ctx context.Context, instanceID string) (ip string, running bool, err error)
}

// ObjectPutter stores access-log objects. The local cloud's S3 implements
// it.
type ObjectPutter interface {
	// PutObject writes body under bucket/key, replacing any object there.
	// It is safe to repeat. A missing bucket is an error.
	PutObject(ctx context.Context, bucket, key string, body []byte) error
}

// FaultInjector lets tests make API calls fail on demand.
type FaultInjector interface {
	// Inject returns a non-nil error (ideally an *awsproto.Error) when the
	// call service/action should fail; it may also sleep to add latency.
	Inject(ctx context.Context, service, action string) error
}

// Config configures a Service. The zero value of every optional field
// takes the default named in its comment.
type Config struct {
	Region    string // required, e.g. us-east-1
	AccountID string // required, 12 digits

	// Instances resolves instance targets (required).
	Instances Instances
	// Logs receives access-log objects; nil disables access logs (enabling
	// them through ModifyLoadBalancerAttributes is then refused).
	Logs ObjectPutter
	// Faults, when set, is consulted before every API call.
	Faults FaultInjector

	// DataDir holds the persisted state (elbv2.json); "" keeps everything
	// in memory.
	DataDir string
	// ListenHost is the address listeners bind to (default 127.0.0.1). It
	// is also the DNSName the API reports for every load balancer.
	ListenHost string

	Clock  clock.Clock  // default clock.Real
	Logger *slog.Logger // default: discard

	// HealthInterval, when set, replaces every target group's
	// HealthCheckIntervalSeconds, so tests can check every few
	// milliseconds; zero uses each group's own interval.
	HealthInterval time.Duration
	// LogFlushInterval is how often buffered access-log lines are written
	// to the bucket (default 5m, as on AWS).
	LogFlushInterval time.Duration
	// ProvisioningTime is how long a new load balancer reports
	// "provisioning" before "active" (default 0: CreateLoadBalancer
	// answers provisioning, every later Describe active). Listeners serve
	// traffic from the start either way.
	ProvisioningTime time.Duration
	// FailOpen makes a listener whose target group has no healthy target
	// route to the unhealthy ones instead of answering 503, as ALB
	// documents for a group whose every target fails its health checks.
	// Default off: only healthy targets get traffic.
	FailOpen bool
}

// Default values.
const (
	DefaultListenHost       = "127.0.0.1"
	DefaultLogFlushInterval = 5 * time.Minute
	// minHealthInterval bounds HealthInterval so a typo cannot turn health
	// checks into a busy loop.
	minHealthInterval = 10 * time.Millisecond
)

var accountRE = regexp.MustCompile(`^[0-9]{12}$`)

// Validate reports what is wrong with c, if anything, without applying
// defaults.
func (c Config) Validate() error {
	var errs []error
	if c.Region == "" {
		errs = append(errs, errors.New("elbv2: Region is required (e.g. us-east-1)"))
	}
	if !accountRE.MatchString(c.AccountID) {
		errs = append(errs, fmt.Errorf("elbv2: AccountID %q must be 12 digits", c.AccountID))
	}
	if c.Instances == nil {
		errs = append(errs, errors.New("elbv2: Instances is required to resolve instance targets"))
	}
	if c.ListenHost != "" && net.ParseIP(c.ListenHost) == nil && c.ListenHost != "localhost" {
		errs = append(errs, fmt.Errorf("elbv2: ListenHost %q must be an IP address or localhost", c.ListenHost))
	}
	if c.HealthInterval != 0 && c.HealthInterval < minHealthInterval {
		errs = append(errs, fmt.Errorf("elbv2: HealthInterval %v is below the minimum %v", c.HealthInterval, minHealthInterval))
	}
	if c.LogFlushInterval < 0 {
		errs = append(errs, fmt.Errorf("elbv2: LogFlushInterval %v must not be negative", c.LogFlushInterval))
	}
	if c.ProvisioningTime < 0 {
		errs = append(errs, fmt.Errorf("elbv2: ProvisioningTime %v must not be negative", c.ProvisioningTime))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.ListenHost == "" {
		c.ListenHost = DefaultListenHost
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LogFlushInterval == 0 {
		c.LogFlushInterval = DefaultLogFlushInterval
	}
	return c
}
