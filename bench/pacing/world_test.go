package pacing_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/handover/handovertest"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

const (
	region  = "us-east-1"
	account = "123456789012"
)

// Latencies are how long the cloud's asynchronous work takes. They are
// part of the bound: after its last rate-limited call a handover still
// waits for them.
type Latencies struct {
	Snapshot  time.Duration // CreateSnapshot → completed
	Volume    time.Duration // CreateVolume → available
	Attach    time.Duration // AttachVolume → attached
	InService time.Duration // CONTINUE → InService
	Event     time.Duration // EventBridge → SQS → controller
}

// defaultLatencies are short for EBS, so the bound is the buckets' and not
// the snapshots' own duration.
var defaultLatencies = Latencies{
	Snapshot: 20 * time.Second, Volume: 10 * time.Second, Attach: 5 * time.Second,
	InService: 5 * time.Second, Event: time.Second,
}

// serverBuckets are the EC2 buckets of the issue, on the cloud's side.
// Families without one are not throttled by the cloud (the controller's
// pacer still paces them).
func serverBuckets() map[pacing.Family]pacing.Bucket {
	return map[pacing.Family]pacing.Bucket{
		pacing.FamilySnapshot: {Burst: 100, Refill: 5},
		pacing.FamilyVolume:   {Burst: 100, Refill: 5},
		pacing.FamilyDescribe: {Burst: 100, Refill: 20},
	}
}

// world is the fleet's cloud: handovertest's fake behind EC2's server-side
// token buckets, answering RequestLimitExceeded (handover.ErrThrottled)
// when a bucket is empty, with the asynchronous parts of EC2 and Auto
// Scaling played out on the simulated clock — snapshots complete, volumes
// become available, attachments finish, instances go in service — each
// reported by the event EventBridge would send. Everything runs on the
// simulation's one goroutine.
type world struct {
	*handovertest.Cloud
	clk      *clock.Fake
	lat      Latencies
	limiters map[pacing.Family]*pacing.Limiter
	// other is the rate (calls/s) at which another tool in the account
	// draws from each server bucket; owed carries its fractional calls.
	other map[pacing.Family]float64
	owed  map[pacing.Family]float64

	seq       int
	pending   []job // sorted by at, then seq
	scheduled map[string]bool
	outbox    []message

	calls     map[string]int
	throttles map[pacing.Family]int
}

type jobKind int

const (
	completeSnapshot jobKind = iota
	volumeAvailable
	finishAttach
	inService
)

type job struct {
	at              time.Time
	seq             int
	kind            jobKind
	id              string // snapshot or volume id
	volume          string // the snapshot's volume
	group, instance string
}

// message is an event on its way to the controller's queue.
type message struct {
	at   time.Time
	body string
}

func newWorld(clk *clock.Fake, lat Latencies, other map[pacing.Family]float64) *world {
	w := &world{
		Cloud: handovertest.NewCloud(clk), clk: clk, lat: lat, limiters: map[pacing.Family]*pacing.Limiter{},
		other: other, owed: map[pacing.Family]float64{}, scheduled: map[string]bool{},
		calls: map[string]int{}, throttles: map[pacing.Family]int{},
	}
	for f, b := range serverBuckets() {
		w.limiters[f] = pacing.NewLimiter(b, clk.Now())
	}
	return w
}

// admit counts a call of op and takes a token from its family's server
// bucket, answering as EC2 does when there is none.
func (w *world) admit(f pacing.Family, op string) error {
	w.calls[op]++
	if l := w.limiters[f]; l != nil && !l.Allow(w.clk.Now()) {
		w.throttles[f]++
		return fmt.Errorf("%s: RequestLimitExceeded: Request limit exceeded: %w", op, handover.ErrThrottled)
	}
	return nil
}

// otherTool spends the tokens another tool in the account takes over d.
// Its own throttles are its business.
func (w *world) otherTool(d time.Duration) {
	for _, f := range slices.Sorted(maps.Keys(w.other)) {
		w.owed[f] += w.other[f] * d.Seconds()
		for ; w.owed[f] >= 1; w.owed[f]-- {
			w.limiters[f].Allow(w.clk.Now())
		}
	}
}

func (w *world) schedule(after time.Duration, j job) {
	w.seq++
	j.at, j.seq = w.clk.Now().Add(after), w.seq
	i, _ := slices.BinarySearchFunc(w.pending, j, func(a, b job) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.seq, b.seq))
	})
	w.pending = slices.Insert(w.pending, i, j)
}

func (w *world) send(ev events.Event) error {
	w.seq++
	ev.ID = fmt.Sprintf("ev-%010d", w.seq)
	ev.DetailType, ev.Source = ev.Kind.DetailType(), ev.Kind.Source()
	ev.Region, ev.Account, ev.Time = region, account, w.clk.Now()
	b, err := events.Encode(&ev)
	if err != nil {
		return fmt.Errorf("encoding a %s event: %w", ev.Kind, err)
	}
	w.outbox = append(w.outbox, message{at: w.clk.Now().Add(w.lat.Event), body: string(b)})
	return nil
}

// progress finishes the cloud's work that is due and sends its events.
func (w *world) progress() error {
	now := w.clk.Now()
	for len(w.pending) > 0 && !w.pending[0].at.After(now) {
		j := w.pending[0]
		w.pending = w.pending[1:]
		var err error
		switch j.kind {
		case completeSnapshot:
			if _, ok := w.Snapshot(j.id); !ok {
				continue
			}
			w.CompleteSnapshot(j.id)
			err = w.send(events.Event{Kind: events.KindSnapshot, Snapshot: &events.SnapshotResult{
				SnapshotID: j.id, VolumeID: j.volume, Succeeded: true, Region: region,
			}})
		case volumeAvailable:
			w.MakeAvailable(j.id)
			arn := events.FormatEC2ARN(events.ShapeFull, region, account, "volume", j.id)
			err = w.send(events.Event{Kind: events.KindVolume, Resources: []string{arn},
				Volume: &events.VolumeResult{VolumeID: j.id, Available: true, Region: region}})
		case finishAttach:
			w.FinishAttach(j.id)
		case inService:
			w.SetLifecycle(j.group, j.instance, handover.LifecycleInService)
			err = w.send(events.Event{Kind: events.KindLaunchSuccessful, Launch: &events.LaunchResult{
				Group: j.group, InstanceID: j.instance, ActivityID: "act-" + j.instance, StatusCode: "InProgress", Successful: true,
			}})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// due takes the messages that reached the queue by now.
func (w *world) due() []message {
	now := w.clk.Now()
	i := 0
	for i < len(w.outbox) && !w.outbox[i].at.After(now) {
		i++
	}
	out := w.outbox[:i:i]
	w.outbox = w.outbox[i:]
	return out
}

// ---- handover.Cloud: the throttled calls and those that start work ----

func (w *world) DescribeInstance(ctx context.Context, id string) (handover.Instance, error) {
	if err := w.admit(pacing.FamilyDescribe, "DescribeInstances"); err != nil {
		return handover.Instance{}, err
	}
	return w.Cloud.DescribeInstance(ctx, id)
}

func (w *world) DescribeSnapshot(ctx context.Context, id string) (handover.Snapshot, error) {
	if err := w.admit(pacing.FamilyDescribe, "DescribeSnapshots"); err != nil {
		return handover.Snapshot{}, err
	}
	return w.Cloud.DescribeSnapshot(ctx, id)
}

func (w *world) FindSnapshots(ctx context.Context, tags map[string]string) ([]handover.Snapshot, error) {
	if err := w.admit(pacing.FamilyDescribe, "DescribeSnapshots(tags)"); err != nil {
		return nil, err
	}
	return w.Cloud.FindSnapshots(ctx, tags)
}

func (w *world) DescribeVolume(ctx context.Context, id string) (handover.Volume, error) {
	if err := w.admit(pacing.FamilyDescribe, "DescribeVolumes"); err != nil {
		return handover.Volume{}, err
	}
	return w.Cloud.DescribeVolume(ctx, id)
}

func (w *world) FindVolumes(ctx context.Context, tags map[string]string) ([]handover.Volume, error) {
	if err := w.admit(pacing.FamilyDescribe, "DescribeVolumes(tags)"); err != nil {
		return nil, err
	}
	return w.Cloud.FindVolumes(ctx, tags)
}

func (w *world) CreateSnapshot(ctx context.Context, volumeID string, tags map[string]string) (handover.Snapshot, error) {
	if err := w.admit(pacing.FamilySnapshot, "CreateSnapshot"); err != nil {
		return handover.Snapshot{}, err
	}
	s, err := w.Cloud.CreateSnapshot(ctx, volumeID, tags)
	if err == nil {
		w.schedule(w.lat.Snapshot, job{kind: completeSnapshot, id: s.ID, volume: volumeID})
	}
	return s, err
}

func (w *world) CreateVolume(ctx context.Context, spec handover.VolumeSpec) (handover.Volume, error) {
	if err := w.admit(pacing.FamilyVolume, "CreateVolume"); err != nil {
		return handover.Volume{}, err
	}
	v, err := w.Cloud.CreateVolume(ctx, spec)
	if err == nil && !w.scheduled[v.ID] { // a repeated client token returns the same volume
		w.scheduled[v.ID] = true
		w.schedule(w.lat.Volume, job{kind: volumeAvailable, id: v.ID})
	}
	return v, err
}

func (w *world) AttachVolume(ctx context.Context, volumeID, instanceID, device string) error {
	w.calls["AttachVolume"]++
	err := w.Cloud.AttachVolume(ctx, volumeID, instanceID, device)
	if err == nil {
		w.schedule(w.lat.Attach, job{kind: finishAttach, id: volumeID})
	}
	return err
}

func (w *world) CompleteLifecycleAction(ctx context.Context, ref ledger.HookRef, result string) error {
	w.calls["CompleteLifecycleAction"]++
	err := w.Cloud.CompleteLifecycleAction(ctx, ref, result)
	if err == nil && result == handover.ResultContinue && ref.Hook == launchHook {
		w.schedule(w.lat.InService, job{kind: inService, group: ref.Group, instance: ref.Instance})
	}
	return err
}

func (w *world) DescribeHook(ctx context.Context, group, hook string) (handover.Hook, error) {
	w.calls["DescribeLifecycleHooks"]++
	return w.Cloud.DescribeHook(ctx, group, hook)
}

func (w *world) GroupInstanceState(ctx context.Context, group, instance string) (string, error) {
	w.calls["DescribeAutoScalingInstances"]++
	return w.Cloud.GroupInstanceState(ctx, group, instance)
}

func (w *world) RecordLifecycleActionHeartbeat(ctx context.Context, ref ledger.HookRef) error {
	w.calls["RecordLifecycleActionHeartbeat"]++
	return w.Cloud.RecordLifecycleActionHeartbeat(ctx, ref)
}

func (w *world) DeleteSnapshot(ctx context.Context, id string) error {
	w.calls["DeleteSnapshot"]++
	return w.Cloud.DeleteSnapshot(ctx, id)
}

func (w *world) WaitingActions(ctx context.Context) ([]handover.WaitingAction, error) {
	w.calls["DescribeAutoScalingGroups"]++
	return w.Cloud.WaitingActions(ctx)
}
