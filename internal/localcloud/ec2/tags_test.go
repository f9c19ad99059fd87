package ec2_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestTags(t *testing.T) {
	e := newEnv(t)
	vol := aws.ToString(e.createVolume(zoneA, 1).VolumeId)
	snap := e.snapshot(vol)
	e.waitSnapshotCompleted(snap)

	tag := func(kv ...string) []types.Tag {
		var out []types.Tag
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
		}
		return out
	}
	if _, err := e.client.CreateTags(ctx(t), &awsec2.CreateTagsInput{
		Resources: []string{vol, snap}, Tags: tag("migration", "m-1", "epoch", "7", "owner", "handover"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CreateTags(ctx(t), &awsec2.CreateTagsInput{Resources: []string{vol}, Tags: tag("epoch", "8")}); err != nil {
		t.Fatal(err)
	}
	filter := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	count := func(fs ...types.Filter) int {
		t.Helper()
		n := 0
		p := awsec2.NewDescribeTagsPaginator(e.client, &awsec2.DescribeTagsInput{Filters: fs, MaxResults: aws.Int32(5)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			n += len(out.Tags)
		}
		return n
	}
	for _, tc := range []struct {
		name    string
		filters []types.Filter
		want    int
	}{
		{"all (paged)", nil, 6},
		{"resource-id", []types.Filter{filter("resource-id", vol)}, 3},
		{"resource-type", []types.Filter{filter("resource-type", "snapshot")}, 3},
		{"key", []types.Filter{filter("key", "epoch")}, 2},
		{"value", []types.Filter{filter("value", "8")}, 1},
		{"key and value", []types.Filter{filter("key", "epoch"), filter("value", "7")}, 1},
		{"wildcard", []types.Filter{filter("key", "mig*")}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := count(tc.filters...); got != tc.want {
				t.Errorf("got %d tags, want %d", got, tc.want)
			}
		})
	}

	// DeleteTags: with a value, only when it matches; without, the key.
	if _, err := e.client.DeleteTags(ctx(t), &awsec2.DeleteTagsInput{Resources: []string{vol}, Tags: tag("epoch", "7")}); err != nil {
		t.Fatal(err)
	}
	if n := count(filter("resource-id", vol), filter("key", "epoch")); n != 1 {
		t.Errorf("a mismatched value deleted the tag (%d left)", n)
	}
	if _, err := e.client.DeleteTags(ctx(t), &awsec2.DeleteTagsInput{Resources: []string{vol}, Tags: []types.Tag{{Key: aws.String("epoch")}}}); err != nil {
		t.Fatal(err)
	}
	if n := count(filter("resource-id", vol)); n != 2 {
		t.Errorf("%d tags left on the volume, want 2", n)
	}
	if _, err := e.client.DeleteTags(ctx(t), &awsec2.DeleteTagsInput{Resources: []string{snap}}); err != nil {
		t.Fatal(err)
	}
	if n := count(filter("resource-id", snap)); n != 0 {
		t.Errorf("%d tags left on the snapshot, want none", n)
	}

	for _, tc := range []struct {
		name string
		in   awsec2.CreateTagsInput
		code string
	}{
		{"unknown volume", awsec2.CreateTagsInput{Resources: []string{"vol-0123456789abcdef0"}, Tags: tag("a", "b")}, "InvalidVolume.NotFound"},
		{"unknown instance", awsec2.CreateTagsInput{Resources: []string{"i-0123456789abcdef0"}, Tags: tag("a", "b")}, "InvalidInstanceID.NotFound"},
		{"malformed", awsec2.CreateTagsInput{Resources: []string{"bucket-1"}, Tags: tag("a", "b")}, "InvalidID"},
		{"reserved key", awsec2.CreateTagsInput{Resources: []string{vol}, Tags: tag("aws:x", "b")}, "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.CreateTags(ctx(t), &tc.in)
			wantCode(t, err, tc.code)
		})
	}
	var many []types.Tag
	for i := range 51 {
		many = append(many, types.Tag{Key: aws.String("k" + string(rune('A'+i))), Value: aws.String("v")})
	}
	_, err := e.client.CreateTags(ctx(t), &awsec2.CreateTagsInput{Resources: []string{vol}, Tags: many})
	wantCode(t, err, "TagLimitExceeded")
}
