package awscloud

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// fakeCloneEC2 has one launch template, "web", whose version 2 holds ud
// (already base64, as EC2 returns it).
type fakeCloneEC2 struct {
	ud   string
	asks []ec2.DescribeLaunchTemplateVersionsInput
}

func (f *fakeCloneEC2) DescribeLaunchTemplates(_ context.Context, in *ec2.DescribeLaunchTemplatesInput, _ ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error) {
	if slices.Equal(in.LaunchTemplateNames, []string{"web"}) {
		return &ec2.DescribeLaunchTemplatesOutput{LaunchTemplates: []ec2types.LaunchTemplate{{LaunchTemplateName: aws.String("web")}}}, nil
	}
	return nil, &smithy.GenericAPIError{Code: "InvalidLaunchTemplateName.NotFoundException", Message: "does not exist"}
}

func (f *fakeCloneEC2) DescribeLaunchTemplateVersions(_ context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, _ ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error) {
	f.asks = append(f.asks, *in)
	if aws.ToString(in.LaunchTemplateName) != "web" {
		return nil, &smithy.GenericAPIError{Code: "InvalidLaunchTemplateName.NotFoundException", Message: "does not exist"}
	}
	return &ec2.DescribeLaunchTemplateVersionsOutput{LaunchTemplateVersions: []ec2types.LaunchTemplateVersion{{
		LaunchTemplateData: &ec2types.ResponseLaunchTemplateData{UserData: aws.String(f.ud)}}}}, nil
}

// fakeHead answers HeadBucket with the status of each bucket name (200
// when absent from the map is not assumed: absent is 404).
type fakeHead map[string]int

func (f fakeHead) HeadBucket(_ context.Context, in *s3.HeadBucketInput, _ ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	code, ok := f[aws.ToString(in.Bucket)]
	if !ok {
		code = http.StatusNotFound
	}
	if code == http.StatusOK {
		return &s3.HeadBucketOutput{}, nil
	}
	return nil, &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("head")}
}

func TestCloneReaderUserData(t *testing.T) {
	f := &fakeCloneEC2{ud: base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho s3://staging-assets\n"))}
	c := NewCloneReader(NewEnvironments(nil, nil, nil, nil, "us-east-1"), f, fakeHead{})
	got, err := c.TemplateUserData(t.Context(), ledger.TemplateRef{Name: "web", Version: "2"})
	if err != nil || got != "#!/bin/sh\necho s3://staging-assets\n" {
		t.Fatalf("user data %q, %v", got, err)
	}
	if _, err := c.TemplateUserData(t.Context(), ledger.TemplateRef{Name: "web"}); err != nil || !slices.Equal(f.asks[1].Versions, []string{"$Default"}) {
		t.Errorf("no version asked %v: %v", f.asks[1].Versions, err)
	}
	if _, err := c.TemplateUserData(t.Context(), ledger.TemplateRef{Name: "gone", Version: "1"}); !errors.Is(err, handover.ErrNotFound) {
		t.Errorf("missing template: %v, want ErrNotFound", err)
	}
	f.ud = "not base64!"
	if _, err := c.TemplateUserData(t.Context(), ledger.TemplateRef{Name: "web", Version: "2"}); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Errorf("bad base64: %v", err)
	}
}

func TestCloneReaderTaken(t *testing.T) {
	c := NewCloneReader(NewEnvironments(nil, nil, nil, nil, "us-east-1"), &fakeCloneEC2{}, fakeHead{"mine": 200, "theirs": 403, "elsewhere": 301})
	names := []env.Resource{
		{Kind: env.KindBucket, Name: "mine"}, {Kind: env.KindBucket, Name: "theirs"}, {Kind: env.KindBucket, Name: "elsewhere"}, {Kind: env.KindBucket, Name: "free"},
		{Kind: env.KindLaunchTemplate, Name: "web"}, {Kind: env.KindLaunchTemplate, Name: "web-prod"},
	}
	got, err := c.Taken(t.Context(), names)
	if err != nil {
		t.Fatal(err)
	}
	want := []env.Resource{names[0], names[1], names[2], names[4]}
	if !slices.Equal(got, want) {
		t.Errorf("taken %v, want %v", got, want)
	}
	if _, err := c.Taken(t.Context(), []env.Resource{{Kind: "queue", Name: "q"}}); err == nil {
		t.Error("an unknown kind was not an error")
	}
}
