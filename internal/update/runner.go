package update

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/lease"
	"github.com/handover-dev/handover/internal/ledger"
)

// Strategies.
const (
	Rolling    = "rolling"
	ReplaceAll = "replace-all"
)

// maxAttempts is how many consecutive failures of one step an update
// takes before it rolls back.
const maxAttempts = 20

// Runner starts, advances and aborts updates.
type Runner struct {
	led    ledger.Ledger
	cloud  Cloud
	clk    clock.Clock
	log    *slog.Logger
	cfg    Config
	leases *lease.Keeper
}

// New returns a Runner after validating cfg. A nil log discards.
func New(cfg Config, led ledger.Ledger, cloud Cloud, clk clock.Clock, log *slog.Logger) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid update runner config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{led: led, cloud: cloud, clk: clk, log: log, cfg: cfg, leases: lease.New(led, cfg.Holder, cfg.LeaseTTL, clk, log)}, nil
}

// Leases lists the update leases this runner holds now.
func (r *Runner) Leases() []ledger.Lease { return r.leases.Held() }

// AdvanceAll advances every unfinished update.
func (r *Runner) AdvanceAll(ctx context.Context) error {
	us, err := r.led.ListUpdates(ctx, ledger.UpdateQuery{Unfinished: true})
	if err != nil {
		return fmt.Errorf("listing unfinished updates: %w", err)
	}
	var errs []error
	for _, u := range us {
		if err := r.Advance(ctx, u.ID); err != nil {
			errs = append(errs, fmt.Errorf("advancing update %s: %w", u.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Advance moves one update as far as it can go now. Safe to call from any
// controller at any time: an update another controller holds the lease
// of, or another goroutine is advancing, is left alone (lease.Keeper).
func (r *Runner) Advance(ctx context.Context, id string) error {
	return r.leases.Advance(ctx, "update/"+id, func(ctx context.Context) (lease.Next, error) {
		return r.advanceOnce(ctx, id)
	})
}

// advanceOnce reads the update and runs at most one step of it, storing
// what the step changed.
func (r *Runner) advanceOnce(ctx context.Context, id string) (lease.Next, error) {
	u, err := r.led.GetUpdate(ctx, id)
	if err != nil {
		return lease.Wait, fmt.Errorf("reading update %s: %w", id, err)
	}
	if u.State.Terminal() {
		return lease.Done, nil
	}
	if u.AbortRequested && u.State == ledger.UpdateRunning && !u.GatesOpen {
		r.fail(u, u.Error, true)
		if err := r.save(ctx, u); err != nil {
			return lease.Wait, err
		}
		return lease.Again, nil
	}
	phase, before := u.Phase, u.Clone()
	more, err := r.step(ctx, u)
	if errors.Is(err, ledger.ErrConflict) {
		return lease.Again, nil
	}
	if err != nil {
		u.Attempts++
		r.log.Warn("update step failed; will retry", "update-id", id, "phase", phase, "attempt", u.Attempts, "err", err)
		if u.Attempts >= maxAttempts && u.State == ledger.UpdateRunning && !u.GatesOpen {
			r.fail(u, fmt.Sprintf("%s kept failing: %v", phase, err), false)
		}
		return lease.Wait, errors.Join(err, r.save(ctx, u))
	}
	u.Attempts = 0
	if !more && reflect.DeepEqual(before, u) {
		return lease.Wait, nil // a wait that changed nothing: no ledger write per poll
	}
	if err := r.save(ctx, u); err != nil {
		if errors.Is(err, ledger.ErrConflict) {
			return lease.Again, nil
		}
		return lease.Wait, err
	}
	if u.Phase != phase {
		r.log.Info("update step", "update-id", id, "group", u.Group, "phase", u.Phase, "batch", u.Batch+1, "state", u.State)
	}
	if !more {
		return lease.Wait, nil
	}
	return lease.Again, nil
}

// step runs the step function of u's phase once; more reports whether the
// next step may run at once (false: wait and come back). Every step is
// safe to repeat (idempotent_test.go repeats each): it records its intent
// before a side effect that must be undone (TemplateSet), or changes only
// what it finds unchanged, with cloud calls that tolerate a repeat
// (CreateGroup, DeleteGroup, Terminate).
func (r *Runner) step(ctx context.Context, u *ledger.Update) (more bool, err error) {
	phase, err := ParsePhase(u.Phase)
	if err != nil {
		return false, fmt.Errorf("update %s: %w", u.ID, err)
	}
	switch phase {
	case PhaseMigrationGroup:
		return r.stepMigrationGroup(ctx, u)
	case PhaseBatch, PhaseRollbackBatch:
		return r.stepBatch(ctx, u)
	case PhaseBake:
		return r.stepBake(ctx, u)
	case PhasePause:
		return r.stepPause(ctx, u)
	case PhaseLaunch:
		return r.stepLaunch(ctx, u)
	case PhaseSignals:
		return r.stepSignals(ctx, u)
	case PhaseCutover:
		return r.stepCutover(ctx, u)
	case PhaseDeleteOld:
		return r.stepDeleteOld(ctx, u)
	case PhaseCleanup:
		return r.stepCleanup(ctx, u)
	case PhaseRollback:
		return r.stepRollback(ctx, u)
	case PhaseRestore:
		return r.stepRestore(ctx, u)
	}
	return false, fmt.Errorf("update %s is %s in phase %s, which has no step", u.ID, u.State, phase)
}

func (r *Runner) save(ctx context.Context, u *ledger.Update) error {
	u.UpdatedAt = r.clk.Now()
	if err := r.led.SaveUpdate(ctx, u); err != nil {
		return fmt.Errorf("saving update %s: %w", u.ID, err)
	}
	return nil
}
