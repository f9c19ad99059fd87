package awscloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/handover-dev/handover/internal/handover"
)

func TestTranslate(t *testing.T) {
	api := func(code, msg string) error {
		return &smithy.OperationError{ServiceID: "EC2", OperationName: "Op",
			Err: &smithy.GenericAPIError{Code: code, Message: msg}}
	}
	status := func(code int) error {
		return &smithy.OperationError{ServiceID: "EC2", OperationName: "Op",
			Err: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("boom")}}
	}
	other := errors.New("something else")
	tests := []struct {
		name string
		err  error
		want error // nil: returned unchanged
	}{
		{"volume not found", api("InvalidVolume.NotFound", "The volume 'vol-1' does not exist."), handover.ErrNotFound},
		{"snapshot not found", api("InvalidSnapshot.NotFound", "x"), handover.ErrNotFound},
		{"instance not found", api("InvalidInstanceID.NotFound", "x"), handover.ErrNotFound},
		{"launch template name not found", api("InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist."), handover.ErrNotFound},
		{"request limit", api("RequestLimitExceeded", "slow down"), handover.ErrThrottled},
		{"throttling", api("Throttling", "Rate exceeded"), handover.ErrThrottled},
		{"throttling exception", api("ThrottlingException", "x"), handover.ErrThrottled},
		{"no active action", api("ValidationError", "No active Lifecycle Action found with instance ID i-1"), handover.ErrNoActiveAction},
		{"other validation", api("ValidationError", "AutoScalingGroup name not found"), handover.ErrInvalid},
		{"incorrect state", api("IncorrectState", "x"), handover.ErrIncorrectState},
		{"incorrect instance state", api("IncorrectInstanceState", "x"), handover.ErrIncorrectState},
		{"volume in use", api("VolumeInUse", "x"), handover.ErrIncorrectState},
		{"scaling activity", api("ScalingActivityInProgress", "x"), handover.ErrIncorrectState},
		{"zone mismatch", api("InvalidVolume.ZoneMismatch", "x"), handover.ErrInvalid},
		{"internal error", api("InternalError", "x"), handover.ErrUnavailable},
		{"unavailable", api("Unavailable", "x"), handover.ErrUnavailable},
		{"http 503", status(503), handover.ErrUnavailable},
		{"network", &smithy.OperationError{Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, handover.ErrUnavailable},
		{"invalid parameter", api("InvalidParameterValue", "x"), handover.ErrInvalid},
		{"missing parameter", api("MissingParameter", "x"), handover.ErrInvalid},
		{"malformed", api("InvalidVolumeID.Malformed", "x"), handover.ErrInvalid},
		{"idempotency mismatch", api("IdempotentParameterMismatch", "x"), handover.ErrInvalid},
		{"unknown code", api("AuthFailure", "x"), nil},
		{"http 400 unknown", status(400), nil},
		{"plain error", other, nil},
		{"context deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), nil},
	}
	sentinels := []error{handover.ErrNotFound, handover.ErrThrottled, handover.ErrNoActiveAction,
		handover.ErrIncorrectState, handover.ErrUnavailable, handover.ErrInvalid}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := translate(tt.err)
			if !errors.Is(got, tt.err) {
				t.Errorf("translate(%v) = %v, lost the original error", tt.err, got)
			}
			if !strings.Contains(got.Error(), tt.err.Error()) {
				t.Errorf("message %q lost %q", got, tt.err)
			}
			for _, s := range sentinels {
				if want := s == tt.want; errors.Is(got, s) != want {
					t.Errorf("errors.Is(translate(%v), %v) = %v, want %v", tt.err, s, !want, want)
				}
			}
		})
	}
	if translate(nil) != nil {
		t.Error("translate(nil) != nil")
	}
}
