package controller_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/handover/handovertest"
	"github.com/handover-dev/handover/internal/ledger"
)

const (
	region     = "us-east-1"
	account    = "123456789012"
	launchHook = "handover-launch"
	termHook   = "handover-terminate"
)

var zones = [2]string{"us-east-1a", "us-east-1b"}

// scriptLen is the number of events one handover of a tenant takes. The
// mix, per handover: two launch lifecycle actions (one an SQS
// redelivery), three snapshot notifications (one redelivered), one volume
// notification, two instance state changes, one launch-successful and one
// terminate lifecycle action — 20 % duplicates, every kind the controller
// consumes but launch-unsuccessful (a failure path, not throughput).
const scriptLen = 10

// cloud is the handovertest fake plus a record of what the controller
// created, so the driver can complete exactly those resources and name them
// in the events it sends — as EC2 would.
type cloud struct {
	*handovertest.Cloud
	mu   sync.Mutex
	made map[string]string // migration-id/purpose → snapshot or volume id
}

func newCloud(clk clock.Clock) *cloud {
	return &cloud{Cloud: handovertest.NewCloud(clk), made: map[string]string{}}
}

func (c *cloud) record(tags map[string]string, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.made[tags[handover.TagMigration]+"/"+tags[handover.TagPurpose]] = id
}

// created returns the id of what migration created for purpose, or "".
func (c *cloud) created(migration, purpose string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.made[migration+"/"+purpose]
}

// CreateSnapshot implements handover.Cloud.
func (c *cloud) CreateSnapshot(ctx context.Context, volumeID string, tags map[string]string) (handover.Snapshot, error) {
	s, err := c.Cloud.CreateSnapshot(ctx, volumeID, tags)
	if err == nil {
		c.record(tags, s.ID)
	}
	return s, err
}

// CreateVolume implements handover.Cloud.
func (c *cloud) CreateVolume(ctx context.Context, spec handover.VolumeSpec) (handover.Volume, error) {
	v, err := c.Cloud.CreateVolume(ctx, spec)
	if err == nil {
		c.record(spec.Tags, v.ID)
	}
	return v, err
}

// tenant is one database handed over again and again, each handover moving
// it from the instance of cycle k to that of cycle k+1, driven by the
// scriptLen events of prepare. Only the goroutine holding the tenant (it is
// in exactly one queue or worker at a time) touches it.
type tenant struct {
	i, ctl      int
	db, group   string
	cycle, step int

	token              string
	oldID, oldIP       string
	oldVol, newVol     string
	newID, newIP, zone string
	// body is the next event; launch and snap are kept for redelivery.
	body, launch, snap string
}

func instanceID(tenant, cycle int) string { return fmt.Sprintf("i-%08x%08x", tenant, cycle) }

// fleet is the world the controllers work on: the fake cloud and service,
// and the tenants.
type fleet struct {
	cloud   *cloud
	svc     *handovertest.Service
	clk     clock.Clock
	tenants []*tenant
	seq     atomic.Int64 // event ids
}

// newFleet creates n tenants, each a running instance holding its
// database's authoritative volume under epoch 1, in cloud and ledger.
func newFleet(ctx context.Context, n int, clk clock.Clock, led ledger.Ledger) (*fleet, error) {
	f := &fleet{cloud: newCloud(clk), svc: handovertest.NewService(), clk: clk}
	for i := range n {
		t := &tenant{i: i, db: fmt.Sprintf("tenant-%05d", i), group: fmt.Sprintf("asg-tenant-%05d", i)}
		t.newID, t.newIP, t.zone = instanceID(i, 0), fmt.Sprintf("ip-%d-0", i), zones[0]
		t.newVol = fmt.Sprintf("vol-%08x", i)
		f.cloud.AddInstance(handover.Instance{ID: t.newID, Zone: t.zone, State: handover.InstanceRunning, PrivateIP: t.newIP})
		f.cloud.AddVolume(handover.Volume{
			ID: t.newVol, Zone: t.zone, State: handover.VolumeInUse, SizeGiB: 20, AttachedTo: t.newID, AttachState: "attached",
			Tags: map[string]string{handover.TagManaged: "true", handover.TagDatabase: t.db},
		})
		f.cloud.AddGroup(t.group, handover.GroupMember{Instance: t.newID, Lifecycle: handover.LifecycleInService})
		f.cloud.AddHook(t.group, launchHook, handover.Hook{
			HeartbeatTimeout: time.Hour, DefaultResult: handover.ResultAbandon, Metadata: fmt.Sprintf(`{"database":%q}`, t.db),
		})
		f.cloud.AddHook(t.group, termHook, handover.Hook{HeartbeatTimeout: time.Hour, DefaultResult: handover.ResultContinue})
		err := led.SaveDatabase(ctx, &ledger.Database{
			ID: t.db, Volume: t.newVol, Zone: t.zone, Instance: t.newID, Group: t.group, Epoch: 1, UpdatedAt: clk.Now(),
		})
		if err != nil {
			return nil, fmt.Errorf("creating tenant %s: %w", t.db, err)
		}
		f.tenants = append(f.tenants, t)
	}
	return f, nil
}

// event encodes one event of kind as EventBridge delivers it to SQS.
func (f *fleet) event(ev events.Event) (string, error) {
	ev.ID = fmt.Sprintf("ev-%012d", f.seq.Add(1))
	ev.DetailType, ev.Source = ev.Kind.DetailType(), ev.Kind.Source()
	ev.Region, ev.Account, ev.Time = region, account, f.clk.Now()
	b, err := events.Encode(&ev)
	if err != nil {
		return "", fmt.Errorf("encoding a %s event: %w", ev.Kind, err)
	}
	return string(b), nil
}

// prepare does to the fake cloud what happened since the tenant's last
// event (a snapshot completing, a volume becoming available, …) and sets
// t.body to the event that reports it. It relies on the previous event
// having advanced the migration as far as the cloud allowed.
func (f *fleet) prepare(t *tenant) error {
	c := f.cloud
	var err error
	switch t.step {
	case 0: // the group launches a replacement, which waits on the launch hook
		t.cycle++
		t.oldID, t.oldIP, t.oldVol = t.newID, t.newIP, t.newVol
		t.newID, t.newIP, t.zone = instanceID(t.i, t.cycle), fmt.Sprintf("ip-%d-%d", t.i, t.cycle), zones[t.cycle%2]
		t.token = fmt.Sprintf("tok-%d-%d", t.i, t.cycle)
		c.AddInstance(handover.Instance{ID: t.newID, Zone: t.zone, State: handover.InstanceRunning, PrivateIP: t.newIP})
		ref := ledger.HookRef{Group: t.group, Hook: launchHook, Token: t.token, Instance: t.newID}
		c.StartAction(ref, handover.TransitionLaunching)
		t.launch, err = f.event(events.Event{Kind: events.KindLaunchAction, Lifecycle: &events.LifecycleAction{
			Group: t.group, Hook: launchHook, Token: t.token, InstanceID: t.newID,
			Transition: events.TransitionLaunching, Metadata: fmt.Sprintf(`{"database":%q}`, t.db),
		}})
		t.body = t.launch
	case 1: // SQS delivers the launch action again
		t.body = t.launch
	case 2:
		t.body, err = f.event(events.Event{Kind: events.KindInstanceState, Resources: []string{instanceARN(t.newID)},
			InstanceState: &events.InstanceStateChange{InstanceID: t.newID, State: handover.InstanceRunning}})
	case 3:
		t.snap, err = f.completeSnapshot(t, ledger.PurposePreCopy)
		t.body = t.snap
	case 4: // SQS delivers the pre-copy notification again
		t.body = t.snap
	case 5:
		t.body, err = f.completeSnapshot(t, ledger.PurposeFinal)
	case 6:
		t.newVol = c.created(t.token, ledger.PurposeTarget)
		if t.newVol == "" {
			return fmt.Errorf("tenant %s: migration %s created no volume", t.db, t.token)
		}
		c.MakeAvailable(t.newVol)
		arn := events.FormatEC2ARN(events.ShapeFull, region, account, "volume", t.newVol)
		t.body, err = f.event(events.Event{Kind: events.KindVolume, Resources: []string{arn},
			Volume: &events.VolumeResult{VolumeID: t.newVol, Available: true, Region: region}})
	case 7: // attached; the service answers; the group will put it in service
		c.FinishAttach(t.newVol)
		c.SetLifecycle(t.group, t.newID, handover.LifecycleInService)
		t.body, err = f.event(events.Event{Kind: events.KindLaunchSuccessful, Launch: &events.LaunchResult{
			Group: t.group, InstanceID: t.newID, ActivityID: "act-" + t.token, StatusCode: "InProgress",
			AvailabilityZone: t.zone, Successful: true,
		}})
	case 8: // the group lets the old instance go, through the terminate hook
		ref := ledger.HookRef{Group: t.group, Hook: termHook, Token: t.token + "-term", Instance: t.oldID}
		c.StartAction(ref, handover.TransitionTerminating)
		t.body, err = f.event(events.Event{Kind: events.KindTerminateAction, Lifecycle: &events.LifecycleAction{
			Group: t.group, Hook: termHook, Token: ref.Token, InstanceID: t.oldID, Transition: events.TransitionTerminating,
		}})
	case 9:
		c.SetInstanceState(t.oldID, handover.InstanceTerminated)
		t.body, err = f.event(events.Event{Kind: events.KindInstanceState, Resources: []string{instanceARN(t.oldID)},
			InstanceState: &events.InstanceStateChange{InstanceID: t.oldID, State: handover.InstanceTerminated}})
	}
	t.step = (t.step + 1) % scriptLen
	return err
}

func (f *fleet) completeSnapshot(t *tenant, purpose string) (string, error) {
	id := f.cloud.created(t.token, purpose)
	if id == "" {
		return "", fmt.Errorf("tenant %s: migration %s created no %s snapshot", t.db, t.token, purpose)
	}
	f.cloud.CompleteSnapshot(id)
	return f.event(events.Event{Kind: events.KindSnapshot, Snapshot: &events.SnapshotResult{
		SnapshotID: id, VolumeID: t.oldVol, Succeeded: true, Region: region,
	}})
}

func instanceARN(id string) string {
	return events.FormatEC2ARN(events.ShapeFull, region, account, "instance", id)
}

// countingLedger counts the ledger calls the controller makes, to explain a
// throughput figure by the work behind each event.
type countingLedger struct {
	ledger.Ledger
	reads, writes, rows atomic.Int64
	commits0            int64 // the SQL store's commits before the timed run
}

func (l *countingLedger) CreateMigration(ctx context.Context, m *ledger.Migration) error {
	l.writes.Add(1)
	return l.Ledger.CreateMigration(ctx, m)
}

func (l *countingLedger) GetMigration(ctx context.Context, id string) (*ledger.Migration, error) {
	l.reads.Add(1)
	return l.Ledger.GetMigration(ctx, id)
}

func (l *countingLedger) SaveMigration(ctx context.Context, m *ledger.Migration) error {
	l.writes.Add(1)
	return l.Ledger.SaveMigration(ctx, m)
}

func (l *countingLedger) ListMigrations(ctx context.Context, q ledger.MigrationQuery) ([]*ledger.Migration, error) {
	l.reads.Add(1)
	ms, err := l.Ledger.ListMigrations(ctx, q)
	l.rows.Add(int64(len(ms)))
	return ms, err
}

func (l *countingLedger) GetDatabase(ctx context.Context, id string) (*ledger.Database, error) {
	l.reads.Add(1)
	return l.Ledger.GetDatabase(ctx, id)
}

func (l *countingLedger) SaveDatabase(ctx context.Context, d *ledger.Database) error {
	l.writes.Add(1)
	return l.Ledger.SaveDatabase(ctx, d)
}

func (l *countingLedger) ListDatabases(ctx context.Context) ([]*ledger.Database, error) {
	l.reads.Add(1)
	ds, err := l.Ledger.ListDatabases(ctx)
	l.rows.Add(int64(len(ds)))
	return ds, err
}

func (l *countingLedger) EventSeen(ctx context.Context, id string, now time.Time) (bool, error) {
	l.reads.Add(1)
	return l.Ledger.EventSeen(ctx, id, now)
}

func (l *countingLedger) MarkEvent(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	l.writes.Add(1)
	return l.Ledger.MarkEvent(ctx, id, now, expires)
}

func (l *countingLedger) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error) {
	l.writes.Add(1)
	return l.Ledger.AcquireLease(ctx, name, holder, now, ttl)
}

func (l *countingLedger) ReleaseLease(ctx context.Context, lease ledger.Lease) error {
	l.writes.Add(1)
	return l.Ledger.ReleaseLease(ctx, lease)
}
