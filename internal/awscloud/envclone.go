package awscloud

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// EnvEC2API is the subset of *ec2.Client that a clone's plan calls.
type EnvEC2API interface {
	DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, opts ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, opts ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
}

// EnvS3HeadAPI is the S3 call a clone's plan makes to find a bucket name
// taken.
type EnvS3HeadAPI interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

var (
	_ EnvEC2API    = (*ec2.Client)(nil)
	_ EnvS3HeadAPI = (*s3.Client)(nil)
)

// CloneReader is env.CloneReader: the Environments' clients with EC2's
// launch templates.
type CloneReader struct {
	*Environments
	ec2  EnvEC2API
	head EnvS3HeadAPI
}

var _ env.CloneReader = (*CloneReader)(nil)

// NewCloneReader returns a CloneReader over e's clients, ec2API and
// head (S3 HeadBucket).
func NewCloneReader(e *Environments, ec2API EnvEC2API, head EnvS3HeadAPI) *CloneReader {
	return &CloneReader{Environments: e, ec2: ec2API, head: head}
}

// TemplateUserData implements env.CloneReader.
func (c *CloneReader) TemplateUserData(ctx context.Context, ref ledger.TemplateRef) (string, error) {
	in := &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{ref.Version}}
	if ref.Version == "" {
		in.Versions = []string{"$Default"}
	}
	if ref.ID != "" {
		in.LaunchTemplateId = aws.String(ref.ID)
	} else {
		in.LaunchTemplateName = aws.String(ref.Name)
	}
	out, err := c.ec2.DescribeLaunchTemplateVersions(ctx, in)
	if isCode(err, "InvalidLaunchTemplateName.NotFoundException") {
		return "", fmt.Errorf("describing the launch template version: %w: %w", handover.ErrNotFound, err)
	}
	if err != nil {
		return "", fmt.Errorf("describing the launch template version: %w", translate(err))
	}
	if len(out.LaunchTemplateVersions) == 0 || out.LaunchTemplateVersions[0].LaunchTemplateData == nil {
		return "", fmt.Errorf("describing the launch template version: EC2 returned no version %s", in.Versions[0])
	}
	ud := aws.ToString(out.LaunchTemplateVersions[0].LaunchTemplateData.UserData)
	if ud == "" {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(ud)
	if err != nil {
		return "", fmt.Errorf("decoding the launch template's user data (EC2 keeps it in base64): %w", err)
	}
	return string(b), nil
}

// Taken implements env.CloneReader: one read per name, each asking for
// that name alone, a not-found answer meaning free.
func (c *CloneReader) Taken(ctx context.Context, names []env.Resource) ([]env.Resource, error) {
	var out []env.Resource
	for _, n := range names {
		taken, err := c.taken(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("checking whether %s exists: %w", n, err)
		}
		if taken {
			out = append(out, n)
		}
	}
	return out, nil
}

func (c *CloneReader) taken(ctx context.Context, n env.Resource) (bool, error) {
	switch n.Kind {
	case env.KindGroup:
		out, err := c.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{n.Name}})
		if err != nil {
			return false, translate(err)
		}
		return len(out.AutoScalingGroups) > 0, nil
	case env.KindLaunchTemplate:
		_, err := c.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{n.Name}})
		if isCode(err, "InvalidLaunchTemplateName.NotFoundException") {
			return false, nil
		}
		return err == nil, translate(err)
	case env.KindLoadBalancer:
		_, err := c.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{n.Name}})
		if isCode(err, "LoadBalancerNotFound") {
			return false, nil
		}
		return err == nil, translate(err)
	case env.KindTargetGroup:
		_, err := c.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: []string{n.Name}})
		if isCode(err, "TargetGroupNotFound") {
			return false, nil
		}
		return err == nil, translate(err)
	case env.KindRDS:
		_, err := c.rds.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(n.Name)})
		if isCode(err, "DBInstanceNotFound") {
			return false, nil
		}
		return err == nil, translate(err)
	case env.KindBucket:
		_, err := c.head.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(n.Name)})
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) {
			switch re.HTTPStatusCode() {
			case 404:
				return false, nil
			case 403, 301:
				return true, nil // another account's, or another region's
			}
		}
		return err == nil, translate(err)
	}
	return false, fmt.Errorf("no check for resources of kind %s", n.Kind)
}
