package ec2_test

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

// TestFilterInstancesByTagsFromAutoScalingAndCreateTags: an instance
// launched for an Auto Scaling group (the in-process Launch, with the
// reserved aws:autoscaling:groupName tag) and then tagged with CreateTags is
// found by DescribeInstances filtering on either tag or both, as handover
// finds the instances it owns.
func TestFilterInstancesByTagsFromAutoScalingAndCreateTags(t *testing.T) {
	e := newEnv(t)
	lt, err := e.client.CreateLaunchTemplate(ctx(t), &awsec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("db-template"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI)},
	})
	if err != nil {
		t.Fatal(err)
	}
	launch := func(group string) string {
		t.Helper()
		info, err := e.svc.Launch(ctx(t), ec2.LaunchRequest{
			LaunchTemplateID: aws.ToString(lt.LaunchTemplate.LaunchTemplateId), Version: "$Latest", Zone: zoneA,
			Tags: map[string]string{"aws:autoscaling:groupName": group, "team": "db"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	ours, other := launch("db-asg"), launch("other-asg")
	createTag := func(value string) {
		t.Helper()
		if _, err := e.client.CreateTags(ctx(t), &awsec2.CreateTagsInput{
			Resources: []string{ours}, Tags: []types.Tag{{Key: aws.String("handover:migration"), Value: aws.String(value)}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	find := func(fs ...types.Filter) []string {
		t.Helper()
		var out []string
		p := awsec2.NewDescribeInstancesPaginator(e.client, &awsec2.DescribeInstancesInput{Filters: fs})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx(t))
			if err != nil {
				t.Fatalf("DescribeInstances: %v", err)
			}
			for _, r := range page.Reservations {
				for _, i := range r.Instances {
					out = append(out, aws.ToString(i.InstanceId))
				}
			}
		}
		slices.Sort(out)
		return out
	}
	filter := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	createTag("m-1")

	for _, tc := range []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"tag set by CreateTags", []types.Filter{filter("tag:handover:migration", "m-1")}, []string{ours}},
		{"group tag", []types.Filter{filter("tag:aws:autoscaling:groupName", "db-asg")}, []string{ours}},
		{"both", []types.Filter{filter("tag:handover:migration", "m-1"), filter("tag:aws:autoscaling:groupName", "db-asg")}, []string{ours}},
		{"both, one not matching", []types.Filter{filter("tag:handover:migration", "m-2"), filter("tag:aws:autoscaling:groupName", "db-asg")}, nil},
		{"group wildcard", []types.Filter{filter("tag:aws:autoscaling:groupName", "db-*")}, []string{ours}},
		{"other group", []types.Filter{filter("tag:aws:autoscaling:groupName", "other-asg")}, []string{other}},
		{"either group", []types.Filter{filter("tag:aws:autoscaling:groupName", "db-asg", "other-asg")}, slices.Sorted(slices.Values([]string{ours, other}))},
		{"tag and state", []types.Filter{filter("tag:handover:migration", "m-1"), filter("instance-state-name", "pending", "running")}, []string{ours}},
		{"tag-key", []types.Filter{filter("tag-key", "handover:migration")}, []string{ours}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := find(tc.filters...); !slices.Equal(got, tc.want) {
				t.Errorf("found %v, want %v", got, tc.want)
			}
		})
	}

	// CreateTags on a key the instance has replaces its value.
	createTag("m-2")
	if got := find(filter("tag:handover:migration", "m-1")); len(got) != 0 {
		t.Errorf("the old value still finds %v", got)
	}
	if got := find(filter("tag:handover:migration", "m-2"), filter("tag:aws:autoscaling:groupName", "db-asg")); !slices.Equal(got, []string{ours}) {
		t.Errorf("the new value finds %v, want [%s]", got, ours)
	}
}
