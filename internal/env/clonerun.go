package env

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// OpClone names a clone operation.
const OpClone = "clone"

// Phases of a clone. Stored by name: never rename one.
const (
	PhaseCloneQuiesce   = "clone-quiesce"   // SRC's databases fenced (or its instances to Standby)
	PhaseCloneSnapshot  = "clone-snapshot"  // EBS and RDS snapshots started
	PhaseCloneUnquiesce = "clone-unquiesce" // SRC's writes back, as soon as every snapshot started
	PhaseCloneCopy      = "clone-copy"      // DST's buckets copied by checksum; snapshots completed
	PhaseCloneBuild     = "clone-build"     // DST's resources made
	PhaseCloneWait      = "clone-wait"      // DST's groups in service, its databases booted from the snapshots
)

// Kinds of a clone's items besides the Kind* resources.
const (
	itemFence       = "fence"
	itemRDSFence    = "rds-fence" // Name: SRC's instance; Detail: the databases made read-only, as JSON
	itemEBSSnapshot = "ebs-snapshot"
	itemRDSSnapshot = "rds-snapshot"
	itemCopy        = "bucket-copy"
)

// TagDatabase is put on a clone's EBS snapshots: the SRC database each is of.
const TagDatabase = "handover:database"

// Fencer sets and lifts a database's write fence on its instance:
// handover.HTTPService.
type Fencer interface {
	Fence(ctx context.Context, t handover.Target, epoch int64) error
	Unfence(ctx context.Context, t handover.Target, epoch int64) error
}

// cloneRecord is what a clone's ledger record keeps: the plan, SRC as the
// plan read it, and the user data of each of SRC's groups. DST is built
// from this record, not from SRC as it is later.
type cloneRecord struct {
	Plan     *ClonePlan        `json:"plan"`
	Source   *Inventory        `json:"source"`
	UserData map[string]string `json:"user_data,omitempty"` // by SRC group
}

func decodeClone(op *ledger.EnvOp) (*cloneRecord, error) {
	if op.Cloning == nil {
		return nil, fmt.Errorf("environment operation %s is a %s without its clone record", op.ID, op.Op)
	}
	var rec cloneRecord
	if err := json.Unmarshal(op.Cloning.Plan, &rec); err != nil || rec.Plan == nil || rec.Source == nil {
		return nil, fmt.Errorf("environment operation %s: its clone record does not read (%v): a ledger written by another handover?", op.ID, err)
	}
	return &rec, nil
}

// cloneFailed is an error retrying cannot mend: the clone ends (after
// lifting SRC's quiesce if it is still on).
type cloneFailed struct{ error }

func (c cloneFailed) Unwrap() error { return c.error }

func failf(format string, args ...any) error { return cloneFailed{fmt.Errorf(format, args...)} }

// StartClone records a clone of req.Source into req.Dest and returns it
// with its plan. A clone of the same SRC into the same DST that has not
// ended (the last run was killed) is returned as it is, to be advanced
// again. Everything PlanClone refuses is refused, and nothing is recorded.
func (r *Runner) StartClone(ctx context.Context, cr CloneReader, req CloneRequest) (*ledger.EnvOp, *ClonePlan, error) {
	if r.Clone == nil || r.Fence == nil {
		return nil, nil, errors.New("this runner has no CloneCloud or Fencer: it can plan a clone, not run one")
	}
	ops, err := r.led.ListEnvOps(ctx, ledger.EnvOpQuery{Environment: req.Source.Value, Unfinished: true})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the operations of environment %s: %w", req.Source.Value, err)
	}
	for _, o := range ops {
		if o.Op == OpClone && o.Cloning != nil && o.Cloning.Dest == req.Dest {
			rec, err := decodeClone(o)
			if err != nil {
				return nil, nil, err
			}
			return o, rec.Plan, nil
		}
	}
	plan, inv, err := r.PlanClone(ctx, cr, req)
	if err != nil {
		return nil, plan, err
	}
	b, err := json.Marshal(cloneRecord{Plan: plan, Source: inv, UserData: plan.userData})
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the clone's plan: %w", err)
	}
	now := r.clk.Now()
	op := &ledger.EnvOp{
		ID: newID(), Environment: req.Source.Value, SelectorKey: req.Source.Key, Op: OpClone,
		State: ledger.UpdateRunning, Phase: PhaseCloneQuiesce, CreatedAt: now, UpdatedAt: now,
		Cloning:  &ledger.EnvClone{Dest: req.Dest, Plan: b},
		Timeline: []ledger.UpdateStep{{Phase: PhaseCloneQuiesce, Start: now, Note: "by " + plan.Quiesce}},
	}
	if plan.Quiesce == QuiesceStandby {
		for _, g := range inv.Groups {
			op.Groups = append(op.Groups, ledger.EnvGroup{Name: g.Name, Min: g.Min, Max: g.Max, Desired: g.Desired})
		}
	}
	if err := r.led.CreateEnvOp(ctx, op); err != nil {
		return nil, nil, fmt.Errorf("recording the clone of environment %s into %s: %w", req.Source.Value, req.Dest, err)
	}
	r.log.Info("clone started", "env-op-id", op.ID, "environment", req.Source.Value, "destination", req.Dest, "quiesce", plan.Quiesce)
	return op, plan, nil
}

// stepClone advances a clone by one phase's worth of work.
func (r *Runner) stepClone(ctx context.Context, op *ledger.EnvOp) (bool, error) {
	rec, err := decodeClone(op)
	if err != nil {
		return false, cloneFailed{err}
	}
	switch op.Phase {
	case PhaseCloneQuiesce:
		return r.cloneQuiesce(ctx, op, rec)
	case PhaseCloneSnapshot:
		return r.cloneSnapshot(ctx, op, rec)
	case PhaseCloneUnquiesce:
		return r.cloneUnquiesce(ctx, op, rec)
	case PhaseCloneCopy:
		return r.cloneCopy(ctx, op, rec)
	case PhaseCloneBuild:
		return r.cloneBuild(ctx, op, rec)
	case PhaseCloneWait:
		return r.cloneWait(ctx, op, rec)
	}
	return false, fmt.Errorf("clone %s is in phase %q, which has no step (a ledger written by a newer handover?)", op.ID, op.Phase)
}

// cloneFailure ends a clone that cannot go on: before SRC is un-quiesced,
// by un-quiescing it first.
func (r *Runner) cloneFailure(op *ledger.EnvOp, err error) {
	op.Error = err.Error()
	switch op.Phase {
	case PhaseCloneQuiesce, PhaseCloneSnapshot:
		op.Abort = true
		r.phase(op, PhaseCloneUnquiesce, "failed: lifting the quiesce: "+err.Error())
		r.say("clone failed, lifting %s's quiesce: %v", op.Environment, err)
	default:
		r.endClone(op, ledger.UpdateFailed)
		r.say("clone failed: %v", err)
	}
}

func (r *Runner) endClone(op *ledger.EnvOp, state ledger.UpdateState) {
	op.State = state
	r.phase(op, PhaseDone, "")
	op.EndedAt = r.clk.Now()
}

// item returns the clone's item of kind and name, adding it when absent.
// The pointer is valid until the next add.
func item(op *ledger.EnvOp, kind, name string) (*ledger.EnvItem, bool) {
	for i := range op.Cloning.Items {
		if it := &op.Cloning.Items[i]; it.Kind == kind && it.Name == name {
			return it, true
		}
	}
	op.Cloning.Items = append(op.Cloning.Items, ledger.EnvItem{Kind: kind, Name: name})
	return &op.Cloning.Items[len(op.Cloning.Items)-1], false
}

// findItem returns the clone's item of kind and name, or nil.
func findItem(op *ledger.EnvOp, kind, name string) *ledger.EnvItem {
	for i := range op.Cloning.Items {
		if it := &op.Cloning.Items[i]; it.Kind == kind && it.Name == name {
			return it
		}
	}
	return nil
}

// dstTags are the tags on everything the clone makes.
func dstTags(op *ledger.EnvOp) map[string]string {
	return map[string]string{TagEnvironment: op.Cloning.Dest, TagEnvOp: op.ID}
}

// parallel runs f for each of n items at once and joins their errors.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// cloneQuiesce fences every database of the plan under the epoch the plan
// read, all at once (or, with --quiesce standby, moves the groups'
// instances to Standby). A database the ledger shows moved since the plan
// (another epoch or volume, or claimed by a handover) fails the clone:
// its snapshot would not be of the data the plan named.
func (r *Runner) cloneQuiesce(ctx context.Context, op *ledger.EnvOp, rec *cloneRecord) (bool, error) {
	if op.Cloning.QuiescedAt.IsZero() {
		// RDS snapshots only an available instance: wait for each before
		// pausing SRC's writes, not while they are paused.
		for _, s := range rec.Plan.Snapshots {
			if s.Kind != "rds" {
				continue
			}
			status, _, err := r.Clone.DBInstanceState(ctx, s.Of)
			if err != nil {
				return false, fmt.Errorf("reading RDS instance %s: %w", s.Of, err)
			}
			if status != "available" {
				r.say("waiting for RDS instance %s (%s) before quiescing %s: it can be snapshotted only when available", s.Of, status, op.Environment)
				return false, nil
			}
		}
		op.Cloning.QuiescedAt = r.clk.Now()
	}
	if rec.Plan.Quiesce == QuiesceStandby {
		return r.stepStandby(ctx, op)
	}
	type fenceCall struct {
		db     string
		target handover.Target
		epoch  int64
	}
	var calls []fenceCall
	for _, f := range rec.Plan.Fence {
		d, err := r.led.GetDatabase(ctx, f.Database)
		if err != nil {
			return false, fmt.Errorf("reading database %s: %w", f.Database, err)
		}
		if it := findItem(op, itemFence, f.Database); it != nil && it.Done {
			continue
		}
		if d.Epoch != f.Epoch || d.Volume != f.Volume || d.Claim != "" {
			return false, failf("database %s moved since the plan (epoch %d on %s, claimed by %q; the plan read epoch %d on %s): run the clone again for a new plan", f.Database, d.Epoch, d.Volume, d.Claim, f.Epoch, f.Volume)
		}
		addr, err := r.Clone.InstanceAddr(ctx, d.Instance)
		if err != nil {
			return false, fmt.Errorf("finding the address of instance %s (database %s): %w", d.Instance, f.Database, err)
		}
		it, _ := item(op, itemFence, f.Database)
		it.ID, it.Detail = d.Instance, fmt.Sprintf("epoch %d at %s", f.Epoch, addr)
		calls = append(calls, fenceCall{db: f.Database, target: handover.Target{Instance: d.Instance, Addr: addr}, epoch: f.Epoch})
	}
	if len(calls) > 0 {
		// Intent first: a run killed mid-call leaves the fences recorded,
		// and the un-quiesce lifts every recorded one.
		if err := r.save(ctx, op); err != nil {
			return false, err
		}
		start := r.clk.Now()
		err := parallel(len(calls), func(i int) error {
			c := calls[i]
			if err := r.Fence.Fence(ctx, c.target, c.epoch); err != nil {
				if errors.Is(err, fence.ErrStaleEpoch) {
					return failf("fencing database %s on %s: its service has seen a newer epoch than %d (a handover moved it): %w", c.db, c.target.Instance, c.epoch, err)
				}
				return fmt.Errorf("fencing database %s on %s under epoch %d: %w", c.db, c.target.Instance, c.epoch, err)
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		for _, c := range calls {
			findItem(op, itemFence, c.db).Done = true
		}
		r.say("fenced %s under their epochs in %s: writes pause, reads go on", plural(len(calls), "database"), r.clk.Now().Sub(start).Round(time.Millisecond))
	}
	if rec.Plan.HoldQuiesce {
		if err := r.fenceRDS(ctx, op, rec); err != nil {
			return false, err
		}
	}
	r.phase(op, PhaseCloneSnapshot, plural(len(rec.Plan.Snapshots), "snapshot"))
	return true, nil
}

// rdsSnapshotName is the clone's manual snapshot of an RDS instance.
func rdsSnapshotName(op *ledger.EnvOp, instance string) string {
	return "handover-" + op.ID + "-" + instance
}

// cloneSnapshot starts every snapshot of the plan at once: EBS snapshots
// of the databases' volumes (point-in-time once pending), RDS snapshots.
// It waits for none to complete.
func (r *Runner) cloneSnapshot(ctx context.Context, op *ledger.EnvOp, rec *cloneRecord) (bool, error) {
	var todo []SnapshotPlan
	for _, s := range rec.Plan.Snapshots {
		kind := itemEBSSnapshot
		if s.Kind == "rds" {
			kind = itemRDSSnapshot
		}
		it, _ := item(op, kind, s.Of)
		if !it.Started {
			it.Detail = s.Volume
			todo = append(todo, s)
		}
	}
	reads := r.manifestsToRead(op, rec)
	if len(todo) > 0 {
		if err := r.save(ctx, op); err != nil {
			return false, err
		}
		ids := make([]string, len(todo))
		start := r.clk.Now()
		read := r.readManifests(ctx, reads)
		err := parallel(len(todo), func(i int) error {
			s := todo[i]
			if s.Kind == "rds" {
				name := rdsSnapshotName(op, s.Of)
				if err := r.Clone.SnapshotDBInstance(ctx, s.Of, name, dstTags(op)); err != nil {
					return fmt.Errorf("starting the RDS snapshot of %s: %w", s.Of, err)
				}
				ids[i] = name
				return nil
			}
			tags := map[string]string{TagEnvOp: op.ID, TagDatabase: s.Of}
			id, err := r.Clone.SnapshotVolume(ctx, s.Volume, tags)
			if err != nil {
				return fmt.Errorf("starting the EBS snapshot of volume %s (database %s): %w", s.Volume, s.Of, err)
			}
			ids[i] = id
			return nil
		})
		for i, s := range todo {
			if ids[i] == "" {
				continue
			}
			kind := itemEBSSnapshot
			if s.Kind == "rds" {
				kind = itemRDSSnapshot
			}
			it := findItem(op, kind, s.Of)
			it.ID, it.Started = ids[i], true
		}
		took := r.clk.Now().Sub(start)
		r.recordManifests(op, read(), start)
		if err != nil {
			return false, errors.Join(err, r.save(ctx, op))
		}
		r.say("started %s in %s", plural(len(todo), "snapshot"), took.Round(time.Millisecond))
	} else if len(reads) > 0 {
		r.recordManifests(op, r.readManifests(ctx, reads)(), r.clk.Now())
	}
	r.phase(op, PhaseCloneUnquiesce, "every snapshot started")
	return true, nil
}

// liftQuiesce lifts every fence the clone recorded (or brings the
// standby's instances back), and reports done once nothing is left to
// lift. A service fenced under a newer epoch since is a handover's now,
// and left alone. Safe to repeat.
func (r *Runner) liftQuiesce(ctx context.Context, op *ledger.EnvOp, rec *cloneRecord) (more, done bool, err error) {
	if rec.Plan.Quiesce == QuiesceStandby {
		more, err := r.stepResume(ctx, op)
		unrestored := slices.ContainsFunc(op.Groups, func(g ledger.EnvGroup) bool { return !g.Restored })
		if err != nil || unrestored {
			return more, false, err
		}
		return true, true, nil
	}
	if err := r.liftFences(ctx, op, rec); err != nil {
		return false, false, err
	}
	return true, true, nil
}

// cloneUnquiesce lifts SRC's quiesce (liftQuiesce) and records the write
// pause. A clone that holds its quiesce (a migration's) lifts nothing
// here: it records the fence as held, and its migration lifts it after
// the cutover.
func (r *Runner) cloneUnquiesce(ctx context.Context, op *ledger.EnvOp, rec *cloneRecord) (bool, error) {
	if rec.Plan.HoldQuiesce && !op.Abort {
		op.Cloning.QuiesceHeld = true
		r.say("holding %s's fences through the cutover to its drop: its writes stay paused, reads go on", op.Environment)
		r.phase(op, PhaseCloneCopy, "quiesce held for the migration's cutover")
		return true, nil
	}
	if more, done, err := r.liftQuiesce(ctx, op, rec); err != nil || !done {
		return more, err
	}
	op.Cloning.UnquiescedAt = r.clk.Now()
	op.Cloning.QuiesceHeld = false
	pause := op.Cloning.UnquiescedAt.Sub(op.Cloning.QuiescedAt)
	if op.Abort {
		r.endClone(op, ledger.UpdateFailed)
		r.say("clone of %s failed; %s is un-quiesced (its writes paused %s): %s", op.Environment, op.Environment, pause.Round(time.Millisecond), op.Error)
		return true, nil
	}
	r.say("%s's write pause: %s (quiesce to the last snapshot's start)", op.Environment, pause.Round(time.Millisecond))
	r.phase(op, PhaseCloneCopy, "write pause "+pause.Round(time.Millisecond).String())
	return true, nil
}

// liftFences lifts every fence the clone op recorded, under the epoch its
// plan fenced with. Safe to repeat: an unfenced service answers the lift
// again, one fenced under a newer epoch since (a handover's) is left
// alone, and an instance that is gone took its fence with it.
func (r *Runner) liftFences(ctx context.Context, op *ledger.EnvOp, rec *cloneRecord) error {
	var fences []ledger.EnvItem
	for _, it := range op.Cloning.Items {
		if it.Kind == itemFence {
			fences = append(fences, it)
		}
	}
	epochOf := map[string]int64{}
	for _, f := range rec.Plan.Fence {
		epochOf[f.Database] = f.Epoch
	}
	err := parallel(len(fences), func(i int) error {
		f := fences[i]
		addr, err := r.Clone.InstanceAddr(ctx, f.ID)
		if errors.Is(err, handover.ErrNotFound) {
			return nil // the instance is gone, and its fence with it
		}
		if err != nil {
			return fmt.Errorf("finding the address of instance %s (database %s): %w", f.ID, f.Name, err)
		}
		err = r.Fence.Unfence(ctx, handover.Target{Instance: f.ID, Addr: addr}, epochOf[f.Name])
		if err != nil && !errors.Is(err, fence.ErrStaleEpoch) {
			return fmt.Errorf("lifting the fence of database %s on %s: %w", f.Name, f.ID, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(fences) > 0 {
		r.say("lifted %s: %s writes again", plural(len(fences), "fence"), op.Environment)
	}
	return r.liftRDSFences(ctx, op)
}

// fenceRDS makes SRC's RDS instances refuse writes until the migration's
// cutover, before their snapshots start: a write SRC's RDS acknowledged
// after the snapshot's point in time would be lost when traffic moves to
// DST, restored from it. A plain clone leaves SRC's RDS writable (RDS
// snapshots are taken online): its SRC goes on serving, and DST is a copy
// as of the snapshot, not SRC's successor. The databases to fence are
// recorded before any is touched, so a run killed mid-fence leaves the
// fence recorded and every lift lifts it; fencing again converges.
func (r *Runner) fenceRDS(ctx context.Context, op *ledger.EnvOp, rec *cloneRecord) error {
	var todo []*ledger.EnvItem
	for _, s := range rec.Plan.Snapshots {
		if s.Kind != "rds" {
			continue
		}
		if r.RDSFence == nil {
			return failf("this runner cannot fence RDS instance %s (no RDS master password): a migration needs SRC's RDS refusing writes from its snapshot to the cutover", s.Of)
		}
		it, _ := item(op, itemRDSFence, s.Of)
		if it.Done {
			continue
		}
		if !it.Started {
			dbs, unfenceable, err := r.RDSFence.RDSFenceTargets(ctx, s.Of)
			if err != nil {
				return fmt.Errorf("listing the databases of RDS instance %s to fence: %w", s.Of, err)
			}
			if len(unfenceable) > 0 {
				r.say("RDS instance %s: %s not fenced, owned by a role its master user is not a member of: writes to them after the snapshot would be lost", s.Of, strings.Join(unfenceable, ", "))
			}
			raw, _ := json.Marshal(dbs)
			it.Detail, it.Started = string(raw), true
			if err := r.save(ctx, op); err != nil {
				return err
			}
		}
		todo = append(todo, it)
	}
	start := r.clk.Now()
	ended := 0
	for _, it := range todo {
		dbs, err := rdsFenceDBs(it)
		if err != nil {
			return err
		}
		n, err := r.RDSFence.FenceRDS(ctx, it.Name, dbs)
		if err != nil {
			return fmt.Errorf("fencing RDS instance %s: %w", it.Name, err)
		}
		it.Done = true
		ended += n
		r.say("fenced RDS instance %s: %s (%s) read-only by default_transaction_read_only, %s ended: its writes pause until the cutover", it.Name, plural(len(dbs), "database"), strings.Join(dbs, ", "), plural(n, "other session"))
	}
	if len(todo) > 0 {
		r.log.Info("rds fenced", "env-op-id", op.ID, "instances", len(todo), "sessions_ended", ended, "took", r.clk.Now().Sub(start))
	}
	return nil
}

// rdsFenceDBs reads the databases an RDS fence item recorded.
func rdsFenceDBs(it *ledger.EnvItem) ([]string, error) {
	var dbs []string
	if err := json.Unmarshal([]byte(it.Detail), &dbs); err != nil {
		return nil, fmt.Errorf("the RDS fence of %s records its databases as %q, which does not read: %w", it.Name, it.Detail, err)
	}
	return dbs, nil
}

// liftRDSFences lifts every RDS fence the clone op recorded (put on, or
// maybe put on by a killed run). Safe to repeat; an instance that is gone
// took its fence with it.
func (r *Runner) liftRDSFences(ctx context.Context, op *ledger.EnvOp) error {
	var lifted []string
	for i := range op.Cloning.Items {
		it := &op.Cloning.Items[i]
		if it.Kind != itemRDSFence || !it.Started {
			continue
		}
		if r.RDSFence == nil {
			return fmt.Errorf("RDS instance %s of %s is fenced (read-only) and this run cannot lift it: give it the RDS master password ($HANDOVER_RDS_PASSWORD; env migrate takes --rds-password-file too) and run it again", it.Name, op.Environment)
		}
		dbs, err := rdsFenceDBs(it)
		if err != nil {
			return err
		}
		err = r.RDSFence.UnfenceRDS(ctx, it.Name, dbs)
		if errors.Is(err, handover.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("lifting the fence of RDS instance %s: %w", it.Name, err)
		}
		lifted = append(lifted, it.Name)
	}
	if len(lifted) > 0 {
		r.say("lifted the RDS fence of %s: its databases take writes again", strings.Join(lifted, ", "))
	}
	return nil
}

// cloneCopy makes DST's buckets and copies SRC's into them by checksum,
// and waits for every snapshot to complete.
func (r *Runner) cloneCopy(ctx context.Context, op *ledger.EnvOp, rec *cloneRecord) (bool, error) {
	tags := dstTags(op)
	var copies []CopyPlan
	for _, c := range rec.Plan.Copies {
		if it, _ := item(op, itemCopy, c.To); !it.Done {
			copies = append(copies, c)
		}
		item(op, KindBucket, c.To)
	}
	if len(copies) > 0 {
		if err := r.save(ctx, op); err != nil {
			return false, err
		}
		results := make([]*CopyResult, len(copies))
		sums := make([]map[string]string, len(copies))
		err := parallel(len(copies), func(i int) error {
			c := copies[i]
			if err := r.Clone.CreateBucket(ctx, c.To, tags); err != nil {
				return fmt.Errorf("creating bucket %s: %w", c.To, err)
			}
			sums[i] = map[string]string{}
			res, err := r.Clone.CopyObjects(ctx, c.From, c.To, func(key, sum string, _ bool) { sums[i][key] = sum })
			if err != nil {
				return fmt.Errorf("copying bucket %s into %s: %w", c.From, c.To, err)
			}
			results[i] = &res
			return nil
		})
		for i, c := range copies {
			if res := results[i]; res != nil {
				recordObjects(op, c, sums[i])
				findItem(op, KindBucket, c.To).Done = true
				it := findItem(op, itemCopy, c.To)
				it.Done, it.Detail = true, fmt.Sprintf("%d objects: %d copied (%d bytes), %d had the same checksum", res.Objects, res.Copied, res.Bytes, res.Same)
				r.say("bucket %s -> %s: %s", c.From, c.To, it.Detail)
			}
		}
		if err != nil {
			return false, errors.Join(err, r.save(ctx, op))
		}
	}
	waiting := 0
	for i := range op.Cloning.Items {
		it := &op.Cloning.Items[i]
		if it.Done || (it.Kind != itemEBSSnapshot && it.Kind != itemRDSSnapshot) {
			continue
		}
		if it.Kind == itemEBSSnapshot {
			state, reason, err := r.Clone.VolumeSnapshotState(ctx, it.ID)
			if err != nil {
				return false, fmt.Errorf("reading snapshot %s (database %s): %w", it.ID, it.Name, err)
			}
			switch state {
			case SnapCompleted:
				it.Done = true
				r.say("snapshot %s of database %s completed", it.ID, it.Name)
			case SnapError:
				return false, failf("the EBS snapshot %s of database %s failed (%s): its point in time is lost; run the clone again", it.ID, it.Name, reason)
			default:
				waiting++
			}
			continue
		}
		status, err := r.Clone.DBSnapshotState(ctx, it.ID)
		if err != nil {
			return false, fmt.Errorf("reading RDS snapshot %s: %w", it.ID, err)
		}
		switch status {
		case "available":
			it.Done = true
			r.say("RDS snapshot %s of %s available", it.ID, it.Name)
		case "failed", "incompatible-restore", "deleting", "deleted":
			return false, failf("the RDS snapshot %s of %s is %s: run the clone again", it.ID, it.Name, status)
		default:
			waiting++
		}
	}
	if waiting > 0 {
		r.say("waiting for %s to complete", plural(waiting, "snapshot"))
		return false, nil
	}
	r.phase(op, PhaseCloneBuild, "snapshots completed, buckets copied")
	return true, nil
}

// cloneBuild makes DST's resources, each recorded before its call: target
// groups, load balancers with their listeners, RDS instances restored from
// the snapshots (waited for: their endpoints are rewritten into user
// data), launch templates with the references rewritten, the databases in
// the ledger seeded from the snapshots, and the groups with SRC's hooks.
func (r *Runner) cloneBuild(ctx context.Context, op *ledger.EnvOp, rec *cloneRecord) (bool, error) {
	src, dst := rec.Plan.Source, op.Cloning.Dest
	name := func(kind, n string) string { return cloneName(kind, n, src, dst) }
	tags := dstTags(op)
	// do runs a create once: recorded first, done after.
	do := func(kind, n string, f func(it *ledger.EnvItem) error) error {
		it, _ := item(op, kind, n)
		if it.Done {
			return nil
		}
		if err := r.save(ctx, op); err != nil {
			return err
		}
		it = findItem(op, kind, n)
		if err := f(it); err != nil {
			if errors.Is(err, ErrNameTaken) {
				return failf("creating %s %s: %w (someone made it since the plan): delete it, or choose another DST", kind, n, err)
			}
			return fmt.Errorf("creating %s %s: %w", kind, n, err)
		}
		it.Done = true
		r.say("created %s %s", kind, n)
		return r.save(ctx, op)
	}
	tgARN := map[string]string{}
	for _, tg := range rec.Source.TargetGroups {
		n := name(KindTargetGroup, tg.Name)
		if err := do(KindTargetGroup, n, func(it *ledger.EnvItem) error {
			arn, err := r.Clone.CreateTargetGroup(ctx, tg.ARN, n, tags)
			it.ID = arn
			return err
		}); err != nil {
			return false, err
		}
		tgARN[tg.ARN] = findItem(op, KindTargetGroup, n).ID
	}
	lbDNS := map[string]string{} // SRC's load balancer name -> DST's DNS name
	for _, lb := range rec.Source.LoadBalancers {
		n := name(KindLoadBalancer, lb.Name)
		var ls []ListenerSpec
		for _, l := range lb.Listeners {
			spec := ListenerSpec{Protocol: l.Protocol, Port: l.Port, TargetGroup: tgARN[l.TargetGroup]}
			if l.Entry {
				spec.Tags = map[string]string{TagEntry: "true"}
			}
			ls = append(ls, spec)
		}
		if err := do(KindLoadBalancer, n, func(it *ledger.EnvItem) error {
			arn, dns, err := r.Clone.CreateLoadBalancer(ctx, lb.ARN, n, ls, tags)
			it.ID, it.Detail = arn, dns
			return err
		}); err != nil {
			return false, err
		}
		lbDNS[lb.Name] = findItem(op, KindLoadBalancer, n).Detail
	}
	rdsEndpoint := map[string]string{} // SRC's RDS instance -> DST's endpoint
	waiting := false
	for _, d := range rec.Source.DBInstances {
		n := name(KindRDS, d.ID)
		snap := findItem(op, itemRDSSnapshot, d.ID)
		if snap == nil {
			return false, failf("no RDS snapshot of %s is recorded", d.ID)
		}
		if err := do(KindRDS, n, func(it *ledger.EnvItem) error {
			return r.Clone.RestoreDBInstance(ctx, d.ID, snap.ID, n, tags)
		}); err != nil {
			return false, err
		}
		it := findItem(op, KindRDS, n)
		if it.ID == "" {
			status, endpoint, err := r.Clone.DBInstanceState(ctx, n)
			if err != nil {
				return false, fmt.Errorf("reading RDS instance %s: %w", n, err)
			}
			if status != "available" || endpoint == "" {
				r.say("waiting for RDS instance %s (%s) restored from %s", n, status, snap.ID)
				waiting = true
				continue
			}
			if f := findItem(op, itemRDSFence, d.ID); f != nil && f.Started {
				// The snapshot carries SRC's fence (the databases'
				// defaults): DST takes writes once traffic moves to it.
				dbs, err := rdsFenceDBs(f)
				if err != nil {
					return false, err
				}
				if r.RDSFence == nil {
					return false, fmt.Errorf("RDS instance %s carries %s's fence from its snapshot and this run cannot lift it: give it the RDS master password ($HANDOVER_RDS_PASSWORD; env migrate takes --rds-password-file too)", n, d.ID)
				}
				if err := r.RDSFence.UnfenceRDS(ctx, n, dbs); err != nil {
					return false, fmt.Errorf("lifting the RDS fence %s's snapshot carried onto %s: %w", d.ID, n, err)
				}
			}
			it.ID = endpoint
			r.say("RDS instance %s available at %s", n, endpoint)
		}
		rdsEndpoint[d.ID] = it.ID
	}
	if waiting {
		return false, nil
	}
	if op.Cloning.Rewrites == nil {
		ports, err := r.listenerPorts(ctx, rec, dst)
		if err != nil {
			return false, err
		}
		rw, err := resolveRewrites(rec, lbDNS, ports, rdsEndpoint)
		if err != nil {
			return false, cloneFailed{err}
		}
		op.Cloning.Rewrites = rw
		if err := r.save(ctx, op); err != nil {
			return false, err
		}
	}
	rw := op.Cloning.Rewrites
	ltRef := map[string]ledger.TemplateRef{} // SRC group -> DST's template
	for _, g := range rec.Source.Groups {
		lt := g.Template.Name
		if lt == "" {
			lt = g.Template.ID
		}
		n := name(KindLaunchTemplate, lt)
		if err := do(KindLaunchTemplate, n, func(it *ledger.EnvItem) error {
			ref, err := r.Clone.CopyLaunchTemplate(ctx, g.Template, n, rewriteText(rec.UserData[g.Name], rw, setsOf(rec.Plan)), tags)
			it.ID, it.Detail = ref.ID, ref.Version
			return err
		}); err != nil {
			return false, err
		}
		it := findItem(op, KindLaunchTemplate, n)
		ltRef[g.Name] = ledger.TemplateRef{ID: it.ID, Name: n, Version: it.Detail}
	}
	dbOf := map[string]string{}
	for _, d := range rec.Source.Databases {
		dbOf[d.ID] = name(KindDatabase, d.ID)
	}
	for _, d := range rec.Source.Databases {
		n := dbOf[d.ID]
		seed := ""
		if s := findItem(op, itemEBSSnapshot, d.ID); s != nil {
			seed = s.ID
		}
		if err := do(KindDatabase, n, func(it *ledger.EnvItem) error {
			return r.seedDatabase(ctx, n, name(KindGroup, d.Group), seed)
		}); err != nil {
			return false, err
		}
	}
	for _, g := range rec.Source.Groups {
		n := name(KindGroup, g.Name)
		spec := GroupSpec{Name: n, From: g.Name, Template: ltRef[g.Name], HookMetadata: map[string]string{}, Tags: map[string]string{}}
		for _, arn := range g.TargetGroups {
			spec.TargetGroups = append(spec.TargetGroups, tgARN[arn])
		}
		for _, h := range g.Hooks {
			if md, ok := cloneHookMetadata(h, dbOf); ok {
				spec.HookMetadata[h.Name] = md
			}
		}
		for k, v := range g.Tags {
			if k == rec.Plan.Selector.Key || k == TagEnvironment || strings.HasPrefix(k, "aws:") {
				continue
			}
			spec.Tags[k] = rewriteText(v, rw, setsOf(rec.Plan))
		}
		maps.Copy(spec.Tags, tags)
		if err := do(KindGroup, n, func(*ledger.EnvItem) error { return r.Clone.CreateGroup(ctx, spec) }); err != nil {
			return false, err
		}
	}
	r.phase(op, PhaseCloneWait, "DST built")
	return true, nil
}

// seedDatabase records one of DST's databases in the ledger, to first-boot
// from seed. One there already with the same seed is this clone's.
func (r *Runner) seedDatabase(ctx context.Context, id, group, seed string) error {
	d := &ledger.Database{ID: id, Group: group, SeedSnapshot: seed, UpdatedAt: r.clk.Now()}
	err := r.led.SaveDatabase(ctx, d)
	if errors.Is(err, ledger.ErrConflict) {
		cur, gerr := r.led.GetDatabase(ctx, id)
		if gerr != nil {
			return fmt.Errorf("reading database %s: %w", id, gerr)
		}
		if cur.SeedSnapshot == seed && cur.Group == group && !cur.Dropped() {
			return nil
		}
		if cur.Dropped() {
			// An aborted operation's database of that name: the name is
			// free again, and this clone's database starts afresh.
			d.Version = cur.Version
			if err := r.led.SaveDatabase(ctx, d); err != nil {
				return fmt.Errorf("recording database %s over the dropped one of operation %s: %w", id, cur.DroppedBy, err)
			}
			return nil
		}
		return fmt.Errorf("%w: the ledger has a database %s (group %s, seed %q)", ErrNameTaken, id, cur.Group, cur.SeedSnapshot)
	}
	return err
}

// cloneWait waits until every group of DST has its desired capacity in
// service and every database of DST has booted (has its volume, and no
// handover moves it).
func (r *Runner) cloneWait(ctx context.Context, op *ledger.EnvOp, rec *cloneRecord) (bool, error) {
	src, dst := rec.Plan.Source, op.Cloning.Dest
	var waits []string
	for _, g := range rec.Source.Groups {
		n := cloneName(KindGroup, g.Name, src, dst)
		dg, err := r.cloud.DescribeGroup(ctx, n)
		if err != nil {
			return false, fmt.Errorf("reading DST's group %s: %w", n, err)
		}
		in := 0
		for _, i := range dg.Instances {
			if i.Lifecycle == lcInService {
				in++
			}
		}
		if in < int(g.Desired) {
			waits = append(waits, fmt.Sprintf("group %s %d/%d InService", n, in, g.Desired))
		}
	}
	for _, d := range rec.Source.Databases {
		n := cloneName(KindDatabase, d.ID, src, dst)
		db, err := r.led.GetDatabase(ctx, n)
		if err != nil {
			return false, fmt.Errorf("reading DST's database %s: %w", n, err)
		}
		if db.Volume == "" || db.Claim != "" {
			waits = append(waits, "database "+n+" booting")
		}
	}
	if len(waits) > 0 {
		r.say("waiting for DST: %s", strings.Join(waits, ", "))
		return false, nil
	}
	r.endClone(op, ledger.UpdateSucceeded)
	r.say("environment %s is a clone of %s: every group in service, every database booted from its snapshot", dst, src)
	return true, nil
}

// listenerPorts maps each listener port of SRC's load balancers to the
// port of DST's listener made from it, by SRC's load balancer name. On
// AWS they are equal; the local cloud gives a listener a free port when
// the one asked for is taken (SRC's is), so DST's are read back: by port,
// then in order for those that moved.
func (r *Runner) listenerPorts(ctx context.Context, rec *cloneRecord, dst string) (map[string]map[int32]int32, error) {
	if len(rec.Source.LoadBalancers) == 0 {
		return nil, nil
	}
	lbs, err := r.disc.TaggedLoadBalancers(ctx, ByName(dst))
	if err != nil {
		return nil, fmt.Errorf("reading DST's load balancers: %w", err)
	}
	out := map[string]map[int32]int32{}
	for _, lb := range rec.Source.LoadBalancers {
		n := cloneName(KindLoadBalancer, lb.Name, rec.Plan.Source, dst)
		i := slices.IndexFunc(lbs, func(d LoadBalancer) bool { return d.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("DST's load balancer %s is not tagged %s", n, ByName(dst))
		}
		m := map[int32]int32{}
		var srcLeft []int32
		dstLeft := map[int32]bool{}
		for _, l := range lbs[i].Listeners {
			dstLeft[l.Port] = true
		}
		for _, l := range lb.Listeners {
			if dstLeft[l.Port] {
				m[l.Port] = l.Port
				delete(dstLeft, l.Port)
			} else {
				srcLeft = append(srcLeft, l.Port)
			}
		}
		var moved []int32
		for _, l := range lbs[i].Listeners {
			if dstLeft[l.Port] {
				moved = append(moved, l.Port)
			}
		}
		if len(moved) != len(srcLeft) {
			return nil, fmt.Errorf("DST's load balancer %s has listeners on %v, SRC's %s on %v: they do not pair up", n, moved, lb.Name, srcLeft)
		}
		for k, p := range srcLeft {
			m[p] = moved[k]
		}
		out[lb.Name] = m
	}
	return out, nil
}

// resolveRewrites turns the plan's rewrites into FROM -> TO, filling in
// the names DST's load balancers and RDS instances got.
func resolveRewrites(rec *cloneRecord, lbDNS map[string]string, ports map[string]map[int32]int32, rdsEndpoint map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, rw := range rec.Plan.Rewrites {
		switch rw.Why {
		case "bucket", "--set":
			out[rw.From] = rw.To
			continue
		case "rds-endpoint":
			for _, d := range rec.Source.DBInstances {
				ep := rdsEndpoint[d.ID]
				host, _, _ := strings.Cut(d.Endpoint, ":")
				switch rw.From {
				case d.Endpoint:
					out[rw.From] = ep
				case host:
					out[rw.From], _, _ = strings.Cut(ep, ":")
				}
			}
		case "lb-dns":
			for _, lb := range rec.Source.LoadBalancers {
				dns := lbDNS[lb.Name]
				if rw.From == lb.DNSName {
					out[rw.From] = dns
				}
				for _, l := range lb.Listeners {
					if rw.From == fmt.Sprintf("%s:%d", lb.DNSName, l.Port) {
						p, ok := ports[lb.Name][l.Port]
						if !ok {
							p = l.Port
						}
						out[rw.From] = fmt.Sprintf("%s:%d", dns, p)
					}
				}
			}
		}
		if _, ok := out[rw.From]; !ok {
			return nil, fmt.Errorf("the clone cannot tell what %q (%s) becomes in DST", rw.From, rw.Why)
		}
	}
	return out, nil
}

// setsOf returns the FROMs of the plan's --set rewrites.
func setsOf(p *ClonePlan) map[string]bool {
	out := map[string]bool{}
	for _, rw := range p.Rewrites {
		if rw.Why == "--set" {
			out[rw.From] = true
		}
	}
	return out
}

// rewriteText replaces each reference of rw in body, longest first: whole
// names only, as PlanClone found them, except a --set (in sets), which is
// replaced wherever it appears. A replacement is never matched again.
func rewriteText(body string, rw map[string]string, sets map[string]bool) string {
	if body == "" || len(rw) == 0 {
		return body
	}
	froms := slices.Collect(maps.Keys(rw))
	slices.SortFunc(froms, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	type hit struct {
		at, end int
		to      string
	}
	var hits []hit
	taken := make([]bool, len(body))
	for _, from := range froms {
		for off := 0; ; {
			i := strings.Index(body[off:], from)
			if i < 0 {
				break
			}
			at, end := off+i, off+i+len(from)
			off = end
			whole := sets[from] || (at == 0 || !nameByte(body[at-1], true)) && (end == len(body) || !nameByte(body[end], false))
			if !whole || slices.Contains(taken[at:end], true) {
				continue
			}
			for k := at; k < end; k++ {
				taken[k] = true
			}
			hits = append(hits, hit{at, end, rw[from]})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int { return a.at - b.at })
	var b strings.Builder
	last := 0
	for _, h := range hits {
		b.WriteString(body[last:h.at])
		b.WriteString(h.to)
		last = h.end
	}
	b.WriteString(body[last:])
	return b.String()
}

// cloneHookMetadata is a DST hook's NotificationMetadata, when SRC's is a
// handover launch hook: its databases renamed, no seed_snapshot (DST's
// databases are each seeded from their own snapshot, in the ledger).
func cloneHookMetadata(h Hook, dbOf map[string]string) (string, bool) {
	if h.Transition != handover.TransitionLaunching {
		return "", false
	}
	md, err := handover.ParseMetadata(h.Metadata)
	if err != nil {
		return "", false
	}
	out := handover.Metadata{SizeGiB: md.SizeGiB, Cutover: md.Cutover, Channel: md.Channel}
	if pool := md.Pool(); len(pool) > 0 {
		for _, id := range pool {
			out.Databases = append(out.Databases, dbOf[id])
		}
	} else {
		out.Database = dbOf[md.Database]
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", false
	}
	return string(b), true
}
