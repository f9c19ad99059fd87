package ec2_test

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The filters `handover agent` finds its state volume by: the attachment to
// this instance at this device, attached, and the volume's tags. Values of
// one filter are ORed, filters ANDed, as in EC2.
func TestDescribeVolumesAttachmentFilters(t *testing.T) {
	e := newEnv(t)
	i1 := aws.ToString(e.runInstance(zoneA, "").InstanceId)
	i2 := aws.ToString(e.runInstance(zoneA, "").InstanceId)
	e.waitInstance(i1, types.InstanceStateNameRunning)
	e.waitInstance(i2, types.InstanceStateNameRunning)

	vol := func(epoch string) string {
		return aws.ToString(e.createVolume(zoneA, 1, "handover:epoch", epoch).VolumeId)
	}
	attach := func(v, inst, dev string) {
		t.Helper()
		if _, err := e.client.AttachVolume(ctx(t), &awsec2.AttachVolumeInput{VolumeId: aws.String(v), InstanceId: aws.String(inst), Device: aws.String(dev)}); err != nil {
			t.Fatalf("attaching %s to %s at %s: %v", v, inst, dev, err)
		}
	}
	i1sdf, i1sdg, i2sdf, loose := vol("3"), vol("4"), vol("3"), vol("3")
	attach(i1sdf, i1, "/dev/sdf")
	attach(i1sdg, i1, "/dev/sdg")
	attach(i2sdf, i2, "/dev/sdf")

	f := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	for _, tc := range []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"instance", []types.Filter{f("attachment.instance-id", i1)}, []string{i1sdf, i1sdg}},
		{"instances ORed", []types.Filter{f("attachment.instance-id", i1, i2)}, []string{i1sdf, i1sdg, i2sdf}},
		{"device", []types.Filter{f("attachment.device", "/dev/sdf")}, []string{i1sdf, i2sdf}},
		{"device is not its basename", []types.Filter{f("attachment.device", "sdf")}, nil},
		{"instance and device ANDed", []types.Filter{f("attachment.instance-id", i1), f("attachment.device", "/dev/sdf")}, []string{i1sdf}},
		{"status attached", []types.Filter{f("attachment.status", "attached")}, []string{i1sdf, i1sdg, i2sdf}},
		{"status detaching", []types.Filter{f("attachment.status", "detaching")}, nil},
		{"status values ORed", []types.Filter{f("attachment.status", "attaching", "attached")}, []string{i1sdf, i1sdg, i2sdf}},
		{"tag", []types.Filter{f("tag:handover:epoch", "3")}, []string{i1sdf, i2sdf, loose}},
		{"tag values ORed", []types.Filter{f("tag:handover:epoch", "3", "4")}, []string{i1sdf, i1sdg, i2sdf, loose}},
		{"tag key absent", []types.Filter{f("tag:role", "data")}, nil},
		{"all four", []types.Filter{
			f("attachment.instance-id", i2), f("attachment.device", "/dev/sdf"),
			f("attachment.status", "attached"), f("tag:handover:epoch", "3"),
		}, []string{i2sdf}},
		{"all four, tag disagrees", []types.Filter{
			f("attachment.instance-id", i1), f("attachment.device", "/dev/sdg"),
			f("attachment.status", "attached"), f("tag:handover:epoch", "3"),
		}, nil},
		{"an unattached volume has no attachment values", []types.Filter{f("attachment.device", "*")}, []string{i1sdf, i1sdg, i2sdf}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.client.DescribeVolumes(ctx(t), &awsec2.DescribeVolumesInput{Filters: tc.filters})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range out.Volumes {
				got = append(got, aws.ToString(v.VolumeId))
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}
