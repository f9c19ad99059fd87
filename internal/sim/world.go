package sim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/pacing"
)

const (
	transitionLaunch    = handover.TransitionLaunching
	transitionTerminate = handover.TransitionTerminating

	lcPending     = "Pending"
	lcPendingWait = handover.LifecyclePendingWait
	lcInService   = handover.LifecycleInService
	lcTermWait    = "Terminating:Wait"
	lcTermProceed = "Terminating:Proceed"
	lcTerminated  = "Terminated"
)

type instance struct {
	id, zone, state, ip, group string
	lifecycle                  string
	readyAt                    time.Time // when the current transition (boot, stop, terminate) ends
	vol                        *volume   // the mounted state volume
	svcUp                      bool
	svcUpAt                    time.Time
	unreachable, unhealthy     bool
	launched, inService        time.Time
	// broken: the simulator itself killed, sickened or cut off this
	// instance, so reads forwarded to it may fail.
	broken bool
	// deregistered: the drain cutover took it out of the load balancer;
	// its connections drain until drainUntil.
	deregistered bool
	drainUntil   time.Time
}

// serving reports whether the instance is in service and answers.
func (i *instance) serving() bool {
	return i.lifecycle == lcInService && i.state == handover.InstanceRunning && !i.unreachable &&
		!i.unhealthy && i.svcUp && i.vol != nil
}

// inLB reports whether a load balancer would send this instance traffic.
func (i *instance) inLB() bool { return i.serving() && !i.deregistered }

// answers reports whether the service on the instance answers a request
// sent to its address (a forwarded one, say): in service or not.
func (i *instance) answers(w *world) bool {
	return i.state == handover.InstanceRunning && !i.unreachable && !w.down[i.zone] && i.svcUp && i.vol != nil
}

type volume struct {
	id, zone, state, snapshotID string
	size                        int32
	data                        map[string]string
	tags                        map[string]string
	created, readyAt            time.Time
	attachedTo, attachState     string
	// gate is the service's write fence; the service persists it on its
	// volume, so it survives a restart of the instance, and a snapshot
	// carries it into a new volume.
	gate *fence.Gate
}

// epoch is the epoch the volume's data is written under: its
// handover:epoch tag (every volume the controller creates has one).
func (v *volume) epoch() int64 {
	e, _ := strconv.ParseInt(v.tags[handover.TagEpoch], 10, 64)
	return e
}

// start is what the service does with its persisted fence when it starts
// on the volume, as kvstore does (fence.StartState).
func (v *volume) start() {
	v.gate = fence.NewGateState(fence.StartState(v.gate.State(), v.epoch(), v.tags[handover.TagStart] == handover.StartFenced))
}

type snapshot struct {
	id, volumeID, state string
	size                int32
	data                map[string]string
	fence               fence.State // the fence state persisted on the volume
	tags                map[string]string
	start, readyAt      time.Time
	deleted             bool
}

type action struct {
	token, group, hook, instance, transition string
	deadline                                 time.Time
	ended                                    bool
	result                                   string
}

type group struct {
	name, db, launchHook, terminateHook, metadata string
	desired                                       int
	members                                       []string
	avoidZone                                     string
	nextLaunchAt                                  time.Time
	launches                                      int
	// trimAt is when the group terminates the members beyond its
	// capacity, after a new instance went in service: the instance
	// warm-up of an instance refresh, during which both old and new are
	// in the load balancer.
	trimAt time.Time
}

// warmupMax bounds how long old and new instances both serve.
const warmupMax = 20 * time.Second

// world is the simulated cloud plus the services running on it. Everything
// happens on the simulator's goroutine; nothing here is concurrent.
type world struct {
	clk   *clock.Fake
	rng   *rand.Rand
	f     Faults
	stats *Stats
	zones []string
	down  map[string]bool
	// excused names, per database, the serving instance the simulator
	// itself broke: failed reads are expected until another one serves.
	excused map[string]string

	instances    map[string]*instance
	volumes      map[string]*volume
	snapshots    map[string]*snapshot
	groups       map[string]*group
	actions      map[string]*action
	clientTokens map[string]string
	limiters     map[pacing.Family]*pacing.Limiter
	hookTimeout  time.Duration

	seq   int
	calls int
	// crashAt arms a controller crash at that call count (0: none).
	crashAt int

	bus        *bus
	violations *[]string
}

type crashSignal struct{}

// maybeCrash kills the controller at the armed call: the simulator recovers
// the panic, drops the controller and later restarts it from the ledger.
func (w *world) maybeCrash() {
	w.calls++
	if w.crashAt > 0 && w.calls >= w.crashAt {
		w.crashAt = 0
		panic(crashSignal{})
	}
}

func (w *world) chance(p float64) bool { return p > 0 && w.rng.Float64() < p }

func (w *world) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(w.rng.Int64N(int64(hi-lo)))
}

func (w *world) id(prefix string) string {
	w.seq++
	return fmt.Sprintf("%s-%017x", prefix, w.seq)
}

func (w *world) violate(format string, args ...any) {
	*w.violations = append(*w.violations, fmt.Sprintf("t=%s ", w.clk.Now().Format("15:04:05"))+fmt.Sprintf(format, args...))
}

func (w *world) emit(ev *events.Event) {
	w.seq++
	ev.ID = fmt.Sprintf("ev-%08d", w.seq)
	ev.Region = "us-east-1"
	ev.Account = "123456789012"
	ev.Time = w.clk.Now()
	ev.DetailType = ev.Kind.DetailType()
	ev.Source = ev.Kind.Source()
	if ev.Snapshot != nil {
		ev.Snapshot.Region = ev.Region
	}
	if ev.Volume != nil {
		ev.Volume.Region = ev.Region
	}
	opts := events.EncodeOptions{SnapshotIDs: events.IDShape(w.rng.IntN(4))}
	if w.rng.IntN(4) == 0 {
		opts.ARNRegion = "us-west-2" // the quirk: ARNs naming another region
	}
	body, err := events.EncodeWith(ev, opts)
	if err != nil {
		w.violate("simulator produced an event it cannot encode: %v", err)
		return
	}
	w.bus.push(string(body))
}

// --- EC2 ---

func (w *world) launch(g *group, zone string) *instance {
	i := &instance{
		id: w.id("i"), zone: zone, state: handover.InstancePending, group: g.name, lifecycle: lcPending,
		readyAt: w.clk.Now().Add(w.between(5*time.Second, 25*time.Second)), launched: w.clk.Now(),
	}
	i.ip = fmt.Sprintf("10.%d.%d.%d", w.seq%250, (w.seq/250)%250, w.seq%7+1)
	w.instances[i.id] = i
	g.members = append(g.members, i.id)
	g.launches++
	return i
}

func (w *world) stopInstance(i *instance) {
	i.state = handover.InstanceStopping
	i.svcUp = false
	i.readyAt = w.clk.Now().Add(w.between(5*time.Second, 30*time.Second))
}

func (w *world) startInstance(i *instance) {
	i.state = handover.InstancePending
	i.readyAt = w.clk.Now().Add(w.between(5*time.Second, 20*time.Second))
}

// kill terminates an instance the way a hardware failure does: no hooks.
func (w *world) kill(i *instance) {
	if i.state == handover.InstanceTerminated || i.state == handover.InstanceShuttingDown {
		return
	}
	i.state = handover.InstanceShuttingDown
	i.svcUp = false
	i.readyAt = w.clk.Now().Add(w.between(2*time.Second, 10*time.Second))
	for _, a := range w.actions {
		if a.instance == i.id && !a.ended {
			a.ended, a.result = true, "instance-gone"
		}
	}
	if i.lifecycle != lcTerminated {
		i.lifecycle = lcTermProceed
	}
}

func (w *world) snapshotVolume(v *volume, tags map[string]string) *snapshot {
	s := &snapshot{
		id: w.id("snap"), volumeID: v.id, state: handover.SnapshotPending, size: v.size,
		data: maps.Clone(v.data), fence: v.gate.State(), tags: maps.Clone(tags), start: w.clk.Now(),
		readyAt: w.clk.Now().Add(w.between(3*time.Second, w.f.SnapshotMax)),
	}
	w.snapshots[s.id] = s
	return s
}

func (w *world) newVolume(zone string, size int32, data map[string]string, tags map[string]string, st fence.State) *volume {
	if data == nil {
		data = map[string]string{}
	}
	v := &volume{
		id: w.id("vol"), zone: zone, state: handover.VolumeCreating, size: size, data: data,
		tags: maps.Clone(tags), created: w.clk.Now(), readyAt: w.clk.Now().Add(w.between(2*time.Second, 20*time.Second)),
		gate: fence.NewGateState(st),
	}
	w.volumes[v.id] = v
	return v
}

func (w *world) attach(v *volume, i *instance) {
	v.attachedTo, v.attachState = i.id, "attaching"
	v.state = handover.VolumeInUse
	v.readyAt = w.clk.Now().Add(w.between(time.Second, 5*time.Second))
}

func (w *world) detach(v *volume) {
	v.attachState = "detaching"
	v.readyAt = w.clk.Now().Add(w.between(time.Second, 5*time.Second))
	if i := w.instances[v.attachedTo]; i != nil && i.vol == v {
		i.vol, i.svcUp = nil, false
	}
}

// --- Auto Scaling ---

func (w *world) startAction(i *instance, transition string) {
	g := w.groups[i.group]
	a := &action{token: w.id("tok"), group: g.name, instance: i.id, transition: transition, deadline: w.clk.Now().Add(w.hookTimeout)}
	kind := events.KindLaunchAction
	a.hook = g.launchHook
	if transition == transitionTerminate {
		kind, a.hook = events.KindTerminateAction, g.terminateHook
	}
	w.actions[a.token] = a
	w.emit(&events.Event{Kind: kind, Lifecycle: &events.LifecycleAction{
		Group: g.name, Hook: a.hook, Token: a.token, InstanceID: i.id, Transition: transition, Metadata: g.metadata,
	}})
}

// beginTerminate moves a group member to Terminating:Wait (it leaves the
// load balancer at once, as with ELB deregistration).
func (w *world) beginTerminate(i *instance) {
	if i.lifecycle == lcTermWait || i.lifecycle == lcTermProceed || i.lifecycle == lcTerminated {
		return
	}
	if i.state != handover.InstanceRunning && i.state != handover.InstanceStopped && i.state != handover.InstanceStopping {
		w.terminate(i)
		return
	}
	i.lifecycle = lcTermWait
	w.startAction(i, transitionTerminate)
}

func (w *world) terminate(i *instance) {
	i.lifecycle = lcTermProceed
	if i.state != handover.InstanceTerminated && i.state != handover.InstanceShuttingDown {
		i.state = handover.InstanceShuttingDown
		i.svcUp = false
		i.readyAt = w.clk.Now().Add(w.between(2*time.Second, 15*time.Second))
	}
}

func (w *world) endAction(a *action, result, why string) {
	a.ended, a.result = true, result
	i := w.instances[a.instance]
	g := w.groups[a.group]
	if i == nil || g == nil {
		return
	}
	if a.transition == transitionTerminate {
		w.terminate(i)
		return
	}
	if result == handover.ResultContinue && i.state == handover.InstanceRunning {
		i.lifecycle = lcInService
		i.inService = w.clk.Now()
		w.emit(&events.Event{Kind: events.KindLaunchSuccessful, Launch: &events.LaunchResult{
			Group: g.name, InstanceID: i.id, ActivityID: w.id("act"), StatusCode: "Successful", AvailabilityZone: i.zone, Successful: true,
		}})
		// Launch before terminate: once a newer instance serves and has
		// warmed up, the group lets the oldest go.
		g.trimAt = w.clk.Now().Add(w.between(0, warmupMax))
		return
	}
	w.terminate(i)
	g.nextLaunchAt = w.clk.Now().Add(w.between(10*time.Second, 60*time.Second))
	w.emit(&events.Event{Kind: events.KindLaunchUnsuccessful, Launch: &events.LaunchResult{
		Group: g.name, InstanceID: i.id, ActivityID: w.id("act"), StatusCode: "Failed",
		StatusMessage:    "instance failed to complete user's Lifecycle Action: Lifecycle Action with token " + a.token + " was abandoned (" + why + ")",
		AvailabilityZone: i.zone,
	}})
}

// trimGroup terminates the longest-serving members beyond the desired
// capacity, as an instance refresh replaces the instances it found.
func (w *world) trimGroup(g *group) {
	var inService []*instance
	for _, id := range g.members {
		if i := w.instances[id]; i.lifecycle == lcInService {
			inService = append(inService, i)
		}
	}
	slices.SortStableFunc(inService, func(a, b *instance) int { return a.inService.Compare(b.inService) })
	for len(inService) > g.desired {
		w.beginTerminate(inService[0])
		inService = inService[1:]
	}
}

func (w *world) active(g *group) int {
	n := 0
	for _, id := range g.members {
		switch w.instances[id].lifecycle {
		case lcPending, lcPendingWait, lcInService:
			n++
		}
	}
	return n
}

func (w *world) pickZone(g *group) string {
	var ok []string
	for _, z := range w.zones {
		if !w.down[z] && z != g.avoidZone {
			ok = append(ok, z)
		}
	}
	if len(ok) == 0 {
		ok = w.zones
	}
	return ok[w.rng.IntN(len(ok))]
}

// --- time ---

// advance moves every timer of the world forward to now.
func (w *world) advance() {
	now := w.clk.Now()
	for _, id := range slices.Sorted(maps.Keys(w.instances)) {
		i := w.instances[id]
		if !i.readyAt.IsZero() && !now.Before(i.readyAt) {
			i.readyAt = time.Time{}
			switch i.state {
			case handover.InstancePending:
				i.state = handover.InstanceRunning
				if i.lifecycle == lcPending {
					i.lifecycle = lcPendingWait
					w.startAction(i, transitionLaunch)
				}
				if i.vol != nil {
					i.svcUpAt = now.Add(w.between(time.Second, 5*time.Second))
				}
			case handover.InstanceStopping:
				i.state = handover.InstanceStopped
				w.emit(&events.Event{Kind: events.KindInstanceState, InstanceState: &events.InstanceStateChange{InstanceID: i.id, State: i.state}})
			case handover.InstanceShuttingDown:
				i.state = handover.InstanceTerminated
				i.lifecycle = lcTerminated
				for _, v := range w.volumes {
					if v.attachedTo == i.id {
						v.attachedTo, v.attachState, v.state = "", "", handover.VolumeAvailable
					}
				}
				i.vol = nil
				if g := w.groups[i.group]; g != nil {
					g.members = slices.DeleteFunc(g.members, func(m string) bool { return m == i.id })
				}
				w.emit(&events.Event{Kind: events.KindInstanceState, InstanceState: &events.InstanceStateChange{InstanceID: i.id, State: i.state}})
			}
		}
		if i.state == handover.InstanceRunning && i.vol != nil && !i.svcUp && !i.svcUpAt.IsZero() && !now.Before(i.svcUpAt) {
			i.svcUp = true
			i.vol.start()
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.volumes)) {
		v := w.volumes[id]
		if v.readyAt.IsZero() || now.Before(v.readyAt) {
			continue
		}
		v.readyAt = time.Time{}
		switch {
		case v.state == handover.VolumeCreating:
			v.state = handover.VolumeAvailable
			w.emit(&events.Event{Kind: events.KindVolume, Resources: []string{events.FormatEC2ARN(events.ShapeFull, "us-east-1", "123456789012", "volume", v.id)},
				Volume: &events.VolumeResult{VolumeID: v.id, Available: true}})
		case v.attachState == "attaching":
			v.attachState = "attached"
			if i := w.instances[v.attachedTo]; i != nil && i.vol == nil {
				i.vol = v
				i.svcUpAt = now.Add(w.between(time.Second, 8*time.Second))
			}
		case v.attachState == "detaching":
			v.attachedTo, v.attachState, v.state = "", "", handover.VolumeAvailable
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.snapshots)) {
		s := w.snapshots[id]
		if s.state != handover.SnapshotPending || now.Before(s.readyAt) {
			continue
		}
		s.state = handover.SnapshotCompleted
		if w.chance(w.f.SnapshotFail) {
			s.state = handover.SnapshotError
		}
		w.emit(&events.Event{Kind: events.KindSnapshot, Snapshot: &events.SnapshotResult{
			SnapshotID: s.id, VolumeID: s.volumeID, Succeeded: s.state == handover.SnapshotCompleted,
		}})
	}
	for _, tok := range slices.Sorted(maps.Keys(w.actions)) {
		a := w.actions[tok]
		if a.ended || now.Before(a.deadline) {
			continue
		}
		w.violate("invariant hooks-end: lifecycle action %s (%s of %s) timed out without CONTINUE or ABANDON", a.token, a.transition, a.instance)
		w.endAction(a, handover.ResultAbandon, "heartbeat timeout")
	}
	for _, name := range slices.Sorted(maps.Keys(w.groups)) {
		g := w.groups[name]
		if !g.trimAt.IsZero() && !now.Before(g.trimAt) {
			g.trimAt = time.Time{}
			w.trimGroup(g)
		}
		// Health checks: an in-service instance that fails them is replaced.
		for _, id := range slices.Clone(g.members) {
			if i := w.instances[id]; i.lifecycle == lcInService && (i.unhealthy || w.down[i.zone]) {
				w.excused[g.db] = i.id
				w.beginTerminate(i)
			}
		}
		if w.active(g) < g.desired && !now.Before(g.nextLaunchAt) && g.launches < maxLaunches {
			w.launch(g, w.pickZone(g))
		}
	}
}

// maxLaunches bounds a group's launches so a seed always ends.
const maxLaunches = 40
