package env

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/manifest"
)

// fakeBuild is CloneCloud and Fencer over resources kept in memory, its
// mutating calls counted by fakeCloud's mutate (so a test can kill the
// process before or after any of them). It checks what a real cloud
// would: a create of a name that exists returns it only when it carries
// the operation's tag.
type fakeBuild struct {
	mu  sync.Mutex // the clone calls it from several goroutines
	c   *fakeCloud
	led ledger.Ledger

	fenced   map[string]int64 // instance -> epoch it is fenced under
	fenceLog []string
	snaps    map[string]map[string]string // EBS snapshot id -> tags
	snapOf   map[string]string            // EBS snapshot id -> volume
	// fencedAtSnap records, per volume, whether every database was
	// fenced when its snapshot was taken.
	fencedAtSnap map[string]bool
	snapState    string // what VolumeSnapshotState answers ("" = completed)
	rdsSnaps     map[string]string
	made         map[string]map[string]string // kind/name -> tags
	creates      map[string]int               // kind/name -> calls that made it
	userData     map[string]string            // DST template -> user data
	groups       map[string]GroupSpec
	objects      map[string]map[string]string // bucket -> key -> content
	manifestErr  error                        // what Manifest answers, when set
	tamper       map[string]string            // instance -> what its manifest hashes to instead
	rdsFenced    map[string][]string          // RDS instance -> databases made read-only
	// rdsFencedAtSnap records, per RDS snapshot, whether its instance
	// was fenced when it was started.
	rdsFencedAtSnap map[string]bool
}

func newFakeBuild(c *fakeCloud, led ledger.Ledger) *fakeBuild {
	return &fakeBuild{c: c, led: led, fenced: map[string]int64{}, snaps: map[string]map[string]string{}, snapOf: map[string]string{},
		fencedAtSnap: map[string]bool{}, rdsSnaps: map[string]string{}, made: map[string]map[string]string{}, creates: map[string]int{},
		userData: map[string]string{}, groups: map[string]GroupSpec{}, tamper: map[string]string{},
		rdsFenced: map[string][]string{}, rdsFencedAtSnap: map[string]bool{},
		objects: map[string]map[string]string{"staging-assets": {"a.txt": "one", "b.txt": "two"}}}
}

func (f *fakeBuild) InstanceAddr(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == "" {
		return "", errors.New("no instance id")
	}
	return "10.0.0." + id[len(id)-1:], nil
}

func (f *fakeBuild) Fence(_ context.Context, t handover.Target, epoch int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c.mutate("Fence "+t.Instance, func() error {
		f.fenced[t.Instance] = epoch
		f.fenceLog = append(f.fenceLog, fmt.Sprintf("fence %s %d", t.Instance, epoch))
		return nil
	})
}

func (f *fakeBuild) Unfence(_ context.Context, t handover.Target, epoch int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c.mutate("Unfence "+t.Instance, func() error {
		if e, ok := f.fenced[t.Instance]; ok && e != epoch {
			return errors.New("stale epoch")
		}
		delete(f.fenced, t.Instance)
		return nil
	})
}

// create makes kind/name once: a repeat with the same env-op tag is fine,
// another's is ErrNameTaken.
func (f *fakeBuild) create(kind, name string, tags map[string]string) error {
	return f.c.mutate("Create "+kind+" "+name, func() error {
		k := kind + "/" + name
		if cur, ok := f.made[k]; ok {
			if cur[TagEnvOp] != tags[TagEnvOp] {
				return ErrNameTaken
			}
			return nil
		}
		f.made[k] = maps.Clone(tags)
		f.creates[k]++
		return nil
	})
}

func (f *fakeBuild) SnapshotVolume(_ context.Context, volume string, tags map[string]string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, t := range f.snaps {
		if maps.Equal(t, tags) {
			return id, nil
		}
	}
	id := fmt.Sprintf("snap-%02d", len(f.snaps)+1)
	err := f.c.mutate("CreateSnapshot "+volume, func() error {
		f.snaps[id], f.snapOf[id] = maps.Clone(tags), volume
		f.fencedAtSnap[volume] = len(f.fenced) == 2
		return nil
	})
	return id, err
}

func (f *fakeBuild) VolumeSnapshotState(_ context.Context, id string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.snaps[id]; !ok {
		return "", "", fmt.Errorf("snapshot %s: %w", id, handover.ErrNotFound)
	}
	if f.snapState != "" {
		return f.snapState, "the volume's data is gone", nil
	}
	return SnapCompleted, "", nil
}

func (f *fakeBuild) SnapshotDBInstance(_ context.Context, instance, snapshot string, tags map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c.mutate("CreateDBSnapshot "+snapshot, func() error {
		if of, ok := f.rdsSnaps[snapshot]; ok && of != instance {
			return ErrNameTaken
		}
		f.rdsSnaps[snapshot] = instance
		_, fenced := f.rdsFenced[instance]
		f.rdsFencedAtSnap[snapshot] = fenced
		return nil
	})
}

func (f *fakeBuild) RDSFenceTargets(_ context.Context, instance string) ([]string, []string, error) {
	return []string{"app", "postgres"}, nil, nil
}

func (f *fakeBuild) FenceRDS(_ context.Context, instance string, dbs []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return 1, f.c.mutate("FenceRDS "+instance, func() error {
		f.rdsFenced[instance] = dbs
		return nil
	})
}

func (f *fakeBuild) UnfenceRDS(_ context.Context, instance string, dbs []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c.mutate("UnfenceRDS "+instance, func() error {
		delete(f.rdsFenced, instance)
		return nil
	})
}

var _ RDSFencer = (*fakeBuild)(nil)

func (f *fakeBuild) DBSnapshotState(_ context.Context, snapshot string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.rdsSnaps[snapshot]; !ok {
		return "", handover.ErrNotFound
	}
	return "available", nil
}

func (f *fakeBuild) CreateBucket(_ context.Context, name string, tags map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.create(KindBucket, name, tags)
}

func (f *fakeBuild) CopyObjects(_ context.Context, from, to string, progress func(key, sum string, copied bool)) (CopyResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res CopyResult
	err := f.c.mutate("CopyObjects "+to, func() error {
		if f.objects[to] == nil {
			f.objects[to] = map[string]string{}
		}
		for k, v := range f.objects[from] {
			res.Objects++
			same := f.objects[to][k] == v
			if progress != nil {
				progress(k, fakeSum(v), !same)
			}
			if same {
				res.Same++
				continue
			}
			f.objects[to][k] = v
			res.Copied++
			res.Bytes += int64(len(v))
		}
		return nil
	})
	return res, err
}

func (f *fakeBuild) CreateTargetGroup(_ context.Context, fromARN, name string, tags map[string]string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "arn:tg/" + name, f.create(KindTargetGroup, name, tags)
}

func (f *fakeBuild) CreateLoadBalancer(_ context.Context, fromARN, name string, ls []ListenerSpec, tags map[string]string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ls) != 1 || ls[0].TargetGroup != "arn:tg/prod-kv-tg" || ls[0].Tags[TagEntry] != "true" {
		return "", "", fmt.Errorf("listeners %+v: want one, the entry point, to DST's target group", ls)
	}
	dns := name + "-2.us-east-1.elb.amazonaws.com"
	if err := f.create(KindLoadBalancer, name, tags); err != nil {
		return "", "", err
	}
	if !slices.ContainsFunc(f.c.prodLBs, func(l LoadBalancer) bool { return l.Name == name }) {
		// Another port than SRC's, as the local cloud gives when SRC's
		// is taken.
		f.c.prodLBs = append(f.c.prodLBs, LoadBalancer{ARN: "arn:lb/" + name, Name: name, DNSName: dns,
			Listeners: []Listener{{Protocol: ls[0].Protocol, Port: ls[0].Port + 1, TargetGroup: ls[0].TargetGroup, Entry: true}}})
	}
	return "arn:lb/" + name, dns, nil
}

func (f *fakeBuild) RestoreDBInstance(_ context.Context, from, snapshot, name string, tags map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	// A verify's scratch instance takes DST's instance's settings.
	if f.rdsSnaps[snapshot] != from && !strings.HasPrefix(name, "verify-") {
		return fmt.Errorf("snapshot %s is not of %s", snapshot, from)
	}
	if err := f.create(KindRDS, name, tags); err != nil {
		return err
	}
	if f.rdsFencedAtSnap[snapshot] {
		f.rdsFenced[name] = []string{"app", "postgres"} // the snapshot's databases' defaults
	}
	return nil
}

func (f *fakeBuild) DBInstanceState(_ context.Context, name string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.c.rds {
		if d.ID == name {
			return d.Status, d.Endpoint, nil
		}
	}
	if _, ok := f.made[KindRDS+"/"+name]; !ok {
		return "", "", handover.ErrNotFound
	}
	return "available", name + ".xyz789.us-east-1.rds.amazonaws.com:5432", nil
}

func (f *fakeBuild) CopyLaunchTemplate(_ context.Context, from ledger.TemplateRef, name, userData string, tags map[string]string) (ledger.TemplateRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.create(KindLaunchTemplate, name, tags); err != nil {
		return ledger.TemplateRef{}, err
	}
	f.userData[name] = userData
	return ledger.TemplateRef{ID: "lt-" + name, Name: name, Version: "1"}, nil
}

// CreateGroup makes DST's group in service at once, and boots its
// databases as the handover controller would: each from the seed its
// ledger record names, which must be there before the group.
func (f *fakeBuild) CreateGroup(ctx context.Context, spec GroupSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.create(KindGroup, spec.Name, spec.Tags); err != nil {
		return err
	}
	f.groups[spec.Name] = spec
	src := f.c.groups[spec.From]
	g := &Group{Name: spec.Name, Min: src.Min, Max: src.Max, Desired: src.Desired, Tags: spec.Tags}
	for i := range src.Desired {
		g.Instances = append(g.Instances, Instance{ID: fmt.Sprintf("i-%s-%02d", spec.Name, i), Lifecycle: lcInService})
	}
	f.c.groups[spec.Name], f.c.tagged[spec.Name] = g, spec.Tags[TagEnvironment]
	for _, md := range spec.HookMetadata {
		m, err := handover.ParseMetadata(md)
		if err != nil {
			return err
		}
		for k, id := range m.Pool() {
			d, err := f.led.GetDatabase(ctx, id)
			if err != nil {
				return fmt.Errorf("booting %s: %w", id, err)
			}
			d.Volume, d.Instance, d.Epoch = "vol-from-"+d.SeedSnapshot, g.Instances[k%len(g.Instances)].ID, 1
			if err := f.led.SaveDatabase(ctx, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// fakeSum is an object's SHA-256 as S3 gives it.
func fakeSum(v string) string {
	h := sha256.Sum256([]byte(v))
	return base64.StdEncoding.EncodeToString(h[:])
}

// Manifest answers the manifest of the instance's database, one file
// whose content is the instance's fence state: a manifest read while the
// instance is not fenced is told apart from one read while it is.
func (f *fakeBuild) Manifest(_ context.Context, t handover.Target) (manifest.Manifest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.manifestErr != nil {
		return manifest.Manifest{}, f.manifestErr
	}
	// SRC's data as its snapshots hold it; a SRC instance not fenced may
	// be taking writes, so it answers something else.
	data := "data"
	if _, fenced := f.fenced[t.Instance]; !fenced && !strings.HasPrefix(t.Instance, "i-prod-") {
		data = "data, being written"
	}
	if d, ok := f.tamper[t.Instance]; ok {
		data = d
	}
	return manifest.Manifest{Entries: []manifest.Entry{{Path: "seg-000001.log", Type: "file", Mode: 0o644, Size: 1, Hash: data}}}, nil
}

var (
	_ CloneCloud     = (*fakeBuild)(nil)
	_ Fencer         = (*fakeBuild)(nil)
	_ ManifestReader = (*fakeBuild)(nil)
)

// cloneRunRig is cloneRig with its databases on instances and a runner
// that can run a clone.
func cloneRunRig(t *testing.T) (*rig, *fakeReader, *fakeBuild) {
	x, fr := cloneRig(t)
	for i, id := range []string{"kv-1", "kv-2"} {
		d, err := x.led.GetDatabase(t.Context(), id)
		must(t, err)
		d.Instance = fmt.Sprintf("i-staging-kv-%02d", i)
		must(t, x.led.SaveDatabase(t.Context(), d))
	}
	fb := newFakeBuild(x.cloud, x.led)
	x.r.Clone, x.r.Fence, x.r.Manifests = fb, fb, fb
	return x, fr, fb
}

func (x *rig) clone(fr *fakeReader, fb *fakeBuild) *ledger.EnvOp {
	x.t.Helper()
	req := CloneRequest{Source: ByName("staging"), Dest: "prod", Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}}
	start := func() string {
		x.r.Clone, x.r.Fence, x.r.Manifests = fb, fb, fb
		op, _, err := x.r.StartClone(context.Background(), fr, req)
		if err != nil {
			x.t.Fatalf("StartClone: %v", err)
		}
		return op.ID
	}
	return x.drive(start(), start, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
}

// checkClone checks a finished clone of cloneRunRig: SRC unfenced and
// snapshotted while fenced, every DST resource made once, references
// rewritten, databases seeded one by one.
func checkClone(t *testing.T, x *rig, fb *fakeBuild, op *ledger.EnvOp) {
	t.Helper()
	if op.State != ledger.UpdateSucceeded {
		t.Fatalf("clone ended %s in %s: %s", op.State, op.Phase, op.Error)
	}
	if len(fb.fenced) != 0 {
		t.Errorf("SRC left fenced: %v", fb.fenced)
	}
	if !fb.fencedAtSnap["vol-1"] || !fb.fencedAtSnap["vol-2"] || len(fb.snaps) != 2 {
		t.Errorf("snapshots %v, fenced at each %v: want one of each volume, taken while both databases were fenced", fb.snapOf, fb.fencedAtSnap)
	}
	for k, n := range fb.creates {
		if n != 1 {
			t.Errorf("%s made %d times", k, n)
		}
	}
	for _, want := range []string{"bucket/prod-assets", "target-group/prod-kv-tg", "load-balancer/prod-lb", "rds/prod-pg", "launch-template/prod-kv-lt", "group/prod-kv"} {
		tags, ok := fb.made[want]
		if !ok {
			t.Errorf("DST has no %s", want)
			continue
		}
		if tags[TagEnvironment] != "prod" || tags[TagEnvOp] != op.ID {
			t.Errorf("%s tagged %v", want, tags)
		}
	}
	if len(fb.made) != 6 {
		t.Errorf("DST has %d resources, want 6: %v", len(fb.made), slices.Sorted(maps.Keys(fb.made)))
	}
	ud := fb.userData["prod-kv-lt"]
	for _, want := range []string{"prod-pg.xyz789.us-east-1.rds.amazonaws.com:5432/app", "s3://prod-assets/static", "http://prod-lb-2.us-east-1.elb.amazonaws.com/", "SMTP=mail.prod.example.com", "PEER_ADDR=prod-lb-2.us-east-1.elb.amazonaws.com:81\n"} {
		if !strings.Contains(ud, want) {
			t.Errorf("DST's user data lacks %q:\n%s", want, ud)
		}
	}
	if strings.Contains(ud, "staging") {
		t.Errorf("DST's user data still names staging:\n%s", ud)
	}
	g := fb.groups["prod-kv"]
	if g.Tags["Peer"] != "prod-lb-2.us-east-1.elb.amazonaws.com" || !slices.Equal(g.TargetGroups, []string{"arn:tg/prod-kv-tg"}) || g.Template.Name != "prod-kv-lt" {
		t.Errorf("DST's group %+v", g)
	}
	if md := g.HookMetadata["handover-launch"]; md != `{"databases":["kv-1-prod","kv-2-prod"]}` {
		t.Errorf("DST's hook metadata %s", md)
	}
	for _, id := range []string{"kv-1", "kv-2"} {
		d, err := x.led.GetDatabase(t.Context(), id+"-prod")
		if err != nil {
			t.Fatal(err)
		}
		if tags := fb.snaps[d.SeedSnapshot]; tags[TagDatabase] != id || d.Group != "prod-kv" || d.Volume == "" {
			t.Errorf("DST's database %+v: want seeded from the snapshot of %s", d, id)
		}
	}
	if got := fb.objects["prod-assets"]; !maps.Equal(got, fb.objects["staging-assets"]) {
		t.Errorf("DST's bucket holds %v", got)
	}
	// Each database's manifest, read while it was fenced, once.
	var mdbs []string
	for _, m := range op.Cloning.Manifests {
		mdbs = append(mdbs, m.Database)
		if len(m.Entries) != 1 || m.Entries[0].Hash != "data" || m.Hash != (manifest.Manifest{Entries: m.Entries}).Hash() || m.Files != 1 {
			t.Errorf("manifest of %s: %+v, want one read while fenced", m.Database, m)
		}
	}
	if slices.Sort(mdbs); !slices.Equal(mdbs, []string{"kv-1", "kv-2"}) {
		t.Errorf("manifests recorded of %v, want kv-1 and kv-2 once each", mdbs)
	}
	// The bucket copy's keys and checksums.
	if len(op.Cloning.Objects) != 1 {
		t.Fatalf("objects recorded %+v, want one bucket's", op.Cloning.Objects)
	}
	if o := op.Cloning.Objects[0]; o.Bucket != "prod-assets" || o.From != "staging-assets" || o.Count != 2 || o.Sums["a.txt"] != fakeSum("one") || o.Digest != ObjectsDigest(o.Sums) {
		t.Errorf("objects recorded %+v", o)
	}
	if op.Cloning.QuiescedAt.IsZero() || op.Cloning.UnquiescedAt.Before(op.Cloning.QuiescedAt) {
		t.Errorf("quiesce window %s .. %s", op.Cloning.QuiescedAt, op.Cloning.UnquiescedAt)
	}
}

func TestCloneRuns(t *testing.T) {
	x, fr, fb := cloneRunRig(t)
	op := x.clone(fr, fb)
	checkClone(t, x, fb, op)
	var phases []string
	for _, s := range op.Timeline {
		phases = append(phases, s.Phase)
	}
	want := []string{PhaseCloneQuiesce, PhaseCloneSnapshot, PhaseCloneUnquiesce, PhaseCloneCopy, PhaseCloneBuild, PhaseCloneWait}
	if !slices.Equal(phases, want) {
		t.Errorf("timeline %v, want %v", phases, want)
	}
	if !slices.Equal(fb.fenceLog, []string{"fence i-staging-kv-00 4", "fence i-staging-kv-01 1"}) && !slices.Equal(fb.fenceLog, []string{"fence i-staging-kv-01 1", "fence i-staging-kv-00 4"}) {
		t.Errorf("fences %v: want each database under its epoch", fb.fenceLog)
	}
	// Run again: the clone has ended, DST exists, so it is refused.
	if _, _, err := x.r.StartClone(t.Context(), fr, CloneRequest{Source: ByName("staging"), Dest: "prod"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("a second clone into prod: %v, want refused", err)
	}
}

// The process killed before or after any call of the clone, then run
// again, ends in the same clone, each resource made once, SRC unfenced.
func TestCloneKilledAtEveryCall(t *testing.T) {
	x, fr, fb := cloneRunRig(t)
	x.clone(fr, fb)
	total := x.cloud.calls
	for at := 1; at <= total; at++ {
		for _, before := range []bool{true, false} {
			t.Run(fmt.Sprintf("call %d before %v", at, before), func(t *testing.T) {
				x, fr, fb := cloneRunRig(t)
				x.cloud.crashAt, x.cloud.crashBefore = at, before
				op := x.clone(fr, fb)
				checkClone(t, x, fb, op)
			})
		}
	}
}

// An RDS instance that is not available is waited for before SRC is
// fenced, not while it is.
func TestCloneWaitsForRDSBeforeQuiescing(t *testing.T) {
	x, fr, fb := cloneRunRig(t)
	req := CloneRequest{Source: ByName("staging"), Dest: "prod", Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}}
	op, _, err := x.r.StartClone(t.Context(), fr, req)
	must(t, err)
	x.cloud.rds[0].Status = "backing-up"
	for range 3 {
		must(t, x.r.Advance(t.Context(), op.ID))
		x.clk.Advance(time.Second)
	}
	if got, _ := x.r.Get(t.Context(), op.ID); got.Phase != PhaseCloneQuiesce || !got.Cloning.QuiescedAt.IsZero() || len(fb.fenceLog) != 0 {
		t.Fatalf("with the RDS instance backing up: phase %s, quiesced at %s, fences %v", got.Phase, got.Cloning.QuiescedAt, fb.fenceLog)
	}
	x.cloud.rds[0].Status = "available"
	checkClone(t, x, fb, x.drive(op.ID, func() string { return op.ID }, func(o *ledger.EnvOp) bool { return o.State.Terminal() }))
}

func TestCloneFailsAndUnquiesces(t *testing.T) {
	t.Run("snapshot error", func(t *testing.T) {
		x, fr, fb := cloneRunRig(t)
		fb.snapState = SnapError
		op := x.clone(fr, fb)
		if op.State != ledger.UpdateFailed || !strings.Contains(op.Error, "point in time is lost") {
			t.Errorf("ended %s: %s", op.State, op.Error)
		}
		if len(fb.fenced) != 0 || len(fb.made) != 1 {
			t.Errorf("fenced %v, made %v: want SRC unfenced and only DST's bucket (copied before the snapshots completed)", fb.fenced, fb.made)
		}
	})
	t.Run("database moved since the plan", func(t *testing.T) {
		x, fr, fb := cloneRunRig(t)
		req := CloneRequest{Source: ByName("staging"), Dest: "prod", Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}}
		op, _, err := x.r.StartClone(t.Context(), fr, req)
		must(t, err)
		d, err := x.led.GetDatabase(t.Context(), "kv-2")
		must(t, err)
		d.Epoch++
		must(t, x.led.SaveDatabase(t.Context(), d))
		op = x.drive(op.ID, func() string { return op.ID }, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
		if op.State != ledger.UpdateFailed || !strings.Contains(op.Error, "database kv-2 moved since the plan") {
			t.Errorf("ended %s: %s", op.State, op.Error)
		}
		if len(fb.fenced) != 0 || len(fb.snaps) != 0 || len(fb.made) != 0 {
			t.Errorf("fenced %v, snapshots %v, made %v: want nothing left", fb.fenced, fb.snaps, fb.made)
		}
	})
	t.Run("a DST name taken since the plan", func(t *testing.T) {
		x, fr, fb := cloneRunRig(t)
		fb.made["group/prod-kv"] = map[string]string{TagEnvOp: "someone-else"}
		op := x.clone(fr, fb)
		if op.State != ledger.UpdateFailed || !strings.Contains(op.Error, "creating group prod-kv") || len(fb.fenced) != 0 {
			t.Errorf("ended %s: %s; fenced %v", op.State, op.Error, fb.fenced)
		}
	})
}

func TestRewriteText(t *testing.T) {
	rw := map[string]string{
		"staging-assets":                        "prod-assets",
		"staging-pg.abc.rds.amazonaws.com:5432": "prod-pg.xyz.rds.amazonaws.com:5432",
		"127.0.0.1:4600":                        "127.0.0.1:4700",
		"mail.example.com":                      "mail.prod.example.com",
	}
	sets := map[string]bool{"mail.example.com": true}
	for _, c := range []struct{ in, want string }{
		{"s3://staging-assets/x", "s3://prod-assets/x"},
		{"s3://staging-assets-old/x", "s3://staging-assets-old/x"}, // another bucket
		{"pg://staging-pg.abc.rds.amazonaws.com:5432/db", "pg://prod-pg.xyz.rds.amazonaws.com:5432/db"},
		{"LB=127.0.0.1:4600 PG=127.0.0.1:46001", "LB=127.0.0.1:4700 PG=127.0.0.1:46001"},
		{"relay=smtp.mail.example.com", "relay=smtp.mail.prod.example.com"}, // a --set goes anywhere
		{"staging-assets staging-assets", "prod-assets prod-assets"},
		{"", ""},
	} {
		if got := rewriteText(c.in, rw, sets); got != c.want {
			t.Errorf("rewriteText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// A replacement is not matched again.
	if got := rewriteText("a-b", map[string]string{"a-b": "a-b-c", "a-b-c": "x"}, nil); got != "a-b-c" {
		t.Errorf("rewriteText replaced a replacement: %q", got)
	}
}

// A manifest that cannot be read is recorded with why, and the clone goes
// on; --manifests=false reads none.
func TestCloneManifests(t *testing.T) {
	t.Run("not served", func(t *testing.T) {
		x, fr, fb := cloneRunRig(t)
		fb.manifestErr = errors.New("fence request rejected: answered 404 Not Found")
		op := x.clone(fr, fb)
		if op.State != ledger.UpdateSucceeded || len(op.Cloning.Manifests) != 2 {
			t.Fatalf("ended %s with manifests %+v", op.State, op.Cloning.Manifests)
		}
		for _, m := range op.Cloning.Manifests {
			if !strings.Contains(m.Error, "404") || m.Hash != "" {
				t.Errorf("manifest %+v: want the error recorded", m)
			}
		}
	})
	t.Run("--manifests=false", func(t *testing.T) {
		x, fr, fb := cloneRunRig(t)
		req := CloneRequest{Source: ByName("staging"), Dest: "prod", NoManifests: true, Sets: []Set{{From: "mail.example.com", To: "mail.prod.example.com"}}}
		op, plan, err := x.r.StartClone(t.Context(), fr, req)
		must(t, err)
		if plan.Manifests {
			t.Error("the plan reads manifests")
		}
		op = x.drive(op.ID, func() string { return op.ID }, func(o *ledger.EnvOp) bool { return o.State.Terminal() })
		if op.State != ledger.UpdateSucceeded || len(op.Cloning.Manifests) != 0 {
			t.Errorf("ended %s with manifests %+v", op.State, op.Cloning.Manifests)
		}
		_ = fb
	})
}
