package ec2_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/events"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestCreateVolumeBlank(t *testing.T) {
	e := newEnv(t)
	out, err := e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{
		AvailabilityZone: aws.String(zoneA), Size: aws.Int32(8), VolumeType: types.VolumeTypeGp3,
		TagSpecifications: tagSpec(types.ResourceTypeVolume, "db", "orders", "Name", "state"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != types.VolumeStateCreating || aws.ToInt32(out.Size) != 8 || aws.ToString(out.AvailabilityZone) != zoneA || out.VolumeType != types.VolumeTypeGp3 {
		t.Errorf("CreateVolume answered %+v", out)
	}
	id := aws.ToString(out.VolumeId)
	if len(out.Tags) != 2 {
		t.Errorf("tags = %v, want 2", out.Tags)
	}
	e.waitVolumeAvailable(id)
	if fi, err := os.Stat(e.volumeDir(id)); err != nil || !fi.IsDir() {
		t.Fatalf("volume directory: %v", err)
	}
	if entries, _ := os.ReadDir(e.volumeDir(id)); len(entries) != 0 {
		t.Errorf("a blank volume has %d entries", len(entries))
	}
	v := e.volume(id)
	if aws.ToString(v.AvailabilityZoneId) != "use1-az1" || v.CreateTime == nil || len(v.Attachments) != 0 {
		t.Errorf("DescribeVolumes gave %+v", v)
	}
	evs := e.pub.waitFor(t, 1, func(ev *events.Event) bool { return ev.Kind == events.KindVolume })
	if got := evs[0].Volume; got.VolumeID != id || !got.Available {
		t.Errorf("volume event %+v", got)
	}

	if _, err := e.client.DeleteVolume(ctx(t), &awsec2.DeleteVolumeInput{VolumeId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.DescribeVolumes(ctx(t), &awsec2.DescribeVolumesInput{VolumeIds: []string{id}})
	wantCode(t, err, "InvalidVolume.NotFound")
	if _, err := os.Stat(e.volumeDir(id)); !os.IsNotExist(err) {
		t.Errorf("volume directory still there: %v", err)
	}
}

func TestCreateVolumeErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		in   awsec2.CreateVolumeInput
		code string
	}{
		{"no zone", awsec2.CreateVolumeInput{Size: aws.Int32(1)}, "MissingParameter"},
		{"unknown zone", awsec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1z"), Size: aws.Int32(1)}, "InvalidZone.NotFound"},
		{"no size", awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA)}, "MissingParameter"},
		{"zero size", awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(0)}, "InvalidParameterValue"},
		{"bad type", awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(1), VolumeType: "floppy"}, "InvalidParameterValue"},
		{"malformed snapshot", awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), SnapshotId: aws.String("snap-xyz")}, "InvalidSnapshotID.Malformed"},
		{"unknown snapshot", awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), SnapshotId: aws.String("snap-0123456789abcdef0")}, "InvalidSnapshot.NotFound"},
		{"bad tag type", awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(1), TagSpecifications: tagSpec(types.ResourceTypeInstance, "a", "b")}, "InvalidParameterValue"},
		{"reserved tag", awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(1), TagSpecifications: tagSpec(types.ResourceTypeVolume, "aws:x", "b")}, "InvalidParameterValue"},
		{"dry run", awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(1), DryRun: aws.Bool(true)}, "DryRunOperation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.CreateVolume(ctx(t), &tc.in)
			wantCode(t, err, tc.code)
		})
	}
	out, err := e.client.DescribeVolumes(ctx(t), &awsec2.DescribeVolumesInput{})
	if err != nil || len(out.Volumes) != 0 {
		t.Errorf("failed calls left volumes: %v %v", out.Volumes, err)
	}
}

func TestCreateVolumeClientToken(t *testing.T) {
	e := newEnv(t)
	in := &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(4), ClientToken: aws.String("migration-1-volume")}
	first, err := e.client.CreateVolume(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.client.CreateVolume(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(again.VolumeId) != aws.ToString(first.VolumeId) {
		t.Errorf("repeat made %s, want %s", aws.ToString(again.VolumeId), aws.ToString(first.VolumeId))
	}
	out, _ := e.client.DescribeVolumes(ctx(t), &awsec2.DescribeVolumesInput{})
	if len(out.Volumes) != 1 {
		t.Errorf("%d volumes after a repeated CreateVolume, want 1", len(out.Volumes))
	}
	_, err = e.client.CreateVolume(ctx(t), &awsec2.CreateVolumeInput{AvailabilityZone: aws.String(zoneA), Size: aws.Int32(5), ClientToken: in.ClientToken})
	wantCode(t, err, "IdempotentParameterMismatch")

	// The token outlives the volume, as in EC2.
	if _, err := e.client.DeleteVolume(ctx(t), &awsec2.DeleteVolumeInput{VolumeId: first.VolumeId}); err != nil {
		t.Fatal(err)
	}
	gone, err := e.client.CreateVolume(ctx(t), in)
	if err != nil || aws.ToString(gone.VolumeId) != aws.ToString(first.VolumeId) || gone.State != types.VolumeStateDeleted {
		t.Errorf("repeat after delete: %+v %v", gone, err)
	}
}

func TestDescribeVolumesFiltersAndPaging(t *testing.T) {
	e := newEnv(t)
	var inA, inB []string
	for i := range 12 {
		zone, role := zoneA, "data"
		if i%3 == 0 {
			zone, role = zoneB, "logs"
		}
		v := e.createVolume(zone, int32(i+1), "role", role, "db", "orders")
		if zone == zoneA {
			inA = append(inA, aws.ToString(v.VolumeId))
		} else {
			inB = append(inB, aws.ToString(v.VolumeId))
		}
	}
	untagged := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	taggedA := slices.Clone(inA)
	inA = append(inA, untagged)

	filter := func(name string, values ...string) []types.Filter {
		return []types.Filter{{Name: aws.String(name), Values: values}}
	}
	ids := func(vs []types.Volume) []string {
		var out []string
		for _, v := range vs {
			out = append(out, aws.ToString(v.VolumeId))
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"zone", filter("availability-zone", zoneB), inB},
		{"zone wildcard", filter("availability-zone", "us-east-1?"), append(slices.Clone(inA), inB...)},
		{"tag", filter("tag:role", "logs"), inB},
		{"tag wildcard", filter("tag:role", "d*"), taggedA},
		{"tag-key", filter("tag-key", "db"), append(slices.Clone(taggedA), inB...)},
		{"status", filter("status", "available"), append(slices.Clone(inA), inB...)},
		{"volume-id", filter("volume-id", untagged), []string{untagged}},
		{"two filters", append(filter("tag:role", "data", "logs"), filter("availability-zone", zoneA)...), taggedA},
		{"no match", filter("attachment.instance-id", "i-0123456789abcdef0"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.client.DescribeVolumes(ctx(t), &awsec2.DescribeVolumesInput{Filters: tc.filters})
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if got := ids(out.Volumes); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}

	// Paging with the SDK's own paginator.
	p := awsec2.NewDescribeVolumesPaginator(e.client, &awsec2.DescribeVolumesInput{MaxResults: aws.Int32(5)})
	var all []string
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Volumes) > 5 {
			t.Errorf("page of %d volumes, MaxResults 5", len(out.Volumes))
		}
		all = append(all, ids(out.Volumes)...)
		pages++
	}
	if pages != 3 || len(all) != 13 {
		t.Errorf("%d pages, %d volumes; want 3 pages of 13", pages, len(all))
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != 13 {
		t.Errorf("pages repeat volumes: %v", all)
	}

	for _, tc := range []struct {
		name string
		in   awsec2.DescribeVolumesInput
		code string
	}{
		{"max too small", awsec2.DescribeVolumesInput{MaxResults: aws.Int32(3)}, "InvalidParameterValue"},
		{"ids with max", awsec2.DescribeVolumesInput{VolumeIds: []string{untagged}, MaxResults: aws.Int32(5)}, "InvalidParameterCombination"},
		{"bad token", awsec2.DescribeVolumesInput{MaxResults: aws.Int32(5), NextToken: aws.String("not-a-token")}, "InvalidPaginationToken"},
		{"bad filter", awsec2.DescribeVolumesInput{Filters: filter("colour", "red")}, "InvalidParameterValue"},
		{"malformed id", awsec2.DescribeVolumesInput{VolumeIds: []string{"vol-nope"}}, "InvalidVolumeID.Malformed"},
		{"unknown id", awsec2.DescribeVolumesInput{VolumeIds: []string{"vol-0123456789abcdef0"}}, "InvalidVolume.NotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.DescribeVolumes(ctx(t), &tc.in)
			wantCode(t, err, tc.code)
		})
	}
}

func TestAttachDetach(t *testing.T) {
	e := newEnv(t)
	inst := e.runInstance(zoneA, "")
	iid := aws.ToString(inst.InstanceId)
	e.waitInstance(iid, types.InstanceStateNameRunning)
	vol := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	other := aws.ToString(e.createVolume(zoneB, 1).VolumeId)
	writeFiles(t, e.volumeDir(vol), map[string]string{"data/file": "hello"})

	att, err := e.client.AttachVolume(ctx(t), &awsec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(iid), Device: aws.String("/dev/sdf")})
	if err != nil {
		t.Fatal(err)
	}
	if att.State != types.VolumeAttachmentStateAttaching || aws.ToString(att.Device) != "/dev/sdf" {
		t.Errorf("AttachVolume answered %+v", att)
	}
	link := filepath.Join(e.instanceDir(iid), "volumes", "sdf")
	if b, err := os.ReadFile(filepath.Join(link, "data/file")); err != nil || string(b) != "hello" {
		t.Fatalf("the volume is not visible inside the instance: %q %v", b, err)
	}
	v := e.volume(vol)
	if v.State != types.VolumeStateInUse || len(v.Attachments) != 1 || aws.ToString(v.Attachments[0].InstanceId) != iid || v.Attachments[0].State != types.VolumeAttachmentStateAttached {
		t.Errorf("attached volume described as %+v", v)
	}
	byAttachment, err := e.client.DescribeVolumes(ctx(t), &awsec2.DescribeVolumesInput{Filters: []types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{iid}},
		{Name: aws.String("attachment.status"), Values: []string{"attached"}},
	}})
	if err != nil || len(byAttachment.Volumes) != 1 {
		t.Errorf("attachment filters: %v %v", byAttachment, err)
	}
	desc := e.waitInstance(iid, types.InstanceStateNameRunning)
	if len(desc.BlockDeviceMappings) != 1 || aws.ToString(desc.BlockDeviceMappings[0].Ebs.VolumeId) != vol {
		t.Errorf("instance block device mappings %+v", desc.BlockDeviceMappings)
	}

	for _, tc := range []struct {
		name                 string
		volume, inst, device string
		code                 string
	}{
		{"already attached", vol, iid, "/dev/sdg", "VolumeInUse"},
		{"other zone", other, iid, "/dev/sdg", "InvalidVolume.ZoneMismatch"},
		{"unknown instance", other, "i-0123456789abcdef0", "/dev/sdg", "InvalidInstanceID.NotFound"},
		{"unknown volume", "vol-0123456789abcdef0", iid, "/dev/sdg", "InvalidVolume.NotFound"},
		{"malformed instance", other, "i-zz", "/dev/sdg", "InvalidInstanceID.Malformed"},
		{"bad device", other, iid, "/dev/floppy", "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.AttachVolume(ctx(t), &awsec2.AttachVolumeInput{VolumeId: aws.String(tc.volume), InstanceId: aws.String(tc.inst), Device: aws.String(tc.device)})
			wantCode(t, err, tc.code)
		})
	}
	second := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	_, err = e.client.AttachVolume(ctx(t), &awsec2.AttachVolumeInput{VolumeId: aws.String(second), InstanceId: aws.String(iid), Device: aws.String("sdf")})
	wantCode(t, err, "InvalidParameterValue") // sdf is taken

	_, err = e.client.DeleteVolume(ctx(t), &awsec2.DeleteVolumeInput{VolumeId: aws.String(vol)})
	wantCode(t, err, "VolumeInUse")

	det, err := e.client.DetachVolume(ctx(t), &awsec2.DetachVolumeInput{VolumeId: aws.String(vol)})
	if err != nil || det.State != types.VolumeAttachmentStateDetaching {
		t.Fatalf("DetachVolume: %+v %v", det, err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("the link is still there after detaching: %v", err)
	}
	if v := e.volume(vol); v.State != types.VolumeStateAvailable || len(v.Attachments) != 0 {
		t.Errorf("detached volume described as %+v", v)
	}
	_, err = e.client.DetachVolume(ctx(t), &awsec2.DetachVolumeInput{VolumeId: aws.String(vol)})
	wantCode(t, err, "IncorrectState")

	// Terminating detaches; the volume stays, with its data.
	if _, err := e.client.AttachVolume(ctx(t), &awsec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(iid), Device: aws.String("/dev/sdh")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.TerminateInstances(ctx(t), &awsec2.TerminateInstancesInput{InstanceIds: []string{iid}}); err != nil {
		t.Fatal(err)
	}
	e.waitInstance(iid, types.InstanceStateNameTerminated)
	if v := e.volume(vol); v.State != types.VolumeStateAvailable {
		t.Errorf("volume of a terminated instance is %s, want available", v.State)
	}
	if got := tree(t, e.volumeDir(vol)); got["data/file"] != "hello" {
		t.Errorf("volume data after termination: %v", got)
	}
	_, err = e.client.AttachVolume(ctx(t), &awsec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(iid), Device: aws.String("/dev/sdf")})
	wantCode(t, err, "IncorrectState")
	if _, err := e.client.DeleteVolume(ctx(t), &awsec2.DeleteVolumeInput{VolumeId: aws.String(vol)}); err != nil {
		t.Fatal(err)
	}
}
