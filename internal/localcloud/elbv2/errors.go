package elbv2

import (
	"errors"
	"strings"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The API errors ELBv2 answers with, by the codes the SDK switches on. All
// are client faults (HTTP 400): repeating the same call fails the same way.

func errLoadBalancerNotFound() error {
	return awsproto.Errorf("LoadBalancerNotFound", "One or more load balancers not found")
}

func errTargetGroupNotFound() error {
	return awsproto.Errorf("TargetGroupNotFound", "One or more target groups not found")
}

func errListenerNotFound() error {
	return awsproto.Errorf("ListenerNotFound", "One or more listeners not found")
}

func errValidation(format string, args ...any) error {
	return awsproto.ValidationError(format, args...)
}

func errInvalidTarget(format string, args ...any) error {
	return awsproto.Errorf("InvalidTarget", format, args...)
}

func errInvalidConfiguration(format string, args ...any) error {
	return awsproto.Errorf("InvalidConfigurationRequest", format, args...)
}

// IsTargetGroupNotFound reports whether err says the target group does not
// exist. Retrying will not help; the caller's ARN is stale.
func IsTargetGroupNotFound(err error) bool { return hasCode(err, "TargetGroupNotFound") }

// IsInvalidTarget reports whether err says a target cannot be registered
// (unknown or not running instance). Retrying helps only once the instance
// is running.
func IsInvalidTarget(err error) bool { return hasCode(err, "InvalidTarget") }

func hasCode(err error, code string) bool {
	var e *awsproto.Error
	return errors.As(err, &e) && e.Code == code
}

// quoteList renders ids as AWS does in error messages: 'a', 'b'.
func quoteList(ids []string) string {
	return "'" + strings.Join(ids, "', '") + "'"
}
