package handover

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// The cutover: how the old instance stops answering from epoch N's data
// before the new one takes a write under N+1 (invariant no-stale-reads, no stale read).
//
// A migration whose source is running hands over like this:
//
//	AwaitingHealth ─► Retiring ─► Completing ─► Unfencing ─► Committed        (retire)
//	AwaitingHealth ─► Retiring ─► Completing ─► Draining ─► Unfencing ─► Committed (drain)
//
// The new instance starts fenced under N+1 (the volume's handover:start
// tag) and serves reads only. Retiring, still before CONTINUE, confirms
// that with a fence and, under the retire cutover, tells the old instance
// to retire: from then on it forwards every read and write to the new one.
// Completing sends CONTINUE: the point of no return. Only then does
// Unfencing open the new instance to writes. Under the drain cutover, for
// services that cannot forward, Draining first takes the old instance out
// of its load balancers (once the new one is in service, so reads stay
// available: invariant reads-until-inservice) and waits for the drain.
//
// Why the new instance is unfenced only after CONTINUE: until then the
// migration may roll back, and a rollback gives the database back to the
// old instance under epoch N. Had the new one acknowledged a write, that
// write would be lost. So before CONTINUE no write is acknowledged under
// N+1 anywhere, the old instance's data is still the latest, and the
// rollback may lift its retirement (see stepRollingBack). After CONTINUE
// the migration only goes forward, and the old instance is never unfenced
// or un-retired again (invariant single-writer), with one exception that
// the same argument allows: under the drain cutover, a new instance that
// leaves service while the old one drains was still fenced, so Draining
// rolls back (stepDraining).

// Cutover policies, from the hook metadata's "cutover" or Config.Cutover.
const (
	// CutoverAuto retires the old instance, and drains it instead when its
	// service does not implement retire (answers 404) or cannot be reached.
	CutoverAuto = "auto"
	// CutoverRetire retires the old instance: it forwards to the new one.
	// The write pause barely grows.
	CutoverRetire = "retire"
	// CutoverDrain deregisters the old instance from its load balancers
	// and waits for the drain before unfencing the new one: for services
	// that cannot forward. The write pause grows by the new instance's
	// registration and the target group's deregistration delay.
	CutoverDrain = "drain"
	// CutoverOverlap is the ordering before invariant no-stale-reads: the new instance
	// takes writes as soon as it starts, while the old one may still
	// answer reads from the previous epoch's data until it leaves the load
	// balancer. It breaks invariant no-stale-reads; it is kept for services whose
	// clients never read what they wrote, and to measure what the other
	// cutovers cost (bench/writepause).
	CutoverOverlap = "overlap"
)

// Cutovers lists the valid policies.
var Cutovers = []string{CutoverAuto, CutoverRetire, CutoverDrain, CutoverOverlap}

// ValidCutover reports an unknown policy with the valid ones.
func ValidCutover(s string) error {
	for _, c := range Cutovers {
		if s == c {
			return nil
		}
	}
	return fmt.Errorf("cutover %q: want one of %s", s, strings.Join(Cutovers, ", "))
}

// TagStart on a volume tells the agent how the service on it starts:
// StartFenced means fenced under the volume's handover:epoch, until the
// controller unfences it (docs/fence-protocol.md, "Starting").
const (
	TagStart    = "handover:start"
	StartFenced = "fenced"
)

// Retirer is the optional capability of a Service to retire an old
// instance (docs/fence-protocol.md, retire): fenced under epoch, it
// forwards every read and write to successor from then on. Safe to repeat.
// Errors wrap fence.ErrStaleEpoch (a newer epoch owns it),
// fence.ErrUnreachable, or an error for which fence.IsNotImplemented is
// true when the service has no retire endpoint.
type Retirer interface {
	Retire(ctx context.Context, t Target, epoch int64, successor Target) error
}

// Retire implements Retirer over the service's own endpoints.
func (h HTTPService) Retire(ctx context.Context, t Target, epoch int64, successor Target) error {
	return h.Client.Retire(ctx, t.Addr, epoch, successor.Addr)
}

var _ Retirer = HTTPService{}

// Drainer is the optional capability of a Cloud to take an instance out of
// the load balancers its Auto Scaling group registers it with, for the
// drain cutover.
type Drainer interface {
	// DrainInstance deregisters instance from every target group of group
	// (its own group; "" means look it up) and reports whether it is out
	// of all of them: deregistered and done draining, or never registered.
	// Safe to repeat; an instance or group that no longer exists is
	// drained.
	DrainInstance(ctx context.Context, group, instance string) (bool, error)
	// UndrainInstance registers instance again with every target group of
	// group, for a drain that must be undone. Safe to repeat; an instance
	// or group that no longer exists needs nothing.
	UndrainInstance(ctx context.Context, group, instance string) error
}

// startsFenced reports whether m's new instance starts fenced and waits
// for Unfencing: only when a running source may still be answering, under
// a cutover that keeps invariant no-stale-reads. A first boot, a dead or stopped source
// and the instance that already holds the volume have nobody to cut over
// from; migrations recorded before cutovers existed (Cutover "") run as
// they always did.
func startsFenced(m *ledger.Migration) bool {
	return m.SourceFate == FateRunning && m.Cutover != "" && m.Cutover != CutoverOverlap
}

// cutoverFor is the cutover a migration runs under: the hook metadata's,
// else the configured one.
func (c *Controller) cutoverFor(hookMetadata string) string {
	if md, err := ParseMetadata(hookMetadata); err == nil && md.Cutover != "" {
		return md.Cutover
	}
	return c.cfg.Cutover
}

// afterHealthy is where a migration goes once the new instance serves.
func afterHealthy(m *ledger.Migration, note string) (outcome, error) {
	if startsFenced(m) {
		return goTo(ledger.Retiring, note)
	}
	return goTo(ledger.Completing, note)
}

// stepRetiring (before CONTINUE, so a failure still rolls back): the new
// instance is confirmed read-only under the new epoch, then, under the
// retire cutover, the old one is told to forward to it.
func (c *Controller) stepRetiring(ctx context.Context, m *ledger.Migration) (outcome, error) {
	inst, err := c.describeInstance(ctx, m.Instance)
	if errors.Is(err, ErrNotFound) || (err == nil && gone(inst.State)) {
		return outcome{}, terminal("new instance %s is gone", m.Instance)
	}
	if err != nil {
		return outcome{}, err
	}
	successor := Target{Instance: inst.ID, Addr: inst.PrivateIP}
	// It started fenced (handover:start); the fence makes that a fact the
	// controller has checked, also for a service that ignores the rule.
	// Nobody could write to it yet: it is in no load balancer and the
	// ledger does not name it.
	if err := c.svc.Fence(ctx, successor, m.FenceEpoch); err != nil {
		if errors.Is(err, fence.ErrStaleEpoch) {
			return outcome{}, terminal("fencing the new instance %s read-only: %v", m.Instance, err)
		}
		return outcome{}, fmt.Errorf("fencing the new instance %s read-only under epoch %d: %w", m.Instance, m.FenceEpoch, err)
	}
	if m.Cutover == CutoverDrain {
		return c.toDrain(m, fmt.Sprintf("new instance fenced under epoch %d; the old one is drained after CONTINUE", m.FenceEpoch))
	}

	src, err := c.describeInstance(ctx, m.Source)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && (gone(src.State) || src.State == InstanceStopped)):
		return goTo(ledger.Completing, "source "+m.Source+" stopped serving: nothing to retire")
	case err != nil:
		return outcome{}, err
	case src.State != InstanceRunning:
		return stay(c.cfg.PollInterval)
	}
	r, ok := c.svc.(Retirer)
	if !ok {
		if m.Cutover == CutoverAuto {
			return c.toDrain(m, "the fence transport cannot retire: draining the old instance instead")
		}
		return outcome{}, terminal("cutover retire: the controller's fence transport cannot retire an instance; use cutover drain")
	}
	if !m.Retired {
		// Intent first: from here on a rollback must lift a retirement.
		m.Retired = true
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}
	err = r.Retire(ctx, Target{Instance: src.ID, Addr: src.PrivateIP}, m.FenceEpoch, successor)
	switch {
	case err == nil:
		m.Cutover = CutoverRetire
		return goTo(ledger.Completing, fmt.Sprintf("source %s retired under epoch %d: it forwards to %s", m.Source, m.FenceEpoch, m.Instance))
	case errors.Is(err, fence.ErrStaleEpoch):
		return outcome{}, terminal("retiring %s: %v", m.Source, err)
	case fence.IsNotImplemented(err) && m.Cutover == CutoverAuto:
		return c.toDrain(m, "the service on "+m.Source+" does not implement retire: draining it instead")
	case errors.Is(err, fence.ErrUnreachable):
		m.Attempts++
		m.LastError = err.Error()
		if m.Attempts >= c.cfg.UnreachableAttempts {
			// Taking it out of the load balancer needs no answer from
			// it; a retire that landed unanswered does no harm either.
			return c.toDrain(m, fmt.Sprintf("source unreachable %d times: draining it instead of retiring it", m.Attempts))
		}
		return stay(c.backoff(m.Attempts))
	case errors.Is(err, fence.ErrRejected):
		return outcome{}, terminal("retiring %s: %v", m.Source, err)
	}
	return outcome{}, fmt.Errorf("retiring %s: %w", m.Source, err)
}

// toDrain switches m to the drain cutover, if the cloud can drain.
func (c *Controller) toDrain(m *ledger.Migration, note string) (outcome, error) {
	if _, ok := c.cloud.(Drainer); !ok {
		return outcome{}, terminal("cutover drain: the controller's cloud cannot deregister load balancer targets (%s)", note)
	}
	m.Cutover = CutoverDrain
	return goTo(ledger.Completing, note)
}

// stepDraining (after CONTINUE): once the new instance is in service, so
// that someone serves reads, the old one leaves its load balancers; the
// step waits until it has drained.
func (c *Controller) stepDraining(ctx context.Context, m *ledger.Migration) (outcome, error) {
	state, past, err := c.pastPending(ctx, m)
	if err != nil {
		return outcome{}, err
	}
	if !past {
		c.log.Debug("new instance not in service yet; the old one keeps serving reads", "migration-id", m.ID, "instance", m.Instance, "lifecycle", state)
		return stay(c.cfg.PollInterval)
	}
	if state != LifecycleInService {
		// The new instance left service (a failed health check, a zone
		// outage, a scale-in) before the old one was drained. Going on
		// would take away the only instance that serves reads. The new
		// one was fenced throughout, so it never acknowledged a write: the
		// old instance's data is the latest, and the database goes back to
		// it as in a rollback before CONTINUE (which also registers the
		// old one again if the drain began). This is the one way back
		// after CONTINUE; once the new instance is unfenced there is none.
		if state == "" {
			state = "gone from its group"
		}
		m.LastError = fmt.Sprintf("new instance %s left service (%s) before the old one was drained: the database stays on %s", m.Instance, state, m.Source)
		c.log.Warn("new instance left service before the drain ended; rolling back", "migration-id", m.ID, "instance", m.Instance, "lifecycle", state, "source", m.Source)
		return goTo(ledger.RollingBack, m.LastError)
	}
	if !m.DrainStarted {
		// Recorded before the first deregistration, which may land even if
		// its answer is lost: a rollback then knows to register it again.
		m.DrainStarted = true
		if err := c.save(ctx, m); err != nil {
			return outcome{}, err
		}
	}
	d, ok := c.cloud.(Drainer)
	if !ok {
		return outcome{}, fmt.Errorf("draining %s: the controller's cloud cannot deregister load balancer targets", m.Source)
	}
	db, err := c.led.GetDatabase(ctx, m.Database)
	if err != nil {
		return outcome{}, fmt.Errorf("reading database %s for the old instance's group: %w", m.Database, err)
	}
	var drained bool
	err = c.call(ctx, pacing.FamilyAutoScaling, "draining "+m.Source+" from its load balancers", func() (err error) {
		drained, err = d.DrainInstance(ctx, db.Group, m.Source)
		return err
	})
	if err != nil {
		return outcome{}, err
	}
	if !drained {
		c.log.Debug("old instance still draining", "migration-id", m.ID, "instance", m.Source, "group", db.Group)
		return stay(c.cfg.PollInterval)
	}
	return goTo(ledger.Unfencing, "old instance "+m.Source+" out of its load balancers and drained")
}

// stepUnfencing (after CONTINUE): the old instance no longer answers from
// its own data, so the new one may take writes; then the migration commits
// once the new instance is in service, as Completing does.
func (c *Controller) stepUnfencing(ctx context.Context, m *ledger.Migration) (outcome, error) {
	if m.NewUnfenced {
		// Unfenced on an earlier pass (the commit may even be done, its
		// bookkeeping not): the new instance need not answer again.
		return c.commitInService(ctx, m)
	}
	inst, err := c.describeInstance(ctx, m.Instance)
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && gone(inst.State)):
		// Nothing to unfence; its volume holds the latest writes all the
		// same, so the commit goes on (and heal replaces it).
	case err != nil:
		return outcome{}, err
	default:
		err := c.svc.Unfence(ctx, Target{Instance: inst.ID, Addr: inst.PrivateIP}, m.FenceEpoch)
		switch {
		case errors.Is(err, fence.ErrStaleEpoch):
			// A newer epoch's fence is in force on it: not ours to lift.
			c.log.Warn("new instance fenced under a newer epoch; leaving it", "migration-id", m.ID, "instance", m.Instance, "err", err)
		case err != nil:
			// Past CONTINUE there is no way back: keep trying. Until
			// then the database refuses writes.
			m.LastError = err.Error()
			return outcome{}, fmt.Errorf("unfencing the new instance %s under epoch %d: %w", m.Instance, m.FenceEpoch, err)
		}
	}
	m.NewUnfenced = true
	if err := c.save(ctx, m); err != nil {
		return outcome{}, err
	}
	return c.commitInService(ctx, m)
}
