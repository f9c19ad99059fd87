package handovertest

import (
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/pacing"
)

// Pacer is a handover.Pacer that always grants a token and counts what it
// was told.
type Pacer struct {
	mu        sync.Mutex
	Taken     map[pacing.Family]int
	Throttles map[pacing.Family]int
	// Borrowed counts the tokens granted by Borrow.
	Borrowed int
	// Held families answer Take with "wait this long" instead of a token.
	Held map[pacing.Family]time.Duration
	// ration, when set, is how many tokens each family grants between two
	// calls of Refill; left counts them down.
	ration int
	left   map[pacing.Family]int
}

var _ handover.Pacer = (*Pacer)(nil)

// NewPacer returns a pacer that never holds a call back.
func NewPacer() *Pacer {
	p := &Pacer{}
	p.Reset()
	return p
}

// Reset zeroes the counters.
func (p *Pacer) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Taken = map[pacing.Family]int{}
	p.Throttles = map[pacing.Family]int{}
	p.Held = map[pacing.Family]time.Duration{}
	p.ration, p.left = 0, nil
}

// Ration makes every family grant at most n tokens until the next Refill,
// like a token bucket that refills by n between two passes of a busy
// controller: a step that needs two tokens of one family per pass never
// finishes under Ration(1).
func (p *Pacer) Ration(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ration = n
	p.left = map[pacing.Family]int{}
}

// Refill gives every family its ration again.
func (p *Pacer) Refill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.left = map[pacing.Family]int{}
}

// Hold makes Take of f answer "wait d" until Hold(f, 0).
func (p *Pacer) Hold(f pacing.Family, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Held[f] = d
}

// Take implements handover.Pacer.
func (p *Pacer) Take(f pacing.Family) (bool, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.Held[f]; d > 0 {
		return false, d
	}
	if p.ration > 0 {
		if p.left[f] >= p.ration {
			return false, 10 * time.Millisecond
		}
		p.left[f]++
	}
	p.Taken[f]++
	return true, 0
}

// Borrow implements handover.Pacer: it grants unless f is held, even past
// the ration.
func (p *Pacer) Borrow(f pacing.Family) (bool, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.Held[f]; d > 0 {
		return false, d
	}
	p.Taken[f]++
	p.Borrowed++
	return true, 0
}

// Throttled implements handover.Pacer.
func (p *Pacer) Throttled(f pacing.Family) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Throttles[f]++
}

// Succeeded implements handover.Pacer.
func (p *Pacer) Succeeded(pacing.Family) {}

// ThrottleCount returns how often f was reported throttled.
func (p *Pacer) ThrottleCount(f pacing.Family) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Throttles[f]
}
