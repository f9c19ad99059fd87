package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger"
)

// HoldLease takes the channel's lease for holder and renews it at a third
// of ttl until done is called, which releases it. The returned context
// ends if the lease is lost (another holder took it after a renewal
// failed for a whole ttl): a publish must not go on without it. A lease
// held by another holder is a *RunningError naming it.
func HoldLease(ctx context.Context, l Ledger, clk clock.Clock, log *slog.Logger, channel, holder string, ttl time.Duration) (context.Context, func(), error) {
	name := ledger.ChannelLease(channel)
	lease, err := l.AcquireLease(ctx, name, holder, clk.Now(), ttl)
	if errors.Is(err, ledger.ErrLeaseHeld) {
		return nil, nil, &RunningError{Channel: channel, Holder: lease.Holder, Expires: lease.Expires}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("taking the lease of channel %s: %w", channel, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			got, err := l.AcquireLease(ctx, name, holder, clk.Now(), ttl)
			switch {
			case errors.Is(err, ledger.ErrLeaseHeld):
				cancel(&RunningError{Channel: channel, Holder: got.Holder, Expires: got.Expires})
				return
			case err != nil:
				// Passing: the next tick tries again, well before expiry.
				log.Warn("renewing the channel lease failed", "channel", channel, "err", err)
			default:
				lease = got
			}
		}
	}()
	done := func() {
		cancel(nil)
		<-stopped
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		if err := l.ReleaseLease(rctx, lease); err != nil {
			log.Warn("releasing the channel lease", "channel", channel, "err", err)
		}
	}
	return ctx, done, nil
}

// sweepMark ends the holder name of a lease the release controller takes
// only to delete orphaned release volumes (Controller.recover): one
// pass's work, which a publish or a rollback waits out instead of being
// refused for it.
const sweepMark = " (deleting orphaned release volumes)"

// holdLeaseForPublish is HoldLease for a publish or a rollback: a lease
// the release controller holds for an orphan sweep is waited for, up to
// ttl; any other holder (a publish, a rollout being recovered) is refused
// at once with the *RunningError that names it.
func holdLeaseForPublish(ctx context.Context, l Ledger, clk clock.Clock, log *slog.Logger, channel, holder string, ttl time.Duration) (context.Context, func(), error) {
	const poll = 100 * time.Millisecond
	for tries := int(ttl / poll); ; tries-- {
		lctx, done, err := HoldLease(ctx, l, clk, log, channel, holder, ttl)
		var r *RunningError
		if !errors.As(err, &r) || !strings.HasSuffix(r.Holder, sweepMark) || tries <= 0 {
			return lctx, done, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}
