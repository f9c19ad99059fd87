package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// Controller is `handover release controller`: the launch pass, the sweep
// of instance release volumes, and the recovery of a rollout nobody runs
// (its publish died): a channel whose lease is free and whose in-service
// instances are not all on its latest release is converged to it, under
// the channel's lease, as the publish would have; a channel whose
// instances are converged but which has orphaned release volumes (a
// killed step's, see Orphans) has them deleted, under the lease too.
type Controller struct {
	Launcher *Launcher
	Rollout  *Rollout
	Ledger   Ledger
	Clock    clock.Clock
	Log      *slog.Logger
	Holder   string
	LeaseTTL time.Duration
}

// Pass runs one round of everything.
func (c *Controller) Pass(ctx context.Context) error {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 30 * time.Second
	}
	var errs []error
	outs, err := c.Launcher.Pass(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, o := range outs {
		c.Log.Debug("release launch", "instance", o.Instance, "group", o.Group, "channel", o.Channel, "release", o.Release, "action", o.Action, "why", o.Why)
	}
	if gone, err := c.Launcher.Sweep(ctx); err != nil {
		errs = append(errs, err)
	} else if len(gone) > 0 {
		c.Log.Info("swept release volumes", "volumes", gone)
	}
	if err := c.recover(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// recover converges channels whose rollout nobody runs.
func (c *Controller) recover(ctx context.Context) error {
	if c.Rollout == nil {
		return nil
	}
	chs, err := c.Ledger.ListChannels(ctx)
	if err != nil {
		return fmt.Errorf("listing channels: %w", err)
	}
	for _, ch := range chs {
		if ch.Latest == "" {
			continue
		}
		insts, err := Instances(ctx, c.Rollout.Cloud, nil, ch.ID, false)
		if err != nil {
			return err
		}
		behind := 0
		for _, ir := range insts {
			if ir.Lifecycle == "InService" && (len(ir.Releases) != 1 || ir.Releases[0] != ch.Latest) {
				behind++
			}
		}
		var orphans []handover.Volume
		if behind == 0 {
			if orphans, err = Orphans(ctx, c.Rollout.Cloud, ch.ID); err != nil {
				return err
			}
			if len(orphans) == 0 {
				continue
			}
		}
		what := " (recovering a rollout)"
		if behind == 0 {
			what = sweepMark
		}
		lctx, done, err := HoldLease(ctx, c.Ledger, c.Clock, c.Log, ch.ID, c.Holder+what, c.LeaseTTL)
		if IsRunning(err) {
			continue // its publish (or another controller) is at it
		}
		if err != nil {
			return err
		}
		if behind == 0 {
			// Orphans are re-read under the lease: one seen before it may
			// have been a rollout's step, finished since.
			gone, err := c.Rollout.SweepOrphans(lctx, ch.ID)
			done()
			if len(gone) > 0 {
				c.Log.Info("deleted orphaned release volumes", "channel", ch.ID, "volumes", gone)
			}
			if err != nil {
				c.Log.Warn("deleting orphaned release volumes failed; next pass retries", "channel", ch.ID, "err", err)
			}
			continue
		}
		rel, err := c.Ledger.GetRelease(lctx, ledger.ReleaseID(ch.ID, ch.Latest))
		if err == nil {
			c.Log.Info("converging a channel whose rollout nobody runs", "channel", ch.ID, "release", ch.Latest, "behind", behind)
			_, err = c.Rollout.Deliver(lctx, c.Ledger, c.Clock, rel, ch.Previous)
		}
		done()
		if err != nil {
			c.Log.Warn("recovering the rollout failed", "channel", ch.ID, "err", err)
		}
	}
	return nil
}
