package env

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/lease"
	"github.com/handover-dev/handover/internal/ledger"
)

// Config configures a Runner.
type Config struct {
	// Holder names this process in the leases of the operations it
	// advances; distinct per process.
	Holder string
	// LeaseTTL is how long a lease lasts unrenewed: a run killed while it
	// held one is taken over by the next run once it lapses.
	LeaseTTL time.Duration
	// MaxAttempts is how many consecutive failures of a standby step
	// turn it into a rollback (a resume that ends Aborted).
	MaxAttempts int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{LeaseTTL: 15 * time.Second, MaxAttempts: 20} }

// Validate says what to change in c.
func (c Config) Validate() error {
	var errs []error
	if c.Holder == "" {
		errs = append(errs, errors.New("the lease holder is empty"))
	}
	if c.LeaseTTL <= 0 {
		errs = append(errs, fmt.Errorf("the lease TTL must be positive, got %s", c.LeaseTTL))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts must be at least 1, got %d", c.MaxAttempts))
	}
	return errors.Join(errs...)
}

// Runner starts and advances environment operations.
type Runner struct {
	led    ledger.Ledger
	disc   Cloud
	cloud  StandbyCloud
	clk    clock.Clock
	log    *slog.Logger
	cfg    Config
	leases *lease.Keeper
	// Progress, when set, hears what each step does, as a line of text.
	Progress func(string)
	// Clone and Fence are what running a clone needs (planning one does
	// not): the cloud calls that make DST, and SRC's databases' fences.
	Clone CloneCloud
	Fence Fencer
	// RDSFence fences SRC's RDS instances for a migration's clone (one
	// that holds its quiesce), and lifts them wherever its fences are
	// lifted.
	RDSFence RDSFencer
	// Delete is what an abort (and a migration's drop) deletes with.
	Delete DeleteCloud
	// Manifests reads SRC's databases' content manifests at the quiesce
	// point, and DST's in a verify.
	Manifests ManifestReader
	// Migrate, Reader and VerifyClone are what running a migration needs
	// besides a clone's: the entry's switch, the clone's reads and the
	// clone's verify (without it, or without Delete, the drop is refused
	// and the old environment kept).
	Migrate     MigrateCloud
	Reader      CloneReader
	VerifyClone cloneVerifier
	// Verifier and Tables are what a verify needs besides Clone and
	// Manifests: scratch instances' deletes, bucket listings, and the
	// tables' sums.
	Verifier VerifyCloud
	Tables   TableSummer
}

// New returns a Runner after validating cfg. A nil log discards.
func New(cfg Config, led ledger.Ledger, disc Cloud, cloud StandbyCloud, clk clock.Clock, log *slog.Logger) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid environment runner config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{led: led, disc: disc, cloud: cloud, clk: clk, log: log, cfg: cfg,
		leases: lease.New(led, cfg.Holder, cfg.LeaseTTL, clk, log)}, nil
}

// Advance moves one operation as far as it can go now, under its lease:
// an operation another process holds the lease of is left alone (a run
// that was killed holds it until it lapses).
func (r *Runner) Advance(ctx context.Context, id string) error {
	return r.leases.Advance(ctx, "env/"+id, func(ctx context.Context) (lease.Next, error) {
		return r.advanceOnce(ctx, id)
	})
}

// Get returns the operation as stored.
func (r *Runner) Get(ctx context.Context, id string) (*ledger.EnvOp, error) {
	op, err := r.led.GetEnvOp(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reading environment operation %s: %w", id, err)
	}
	return op, nil
}

func (r *Runner) advanceOnce(ctx context.Context, id string) (lease.Next, error) {
	op, err := r.Get(ctx, id)
	if err != nil {
		return lease.Wait, err
	}
	if op.State.Terminal() {
		return lease.Done, nil
	}
	if op.ResumeRequested && (op.Phase == PhaseStandby || op.Phase == PhaseInStandby) {
		note := "resume requested"
		if op.Abort {
			note = "abort requested: rolling the standby back"
			op.State = ledger.UpdateRollingBack
		}
		r.phase(op, PhaseResume, note)
		if err := r.save(ctx, op); err != nil {
			return lease.Wait, err
		}
		return lease.Again, nil
	}
	phase, before := op.Phase, op.Clone()
	var more bool
	switch op.Phase {
	case PhaseStandby:
		more, err = r.stepStandby(ctx, op)
	case PhaseInStandby:
		return lease.Wait, nil // until a resume is asked for
	case PhaseResume:
		more, err = r.stepResume(ctx, op)
	case PhaseCloneQuiesce, PhaseCloneSnapshot, PhaseCloneUnquiesce, PhaseCloneCopy, PhaseCloneBuild, PhaseCloneWait:
		more, err = r.stepClone(ctx, op)
		if failed, ok := errors.AsType[cloneFailed](err); ok {
			r.cloneFailure(op, failed)
			more, err = true, nil
		}
	case PhaseMigrateClone, PhaseMigrateVerify, PhaseMigrateEntry, PhaseMigrateCutover, PhaseMigrateSwitched, PhaseMigrateBake,
		PhaseMigrateDrop, PhaseMigrateRetag, PhaseMigrateUnwind:
		more, err = r.stepMigrate(ctx, op)
		if failed, ok := errors.AsType[migrateFailed](err); ok {
			r.migrateFailure(op, failed)
			more, err = true, nil
		}
	case PhaseAbortUnquiesce, PhaseAbortDelete, PhaseAbortCheck:
		// An abort never gives up: it retries until SRC is as it was and
		// nothing the operation made is left.
		more, err = r.stepAbort(ctx, op)
	default:
		return lease.Wait, fmt.Errorf("environment operation %s is %s in phase %q, which has no step (a ledger written by a newer handover?)", op.ID, op.State, op.Phase)
	}
	if errors.Is(err, ledger.ErrConflict) {
		return lease.Again, nil
	}
	if err != nil {
		op.Attempts++
		op.Error = err.Error()
		r.log.Warn("environment step failed; will retry", "env-op-id", id, "phase", phase, "attempt", op.Attempts, "err", err)
		r.say("%s failed (attempt %d): %v", phase, op.Attempts, err)
		if op.Attempts >= r.cfg.MaxAttempts && op.Phase == PhaseStandby {
			op.ResumeRequested, op.Abort = true, true
			op.Error = fmt.Sprintf("%s kept failing, rolled back: %v", phase, err)
		}
		if op.Attempts >= r.cfg.MaxAttempts && op.Op == OpClone && (op.Phase == PhaseCloneQuiesce || op.Phase == PhaseCloneSnapshot) {
			// SRC must not stay quiesced while a step keeps failing.
			r.cloneFailure(op, fmt.Errorf("%s kept failing: %w", phase, err))
		}
		if op.Attempts >= r.cfg.MaxAttempts && op.Op == OpMigrate && migrateUnwinds(op.Phase) {
			// SRC must not stay fenced (nor the entry half-switched)
			// while a step keeps failing.
			r.migrateFailure(op, fmt.Errorf("%s kept failing: %w", phase, err))
		}
		return lease.Wait, errors.Join(err, r.save(ctx, op))
	}
	op.Attempts = 0
	if !more && reflect.DeepEqual(before, op) {
		return lease.Wait, nil // a wait that changed nothing: no ledger write per poll
	}
	if err := r.save(ctx, op); err != nil {
		if errors.Is(err, ledger.ErrConflict) {
			return lease.Again, nil
		}
		return lease.Wait, err
	}
	if op.State.Terminal() {
		return lease.Done, nil
	}
	if !more {
		return lease.Wait, nil
	}
	return lease.Again, nil
}

func (r *Runner) save(ctx context.Context, op *ledger.EnvOp) error {
	op.UpdatedAt = r.clk.Now()
	if err := r.led.SaveEnvOp(ctx, op); err != nil {
		return fmt.Errorf("saving environment operation %s: %w", op.ID, err)
	}
	return nil
}

// phase ends the timeline's open entry and opens the next.
func (r *Runner) phase(op *ledger.EnvOp, next, note string) {
	now := r.clk.Now()
	if n := len(op.Timeline); n > 0 && op.Timeline[n-1].End.IsZero() {
		op.Timeline[n-1].End = now
	}
	op.Phase = next
	if next != PhaseDone {
		op.Timeline = append(op.Timeline, ledger.UpdateStep{Phase: next, Start: now, Note: note})
	}
}

func (r *Runner) say(format string, args ...any) {
	if r.Progress != nil {
		r.Progress(fmt.Sprintf(format, args...))
	}
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "env-" + hex.EncodeToString(b[:])
}
