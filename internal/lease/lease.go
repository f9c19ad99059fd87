// Package lease keeps the ledger leases under which a controller advances
// its durable records — migrations ("migration/<id>") and group updates
// ("update/<id>") — and runs the loop both share: take the lease, read the
// record and step it until it waits or ends, release the lease once the
// record is terminal. A record another holder has the lease of, or that
// another goroutine of this process is advancing, is left alone.
//
// # What the lease is for, and what it is not
//
// The lease only keeps two controllers from working the same record at
// once, so that they do not make the same side effect twice. It is not
// what keeps the ledger consistent: every write of a migration, a database
// or an update is a compare-and-set on the record's version
// (ledger.Ledger's SaveMigration, SaveDatabase, SaveUpdate), so a writer
// that lost its lease mid-step loses the compare-and-set to the new holder
// and re-reads. Every step is safe to repeat and records its intent before
// its side effect, so the worst a lapsed lease allows is a repeated step.
// The lease token is not used as a fencing token anywhere: fencing the
// service is the database epoch's job.
//
// # Renewing only near expiry
//
// Taking a lease is a ledger write, and a record is advanced far more often
// than its lease needs renewing (on every event, every advance pass,
// every reconcile). A Keeper remembers each lease it holds with its expiry
// and skips AcquireLease while more than half the TTL is left (fresh).
// Half, because:
//
//   - the controller advances every unfinished record at least every
//     advance interval, which the controller's flags keep under half the
//     TTL: once a renewal falls due, the next pass comes before the lease
//     expires, so a live controller never lets its lease lapse, exactly as
//     when it renewed on every call;
//   - the check runs before every pass of the loop, not once per Advance,
//     so every step starts with at least half the TTL of the lease ahead
//     (10 s at the default 20 s). No step relies on more: steps are a few
//     ledger and cloud calls, and a step that outlasts the lease is a
//     repeated step, as above. The lifecycle hook's heartbeat does not
//     depend on the lease at all: the migration records when it last beat
//     and whoever steps it next beats at a third of the hook's timeout;
//   - a crashed controller's lease lapses at most one TTL after its last
//     renewal, which is no later than before, so a survivor takes over no
//     later and the hooks of the crashed controller's migrations go
//     unbeaten no longer than before.
//
// At most one renewal per record per half TTL then replaces one per call.
// A caller that comes back less often than every half TTL (the Lambda
// handler between messages, a daemon whose workers fall behind) may now
// let a lease lapse between two calls where it used to keep it: that
// costs only the stickiness of the lease (another controller may pick the
// record up), never safety, and each call still takes the lease afresh
// before its first step.
//
// A remembered lease is forgotten when it is released, when the ledger
// says another holder has it (ErrLeaseHeld), and after any error of the
// lease calls or of a step: the next call then takes the lease from the
// ledger again instead of trusting memory after something went wrong.
// Expiry is judged on the injected clock, the one that stamped the expiry
// sent to the ledger; controllers must use distinct holders, as before (two
// processes with one holder renew each other's lease anyway).
//
// A Keeper must never step a record without having checked its lease in
// that pass, never read the wall clock, and never release a lease it does
// not hold.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger"
)

// Leases is the part of the ledger a Keeper uses (ledger.Ledger implements
// it).
type Leases interface {
	// AcquireLease grants the named lease to holder until now+ttl if it is
	// free, expired or already holder's (a renewal). Otherwise it returns
	// ledger.ErrLeaseHeld. Safe to repeat.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (ledger.Lease, error)
	// ReleaseLease frees l if l.Holder still holds it with l.Token; a lease
	// another holder took over is left alone (nil error). Safe to repeat.
	ReleaseLease(ctx context.Context, l ledger.Lease) error
}

// Next is what one pass over a record decided.
type Next int

const (
	// Wait: nothing more to do now; keep the lease and come back later.
	Wait Next = iota
	// Again: step the record again at once (it moved on, or a lost
	// compare-and-set wants a fresh read).
	Again
	// Done: the record is terminal; release its lease.
	Done
)

// MaxPasses bounds the passes of one Advance, so a single record cannot
// starve the others.
const MaxPasses = 16

// Keeper takes, remembers, renews and releases the leases of one
// controller. It is safe for concurrent use.
type Keeper struct {
	leases Leases
	holder string
	ttl    time.Duration
	clk    clock.Clock
	log    *slog.Logger

	mu   sync.Mutex
	held map[string]ledger.Lease // by name: leases this process holds
	busy map[string]bool         // names being advanced in this process
}

// New returns a Keeper taking leases for holder with ttl. The owner's
// config validates both (AcquireLease refuses an empty holder or ttl <= 0
// anyway). A nil log discards.
func New(leases Leases, holder string, ttl time.Duration, clk clock.Clock, log *slog.Logger) *Keeper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Keeper{leases: leases, holder: holder, ttl: ttl, clk: clk, log: log, held: map[string]ledger.Lease{}, busy: map[string]bool{}}
}

// Advance runs step under the named lease until step returns Wait or Done,
// or an error, at most MaxPasses times; Done releases the lease. It returns
// nil without calling step when another holder has the lease, or when
// another goroutine of this process is advancing name: the lease keeps
// other controllers out, but not a second goroutine of this one (same
// holder), which would repeat side effects.
//
// The lease is kept while the record waits: a controller that keeps
// working a waiting record avoids two controllers taking turns at it.
func (k *Keeper) Advance(ctx context.Context, name string, step func(context.Context) (Next, error)) error {
	if !k.enter(name) {
		return nil
	}
	defer k.leave(name)
	for range MaxPasses {
		ok, err := k.hold(ctx, name)
		if err != nil || !ok {
			return err
		}
		next, err := step(ctx)
		if err != nil {
			k.forget(name)
			return err
		}
		switch next {
		case Done:
			k.release(ctx, name)
			return nil
		case Wait:
			return nil
		}
	}
	return nil
}

// Held lists the leases this Keeper holds and that have not expired on
// its clock, by name: what the dashboard shows of a controller's work.
// It reads memory only.
func (k *Keeper) Held() []ledger.Lease {
	now := k.clk.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]ledger.Lease, 0, len(k.held))
	for _, l := range k.held {
		if now.Before(l.Expires) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b ledger.Lease) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (k *Keeper) enter(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.busy[name] {
		return false
	}
	k.busy[name] = true
	return true
}

func (k *Keeper) leave(name string) {
	k.mu.Lock()
	delete(k.busy, name)
	k.mu.Unlock()
}

// hold makes sure this process holds the named lease with more than half
// its TTL left, taking or renewing it if not. It reports false when another
// holder has it.
func (k *Keeper) hold(ctx context.Context, name string) (bool, error) {
	now := k.clk.Now()
	k.mu.Lock()
	l, ok := k.held[name]
	k.mu.Unlock()
	if ok && k.fresh(l, now) {
		return true, nil
	}
	l, err := k.leases.AcquireLease(ctx, name, k.holder, now, k.ttl)
	if err != nil {
		k.forget(name)
		if errors.Is(err, ledger.ErrLeaseHeld) {
			return false, nil
		}
		return false, fmt.Errorf("taking the lease %s: %w", name, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// Drop what expired: a record that ended elsewhere, or is no longer
	// advanced here, would otherwise stay remembered for good. An expired
	// lease is never fresh, so dropping it changes no decision.
	for n, h := range k.held {
		if !h.Expires.After(now) {
			delete(k.held, n)
		}
	}
	k.held[name] = l
	return true, nil
}

// fresh reports whether l has more than half its TTL left at now, so
// renewing it can wait (the package comment says why half).
func (k *Keeper) fresh(l ledger.Lease, now time.Time) bool {
	return l.Expires.Sub(now) > k.ttl/2
}

func (k *Keeper) forget(name string) {
	k.mu.Lock()
	delete(k.held, name)
	k.mu.Unlock()
}

// release frees a terminal record's lease. A failure is only logged: the
// record needs no more steps, and the lease runs out by itself within a
// TTL.
func (k *Keeper) release(ctx context.Context, name string) {
	k.mu.Lock()
	l, ok := k.held[name]
	delete(k.held, name)
	k.mu.Unlock()
	if !ok {
		return
	}
	if err := k.leases.ReleaseLease(ctx, l); err != nil {
		k.log.Warn("releasing lease", "lease", name, "err", err)
	}
}
