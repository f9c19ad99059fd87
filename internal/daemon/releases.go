package daemon

import (
	"context"
	"time"
)

// Releaser is the release controller's pass (*release.Controller): give
// launching instances of release channels their release, delete the
// release volumes nobody uses, finish rollouts whose publish died. Safe
// to repeat.
type Releaser interface {
	Pass(ctx context.Context) error
}

// WithReleases makes the daemon run the release controller's pass every
// interval, beside the migrations (`handover controller --releases`), so
// that one process serves both a group's state and its releases. Call it
// before Run.
func (d *Daemon) WithReleases(r Releaser, every time.Duration) {
	d.releases, d.releaseEvery = r, every
}

func (d *Daemon) passReleases(ctx context.Context) {
	err := d.releases.Pass(ctx)
	if ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	d.status.lastReleasePass, d.status.releaseErr = d.clk.Now(), errString(err)
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("release controller pass", "err", err)
	}
}
