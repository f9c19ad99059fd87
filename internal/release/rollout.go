package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// RolloutCloud is what a rollout needs of the cloud (awscloud.Cloud
// implements it).
type RolloutCloud interface {
	LaunchCloud
	GroupMembers(ctx context.Context, group string) ([]handover.GroupMember, error)
	DetachVolume(ctx context.Context, volumeID string, force bool) error
	// LaunchHookMetadata returns the launch hooks' metadata and the
	// group's channel tag, by group.
	LaunchHookMetadata(ctx context.Context) (map[string]handover.GroupLaunch, error)
}

// HealthProber is a Prober that can also tell a healthy service.
type HealthProber interface {
	Prober
	// Healthy returns nil when the service at addr is healthy.
	Healthy(ctx context.Context, addr string) error
}

// Healthy implements HealthProber: GET /healthz answers 200.
func (p HTTPProber) Healthy(ctx context.Context, addr string) error {
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 3 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(addr, strconv.Itoa(p.Port))+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz answered %s", resp.Status)
	}
	return nil
}

// Rollout switches the running instances of a channel's groups to a
// release, in batches: for each instance a volume from the release in its
// zone, attached beside the current one (the agent mounts it, flips the
// release link and reloads), a wait until the instance serves the release
// and is healthy, then the old release volume detached and deleted. An
// instance that fails is switched back (its new volume detached: the agent
// flips back) and the rollout stops with an error.
type Rollout struct {
	Cloud  RolloutCloud
	Ledger Ledger
	Prober HealthProber
	Clock  clock.Clock
	Sleep  func(ctx context.Context, d time.Duration) error
	Log    *slog.Logger
	// Batch is how many instances switch at once; MinHealthyPercent how
	// many of the in-service instances must stay serving meanwhile.
	Batch             int
	MinHealthyPercent int
	// StepTimeout bounds one instance's switch; Timeout the whole rollout.
	StepTimeout time.Duration
	Timeout     time.Duration
	Poll        time.Duration
	Progress    func(Event)
}

func (r *Rollout) defaults() {
	if r.Clock == nil {
		r.Clock = clock.Real{}
	}
	if r.Sleep == nil {
		r.Sleep = sleep
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	if r.Batch == 0 {
		r.Batch = 1
	}
	if r.StepTimeout == 0 {
		r.StepTimeout = 5 * time.Minute
	}
	if r.Timeout == 0 {
		r.Timeout = time.Hour
	}
	if r.Poll == 0 {
		r.Poll = time.Second
	}
}

// Validate checks the rollout's settings in terms of the flags.
func (r *Rollout) Validate() error {
	var errs []error
	if r.Batch < 0 {
		errs = append(errs, fmt.Errorf("--batch %d: give at least 1", r.Batch))
	}
	if r.MinHealthyPercent < 0 || r.MinHealthyPercent > 99 {
		errs = append(errs, fmt.Errorf("--min-healthy-percent %d: give 0 to 99 (an instance is out of service while it switches)", r.MinHealthyPercent))
	}
	return errors.Join(errs...)
}

func (r *Rollout) progress(phase, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.Log.Info(msg, "phase", phase)
	if r.Progress != nil {
		r.Progress(Event{Phase: phase, Message: msg})
	}
}

// InstanceRelease is what one instance of a channel runs.
type InstanceRelease struct {
	Group     string `json:"group"`
	Instance  string `json:"instance"`
	Lifecycle string `json:"lifecycle"`
	// Releases are the releases of the release volumes attached to it:
	// one, or two while it switches.
	Releases []string `json:"releases"`
	Volumes  []string `json:"volumes"`
	// Serving is what its service answers ("" when not asked, or it did
	// not answer).
	Serving string `json:"serving,omitempty"`
}

// ChannelGroups returns the groups that join channel: by their launch
// hook's metadata, or by their handover:channel tag (the metadata's
// "channel" wins where both are set).
func ChannelGroups(ctx context.Context, c RolloutCloud, channel string) ([]string, error) {
	hooks, err := c.LaunchHookMetadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the groups' launch hooks: %w", err)
	}
	var out []string
	for g, gl := range hooks {
		for _, s := range gl.Metadata {
			if md, err := handover.ParseLaunchMetadata(s, gl.Channel); err == nil && md.Channel == channel {
				out = append(out, g)
				break
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Instances lists the instances of the channel's groups with the releases
// attached to them; with probe, each in-service one is asked what it
// serves.
func Instances(ctx context.Context, c RolloutCloud, p Prober, channel string, probe bool) ([]InstanceRelease, error) {
	groups, err := ChannelGroups(ctx, c, channel)
	if err != nil {
		return nil, err
	}
	vols, err := c.FindVolumes(ctx, map[string]string{TagManaged: "true", handover.TagPurpose: PurposeInstance, TagChannel: channel})
	if err != nil {
		return nil, fmt.Errorf("listing the release volumes of channel %s: %w", channel, err)
	}
	var out []InstanceRelease
	for _, g := range groups {
		members, err := c.GroupMembers(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("listing the instances of group %s: %w", g, err)
		}
		for _, m := range members {
			ir := InstanceRelease{Group: g, Instance: m.Instance, Lifecycle: m.Lifecycle}
			for _, v := range vols {
				if v.AttachedTo == m.Instance {
					ir.Releases = append(ir.Releases, v.Tags[TagRelease])
					ir.Volumes = append(ir.Volumes, v.ID)
				}
			}
			if probe && p != nil && m.Lifecycle == handover.LifecycleInService {
				if inst, err := c.DescribeInstance(ctx, m.Instance); err == nil {
					ir.Serving, _ = p.Serving(ctx, inst.PrivateIP)
				}
			}
			out = append(out, ir)
		}
	}
	return out, nil
}

// ConvergeResult says what a rollout did.
type ConvergeResult struct {
	Release   string        `json:"release"`
	Switched  []string      `json:"switched"` // instances switched to the release
	InService int           `json:"in_service"`
	Took      time.Duration `json:"took"`
}

// Converge switches every in-service instance of the channel to rel, in
// batches, until none is left on another release (instances that enter
// service meanwhile included: the launch controller gives new ones the
// latest release, and any that entered on another is switched here). It
// fails on the first instance that does not serve rel healthily within
// StepTimeout, after switching that one back.
func (r *Rollout) Converge(ctx context.Context, channel string, rel *ledger.Release) (ConvergeResult, error) {
	r.defaults()
	start := r.Clock.Now()
	res := ConvergeResult{Release: rel.Name}
	deadline := start.Add(r.Timeout)
	ch, err := r.Ledger.GetChannel(ctx, channel)
	if err != nil {
		return res, fmt.Errorf("reading channel %s: %w", channel, err)
	}
	var mu sync.Mutex
	for batch := 1; ; batch++ {
		insts, err := Instances(ctx, r.Cloud, nil, channel, false)
		if err != nil {
			return res, err
		}
		var inService, behind, launching []InstanceRelease
		for _, ir := range insts {
			onRel := len(ir.Releases) == 1 && ir.Releases[0] == rel.Name
			switch {
			case ir.Lifecycle == handover.LifecycleInService:
				inService = append(inService, ir)
				if !onRel {
					behind = append(behind, ir)
				}
			case strings.HasPrefix(ir.Lifecycle, "Pending") && len(ir.Releases) > 0 && !onRel:
				// A launch the release controller may have let through
				// just before rel was recorded: it is InService on an
				// older release soon, and switched then; or the launch
				// controller switches it first. Not converged until then.
				launching = append(launching, ir)
			}
		}
		res.InService = len(inService)
		if len(behind) == 0 && len(launching) > 0 {
			if r.Clock.Now().After(deadline) {
				return res, fmt.Errorf("rollout of %s to channel %s: %d launching instances still on other releases after %s", rel.Name, channel, len(launching), r.Timeout)
			}
			if err := r.Sleep(ctx, r.Poll); err != nil {
				return res, err
			}
			continue
		}
		if len(behind) == 0 {
			// Under the channel's lease: what a killed step left behind
			// is nobody's now.
			if gone, err := r.SweepOrphans(ctx, channel); err != nil {
				r.Log.Warn("deleting orphaned release volumes failed; the release controller retries", "channel", channel, "err", err)
			} else if len(gone) > 0 {
				r.progress("swept", "deleted %d orphaned release volumes of channel %s: %s", len(gone), channel, strings.Join(gone, ", "))
			}
			res.Took = r.Clock.Now().Sub(start)
			r.progress("converged", "all %d in-service instances of channel %s serve %s", len(inService), channel, rel.Name)
			return res, nil
		}
		if r.Clock.Now().After(deadline) {
			return res, fmt.Errorf("rollout of %s to channel %s: %d instances still on other releases after %s", rel.Name, channel, len(behind), r.Timeout)
		}
		size := r.batchSize(len(inService))
		if size > len(behind) {
			size = len(behind)
		}
		now := behind[:size]
		r.progress("rollout", "batch %d: switching %d of %d instances behind (%d in service) to %s", batch, len(now), len(behind), len(inService), rel.Name)
		g, gctx := errgroup.WithContext(ctx)
		for _, ir := range now {
			g.Go(func() error {
				if err := r.switchInstance(gctx, ir, channel, rel, ch.Version); err != nil {
					return fmt.Errorf("instance %s: %w", ir.Instance, err)
				}
				mu.Lock()
				res.Switched = append(res.Switched, ir.Instance)
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			res.Took = r.Clock.Now().Sub(start)
			return res, err
		}
	}
}

// batchSize is how many of n in-service instances may switch at once.
func (r *Rollout) batchSize(n int) int {
	keep := int(math.Ceil(float64(n) * float64(r.MinHealthyPercent) / 100))
	size := min(r.Batch, n-keep)
	return max(size, 1)
}

// switchInstance moves one instance to rel, or back to where it was.
func (r *Rollout) switchInstance(ctx context.Context, ir InstanceRelease, channel string, rel *ledger.Release, gen int64) error {
	inst, err := r.Cloud.DescribeInstance(ctx, ir.Instance)
	if err != nil {
		return fmt.Errorf("reading the instance: %w", err)
	}
	vols, err := r.Cloud.FindVolumes(ctx, map[string]string{TagInstance: inst.ID, handover.TagPurpose: PurposeInstance})
	if err != nil {
		return fmt.Errorf("listing its release volumes: %w", err)
	}
	olds, next, strays := sortSwitch(inst.ID, rel.Name, vols)
	// What a killed step left: volumes this instance let go of (or never
	// took), and a second old release attached by a switch that did not
	// finish. Drop them first, so the instance has at most the one it
	// serves and the one it switches to.
	for _, v := range strays {
		if err := r.dropVolume(ctx, v.ID); err != nil {
			return fmt.Errorf("dropping release volume %s a killed step left: %w", v.ID, err)
		}
	}
	if len(olds) > 1 {
		keep := r.servedVolume(ctx, inst.PrivateIP, olds)
		for _, v := range olds {
			if v.ID != keep.ID {
				if err := r.dropVolume(ctx, v.ID); err != nil {
					return fmt.Errorf("dropping release volume %s of an unfinished switch: %w", v.ID, err)
				}
			}
		}
		olds = []handover.Volume{keep}
	}
	if next.AttachedTo != inst.ID {
		if next.ID == "" {
			next, err = r.Cloud.CreateVolume(ctx, instanceVolume(inst, channel, rel.Name, rel.SnapshotID, gen))
			if err != nil {
				return fmt.Errorf("creating a volume of %s in %s: %w", rel.Name, inst.Zone, err)
			}
		}
		// else: a volume of rel a killed step made for this instance and
		// did not attach: adopted, not made again.
		dev := DefaultDevice
		if len(olds) > 0 {
			dev = AltDevice(olds[0].AttachDevice)
		}
		if err := r.waitVolume(ctx, next.ID, func(v handover.Volume) bool { return v.State == handover.VolumeAvailable || v.AttachedTo == inst.ID }); err != nil {
			return err
		}
		if err := r.Cloud.AttachVolume(ctx, next.ID, inst.ID, dev); err != nil && !errors.Is(err, handover.ErrIncorrectState) {
			return fmt.Errorf("attaching %s at %s: %w", next.ID, dev, err)
		}
	}
	// The agent flips the link and reloads; wait for the service to say so.
	stepEnd := r.Clock.Now().Add(r.StepTimeout)
	var last string
	var lastErr error
	for {
		serving, err := r.Prober.Serving(ctx, inst.PrivateIP)
		if err == nil && serving == rel.Name {
			if err = r.Prober.Healthy(ctx, inst.PrivateIP); err == nil {
				break
			}
		}
		last, lastErr = serving, err
		if r.Clock.Now().After(stepEnd) {
			r.switchBack(inst, next, olds)
			return fmt.Errorf("did not serve %s healthily within %s (it answers %q, %v); switched back", rel.Name, r.StepTimeout, last, lastErr)
		}
		if err := r.Sleep(ctx, r.Poll); err != nil {
			r.switchBack(inst, next, olds)
			return err
		}
	}
	for _, o := range olds {
		if err := r.dropVolume(ctx, o.ID); err != nil {
			return err
		}
	}
	r.progress("switched", "%s serves %s", inst.ID, rel.Name)
	return nil
}

// sortSwitch sorts an instance's release volumes for a switch to release:
// olds are attached and hold another release; next is the volume of
// release, attached (a switch a killed rollout began) or not (made and
// not attached; adopted), "" when there is none; strays are the rest:
// detaching, or unattached volumes of other releases, or a second
// unattached one of release.
func sortSwitch(instance, release string, vols []handover.Volume) (olds []handover.Volume, next handover.Volume, strays []handover.Volume) {
	usable := func(v handover.Volume) bool {
		return v.State == handover.VolumeAvailable || v.State == handover.VolumeCreating || v.State == handover.VolumeInUse
	}
	for _, v := range vols {
		if v.AttachedTo == instance && v.AttachState != "detaching" && v.Tags[TagRelease] == release {
			next = v
		}
	}
	for _, v := range vols {
		switch {
		case v.ID == next.ID:
		case v.AttachedTo == instance && v.AttachState != "detaching" && v.Tags[TagRelease] != release:
			olds = append(olds, v)
		case v.AttachedTo == "" && next.ID == "" && v.Tags[TagRelease] == release && usable(v):
			next = v
		case v.AttachedTo == instance || v.AttachedTo == "":
			strays = append(strays, v)
		}
	}
	return olds, next, strays
}

// servedVolume returns the one of vols whose release the service at addr
// answers with; the first when it answers none of them.
func (r *Rollout) servedVolume(ctx context.Context, addr string, vols []handover.Volume) handover.Volume {
	if s, err := r.Prober.Serving(ctx, addr); err == nil {
		for _, v := range vols {
			if v.Tags[TagRelease] == s {
				return v
			}
		}
	}
	return vols[0]
}

// switchBack detaches the new release volume, so the agent flips back to
// the old one, waits until the instance serves the old release again, and
// deletes the new volume; on a context of its own, since the rollout's may
// be what ended.
func (r *Rollout) switchBack(inst handover.Instance, next handover.Volume, olds []handover.Volume) {
	ctx, cancel := context.WithTimeout(context.Background(), r.StepTimeout)
	defer cancel()
	if len(olds) == 0 {
		return // nothing to go back to: it keeps what it has
	}
	back := olds[0].Tags[TagRelease]
	if err := r.Cloud.DetachVolume(ctx, next.ID, false); err != nil && !errors.Is(err, handover.ErrNotFound) {
		r.Log.Warn("switching back failed", "instance", inst.ID, "volume-id", next.ID, "err", err)
		return
	}
	for {
		if s, err := r.Prober.Serving(ctx, inst.PrivateIP); err == nil && s == back {
			break
		}
		if err := r.Sleep(ctx, r.Poll); err != nil {
			r.Log.Warn("the instance did not serve its old release again in time", "instance", inst.ID, "release", back)
			return
		}
	}
	if err := r.dropVolume(ctx, next.ID); err != nil {
		r.Log.Warn("deleting the failed release's volume failed; the sweeper takes it", "instance", inst.ID, "volume-id", next.ID, "err", err)
	}
	r.progress("switched", "%s switched back to %s", inst.ID, back)
}

// dropVolume detaches a release volume, waits until it is free and
// deletes it.
func (r *Rollout) dropVolume(ctx context.Context, id string) error {
	if err := r.Cloud.DetachVolume(ctx, id, false); err != nil && !errors.Is(err, handover.ErrNotFound) && !errors.Is(err, handover.ErrIncorrectState) {
		return fmt.Errorf("detaching %s: %w", id, err)
	}
	// (IncorrectState: detaching already.)
	err := r.waitVolume(ctx, id, func(v handover.Volume) bool {
		return v.AttachedTo == "" && (v.State == handover.VolumeAvailable || v.State == handover.VolumeError)
	})
	if errors.Is(err, handover.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.Cloud.DeleteVolume(ctx, id); err != nil && !errors.Is(err, handover.ErrNotFound) {
		return fmt.Errorf("deleting %s: %w", id, err)
	}
	return nil
}

func (r *Rollout) waitVolume(ctx context.Context, id string, ok func(handover.Volume) bool) error {
	end := r.Clock.Now().Add(r.StepTimeout)
	for {
		v, err := r.Cloud.DescribeVolume(ctx, id)
		if err == nil && ok(v) {
			return nil
		}
		if errors.Is(err, handover.ErrNotFound) {
			return err
		}
		if r.Clock.Now().After(end) {
			return fmt.Errorf("volume %s still %s after %s (%v)", id, v.State, r.StepTimeout, err)
		}
		if err := r.Sleep(ctx, r.Poll); err != nil {
			return err
		}
	}
}
