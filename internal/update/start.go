package update

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// Request is what `handover update` asks for.
type Request struct {
	Group    string
	Strategy string
	// Version of the group's launch template to roll out: a number,
	// "$Latest" or "$Default". ImageID instead creates a new version from
	// the group's current one with that image.
	Version           string
	ImageID           string
	BatchSize         int32
	MinHealthyPercent int32
	Pause, Bake       time.Duration
	SignalTimeout     time.Duration
	MigrationGroup    string
	MigrationTimeout  time.Duration
}

// Validate checks a request before any cloud call, saying what to change.
func (q Request) Validate() error {
	var errs []error
	if q.Group == "" {
		errs = append(errs, errors.New("--group is required"))
	}
	switch q.Strategy {
	case Rolling, ReplaceAll:
	default:
		errs = append(errs, fmt.Errorf("--strategy %q is not rolling or replace-all", q.Strategy))
	}
	if q.Version != "" && q.ImageID != "" {
		errs = append(errs, errors.New("give either --launch-template-version or --image-id, not both"))
	}
	if q.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("--batch-size must be at least 1, got %d", q.BatchSize))
	}
	if q.MinHealthyPercent < 0 || q.MinHealthyPercent > 100 {
		errs = append(errs, fmt.Errorf("--min-healthy-percent must be 0 to 100, got %d", q.MinHealthyPercent))
	}
	if q.Pause < 0 || q.Bake < 0 {
		errs = append(errs, errors.New("--pause and --bake must not be negative"))
	}
	if q.Strategy == ReplaceAll && q.SignalTimeout <= 0 {
		errs = append(errs, errors.New("--signal-timeout must be positive for replace-all"))
	}
	if q.MigrationGroup != "" && q.MigrationTimeout <= 0 {
		errs = append(errs, errors.New("--migration-timeout must be positive with --migration-group"))
	}
	if q.MigrationGroup != "" && q.MigrationGroup == q.Group {
		errs = append(errs, errors.New("--migration-group must name another group than --group"))
	}
	return errors.Join(errs...)
}

// ErrBusy: the group already has an unfinished update.
var ErrBusy = errors.New("the group has an update in progress")

// ErrPastNoReturn: an abort came after a replace-all opened its gates.
var ErrPastNoReturn = errors.New("the update is past its point of no return")

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "upd-" + hex.EncodeToString(b[:])
}

// Start records a new update and returns it; the controller's loop does
// the work. It refuses a group that already has an unfinished update.
func (r *Runner) Start(ctx context.Context, req Request) (*ledger.Update, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	busy, err := r.led.ListUpdates(ctx, ledger.UpdateQuery{Group: req.Group, Unfinished: true})
	if err != nil {
		return nil, fmt.Errorf("listing updates of group %s: %w", req.Group, err)
	}
	if len(busy) > 0 {
		return nil, fmt.Errorf("group %s: update %s is %s: %w (wait for it, or abort it with handover update --abort %s)", req.Group, busy[0].ID, busy[0].State, ErrBusy, busy[0].ID)
	}
	p, g, err := r.plan(ctx, req, true)
	if err != nil {
		return nil, err
	}
	if p.To.Version == p.From.Version && req.Strategy == Rolling && len(p.Steps) == 0 {
		return nil, fmt.Errorf("group %s already runs launch template version %s on every instance: nothing to roll out", g.Name, p.To.Version)
	}
	now := r.clk.Now()
	u := &ledger.Update{
		ID: newID(), Group: g.Name, State: ledger.UpdateRunning,
		Spec: ledger.UpdateSpec{
			Strategy: req.Strategy, Template: p.To, BatchSize: req.BatchSize, MinHealthyPercent: req.MinHealthyPercent,
			Pause: req.Pause, Bake: req.Bake, SignalTimeout: req.SignalTimeout,
			MigrationGroup: req.MigrationGroup, MigrationTimeout: req.MigrationTimeout,
		},
		OldTemplate: p.From, OldGroupVersion: g.Template.Version, OldMin: g.Min, OldMax: g.Max, OldDesired: g.Desired,
		CreatedAt: now, UpdatedAt: now, BatchAt: now,
	}
	for _, s := range p.Steps {
		if s.Phase == PhaseBatch {
			var b []string
			for _, i := range s.Instances {
				b = append(b, i.ID)
			}
			u.Batches = append(u.Batches, b)
		}
	}
	phase := PhaseBatch
	switch {
	case req.MigrationGroup != "":
		phase = PhaseMigrationGroup
	case req.Strategy == ReplaceAll:
		phase = PhaseLaunch
	}
	if req.Strategy == ReplaceAll {
		u.NewGroup = g.Name + "-" + u.ID[len("upd-"):]
	}
	note := ""
	switch phase {
	case PhaseBatch:
		note = fmt.Sprintf("batch 1 of %d", len(u.Batches))
	case PhaseLaunch:
		note = fmt.Sprintf("N = %d, the group's desired capacity now", g.Desired)
	case PhaseMigrationGroup:
		note = "migration group " + req.MigrationGroup
	}
	u.Phase = phase.String()
	u.Timeline = []ledger.UpdateStep{{Phase: u.Phase, Start: now, Note: note}}
	if err := r.led.CreateUpdate(ctx, u); err != nil {
		return nil, fmt.Errorf("recording update of group %s: %w", g.Name, err)
	}
	r.log.Info("update started", "update-id", u.ID, "group", u.Group, "strategy", req.Strategy, "from", p.From.Version, "to", p.To.Version)
	return u, nil
}

// Abort asks a running update to roll back. The controller's loop does the
// rollback; an update already ending is returned as it is.
func (r *Runner) Abort(ctx context.Context, id, why string) (*ledger.Update, error) {
	for range 8 {
		u, err := r.led.GetUpdate(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("reading update %s: %w", id, err)
		}
		if u.State != ledger.UpdateRunning || u.AbortRequested {
			return u, nil
		}
		if u.GatesOpen {
			return u, fmt.Errorf("update %s: every new instance signalled and the hooks are completing: %w; it will finish", id, ErrPastNoReturn)
		}
		u.AbortRequested = true
		if why == "" {
			why = "aborted by request"
		}
		u.Error = why
		u.UpdatedAt = r.clk.Now()
		err = r.led.SaveUpdate(ctx, u)
		if errors.Is(err, ledger.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("recording the abort of update %s: %w", id, err)
		}
		r.log.Info("update abort requested", "update-id", id, "why", why)
		return u, nil
	}
	return nil, fmt.Errorf("recording the abort of update %s: %w", id, ledger.ErrConflict)
}
