// Package localcloud assembles `handover localcloud`: an AWS-compatible
// endpoint backed by real processes and directories. Each service lives in
// its own package and speaks its own protocol; this package only wires them
// together (EC2 instances for Auto Scaling and the load balancers, events
// from EC2 and Auto Scaling through EventBridge into SQS, lifecycle hook
// notifications straight into SQS, S3 for access logs and notifications,
// the OpenSearch-compatible endpoint under /_opensearch, one fault
// injector for all) and routes requests
// to them by the service their signature names.
//
// It must never implement an AWS API itself: behaviour belongs to the
// service packages, wire formats to awsproto.
package localcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/localcloud/autoscaling"
	"github.com/handover-dev/handover/internal/localcloud/awsproto"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
	"github.com/handover-dev/handover/internal/localcloud/elbv2"
	"github.com/handover-dev/handover/internal/localcloud/eventbridge"
	"github.com/handover-dev/handover/internal/localcloud/faults"
	"github.com/handover-dev/handover/internal/localcloud/opensearch"
	"github.com/handover-dev/handover/internal/localcloud/rds"
	"github.com/handover-dev/handover/internal/localcloud/s3"
	"github.com/handover-dev/handover/internal/localcloud/snapstore"
	"github.com/handover-dev/handover/internal/localcloud/sqs"
)

// Config configures a local cloud.
type Config struct {
	// DataDir keeps every service's state, the volumes and the snapshot
	// store; the cloud comes back from it after a restart.
	DataDir string
	Region  string
	// AccountID is the one account every resource belongs to (12 digits).
	AccountID string
	Zones     []string
	// Catalog maps AMI ids to the commands instances run; ec2.DefaultImageID
	// is there too unless the catalog replaces it.
	Catalog map[string]ec2.Image
	// AccessKeys, when non-empty, are the only access key ids accepted.
	AccessKeys []string
	// HealthInterval overrides load balancer health-check intervals (tests).
	HealthInterval time.Duration
	// LogFlushInterval is how often load balancers write their buffered
	// access logs to S3 (default 5m, as ALB does); the demo shortens it.
	LogFlushInterval time.Duration
	// Tick is how often Auto Scaling's group controller runs.
	Tick   time.Duration
	Seed   uint64
	Logger *slog.Logger
	// Subnet is where instances' private (loopback) addresses come from.
	// Unset, the cloud claims a 127.X.0.0/16 no other running local cloud
	// on this machine holds (subnet.go).
	Subnet netip.Prefix
}

func (c *Config) defaults() {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.AccountID == "" {
		c.AccountID = "000000000000"
	}
	if len(c.Zones) == 0 {
		c.Zones = []string{c.Region + "a", c.Region + "b", c.Region + "c"}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Tick <= 0 {
		c.Tick = time.Second
	}
}

// Cloud is a running local cloud.
type Cloud struct {
	cfg    Config
	Faults *faults.Injector

	EC2         *ec2.Service
	AutoScaling *autoscaling.Service
	ELB         *elbv2.Service
	SQS         *sqs.Service
	Events      *eventbridge.Service
	S3          *s3.Service
	// RDS is nil when it could not start (no PostgreSQL here); rdsHandler
	// then says why to every RDS request.
	RDS        *rds.Service
	rdsHandler http.Handler
	OpenSearch *opensearch.Service
	snaps      *snapstore.Store

	router  *Router
	cancel  context.CancelFunc
	closers []func() error
}

// New opens (or reopens) the local cloud in cfg.DataDir and starts its
// background work. Close stops it.
func New(cfg Config) (_ *Cloud, err error) {
	cfg.defaults()
	if cfg.DataDir == "" {
		return nil, errors.New("the local cloud needs a data directory (--data-dir)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", cfg.DataDir, err)
	}
	c := &Cloud{cfg: cfg, Faults: faults.New(cfg.Seed)}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if !cfg.Subnet.IsValid() {
		subnet, claim, err := claimSubnet()
		if err != nil {
			return nil, err
		}
		cfg.Subnet, c.cfg.Subnet = subnet, subnet
		c.closers = append(c.closers, claim.Close)
	}
	dir := func(name string) string { return filepath.Join(cfg.DataDir, name) }
	log := cfg.Logger

	if c.SQS, err = sqs.New(sqs.Config{Region: cfg.Region, AccountID: cfg.AccountID, DataDir: dir("sqs"), Clock: clock.Real{}, Logger: log.With("service", "sqs")}); err != nil {
		return nil, fmt.Errorf("starting SQS: %w", err)
	}
	c.closers = append(c.closers, c.SQS.Close)
	if c.Events, err = eventbridge.New(eventbridge.Config{Region: cfg.Region, AccountID: cfg.AccountID, Queues: c.SQS, DataDir: dir("events"),
		Clock: clock.Real{}, Logger: log.With("service", "events"), Faults: eventFaults{c.Faults}}); err != nil {
		return nil, fmt.Errorf("starting EventBridge: %w", err)
	}
	c.closers = append(c.closers, c.Events.Close)
	if c.S3, err = s3.New(s3.Config{Region: cfg.Region, AccountID: cfg.AccountID, DataDir: dir("s3"), Queues: c.SQS, Logger: log.With("service", "s3")}); err != nil {
		return nil, fmt.Errorf("starting S3: %w", err)
	}
	c.closers = append(c.closers, c.S3.Close)
	if c.RDS, err = rds.New(rds.Config{DataDir: dir("rds"), Region: cfg.Region, AccountID: cfg.AccountID, Zones: cfg.Zones,
		Faults: c.Faults, Clock: clock.Real{}, Logger: log.With("service", "rds")}); err != nil {
		// Every other service works without PostgreSQL; RDS requests get
		// the reason instead.
		log.Warn("rds is unavailable", "error", err)
		c.RDS, c.rdsHandler = nil, rds.Unavailable(err)
	} else {
		c.rdsHandler = c.RDS
		c.closers = append(c.closers, c.RDS.Close)
	}
	if c.OpenSearch, err = opensearch.New(opensearch.Config{DataDir: dir("opensearch"), Faults: c.Faults, Clock: clock.Real{}, Logger: log.With("service", "opensearch")}); err != nil {
		return nil, fmt.Errorf("starting the OpenSearch endpoint: %w", err)
	}
	c.closers = append(c.closers, c.OpenSearch.Close)
	if c.snaps, err = snapstore.Open(dir("snapshots"), log.With("service", "snapshots")); err != nil {
		return nil, fmt.Errorf("opening the snapshot store: %w", err)
	}
	c.closers = append(c.closers, c.snaps.Close)
	if c.EC2, err = ec2.New(ec2.Config{DataDir: dir("ec2"), Region: cfg.Region, AccountID: cfg.AccountID, Zones: cfg.Zones, Catalog: cfg.Catalog,
		Subnet: cfg.Subnet, Snapshots: c.snaps, Publisher: c.Events, Faults: c.Faults, Clock: clock.Real{}, Logger: log.With("service", "ec2")}); err != nil {
		return nil, fmt.Errorf("starting EC2: %w", err)
	}
	c.closers = append(c.closers, c.EC2.Close)
	if c.ELB, err = elbv2.New(elbv2.Config{Region: cfg.Region, AccountID: cfg.AccountID, Instances: elbInstances{c.EC2}, Logs: c.S3, Faults: c.Faults,
		DataDir: dir("elbv2"), HealthInterval: cfg.HealthInterval, LogFlushInterval: cfg.LogFlushInterval, Clock: clock.Real{}, Logger: log.With("service", "elasticloadbalancing"),
		// ALB fails open: with every target unhealthy it routes to all
		// of them, as AWS documents.
		FailOpen: true}); err != nil {
		return nil, fmt.Errorf("starting ELBv2: %w", err)
	}
	c.closers = append(c.closers, c.ELB.Close)
	if c.AutoScaling, err = autoscaling.New(autoscaling.Config{Region: cfg.Region, AccountID: cfg.AccountID, Instances: asgInstances{c.EC2},
		Publisher: c.Events, Notifier: hookTargets{c.SQS}, Targets: c.ELB, Faults: c.Faults, DataDir: dir("autoscaling"), Clock: clock.Real{},
		Logger: log.With("service", "autoscaling"), Tick: cfg.Tick}); err != nil {
		return nil, fmt.Errorf("starting Auto Scaling: %w", err)
	}
	c.closers = append(c.closers, c.AutoScaling.Close)

	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.ELB.Start(ctx)
	c.AutoScaling.Start(ctx)

	keys := map[string]bool{}
	for _, k := range cfg.AccessKeys {
		keys[k] = true
	}
	c.router = &Router{
		Services: map[string]http.Handler{
			ServiceEC2: c.EC2, ServiceAutoScaling: c.AutoScaling, ServiceELB: c.ELB,
			ServiceSQS: c.SQS, ServiceEvents: c.Events, ServiceS3: c.S3, ServiceRDS: c.rdsHandler,
		},
		AccessKeys: keys,
		Admin:      c.adminHandler(),
		OpenSearch: c.OpenSearch.Handler(OpenSearchPrefix),
	}
	return c, nil
}

// Handler serves every service and the admin API.
func (c *Cloud) Handler() http.Handler { return c.router }

// Close stops every service, last started first.
func (c *Cloud) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		if err := c.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	c.closers = nil
	return errors.Join(errs...)
}

// asgInstances lets Auto Scaling launch and watch EC2 instances in-process.
type asgInstances struct{ ec2 *ec2.Service }

func (a asgInstances) Launch(ctx context.Context, req autoscaling.LaunchRequest) (autoscaling.InstanceInfo, error) {
	lr := ec2.LaunchRequest{
		LaunchTemplateID: req.LaunchTemplateID, LaunchTemplateName: req.LaunchTemplateName, Version: req.Version,
		Zone: req.Zone, Tags: req.Tags,
	}
	if c := req.Configuration; c != nil {
		lr.ImageID, lr.InstanceType, lr.UserData = c.ImageID, c.InstanceType, c.UserData
	}
	info, err := a.ec2.Launch(ctx, lr)
	return asgInfo(info), err
}

func (a asgInstances) Terminate(ctx context.Context, id string) error {
	err := a.ec2.Terminate(ctx, id)
	if isNotFound(err) {
		return nil
	}
	return err
}

func (a asgInstances) Instance(ctx context.Context, id string) (autoscaling.InstanceInfo, error) {
	info, err := a.ec2.Instance(ctx, id)
	if isNotFound(err) {
		return autoscaling.InstanceInfo{}, fmt.Errorf("instance %s: %w", id, autoscaling.ErrInstanceNotFound)
	}
	return asgInfo(info), err
}

func (a asgInstances) Zones() []string { return a.ec2.Zones() }

func asgInfo(i ec2.InstanceInfo) autoscaling.InstanceInfo {
	return autoscaling.InstanceInfo{ID: i.ID, Zone: i.Zone, State: i.State, PrivateIP: i.PrivateIP, LaunchTime: i.LaunchTime, ProcessAlive: i.ProcessAlive}
}

func isNotFound(err error) bool {
	var ae *awsproto.Error
	return errors.As(err, &ae) && ae.Code == "InvalidInstanceID.NotFound"
}

// hookTargets delivers lifecycle hook notifications to the hooks' SQS
// queues. The local cloud has no SNS or Lambda: any other ARN is a target
// that does not exist.
type hookTargets struct{ sqs *sqs.Service }

func (h hookTargets) Notify(ctx context.Context, targetARN, body string) error {
	if parts := strings.SplitN(targetARN, ":", 6); len(parts) < 6 || parts[0] != "arn" || parts[2] != "sqs" {
		return fmt.Errorf("notification target %s: the local cloud delivers lifecycle hook notifications to SQS queues only: %w", targetARN, autoscaling.ErrNoTarget)
	}
	err := h.sqs.SendByARN(ctx, targetARN, body)
	if errors.Is(err, sqs.ErrNoSuchQueue) {
		return fmt.Errorf("%w: %w", autoscaling.ErrNoTarget, err)
	}
	return err
}

// elbInstances resolves load balancer targets to instance addresses.
type elbInstances struct{ ec2 *ec2.Service }

func (e elbInstances) PrivateIP(ctx context.Context, id string) (string, bool, error) {
	info, err := e.ec2.Instance(ctx, id)
	if err != nil {
		return "", false, err
	}
	return info.PrivateIP, info.State == "running", nil
}

// eventFaults applies the injector's event rules to EventBridge deliveries.
type eventFaults struct{ in *faults.Injector }

func (f eventFaults) Fault(d eventbridge.Delivery) eventbridge.Fault {
	var ev struct {
		DetailType string `json:"detail-type"`
	}
	_ = json.Unmarshal([]byte(d.Body), &ev)
	x := f.in.Event(ev.DetailType)
	out := eventbridge.Fault{Drop: x.Drop, Delay: x.Delay, Reorder: x.Reorder}
	if x.Duplicate {
		out.Duplicates = 1
	}
	return out
}
