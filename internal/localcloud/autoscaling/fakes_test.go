package autoscaling

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/events"
)

// fakeInstances is an in-memory EC2.
type fakeInstances struct {
	mu    sync.Mutex
	clock *clock.Fake
	zones []string
	n     int
	insts map[string]*InstanceInfo
	// LaunchErr fails launches into a zone, TerminateErr terminations of
	// an instance; NextErr fails the next call of any method once.
	LaunchErr    map[string]error
	TerminateErr map[string]error
	NextErr      error
	// BeforeLaunch, if set, runs at the start of each Launch, outside the
	// fake's lock, so a test can call the API while a launch is under way.
	BeforeLaunch func(LaunchRequest)
	Launches     []LaunchRequest
	// Terminations lists every Terminate call, repeats included.
	Terminations []string
}

var _ Instances = (*fakeInstances)(nil)

func newFakeInstances(c *clock.Fake, zones ...string) *fakeInstances {
	return &fakeInstances{clock: c, zones: zones, insts: map[string]*InstanceInfo{}, LaunchErr: map[string]error{}, TerminateErr: map[string]error{}}
}

func (f *fakeInstances) takeErr() error {
	err := f.NextErr
	f.NextErr = nil
	return err
}

func (f *fakeInstances) Launch(_ context.Context, req LaunchRequest) (InstanceInfo, error) {
	if f.BeforeLaunch != nil {
		f.BeforeLaunch(req)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return InstanceInfo{}, err
	}
	if err := f.LaunchErr[req.Zone]; err != nil {
		return InstanceInfo{}, err
	}
	f.n++
	f.Launches = append(f.Launches, req)
	info := &InstanceInfo{ID: f.nthID(f.n - 1), Zone: req.Zone, State: "running", PrivateIP: fmt.Sprintf("10.0.0.%d", f.n), LaunchTime: f.clock.Now(), ProcessAlive: true}
	f.insts[info.ID] = info
	return *info, nil
}

// nthID is the id Launch gives the nth (0-based) instance it launches.
func (f *fakeInstances) nthID(n int) string { return fmt.Sprintf("i-%017x", n+1) }

func (f *fakeInstances) Terminate(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return err
	}
	if err := f.TerminateErr[id]; err != nil {
		return err
	}
	f.Terminations = append(f.Terminations, id)
	i, ok := f.insts[id]
	if !ok {
		return fmt.Errorf("terminating %s: %w", id, ErrInstanceNotFound)
	}
	i.State, i.ProcessAlive = "terminated", false
	return nil
}

func (f *fakeInstances) Instance(_ context.Context, id string) (InstanceInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return InstanceInfo{}, err
	}
	i, ok := f.insts[id]
	if !ok {
		return InstanceInfo{}, fmt.Errorf("describing %s: %w", id, ErrInstanceNotFound)
	}
	return *i, nil
}

func (f *fakeInstances) Zones() []string { return slices.Clone(f.zones) }

// kill makes an instance's process die, as a crash would.
func (f *fakeInstances) kill(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.insts[id].ProcessAlive = false
}

func (f *fakeInstances) state(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i, ok := f.insts[id]; ok {
		return i.State
	}
	return ""
}

func (f *fakeInstances) terminated(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.Terminations, id)
}

func (f *fakeInstances) launchZones() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.Launches {
		out = append(out, l.Zone)
	}
	return out
}

// fakeSubnets adds subnets to fakeInstances.
type fakeSubnets struct {
	*fakeInstances
	subnets map[string]string
}

var _ SubnetResolver = fakeSubnets{}

func (f fakeSubnets) SubnetZone(_ context.Context, id string) (string, error) {
	if z, ok := f.subnets[id]; ok {
		return z, nil
	}
	return "", fmt.Errorf("subnet %s: %w", id, ErrSubnetNotFound)
}

// fakePublisher records published events.
type fakePublisher struct {
	mu      sync.Mutex
	NextErr error
	Events  [][]byte
}

var _ Publisher = (*fakePublisher)(nil)

func (f *fakePublisher) Publish(_ context.Context, event []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.NextErr; err != nil {
		f.NextErr = nil
		return err
	}
	f.Events = append(f.Events, slices.Clone(event))
	return nil
}

func (f *fakePublisher) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Events = nil
}

// decoded returns the published events of one detail-type, decoded with
// the events package (which proves their shape) where it knows them.
func (f *fakePublisher) decoded(t *testing.T, detailType string) []*events.Event {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*events.Event
	for _, raw := range f.Events {
		var head struct {
			DetailType string `json:"detail-type"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			t.Fatalf("published event is not JSON: %v\n%s", err, raw)
		}
		if head.DetailType != detailType {
			continue
		}
		e, err := events.Decode(raw)
		if err != nil {
			t.Fatalf("published %s event does not decode: %v\n%s", detailType, err, raw)
		}
		out = append(out, e)
	}
	return out
}

// raw returns the published events of one detail-type as JSON objects.
func (f *fakePublisher) raw(t *testing.T, detailType string) []map[string]any {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, b := range f.Events {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("published event is not JSON: %v", err)
		}
		if m["detail-type"] == detailType {
			out = append(out, m)
		}
	}
	return out
}

// fakeTargets is an in-memory ELBv2.
type fakeTargets struct {
	mu         sync.Mutex
	registered map[string]map[string]bool // target group → instance
	unhealthy  map[string]bool            // instance
	warming    map[string]bool            // instance: registered, health checks not yet passed
	Calls      []string
}

var (
	_ Targets         = (*fakeTargets)(nil)
	_ TargetReadiness = (*fakeTargets)(nil)
)

// Ready implements TargetReadiness.
func (f *fakeTargets) Ready(_ context.Context, tg, id string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.registered[tg][id] || (!f.warming[id] && !f.unhealthy[id]), nil
}

func (f *fakeTargets) setWarming(id string, warming bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.warming[id] = warming
}

func newFakeTargets() *fakeTargets {
	return &fakeTargets{registered: map[string]map[string]bool{}, unhealthy: map[string]bool{}, warming: map[string]bool{}}
}

func (f *fakeTargets) Register(_ context.Context, tg, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "register "+id)
	if f.registered[tg] == nil {
		f.registered[tg] = map[string]bool{}
	}
	f.registered[tg][id] = true
	return nil
}

func (f *fakeTargets) Deregister(_ context.Context, tg, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, "deregister "+id)
	delete(f.registered[tg], id)
	return nil
}

func (f *fakeTargets) Health(_ context.Context, tg, id string) (bool, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.registered[tg][id] {
		return false, false, nil
	}
	return !f.unhealthy[id], true, nil
}

func (f *fakeTargets) isRegistered(tg, id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registered[tg][id]
}

func (f *fakeTargets) setUnhealthy(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unhealthy[id] = true
}

// fakeFaults fails chosen actions.
type fakeFaults struct {
	mu    sync.Mutex
	fail  map[string]error
	Calls []string
}

var _ FaultInjector = (*fakeFaults)(nil)

func (f *fakeFaults) Inject(_ context.Context, service, action string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, service+":"+action)
	return f.fail[action]
}

func (f *fakeFaults) set(action string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]error{}
	}
	f.fail[action] = err
}

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeNotifier is the hook notification targets: the queues in Targets
// exist; everything else is ErrNoTarget.
type fakeNotifier struct {
	mu      sync.Mutex
	Targets map[string]bool
	NextErr error
	Sent    []sentNotification
}

type sentNotification struct{ Target, Body string }

var _ Notifier = (*fakeNotifier)(nil)

func newFakeNotifier(targets ...string) *fakeNotifier {
	f := &fakeNotifier{Targets: map[string]bool{}}
	for _, t := range targets {
		f.Targets[t] = true
	}
	return f
}

func (f *fakeNotifier) Notify(_ context.Context, target, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.NextErr; err != nil {
		f.NextErr = nil
		return err
	}
	if !f.Targets[target] {
		return fmt.Errorf("sending to %s: %w", target, ErrNoTarget)
	}
	f.Sent = append(f.Sent, sentNotification{target, body})
	return nil
}

func (f *fakeNotifier) add(target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Targets[target] = true
}

func (f *fakeNotifier) drop(target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.Targets, target)
}

// take returns and forgets what was sent.
func (f *fakeNotifier) take() []sentNotification {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.Sent
	f.Sent = nil
	return out
}

func (f *fakeNotifier) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Sent, f.NextErr = nil, nil
}
