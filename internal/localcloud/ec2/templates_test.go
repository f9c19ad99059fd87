package ec2_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestLaunchTemplates(t *testing.T) {
	e := newEnv(t)
	userData := b64("#!/bin/sh\necho from-template\neval \"exec $HANDOVER_IMAGE_COMMAND\"\n")
	created, err := e.client.CreateLaunchTemplate(ctx(t), &awsec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("orders-db"),
		VersionDescription: aws.String("first"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{
			ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeT3Small, UserData: aws.String(userData),
			TagSpecifications: []types.LaunchTemplateTagSpecificationRequest{{
				ResourceType: types.ResourceTypeInstance,
				Tags:         []types.Tag{{Key: aws.String("role"), Value: aws.String("db")}},
			}},
		},
		TagSpecifications: tagSpec(types.ResourceTypeLaunchTemplate, "team", "storage"),
	})
	if err != nil {
		t.Fatal(err)
	}
	lt := created.LaunchTemplate
	ltID := aws.ToString(lt.LaunchTemplateId)
	if aws.ToInt64(lt.DefaultVersionNumber) != 1 || aws.ToInt64(lt.LatestVersionNumber) != 1 || len(lt.Tags) != 1 {
		t.Errorf("CreateLaunchTemplate answered %+v", lt)
	}
	_, err = e.client.CreateLaunchTemplate(ctx(t), &awsec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("orders-db"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI)},
	})
	wantCode(t, err, "InvalidLaunchTemplateName.AlreadyExistsException")

	v2, err := e.client.CreateLaunchTemplateVersion(ctx(t), &awsec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateName: aws.String("orders-db"), SourceVersion: aws.String("1"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: types.InstanceTypeT3Large},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := v2.LaunchTemplateVersion.LaunchTemplateData; aws.ToInt64(v2.LaunchTemplateVersion.VersionNumber) != 2 ||
		d.InstanceType != types.InstanceTypeT3Large || aws.ToString(d.ImageId) != testAMI || aws.ToString(d.UserData) != userData || len(d.TagSpecifications) != 1 {
		t.Errorf("version 2 (from 1) is %+v", v2.LaunchTemplateVersion)
	}
	v3, err := e.client.CreateLaunchTemplateVersion(ctx(t), &awsec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId:   aws.String(ltID),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI)},
	})
	if err != nil || v3.LaunchTemplateVersion.LaunchTemplateData.InstanceType != "" {
		t.Errorf("version 3 (no source) is %+v %v", v3, err)
	}

	versions := func(vs ...string) []int64 {
		t.Helper()
		out, err := e.client.DescribeLaunchTemplateVersions(ctx(t), &awsec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(ltID), Versions: vs})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, v := range out.LaunchTemplateVersions {
			got = append(got, aws.ToInt64(v.VersionNumber))
		}
		return got
	}
	for _, tc := range []struct {
		name string
		in   []string
		want []int64
	}{
		{"all", nil, []int64{1, 2, 3}},
		{"latest", []string{"$Latest"}, []int64{3}},
		{"default", []string{"$Default"}, []int64{1}},
		{"numbers", []string{"2", "$Default"}, []int64{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versions(tc.in...); !equal(got, tc.want) {
				t.Errorf("got versions %v, want %v", got, tc.want)
			}
		})
	}
	_, err = e.client.DescribeLaunchTemplateVersions(ctx(t), &awsec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(ltID), Versions: []string{"9"}})
	wantCode(t, err, "InvalidLaunchTemplateId.VersionNotFound")

	desc, err := e.client.DescribeLaunchTemplates(ctx(t), &awsec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"orders-db"}})
	if err != nil || len(desc.LaunchTemplates) != 1 || aws.ToInt64(desc.LaunchTemplates[0].LatestVersionNumber) != 3 {
		t.Errorf("DescribeLaunchTemplates: %+v %v", desc, err)
	}
	_, err = e.client.DescribeLaunchTemplates(ctx(t), &awsec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"nope"}})
	wantCode(t, err, "InvalidLaunchTemplateName.NotFoundException")
	_, err = e.client.DescribeLaunchTemplates(ctx(t), &awsec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{"lt-0123456789abcdef0"}})
	wantCode(t, err, "InvalidLaunchTemplateId.NotFound")
	byTag, err := e.client.DescribeLaunchTemplates(ctx(t), &awsec2.DescribeLaunchTemplatesInput{Filters: []types.Filter{{Name: aws.String("tag:team"), Values: []string{"storage"}}}})
	if err != nil || len(byTag.LaunchTemplates) != 1 {
		t.Errorf("by tag: %+v %v", byTag, err)
	}

	// RunInstances from $Latest of version 2: version 2's type, the
	// template's user data and tags, and EC2's own template tags.
	if _, err := e.client.ModifyLaunchTemplate(ctx(t), &awsec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(ltID), DefaultVersion: aws.String("2")}); err != nil {
		t.Fatal(err)
	}
	run, err := e.client.RunInstances(ctx(t), &awsec2.RunInstancesInput{
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("orders-db"), Version: aws.String("$Default")},
		MinCount:       aws.Int32(1), MaxCount: aws.Int32(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	in := run.Instances[0]
	id := aws.ToString(in.InstanceId)
	tags := map[string]string{}
	for _, tg := range in.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if in.InstanceType != types.InstanceTypeT3Large || tags["role"] != "db" || tags["aws:ec2launchtemplate:id"] != ltID || tags["aws:ec2launchtemplate:version"] != "2" {
		t.Errorf("instance from the template: type %s tags %v", in.InstanceType, tags)
	}
	e.waitInstance(id, types.InstanceStateNameRunning)
	e.console(id, "from-template", 1)
	e.console(id, "booted "+id, 1)

	if _, err := e.client.DeleteLaunchTemplate(ctx(t), &awsec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(ltID)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.DescribeLaunchTemplateVersions(ctx(t), &awsec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(ltID)})
	wantCode(t, err, "InvalidLaunchTemplateId.NotFound")
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
