package awscloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/handover-dev/handover/internal/handover"
)

// translate is the one place AWS error codes become handover's sentinel
// errors. It wraps, so the provider's message is kept; an error it does not
// recognise comes back unchanged. nil stays nil.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if s := classify(err); s != nil {
		return fmt.Errorf("%w: %w", s, err)
	}
	return err
}

// classify returns the sentinel err belongs to, or nil.
func classify(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if s := classifyCode(ae.ErrorCode(), ae.ErrorMessage()); s != nil {
			return s
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return handover.ErrUnavailable
	}
	if ae != nil {
		return nil
	}
	// A context's own end is the caller's doing, not the provider's.
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return handover.ErrUnavailable
	}
	return nil
}

func classifyCode(code, msg string) error {
	switch code {
	case "RequestLimitExceeded", "Throttling", "ThrottlingException":
		return handover.ErrThrottled
	case "ValidationError":
		if strings.Contains(msg, "No active Lifecycle Action found") {
			return handover.ErrNoActiveAction
		}
		return handover.ErrInvalid
	case "IncorrectState", "IncorrectInstanceState", "VolumeInUse", "ScalingActivityInProgress":
		return handover.ErrIncorrectState
	case "InternalError", "InternalFailure", "Unavailable", "ServiceUnavailable":
		return handover.ErrUnavailable
	case "InvalidParameterValue", "InvalidParameterCombination", "MissingParameter",
		"IdempotentParameterMismatch", "InvalidVolume.ZoneMismatch":
		return handover.ErrInvalid
	}
	switch {
	case strings.HasSuffix(code, ".NotFound"), strings.HasSuffix(code, ".NotFoundException"):
		// EC2 spells most "does not exist" codes X.NotFound, a few (the
		// launch template's name) X.NotFoundException.
		return handover.ErrNotFound
	case strings.HasSuffix(code, ".Malformed"):
		return handover.ErrInvalid
	}
	return nil
}
