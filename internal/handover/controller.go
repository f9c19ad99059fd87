// Package handover is the core of handover: the state machine that moves a
// database's authoritative volume from the instance an Auto Scaling group is
// replacing to its replacement (docs/design.md).
//
// Every step records its intent in the ledger before its side effect, looks
// its side effects up by tag before repeating them, and is safe to run again
// after a crash at any point. The package must never acknowledge anything
// (delete a queue message, complete a lifecycle action) before the ledger
// write that makes it durable has committed, and must never unfence a source
// once another epoch has been committed.
package handover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/lease"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/pacing"
)

// Service reaches the stateful service on an instance: its write fence and
// its health. Implementations: HTTPService (the service's own endpoints,
// fence.Client) and ssmfence (SSM Run Command calling `handover agent
// fence` on the instance).
type Service interface {
	// Fence stops writes and flushes them, under epoch. Safe to repeat.
	// Errors wrap fence.ErrUnreachable when the instance cannot be reached.
	Fence(ctx context.Context, t Target, epoch int64) error
	// Unfence lifts a fence taken under epoch. Safe to repeat.
	Unfence(ctx context.Context, t Target, epoch int64) error
	// Healthy returns nil when the service serves.
	Healthy(ctx context.Context, t Target) error
}

// Target names the instance a Service call is for: its id (for SSM) and
// its private address (for HTTP).
type Target struct {
	Instance string
	Addr     string
}

// HTTPService is Service over the service's own HTTP fence endpoints.
type HTTPService struct{ Client *fence.Client }

// Fence implements Service.
func (h HTTPService) Fence(ctx context.Context, t Target, epoch int64) error {
	return h.Client.Fence(ctx, t.Addr, epoch)
}

// Unfence implements Service.
func (h HTTPService) Unfence(ctx context.Context, t Target, epoch int64) error {
	return h.Client.Unfence(ctx, t.Addr, epoch)
}

// Healthy implements Service.
func (h HTTPService) Healthy(ctx context.Context, t Target) error {
	return h.Client.Healthy(ctx, t.Addr)
}

// Pacer rations cloud calls per API family (pacing.Pacer).
type Pacer interface {
	Take(f pacing.Family) (ok bool, wait time.Duration)
	// Borrow is Take that may leave the bucket in debt; it refuses only
	// while a throttling back-off is in force.
	Borrow(f pacing.Family) (ok bool, wait time.Duration)
	Throttled(f pacing.Family)
	Succeeded(f pacing.Family)
}

// Deps are the controller's collaborators.
type Deps struct {
	Cloud   Cloud
	Service Service
	Ledger  ledger.Ledger
	Pacer   Pacer
	Clock   clock.Clock
	Logger  *slog.Logger
	// Observer, if set, is told of every finished step and cloud call (for
	// metrics).
	Observer Observer
}

// Observer is told what the controller does. Its methods are called on the
// controller's goroutines and must be quick and safe for concurrent use.
type Observer interface {
	// StepEnded: a migration left state after spending d in it.
	StepEnded(state ledger.State, d time.Duration)
	// CloudCall: a call of family ended with err (nil on success).
	CloudCall(family pacing.Family, err error)
}

type noObserver struct{}

func (noObserver) StepEnded(ledger.State, time.Duration) {}
func (noObserver) CloudCall(pacing.Family, error)        {}

// Controller drives migrations. Its methods are safe for concurrent use;
// several controllers may share one ledger.
type Controller struct {
	cfg   Config
	cloud Cloud
	svc   Service
	led   ledger.Ledger
	pacer Pacer
	clk   clock.Clock
	log   *slog.Logger
	obs   Observer
	// leases takes the lease of each migration it advances and keeps out
	// other goroutines of this process.
	leases   *lease.Keeper
	touching *touchIndex
}

// New returns a controller after validating cfg and deps.
func New(cfg Config, d Deps) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid controller config: %w", err)
	}
	if d.Cloud == nil || d.Service == nil || d.Ledger == nil || d.Pacer == nil {
		return nil, errors.New("controller needs a cloud, a service client, a ledger and a pacer")
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Observer == nil {
		d.Observer = noObserver{}
	}
	return &Controller{cfg: cfg, cloud: d.Cloud, svc: d.Service, led: d.Ledger, pacer: d.Pacer, clk: d.Clock, log: d.Logger, obs: d.Observer,
		leases: lease.New(d.Ledger, cfg.Holder, cfg.LeaseTTL, d.Clock, d.Logger), touching: newTouchIndex()}, nil
}

// PoisonError marks a message that can never be processed: it should go to
// the dead-letter queue with Reason, not be retried.
type PoisonError struct{ Reason error }

func (e *PoisonError) Error() string { return "poison message: " + e.Reason.Error() }
func (e *PoisonError) Unwrap() error { return e.Reason }

// Leases lists the migration leases this controller holds now.
func (c *Controller) Leases() []ledger.Lease { return c.leases.Held() }

// HandleMessage processes one queue message body. A nil return means its
// effect is committed to the ledger (or it was ignored or a duplicate) and
// the message may be deleted; a *PoisonError means it never can be
// processed; any other error means leave it for redelivery. It returns the
// ids of migrations worth advancing now.
func (c *Controller) HandleMessage(ctx context.Context, body string) ([]string, error) {
	ev, err := events.DecodeSQSBody(body)
	if err != nil {
		if events.IsTestNotification(err) {
			// Sent once when a hook is pointed at the queue; nothing to do.
			c.log.Debug("lifecycle hook test notification dropped", "reason", err)
			return nil, nil
		}
		if events.IsIgnored(err) {
			c.log.Info("ignoring event", "reason", err)
			return nil, nil
		}
		return nil, &PoisonError{Reason: err}
	}
	now := c.clk.Now()
	if ev.ID != "" {
		seen, err := c.led.EventSeen(ctx, ev.ID, now)
		if err != nil {
			return nil, fmt.Errorf("checking event %s for duplicates: %w", ev.ID, err)
		}
		if seen {
			c.log.Debug("duplicate event", "event-id", ev.ID, "detail-type", ev.DetailType)
			return nil, nil
		}
	}
	ids, err := c.HandleEvent(ctx, ev)
	if err != nil {
		return nil, err
	}
	// The effect is committed; only now record the id. A crash before this
	// line redelivers the message, and every effect above is idempotent.
	if ev.ID != "" {
		if _, err := c.led.MarkEvent(ctx, ev.ID, now, now.Add(c.cfg.EventTTL)); err != nil {
			return nil, fmt.Errorf("recording event %s as processed: %w", ev.ID, err)
		}
	}
	return ids, nil
}

// HandleEvent applies one decoded event to the ledger. Events are hints:
// each effect is idempotent, and reconcile reaches the same outcome if the
// event never arrives. It returns the ids of migrations worth advancing.
func (c *Controller) HandleEvent(ctx context.Context, ev *events.Event) ([]string, error) {
	if (ev.Kind == events.KindLaunchAction || ev.Kind == events.KindTerminateAction) && !c.ownsHook(ev.Lifecycle.Hook) {
		c.log.Debug("lifecycle action of another hook", "hook", ev.Lifecycle.Hook, "instance", ev.Lifecycle.InstanceID)
		return nil, nil
	}
	switch ev.Kind {
	case events.KindLaunchAction:
		id, err := c.startMigration(ctx, ev.Lifecycle.Token, "event", ledger.HookRef{
			Group: ev.Lifecycle.Group, Hook: ev.Lifecycle.Hook, Token: ev.Lifecycle.Token, Instance: ev.Lifecycle.InstanceID,
		}, ev.Lifecycle.Metadata, ev.Time)
		if err != nil || id == "" {
			return nil, err
		}
		return []string{id}, nil
	case events.KindTerminateAction:
		return c.holdTermination(ctx, ledger.HookRef{
			Group: ev.Lifecycle.Group, Hook: ev.Lifecycle.Hook, Token: ev.Lifecycle.Token, Instance: ev.Lifecycle.InstanceID,
		})
	case events.KindLaunchSuccessful:
		return c.migrationsTouching(ctx, ev.Launch.InstanceID, "", "")
	case events.KindLaunchUnsuccessful:
		return c.launchFailed(ctx, ev.Launch.InstanceID, ev.Launch.StatusMessage)
	case events.KindSnapshot:
		return c.migrationsTouching(ctx, "", ev.Snapshot.SnapshotID, ev.Snapshot.VolumeID)
	case events.KindVolume:
		return c.migrationsTouching(ctx, "", "", ev.Volume.VolumeID)
	case events.KindInstanceState:
		return c.migrationsTouching(ctx, ev.InstanceState.InstanceID, "", "")
	}
	return nil, nil
}

// ownsHook reports whether handover acts on the lifecycle hook named hook.
func (c *Controller) ownsHook(hook string) bool {
	return strings.HasPrefix(hook, c.cfg.HookPrefix)
}

// startMigration records a migration for a launch waiting on its hook. It
// returns the id of the migration handling the instance ("" when another
// migration already does).
func (c *Controller) startMigration(ctx context.Context, id, cause string, ref ledger.HookRef, metadata string, hookStart time.Time) (string, error) {
	existing, err := c.led.ListMigrations(ctx, ledger.MigrationQuery{Instance: ref.Instance, Unfinished: true})
	if err != nil {
		return "", fmt.Errorf("looking up migrations of instance %s: %w", ref.Instance, err)
	}
	for _, m := range existing {
		if m.ID != id {
			return m.ID, nil // already handled under another key (reconcile found it first)
		}
	}
	md, mdErr, err := c.launchMetadata(ctx, ref.Group, metadata)
	if err != nil {
		return "", err
	}
	if mdErr == nil && md.ReleaseOnly() {
		// A stateless group of a release channel: the release controller
		// completes its launches (package release), and there is no state
		// to hand over.
		c.log.Debug("launch of a release-only group left to the release controller", "instance", ref.Instance, "channel", md.Channel)
		return "", nil
	}
	now := c.clk.Now()
	lastBeat := hookStart
	if hookStart.IsZero() {
		// Found by reconcile: nobody knows how long the instance has
		// waited, so keep the hook alive at once and count its overall
		// deadline from now (the best guess there is).
		hookStart = now
	} else if hookStart.After(now) {
		hookStart, lastBeat = now, now
	}
	m := &ledger.Migration{
		ID: id, Group: ref.Group, Hook: ref.Hook, Instance: ref.Instance, Cause: cause,
		State: ledger.Launching, CreatedAt: now, UpdatedAt: now, StepStartedAt: now, LastHeartbeat: lastBeat, HookStartedAt: hookStart,
		Timeline: []ledger.Step{{State: ledger.Launching, Start: now}},
	}
	if mdErr != nil {
		// Without a database there is nothing to hand over; abandon the
		// launch rather than let an instance come up without its state.
		m.State, m.LastError = ledger.RollingBack, mdErr.Error()
		m.Timeline = []ledger.Step{{State: ledger.RollingBack, Start: now, Note: mdErr.Error()}}
	} else {
		m.Database, m.SeedSnapshot, m.SizeGiB, m.Channel = md.Database, md.SeedSnapshot, md.SizeGiB, md.Channel
		if pool := md.Pool(); pool != nil {
			m.Database, m.Pool = "", pool
		}
	}
	if err := c.led.CreateMigration(ctx, m); err != nil {
		if errors.Is(err, ledger.ErrExists) {
			return id, nil
		}
		return "", fmt.Errorf("recording migration %s for instance %s: %w", id, ref.Instance, err)
	}
	c.touching.put(m)
	c.log.Info("migration started", "migration-id", id, "instance", ref.Instance, "database", m.Database, "cause", cause)
	return id, nil
}

// launchMetadata parses a launch hook's metadata for group, with the
// group's release channel tag when the cloud can read it and the metadata
// names no channel. mdErr is the metadata's fault (the launch is rolled
// back); err a failure to read the tag (the launch is retried).
func (c *Controller) launchMetadata(ctx context.Context, group, metadata string) (md Metadata, mdErr, err error) {
	md, mdErr = ParseMetadata(metadata)
	gt, ok := c.cloud.(GroupTagger)
	if !ok || mdErr == nil && md.Channel != "" {
		return md, mdErr, nil
	}
	tags, err := gt.GroupTags(ctx, group)
	if errors.Is(err, ErrNotFound) {
		return md, mdErr, nil
	}
	if err != nil {
		return md, mdErr, fmt.Errorf("reading the tags of group %s: %w", group, err)
	}
	if tags[TagGroupChannel] == "" {
		return md, mdErr, nil
	}
	md, mdErr = ParseLaunchMetadata(metadata, tags[TagGroupChannel])
	return md, mdErr, nil
}

// holdTermination keeps a terminating instance alive while it is the source
// of an unfinished migration, so it goes on serving reads (invariant reads-until-inservice); the
// hold is released when that migration ends. A terminating instance that
// holds a database no migration moves yet is held on the database for up to
// TerminateHoldMax, for the replacement's migration to take over. Any other
// termination goes on at once.
func (c *Controller) holdTermination(ctx context.Context, ref ledger.HookRef) ([]string, error) {
	ms, err := c.led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		return nil, fmt.Errorf("looking up migrations from instance %s: %w", ref.Instance, err)
	}
	now := c.clk.Now()
	ref.Since, ref.LastBeat = now, now
	if ref.Timeout <= 0 {
		ref.Timeout = c.hookTimeout(ctx, ref.Group, ref.Hook)
	}
	for _, m := range ms {
		if m.Source != ref.Instance {
			continue
		}
		added := false
		err := c.update(ctx, m.ID, func(m *ledger.Migration) (bool, error) {
			if m.State.Terminal() || hasHold(m.TerminateHolds, ref) {
				return false, nil
			}
			m.TerminateHolds = addHold(m.TerminateHolds, ref)
			added = true
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		if added {
			c.log.Info("holding termination until the handover ends", "migration-id", m.ID, "instance", ref.Instance)
		}
		return []string{m.ID}, nil
	}
	if c.cfg.TerminateHoldMax > 0 {
		held, err := c.holdOnDatabase(ctx, ref)
		if err != nil || held {
			return nil, err
		}
	}
	err = c.complete(ctx, ref, ResultContinue)
	if err != nil && !errors.Is(err, ErrNoActiveAction) {
		return nil, fmt.Errorf("letting instance %s terminate: %w", ref.Instance, err)
	}
	return nil, nil
}

// holdOnDatabase holds ref on the idle database its instance holds, if any.
func (c *Controller) holdOnDatabase(ctx context.Context, ref ledger.HookRef) (bool, error) {
	dbs, err := c.led.ListDatabases(ctx)
	if err != nil {
		return false, fmt.Errorf("listing databases: %w", err)
	}
	for _, db := range dbs {
		if db.Instance != ref.Instance || db.Claim != "" || db.Dropped() {
			continue // a dropped database waits for no replacement
		}
		if hasHold(db.TerminateHolds, ref) {
			return true, nil
		}
		db.TerminateHolds = addHold(db.TerminateHolds, ref)
		db.UpdatedAt = c.clk.Now()
		if err := c.led.SaveDatabase(ctx, db); err != nil {
			if errors.Is(err, ledger.ErrConflict) {
				return false, fmt.Errorf("holding the termination of %s: %w (will retry)", ref.Instance, err)
			}
			return false, fmt.Errorf("holding the termination of %s: %w", ref.Instance, err)
		}
		c.log.Info("holding termination of the database's instance until a replacement takes over",
			"database", db.ID, "instance", ref.Instance, "at-most", c.cfg.TerminateHoldMax)
		return true, nil
	}
	return false, nil
}

// hookTimeout reads a hook's heartbeat timeout, falling back to the
// configured default when it cannot be read.
func (c *Controller) hookTimeout(ctx context.Context, group, hook string) time.Duration {
	var h Hook
	err := c.call(ctx, pacing.FamilyAutoScaling, "describing lifecycle hook "+hook, func() (err error) {
		h, err = c.cloud.DescribeHook(ctx, group, hook)
		return err
	})
	if err != nil || h.HeartbeatTimeout <= 0 {
		return c.cfg.DefaultHeartbeatTimeout
	}
	return h.HeartbeatTimeout
}

// One hold per instance and hook: reconcile finds an action without its
// token, the event brings the token.
func hasHold(holds []ledger.HookRef, ref ledger.HookRef) bool {
	for _, h := range holds {
		if h.Instance == ref.Instance && h.Hook == ref.Hook {
			return true
		}
	}
	return false
}

func addHold(holds []ledger.HookRef, ref ledger.HookRef) []ledger.HookRef {
	if hasHold(holds, ref) {
		return holds
	}
	return append(holds, ref)
}

// launchFailed rolls back the migration of an instance the group failed to
// launch, unless it is already past the point of no return.
func (c *Controller) launchFailed(ctx context.Context, instance, why string) ([]string, error) {
	ms, err := c.led.ListMigrations(ctx, ledger.MigrationQuery{Instance: instance, Unfinished: true})
	if err != nil {
		return nil, fmt.Errorf("looking up migrations of instance %s: %w", instance, err)
	}
	var ids []string
	for _, m := range ms {
		err := c.update(ctx, m.ID, func(m *ledger.Migration) (bool, error) {
			if m.State.Terminal() || m.State == ledger.RollingBack || m.Result == ResultContinue {
				return false, nil
			}
			c.transition(m, ledger.RollingBack, "launch unsuccessful: "+why)
			m.LastError = "launch unsuccessful: " + why
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// migrationsTouching returns the unfinished migrations that involve the
// instance, snapshot or volume, so an event about them advances them now.
func (c *Controller) migrationsTouching(ctx context.Context, instance, snapshot, volume string) ([]string, error) {
	if ids := c.touching.lookup(instance, snapshot, volume); len(ids) > 0 {
		return ids, nil
	}
	ms, err := c.led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		return nil, fmt.Errorf("listing unfinished migrations: %w", err)
	}
	var ids []string
	for _, m := range ms {
		if (instance != "" && (m.Instance == instance || m.Source == instance)) ||
			(snapshot != "" && (m.PreCopySnapshot == snapshot || m.FinalSnapshot == snapshot)) ||
			(volume != "" && (m.Volume == volume || m.SourceVolume == volume)) {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// update applies fn to a fresh copy of the migration and stores it with
// compare-and-set, retrying on lost races. fn returns false to store nothing.
func (c *Controller) update(ctx context.Context, id string, fn func(*ledger.Migration) (bool, error)) error {
	for attempt := 0; attempt < 16; attempt++ {
		m, err := c.led.GetMigration(ctx, id)
		if err != nil {
			return fmt.Errorf("reading migration %s: %w", id, err)
		}
		changed, err := fn(m)
		if err != nil || !changed {
			return err
		}
		m.UpdatedAt = c.clk.Now()
		err = c.led.SaveMigration(ctx, m)
		if errors.Is(err, ledger.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("storing migration %s: %w", id, err)
		}
		c.touching.put(m)
		return nil
	}
	return fmt.Errorf("storing migration %s: %w after 16 attempts", id, ledger.ErrConflict)
}
