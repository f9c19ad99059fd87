package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
)

// awsConfig loads the SDK's configuration the standard way (environment,
// shared files, instance role), with an endpoint URL for the local cloud
// or any AWS-compatible endpoint. The controller talks to AWS and to the
// local cloud through this one path. The SDK's own log lines go to log at
// debug level (a nil log discards them).
func awsConfig(ctx context.Context, endpointURL, region string, log *slog.Logger) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	cfg.Logger = sdkLogger{log: log}
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

// sdkLogger sends the SDK's log lines to slog at debug level. The SDK
// otherwise writes its warnings straight to stderr ("failed to discard
// remaining HTTP response body" when a call is cancelled mid-answer):
// noise between a command's progress lines that says nothing a user can
// act on, and unaffected by --log-level.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	if l.log == nil {
		return
	}
	l.log.Debug(fmt.Sprintf(format, v...), "from", "aws-sdk", "sdk-level", string(c))
}
