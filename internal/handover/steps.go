package handover

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// Tags handover puts on everything it creates, so the sweeper can tell what
// it owns and who created it.
const (
	TagManaged   = "handover:managed"
	TagMigration = "handover:migration-id"
	TagDatabase  = "handover:database"
	TagPurpose   = "handover:purpose"
	TagEpoch     = "handover:epoch"
)

// Source fates recorded at Launching.
const (
	FateNone        = "none" // first boot: nothing to move
	FateRunning     = "running"
	FateDead        = "dead"
	FateUnreachable = "unreachable"
	FateSelf        = "self" // the new instance already holds the volume
)

// syntheticPrefix keys migrations found by reconcile, which have no token.
const syntheticPrefix = "instance:"

func isSyntheticID(id string) bool { return strings.HasPrefix(id, syntheticPrefix) }

// step runs the step function of m's state.
func (c *Controller) step(ctx context.Context, m *ledger.Migration) (outcome, error) {
	switch m.State {
	case ledger.Launching:
		return c.stepLaunching(ctx, m)
	case ledger.PreCopying:
		return c.stepPreCopying(ctx, m)
	case ledger.Fencing:
		return c.stepFencing(ctx, m)
	case ledger.StoppingSource:
		return c.stepStoppingSource(ctx, m)
	case ledger.Snapshotting:
		return c.stepSnapshotting(ctx, m)
	case ledger.CreatingVolume:
		return c.stepCreatingVolume(ctx, m)
	case ledger.Attaching:
		return c.stepAttaching(ctx, m)
	case ledger.AwaitingHealth:
		return c.stepAwaitingHealth(ctx, m)
	case ledger.Retiring:
		return c.stepRetiring(ctx, m)
	case ledger.Completing:
		return c.stepCompleting(ctx, m)
	case ledger.Draining:
		return c.stepDraining(ctx, m)
	case ledger.Unfencing:
		return c.stepUnfencing(ctx, m)
	case ledger.RollingBack:
		return c.stepRollingBack(ctx, m)
	}
	return outcome{}, terminal("migration %s is in unexpected state %s", m.ID, m.State)
}

func (c *Controller) describeInstance(ctx context.Context, id string) (Instance, error) {
	var inst Instance
	err := c.call(ctx, pacing.FamilyDescribe, "describing instance "+id, func() (err error) {
		inst, err = c.cloud.DescribeInstance(ctx, id)
		return err
	})
	return inst, err
}

func gone(state string) bool {
	return state == InstanceTerminated || state == InstanceShuttingDown
}

// stepLaunching learns the hook's timeouts and the new instance's zone,
// claims the database, and picks the path: first boot, already held, dead
// source, or live source.
func (c *Controller) stepLaunching(ctx context.Context, m *ledger.Migration) (outcome, error) {
	if m.Deadline.IsZero() {
		var hook Hook
		err := c.call(ctx, pacing.FamilyAutoScaling, "describing lifecycle hook "+m.Hook, func() (err error) {
			hook, err = c.cloud.DescribeHook(ctx, m.Group, m.Hook)
			return err
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return outcome{}, err
		}
		hb := hook.HeartbeatTimeout
		if hb <= 0 {
			hb = c.cfg.DefaultHeartbeatTimeout
		}
		global := hook.GlobalTimeout
		if global <= 0 {
			global = min(48*time.Hour, 100*hb)
		}
		m.HeartbeatTimeout = hb
		start := m.HookStartedAt
		if start.IsZero() {
			start = m.CreatedAt
		}
		m.Deadline = start.Add(global)
		if m.Cutover == "" {
			m.Cutover = c.cutoverFor(hook.Metadata)
		}
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}
	if m.Cutover == "" {
		// Its deadline was stored by a controller that knew no cutovers;
		// nothing was created yet, so it can still take the default.
		m.Cutover = c.cfg.Cutover
	}

	inst, err := c.describeInstance(ctx, m.Instance)
	if errors.Is(err, ErrNotFound) || (err == nil && gone(inst.State)) {
		return outcome{}, terminal("new instance %s is gone", m.Instance)
	}
	if err != nil {
		return outcome{}, err
	}
	m.Zone = inst.Zone

	db, err := c.claim(ctx, m)
	if err != nil || db == nil {
		if err == nil {
			return stay(c.cfg.PollInterval) // another migration moves this database
		}
		return outcome{}, err
	}
	m.FromEpoch = db.Epoch
	m.SourceVolume = db.Volume
	m.Source = db.Instance

	switch {
	case db.Volume == "":
		m.SourceFate = FateNone
		if m.SeedSnapshot == "" && db.SeedSnapshot != "" {
			// The hook names no seed (a pool's names one for all): the
			// database's own record may.
			m.SeedSnapshot = db.SeedSnapshot
			return goTo(ledger.CreatingVolume, "first boot: no authoritative volume yet; seeded from the database's snapshot "+db.SeedSnapshot)
		}
		return goTo(ledger.CreatingVolume, "first boot: no authoritative volume yet")
	case db.Instance == m.Instance:
		m.SourceFate = FateSelf
		m.Volume = db.Volume
		return goTo(ledger.Attaching, "instance already holds the authoritative volume")
	}
	if db.Instance == "" {
		m.SourceFate = FateDead
		return goTo(ledger.Snapshotting, "authoritative volume has no instance")
	}
	src, err := c.describeInstance(ctx, db.Instance)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && (src.State == InstanceTerminated || src.State == InstanceStopped)):
		m.SourceFate = FateDead
		return goTo(ledger.Snapshotting, "source "+db.Instance+" is not running: no fence needed")
	case err != nil:
		return outcome{}, err
	case src.State != InstanceRunning:
		return stay(c.cfg.PollInterval) // pending, stopping or shutting down: wait for it to settle
	}
	m.SourceFate = FateRunning
	if c.cfg.PreCopy {
		return goTo(ledger.PreCopying, "source "+db.Instance+" is running")
	}
	return goTo(ledger.Fencing, "source "+db.Instance+" is running; pre-copy off")
}

// claim makes m the one migration moving its database, creating the
// database record on first sight. It returns nil while another unfinished
// migration holds the claim.
func (c *Controller) claim(ctx context.Context, m *ledger.Migration) (*ledger.Database, error) {
	for attempt := 0; attempt < 8; attempt++ {
		if len(m.Pool) > 0 && m.Database == "" {
			id, why, err := c.pick(ctx, m)
			if err != nil || id == "" {
				m.LastError = why
				return nil, err
			}
			m.Database = id
			if err := c.save(ctx, m); err != nil {
				return nil, err
			}
		}
		db, err := c.led.GetDatabase(ctx, m.Database)
		if errors.Is(err, ledger.ErrNotFound) {
			db = &ledger.Database{ID: m.Database}
		} else if err != nil {
			return nil, fmt.Errorf("reading database %s: %w", m.Database, err)
		}
		if db.Dropped() {
			if len(m.Pool) > 0 {
				m.Database, m.Update, m.Gated = "", "", false
				continue // pick another of the pool
			}
			m.LastError = fmt.Sprintf("database %s was dropped by environment operation %s: no instance takes it again", db.ID, db.DroppedBy)
			return nil, nil
		}
		if db.Claim == m.ID && len(db.TerminateHolds) == 0 {
			return db, nil
		}
		if db.Claim != "" && db.Claim != m.ID {
			other, err := c.led.GetMigration(ctx, db.Claim)
			if err != nil && !errors.Is(err, ledger.ErrNotFound) {
				return nil, fmt.Errorf("reading claimant %s of database %s: %w", db.Claim, m.Database, err)
			}
			if err == nil && !other.State.Terminal() {
				if len(m.Pool) > 0 && other.Instance != m.Instance {
					// Another new instance took it first: pick again, and
					// drop what this pick copied from that database.
					m.Database, m.Update, m.Gated = "", "", false
					continue
				}
				return nil, nil
			}
			// The claimant ended without releasing: take over.
		}
		if len(m.Pool) > 0 && db.Claim != m.ID {
			ok, err := c.stillNeeded(ctx, m, db)
			if err != nil {
				return nil, err
			}
			if !ok {
				m.Database, m.Update, m.Gated = "", "", false
				continue
			}
		}
		if len(db.TerminateHolds) > 0 {
			// The holder's terminate actions wait for this migration now.
			// Store them on it before clearing them here, so a crash in
			// between loses none.
			for _, h := range db.TerminateHolds {
				m.TerminateHolds = addHold(m.TerminateHolds, h)
			}
			if err := c.save(ctx, m); err != nil {
				return nil, err
			}
			db.TerminateHolds = nil
		}
		db.Claim = m.ID
		db.UpdatedAt = c.clk.Now()
		if db.ReplaceBy != "" && db.Instance != m.Instance {
			m.Update, m.Gated = db.ReplaceBy, db.Gated
			if err := c.save(ctx, m); err != nil {
				return nil, err
			}
		}
		err = c.led.SaveDatabase(ctx, db)
		if errors.Is(err, ledger.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("claiming database %s: %w", m.Database, err)
		}
		return db, nil
	}
	return nil, fmt.Errorf("claiming database %s: %w", m.Database, ledger.ErrConflict)
}

func (c *Controller) tags(m *ledger.Migration, purpose string) map[string]string {
	return map[string]string{
		TagManaged:   "true",
		TagMigration: m.ID,
		TagDatabase:  m.Database,
		TagPurpose:   purpose,
		TagEpoch:     strconv.FormatInt(m.FromEpoch+1, 10),
	}
}

// ensureSnapshot returns the snapshot of purpose for m, creating it if
// neither the ledger nor the cloud (by tag) knows one. The tags, set by the
// create itself, are the trail a crash leaves.
func (c *Controller) ensureSnapshot(ctx context.Context, m *ledger.Migration, purpose string, field *string) error {
	if *field != "" {
		return nil
	}
	var found []Snapshot
	err := c.call(ctx, pacing.FamilyDescribe, "looking up "+purpose+" snapshots by tag", func() (err error) {
		found, err = c.cloud.FindSnapshots(ctx, map[string]string{TagMigration: m.ID, TagPurpose: purpose})
		return err
	})
	if err != nil {
		return err
	}
	for _, s := range found {
		if s.State != SnapshotError {
			*field = s.ID
			addResource(m, ledger.KindSnapshot, s.ID, purpose)
			m.Intent = ""
			return c.save(ctx, m)
		}
	}
	// The intent is not saved on its own: the state this step runs in,
	// already stored, says a snapshot of purpose is wanted, and the tag
	// lookup above finds one a crash left behind. It reaches the ledger
	// with the next save, the result's or a failed attempt's.
	m.Intent = "create-snapshot:" + purpose
	var snap Snapshot
	err = c.call(ctx, pacing.FamilySnapshot, "creating "+purpose+" snapshot of "+m.SourceVolume, func() (err error) {
		snap, err = c.cloud.CreateSnapshot(ctx, m.SourceVolume, c.tags(m, purpose))
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return terminal("authoritative volume %s of database %s is missing: %v", m.SourceVolume, m.Database, err)
		}
		return err
	}
	*field = snap.ID
	addResource(m, ledger.KindSnapshot, snap.ID, purpose)
	m.Intent = ""
	return c.save(ctx, m)
}

func addResource(m *ledger.Migration, kind, id, purpose string) {
	for _, r := range m.Resources {
		if r.ID == id {
			return
		}
	}
	m.Resources = append(m.Resources, ledger.Resource{Kind: kind, ID: id, Purpose: purpose})
}

func markDeleted(m *ledger.Migration, id string) {
	for i := range m.Resources {
		if m.Resources[i].ID == id {
			m.Resources[i].Deleted = true
		}
	}
}

func (c *Controller) describeSnapshot(ctx context.Context, id string) (Snapshot, error) {
	var s Snapshot
	err := c.call(ctx, pacing.FamilyDescribe, "describing snapshot "+id, func() (err error) {
		s, err = c.cloud.DescribeSnapshot(ctx, id)
		return err
	})
	return s, err
}

// stepPreCopying snapshots the live volume while writes go on; the fenced
// snapshot that follows then only carries what changed since.
func (c *Controller) stepPreCopying(ctx context.Context, m *ledger.Migration) (outcome, error) {
	if err := c.ensureSnapshot(ctx, m, ledger.PurposePreCopy, &m.PreCopySnapshot); err != nil {
		return outcome{}, err
	}
	s, err := c.describeSnapshot(ctx, m.PreCopySnapshot)
	switch {
	case errors.Is(err, ErrNotFound):
		return goTo(ledger.Fencing, "pre-copy snapshot vanished; fencing without it")
	case err != nil:
		return outcome{}, err
	case s.State == SnapshotCompleted:
		return goTo(ledger.Fencing, "pre-copy "+s.ID+" completed")
	case s.State == SnapshotError:
		// A pre-copy only shortens the pause; its failure is not the
		// migration's.
		return goTo(ledger.Fencing, "pre-copy "+s.ID+" failed; fencing without it")
	}
	return stay(c.cfg.PollInterval)
}

// stepFencing stops writes on a live source under the next epoch.
func (c *Controller) stepFencing(ctx context.Context, m *ledger.Migration) (outcome, error) {
	src, err := c.describeInstance(ctx, m.Source)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && (src.State == InstanceTerminated || src.State == InstanceStopped)):
		m.SourceFate = FateDead
		return goTo(ledger.Snapshotting, "source died before the fence: no fence needed")
	case err != nil:
		return outcome{}, err
	case src.State != InstanceRunning:
		return stay(c.cfg.PollInterval)
	}
	if !m.Fenced {
		// Intent first: from here on a rollback must consider unfencing.
		m.Fenced = true
		m.FenceEpoch = m.FromEpoch + 1
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}
	err = c.svc.Fence(ctx, Target{Instance: src.ID, Addr: src.PrivateIP}, m.FenceEpoch)
	switch {
	case err == nil:
		return goTo(ledger.Snapshotting, fmt.Sprintf("source fenced under epoch %d", m.FenceEpoch))
	case errors.Is(err, fence.ErrStaleEpoch):
		return outcome{}, terminal("fencing %s: %v", m.Source, err)
	case errors.Is(err, fence.ErrUnreachable):
		m.Attempts++
		m.LastError = err.Error()
		if m.Attempts >= c.cfg.UnreachableAttempts {
			m.SourceFate = FateUnreachable
			return goTo(ledger.StoppingSource, fmt.Sprintf("source unreachable %d times: stopping it", m.Attempts))
		}
		return stay(c.backoff(m.Attempts))
	}
	return outcome{}, fmt.Errorf("fencing %s: %w", m.Source, err)
}

// stepStoppingSource is the hard fence: a running source that cannot be
// reached is stopped, so it cannot acknowledge writes while we copy.
func (c *Controller) stepStoppingSource(ctx context.Context, m *ledger.Migration) (outcome, error) {
	src, err := c.describeInstance(ctx, m.Source)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && (src.State == InstanceTerminated || src.State == InstanceStopped)):
		return goTo(ledger.Snapshotting, "source stopped")
	case err != nil:
		return outcome{}, err
	case src.State == InstanceStopping || src.State == InstanceShuttingDown:
		return stay(c.cfg.PollInterval)
	}
	if !m.SourceStopped {
		// One last try: a source that answers now is fenced softly and
		// keeps serving reads.
		if err := c.svc.Fence(ctx, Target{Instance: src.ID, Addr: src.PrivateIP}, m.FenceEpoch); err == nil {
			m.SourceFate = FateRunning
			return goTo(ledger.Snapshotting, fmt.Sprintf("source answered at last: fenced under epoch %d", m.FenceEpoch))
		}
		m.SourceStopped = true
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}
	err = c.call(ctx, pacing.FamilyMutate, "stopping unreachable source "+m.Source, func() error {
		return c.cloud.StopInstance(ctx, m.Source)
	})
	if err != nil {
		return outcome{}, err
	}
	return stay(c.cfg.PollInterval)
}

// stepSnapshotting takes the final snapshot: of a fenced or dead source, so
// it holds every acknowledged write.
func (c *Controller) stepSnapshotting(ctx context.Context, m *ledger.Migration) (outcome, error) {
	if err := c.ensureSnapshot(ctx, m, ledger.PurposeFinal, &m.FinalSnapshot); err != nil {
		return outcome{}, err
	}
	s, err := c.describeSnapshot(ctx, m.FinalSnapshot)
	switch {
	case errors.Is(err, ErrNotFound):
		m.FinalSnapshot = ""
		return outcome{}, fmt.Errorf("final snapshot vanished: %w", err)
	case err != nil:
		return outcome{}, err
	case s.State == SnapshotCompleted:
		return goTo(ledger.CreatingVolume, "final snapshot "+s.ID+" completed")
	case s.State == SnapshotError:
		// Forget it (rollback or the sweeper deletes it) and take another.
		m.FinalSnapshot = ""
		return outcome{}, fmt.Errorf("final snapshot %s failed", s.ID)
	}
	return stay(c.cfg.PollInterval)
}

// clientToken is stable per migration and attempt, so a repeated
// CreateVolume returns the volume the first one created.
func clientToken(m *ledger.Migration, n int) string {
	sum := sha256.Sum256([]byte(m.ID + "/" + strconv.Itoa(n)))
	return "handover-" + hex.EncodeToString(sum[:16])
}

func (c *Controller) describeVolume(ctx context.Context, id string) (Volume, error) {
	var v Volume
	err := c.call(ctx, pacing.FamilyDescribe, "describing volume "+id, func() (err error) {
		v, err = c.cloud.DescribeVolume(ctx, id)
		return err
	})
	return v, err
}

// stepCreatingVolume creates the new volume in the new instance's zone,
// from the final snapshot (or blank, or from a seed, on first boot).
func (c *Controller) stepCreatingVolume(ctx context.Context, m *ledger.Migration) (outcome, error) {
	if m.Volume == "" {
		spec := VolumeSpec{Zone: m.Zone, SnapshotID: m.FinalSnapshot, SizeGiB: m.SizeGiB, Tags: c.tags(m, ledger.PurposeTarget)}
		if startsFenced(m) {
			// The service on it starts read-only; Unfencing opens it once
			// the old instance no longer answers (invariant no-stale-reads).
			spec.Tags[TagStart] = StartFenced
		}
		if m.SourceFate == FateNone {
			spec.SnapshotID = m.SeedSnapshot
		}
		if spec.SizeGiB <= 0 && spec.SnapshotID == "" {
			spec.SizeGiB = c.cfg.DefaultSizeGiB
		}
		failed := 0
		for _, r := range m.Resources {
			if r.Purpose == ledger.PurposeTarget {
				failed++
			}
		}
		spec.ClientToken = clientToken(m, failed)
		// Not saved on its own, as for snapshots: a crash before the next
		// save repeats the create with the same client token, which EC2
		// answers with the volume it already made.
		m.Intent = "create-volume:" + spec.ClientToken
		var v Volume
		err := c.call(ctx, pacing.FamilyVolume, "creating volume in "+m.Zone, func() (err error) {
			v, err = c.cloud.CreateVolume(ctx, spec)
			return err
		})
		if err != nil {
			if errors.Is(err, ErrNotFound) && m.SourceFate == FateNone {
				return outcome{}, terminal("seed snapshot %s of database %s: %v", spec.SnapshotID, m.Database, err)
			}
			return outcome{}, err
		}
		m.Volume = v.ID
		addResource(m, ledger.KindVolume, v.ID, ledger.PurposeTarget)
		m.Intent = ""
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}
	v, err := c.describeVolume(ctx, m.Volume)
	switch {
	case errors.Is(err, ErrNotFound):
		m.Volume = ""
		return outcome{}, fmt.Errorf("new volume vanished: %w", err)
	case err != nil:
		return outcome{}, err
	case v.State == VolumeAvailable:
		return goTo(ledger.Attaching, "volume "+v.ID+" available in "+v.Zone)
	case v.State == VolumeError:
		// Keep it in Resources for cleanup and create another.
		m.Volume = ""
		return outcome{}, fmt.Errorf("volume %s failed to create", v.ID)
	}
	return stay(c.cfg.PollInterval)
}

// stepAttaching attaches the new volume to the new instance.
func (c *Controller) stepAttaching(ctx context.Context, m *ledger.Migration) (outcome, error) {
	inst, err := c.describeInstance(ctx, m.Instance)
	if errors.Is(err, ErrNotFound) || (err == nil && gone(inst.State)) {
		return outcome{}, terminal("new instance %s is gone", m.Instance)
	}
	if err != nil {
		return outcome{}, err
	}
	v, err := c.describeVolume(ctx, m.Volume)
	if errors.Is(err, ErrNotFound) {
		if m.SourceFate == FateSelf {
			return outcome{}, terminal("authoritative volume %s of database %s is missing", m.Volume, m.Database)
		}
		m.Volume = ""
		return goTo(ledger.CreatingVolume, "new volume vanished before attach; creating another")
	}
	if err != nil {
		return outcome{}, err
	}
	switch {
	case v.AttachedTo == m.Instance && v.AttachState == "attached":
		return goTo(ledger.AwaitingHealth, "volume "+v.ID+" attached to "+m.Instance)
	case v.AttachedTo == m.Instance:
		return stay(c.cfg.PollInterval / 2)
	case v.AttachedTo != "":
		return outcome{}, terminal("volume %s is attached to %s, not %s", v.ID, v.AttachedTo, m.Instance)
	case v.Zone != inst.Zone:
		return outcome{}, terminal("volume %s is in %s but instance %s is in %s", v.ID, v.Zone, m.Instance, inst.Zone)
	}
	err = c.call(ctx, pacing.FamilyMutate, "attaching volume "+v.ID+" to "+m.Instance, func() error {
		return c.cloud.AttachVolume(ctx, v.ID, m.Instance, c.cfg.Device)
	})
	if err != nil {
		return outcome{}, err
	}
	return stay(c.cfg.PollInterval / 2)
}

// stepAwaitingHealth waits for the service on the new instance to serve
// from the new volume.
func (c *Controller) stepAwaitingHealth(ctx context.Context, m *ledger.Migration) (outcome, error) {
	if m.Gated && !m.GateSince.IsZero() {
		// Healthy already; waiting on the gate costs no cloud call, so a
		// large replace-all does not eat the Describe budget the other
		// migrations need.
		return c.waitGate(ctx, m)
	}
	inst, err := c.describeInstance(ctx, m.Instance)
	if errors.Is(err, ErrNotFound) || (err == nil && gone(inst.State)) {
		return outcome{}, terminal("new instance %s is gone", m.Instance)
	}
	if err != nil {
		return outcome{}, err
	}
	if err := c.svc.Healthy(ctx, Target{Instance: inst.ID, Addr: inst.PrivateIP}); err != nil {
		m.LastError = "waiting for health: " + err.Error()
		return stay(c.cfg.PollInterval)
	}
	if m.Gated {
		m.GateSince = c.clk.Now()
		return c.waitGate(ctx, m)
	}
	if out, held, err := c.holdForRelease(ctx, m); held || err != nil {
		return out, err
	}
	return afterHealthy(m, "service healthy on "+m.Instance)
}

// holdForRelease keeps a healthy migration of a group with a release
// channel in AwaitingHealth until the instance serves the channel's latest
// release (releaseServed). Like a gate, the wait is credited as pacing:
// a release published during the launch is not the step being stuck.
func (c *Controller) holdForRelease(ctx context.Context, m *ledger.Migration) (outcome, bool, error) {
	ok, why, err := c.releaseServed(ctx, m)
	if err != nil {
		return outcome{}, true, err
	}
	if ok {
		return outcome{}, false, nil
	}
	m.LastError, m.PacedAt = why, c.clk.Now()
	out, err := stay(c.cfg.PollInterval)
	return out, true, err
}

// waitGate holds a healthy gated migration until its update opens the gate.
func (c *Controller) waitGate(ctx context.Context, m *ledger.Migration) (outcome, error) {
	open, why, err := c.gateOpen(ctx, m)
	if err != nil {
		return outcome{}, err
	}
	if !open {
		// The update decides when; this wait is not the step being
		// stuck, so it is credited like a pacing wait.
		m.LastError, m.PacedAt = why, c.clk.Now()
		return stay(c.cfg.PollInterval)
	}
	if out, held, err := c.holdForRelease(ctx, m); held || err != nil {
		return out, err
	}
	return afterHealthy(m, "service healthy on "+m.Instance+"; update "+m.Update+" opened its gate")
}

// stepCompleting sends CONTINUE (the point of no return), then commits once
// the instance is in service (or gone: its volume holds the latest writes
// either way). A new instance that started fenced is unfenced first
// (Unfencing), after the old one is drained under the drain cutover.
func (c *Controller) stepCompleting(ctx context.Context, m *ledger.Migration) (outcome, error) {
	if !m.HookDone {
		if m.Result == "" {
			m.Result = ResultContinue
			if err := c.save(ctx, m); err != nil {
				return outcome{}, err
			}
		}
		err := c.complete(ctx, c.hookRef(m), ResultContinue)
		if err != nil && !errors.Is(err, ErrNoActiveAction) {
			return outcome{}, err
		}
		m.HookDone = true
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}
	if startsFenced(m) {
		if m.Cutover == CutoverDrain {
			return goTo(ledger.Draining, "CONTINUE sent; the old instance leaves its load balancers once the new one is in service")
		}
		return goTo(ledger.Unfencing, "CONTINUE sent; unfencing the new instance")
	}
	return c.commitInService(ctx, m)
}

// commitInService commits once the new instance is past Pending (in
// service, or gone).
func (c *Controller) commitInService(ctx context.Context, m *ledger.Migration) (outcome, error) {
	state, past, err := c.pastPending(ctx, m)
	switch {
	case err != nil:
		return outcome{}, err
	case !past:
		return stay(c.cfg.PollInterval)
	}
	return c.commit(ctx, m, state)
}

// pastPending reads the new instance's lifecycle state and reports whether
// it is past Pending: in service, terminating, or gone from its group
// (state "").
func (c *Controller) pastPending(ctx context.Context, m *ledger.Migration) (state string, past bool, err error) {
	err = c.call(ctx, pacing.FamilyAutoScaling, "reading lifecycle state of "+m.Instance, func() (err error) {
		state, err = c.cloud.GroupInstanceState(ctx, m.Group, m.Instance)
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return "", true, nil
	case err != nil:
		return "", false, err
	}
	return state, !strings.HasPrefix(state, "Pending"), nil
}

// commit makes the new volume authoritative under the next epoch, then
// releases what the migration no longer needs.
func (c *Controller) commit(ctx context.Context, m *ledger.Migration, lifecycle string) (outcome, error) {
	db, err := c.led.GetDatabase(ctx, m.Database)
	if err != nil {
		return outcome{}, fmt.Errorf("reading database %s to commit: %w", m.Database, err)
	}
	var oldBase string
	switch {
	case db.Claim == m.ID:
		oldBase = db.BaseSnapshot
		if m.SourceFate != FateSelf {
			db.Epoch = m.FromEpoch + 1
		}
		db.Volume, db.Zone, db.Instance, db.Group, db.Claim = m.Volume, m.Zone, m.Instance, m.Group, ""
		if m.SourceFate != FateSelf {
			db.ReplaceBy, db.Gated = "", false
		}
		if m.FinalSnapshot != "" {
			db.BaseSnapshot = m.FinalSnapshot
		}
		db.UpdatedAt = c.clk.Now()
		if err := c.led.SaveDatabase(ctx, db); err != nil {
			if errors.Is(err, ledger.ErrConflict) {
				return outcome{}, errLostRace
			}
			return outcome{}, fmt.Errorf("committing volume %s for database %s: %w", m.Volume, m.Database, err)
		}
	case db.Volume == m.Volume && db.Instance == m.Instance:
		// Committed before a crash; finish the bookkeeping.
	case movedOn(m, db):
		// Another migration committed past this one: it can never commit
		// now, and retrying would hold its terminations forever.
		return c.supersede(ctx, m, db)
	default:
		// Not proven past this migration: the record shows no epoch beyond
		// the one it commits (a record mid-change, a stale read). Look
		// again.
		return outcome{}, fmt.Errorf("database %s is claimed by %q and holds %s under epoch %d: this migration (from epoch %d) lost its claim",
			m.Database, db.Claim, db.Volume, db.Epoch, m.FromEpoch)
	}
	// Best effort: what fails here the sweeper deletes later.
	if m.PreCopySnapshot != "" && m.PreCopySnapshot != db.BaseSnapshot {
		c.deleteSnapshot(ctx, m, m.PreCopySnapshot)
	}
	if oldBase != "" && oldBase != db.BaseSnapshot {
		c.deleteSnapshot(ctx, m, oldBase)
	}
	if !c.releaseHolds(ctx, m) {
		return stay(c.cfg.RetryBase) // committed; come back to let the old instance go
	}
	note := fmt.Sprintf("volume %s authoritative under epoch %d (instance %s)", m.Volume, db.Epoch, lifecycle)
	return goTo(ledger.Committed, note)
}

func (c *Controller) deleteSnapshot(ctx context.Context, m *ledger.Migration, id string) bool {
	err := c.call(ctx, pacing.FamilyDelete, "deleting snapshot "+id, func() error {
		return c.cloud.DeleteSnapshot(ctx, id)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.log.Info("snapshot left for the sweeper", "migration-id", m.ID, "snapshot", id, "err", err)
		return false
	}
	markDeleted(m, id)
	return true
}

// releaseHolds lets terminate actions held for this migration proceed. It
// reports whether none is left.
func (c *Controller) releaseHolds(ctx context.Context, m *ledger.Migration) bool {
	kept := m.TerminateHolds[:0:0]
	for _, h := range m.TerminateHolds {
		err := c.complete(ctx, h, ResultContinue)
		if err != nil && !errors.Is(err, ErrNoActiveAction) {
			kept = append(kept, h)
		}
	}
	m.TerminateHolds = kept
	return len(kept) == 0
}
