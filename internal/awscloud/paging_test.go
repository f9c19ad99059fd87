package awscloud

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// pagingEC2 serves DescribeVolumes and DescribeSnapshots in pages of one,
// recording the tokens it was given. Other methods are unimplemented.
type pagingEC2 struct {
	EC2API
	ids    []string
	Tokens []string
}

func (f *pagingEC2) page(token *string) (string, *string) {
	f.Tokens = append(f.Tokens, aws.ToString(token))
	i := len(f.Tokens) - 1
	var next *string
	if i+1 < len(f.ids) {
		next = aws.String(f.ids[i+1])
	}
	return f.ids[i], next
}

func (f *pagingEC2) DescribeVolumes(_ context.Context, in *ec2.DescribeVolumesInput, _ ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	id, next := f.page(in.NextToken)
	return &ec2.DescribeVolumesOutput{Volumes: []ec2types.Volume{{VolumeId: aws.String(id)}}, NextToken: next}, nil
}

func (f *pagingEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	id, next := f.page(in.NextToken)
	return &ec2.DescribeSnapshotsOutput{Snapshots: []ec2types.Snapshot{{SnapshotId: aws.String(id)}}, NextToken: next}, nil
}

func TestFindFollowsNextToken(t *testing.T) {
	ctx := context.Background()
	tags := map[string]string{"k": "v"}
	for _, tt := range []struct {
		name string
		find func(*Cloud) ([]string, error)
	}{
		{"volumes", func(c *Cloud) ([]string, error) {
			vs, err := c.FindVolumes(ctx, tags)
			var ids []string
			for _, v := range vs {
				ids = append(ids, v.ID)
			}
			return ids, err
		}},
		{"snapshots", func(c *Cloud) ([]string, error) {
			ss, err := c.FindSnapshots(ctx, tags)
			var ids []string
			for _, s := range ss {
				ids = append(ids, s.ID)
			}
			return ids, err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &pagingEC2{ids: []string{"a", "b", "c"}}
			ids, err := tt.find(New(f, nil, nil))
			if err != nil || len(ids) != 3 || ids[0] != "a" || ids[2] != "c" {
				t.Fatalf("found %v, %v; want [a b c]", ids, err)
			}
			if want := []string{"", "b", "c"}; len(f.Tokens) != 3 || f.Tokens[1] != want[1] || f.Tokens[2] != want[2] || f.Tokens[0] != "" {
				t.Errorf("tokens sent %q, want %q", f.Tokens, want)
			}
		})
	}
}
