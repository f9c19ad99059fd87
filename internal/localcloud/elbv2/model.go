package elbv2

import (
	"context"
	"net/http"
	"time"
)

// The model: what the API creates and what persistence stores. Exported
// fields are persisted; unexported ones are runtime state rebuilt on
// restore. Everything here is guarded by Service.mu.

type loadBalancer struct {
	ARN            string
	Name           string
	ID             string // the last ARN segment, used in log keys
	Scheme         string
	Type           string
	IPAddressType  string
	Subnets        []string `json:",omitempty"`
	SecurityGroups []string `json:",omitempty"`
	Tags           []tag    `json:",omitempty"`
	Attributes     map[string]string
	Created        time.Time
	Seq            int64
}

// elbID is the load balancer's resource id as access logs name it:
// app/NAME/ID.
func (lb *loadBalancer) elbID() string { return "app/" + lb.Name + "/" + lb.ID }

type tag struct{ Key, Value string }

type healthCheck struct {
	Enabled   bool
	Protocol  string
	Port      string // "traffic-port" or a number
	Path      string
	Interval  int // seconds
	Timeout   int // seconds
	Healthy   int // HealthyThresholdCount
	Unhealthy int // UnhealthyThresholdCount
	Matcher   string
}

type targetGroup struct {
	ARN        string
	Name       string
	ID         string
	Protocol   string
	Port       int
	TargetType string
	VpcID      string `json:",omitempty"`
	HC         healthCheck
	Tags       []tag `json:",omitempty"`
	Attributes map[string]string
	Created    time.Time
	Seq        int64
	// Targets are kept in registration order, which is the round-robin
	// order.
	Targets []*target

	rr uint64 // next round-robin slot
}

// find returns the target registered as id:port, or nil.
func (tg *targetGroup) find(id string, port int) *target {
	for _, t := range tg.Targets {
		if t.ID == id && t.Port == port {
			return t
		}
	}
	return nil
}

// Target health states and reasons, as DescribeTargetHealth reports them.
const (
	stateInitial   = "initial"
	stateHealthy   = "healthy"
	stateUnhealthy = "unhealthy"
	stateUnused    = "unused"
	stateDraining  = "draining"

	reasonRegistrationInProgress   = "Elb.RegistrationInProgress"
	reasonInitialHealthChecking    = "Elb.InitialHealthChecking"
	reasonResponseCodeMismatch     = "Target.ResponseCodeMismatch"
	reasonTimeout                  = "Target.Timeout"
	reasonFailedHealthChecks       = "Target.FailedHealthChecks"
	reasonNotRegistered            = "Target.NotRegistered"
	reasonNotInUse                 = "Target.NotInUse"
	reasonDeregistrationInProgress = "Target.DeregistrationInProgress"
	reasonInvalidState             = "Target.InvalidState"
)

type target struct {
	ID         string
	Port       int
	Seq        int64
	Registered time.Time
	// DrainUntil is set while the target is deregistering: it gets no new
	// requests and leaves the group at that time.
	DrainUntil time.Time `json:",omitzero"`

	state       string
	reason      string
	description string
	successes   int    // consecutive
	failures    int    // consecutive
	addr        string // host:port of the last health check, "" before one resolved it

	stopHealth context.CancelFunc // nil while no health loop runs
	// gone is cancelled when the target leaves the group, aborting the
	// requests still in flight to it.
	gone  context.Context
	leave context.CancelFunc
}

func newTarget(id string, port int, seq int64, now time.Time) *target {
	t := &target{ID: id, Port: port, Seq: seq, Registered: now}
	t.reset()
	return t
}

// reset puts the target back where a new registration starts and gives it
// a "gone" context that is not cancelled.
func (t *target) reset() {
	t.resetHealth()
	if t.gone == nil || t.gone.Err() != nil {
		t.gone, t.leave = context.WithCancel(context.Background())
	}
}

// resetHealth forgets every health check result.
func (t *target) resetHealth() {
	t.state, t.reason, t.description = stateInitial, reasonRegistrationInProgress, "Target registration is in progress"
	t.successes, t.failures = 0, 0
}

func (t *target) draining() bool { return !t.DrainUntil.IsZero() }

type listener struct {
	ARN             string
	ID              string
	LoadBalancerARN string
	Protocol        string
	// Port is the port actually bound (what the API reports);
	// RequestedPort is what CreateListener asked for.
	Port           int
	RequestedPort  int
	TargetGroupARN string
	Tags           []tag `json:",omitempty"`
	Seq            int64

	srv *http.Server
}
