package autoscaling

import (
	"net/http"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// The service's API errors, worded as AWS words them where that is known
// (clients match on these texts, e.g. "No active Lifecycle Action found").

func errGroupNotFound(name string) error {
	return awsproto.ValidationError("AutoScalingGroup name not found - AutoScalingGroup %s not found", name)
}

func errGroupExists(name string) error {
	return &awsproto.Error{Code: "AlreadyExists", Message: "AutoScalingGroup by this name already exists - A group with the name " + name + " already exists", Status: http.StatusBadRequest}
}

func errGroupDeleting(name string) error {
	return awsproto.ValidationError("AutoScalingGroup %s is pending delete.", name)
}

func errInUse() error {
	return &awsproto.Error{Code: "ResourceInUse", Message: "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.", Status: http.StatusBadRequest}
}

func errActivityInProgress() error {
	return &awsproto.Error{Code: "ScalingActivityInProgress", Message: "You cannot delete an AutoScalingGroup while there are scaling activities in progress for that group.", Status: http.StatusBadRequest}
}

func errLimit(format string, args ...any) error {
	return awsproto.Errorf("LimitExceeded", format, args...)
}

func errNoActiveAction(token, instanceID string) error {
	if token != "" {
		return awsproto.ValidationError("No active Lifecycle Action found with token %s", token)
	}
	return awsproto.ValidationError("No active Lifecycle Action found with instance ID %s", instanceID)
}

func errInstanceNotManaged(id string) error {
	return awsproto.ValidationError("Instance Id not found - No managed instance found for instance ID: %s", id)
}

func errInvalidAction(action string) error {
	return &awsproto.Error{Code: "InvalidAction", Message: "The action " + action + " is not valid for this web service.", Status: http.StatusBadRequest}
}

// errTestPublish is AWS's answer to a PutLifecycleHook whose test message
// could not be delivered: no such target, or a role Auto Scaling cannot
// publish as.
func errTestPublish(target, role string) error {
	return awsproto.ValidationError("Unable to publish test message to notification target %s using IAM role %s. Please check your target and role configuration and try to put lifecycle hook again.", target, role)
}
