package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/release"
)

// ReleaseInstancer lists what the instances of a channel run (the release
// volumes attached to each, from the cloud): release.Instances over the
// controller's cloud.
type ReleaseInstancer interface {
	Instances(ctx context.Context, channel string) ([]release.InstanceRelease, error)
}

// releaseInstancesAge bounds how often GET /v1/releases reads the cloud:
// a page polling every 2 s costs at most one listing per channel per
// interval.
const releaseInstancesAge = 5 * time.Second

// releaseInstances keeps the last reading of each channel's instances.
type releaseInstances struct {
	r  ReleaseInstancer
	mu sync.Mutex
	// last is by channel.
	last map[string]api.ChannelInstances
}

// WithReleaseInstances makes GET /v1/releases say which release each
// instance of each channel runs. Call it before serving.
func (d *Daemon) WithReleaseInstances(r ReleaseInstancer) {
	d.relInstances = &releaseInstances{r: r, last: map[string]api.ChannelInstances{}}
}

// read reads the instances of chs, each again once its last
// reading is older than releaseInstancesAge.
func (w *releaseInstances) read(ctx context.Context, now time.Time, chs []*ledger.Channel) []api.ChannelInstances {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]api.ChannelInstances, 0, len(chs))
	for _, c := range chs {
		ci, ok := w.last[c.ID]
		if !ok || now.Sub(ci.At) >= releaseInstancesAge {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			insts, err := w.r.Instances(ctx, c.ID)
			cancel()
			ci = api.ChannelInstances{Channel: c.ID, Instances: insts, At: now}
			if err != nil {
				ci.Error = fmt.Sprintf("listing the instances of channel %s: %v", c.ID, err)
			}
			if ci.Instances == nil {
				ci.Instances = []release.InstanceRelease{}
			}
			slices.SortFunc(ci.Instances, func(a, b release.InstanceRelease) int {
				if a.Group != b.Group {
					return strings.Compare(a.Group, b.Group)
				}
				return strings.Compare(a.Instance, b.Instance)
			})
			w.last[c.ID] = ci
		}
		out = append(out, ci)
	}
	return out
}

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
