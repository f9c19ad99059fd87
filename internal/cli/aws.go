package cli

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// awsConfig loads the SDK's configuration the standard way (environment,
// shared files, instance role), with an endpoint URL for the local cloud
// or any AWS-compatible endpoint. The controller talks to AWS and to the
// local cloud through this one path.
func awsConfig(ctx context.Context, endpointURL, region string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if endpointURL != "" {
		cfg.BaseEndpoint = aws.String(endpointURL)
	}
	if cfg.Region == "" {
		if endpointURL == "" {
			return aws.Config{}, fmt.Errorf("no AWS region: set --region or AWS_REGION")
		}
		cfg.Region = "us-east-1" // the local cloud's default
	}
	return cfg, nil
}
