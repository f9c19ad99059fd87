package eventbridge

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

// Delivery timing, in real time.
const (
	// reorderHold is how long a Reorder fault waits for a delivery to
	// overtake it before it goes anyway.
	reorderHold = time.Second
	firstRetry  = 100 * time.Millisecond
	maxBackoff  = 10 * time.Second
)

// item is a delivery in the pipeline.
type item struct {
	d       Delivery
	attempt int
	routed  time.Time // clock time, for the maximum event age
	retry   retryPolicy
	reorder bool
}

// deliverer makes deliveries one at a time, in routing order (faults
// aside), from one goroutine; failed deliveries are retried with backoff
// without holding up the ones behind them.
type deliverer struct {
	send  QueueSender
	clock clock.Clock
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	mu      sync.Mutex
	queue   []item
	pending int           // accepted, and not yet delivered, dropped or given up
	idle    chan struct{} // closed while pending == 0
}

func newDeliverer(send QueueSender, c clock.Clock, log *slog.Logger) *deliverer {
	ctx, cancel := context.WithCancel(context.Background())
	d := &deliverer{send: send, clock: c, log: log, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), wake: make(chan struct{}, 1), idle: make(chan struct{})}
	close(d.idle)
	go d.run()
	return d
}

// accept takes a routed delivery and applies its fault.
func (d *deliverer) accept(del Delivery, f Fault, retry retryPolicy, now time.Time) {
	if f.Drop {
		d.log.Info("fault: delivery dropped", "rule", del.Rule, "target-id", del.TargetID, "event-id", del.EventID)
		return
	}
	copies := 1 + max(f.Duplicates, 0)
	for range copies {
		it := item{d: del, routed: now, retry: retry, reorder: f.Reorder}
		d.add(1)
		if f.Delay > 0 {
			time.AfterFunc(f.Delay, func() { d.push(it) })
			continue
		}
		d.push(it)
	}
}

func (d *deliverer) add(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending == 0 {
		d.idle = make(chan struct{})
	}
	d.pending += n
}

// finish marks one accepted delivery as settled.
func (d *deliverer) finish() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending--
	if d.pending == 0 {
		close(d.idle)
	}
}

// push queues an item for the worker; after close it is dropped.
func (d *deliverer) push(it item) {
	if d.ctx.Err() != nil {
		d.finish()
		return
	}
	d.mu.Lock()
	d.queue = append(d.queue, it)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *deliverer) pop() (item, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.queue) == 0 {
		return item{}, false
	}
	it := d.queue[0]
	d.queue[0] = item{}
	d.queue = d.queue[1:]
	return it, true
}

func (d *deliverer) run() {
	defer close(d.done)
	var held *item
	var holdTimer <-chan time.Time
	for {
		it, ok := d.pop()
		if !ok {
			select {
			case <-d.ctx.Done():
				d.drain(held)
				return
			case <-d.wake:
			case <-holdTimer:
				// Nothing overtook the held delivery in time.
				d.deliver(*held)
				held, holdTimer = nil, nil
			}
			continue
		}
		if it.reorder && held == nil {
			it.reorder = false
			held, holdTimer = &it, time.After(reorderHold)
			continue
		}
		d.deliver(it)
		if held != nil {
			d.deliver(*held)
			held, holdTimer = nil, nil
		}
	}
}

// drain settles what is left at close.
func (d *deliverer) drain(held *item) {
	if held != nil {
		d.finish()
	}
	for {
		if _, ok := d.pop(); !ok {
			return
		}
		d.finish()
	}
}

// deliver sends one item, scheduling a retry if it fails.
func (d *deliverer) deliver(it item) {
	err := d.send.SendByARN(d.ctx, it.d.QueueARN, it.d.Body)
	if err == nil {
		d.finish()
		return
	}
	if d.ctx.Err() != nil {
		d.finish()
		return
	}
	it.attempt++
	age := d.clock.Now().Sub(it.routed)
	if it.attempt > it.retry.MaxAttempts || age > it.retry.MaxAge {
		d.log.Error("delivery failed; giving up", "rule", it.d.Rule, "target-id", it.d.TargetID,
			"queue-arn", it.d.QueueARN, "event-id", it.d.EventID, "attempts", it.attempt, "error", err)
		d.finish()
		return
	}
	backoff := min(firstRetry<<min(it.attempt-1, 16), maxBackoff)
	d.log.Warn("delivery failed; retrying", "rule", it.d.Rule, "target-id", it.d.TargetID,
		"queue-arn", it.d.QueueARN, "event-id", it.d.EventID, "attempt", it.attempt, "backoff", backoff, "error", err)
	time.AfterFunc(backoff, func() { d.push(it) })
}

// flush waits until nothing is pending (or the worker has stopped).
func (d *deliverer) flush(ctx context.Context) error {
	d.mu.Lock()
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the worker; deliveries not yet made are dropped.
func (d *deliverer) close() {
	d.cancel()
	<-d.done
}
