// Package faults injects failures into the local cloud on demand, so every
// failure path of handover can be tested against real processes: throttled
// or failing API calls, added latency, slow snapshots, and misbehaving event
// delivery. Rules are added and removed at run time through the admin API
// (`handover localcloud fault …`).
//
// It must never fail a call no rule names: with no rules the local cloud
// behaves exactly as without this package.
package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// Kinds of API faults.
const (
	Throttle = "throttle" // RequestLimitExceeded / Throttling, HTTP 503 or 400 as the service does
	Error    = "error"    // a 5xx InternalError
	Latency  = "latency"  // the call succeeds after a delay
)

// Kinds of snapshot faults (service ec2): a snapshot that takes at least
// Delay, or one that ends in the error state.
const (
	SlowSnapshot = "slow-snapshot"
	FailSnapshot = "fail-snapshot"
)

// Kinds of event faults.
const (
	Drop      = "drop"
	Duplicate = "duplicate"
	Delay     = "delay"
	Reorder   = "reorder"
)

// Rule is one fault.
type Rule struct {
	ID string `json:"id"`
	// Service and Action select calls ("ec2", "CreateSnapshot"); empty or
	// "*" matches any. Event rules use service "events".
	Service string `json:"service"`
	Action  string `json:"action,omitempty"`
	Kind    string `json:"kind"`
	// Rate is the chance a matching call is hit (default 1).
	Rate float64 `json:"rate,omitempty"`
	// Count limits how many calls are hit (0: unlimited).
	Count int `json:"count,omitempty"`
	// Delay is the added latency, or an event's delay.
	Delay time.Duration `json:"delay,omitempty"`
	Hits  int           `json:"hits"`
}

// Validate says what is wrong with r.
func (r Rule) Validate() error {
	switch r.Kind {
	case Throttle, Error, FailSnapshot:
	case Latency, Delay, SlowSnapshot:
		if r.Delay <= 0 {
			return fmt.Errorf("a %s fault needs a positive delay", r.Kind)
		}
	case Drop, Duplicate, Reorder:
	default:
		return fmt.Errorf("unknown fault kind %q: use throttle, error, latency, slow-snapshot, fail-snapshot (API) or drop, duplicate, delay, reorder (events)", r.Kind)
	}
	if r.Rate < 0 || r.Rate > 1 {
		return fmt.Errorf("rate %v must be between 0 and 1", r.Rate)
	}
	if r.Count < 0 {
		return fmt.Errorf("count %d must not be negative", r.Count)
	}
	isEvent := slices.Contains([]string{Drop, Duplicate, Delay, Reorder}, r.Kind)
	switch {
	case isEvent && r.Service != "events":
		return fmt.Errorf("%s is an event fault: set service to events (action: the event's detail-type, or empty for all)", r.Kind)
	case !isEvent && r.Service == "events":
		return fmt.Errorf("%s is an API fault: events take drop, duplicate, delay or reorder", r.Kind)
	}
	return nil
}

// Injector holds the rules. It is safe for concurrent use.
type Injector struct {
	mu    sync.Mutex
	rules []*Rule
	seq   int
	rng   *rand.Rand
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns an injector with no rules.
func New(seed uint64) *Injector {
	return &Injector{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Add installs a rule and returns it with its id.
func (in *Injector) Add(r Rule) (Rule, error) {
	if r.Rate == 0 {
		r.Rate = 1
	}
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.seq++
	r.ID = fmt.Sprintf("f-%d", in.seq)
	r.Hits = 0
	in.rules = append(in.rules, &r)
	return r, nil
}

// Remove deletes a rule; it reports whether it existed.
func (in *Injector) Remove(id string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := len(in.rules)
	in.rules = slices.DeleteFunc(in.rules, func(r *Rule) bool { return r.ID == id })
	return len(in.rules) != n
}

// Clear deletes every rule.
func (in *Injector) Clear() {
	in.mu.Lock()
	in.rules = nil
	in.mu.Unlock()
}

// Rules returns copies of the rules.
func (in *Injector) Rules() []Rule {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]Rule, 0, len(in.rules))
	for _, r := range in.rules {
		out = append(out, *r)
	}
	return out
}

// hit returns the first rule of the given kinds that fires for the call.
func (in *Injector) hit(service, action string, kinds ...string) *Rule {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range in.rules {
		if !slices.Contains(kinds, r.Kind) || !match(r.Service, service) || !match(r.Action, action) {
			continue
		}
		if r.Count > 0 && r.Hits >= r.Count {
			continue
		}
		if r.Rate < 1 && in.rng.Float64() >= r.Rate {
			continue
		}
		r.Hits++
		c := *r
		return &c
	}
	return nil
}

func match(pattern, v string) bool {
	return pattern == "" || pattern == "*" || strings.EqualFold(pattern, v)
}

// Inject is called by a service at the start of every API call. It sleeps
// for latency faults and returns the error of a throttle or error fault.
func (in *Injector) Inject(ctx context.Context, service, action string) error {
	if r := in.hit(service, action, Latency); r != nil {
		if err := in.sleep(ctx, r.Delay); err != nil {
			return err
		}
	}
	r := in.hit(service, action, Throttle, Error)
	switch {
	case r == nil:
		return nil
	case r.Kind == Throttle:
		if service == "ec2" {
			return awsproto.Throttled(action)
		}
		// The awsquery and JSON services call it Throttling, with 400.
		return &awsproto.Error{Code: "Throttling", Message: "Rate exceeded", Status: http.StatusBadRequest}
	default:
		return awsproto.Internal("injected fault %s on %s:%s", r.ID, service, action)
	}
}

// EventFault says what to do with one event delivery.
type EventFault struct {
	Drop, Duplicate, Reorder bool
	Delay                    time.Duration
}

// Event decides the fate of one event of detailType on its way to a
// queue.
func (in *Injector) Event(detailType string) EventFault {
	var f EventFault
	if in.hit("events", detailType, Drop) != nil {
		f.Drop = true
		return f
	}
	f.Duplicate = in.hit("events", detailType, Duplicate) != nil
	f.Reorder = in.hit("events", detailType, Reorder) != nil
	if r := in.hit("events", detailType, Delay); r != nil {
		f.Delay = r.Delay
	}
	return f
}

// SnapshotFault is asked by EC2 when a snapshot starts: how much longer it
// must take, and whether it fails.
func (in *Injector) SnapshotFault(snapshotID, volumeID string) (time.Duration, error) {
	var d time.Duration
	if r := in.hit("ec2", "CreateSnapshot", SlowSnapshot); r != nil {
		d = r.Delay
	}
	if r := in.hit("ec2", "CreateSnapshot", FailSnapshot); r != nil {
		return d, fmt.Errorf("injected snapshot failure (fault %s)", r.ID)
	}
	return d, nil
}

// ErrNoRule is returned when removing a rule that does not exist.
var ErrNoRule = errors.New("no such fault rule")
