package ec2_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/events"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

func TestSnapshotToVolumeInAnotherZone(t *testing.T) {
	e := newEnv(t)
	src := aws.ToString(e.createVolume(zoneA, 10).VolumeId)
	files := map[string]string{
		"PG_VERSION":       "16\n",
		"base/1/1259":      strings.Repeat("page", 4096),
		"pg_wal/000000010": strings.Repeat("wal!", 100000),
	}
	writeFiles(t, e.volumeDir(src), files)

	snap := e.snapshot(src, "migration", "m-1")
	sn := e.waitSnapshotCompleted(snap)
	if aws.ToString(sn.Progress) != "100%" || aws.ToString(sn.VolumeId) != src || aws.ToInt32(sn.VolumeSize) != 10 ||
		aws.ToString(sn.OwnerId) != ec2.DefaultAccountID || len(sn.Tags) != 1 || sn.StartTime == nil {
		t.Errorf("completed snapshot described as %+v", sn)
	}
	evs := e.pub.waitFor(t, 1, func(ev *events.Event) bool { return ev.Kind == events.KindSnapshot })
	if got := evs[0].Snapshot; got.SnapshotID != snap || got.VolumeID != src || !got.Succeeded || got.Region != "us-east-1" {
		t.Errorf("snapshot event %+v", got)
	}

	out, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneB), SnapshotId: aws.String(snap)})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != types.VolumeStateCreating || aws.ToInt32(out.Size) != 10 || aws.ToString(out.SnapshotId) != snap {
		t.Errorf("CreateVolume from a snapshot answered %+v", out)
	}
	restored := aws.ToString(out.VolumeId)
	e.waitVolumeAvailable(restored)
	if v := e.volume(restored); aws.ToString(v.AvailabilityZone) != zoneB {
		t.Errorf("restored volume is in %s", aws.ToString(v.AvailabilityZone))
	}
	got := tree(t, e.volumeDir(restored))
	if len(got) != len(files) {
		t.Errorf("restored %d files, want %d", len(got), len(files))
	}
	for name, content := range files {
		if got[name] != content {
			t.Errorf("restored %s differs (%d bytes, want %d)", name, len(got[name]), len(content))
		}
	}
	e.pub.waitFor(t, 1, func(ev *events.Event) bool {
		return ev.Kind == events.KindVolume && ev.Volume.VolumeID == restored && ev.Volume.Available
	})

	// A volume from a snapshot cannot be smaller than it.
	_, err = e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneB), SnapshotId: aws.String(snap), Size: aws.Int32(5)})
	wantCode(t, err, "InvalidParameterValue")
}

func TestIncrementalSnapshots(t *testing.T) {
	e := newEnv(t)
	vol := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	files := map[string]string{}
	for i := range 20 {
		files["f"+string(rune('a'+i))] = strings.Repeat(string(rune('a'+i)), 50000)
	}
	writeFiles(t, e.volumeDir(vol), files)
	// The store trusts a file's metadata only when its mtime and ctime are
	// clearly (2s) older than the parent snapshot.
	time.Sleep(2100 * time.Millisecond)
	first := e.snapshot(vol)
	e.waitSnapshotCompleted(first)
	writeFiles(t, e.volumeDir(vol), map[string]string{"fa": "changed"})
	second := e.snapshot(vol)
	e.waitSnapshotCompleted(second)

	if parent, _ := e.store.created(first); parent != "" {
		t.Errorf("first snapshot stored against %q, want no parent", parent)
	}
	parent, st := e.store.created(second)
	if parent != first {
		t.Errorf("second snapshot stored against %q, want %s", parent, first)
	}
	if st.ReusedFiles != 19 {
		t.Errorf("second snapshot reused %d files, want the 19 unchanged ones (stats %+v)", st.ReusedFiles, st)
	}

	// A volume's first snapshot builds on the snapshot it came from.
	out, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneB), SnapshotId: aws.String(second)})
	if err != nil {
		t.Fatal(err)
	}
	e.waitVolumeAvailable(aws.ToString(out.VolumeId))
	third := e.snapshot(aws.ToString(out.VolumeId))
	e.waitSnapshotCompleted(third)
	if parent, _ := e.store.created(third); parent != second {
		t.Errorf("snapshot of a restored volume stored against %q, want %s", parent, second)
	}
}

func TestDeleteSnapshot(t *testing.T) {
	e := newEnv(t, func(c *ec2.Config) { c.MinSnapshotDuration = 2 * time.Second })
	vol := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	writeFiles(t, e.volumeDir(vol), map[string]string{"a": "b"})
	snap := e.snapshot(vol)

	// Pending: progress moves, a volume cannot be made from it yet, and a
	// delete takes effect once it completes.
	for progress := "0%"; progress == "0%"; time.Sleep(20 * time.Millisecond) {
		out, err := e.client.DescribeSnapshots(ctx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
		if err != nil {
			t.Fatal(err)
		}
		if s := out.Snapshots[0]; s.State != types.SnapshotStatePending || aws.ToString(s.Progress) == "100%" {
			t.Fatalf("a slow snapshot went %s at %s before its progress moved", s.State, aws.ToString(s.Progress))
		}
		progress = aws.ToString(out.Snapshots[0].Progress)
	}
	_, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), SnapshotId: aws.String(snap)})
	wantCode(t, err, "IncorrectState")
	if _, err := e.client.DeleteSnapshot(ctx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)}); err != nil {
		t.Fatal(err)
	}
	if out, err := e.client.DescribeSnapshots(ctx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}}); err != nil || out.Snapshots[0].State != types.SnapshotStatePending {
		t.Errorf("a deleted pending snapshot should stay pending until it completes: %v %v", out, err)
	}
	e.pub.waitFor(t, 1, func(ev *events.Event) bool { return ev.Kind == events.KindSnapshot && ev.Snapshot.SnapshotID == snap })
	for deadline := time.Now().Add(waitLonger); ; time.Sleep(20 * time.Millisecond) {
		_, err = e.client.DescribeSnapshots(ctx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
		if err != nil || time.Now().After(deadline) {
			break
		}
	}
	wantCode(t, err, "InvalidSnapshot.NotFound")

	done := e.snapshot(vol)
	e.waitSnapshotCompleted(done)
	if _, err := e.client.DeleteSnapshot(ctx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(done)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.DeleteSnapshot(ctx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String(done)})
	wantCode(t, err, "InvalidSnapshot.NotFound")
	_, err = e.client.DeleteSnapshot(ctx(t), &awsec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-1")})
	wantCode(t, err, "InvalidSnapshotID.Malformed")
	// The store forgets deleted snapshots.
	for deadline := time.Now().Add(waitLonger); ; time.Sleep(20 * time.Millisecond) {
		if _, err := e.store.Manifest(done); err != nil || time.Now().After(deadline) {
			if err == nil {
				t.Errorf("the store still has deleted snapshot %s", done)
			}
			break
		}
	}
}

// snapshotFaults fails snapshots of one volume.
type snapshotFaults struct{ volume string }

func (snapshotFaults) Inject(context.Context, string, string) error { return nil }

func (f snapshotFaults) SnapshotFault(_, volumeID string) (time.Duration, error) {
	if volumeID == f.volume {
		return 0, errors.New("injected failure")
	}
	return 0, nil
}

func TestSnapshotFailure(t *testing.T) {
	faults := &snapshotFaults{}
	e := newEnv(t, func(c *ec2.Config) { c.Faults = faults })
	vol := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	faults.volume = vol
	snap := e.snapshot(vol)
	w := awsec2.NewSnapshotCompletedWaiter(e.client, func(o *awsec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 100*time.Millisecond
	})
	err := w.Wait(ctx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}}, waitLonger)
	if err == nil || !strings.Contains(err.Error(), "Failure") {
		t.Errorf("waiting for a failing snapshot: %v, want the waiter's failure state", err)
	}
	out, err := e.client.DescribeSnapshots(ctx(t), &awsec2.DescribeSnapshotsInput{Filters: []types.Filter{{Name: aws.String("status"), Values: []string{"error"}}}})
	if err != nil || len(out.Snapshots) != 1 || !strings.Contains(aws.ToString(out.Snapshots[0].StateMessage), "injected failure") {
		t.Errorf("failed snapshot: %+v %v", out, err)
	}
	evs := e.pub.waitFor(t, 1, func(ev *events.Event) bool { return ev.Kind == events.KindSnapshot })
	if ev := evs[0].Snapshot; ev.Succeeded || !strings.Contains(ev.Cause, "injected failure") {
		t.Errorf("failure event %+v", ev)
	}
	_, err = e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), SnapshotId: aws.String(snap)})
	wantCode(t, err, "IncorrectState")
}

func TestDescribeSnapshotsFiltersAndPaging(t *testing.T) {
	e := newEnv(t)
	a := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	b := aws.ToString(e.createVolume(zoneB, 1).VolumeId)
	var ofA []string
	for i := range 7 {
		ofA = append(ofA, e.snapshot(a, "n", string(rune('0'+i))))
	}
	ofB := e.snapshot(b, "migration", "m-9")
	for _, id := range append(ofA, ofB) {
		e.waitSnapshotCompleted(id)
	}
	count := func(in *awsec2.DescribeSnapshotsInput) int {
		t.Helper()
		n := 0
		p := awsec2.NewDescribeSnapshotsPaginator(e.client, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			n += len(out.Snapshots)
		}
		return n
	}
	f := func(name string, values ...string) []types.Filter {
		return []types.Filter{{Name: aws.String(name), Values: values}}
	}
	for _, tc := range []struct {
		name string
		in   awsec2.DescribeSnapshotsInput
		want int
	}{
		{"all, paged", awsec2.DescribeSnapshotsInput{MaxResults: aws.Int32(5)}, 8},
		{"self", awsec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}}, 8},
		{"account", awsec2.DescribeSnapshotsInput{OwnerIds: []string{ec2.DefaultAccountID}}, 8},
		{"amazon's", awsec2.DescribeSnapshotsInput{OwnerIds: []string{"amazon"}}, 0},
		{"volume", awsec2.DescribeSnapshotsInput{Filters: f("volume-id", a), MaxResults: aws.Int32(5)}, 7},
		{"tag", awsec2.DescribeSnapshotsInput{Filters: f("tag:migration", "m-9")}, 1},
		{"tag-key", awsec2.DescribeSnapshotsInput{Filters: f("tag-key", "n")}, 7},
		{"status", awsec2.DescribeSnapshotsInput{Filters: f("status", "completed")}, 8},
		{"snapshot-id", awsec2.DescribeSnapshotsInput{Filters: f("snapshot-id", ofB, ofA[0])}, 2},
		{"ids", awsec2.DescribeSnapshotsInput{SnapshotIds: []string{ofB, ofA[3]}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := count(&tc.in); got != tc.want {
				t.Errorf("got %d snapshots, want %d", got, tc.want)
			}
		})
	}
	_, err := e.client.DescribeSnapshots(ctx(t), &awsec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-0123456789abcdef0"}})
	wantCode(t, err, "InvalidSnapshot.NotFound")
	_, err = e.client.CreateSnapshot(ctx(t), &awsec2.CreateSnapshotInput{VolumeId: aws.String("vol-0123456789abcdef0")})
	wantCode(t, err, "InvalidVolume.NotFound")
}

func TestDeleteVolumeWhileSnapshotPending(t *testing.T) {
	e := newEnv(t, func(c *ec2.Config) { c.MinSnapshotDuration = 500 * time.Millisecond })
	vol := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	writeFiles(t, e.volumeDir(vol), map[string]string{"kept": "by the snapshot"})
	snap := e.snapshot(vol)
	if _, err := e.client.DeleteVolume(ctx(t), &awsec2.DeleteVolumeInput{VolumeId: aws.String(vol)}); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.DescribeVolumes(ctx(t), &awsec2.DescribeVolumesInput{VolumeIds: []string{vol}})
	wantCode(t, err, "InvalidVolume.NotFound")
	e.waitSnapshotCompleted(snap)
	out, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneB), SnapshotId: aws.String(snap)})
	if err != nil {
		t.Fatal(err)
	}
	e.waitVolumeAvailable(aws.ToString(out.VolumeId))
	if got := tree(t, e.volumeDir(aws.ToString(out.VolumeId))); got["kept"] != "by the snapshot" {
		t.Errorf("volume from a snapshot of a deleted volume: %v", got)
	}
	for deadline := time.Now().Add(waitLonger); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(e.volumeDir(vol)); os.IsNotExist(err) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the deleted volume's directory is still there: %v", err)
		}
	}
}

// A snapshot is of the volume as it was when CreateSnapshot answered, as in
// EBS: writes made while it is still pending do not reach it (an
// environment clone lifts its source's write fence at that moment).
func TestSnapshotIsPointInTime(t *testing.T) {
	e := newEnv(t, func(c *ec2.Config) { c.MinSnapshotDuration = time.Second })
	vol := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	writeFiles(t, e.volumeDir(vol), map[string]string{"data": strings.Repeat("before", 10000), "gone": "x"})
	snap := e.snapshot(vol) // answered pending, checked by the helper
	// Same size, new content; a file removed, one added.
	writeFiles(t, e.volumeDir(vol), map[string]string{"data": strings.Repeat("after!", 10000), "new": "y"})
	if err := os.Remove(e.volumeDir(vol) + "/gone"); err != nil {
		t.Fatal(err)
	}
	e.waitSnapshotCompleted(snap)
	out, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), SnapshotId: aws.String(snap)})
	if err != nil {
		t.Fatal(err)
	}
	restored := aws.ToString(out.VolumeId)
	e.waitVolumeAvailable(restored)
	got := tree(t, e.volumeDir(restored))
	if got["data"] != strings.Repeat("before", 10000) || got["gone"] != "x" || len(got) != 2 {
		t.Errorf("restored %d files (data starts %.12q): want the volume as it was at CreateSnapshot", len(got), got["data"])
	}
	// The job did not read the volume a second time.
	if _, st := e.store.created(snap); st.Files != 2 {
		t.Errorf("the store's stats for the snapshot are %+v, want the capture's 2 files", st)
	}
}
