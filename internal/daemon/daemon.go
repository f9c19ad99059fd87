// Package daemon is the long-running controller process: it consumes the
// events queue, drives every unfinished migration forward, runs reconcile
// and the sweeper on intervals, and serves the HTTP API and metrics.
//
// It must never delete a queue message before the handover controller has
// committed the message's effect to the ledger, and it holds no protocol
// logic of its own: everything it does goes through Engine.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// Engine is the handover controller (*handover.Controller).
type Engine interface {
	// HandleMessage: nil means the effect is committed and the message
	// may be deleted; *handover.PoisonError means never retry it.
	HandleMessage(ctx context.Context, body string) ([]string, error)
	// Advance moves one migration as far as it can go now. Safe to repeat.
	Advance(ctx context.Context, id string) error
	Reconcile(ctx context.Context) error
	Sweep(ctx context.Context) (handover.SweepResult, error)
}

// Queue is the subset of *sqs.Client the daemon calls.
type Queue interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, opts ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
}

var _ Engine = (*handover.Controller)(nil)
var _ Queue = (*sqs.Client)(nil)

// Config tunes the daemon. Start from DefaultConfig.
type Config struct {
	// QueueURL is the events queue EventBridge delivers to.
	QueueURL string
	// DeadLetterURL receives poison messages. Empty: the queue's redrive
	// policy names it; without one, poison messages are left for SQS to
	// expire, and logged.
	DeadLetterURL string
	// WaitTime is the long-poll wait of one receive (at most 20 s).
	WaitTime time.Duration
	// AdvanceEvery is how often every unfinished migration is looked at;
	// it carries heartbeats, so it must stay well below the shortest hook
	// heartbeat timeout / 3.
	AdvanceEvery   time.Duration
	ReconcileEvery time.Duration
	SweepEvery     time.Duration
	// PruneEvery is how often expired event ids are dropped from the ledger.
	PruneEvery time.Duration
	// Workers advance migrations in parallel.
	Workers int
	// Holder and LedgerName are shown by /v1/status.
	Holder     string
	LedgerName string
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{
		WaitTime: 10 * time.Second, AdvanceEvery: 5 * time.Second, ReconcileEvery: time.Minute,
		SweepEvery: 10 * time.Minute, PruneEvery: time.Hour, Workers: 4,
	}
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.QueueURL == "" {
		errs = append(errs, errors.New("the events queue URL is required (--queue-url)"))
	}
	if c.WaitTime < 0 || c.WaitTime > 20*time.Second {
		errs = append(errs, fmt.Errorf("queue wait time must be between 0 and 20s, got %s", c.WaitTime))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"advance interval", c.AdvanceEvery}, {"reconcile interval", c.ReconcileEvery}, {"sweep interval", c.SweepEvery}, {"prune interval", c.PruneEvery}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.name, d.v))
		}
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers must be at least 1, got %d", c.Workers))
	}
	return errors.Join(errs...)
}

// Daemon runs the controller's loops. Create it with New.
type Daemon struct {
	cfg     Config
	eng     Engine
	queue   Queue
	led     ledger.Ledger
	clk     clock.Clock
	log     *slog.Logger
	metrics *Metrics
	started time.Time
	updates Updater // nil: no group updates
	// releases runs the release controller's pass every releaseEvery
	// (nil: not in this process).
	releases Releaser
	// relInstances, when set, reads which release each instance runs
	// for GET /v1/releases.
	relInstances *releaseInstances
	releaseEvery time.Duration
	// logs watches an access-log pipeline for /v1/logs (nil: none).
	logs *logWatch
	// envs carries environment aborts (nil: not in this process).
	envs EnvRunner
	// replicas watches read replicas' lag for /v1/replicas (nil: none).
	replicas *replicaWatch

	// checkStart makes Run check credentials and queues first (see
	// CheckAtStart); creds are what it resolves.
	checkStart bool
	creds      aws.CredentialsProvider

	work chan string
	// busy holds the migrations queued or being advanced, so a migration
	// is never advanced by two workers of one daemon at once.
	busyMu sync.Mutex
	busy   map[string]bool

	mu     sync.Mutex
	status statusCounters
}

type statusCounters struct {
	handled, poison              int64
	lastMessage                  time.Time
	lag                          float64
	lastReconcile, lastSweep     time.Time
	reconcileErr, sweepErr       string
	sweptVolumes, sweptSnapshots int
	lastReleasePass              time.Time
	releaseErr                   string
	// deadLetterURL is d.cfg.DeadLetterURL once Run knows it, for the
	// API (which must not read d.cfg's while the intake may set it).
	deadLetterURL string
	queues        queueSample
}

// New returns a daemon; metrics may be nil.
func New(cfg Config, eng Engine, q Queue, led ledger.Ledger, clk clock.Clock, log *slog.Logger, metrics *Metrics) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid controller settings: %w", err)
	}
	if eng == nil || q == nil || led == nil {
		return nil, errors.New("the daemon needs an engine, a queue and a ledger")
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if metrics == nil {
		metrics = NewMetrics(led, clk)
	}
	return &Daemon{
		cfg: cfg, eng: eng, queue: q, led: led, clk: clk, log: log, metrics: metrics,
		started: clk.Now(), work: make(chan string, 1024), busy: map[string]bool{},
	}, nil
}

// CheckAtStart makes Run check, before it consumes anything, that creds
// resolve, that the events queue exists and answers them, and that its
// redrive policy names a dead-letter queue that exists. A
// misconfiguration stops Run with a *MisconfiguredError; a passing fault
// (throttling, a 5xx, the network) is logged and retried in the
// background while the other loops run, so in-flight migrations keep
// their heartbeats.
func (d *Daemon) CheckAtStart(creds aws.CredentialsProvider) {
	d.checkStart, d.creds = true, creds
}

// Run consumes the queue and runs the loops until ctx ends. It returns nil
// on a clean stop, and a *MisconfiguredError if the checks of CheckAtStart
// find one.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	checked := true
	if d.checkStart {
		err := d.startChecks(ctx)
		switch {
		case IsMisconfigured(err):
			return err
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			checked = false
			d.log.Warn("could not check the queues at start; retrying, and consuming once they pass", "queue", d.cfg.QueueURL, "err", err)
		}
	} else if d.cfg.DeadLetterURL == "" {
		d.cfg.DeadLetterURL = d.discoverDeadLetter(ctx)
	}
	d.log.Info("controller running", "queue", d.cfg.QueueURL, "dead-letter-queue", d.cfg.DeadLetterURL, "holder", d.cfg.Holder)
	d.showDeadLetter(d.cfg.DeadLetterURL)
	var wg sync.WaitGroup
	for range d.cfg.Workers {
		wg.Go(func() { d.worker(ctx) })
	}
	wg.Go(func() {
		// Only this goroutine reads the dead-letter URL the checks set.
		if !checked && !d.retryStartChecks(ctx, stop) {
			return
		}
		d.intake(ctx)
	})
	wg.Go(func() { d.every(ctx, d.cfg.AdvanceEvery, d.advanceAll) })
	wg.Go(func() { d.every(ctx, d.cfg.ReconcileEvery, d.reconcile) })
	wg.Go(func() { d.every(ctx, d.cfg.SweepEvery, d.sweep) })
	wg.Go(func() { d.every(ctx, d.cfg.PruneEvery, d.prune) })
	if d.updates != nil {
		wg.Go(func() { d.every(ctx, d.cfg.AdvanceEvery, d.advanceUpdates) })
	}
	if d.releases != nil {
		wg.Go(func() { d.every(ctx, d.releaseEvery, d.passReleases) })
	}
	wg.Go(func() { d.watchLogs(ctx) })
	wg.Go(func() { d.watchReplicas(ctx) })
	if d.envs != nil {
		wg.Go(func() { d.every(ctx, d.cfg.AdvanceEvery, d.advanceEnvAborts) })
	}
	wg.Wait()
	if err := context.Cause(ctx); IsMisconfigured(err) {
		return err
	}
	return nil
}

// every runs fn now and then every interval until ctx ends. The waits are
// real time: the clock only stamps what happened.
func (d *Daemon) every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// kick queues a migration for a worker unless it is already queued.
func (d *Daemon) kick(id string) {
	d.busyMu.Lock()
	if d.busy[id] {
		d.busyMu.Unlock()
		return
	}
	d.busy[id] = true
	d.busyMu.Unlock()
	select {
	case d.work <- id:
	default:
		// Full: the advance loop finds it again.
		d.busyMu.Lock()
		delete(d.busy, id)
		d.busyMu.Unlock()
	}
}

func (d *Daemon) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-d.work:
			if err := d.eng.Advance(ctx, id); err != nil && ctx.Err() == nil {
				d.log.Warn("advancing migration", "migration-id", id, "err", err)
			}
			d.busyMu.Lock()
			delete(d.busy, id)
			d.busyMu.Unlock()
		}
	}
}

func (d *Daemon) advanceAll(ctx context.Context) {
	ms, err := d.led.ListMigrations(ctx, ledger.MigrationQuery{Unfinished: true})
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("listing unfinished migrations", "err", err)
		}
		return
	}
	for _, m := range ms {
		d.kick(m.ID)
	}
}

func (d *Daemon) reconcile(ctx context.Context) {
	err := d.eng.Reconcile(ctx)
	if ctx.Err() != nil {
		return
	}
	d.metrics.reconciled(err)
	d.mu.Lock()
	d.status.lastReconcile, d.status.reconcileErr = d.clk.Now(), errString(err)
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("reconcile", "err", err)
	}
}

func (d *Daemon) sweep(ctx context.Context) {
	res, err := d.eng.Sweep(ctx)
	if ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	d.status.lastSweep, d.status.sweepErr = d.clk.Now(), errString(err)
	d.status.sweptVolumes += len(res.DeletedVolumes)
	d.status.sweptSnapshots += len(res.DeletedSnapshots)
	d.mu.Unlock()
	d.metrics.swept(len(res.DeletedVolumes), len(res.DeletedSnapshots))
	if err != nil {
		d.log.Warn("sweep", "err", err)
	}
}

func (d *Daemon) prune(ctx context.Context) {
	n, err := d.led.PruneEvents(ctx, d.clk.Now())
	if err != nil && ctx.Err() == nil {
		d.log.Warn("pruning processed event ids", "err", err)
		return
	}
	if n > 0 {
		d.log.Debug("pruned processed event ids", "count", n)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
