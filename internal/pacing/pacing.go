// Package pacing keeps handover's calls to the cloud within the account's API
// rate limits. EC2 and Auto Scaling throttle every account per Region with
// token buckets shared by everything in the account; a controller that
// ignores them gets RequestLimitExceeded at the worst moment — in the middle
// of a write pause — and, by retrying blindly, makes it worse for every other
// tool in the account. So handover draws a token from a local copy of the
// bucket before each call, and backs off with jitter when the cloud says the
// real bucket is empty.
//
// The package only decides when a call may go out; it never makes or retries
// calls itself. Take and Throttled never sleep and read time only from the
// injected clock, because the deterministic simulator drives time and must
// not be blocked by them. Limiter is also the server-side bucket of the fake
// cloud, so client and server agree on the arithmetic.
package pacing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

// Back-off defaults. The ceiling of 20 s is the AWS SDK for Go v2 standard
// retryer's maximum back-off ("Retries and Timeouts", AWS SDK for Go v2
// Developer Guide), and its exponential jitter starts from 1 s; handover
// backs off on top of the SDK no more timidly than the SDK itself.
const (
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 20 * time.Second
)

// Config configures a Pacer. The zero Config is valid and means the defaults.
type Config struct {
	// Buckets overrides DefaultBuckets family by family (for an account whose
	// limits were raised); families it does not name keep their default.
	Buckets map[Family]Bucket
	// BackoffBase is the ceiling of the back-off after one throttle; each
	// further consecutive throttle doubles the ceiling, up to BackoffMax.
	// Zero means DefaultBackoffBase and DefaultBackoffMax.
	BackoffBase, BackoffMax time.Duration
	// Rand draws the jitter; pass a seeded one for a reproducible run. The
	// Pacer uses it under its own lock, so nobody else may use it. Nil means
	// one seeded from the wall clock.
	Rand *rand.Rand
	// Sleep waits d or until ctx ends, returning ctx's error in that case.
	// Wait calls it between attempts. Nil means a real timer; a test or the
	// simulator on a fake clock passes one that advances that clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Validate reports a configuration New would refuse.
func (c Config) Validate() error {
	var errs []error
	for _, f := range slices.Sorted(maps.Keys(c.Buckets)) {
		if f == "" {
			errs = append(errs, errors.New("bucket for an empty family name"))
			continue
		}
		if err := c.Buckets[f].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("bucket for %s: %w", f, err))
		}
	}
	if c.BackoffBase < 0 || c.BackoffMax < 0 {
		errs = append(errs, fmt.Errorf("backoff base %v and max %v: must not be negative", c.BackoffBase, c.BackoffMax))
	} else if d := c.withDefaults(); d.BackoffBase > d.BackoffMax {
		errs = append(errs, fmt.Errorf("backoff base %v is above backoff max %v", d.BackoffBase, d.BackoffMax))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pacing config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	buckets := DefaultBuckets()
	for f, b := range c.Buckets {
		buckets[f] = b
	}
	c.Buckets = buckets
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	return c
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// FamilyStats counts what happened to one family, for metrics.
type FamilyStats struct {
	Taken       uint64 // tokens handed out
	Borrowed    uint64 // of those, taken by Borrow (from an empty bucket or not)
	Denied      uint64 // Take calls answered with a wait instead
	Throttles   uint64 // throttling answers reported through Throttled
	Consecutive int    // throttles since the last success
}

// Pacer hands out tokens per family and enforces back-off after throttling.
// It is safe for concurrent use.
type Pacer struct {
	clk   clock.Clock
	cfg   Config
	mu    sync.Mutex
	state map[Family]*familyState
}

type familyState struct {
	lim *Limiter
	// until is when the current back-off ends; Take fails before it.
	until time.Time
	stats FamilyStats
}

// New returns a Pacer reading time from clk, every family's bucket full.
func New(clk clock.Clock, cfg Config) (*Pacer, error) {
	if clk == nil {
		return nil, errors.New("pacing: nil clock")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Rand == nil {
		// Jitter only has to differ between controllers, not be secret.
		seed := uint64(time.Now().UnixNano())
		cfg.Rand = rand.New(rand.NewPCG(seed, seed>>32|seed<<32))
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &Pacer{clk: clk, cfg: cfg, state: make(map[Family]*familyState)}, nil
}

// family returns f's state, creating it full at now. p.mu must be held.
func (p *Pacer) family(f Family, now time.Time) *familyState {
	s, ok := p.state[f]
	if !ok {
		b, known := p.cfg.Buckets[f]
		if !known {
			b = fallbackBucket
		}
		s = &familyState{lim: NewLimiter(b, now)}
		p.state[f] = s
	}
	return s
}

// Take takes one token from f's bucket if one is available now and no
// back-off is in force, and returns ok. Otherwise it takes nothing and
// returns how long until a token will be available and the back-off over;
// the wait is then always positive. It never sleeps. A family without a
// configured bucket is paced with EC2's smallest category bucket (50, 5/s).
func (p *Pacer) Take(f Family) (ok bool, wait time.Duration) {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.family(f, now)
	wait = max(s.lim.WaitFor(now), s.until.Sub(now))
	if wait > 0 || !s.lim.Allow(now) {
		s.stats.Denied++
		return false, max(wait, time.Nanosecond)
	}
	s.stats.Taken++
	return true, 0
}

// Borrow takes one token from f's bucket even if it is empty, leaving it in
// debt: the callers after it wait the debt out, so the rate over time stays
// the bucket's. Only a back-off in force refuses it (with the wait), since
// the cloud itself said it is over its limit. The controller borrows for
// the later calls of a step it has started (handover's pass), so a step
// that needs two calls is not refused the second one on every pass.
func (p *Pacer) Borrow(f Family) (ok bool, wait time.Duration) {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.family(f, now)
	if wait := s.until.Sub(now); wait > 0 {
		s.stats.Denied++
		return false, wait
	}
	s.lim.Borrow(now)
	s.stats.Taken++
	s.stats.Borrowed++
	return true, 0
}

// Wait blocks until Take succeeds for f or ctx ends; it returns ctx's error
// (wrapped) in that case, without having taken a token.
func (p *Pacer) Wait(ctx context.Context, f Family) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for a %s token: %w", f, err)
		}
		ok, wait := p.Take(f)
		if ok {
			return nil
		}
		if err := p.cfg.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("waiting for a %s token: %w", f, err)
		}
	}
}

// Throttled records that the cloud answered a call of f with a throttling
// error (RequestLimitExceeded, Throttling). It empties f's bucket — the real
// one is empty, whatever the local copy thought — and starts a back-off drawn
// uniformly from [0, ceiling] ("full jitter", so that controllers throttled
// together do not retry together), where the ceiling is BackoffBase doubled
// for each earlier consecutive throttle, capped at BackoffMax. A back-off in
// force is never shortened. Safe to call for every throttled call, including
// several in flight at once; each counts as consecutive.
func (p *Pacer) Throttled(f Family) {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.family(f, now)
	s.stats.Throttles++
	s.stats.Consecutive++
	ceiling := backoffCeiling(p.cfg.BackoffBase, p.cfg.BackoffMax, s.stats.Consecutive)
	jitter := time.Duration(p.cfg.Rand.Int64N(int64(min(ceiling, math.MaxInt64-1)) + 1))
	if until := now.Add(jitter); until.After(s.until) {
		s.until = until
	}
	s.lim.Drain(now)
}

// backoffCeiling is base·2^(n−1) capped at max, for n ≥ 1 consecutive
// throttles, computed without overflow.
func backoffCeiling(base, hi time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < hi; i++ {
		if d > math.MaxInt64/2 {
			return hi
		}
		d *= 2
	}
	return min(d, hi)
}

// Succeeded records that a call of f went through: the next throttle backs
// off from BackoffBase again. A back-off already in force runs its course,
// since the success may have been issued before the throttle that caused it.
func (p *Pacer) Succeeded(f Family) {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.family(f, now).stats.Consecutive = 0
}

// Stats returns a snapshot of the counters of every family used so far.
func (p *Pacer) Stats() map[Family]FamilyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Family]FamilyStats, len(p.state))
	for f, s := range p.state {
		out[f] = s.stats
	}
	return out
}
