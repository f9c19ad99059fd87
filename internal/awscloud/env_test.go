package awscloud

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/handover-dev/handover/internal/env"
)

// fakeEnvELB serves n load balancers in pages of 10 (Marker), tags every
// third with the environment, and refuses a DescribeTags of more than 20
// ARNs, as ELBv2 does.
type fakeEnvELB struct {
	EnvELBAPI
	n        int
	tagCalls [][]string
}

func (f *fakeEnvELB) arn(i int) string {
	return fmt.Sprintf("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/lb-%02d/%d", i, i)
}

func (f *fakeEnvELB) DescribeLoadBalancers(_ context.Context, in *elb.DescribeLoadBalancersInput, _ ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error) {
	start := 0
	if in.Marker != nil {
		fmt.Sscanf(*in.Marker, "%d", &start)
	}
	out := &elb.DescribeLoadBalancersOutput{}
	for i := start; i < min(start+10, f.n); i++ {
		out.LoadBalancers = append(out.LoadBalancers, elbtypes.LoadBalancer{LoadBalancerArn: aws.String(f.arn(i)), LoadBalancerName: aws.String(fmt.Sprintf("lb-%02d", i))})
	}
	if start+10 < f.n {
		out.NextMarker = aws.String(fmt.Sprint(start + 10))
	}
	return out, nil
}

func (f *fakeEnvELB) DescribeTags(_ context.Context, in *elb.DescribeTagsInput, _ ...func(*elb.Options)) (*elb.DescribeTagsOutput, error) {
	if len(in.ResourceArns) > 20 {
		return nil, &smithy.GenericAPIError{Code: "ValidationError", Message: "at most 20"}
	}
	f.tagCalls = append(f.tagCalls, in.ResourceArns)
	out := &elb.DescribeTagsOutput{}
	for _, a := range in.ResourceArns {
		d := elbtypes.TagDescription{ResourceArn: aws.String(a)}
		var i int
		fmt.Sscanf(a[strings.LastIndexByte(a, '/')+1:], "%d", &i)
		if i%3 == 0 {
			d.Tags = []elbtypes.Tag{{Key: aws.String(env.TagEnvironment), Value: aws.String("staging")}}
		}
		out.TagDescriptions = append(out.TagDescriptions, d)
	}
	return out, nil
}

func (f *fakeEnvELB) DescribeListeners(context.Context, *elb.DescribeListenersInput, ...func(*elb.Options)) (*elb.DescribeListenersOutput, error) {
	return &elb.DescribeListenersOutput{}, nil
}

func TestTaggedLoadBalancersAsksTwentyAtATime(t *testing.T) {
	f := &fakeEnvELB{n: 45}
	e := NewEnvironments(nil, f, nil, nil, "us-east-1")
	lbs, err := e.TaggedLoadBalancers(t.Context(), env.ByName("staging"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 45; i++ {
		if i%3 == 0 {
			want = append(want, fmt.Sprintf("lb-%02d", i))
		}
	}
	var got []string
	for _, lb := range lbs {
		got = append(got, lb.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("found %v, want %v", got, want)
	}
	if len(f.tagCalls) != 3 || len(f.tagCalls[0]) != 20 || len(f.tagCalls[2]) != 5 {
		t.Errorf("DescribeTags calls of %d ARNs, want 20, 20, 5", lens(f.tagCalls))
	}
}

func lens(xs [][]string) []int {
	var out []int
	for _, x := range xs {
		out = append(out, len(x))
	}
	return out
}

// fakeEnvS3 lists buckets of two regions; one is untagged.
type fakeEnvS3 struct {
	EnvS3API
	asked []string
}

func (f *fakeEnvS3) ListBuckets(context.Context, *s3.ListBucketsInput, ...func(*s3.Options)) (*s3.ListBucketsOutput, error) {
	return &s3.ListBucketsOutput{Buckets: []s3types.Bucket{
		{Name: aws.String("staging-assets"), BucketRegion: aws.String("us-east-1")},
		{Name: aws.String("untagged")},
		{Name: aws.String("elsewhere"), BucketRegion: aws.String("eu-west-1")},
	}}, nil
}

func (f *fakeEnvS3) GetBucketTagging(_ context.Context, in *s3.GetBucketTaggingInput, _ ...func(*s3.Options)) (*s3.GetBucketTaggingOutput, error) {
	f.asked = append(f.asked, aws.ToString(in.Bucket))
	if aws.ToString(in.Bucket) == "untagged" {
		return nil, &smithy.GenericAPIError{Code: "NoSuchTagSet", Message: "The TagSet does not exist"}
	}
	return &s3.GetBucketTaggingOutput{TagSet: []s3types.Tag{{Key: aws.String(env.TagEnvironment), Value: aws.String("staging")}}}, nil
}

func TestTaggedBuckets(t *testing.T) {
	f := &fakeEnvS3{}
	e := NewEnvironments(nil, nil, nil, f, "us-east-1")
	bs, err := e.TaggedBuckets(t.Context(), env.ByName("staging"))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].Name != "staging-assets" {
		t.Errorf("found %+v", bs)
	}
	if slices.Contains(f.asked, "elsewhere") {
		t.Errorf("asked the tags of a bucket in another region: %v", f.asked)
	}
}
