package update

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// Strategies.
const (
	Rolling    = "rolling"
	ReplaceAll = "replace-all"
)

// Phases an update goes through (ledger.Update.Phase).
const (
	PhaseMigrationGroup = "migration-group"
	PhaseBatch          = "batch"   // rolling: launch, hand over, terminate
	PhaseBake           = "bake"    // rolling: watch the batch's new instances
	PhasePause          = "pause"   // rolling: wait before the next batch
	PhaseLaunch         = "launch"  // replace-all: create the new group
	PhaseSignals        = "signals" // replace-all: collect N signals
	PhaseCutover        = "cutover" // replace-all: gates open, hooks complete
	PhaseDeleteOld      = "delete-old"
	PhaseCleanup        = "cleanup"
	PhaseRollback       = "rollback"
	PhaseRollbackBatch  = "rollback-batch"
	PhaseRestore        = "restore"
	PhaseDone           = "done"
)

// Config tunes the runner. Start from DefaultConfig.
type Config struct {
	// Holder and LeaseTTL: as for migrations, one controller advances an
	// update at a time.
	Holder   string
	LeaseTTL time.Duration
	// BatchTimeout fails a rolling batch (or a replace-all cutover) that
	// has not finished in this long.
	BatchTimeout time.Duration
	// MaxAborts fails a batch once this many of its handovers rolled back:
	// the new version is not coming up, and the group would retry forever.
	MaxAborts int
	// Poll is how soon a waiting update looks again.
	Poll time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{LeaseTTL: 20 * time.Second, BatchTimeout: 30 * time.Minute, MaxAborts: 2, Poll: 2 * time.Second}
}

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

// Runner starts, advances and aborts updates.
type Runner struct {
	led       ledger.Ledger
	cloud     Cloud
	clk       clock.Clock
	log       *slog.Logger
	cfg       Config
	advancing sync.Map
}

// New returns a Runner.
func New(cfg Config, led ledger.Ledger, cloud Cloud, clk clock.Clock, log *slog.Logger) (*Runner, error) {
	if cfg.Holder == "" || cfg.LeaseTTL <= 0 || cfg.BatchTimeout <= 0 || cfg.Poll <= 0 {
		return nil, fmt.Errorf("update runner config needs a holder and positive lease ttl, batch timeout and poll (got %+v)", cfg)
	}
	if cfg.MaxAborts < 1 {
		cfg.MaxAborts = 1
	}
	return &Runner{led: led, cloud: cloud, clk: clk, log: log, cfg: cfg}, nil
}

// Plan is what an update will do, as --dry-run prints it.
type Plan struct {
	Group          string             `json:"group"`
	Strategy       string             `json:"strategy"`
	From           ledger.TemplateRef `json:"from"`
	To             ledger.TemplateRef `json:"to"`
	Capacity       int32              `json:"capacity"` // N: desired capacity now
	NewGroup       string             `json:"new_group,omitempty"`
	MigrationGroup string             `json:"migration_group,omitempty"`
	Steps          []PlanStep         `json:"steps"`
}

// PlanStep is one step of a plan.
type PlanStep struct {
	Phase     string         `json:"phase"`
	Batch     int            `json:"batch,omitempty"`
	Instances []PlanInstance `json:"instances,omitempty"`
	WaitsFor  string         `json:"waits_for"`
}

// PlanInstance is an instance a step replaces.
type PlanInstance struct {
	ID       string `json:"id"`
	Zone     string `json:"zone,omitempty"`
	Database string `json:"database,omitempty"`
}

// Plan works out what req would do without changing anything. A request
// with --image-id plans the new launch template version it would create.
func (r *Runner) Plan(ctx context.Context, req Request) (Plan, error) {
	p, _, err := r.plan(ctx, req, false)
	return p, err
}

func (r *Runner) plan(ctx context.Context, req Request, create bool) (Plan, Group, error) {
	if err := req.Validate(); err != nil {
		return Plan{}, Group{}, err
	}
	g, err := r.cloud.DescribeGroup(ctx, req.Group)
	if errors.Is(err, handover.ErrNotFound) {
		return Plan{}, Group{}, fmt.Errorf("group %s does not exist: check --group (and --region)", req.Group)
	}
	if err != nil {
		return Plan{}, Group{}, err
	}
	if g.Template.ID == "" && g.Template.Name == "" {
		return Plan{}, Group{}, fmt.Errorf("group %s does not use a launch template; handover update rolls out launch template versions", req.Group)
	}
	from := g.Template
	if from.Version, err = r.fromVersion(ctx, g); err != nil {
		return Plan{}, Group{}, fmt.Errorf("resolving the version group %s runs: %w", req.Group, err)
	}
	to := from
	switch {
	case req.ImageID != "":
		// A placeholder no instance runs; Start creates the version once
		// every check passed, so a refused request leaves none behind.
		to.Version = "(new version of " + from.Version + " with image " + req.ImageID + ")"
	default:
		to.Version = req.Version
		if to.Version == "" {
			to.Version = "$Latest"
		}
		if to.Version, err = r.cloud.ResolveVersion(ctx, to); err != nil {
			return Plan{}, Group{}, fmt.Errorf("resolving --launch-template-version %s: %w", req.Version, err)
		}
	}
	p := Plan{Group: g.Name, Strategy: req.Strategy, From: from, To: to, Capacity: g.Desired, MigrationGroup: req.MigrationGroup}
	dbs, err := r.led.ListDatabases(ctx)
	if err != nil {
		return Plan{}, Group{}, fmt.Errorf("listing databases: %w", err)
	}
	holds := map[string]string{}
	for _, db := range dbs {
		if db.Instance != "" {
			holds[db.Instance] = db.ID
		}
	}
	if req.MigrationGroup != "" {
		mg, err := r.cloud.DescribeGroup(ctx, req.MigrationGroup)
		if errors.Is(err, handover.ErrNotFound) {
			return Plan{}, Group{}, fmt.Errorf("migration group %s does not exist: check --migration-group", req.MigrationGroup)
		}
		if err != nil {
			return Plan{}, Group{}, err
		}
		step := PlanStep{Phase: PhaseMigrationGroup, WaitsFor: fmt.Sprintf("a SUCCESS signal from a new instance of %s within %s; then its old instances are terminated", mg.Name, req.MigrationTimeout)}
		for _, m := range mg.Instances {
			step.Instances = append(step.Instances, PlanInstance{ID: m.ID, Zone: m.Zone, Database: holds[m.ID]})
		}
		p.Steps = append(p.Steps, step)
	}
	switch req.Strategy {
	case Rolling:
		batches, err := rollingBatches(g, to.Version, req)
		if err != nil {
			return Plan{}, Group{}, err
		}
		for i, b := range batches {
			step := PlanStep{Phase: PhaseBatch, Batch: i + 1, WaitsFor: fmt.Sprintf("%d new instance(s) on version %s in service and every database of the batch handed over; then the old ones are terminated", len(b), to.Version)}
			if req.Bake > 0 {
				step.WaitsFor += fmt.Sprintf("; bake %s", req.Bake)
			}
			if req.Pause > 0 && i < len(batches)-1 {
				step.WaitsFor += fmt.Sprintf("; pause %s", req.Pause)
			}
			for _, id := range b {
				step.Instances = append(step.Instances, PlanInstance{ID: id, Zone: memberZone(g, id), Database: holds[id]})
			}
			p.Steps = append(p.Steps, step)
		}
	case ReplaceAll:
		if g.Desired == 0 {
			return Plan{}, Group{}, fmt.Errorf("group %s has desired capacity 0: nothing to replace", g.Name)
		}
		step := PlanStep{Phase: PhaseLaunch, WaitsFor: fmt.Sprintf("%d SUCCESS signals from the new group's instances within %s (launched in batches of 10); any FAILURE rolls back", g.Desired, req.SignalTimeout)}
		for _, m := range g.Instances {
			step.Instances = append(step.Instances, PlanInstance{ID: m.ID, Zone: m.Zone, Database: holds[m.ID]})
		}
		p.Steps = append(p.Steps,
			step,
			PlanStep{Phase: PhaseCutover, WaitsFor: "every database handed over to the new group's instances, in service"},
			PlanStep{Phase: PhaseDeleteOld, WaitsFor: "group " + g.Name + " deleted"})
	}
	if req.MigrationGroup != "" {
		p.Steps = append(p.Steps, PlanStep{Phase: PhaseCleanup, WaitsFor: "migration group " + req.MigrationGroup + " scaled to 0"})
	}
	if create && req.ImageID != "" {
		if p.To.Version, err = r.cloud.NewTemplateVersion(ctx, from, req.ImageID); err != nil {
			return Plan{}, Group{}, err
		}
	}
	return p, g, nil
}

// fromVersion is the version a rollback returns to: the group's, when it
// names a number; on $Latest or $Default (which may already point at the
// version being rolled out), the number most of its instances run.
func (r *Runner) fromVersion(ctx context.Context, g Group) (string, error) {
	if _, err := strconv.Atoi(g.Template.Version); err == nil {
		return g.Template.Version, nil
	}
	count := map[string]int{}
	best := ""
	for _, m := range g.Instances {
		if _, err := strconv.Atoi(m.Version); err != nil || isLeaving(m.Lifecycle) {
			continue
		}
		count[m.Version]++
		if c := count[m.Version]; c > count[best] || (c == count[best] && atoi(m.Version) < atoi(best)) {
			best = m.Version
		}
	}
	if best != "" {
		return best, nil
	}
	return r.cloud.ResolveVersion(ctx, g.Template)
}

func memberZone(g Group, id string) string {
	for _, m := range g.Instances {
		if m.ID == id {
			return m.Zone
		}
	}
	return ""
}

// rollingBatches orders the group's instances not yet on version into
// batches. --min-healthy-percent caps a batch: every database of a batch is
// fenced at about the same time, so a batch may pause writes for at most
// (100 − min)% of the group.
func rollingBatches(g Group, version string, req Request) ([][]string, error) {
	return batchesOf(g, func(m Member) bool { return m.Version != version }, req)
}

// batchesOf batches the group's instances that replace says to replace.
func batchesOf(g Group, replace func(Member) bool, req Request) ([][]string, error) {
	var old []Member
	for _, m := range g.Instances {
		if replace(m) && !isLeaving(m.Lifecycle) {
			old = append(old, m)
		}
	}
	// One zone after another in turn, so a batch spreads its pauses over
	// zones and a zone never loses more than its share at once.
	slices.SortStableFunc(old, func(a, b Member) int {
		if a.Zone != b.Zone {
			return cmp.Compare(a.Zone, b.Zone)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	old = roundRobin(old)
	n := max(g.Desired, int32(len(g.Instances)))
	allowed := n - int32(math.Ceil(float64(req.MinHealthyPercent)*float64(n)/100))
	if allowed < 1 {
		allowed = 1
	}
	if req.BatchSize > allowed {
		return nil, fmt.Errorf("--batch-size %d would pause writes on %d of %d instances at once; --min-healthy-percent %d allows at most %d: lower the batch size or the percentage", req.BatchSize, req.BatchSize, n, req.MinHealthyPercent, allowed)
	}
	var batches [][]string
	for i := 0; i < len(old); i += int(req.BatchSize) {
		var b []string
		for _, m := range old[i:min(len(old), i+int(req.BatchSize))] {
			b = append(b, m.ID)
		}
		batches = append(batches, b)
	}
	return batches, nil
}

// roundRobin interleaves members sorted by zone: a1 b1 c1 a2 b2 ….
func roundRobin(ms []Member) []Member {
	var zones []string
	byZone := map[string][]Member{}
	for _, m := range ms {
		if _, ok := byZone[m.Zone]; !ok {
			zones = append(zones, m.Zone)
		}
		byZone[m.Zone] = append(byZone[m.Zone], m)
	}
	out := make([]Member, 0, len(ms))
	for len(out) < len(ms) {
		for _, z := range zones {
			if l := byZone[z]; len(l) > 0 {
				out = append(out, l[0])
				byZone[z] = l[1:]
			}
		}
	}
	return out
}

func isLeaving(lifecycle string) bool {
	return len(lifecycle) >= 9 && (lifecycle[:9] == "Terminati" || lifecycle[:6] == "Detach")
}

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
	switch {
	case req.MigrationGroup != "":
		u.Phase = PhaseMigrationGroup
	case req.Strategy == ReplaceAll:
		u.Phase = PhaseLaunch
	default:
		u.Phase = PhaseBatch
	}
	if req.Strategy == ReplaceAll {
		u.NewGroup = g.Name + "-" + u.ID[len("upd-"):]
	}
	note := ""
	switch u.Phase {
	case PhaseBatch:
		note = fmt.Sprintf("batch 1 of %d", len(u.Batches))
	case PhaseLaunch:
		note = fmt.Sprintf("N = %d, the group's desired capacity now", g.Desired)
	case PhaseMigrationGroup:
		note = "migration group " + req.MigrationGroup
	}
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
// controller at any time.
func (r *Runner) Advance(ctx context.Context, id string) error {
	if _, busy := r.advancing.LoadOrStore(id, true); busy {
		return nil
	}
	defer r.advancing.Delete(id)
	lease, err := r.led.AcquireLease(ctx, "update/"+id, r.cfg.Holder, r.clk.Now(), r.cfg.LeaseTTL)
	if errors.Is(err, ledger.ErrLeaseHeld) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("taking the lease of update %s: %w", id, err)
	}
	for range 16 {
		u, err := r.led.GetUpdate(ctx, id)
		if err != nil {
			return fmt.Errorf("reading update %s: %w", id, err)
		}
		if u.State.Terminal() {
			return r.led.ReleaseLease(ctx, lease)
		}
		if u.AbortRequested && u.State == ledger.UpdateRunning && !u.GatesOpen {
			r.fail(u, u.Error, true)
			if err := r.save(ctx, u); err != nil {
				return err
			}
			continue
		}
		phase, before := u.Phase, u.Clone()
		more, err := r.step(ctx, u)
		if errors.Is(err, ledger.ErrConflict) {
			continue
		}
		if err != nil {
			u.Attempts++
			r.log.Warn("update step failed; will retry", "update-id", id, "phase", phase, "attempt", u.Attempts, "err", err)
			if u.Attempts >= 20 && u.State == ledger.UpdateRunning && !u.GatesOpen {
				r.fail(u, fmt.Sprintf("%s kept failing: %v", phase, err), false)
			}
			return errors.Join(err, r.save(ctx, u))
		}
		u.Attempts = 0
		if !more && reflect.DeepEqual(before, u) {
			return nil // a wait that changed nothing: no ledger write per poll
		}
		if err := r.save(ctx, u); err != nil {
			if errors.Is(err, ledger.ErrConflict) {
				continue
			}
			return err
		}
		if u.Phase != phase {
			r.log.Info("update step", "update-id", id, "group", u.Group, "phase", u.Phase, "batch", u.Batch+1, "state", u.State)
		}
		if !more {
			return nil
		}
	}
	return nil
}

func (r *Runner) save(ctx context.Context, u *ledger.Update) error {
	u.UpdatedAt = r.clk.Now()
	if err := r.led.SaveUpdate(ctx, u); err != nil {
		return fmt.Errorf("saving update %s: %w", u.ID, err)
	}
	return nil
}

// enter moves u to phase and keeps the timeline.
func (r *Runner) enter(u *ledger.Update, phase, note string) {
	now := r.clk.Now()
	if n := len(u.Timeline); n > 0 && u.Timeline[n-1].End.IsZero() {
		u.Timeline[n-1].End = now
	}
	u.Phase, u.BatchAt = phase, now
	u.Timeline = append(u.Timeline, ledger.UpdateStep{Phase: phase, Start: now, Note: note})
}

// fail starts the rollback.
func (r *Runner) fail(u *ledger.Update, why string, aborted bool) {
	r.log.Warn("update rolling back", "update-id", u.ID, "group", u.Group, "phase", u.Phase, "why", why)
	u.Error = why
	u.AbortRequested = u.AbortRequested || aborted
	u.State = ledger.UpdateRollingBack
	r.enter(u, PhaseRollback, why)
}

// finish ends u.
func (r *Runner) finish(u *ledger.Update) {
	switch {
	case u.State == ledger.UpdateRunning:
		u.State = ledger.UpdateSucceeded
	case u.AbortRequested:
		u.State = ledger.UpdateAborted
	default:
		u.State = ledger.UpdateFailed
	}
	r.enter(u, PhaseDone, string(u.State))
	u.Timeline[len(u.Timeline)-1].End = u.Timeline[len(u.Timeline)-1].Start
	u.EndedAt = r.clk.Now()
	r.log.Info("update ended", "update-id", u.ID, "group", u.Group, "state", u.State, "error", u.Error)
}

// step runs the current phase once; more reports whether the next phase
// may run at once (false: wait and come back).
func (r *Runner) step(ctx context.Context, u *ledger.Update) (more bool, err error) {
	switch u.Phase {
	case PhaseMigrationGroup:
		return r.stepMigrationGroup(ctx, u)
	case PhaseBatch, PhaseRollbackBatch:
		return r.stepBatch(ctx, u)
	case PhaseBake:
		return r.stepBake(ctx, u)
	case PhasePause:
		if r.clk.Now().Sub(u.BatchAt) < u.Spec.Pause {
			return false, nil
		}
		u.Batch++
		r.enter(u, PhaseBatch, fmt.Sprintf("batch %d of %d", u.Batch+1, len(u.Batches)))
		return true, nil
	case PhaseLaunch:
		return r.stepLaunch(ctx, u)
	case PhaseSignals:
		return r.stepSignals(ctx, u)
	case PhaseCutover:
		return r.stepCutover(ctx, u)
	case PhaseDeleteOld:
		if err := r.cloud.DeleteGroup(ctx, u.Group); err != nil {
			return false, err
		}
		r.enter(u, PhaseCleanup, "deleted group "+u.Group+"; "+u.NewGroup+" serves")
		return true, nil
	case PhaseCleanup:
		return r.stepCleanup(ctx, u)
	case PhaseRollback:
		return r.stepRollback(ctx, u)
	case PhaseRestore:
		return r.stepRestore(ctx, u)
	}
	return false, fmt.Errorf("update %s is in unknown phase %q", u.ID, u.Phase)
}

// mark is what the update writes into Database.ReplaceBy: its id, with
// "#rollback" while it rolls a group back.
func mark(u *ledger.Update) string {
	if u.State == ledger.UpdateRollingBack {
		return u.ID + "#rollback"
	}
	return u.ID
}

// target is the version this pass rolls out.
func target(u *ledger.Update) ledger.TemplateRef {
	if u.State == ledger.UpdateRollingBack {
		return u.OldTemplate
	}
	return u.Spec.Template
}

// markDatabases marks the databases the given instances hold for moving,
// and returns their replacements.
func (r *Runner) markDatabases(ctx context.Context, u *ledger.Update, instances []string, gated bool) ([]ledger.Replacement, error) {
	dbs, err := r.led.ListDatabases(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing databases: %w", err)
	}
	var reps []ledger.Replacement
	for _, id := range instances {
		rep := ledger.Replacement{Batch: u.Batch, Old: id}
		for _, db := range dbs {
			if db.Instance != id {
				continue
			}
			rep.Database = db.ID
			if db.ReplaceBy == mark(u) && db.Gated == gated {
				break
			}
			if err := r.setMark(ctx, db.ID, mark(u), gated); err != nil {
				return nil, err
			}
			break
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// setMark sets (or with by == "" clears) a database's ReplaceBy.
func (r *Runner) setMark(ctx context.Context, id, by string, gated bool) error {
	for range 8 {
		db, err := r.led.GetDatabase(ctx, id)
		if err != nil {
			return fmt.Errorf("reading database %s: %w", id, err)
		}
		if db.ReplaceBy == by && db.Gated == gated {
			return nil
		}
		db.ReplaceBy, db.Gated = by, gated && by != ""
		db.UpdatedAt = r.clk.Now()
		err = r.led.SaveDatabase(ctx, db)
		if errors.Is(err, ledger.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("marking database %s for update: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("marking database %s for update: %w", id, ledger.ErrConflict)
}

// clearMarks removes every mark of u (forward and rollback). A migration
// that claimed a marked database already copied the mark, so clearing it
// changes nothing for that migration.
func (r *Runner) clearMarks(ctx context.Context, u *ledger.Update) error {
	dbs, err := r.led.ListDatabases(ctx)
	if err != nil {
		return fmt.Errorf("listing databases: %w", err)
	}
	for _, db := range dbs {
		if db.ReplaceBy == u.ID || db.ReplaceBy == u.ID+"#rollback" {
			if err := r.setMark(ctx, db.ID, "", false); err != nil {
				return err
			}
		}
	}
	return nil
}

// migrationsOf returns the unfinished migrations serving u, and how many of
// u's migrations (of this pass) rolled back since since.
func (r *Runner) migrationsOf(ctx context.Context, u *ledger.Update, since time.Time) (unfinished []*ledger.Migration, aborted []*ledger.Migration, err error) {
	ms, err := r.led.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing migrations: %w", err)
	}
	for _, m := range ms {
		if m.Update != mark(u) {
			continue
		}
		switch {
		case !m.State.Terminal():
			unfinished = append(unfinished, m)
		case m.State == ledger.Aborted && !m.UpdatedAt.Before(since):
			aborted = append(aborted, m)
		}
	}
	return unfinished, aborted, nil
}

// inService counts the group's in-service, healthy instances, and those of
// them on version.
func inService(g Group, version string) (all, onVersion int) {
	for _, m := range g.Instances {
		if m.InService() {
			all++
			if m.Version == version {
				onVersion++
			}
		}
	}
	return all, onVersion
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
