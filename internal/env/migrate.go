package env

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// OpMigrate names a migration: a clone of NAME into NAME-next whose
// quiesce is held, a verify, the entry listener switched to DST, SRC's
// fence lifted, a bake, SRC dropped and DST re-tagged with the old name.
const OpMigrate = "migrate"

// Phases of a migration. Stored by name: never rename one.
const (
	PhaseMigrateClone    = "migrate-clone"    // the clone runs; SRC stays fenced after its snapshots
	PhaseMigrateVerify   = "migrate-verify"   // the clone verified, SRC still fenced
	PhaseMigrateEntry    = "migrate-entry"    // a copy of DST's target group on the entry load balancer, its targets healthy
	PhaseMigrateCutover  = "migrate-cutover"  // one ModifyListener: the entry forwards to DST
	PhaseMigrateSwitched = "migrate-switched" // the write pause reported; SRC stays fenced until its drop
	PhaseMigrateBake     = "migrate-bake"     // DST's targets watched; an unhealthy one fails back
	PhaseMigrateDrop     = "migrate-drop"     // SRC's groups, load balancer parts, RDS deleted
	PhaseMigrateRetag    = "migrate-retag"    // DST tagged with the old name
	PhaseMigrateUnwind   = "migrate-unwind"   // failed: the listener back to SRC, SRC's fences lifted
)

// Kinds of a migration's items.
const (
	itemTempListener = "temporary-listener"
	itemAttach       = "attach" // Name is DST's group, ID the entry's target group
	itemDrop         = "drop"   // Name is "KIND NAME" of SRC's resource
	itemRetag        = "retag"
	// itemListener is a listener, as SetTags takes it.
	KindListener = "listener"
)

// TagDroppedFrom is put on what a migration keeps of the old environment
// (its buckets, unless --delete-data) in place of handover:environment, so
// the environment that now carries the name does not take them in.
const TagDroppedFrom = "handover:dropped-from"

// MigrateCloud is what a migration does to the cloud beyond a clone's
// calls. It is implemented over aws-sdk-go-v2 by awscloud.Migrator. Every
// call is safe to repeat.
type MigrateCloud interface {
	// AttachTargetGroup attaches a target group to a group
	// (AttachLoadBalancerTargetGroups): its InService instances are
	// registered in it, and its later launches and terminations registered
	// and deregistered as for its own. An attached one stays as it is.
	AttachTargetGroup(ctx context.Context, group, tgARN string) error
	// TargetHealth returns each registered target's state (healthy,
	// unhealthy, initial, draining, unused), by instance id.
	TargetHealth(ctx context.Context, tgARN string) (map[string]string, error)
	// CreateTempListener adds a listener to load balancer lbARN that
	// forwards to tgARN, on a port no listener of it uses, so the load
	// balancer health-checks the group's targets before the entry is
	// switched to it. One that forwards to tgARN already is returned.
	CreateTempListener(ctx context.Context, lbARN, tgARN string, tags map[string]string) (string, error)
	// DeleteListener deletes a listener; one that is gone is fine.
	DeleteListener(ctx context.Context, arn string) error
	// SwitchListener sets a listener's default action to forward to
	// tgARN: one ModifyListener call.
	SwitchListener(ctx context.Context, listenerARN, tgARN string) error
	// SetTags sets and removes tags on a resource of kind (group by name,
	// launch-template by id, load-balancer with its listeners, target
	// group and listener by ARN, rds and bucket by name). On a load
	// balancer it also sets them on its listeners, and removes TagEntry
	// from them when remove names it.
	SetTags(ctx context.Context, kind, id string, set map[string]string, remove []string) error
}

// MigrateRequest is what handover env migrate is asked.
type MigrateRequest struct {
	Name string
	// Dest is DST's name; "" is NAME-next.
	Dest string
	// Entry is the entry listener's ARN; "" takes the one tagged
	// handover:entry=true.
	Entry string
	// Bake is how long DST's targets are watched after the cutover.
	Bake time.Duration
	// HealthTimeout is how long the entry's copy of DST's target group
	// may take to have every target healthy before the migration gives up
	// (SRC is fenced meanwhile); 0 is 5 minutes.
	HealthTimeout time.Duration
	DeleteData    bool
	Sets          []Set
	// VerifyCmd is env verify's --verify-cmd, run against DST before the
	// cutover.
	VerifyCmd string
}

// DefaultHealthTimeout is MigrateRequest.HealthTimeout's default.
const DefaultHealthTimeout = 5 * time.Minute

// EntryPlan is the cutover: the entry listener and what it forwards to
// before and after.
type EntryPlan struct {
	Listener     string `json:"listener"`
	Protocol     string `json:"protocol"`
	Port         int32  `json:"port"`
	LoadBalancer string `json:"load_balancer"`
	LBARN        string `json:"load_balancer_arn"`
	// SourceTG is SRC's target group the entry forwards to now.
	SourceTG     string `json:"source_target_group"`
	SourceTGName string `json:"source_target_group_name"`
	// DestTG is DST's copy of it (made by the clone, on DST's load
	// balancer); EntryTG the copy of that on the entry's load balancer
	// (a target group belongs to one load balancer), which the entry
	// forwards to after the cutover.
	DestTG  string `json:"dest_target_group"`
	EntryTG string `json:"entry_target_group"`
	// Groups are DST's groups whose instances are registered in EntryTG
	// (the copies of SRC's groups attached to SourceTG).
	Groups []string `json:"groups"`
}

// MigratePlan is what a migration will do: what --dry-run prints.
type MigratePlan struct {
	Environment   string     `json:"environment"`
	Destination   string     `json:"destination"`
	Clone         *ClonePlan `json:"clone"`
	Entry         EntryPlan  `json:"entry"`
	Bake          string     `json:"bake"`
	HealthTimeout string     `json:"health_timeout"`
	DeleteData    bool       `json:"delete_data"`
	// Drop is what is deleted of SRC after the bake; Keep what stays.
	Drop []Resource `json:"drop"`
	Keep []string   `json:"keep"`
	// Retag is DST's resources tagged with the old name at the end;
	// Unchanged the physical names that cannot follow.
	Retag     []Resource `json:"retag"`
	Unchanged []string   `json:"unchanged"`
	Notes     []string   `json:"notes,omitempty"`
	Sets      []Set      `json:"sets,omitempty"`
	VerifyCmd string     `json:"verify_cmd,omitempty"`
}

// PlanMigrate reads NAME and returns what migrating it will do. It
// refuses what PlanClone refuses, an entry listener it cannot find or
// that several listeners claim, and an entry whose target group no group
// of NAME is behind.
func (r *Runner) PlanMigrate(ctx context.Context, cr CloneReader, req MigrateRequest) (*MigratePlan, error) {
	if err := CheckName(req.Name); err != nil {
		return nil, badRequest{err}
	}
	if req.Dest == "" {
		req.Dest = req.Name + "-next"
	}
	if req.Bake < 0 {
		return nil, badRequestf("--bake %s: want a duration of 0 or more (how long DST's targets are watched after the cutover)", req.Bake)
	}
	if req.HealthTimeout < 0 {
		return nil, badRequestf("--health-timeout %s: want a positive duration", req.HealthTimeout)
	}
	if req.HealthTimeout == 0 {
		req.HealthTimeout = DefaultHealthTimeout
	}
	cp, inv, err := r.PlanClone(ctx, cr, CloneRequest{Source: ByName(req.Name), Dest: req.Dest, Quiesce: QuiesceFence, Sets: req.Sets, HoldQuiesce: true})
	if err != nil {
		if cp != nil {
			return &MigratePlan{Environment: req.Name, Destination: req.Dest, Clone: cp}, err
		}
		return nil, err
	}
	p := &MigratePlan{Environment: req.Name, Destination: req.Dest, Clone: cp, Bake: req.Bake.String(), HealthTimeout: req.HealthTimeout.String(),
		DeleteData: req.DeleteData, Sets: req.Sets, VerifyCmd: req.VerifyCmd, Drop: []Resource{}, Keep: []string{}, Retag: []Resource{}, Unchanged: []string{}}

	// The entry listener.
	var entries []string
	var lb LoadBalancer
	var l Listener
	for _, b := range inv.LoadBalancers {
		for _, li := range b.Listeners {
			if (req.Entry != "" && li.ARN == req.Entry) || (req.Entry == "" && li.Entry) {
				entries = append(entries, li.ARN)
				lb, l = b, li
			}
		}
	}
	switch {
	case len(entries) == 0 && req.Entry != "":
		return nil, badRequestf("--entry %s is not a listener of %s's load balancers (handover env show %s lists them)", req.Entry, req.Name, req.Name)
	case len(entries) == 0:
		return nil, badRequestf("no listener of %s's load balancers is tagged %s=true: tag the entry listener (aws elbv2 add-tags --resource-arns LISTENER_ARN --tags Key=%s,Value=true), or give --entry LISTENER_ARN", req.Name, TagEntry, TagEntry)
	case len(entries) > 1:
		return nil, badRequestf("%d listeners of %s are tagged %s=true (%s): give --entry LISTENER_ARN", len(entries), req.Name, TagEntry, strings.Join(entries, ", "))
	}
	if l.TargetGroup == "" {
		return nil, badRequestf("the entry listener %s forwards to no target group: a migration switches a forward action", l.ARN)
	}
	e := EntryPlan{Listener: l.ARN, Protocol: l.Protocol, Port: l.Port, LoadBalancer: lb.Name, LBARN: lb.ARN, SourceTG: l.TargetGroup}
	for _, tg := range inv.TargetGroups {
		if tg.ARN == l.TargetGroup {
			e.SourceTGName = tg.Name
		}
	}
	e.DestTG = cloneName(KindTargetGroup, e.SourceTGName, req.Name, req.Dest)
	e.EntryTG = e.DestTG + "-entry"
	if err := checkName(KindTargetGroup, e.EntryTG); err != nil {
		return nil, badRequestf("migrating %s: the entry's target group copy: %v (a shorter --to)", req.Name, err)
	}
	for _, g := range inv.Groups {
		if slices.Contains(g.TargetGroups, l.TargetGroup) {
			e.Groups = append(e.Groups, cloneName(KindGroup, g.Name, req.Name, req.Dest))
		}
	}
	if len(e.Groups) == 0 {
		return nil, badRequestf("no group of %s is attached to target group %s, which the entry listener forwards to: nothing of DST would serve behind the entry", req.Name, e.SourceTGName)
	}
	taken, err := cr.Taken(ctx, []Resource{{Kind: KindTargetGroup, Name: e.EntryTG}})
	if err != nil {
		return nil, fmt.Errorf("checking that the target group name %s is free: %w", e.EntryTG, err)
	}
	if len(taken) > 0 {
		return nil, badRequestf("migrating %s into %s would create target group %s, and the name is taken: give another --to", req.Name, req.Dest, e.EntryTG)
	}
	p.Entry = e

	// The drop, after the bake.
	for _, g := range inv.Groups {
		p.Drop = append(p.Drop, Resource{Kind: KindGroup, Name: g.Name})
	}
	for _, b := range inv.LoadBalancers {
		if b.ARN == lb.ARN {
			p.Keep = append(p.Keep, fmt.Sprintf("load balancer %s with its entry listener %s:%d (now forwarding to %s)", b.Name, l.Protocol, l.Port, e.EntryTG))
			continue
		}
		p.Drop = append(p.Drop, Resource{Kind: KindLoadBalancer, Name: b.Name})
	}
	for _, tg := range inv.TargetGroups {
		if forwardedByKept(lb, l, tg.ARN) {
			p.Keep = append(p.Keep, fmt.Sprintf("target group %s (another listener of %s forwards to it)", tg.Name, lb.Name))
			continue
		}
		p.Drop = append(p.Drop, Resource{Kind: KindTargetGroup, Name: tg.Name})
	}
	for _, d := range inv.DBInstances {
		p.Drop = append(p.Drop, Resource{Kind: KindRDS, Name: d.ID})
		p.Keep = append(p.Keep, fmt.Sprintf("final snapshot of RDS instance %s (handover-OPID-final-%s)", d.ID, d.ID))
	}
	for _, b := range inv.Buckets {
		if req.DeleteData {
			p.Drop = append(p.Drop, Resource{Kind: KindBucket, Name: b.Name})
		} else {
			p.Keep = append(p.Keep, fmt.Sprintf("bucket %s, its tag %s replaced by %s (--delete-data empties and deletes it)", b.Name, TagEnvironment, TagDroppedFrom))
		}
	}
	for _, d := range inv.Databases {
		if d.Volume != "" {
			p.Keep = append(p.Keep, fmt.Sprintf("volume %s of database %s, and its snapshot", d.Volume, d.ID))
		}
	}

	// The re-tag: DST takes the old name; its physical names stay.
	for _, c := range cp.Creates {
		if c.Kind == KindDatabase {
			continue
		}
		p.Retag = append(p.Retag, Resource{Kind: c.Kind, Name: c.Name})
		switch c.Kind {
		case KindBucket:
			p.Unchanged = append(p.Unchanged, fmt.Sprintf("bucket %s (S3 names cannot change)", c.Name))
		case KindRDS:
			p.Unchanged = append(p.Unchanged, fmt.Sprintf("RDS instance %s (its identifier and endpoint stay; --keep-ids is not built)", c.Name))
		default:
			p.Unchanged = append(p.Unchanged, fmt.Sprintf("%s %s (cannot be renamed)", c.Kind, c.Name))
		}
	}
	p.Retag = append(p.Retag, Resource{Kind: KindTargetGroup, Name: e.EntryTG})
	p.Notes = append(p.Notes,
		fmt.Sprintf("%s's writes are refused (503 with Retry-After) from its snapshots until the cutover, which waits for DST to be built, verified and healthy behind the entry; reads stay up", req.Name),
		"a fail-back (a DST target unhealthy during the bake) switches the entry back to SRC: writes DST acknowledged after the cutover stay in DST only, and are not copied back")
	return p, nil
}

// forwardedByKept reports whether a listener of the kept entry load
// balancer other than the entry forwards to tg (so tg cannot be deleted).
func forwardedByKept(lb LoadBalancer, entry Listener, tg string) bool {
	for _, l := range lb.Listeners {
		if l.ARN != entry.ARN && l.TargetGroup == tg {
			return true
		}
	}
	return false
}

func decodeMigrate(op *ledger.EnvOp) (*MigratePlan, error) {
	if op.Migration == nil {
		return nil, fmt.Errorf("environment operation %s is a %s without its migration record", op.ID, op.Op)
	}
	var p MigratePlan
	if err := json.Unmarshal(op.Migration.Plan, &p); err != nil || p.Clone == nil {
		return nil, fmt.Errorf("environment operation %s: its migration plan does not read (%v): a ledger written by another handover?", op.ID, err)
	}
	return &p, nil
}

// StartMigrate records a migration of req.Name and returns it with its
// plan. An unfinished migration of the same environment (the last run was
// killed) is returned as it is, to be advanced again.
func (r *Runner) StartMigrate(ctx context.Context, cr CloneReader, req MigrateRequest) (*ledger.EnvOp, *MigratePlan, error) {
	if r.Clone == nil || r.Fence == nil || r.Migrate == nil {
		return nil, nil, errors.New("this runner has no CloneCloud, Fencer or MigrateCloud: it can plan a migration, not run one")
	}
	if err := CheckName(req.Name); err != nil {
		return nil, nil, badRequest{err}
	}
	ops, err := r.led.ListEnvOps(ctx, ledger.EnvOpQuery{Environment: req.Name, Unfinished: true})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the operations of environment %s: %w", req.Name, err)
	}
	for _, o := range ops {
		if o.Op == OpMigrate {
			p, err := decodeMigrate(o)
			return o, p, err
		}
	}
	p, err := r.PlanMigrate(ctx, cr, req)
	if err != nil {
		return nil, p, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the migration's plan: %w", err)
	}
	now := r.clk.Now()
	op := &ledger.EnvOp{
		ID: newID(), Environment: req.Name, SelectorKey: TagEnvironment, Op: OpMigrate,
		State: ledger.UpdateRunning, Phase: PhaseMigrateClone, CreatedAt: now, UpdatedAt: now,
		Migration: &ledger.EnvMigration{Dest: p.Destination, Plan: b, Entry: p.Entry.Listener, EntryLB: p.Entry.LBARN,
			SourceTG: p.Entry.SourceTG, Bake: req.Bake, DeleteData: req.DeleteData},
		Timeline: []ledger.UpdateStep{{Phase: PhaseMigrateClone, Start: now, Note: "into " + p.Destination}},
	}
	if err := r.led.CreateEnvOp(ctx, op); err != nil {
		return nil, nil, fmt.Errorf("recording the migration of environment %s: %w", req.Name, err)
	}
	r.log.Info("migration started", "env-op-id", op.ID, "environment", req.Name, "destination", p.Destination)
	return op, p, nil
}

// migrateFailed is an error retrying cannot mend: the migration unwinds
// (the entry back to SRC if it was switched, SRC's fences lifted) and
// ends Failed, leaving DST for handover env abort.
type migrateFailed struct{ error }

func (m migrateFailed) Unwrap() error { return m.error }

func mfailf(format string, args ...any) error { return migrateFailed{fmt.Errorf(format, args...)} }

// stepMigrate advances a migration by one phase's worth of work.
func (r *Runner) stepMigrate(ctx context.Context, op *ledger.EnvOp) (bool, error) {
	p, err := decodeMigrate(op)
	if err != nil {
		return false, migrateFailed{err}
	}
	switch op.Phase {
	case PhaseMigrateClone:
		return r.migrateClone(ctx, op, p)
	case PhaseMigrateVerify:
		return r.migrateVerify(ctx, op, p)
	case PhaseMigrateEntry:
		return r.migrateEntry(ctx, op, p)
	case PhaseMigrateCutover:
		return r.migrateCutover(ctx, op, p)
	case PhaseMigrateSwitched:
		return r.migrateSwitched(ctx, op)
	case PhaseMigrateBake:
		return r.migrateBake(ctx, op, p)
	case PhaseMigrateDrop:
		return r.migrateDrop(ctx, op, p)
	case PhaseMigrateRetag:
		return r.migrateRetag(ctx, op, p)
	case PhaseMigrateUnwind:
		return r.migrateUnwind(ctx, op)
	}
	return false, fmt.Errorf("migration %s is in phase %q, which has no step (a ledger written by a newer handover?)", op.ID, op.Phase)
}

// migrateUnwinds reports whether a migration in phase unwinds when its
// step keeps failing: until the bake ends. After it SRC is being dropped
// (and a repeat is all that helps); the unwind itself only retries.
func migrateUnwinds(phase string) bool {
	switch phase {
	case PhaseMigrateDrop, PhaseMigrateRetag, PhaseMigrateUnwind:
		return false
	}
	return true
}

// migrateFailure sends a migration that cannot go on to its unwind.
func (r *Runner) migrateFailure(op *ledger.EnvOp, err error) {
	op.Error = err.Error()
	r.phase(op, PhaseMigrateUnwind, "failed: "+err.Error())
	r.say("migration failed, unwinding: %v", err)
}

// mitem returns the migration's item of kind and name, adding it when
// absent. The pointer is valid until the next add.
func mitem(op *ledger.EnvOp, kind, name string) *ledger.EnvItem {
	m := op.Migration
	for i := range m.Items {
		if it := &m.Items[i]; it.Kind == kind && it.Name == name {
			return it
		}
	}
	m.Items = append(m.Items, ledger.EnvItem{Kind: kind, Name: name})
	return &m.Items[len(m.Items)-1]
}

// cloneOf reads the migration's clone.
func (r *Runner) cloneOf(ctx context.Context, op *ledger.EnvOp) (*ledger.EnvOp, *cloneRecord, error) {
	c, err := r.Get(ctx, op.Migration.CloneOp)
	if err != nil {
		return nil, nil, err
	}
	rec, err := decodeClone(c)
	if err != nil {
		return nil, nil, err
	}
	return c, rec, nil
}

// migrateClone starts the clone (once; its id recorded) and advances it
// until it ends. A clone that fails leaves SRC fenced only if it held the
// quiesce; the unwind lifts it.
func (r *Runner) migrateClone(ctx context.Context, op *ledger.EnvOp, p *MigratePlan) (bool, error) {
	m := op.Migration
	if m.CloneOp == "" {
		if r.Reader == nil {
			return false, errors.New("this runner has no CloneReader: it cannot start a migration's clone")
		}
		c, _, err := r.StartClone(ctx, r.Reader, CloneRequest{Source: ByName(op.Environment), Dest: m.Dest, Quiesce: QuiesceFence,
			Sets: p.Sets, HoldQuiesce: true, Parent: op.ID})
		if errors.Is(err, ErrBadRequest) || errors.Is(err, ErrBusy) || errors.Is(err, ErrUnknownEnvironment) {
			return false, mfailf("starting the clone of %s into %s: %w", op.Environment, m.Dest, err)
		}
		if err != nil {
			return false, fmt.Errorf("starting the clone of %s into %s: %w", op.Environment, m.Dest, err)
		}
		m.CloneOp = c.ID
		r.say("clone %s of %s into %s started; %s's fences are held until its drop", c.ID, op.Environment, m.Dest, op.Environment)
		return true, nil
	}
	// The clone's failed steps are recorded on it and retried there.
	if err := r.Advance(ctx, m.CloneOp); err != nil && ctx.Err() != nil {
		return false, err
	}
	c, err := r.Get(ctx, m.CloneOp)
	if err != nil {
		return false, err
	}
	switch c.State {
	case ledger.UpdateSucceeded:
		r.phase(op, PhaseMigrateVerify, "clone "+c.ID+" succeeded")
		return true, nil
	case ledger.UpdateFailed, ledger.UpdateAborted:
		return false, mfailf("the clone %s of %s into %s %s: %s (what it made is left for handover env abort %s)", c.ID, op.Environment, m.Dest, strings.ToLower(string(c.State)), c.Error, op.Environment)
	}
	return false, nil
}

// migrateVerify verifies the clone while SRC is still fenced. Without a
// verifier the migration goes on, but the drop is refused.
func (r *Runner) migrateVerify(ctx context.Context, op *ledger.EnvOp, p *MigratePlan) (bool, error) {
	m := op.Migration
	if r.VerifyClone == nil {
		m.VerifyNote = "not run: this handover has no env verify"
		r.say("verify not run (this handover has no env verify): %s will not be dropped", op.Environment)
	} else {
		rep, err := r.VerifyClone.Verify(ctx, VerifyRequest{CloneOpID: m.CloneOp, VerifyCmd: p.VerifyCmd})
		if err != nil {
			if errors.Is(err, ErrBadRequest) {
				return false, mfailf("verifying clone %s: %w", m.CloneOp, err)
			}
			return false, fmt.Errorf("verifying clone %s: %w", m.CloneOp, err)
		}
		if !rep.OK {
			m.VerifyNote = strings.Join(rep.Mismatches, "; ")
			return false, mfailf("verify of clone %s failed: %s (DST is left for handover env abort %s)", m.CloneOp, orDefault(m.VerifyNote, "no mismatch named"), op.Environment)
		}
		m.Verified = true
		m.VerifyNote = "passed"
		r.say("verified %s against %s's snapshots: every check agreed", m.Dest, op.Environment)
	}
	r.phase(op, PhaseMigrateEntry, m.VerifyNote)
	return true, nil
}

// dstTargets returns the InService instances of DST's groups behind the
// entry.
func (r *Runner) dstTargets(ctx context.Context, p *MigratePlan) ([]string, error) {
	var ids []string
	for _, g := range p.Entry.Groups {
		dg, err := r.cloud.DescribeGroup(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("reading DST's group %s: %w", g, err)
		}
		for _, i := range dg.Instances {
			if i.Lifecycle == lcInService {
				ids = append(ids, i.ID)
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// migrateEntry makes the entry's copy of DST's target group (a target
// group belongs to one load balancer), registers DST's instances in it,
// and puts it behind a temporary listener of the entry's load balancer,
// so its targets are health-checked there before the switch. It waits
// for every one to be healthy, at most the plan's health timeout (SRC's
// writes are paused meanwhile).
func (r *Runner) migrateEntry(ctx context.Context, op *ledger.EnvOp, p *MigratePlan) (bool, error) {
	m := op.Migration
	c, _, err := r.cloneOf(ctx, op)
	if err != nil {
		return false, err
	}
	tags := map[string]string{TagEnvironment: m.Dest, TagEnvOp: op.ID}
	if m.EntryTG == "" {
		dst := findItem(c, KindTargetGroup, p.Entry.DestTG)
		if dst == nil || dst.ID == "" {
			return false, mfailf("the clone %s made no target group %s", c.ID, p.Entry.DestTG)
		}
		it := mitem(op, KindTargetGroup, p.Entry.EntryTG)
		if err := r.save(ctx, op); err != nil {
			return false, err
		}
		arn, err := r.Clone.CreateTargetGroup(ctx, dst.ID, p.Entry.EntryTG, tags)
		if errors.Is(err, ErrNameTaken) {
			return false, mfailf("creating target group %s: %w", p.Entry.EntryTG, err)
		}
		if err != nil {
			return false, fmt.Errorf("creating target group %s: %w", p.Entry.EntryTG, err)
		}
		it = mitem(op, KindTargetGroup, p.Entry.EntryTG)
		it.ID, it.Done = arn, true
		m.EntryTG = arn
		r.say("created target group %s (DST's %s, on the entry's load balancer %s)", p.Entry.EntryTG, p.Entry.DestTG, p.Entry.LoadBalancer)
		return true, nil
	}
	for _, g := range p.Entry.Groups {
		// Attached, not registered: DST's group keeps the entry's target
		// group in step with its instances after the migration too.
		if it := mitem(op, itemAttach, g); !it.Done {
			if err := r.Migrate.AttachTargetGroup(ctx, g, m.EntryTG); err != nil {
				return false, fmt.Errorf("attaching %s to DST's group %s: %w", p.Entry.EntryTG, g, err)
			}
			it = mitem(op, itemAttach, g)
			it.ID, it.Done = m.EntryTG, true
			r.say("attached %s to DST's group %s: its instances are registered in it", p.Entry.EntryTG, g)
		}
	}
	ids, err := r.dstTargets(ctx, p)
	if err != nil {
		return false, err
	}
	if lt := mitem(op, itemTempListener, p.Entry.LoadBalancer); !lt.Done {
		if err := r.save(ctx, op); err != nil {
			return false, err
		}
		arn, err := r.Migrate.CreateTempListener(ctx, m.EntryLB, m.EntryTG, tags)
		if err != nil {
			return false, fmt.Errorf("adding a temporary listener to %s for %s: %w", p.Entry.LoadBalancer, p.Entry.EntryTG, err)
		}
		lt = mitem(op, itemTempListener, p.Entry.LoadBalancer)
		lt.ID, lt.Done = arn, true
		r.say("added a temporary listener to %s forwarding to %s, so its targets are health-checked before the switch", p.Entry.LoadBalancer, p.Entry.EntryTG)
		return true, nil
	}
	health, err := r.Migrate.TargetHealth(ctx, m.EntryTG)
	if err != nil {
		return false, fmt.Errorf("reading the health of %s: %w", p.Entry.EntryTG, err)
	}
	healthy := 0
	for _, id := range ids {
		if health[id] == "healthy" {
			healthy++
		}
	}
	if len(ids) == 0 || healthy < len(ids) {
		limit, _ := time.ParseDuration(p.HealthTimeout)
		if limit <= 0 {
			limit = DefaultHealthTimeout
		}
		if since := r.clk.Now().Sub(op.Timeline[len(op.Timeline)-1].Start); since > limit {
			return false, mfailf("DST's targets in %s: %d of %d healthy after %s (--health-timeout %s)", p.Entry.EntryTG, healthy, len(ids), since.Round(time.Second), limit)
		}
		r.say("waiting for DST's targets in %s: %d of %d healthy", p.Entry.EntryTG, healthy, len(ids))
		return false, nil
	}
	r.phase(op, PhaseMigrateCutover, fmt.Sprintf("%d targets healthy", healthy))
	return true, nil
}

// migrateCutover switches the entry listener to DST with one
// ModifyListener call, then removes the temporary listener (the entry
// forwards to the target group now, so its health checks go on).
func (r *Runner) migrateCutover(ctx context.Context, op *ledger.EnvOp, p *MigratePlan) (bool, error) {
	m := op.Migration
	if m.SwitchedAt.IsZero() {
		if !m.Switching {
			// Intent first: an abort or unwind after a kill here
			// switches back whether or not the call was made.
			m.Switching = true
			if err := r.save(ctx, op); err != nil {
				return false, err
			}
		}
		if err := r.Migrate.SwitchListener(ctx, m.Entry, m.EntryTG); err != nil {
			return false, fmt.Errorf("switching the entry listener %s to %s: %w", m.Entry, p.Entry.EntryTG, err)
		}
		m.SwitchedAt = r.clk.Now()
		r.say("switched the entry listener %s:%d of %s to %s (DST) in one ModifyListener call", p.Entry.Protocol, p.Entry.Port, p.Entry.LoadBalancer, p.Entry.EntryTG)
		return true, nil
	}
	if lt := mitem(op, itemTempListener, p.Entry.LoadBalancer); lt.ID != "" && lt.Detail == "" {
		// A load balancer health-checks only the target groups a listener
		// forwards to: SRC's, now forwarded to by none, would go unused,
		// and a fail-back (or an abort) would switch the entry to targets
		// it does not know are healthy (503s). The temporary listener
		// keeps it checked until the drop.
		if err := r.Migrate.SwitchListener(ctx, lt.ID, m.SourceTG); err != nil {
			return false, fmt.Errorf("pointing the temporary listener %s at %s's target group: %w", lt.ID, op.Environment, err)
		}
		lt.Detail = tempOnSource
		r.say("the temporary listener on %s forwards to %s's target group now, so its targets stay health-checked for a fail-back", p.Entry.LoadBalancer, op.Environment)
	}
	r.phase(op, PhaseMigrateSwitched, "entry switched to "+p.Entry.EntryTG)
	return true, nil
}

// tempOnSource is the temporary listener's Detail once it forwards to
// SRC's target group (after the cutover); "deleted" once it is gone.
const tempOnSource = "forwards to SRC's target group"

// deleteTemp deletes the migration's temporary listener, if it has one.
func (r *Runner) deleteTemp(ctx context.Context, op *ledger.EnvOp, p *MigratePlan) error {
	lt := mitem(op, itemTempListener, p.Entry.LoadBalancer)
	if lt.ID == "" || lt.Detail == "deleted" {
		return nil
	}
	if err := r.Migrate.DeleteListener(ctx, lt.ID); err != nil {
		return fmt.Errorf("deleting the temporary listener %s: %w", lt.ID, err)
	}
	lt.Detail = "deleted"
	return nil
}

// liftHeld lifts the fences the migration's clone holds, and records them
// lifted on the clone. Safe to repeat.
func (r *Runner) liftHeld(ctx context.Context, op *ledger.EnvOp) error {
	if op.Migration.CloneOp == "" {
		return nil
	}
	c, rec, err := r.cloneOf(ctx, op)
	if err != nil {
		return err
	}
	if !c.Cloning.QuiesceHeld {
		return nil
	}
	if err := r.liftFences(ctx, c, rec); err != nil {
		return err
	}
	c.Cloning.QuiesceHeld = false
	c.Cloning.UnquiescedAt = r.clk.Now()
	return r.save(ctx, c)
}

// migrateSwitched reports the write pause and starts the bake. SRC's
// fences stay on until its drop (or a fail-back or an abort lifts them):
// a write that still reaches SRC after the switch (a request in flight
// through the entry, a client holding a connection to SRC's own load
// balancer, the application writing to SRC's RDS) is refused, 503 with
// Retry-After or a read-only transaction, instead of acknowledged by an
// environment about to be dropped and lost with it.
func (r *Runner) migrateSwitched(ctx context.Context, op *ledger.EnvOp) (bool, error) {
	m := op.Migration
	if c, _, err := r.cloneOf(ctx, op); err == nil && !c.Cloning.QuiescedAt.IsZero() {
		r.say("%s's writes paused %s (its snapshots to the cutover); DST takes them since, and %s stays fenced until its drop", op.Environment, m.SwitchedAt.Sub(c.Cloning.QuiescedAt).Round(time.Millisecond), op.Environment)
	}
	if m.Bake > 0 {
		r.say("baking %s: DST's targets behind the entry are watched; one unhealthy fails back to %s", m.Bake, op.Environment)
	}
	r.phase(op, PhaseMigrateBake, "bake "+m.Bake.String())
	return true, nil
}

// migrateBake watches DST's targets behind the entry for the bake: one
// unhealthy fails the migration back.
func (r *Runner) migrateBake(ctx context.Context, op *ledger.EnvOp, p *MigratePlan) (bool, error) {
	m := op.Migration
	if m.Bake > 0 {
		health, err := r.Migrate.TargetHealth(ctx, m.EntryTG)
		if err != nil {
			return false, fmt.Errorf("reading the health of %s: %w", p.Entry.EntryTG, err)
		}
		var bad []string
		for id, st := range health {
			if st == "unhealthy" {
				bad = append(bad, id)
			}
		}
		if len(bad) > 0 {
			slices.Sort(bad)
			return false, mfailf("DST's target %s turned unhealthy %s into the bake: failing back", strings.Join(bad, ", "), r.clk.Now().Sub(m.SwitchedAt).Round(time.Second))
		}
		if m.SwitchedAt.Add(m.Bake).After(r.clk.Now()) {
			return false, nil
		}
		r.say("bake of %s passed: every target of DST stayed healthy behind the entry", m.Bake)
	}
	r.phase(op, PhaseMigrateDrop, "bake passed")
	return true, nil
}

// finalSnapshot is the name of the final snapshot a drop keeps of an RDS
// instance.
func finalSnapshot(op *ledger.EnvOp, instance string) string {
	return "handover-" + op.ID + "-final-" + instance
}

// migrateDrop deletes SRC's groups, load balancers (not the entry's),
// target groups, RDS instances (a final snapshot kept) and, with
// --delete-data, its buckets, each recorded before its call. It is
// refused unless verify passed: SRC is then kept, and DST keeps its name.
func (r *Runner) migrateDrop(ctx context.Context, op *ledger.EnvOp, p *MigratePlan) (bool, error) {
	m := op.Migration
	if !m.Verified || r.Delete == nil {
		why := "verify did not pass (" + m.VerifyNote + ")"
		if m.Verified {
			why = "this handover cannot delete an environment's resources"
		}
		// SRC stays an environment of its own: writable again.
		if err := r.liftHeld(ctx, op); err != nil {
			return false, err
		}
		m.LiftedAt = r.clk.Now()
		m.SourceKept = why
		op.State = ledger.UpdateSucceeded
		r.phase(op, PhaseDone, "")
		op.EndedAt = r.clk.Now()
		r.say("%s serves behind %s's entry; %s is kept, not dropped: %s; %s keeps its name", m.Dest, op.Environment, op.Environment, why, m.Dest)
		return true, nil
	}
	_, rec, err := r.cloneOf(ctx, op)
	if err != nil {
		return false, err
	}
	// No fail-back from here: SRC's target group need not be checked.
	if err := r.deleteTemp(ctx, op, p); err != nil {
		return false, err
	}
	// SRC's databases dropped in the ledger first, so the core neither
	// heals nor boots them while their group goes (their volumes and
	// snapshots are kept).
	for _, sd := range rec.Source.Databases {
		d, err := r.led.GetDatabase(ctx, sd.ID)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("reading %s's database %s: %w", op.Environment, sd.ID, err)
		}
		if d.Dropped() {
			continue
		}
		d.DroppedAt, d.DroppedBy, d.UpdatedAt = r.clk.Now(), op.ID, r.clk.Now()
		if err := r.led.SaveDatabase(ctx, d); err != nil {
			return false, fmt.Errorf("marking %s's database %s dropped: %w", op.Environment, sd.ID, err)
		}
		r.say("database %s of %s dropped in the ledger (its volume %s is kept)", sd.ID, op.Environment, d.Volume)
	}
	arnOf := map[string]string{}
	for _, lb := range rec.Source.LoadBalancers {
		arnOf[KindLoadBalancer+" "+lb.Name] = lb.ARN
	}
	for _, tg := range rec.Source.TargetGroups {
		arnOf[KindTargetGroup+" "+tg.Name] = tg.ARN
	}
	for _, res := range p.Drop {
		it := mitem(op, itemDrop, res.String())
		if it.Done {
			continue
		}
		if err := r.save(ctx, op); err != nil {
			return false, err
		}
		var err error
		switch res.Kind {
		case KindGroup:
			err = r.Delete.DeleteGroup(ctx, res.Name)
		case KindLoadBalancer:
			err = r.Delete.DeleteLoadBalancer(ctx, arnOf[res.String()])
		case KindTargetGroup:
			err = r.Delete.DeleteTargetGroup(ctx, arnOf[res.String()])
		case KindRDS:
			// SRC's groups are gone by now (DeleteOrder): its RDS fence
			// is lifted so that the final snapshot, restored one day,
			// is not a read-only database.
			var c *ledger.EnvOp
			if c, _, err = r.cloneOf(ctx, op); err == nil {
				err = r.liftRDSFences(ctx, c)
			}
			if err == nil {
				m.LiftedAt = r.clk.Now()
				err = r.Delete.DeleteDBInstance(ctx, res.Name, finalSnapshot(op, res.Name))
			}
		case KindBucket:
			err = r.Delete.DeleteBucket(ctx, res.Name)
		}
		if err != nil {
			return false, fmt.Errorf("dropping %s's %s: %w", op.Environment, res, err)
		}
		it = mitem(op, itemDrop, res.String())
		it.Done = true
		if res.Kind == KindRDS {
			it.Detail = "final snapshot " + finalSnapshot(op, res.Name)
		}
		r.say("dropped %s's %s", op.Environment, res)
		if err := r.save(ctx, op); err != nil {
			return false, err
		}
	}
	// The held quiesce ends with SRC: its databases' fences went with
	// their instances (no fence call: the instances are terminated), its
	// RDS fence was lifted before the final snapshot.
	if c, _, err := r.cloneOf(ctx, op); err == nil && c.Cloning.QuiesceHeld {
		c.Cloning.QuiesceHeld = false
		c.Cloning.UnquiescedAt = r.clk.Now()
		if err := r.save(ctx, c); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	r.phase(op, PhaseMigrateRetag, fmt.Sprintf("%d resources of %s dropped", len(p.Drop), op.Environment))
	return true, nil
}

// migrateRetag tags DST's resources with the old name (and without the
// clone's handover:env-op: they are the environment now, not an
// operation's leftovers), takes the entry tag off DST's own load
// balancer's listeners (the entry stays the old one), and moves SRC's
// kept buckets out of the name.
func (r *Runner) migrateRetag(ctx context.Context, op *ledger.EnvOp, p *MigratePlan) (bool, error) {
	m := op.Migration
	c, rec, err := r.cloneOf(ctx, op)
	if err != nil {
		return false, err
	}
	type retag struct {
		kind, id, name string
		set            map[string]string
		remove         []string
	}
	name := map[string]string{TagEnvironment: op.Environment}
	var todo []retag
	for _, it := range c.Cloning.Items {
		id := it.Name
		switch it.Kind {
		case KindTargetGroup, KindLoadBalancer, KindLaunchTemplate:
			id = it.ID
		case KindGroup, KindRDS, KindBucket:
		default:
			continue
		}
		remove := []string{TagEnvOp}
		if it.Kind == KindLoadBalancer {
			remove = append(remove, TagEntry)
		}
		todo = append(todo, retag{it.Kind, id, it.Name, name, remove})
	}
	if m.EntryTG != "" {
		todo = append(todo, retag{KindTargetGroup, m.EntryTG, p.Entry.EntryTG, name, []string{TagEnvOp}})
	}
	if !m.DeleteData {
		for _, b := range rec.Source.Buckets {
			todo = append(todo, retag{KindBucket, b.Name, b.Name, map[string]string{TagDroppedFrom: op.Environment + "/" + op.ID}, []string{TagEnvironment}})
		}
	}
	for _, t := range todo {
		it := mitem(op, itemRetag, t.kind+" "+t.name)
		if it.Done {
			continue
		}
		if err := r.Migrate.SetTags(ctx, t.kind, t.id, t.set, t.remove); err != nil {
			return false, fmt.Errorf("re-tagging %s %s: %w", t.kind, t.name, err)
		}
		it = mitem(op, itemRetag, t.kind+" "+t.name)
		it.Done = true
	}
	m.Unchanged = p.Unchanged
	op.State = ledger.UpdateSucceeded
	r.phase(op, PhaseDone, "")
	op.EndedAt = r.clk.Now()
	r.say("environment %s is now what %s was built as: its resources are tagged %s; these keep their physical names: %s", op.Environment, m.Dest, ByName(op.Environment), strings.Join(p.Unchanged, "; "))
	return true, nil
}

// migrateUnwind ends a failed migration safely: the entry listener back
// to SRC's target group if it was (or may have been) switched, SRC's
// fences lifted. DST is left as it is, for handover env abort (which
// deletes it) or a look at what it holds.
func (r *Runner) migrateUnwind(ctx context.Context, op *ledger.EnvOp) (bool, error) {
	m := op.Migration
	if m.Switching && !m.SwitchedBack {
		if err := r.Migrate.SwitchListener(ctx, m.Entry, m.SourceTG); err != nil {
			return false, fmt.Errorf("switching the entry listener %s back to %s: %w", m.Entry, m.SourceTG, err)
		}
		m.SwitchedBack = true
		r.say("switched the entry listener back to %s's target group", op.Environment)
		if !m.SwitchedAt.IsZero() {
			op.Error += fmt.Sprintf("; writes DST acknowledged between the cutover (%s) and the fail-back are in DST's databases only", m.SwitchedAt.UTC().Format(time.RFC3339))
		}
	}
	if p, err := decodeMigrate(op); err == nil {
		if err := r.deleteTemp(ctx, op, p); err != nil {
			return false, err
		}
	}
	if err := r.liftHeld(ctx, op); err != nil {
		return false, err
	}
	op.State = ledger.UpdateFailed
	r.phase(op, PhaseDone, "")
	op.EndedAt = r.clk.Now()
	r.say("migration of %s failed, %s serves and takes writes again: %s", op.Environment, op.Environment, op.Error)
	return true, nil
}
