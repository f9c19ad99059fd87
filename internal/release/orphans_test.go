package release

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

// The tests here put the cloud in the state a SIGKILL leaves at each
// window where a release volume made for an instance exists but is not
// (or no longer) attached, and check that the next pass adopts it or
// deletes it. The local cloud and the SDK path are real; the instances'
// agents are played by agentProber, which answers as the agent would:
// the release of the release volume attached last.

// agentProber answers for the instance at addr the release of the release
// volume attached to it last, as the agent's releaseTarget picks it.
type agentProber struct {
	e         *env
	unhealthy map[string]bool // releases that fail health
}

func (p agentProber) instanceAt(ctx context.Context, addr string) (string, error) {
	out, err := p.e.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{})
	if err != nil {
		return "", err
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			if aws.ToString(i.PrivateIpAddress) == addr {
				return aws.ToString(i.InstanceId), nil
			}
		}
	}
	return "", fmt.Errorf("no instance at %s", addr)
}

func (p agentProber) Serving(ctx context.Context, addr string) (string, error) {
	id, err := p.instanceAt(ctx, addr)
	if err != nil {
		return "", err
	}
	out, err := p.e.ec2.DescribeVolumes(ctx, &awsec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{id}}}})
	if err != nil {
		return "", err
	}
	var rel string
	var at time.Time
	for _, v := range out.Volumes {
		for _, a := range v.Attachments {
			if a.State != ec2types.VolumeAttachmentStateAttached || aws.ToString(a.InstanceId) != id {
				continue
			}
			for _, tg := range v.Tags {
				if aws.ToString(tg.Key) == TagRelease && (rel == "" || aws.ToTime(a.AttachTime).After(at)) {
					rel, at = aws.ToString(tg.Value), aws.ToTime(a.AttachTime)
				}
			}
		}
	}
	if rel == "" {
		return "", fmt.Errorf("%s has no release attached", id)
	}
	return rel, nil
}

func (p agentProber) Healthy(ctx context.Context, addr string) error {
	rel, err := p.Serving(ctx, addr)
	if err != nil {
		return err
	}
	if p.unhealthy[rel] {
		return fmt.Errorf("release %s is unhealthy", rel)
	}
	return nil
}

// windows is a channel "web" with releases r1..r3 (snapshots of a blank
// volume) and a group "web" joined to it whose instances run no agent.
type windows struct {
	*env
	t      *testing.T
	led    ledger.Ledger
	asg    *autoscaling.Client
	prober agentProber
	launch *Launcher
	roll   *Rollout
	rels   map[string]*ledger.Release
}

func newWindows(t *testing.T, desired int32) *windows {
	t.Helper()
	return newWindowsGroup(t, desired, `{"channel":"web"}`, nil)
}

// newWindowsGroup is newWindows with the group's hook metadata and tags.
func newWindowsGroup(t *testing.T, desired int32, metadata string, tags map[string]string) *windows {
	t.Helper()
	e := startCloud(t)
	ctx := t.Context()
	w := &windows{env: e, t: t, led: memory.New(), asg: autoscaling.NewFromConfig(e.cfg), prober: agentProber{e: e}, rels: map[string]*ledger.Release{}}
	blank, err := e.cloud.CreateVolume(ctx, handover.VolumeSpec{Zone: "us-east-1a", SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"r1", "r2", "r3"} {
		snap, err := e.cloud.CreateSnapshot(ctx, blank.ID, map[string]string{TagManaged: "true", TagChannel: "web", TagRelease: name})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "snapshot "+snap.ID, func() (bool, error) {
			s, err := e.cloud.DescribeSnapshot(ctx, snap.ID)
			return s.State == handover.SnapshotCompleted, err
		})
		rel := &ledger.Release{ID: ledger.ReleaseID("web", name), Channel: "web", Name: name, State: ledger.ReleasePublished, SnapshotID: snap.ID}
		must(t, w.led.CreateRelease(ctx, rel))
		w.rels[name] = rel
	}
	w.setLatest("r1")
	w.launch = &Launcher{Cloud: e.cloud, Ledger: w.led, Prober: w.prober}
	w.roll = &Rollout{Cloud: e.cloud, Ledger: w.led, Prober: w.prober, Batch: 2, StepTimeout: 20 * time.Second, Timeout: time.Minute, Poll: 20 * time.Millisecond}
	if _, err := e.ec2.CreateLaunchTemplate(ctx, &awsec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(webGroup),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(testAMI)}}); err != nil {
		t.Fatal(err)
	}
	var gtags []astypes.Tag
	for k, v := range tags {
		gtags = append(gtags, astypes.Tag{Key: aws.String(k), Value: aws.String(v), PropagateAtLaunch: aws.Bool(false)})
	}
	var md *string
	if metadata != "" {
		md = aws.String(metadata)
	}
	if _, err := w.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(webGroup), MinSize: aws.Int32(0), MaxSize: aws.Int32(4), DesiredCapacity: aws.Int32(desired), Tags: gtags,
		AvailabilityZones: []string{"us-east-1a"},
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(webGroup), Version: aws.String("$Latest")},
		LifecycleHookSpecificationList: []astypes.LifecycleHookSpecification{{
			LifecycleHookName: aws.String("handover-launch"), LifecycleTransition: aws.String(handover.TransitionLaunching),
			HeartbeatTimeout: aws.Int32(300), DefaultResult: aws.String("ABANDON"), NotificationMetadata: md}},
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *windows) setLatest(name string) {
	w.t.Helper()
	if _, err := SetLatest(w.t.Context(), w.led, clock.Real{}, w.rels[name]); err != nil {
		w.t.Fatal(err)
	}
}

// members returns the group's instances by lifecycle state once n exist.
func (w *windows) members(n int) map[string]string {
	w.t.Helper()
	var got map[string]string
	waitFor(w.t, fmt.Sprintf("%d instances in group web", n), func() (bool, error) {
		ms, err := w.cloud.GroupMembers(w.t.Context(), webGroup)
		got = map[string]string{}
		for _, m := range ms {
			got[m.Instance] = m.Lifecycle
		}
		return err == nil && len(got) == n, fmt.Errorf("%v %v", got, err)
	})
	return got
}

// waitingInstances waits for n launches waiting on the hook.
func (w *windows) waitingInstances(n int) []handover.Instance {
	w.t.Helper()
	var ids []string
	waitFor(w.t, fmt.Sprintf("%d launches waiting", n), func() (bool, error) {
		acts, err := w.cloud.WaitingActions(w.t.Context())
		ids = nil
		for _, a := range acts {
			if a.Transition == handover.TransitionLaunching {
				ids = append(ids, a.Instance)
			}
		}
		return err == nil && len(ids) == n, err
	})
	slices.Sort(ids)
	var out []handover.Instance
	for _, id := range ids {
		inst, err := w.cloud.DescribeInstance(w.t.Context(), id)
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, inst)
	}
	return out
}

// passUntilInService runs launcher passes until every instance of the
// group is in service.
func (w *windows) passUntilInService(n int) {
	w.t.Helper()
	waitFor(w.t, fmt.Sprintf("%d instances in service", n), func() (bool, error) {
		if _, err := w.launch.Pass(w.t.Context()); err != nil {
			return false, err
		}
		ms := w.members(n)
		for _, lc := range ms {
			if lc != handover.LifecycleInService {
				return false, fmt.Errorf("%v", ms)
			}
		}
		return true, nil
	})
}

// volumesOf returns an instance's release volumes, attached or not.
func (w *windows) volumesOf(id string) []handover.Volume {
	w.t.Helper()
	vols, err := w.cloud.FindVolumes(w.t.Context(), map[string]string{TagInstance: id, handover.TagPurpose: PurposeInstance})
	if err != nil {
		w.t.Fatal(err)
	}
	var out []handover.Volume
	for _, v := range vols {
		if v.State != handover.VolumeDeleting && v.State != handover.VolumeDeleted {
			out = append(out, v)
		}
	}
	return out
}

// orphan makes the volume of release for inst as a step killed right
// after CreateVolume left it: made with the step's spec, never attached.
func (w *windows) orphan(inst handover.Instance, release string) handover.Volume {
	w.t.Helper()
	ch, err := w.led.GetChannel(w.t.Context(), "web")
	if err != nil {
		w.t.Fatal(err)
	}
	v, err := w.cloud.CreateVolume(w.t.Context(), instanceVolume(inst, "web", release, w.rels[release].SnapshotID, ch.Version))
	if err != nil {
		w.t.Fatal(err)
	}
	waitFor(w.t, "volume "+v.ID+" available", func() (bool, error) {
		got, err := w.cloud.DescribeVolume(w.t.Context(), v.ID)
		return got.State == handover.VolumeAvailable, err
	})
	return v
}

// attach attaches v to inst at dev, as a killed step's AttachVolume did.
func (w *windows) attach(v handover.Volume, inst handover.Instance, dev string) {
	w.t.Helper()
	must(w.t, w.cloud.AttachVolume(w.t.Context(), v.ID, inst.ID, dev))
	waitFor(w.t, "volume "+v.ID+" attached", func() (bool, error) {
		got, err := w.cloud.DescribeVolume(w.t.Context(), v.ID)
		return got.AttachedTo == inst.ID && got.AttachState == "attached", err
	})
}

// wantOnly fails unless inst has exactly one release volume, of release,
// attached (and, with id, that very volume).
func (w *windows) wantOnly(inst, release, id string) {
	w.t.Helper()
	vols := w.volumesOf(inst)
	if len(vols) != 1 || vols[0].Tags[TagRelease] != release || vols[0].AttachedTo != inst || (id != "" && vols[0].ID != id) {
		var desc []string
		for _, v := range vols {
			desc = append(desc, fmt.Sprintf("%s %s %s attached-to=%q", v.ID, v.Tags[TagRelease], v.State, v.AttachedTo))
		}
		w.t.Errorf("release volumes of %s: %v, want only %s (%s) attached", inst, desc, release, id)
	}
}

// TestLaunchWindows: the launcher killed after CreateVolume, once with
// one latest and again after a newer one was recorded; and a launch
// switched to a newer release before it entered service, whose old
// volume it detached. The next passes adopt the latest's volume, delete
// the others, and let the instance into service only once nothing but
// the latest is left, with no other sweep running.
func TestLaunchWindows(t *testing.T) {
	if testing.Short() {
		t.Skip("local cloud")
	}
	w := newWindows(t, 1)
	ctx := t.Context()
	a := w.waitingInstances(1)[0]
	stray := w.orphan(a, "r1")
	w.setLatest("r2")
	adopted := w.orphan(a, "r2")
	w.passUntilInService(1)
	w.wantOnly(a.ID, "r2", adopted.ID)
	if v, err := w.cloud.DescribeVolume(ctx, stray.ID); err == nil && v.State == handover.VolumeAvailable {
		t.Errorf("stray volume %s of an older release is left available", stray.ID)
	}

	// b launches on r2; r3 is recorded once r2 is attached to it.
	if _, err := w.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(webGroup), DesiredCapacity: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	b := w.waitingInstances(1)[0]
	waitFor(t, "r2 attached to "+b.ID, func() (bool, error) {
		if _, err := w.launch.Pass(ctx); err != nil {
			return false, err
		}
		vols := w.volumesOf(b.ID)
		return len(vols) == 1 && vols[0].AttachedTo == b.ID, nil
	})
	w.setLatest("r3")
	// Passes until one sends b's CONTINUE, then none: what is left at
	// that moment stays (once in service, only the channel's lease
	// holder may delete its volumes).
	waitFor(t, b.ID+"'s CONTINUE", func() (bool, error) {
		outs, err := w.launch.Pass(ctx)
		for _, o := range outs {
			if o.Instance == b.ID && o.Action == "continued" {
				return true, nil
			}
		}
		return false, err
	})
	waitFor(t, b.ID+" in service", func() (bool, error) {
		lc := w.members(2)[b.ID]
		return lc == handover.LifecycleInService, fmt.Errorf("%s is %s", b.ID, lc)
	})
	w.wantOnly(b.ID, "r3", "")
}

// TestRolloutWindows: a rollout (or its switch-back) killed after
// CreateVolume, after AttachVolume, after detaching the old volume, and
// after attaching a second release beside the first; the next Converge
// adopts what it can, deletes the rest, and the release controller
// deletes what is left once nobody holds the channel's lease.
func TestRolloutWindows(t *testing.T) {
	if testing.Short() {
		t.Skip("local cloud")
	}
	w := newWindows(t, 2)
	insts := w.waitingInstances(2)
	a, b := insts[0], insts[1]
	w.passUntilInService(2)
	ctx := t.Context()

	// r2: a's rollout step was killed after CreateVolume, b's after
	// AttachVolume (beside r1).
	w.setLatest("r2")
	madeA := w.orphan(a, "r2")
	madeB := w.orphan(b, "r2")
	w.attach(madeB, b, AltDevice(DefaultDevice))
	if _, err := w.roll.Converge(ctx, "web", w.rels["r2"]); err != nil {
		t.Fatal(err)
	}
	w.wantOnly(a.ID, "r2", madeA.ID)
	w.wantOnly(b.ID, "r2", madeB.ID)

	// r3: a's switch to r1 (a rollback) was killed with r1 attached
	// beside r2; b's switch-back from a failed release was killed after
	// the detach, before the delete. Converge takes a to r3 from the
	// release it serves, and deletes b's leftover at the end.
	devA := AltDevice(w.volumesOf(a.ID)[0].AttachDevice)
	backA := w.orphan(a, "r1")
	w.attach(backA, a, devA)
	leftB := w.orphan(b, "r1")
	w.setLatest("r3")
	if _, err := w.roll.Converge(ctx, "web", w.rels["r3"]); err != nil {
		t.Fatal(err)
	}
	w.wantOnly(a.ID, "r3", "")
	w.wantOnly(b.ID, "r3", "")
	if v, err := w.cloud.DescribeVolume(ctx, leftB.ID); err == nil && v.State == handover.VolumeAvailable {
		t.Errorf("b's leftover volume %s is still available after Converge", leftB.ID)
	}

	// A rollout killed after detaching a's old volume, before deleting
	// it, with every instance on the latest: no rollout runs again, and
	// the release controller deletes it under the channel's lease; while
	// someone holds the lease, it leaves it.
	oldA := w.orphan(a, "r2")
	ctl := &Controller{Launcher: w.launch, Rollout: w.roll, Ledger: w.led, Holder: "test controller", LeaseTTL: 5 * time.Second}
	lease, err := w.led.AcquireLease(ctx, ledger.ChannelLease("web"), "a publish", time.Now(), time.Minute)
	must(t, err)
	must(t, ctl.Pass(ctx))
	if v, err := w.cloud.DescribeVolume(ctx, oldA.ID); err != nil || v.State != handover.VolumeAvailable {
		t.Fatalf("the controller touched %s while a publish held the lease: %+v %v", oldA.ID, v, err)
	}
	must(t, w.led.ReleaseLease(ctx, lease))
	must(t, ctl.Pass(ctx))
	w.wantOnly(a.ID, "r3", "")

	// A launching instance's unattached volume is the launcher's, never
	// an orphan.
	if _, err := w.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(webGroup), DesiredCapacity: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	c := w.waitingInstances(1)[0]
	pre := w.orphan(c, "r3")
	orphans, err := Orphans(ctx, w.cloud, "web")
	must(t, err)
	if len(orphans) != 0 {
		t.Errorf("orphans with only a launching instance's volume loose: %+v", orphans)
	}
	w.passUntilInService(3)
	w.wantOnly(c.ID, "r3", pre.ID)
}

// TestChannelByGroupTag: a group tagged handover:channel=web, whose launch
// hook has no metadata, is in channel web: the launcher gives its
// instances the latest release and lets them into service, and a rollout
// finds the group and switches them. A hook's "channel" wins over the tag.
func TestChannelByGroupTag(t *testing.T) {
	if testing.Short() {
		t.Skip("local cloud")
	}
	w := newWindowsGroup(t, 2, "", map[string]string{handover.TagGroupChannel: "web"})
	insts := w.waitingInstances(2)
	w.passUntilInService(2)
	for _, inst := range insts {
		w.wantOnly(inst.ID, "r1", "")
	}
	groups, err := ChannelGroups(t.Context(), w.cloud, "web")
	if err != nil || !slices.Equal(groups, []string{webGroup}) {
		t.Fatalf("ChannelGroups(web) = %v, %v; want [%s] by its tag", groups, err, webGroup)
	}
	w.setLatest("r2")
	res, err := w.roll.Converge(t.Context(), "web", w.rels["r2"])
	if err != nil || len(res.Switched) != 2 {
		t.Fatalf("Converge to r2 = %+v, %v; want both switched", res, err)
	}
	for _, inst := range insts {
		w.wantOnly(inst.ID, "r2", "")
	}

	// The hook names another channel: that one wins.
	if _, err := w.asg.PutLifecycleHook(t.Context(), &autoscaling.PutLifecycleHookInput{AutoScalingGroupName: aws.String(webGroup),
		LifecycleHookName: aws.String("handover-launch"), LifecycleTransition: aws.String(handover.TransitionLaunching),
		HeartbeatTimeout: aws.Int32(300), DefaultResult: aws.String("ABANDON"), NotificationMetadata: aws.String(`{"channel":"api"}`)}); err != nil {
		t.Fatal(err)
	}
	for ch, want := range map[string][]string{"web": nil, "api": {webGroup}} {
		if got, err := ChannelGroups(t.Context(), w.cloud, ch); err != nil || !slices.Equal(got, want) {
			t.Errorf("with the hook naming api: ChannelGroups(%s) = %v, %v; want %v", ch, got, err, want)
		}
	}
}
