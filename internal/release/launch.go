package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// LaunchCloud is what the release controller needs of the cloud beyond
// Cloud (awscloud.Cloud implements it, with handover.Cloud's contracts).
type LaunchCloud interface {
	Cloud
	WaitingActions(ctx context.Context) ([]handover.WaitingAction, error)
	CompleteLifecycleAction(ctx context.Context, ref ledger.HookRef, result string) error
	RecordLifecycleActionHeartbeat(ctx context.Context, ref ledger.HookRef) error
	DescribeHook(ctx context.Context, group, hook string) (handover.Hook, error)
	DeleteVolume(ctx context.Context, volumeID string) error
	DetachVolume(ctx context.Context, volumeID string, force bool) error
	// GroupTags returns an Auto Scaling group's tags; ErrNotFound when
	// it is gone. Safe to repeat.
	GroupTags(ctx context.Context, group string) (map[string]string, error)
	// TagVolume adds tags to a volume; safe to repeat.
	TagVolume(ctx context.Context, volumeID string, tags map[string]string) error
}

// Prober asks an instance's service which release it serves.
type Prober interface {
	// Serving returns the release name the service at addr answers with;
	// an error when it does not answer (yet).
	Serving(ctx context.Context, addr string) (string, error)
}

// HTTPProber asks GET http://ADDR:Port/release for {"release": NAME}, as
// examples/releaseweb answers.
type HTTPProber struct {
	Port   int
	Client *http.Client
}

// Serving implements Prober.
func (p HTTPProber) Serving(ctx context.Context, addr string) (string, error) {
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 3 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(addr, strconv.Itoa(p.Port))+"/release", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /release answered %s", resp.Status)
	}
	var body struct {
		Release string `json:"release"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body); err != nil {
		return "", fmt.Errorf("reading GET /release: %w", err)
	}
	return body.Release, nil
}

// Launcher is the release controller's part at launch: for every instance
// waiting on a launch hook whose metadata names a release channel, it
// makes a volume from the channel's latest release in the instance's zone
// and attaches it at Device. For a release-only group (no database) it
// then sends CONTINUE once the instance serves that release and "latest",
// re-read just before, is still it. An instance that was given an older
// release than the latest (a publish recorded a new one meanwhile) gets
// the latest attached beside it, its agent switches, and only then is it
// let into service: it never enters service on an older release. A
// stateful group's CONTINUE is its migration's: there the same point
// marks the volume served (TagServed), and handover's release gate holds
// the migration until it sees the mark on the latest's volume.
//
// It keeps no state of its own: the volumes it made carry the instance
// and the release in their tags, and CreateVolume's client token names
// the instance, the release and the channel's version, so a pass after a
// crash finds what the last one did. It must never CONTINUE an instance
// before it served the latest release.
type Launcher struct {
	Cloud  LaunchCloud
	Ledger Ledger
	Prober Prober
	Device string
	Clock  clock.Clock
	Log    *slog.Logger

	mu    sync.Mutex
	beats map[string]time.Time // last heartbeat by instance
}

// LaunchOutcome is what one pass did for one instance.
type LaunchOutcome struct {
	Instance, Group, Channel, Release, Volume string
	// Action is "waiting", "continued" (a release-only group) or
	// "served" (a stateful one: its migration continues it), with Why.
	Action, Why string
}

// Pass looks at every waiting launch once and moves each as far as it can
// go now. Errors with one instance are logged and leave it for the next
// pass; the error returned is listing's.
func (l *Launcher) Pass(ctx context.Context) ([]LaunchOutcome, error) {
	if l.Clock == nil {
		l.Clock = clock.Real{}
	}
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
	if l.Device == "" {
		l.Device = DefaultDevice
	}
	acts, err := l.Cloud.WaitingActions(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing waiting lifecycle actions: %w", err)
	}
	var out []LaunchOutcome
	tagged := map[string]string{} // group → its channel tag, read once a pass
	for _, a := range acts {
		if a.Transition != handover.TransitionLaunching {
			continue
		}
		md, err := handover.ParseMetadata(a.Metadata)
		if err != nil || md.Channel == "" {
			tag, seen := tagged[a.Group]
			if !seen {
				tags, terr := l.Cloud.GroupTags(ctx, a.Group)
				if terr != nil && !errors.Is(terr, handover.ErrNotFound) {
					l.Log.Warn("reading a group's tags failed; next pass retries", "group", a.Group, "err", terr)
					continue
				}
				tag = tags[handover.TagGroupChannel]
				tagged[a.Group] = tag
			}
			if tag == "" {
				continue
			}
			if md, err = handover.ParseLaunchMetadata(a.Metadata, tag); err != nil {
				l.Log.Warn("a launch hook's metadata is bad; its launch is left alone", "group", a.Group, "instance", a.Instance, "err", err)
				continue
			}
		}
		o, err := l.launch(ctx, a, md)
		if err != nil {
			l.Log.Warn("release launch step failed; next pass retries", "instance", a.Instance, "channel", md.Channel, "err", err)
			o.Action, o.Why = "waiting", err.Error()
		}
		out = append(out, o)
	}
	l.forgetBeats(acts)
	return out, nil
}

func (l *Launcher) launch(ctx context.Context, a handover.WaitingAction, md handover.Metadata) (LaunchOutcome, error) {
	o := LaunchOutcome{Instance: a.Instance, Group: a.Group, Channel: md.Channel, Action: "waiting"}
	ref := ledger.HookRef{Group: a.Group, Hook: a.Hook, Instance: a.Instance}
	l.heartbeat(ctx, ref)
	ch, err := l.Ledger.GetChannel(ctx, md.Channel)
	if errors.Is(err, ledger.ErrNotFound) || err == nil && ch.Latest == "" {
		o.Why = "channel " + md.Channel + " has no published release yet"
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("reading channel %s: %w", md.Channel, err)
	}
	inst, err := l.Cloud.DescribeInstance(ctx, a.Instance)
	if err != nil {
		return o, fmt.Errorf("reading instance %s: %w", a.Instance, err)
	}
	vols, err := l.Cloud.FindVolumes(ctx, map[string]string{TagInstance: inst.ID, handover.TagPurpose: PurposeInstance})
	if err != nil {
		return o, fmt.Errorf("looking for the release volumes of %s: %w", inst.ID, err)
	}
	var target *handover.Volume // the latest's volume, attached or not
	for i, v := range vols {
		if v.Tags[TagRelease] == ch.Latest && v.State != handover.VolumeError && v.State != handover.VolumeDeleting && v.State != handover.VolumeDeleted &&
			v.AttachState != "detaching" && (target == nil || v.AttachedTo == inst.ID) {
			target = &vols[i]
		}
	}
	// The others: the ones it serves (or a switch began) are attached;
	// the rest are strays a killed pass left, or made for a release that
	// was the latest a moment ago, or let go of: deleted as soon as they
	// are free, whatever the pass does next.
	var olds []handover.Volume
	strays := 0
	for _, v := range vols {
		switch {
		case target != nil && v.ID == target.ID:
		case v.AttachedTo == inst.ID && v.AttachState != "detaching":
			olds = append(olds, v)
		case v.AttachedTo == "" && (v.State == handover.VolumeAvailable || v.State == handover.VolumeError):
			if err := l.Cloud.DeleteVolume(ctx, v.ID); err != nil && !errors.Is(err, handover.ErrNotFound) {
				return o, fmt.Errorf("deleting stray release volume %s of %s: %w", v.ID, inst.ID, err)
			}
			l.Log.Info("stray release volume deleted", "instance", inst.ID, "volume-id", v.ID, "release", v.Tags[TagRelease])
		case v.State == handover.VolumeDeleting || v.State == handover.VolumeDeleted:
		default:
			strays++ // creating, or detaching: deleted at a later pass
		}
	}
	o.Release = ch.Latest
	if target == nil {
		v, err := l.Cloud.CreateVolume(ctx, instanceVolume(inst, md.Channel, ch.Latest, ch.LatestSnapshot, ch.Version))
		if err != nil {
			return o, fmt.Errorf("creating a volume of release %s for %s in %s: %w", ch.Latest, inst.ID, inst.Zone, err)
		}
		l.Log.Info("release volume created", "instance", inst.ID, "release", ch.Latest, "volume-id", v.ID, "zone", inst.Zone)
		target = &v
	}
	o.Volume = target.ID
	if target.AttachedTo != inst.ID {
		if len(olds) > 1 {
			// Two older releases attached (a newer one was published while
			// it switched): keep one, so the latest fits beside it.
			for _, v := range olds[1:] {
				if err := l.Cloud.DetachVolume(ctx, v.ID, false); err != nil && !errors.Is(err, handover.ErrNotFound) {
					return o, fmt.Errorf("detaching older release volume %s of %s: %w", v.ID, inst.ID, err)
				}
			}
			o.Why = "two older release volumes attached; letting one go before attaching " + ch.Latest
			return o, nil
		}
		if target.State != handover.VolumeAvailable {
			o.Why = "release volume " + target.ID + " is " + target.State
			return o, nil
		}
		// Beside what it has: an instance launched on an older release is
		// switched by its agent, as a rollout would, before it enters
		// service.
		dev := l.Device
		if len(olds) > 0 {
			dev = AltDevice(olds[0].AttachDevice)
		}
		if err := l.Cloud.AttachVolume(ctx, target.ID, inst.ID, dev); err != nil && !errors.Is(err, handover.ErrIncorrectState) {
			return o, fmt.Errorf("attaching release volume %s to %s at %s: %w", target.ID, inst.ID, dev, err)
		}
		o.Why = "attaching release " + ch.Latest + " at " + dev
		return o, nil
	}
	serving, err := l.Prober.Serving(ctx, inst.PrivateIP)
	if err != nil || serving != ch.Latest {
		o.Why = fmt.Sprintf("waiting for the service to serve %s (it answers %q, %v)", ch.Latest, serving, err)
		return o, nil
	}
	// It serves the latest: let go of what it served before, and enter
	// service only once nothing but the latest is left, so that no
	// volume outlives the launch unattached (once in service, only the
	// channel's lease holder may delete its volumes).
	for _, v := range olds {
		if err := l.Cloud.DetachVolume(ctx, v.ID, false); err != nil && !errors.Is(err, handover.ErrNotFound) {
			return o, fmt.Errorf("detaching old release volume %s: %w", v.ID, err)
		}
	}
	if len(olds) > 0 || strays > 0 {
		o.Why = fmt.Sprintf("serves %s; waiting for %d older release volumes to be gone", ch.Latest, len(olds)+strays)
		return o, nil
	}
	// Re-read latest: a publish may have recorded a newer release since.
	// CONTINUE only if this is still the latest; else the next pass
	// switches the instance to it first.
	now, err := l.Ledger.GetChannel(ctx, md.Channel)
	if err != nil {
		return o, fmt.Errorf("re-reading channel %s: %w", md.Channel, err)
	}
	if now.Latest != ch.Latest {
		o.Why = fmt.Sprintf("serves %s, but %s was published meanwhile: switching it before it enters service", ch.Latest, now.Latest)
		return o, nil
	}
	if !md.ReleaseOnly() {
		// A stateful group: its migration sends CONTINUE, once healthy
		// and once this mark is on the latest's volume (handover's
		// release gate, which reads the latest again).
		if target.Tags[TagServed] != "true" {
			if err := l.Cloud.TagVolume(ctx, target.ID, map[string]string{TagServed: "true"}); err != nil {
				return o, fmt.Errorf("marking release volume %s of %s served: %w", target.ID, inst.ID, err)
			}
			l.Log.Info("release served; the group's migration completes the launch", "instance", inst.ID, "channel", md.Channel, "release", ch.Latest)
		}
		o.Action, o.Why = "served", "serves "+ch.Latest+", the latest; the group's migration completes the launch"
		return o, nil
	}
	if err := l.Cloud.CompleteLifecycleAction(ctx, ref, handover.ResultContinue); err != nil && !errors.Is(err, handover.ErrNoActiveAction) {
		return o, fmt.Errorf("completing the launch of %s: %w", inst.ID, err)
	}
	o.Action, o.Why = "continued", "serves "+ch.Latest+", the latest"
	l.Log.Info("release launch continued", "instance", inst.ID, "channel", md.Channel, "release", ch.Latest)
	return o, nil
}

// instanceVolume is the volume of release (snapshot) for inst, made by
// the launcher and by rollouts alike: its tags say whose it is, so a pass
// after a kill finds it (and adopts it, or deletes it), and its client
// token makes the same step, repeated, answer with the same volume.
func instanceVolume(inst handover.Instance, channel, release, snapshot string, channelVersion int64) handover.VolumeSpec {
	return handover.VolumeSpec{Zone: inst.Zone, SnapshotID: snapshot,
		ClientToken: clientToken(inst.ID, release, channelVersion),
		Tags: map[string]string{TagManaged: "true", handover.TagPurpose: PurposeInstance, TagChannel: channel,
			TagRelease: release, TagInstance: inst.ID}}
}

// clientToken names the volume of one release for one instance while the
// channel is at one version of its record: repeating the step finds the
// same volume, and a later rollout of the same release to the same
// instance (after a rollback) gets a new one, where EC2 would otherwise
// answer with the volume the token first made, deleted since. EC2 allows
// 64 characters.
func clientToken(instance, release string, channelVersion int64) string {
	t := fmt.Sprintf("rel-%s-%d-%s", instance, channelVersion, release)
	if len(t) > 64 {
		t = t[:64]
	}
	return t
}

// heartbeat keeps a waiting launch alive at a third of its hook's timeout.
func (l *Launcher) heartbeat(ctx context.Context, ref ledger.HookRef) {
	now := l.Clock.Now()
	l.mu.Lock()
	if l.beats == nil {
		l.beats = map[string]time.Time{}
	}
	last, seen := l.beats[ref.Instance]
	if !seen {
		l.beats[ref.Instance] = now // the hook just started, or we just did
	}
	l.mu.Unlock()
	if !seen {
		return
	}
	timeout := time.Hour
	if h, err := l.Cloud.DescribeHook(ctx, ref.Group, ref.Hook); err == nil && h.HeartbeatTimeout > 0 {
		timeout = h.HeartbeatTimeout
	}
	if now.Sub(last) < timeout/3 {
		return
	}
	if err := l.Cloud.RecordLifecycleActionHeartbeat(ctx, ref); err != nil {
		l.Log.Warn("heartbeat of a release launch failed", "instance", ref.Instance, "err", err)
		return
	}
	l.mu.Lock()
	l.beats[ref.Instance] = now
	l.mu.Unlock()
}

func (l *Launcher) forgetBeats(acts []handover.WaitingAction) {
	live := map[string]bool{}
	for _, a := range acts {
		live[a.Instance] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.beats {
		if !live[id] {
			delete(l.beats, id)
		}
	}
}

// Sweep deletes the release volumes of instances that no longer have them
// attached (terminated, abandoned), and returns their ids. A volume still
// being created or attached to anything is left.
func (l *Launcher) Sweep(ctx context.Context) ([]string, error) {
	vols, err := l.Cloud.FindVolumes(ctx, map[string]string{TagManaged: "true", handover.TagPurpose: PurposeInstance})
	if err != nil {
		return nil, fmt.Errorf("listing instance release volumes: %w", err)
	}
	var deleted []string
	for _, v := range vols {
		if v.State != handover.VolumeAvailable && v.State != handover.VolumeError {
			continue
		}
		inst, err := l.Cloud.DescribeInstance(ctx, v.Tags[TagInstance])
		if err == nil && inst.State != handover.InstanceTerminated && inst.State != handover.InstanceShuttingDown {
			// Its instance may be about to attach it (a launch in
			// progress, a rollout step): not ours to take.
			continue
		}
		if err != nil && !errors.Is(err, handover.ErrNotFound) {
			continue
		}
		if err := l.Cloud.DeleteVolume(ctx, v.ID); err != nil {
			l.Log.Warn("deleting a release volume failed; next pass retries", "volume-id", v.ID, "err", err)
			continue
		}
		deleted = append(deleted, v.ID)
	}
	return deleted, nil
}
