package agent

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// The SDK boundary: only the calls the agent makes, so that tests can fake
// exactly these and the real clients satisfy them unchanged.

// IMDS is the instance-metadata call the agent makes, satisfied by
// *imds.Client. GetInstanceIdentityDocument is read-only and safe to
// repeat; it has no not-found case on an instance (off one, it fails to
// connect or times out).
type IMDS interface {
	GetInstanceIdentityDocument(ctx context.Context, in *imds.GetInstanceIdentityDocumentInput, optFns ...func(*imds.Options)) (*imds.GetInstanceIdentityDocumentOutput, error)
}

// EC2 is the EC2 call the agent makes, satisfied by *ec2.Client.
// DescribeVolumes is read-only and safe to repeat; filters that match
// nothing return an empty list, not an error.
type EC2 interface {
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
}

var (
	_ IMDS = (*imds.Client)(nil)
	_ EC2  = (*ec2.Client)(nil)
)
