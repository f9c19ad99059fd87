package pacing

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Bucket describes a token bucket the way EC2 documents its limits: Burst is
// the bucket's maximum capacity, Refill the tokens added back per second.
type Bucket struct {
	Burst  float64
	Refill float64 // tokens per second
}

// Validate reports a bucket that could never hand out a token, or whose
// arithmetic would overflow.
func (b Bucket) Validate() error {
	switch {
	case math.IsNaN(b.Burst) || math.IsInf(b.Burst, 0) || b.Burst < 1:
		return fmt.Errorf("burst %v: must be a finite number of at least 1 token", b.Burst)
	case math.IsNaN(b.Refill) || math.IsInf(b.Refill, 0) || b.Refill <= 0:
		return fmt.Errorf("refill %v: must be a finite number of tokens per second above 0", b.Refill)
	case b.Refill > 1e9:
		return fmt.Errorf("refill %v: more than one token per nanosecond cannot be paced", b.Refill)
	case b.Burst/b.Refill > float64(math.MaxInt64/2)/1e9:
		return fmt.Errorf("burst %v at refill %v: takes too long to fill", b.Burst, b.Refill)
	}
	return nil
}

// Limiter is a token bucket that starts full and refills continuously. The
// Pacer uses it to hold handover back (client side), and a fake cloud can use
// it to answer RequestLimitExceeded the way EC2 does (server side), so both
// sides of a test agree on the arithmetic. It is safe for concurrent use.
//
// It is kept as a theoretical arrival time (GCRA) rather than a float count of
// tokens: all arithmetic is in integer nanoseconds, so on a fake clock a
// bucket refills exactly — advancing by WaitFor always yields a token, and no
// rounding drift accumulates over a long simulation.
type Limiter struct {
	mu sync.Mutex
	// interval is the time one token takes to refill; capacity is the time
	// the whole bucket takes (Burst × interval).
	interval, capacity time.Duration
	// tat is when the bucket will be full again if nothing more is taken;
	// at or before now, the bucket is full.
	tat time.Time
}

// NewLimiter returns a full bucket as of now. It panics if b is invalid
// (see Bucket.Validate): a bucket is configuration, checked at startup.
func NewLimiter(b Bucket, now time.Time) *Limiter {
	if err := b.Validate(); err != nil {
		panic("pacing: NewLimiter: " + err.Error())
	}
	interval := time.Duration(math.Round(1e9 / b.Refill))
	if interval < 1 {
		interval = 1
	}
	return &Limiter{
		interval: interval,
		capacity: time.Duration(math.Round(b.Burst * float64(interval))),
		tat:      now,
	}
}

// Allow takes one token if one is available at now and reports whether it
// did.
func (l *Limiter) Allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.allow(now)
}

func (l *Limiter) allow(now time.Time) bool {
	if l.wait(now) > 0 {
		return false
	}
	l.tat = l.base(now).Add(l.interval)
	return true
}

// Borrow takes one token at now whether or not one is available; the
// bucket's debt may then exceed its capacity, and WaitFor grows by it.
func (l *Limiter) Borrow(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tat = l.base(now).Add(l.interval)
}

// Available returns the tokens in the bucket at now, fractions included.
func (l *Limiter) Available(now time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	debt := l.base(now).Sub(now)
	return float64(l.capacity-debt) / float64(l.interval)
}

// WaitFor returns how long after now one token will be available: 0 if one
// is available now.
func (l *Limiter) WaitFor(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wait(now)
}

func (l *Limiter) wait(now time.Time) time.Duration {
	// Taking a token moves tat one interval later; that is allowed as long
	// as the bucket's debt then stays within its capacity.
	w := l.base(now).Add(l.interval).Sub(now) - l.capacity
	if w < 0 {
		return 0
	}
	return w
}

// Drain empties the bucket at now. The Pacer calls it when the cloud throttles
// a call the local bucket allowed: the real bucket, shared with every other
// client of the account, is empty, so the local one must stop believing
// otherwise.
func (l *Limiter) Drain(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tat = now.Add(l.capacity)
}

// base is tat, or now if tat has passed: a full bucket keeps no credit for
// idle time beyond its capacity.
func (l *Limiter) base(now time.Time) time.Time {
	if l.tat.Before(now) {
		return now
	}
	return l.tat
}
