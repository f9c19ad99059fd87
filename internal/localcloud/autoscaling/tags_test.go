package autoscaling

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	as "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

func groupTag(group, key, value string) types.Tag {
	return types.Tag{ResourceId: aws.String(group), ResourceType: aws.String("auto-scaling-group"), Key: aws.String(key), Value: aws.String(value)}
}

func TestCreateOrUpdateAndDeleteTags(t *testing.T) {
	h := newHarness(t)
	h.createGroup("orders", 0, 2, 0)
	h.createGroup("web", 0, 2, 0)
	tagsOf := func(name string) map[string]string {
		t.Helper()
		m := map[string]string{}
		for _, tg := range h.group(name).Tags {
			m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		return m
	}
	if _, err := h.as.CreateOrUpdateTags(h.ctx, &as.CreateOrUpdateTagsInput{Tags: []types.Tag{
		groupTag("orders", "handover:environment", "staging"), groupTag("web", "handover:environment", "staging"), groupTag("orders", "team", "a")}}); err != nil {
		t.Fatalf("CreateOrUpdateTags: %v", err)
	}
	if _, err := h.as.CreateOrUpdateTags(h.ctx, &as.CreateOrUpdateTagsInput{Tags: []types.Tag{groupTag("orders", "team", "b")}}); err != nil {
		t.Fatalf("CreateOrUpdateTags again: %v", err)
	}
	if got := tagsOf("orders"); got["handover:environment"] != "staging" || got["team"] != "b" || len(got) != 2 {
		t.Errorf("orders tags %v", got)
	}
	// The tag filter finds both groups.
	out, err := h.as.DescribeAutoScalingGroups(h.ctx, &as.DescribeAutoScalingGroupsInput{Filters: []types.Filter{{Name: aws.String("tag:handover:environment"), Values: []string{"staging"}}}})
	if err != nil || len(out.AutoScalingGroups) != 2 {
		t.Fatalf("filtered describe: %d groups, %v", len(out.AutoScalingGroups), err)
	}

	for _, tt := range []struct {
		name string
		tags []types.Tag
	}{
		{"unknown group fails the whole call", []types.Tag{groupTag("web", "x", "1"), groupTag("nope", "x", "1")}},
		{"reserved aws: prefix", []types.Tag{groupTag("web", "aws:x", "1")}},
		{"wrong resource type", []types.Tag{{ResourceId: aws.String("web"), ResourceType: aws.String("instance"), Key: aws.String("x")}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.as.CreateOrUpdateTags(h.ctx, &as.CreateOrUpdateTagsInput{Tags: tt.tags})
			apiError(t, err, "ValidationError", "")
		})
	}
	if got := tagsOf("web"); got["x"] != "" {
		t.Errorf("a refused call tagged web: %v", got)
	}

	if _, err := h.as.DeleteTags(h.ctx, &as.DeleteTagsInput{Tags: []types.Tag{groupTag("orders", "team", "")}}); err != nil {
		t.Fatalf("DeleteTags: %v", err)
	}
	if got := tagsOf("orders"); len(got) != 1 || got["handover:environment"] != "staging" {
		t.Errorf("after DeleteTags: %v", got)
	}
}
