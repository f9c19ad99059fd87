package s3

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return "not an API error: " + err.Error()
	}
	return ""
}

func TestBucketTagging(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, svc := newClient(t, dir, nil)
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("assets")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: aws.String("assets")})
	if code(err) != "NoSuchTagSet" {
		t.Fatalf("untagged bucket: %v, want NoSuchTagSet", err)
	}
	set := []types.Tag{{Key: aws.String("handover:environment"), Value: aws.String("staging")}, {Key: aws.String("team"), Value: aws.String("a")}}
	if _, err := c.PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: aws.String("assets"), Tagging: &types.Tagging{TagSet: set}}); err != nil {
		t.Fatalf("PutBucketTagging: %v", err)
	}
	for _, tt := range []struct {
		name, bucket string
		set          []types.Tag
		code         string
	}{
		{"missing bucket", "nope", set, "NoSuchBucket"},
		{"aws: prefix", "assets", []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("1")}}, "InvalidTag"},
		{"duplicate key", "assets", []types.Tag{{Key: aws.String("k"), Value: aws.String("1")}, {Key: aws.String("k"), Value: aws.String("2")}}, "InvalidTag"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: aws.String(tt.bucket), Tagging: &types.Tagging{TagSet: tt.set}})
			if code(err) != tt.code {
				t.Errorf("got %v, want %s", err, tt.code)
			}
		})
	}

	// The set survives a restart, unchanged by the refused PUTs.
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	c, _ = newClient(t, dir, nil)
	out, err := c.GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: aws.String("assets")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.TagSet) != 2 || aws.ToString(out.TagSet[0].Key) != "handover:environment" || aws.ToString(out.TagSet[1].Value) != "a" {
		t.Fatalf("after restart: %+v", out.TagSet)
	}

	if _, err := c.DeleteBucketTagging(ctx, &awss3.DeleteBucketTaggingInput{Bucket: aws.String("assets")}); err != nil {
		t.Fatalf("DeleteBucketTagging: %v", err)
	}
	if _, err := c.GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: aws.String("assets")}); code(err) != "NoSuchTagSet" {
		t.Fatalf("after delete: %v", err)
	}

	// A deleted bucket's tags go with it.
	if _, err := c.PutBucketTagging(ctx, &awss3.PutBucketTaggingInput{Bucket: aws.String("assets"), Tagging: &types.Tagging{TagSet: set}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("assets")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("assets")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetBucketTagging(ctx, &awss3.GetBucketTaggingInput{Bucket: aws.String("assets")}); code(err) != "NoSuchTagSet" {
		t.Fatalf("a bucket made again kept the old tags: %v", err)
	}
}

// TestCreateExistingBucket: the local cloud is one account, so creating a
// bucket that exists answers BucketAlreadyOwnedByYou, as S3 does, and
// leaves the bucket as it was.
func TestCreateExistingBucket(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t, t.TempDir(), nil)
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("mine")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("mine"), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("mine")})
	if code(err) != "BucketAlreadyOwnedByYou" {
		t.Errorf("creating an existing bucket: %v, want BucketAlreadyOwnedByYou", err)
	}
	if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("mine"), Key: aws.String("k")}); err != nil {
		t.Errorf("the bucket's object after the refused create: %v", err)
	}
}
