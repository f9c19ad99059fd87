package events

import (
	"fmt"
	"slices"
)

// validate holds the rules every Event must meet, in one place: Decode checks
// what it built against them and Encode refuses what fails them, so whatever
// Encode writes, Decode reads back. Problems are named by the JSON path of
// the field they come from.
func validate(e *Event) error {
	if e.Kind <= KindUnknown || int(e.Kind) >= len(kindInfo) {
		return malformed("detail-type", fmt.Sprintf("event kind %d is not one handover consumes", int(e.Kind)), nil)
	}
	if err := validateEnvelope(e); err != nil {
		return err
	}
	// Paths of lifecycle fields: under detail in EventBridge's shape, at
	// the top in a hook notification.
	detailPath := "detail."
	if e.Delivery == DeliveryHookNotification {
		detailPath = ""
	}
	set := 0
	for _, p := range []bool{e.Lifecycle != nil, e.Launch != nil, e.Snapshot != nil, e.Volume != nil, e.InstanceState != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return malformed("detail", fmt.Sprintf("%d detail structs are set; want exactly the one for kind %s", set, e.Kind), nil)
	}
	switch k := e.Kind; {
	case e.Lifecycle != nil && (k == KindLaunchAction || k == KindTerminateAction):
		return validateLifecycle(k, e.Lifecycle, detailPath)
	case e.Launch != nil && (k == KindLaunchSuccessful || k == KindLaunchUnsuccessful):
		return validateLaunch(k, e.Launch)
	case e.Snapshot != nil && k == KindSnapshot:
		return validateSnapshot(e, e.Snapshot)
	case e.Volume != nil && k == KindVolume:
		return validateVolume(e, e.Volume)
	case e.InstanceState != nil && k == KindInstanceState:
		return validateInstanceState(e.InstanceState)
	}
	return malformed("detail", fmt.Sprintf("the detail struct set does not match kind %s", e.Kind), nil)
}

func validateEnvelope(e *Event) error {
	hook := e.Delivery == DeliveryHookNotification
	switch {
	case e.Delivery != DeliveryEventBridge && !hook:
		return malformed("", fmt.Sprintf("delivery %d is not one handover knows", int(e.Delivery)), nil)
	case hook && e.Kind != KindLaunchAction && e.Kind != KindTerminateAction:
		return malformed("", fmt.Sprintf("a lifecycle hook notification carries lifecycle actions only, not %s", e.Kind), nil)
	case hook && (e.Region != "" || len(e.Resources) > 0):
		return malformed("", "a lifecycle hook notification names no region and no resources; leave them empty", nil)
	case hook && e.ID == "":
		return malformed("RequestId", "missing or empty; want the notification's request id", nil)
	case hook && !isAccount(e.Account):
		return malformed("AccountId", fmt.Sprintf("got %q, want a 12-digit account id", e.Account), nil)
	case hook && e.Time.IsZero():
		return malformed("Time", "missing or zero; want an RFC 3339 timestamp", nil)
	case e.DetailType != e.Kind.DetailType():
		return malformed("detail-type", fmt.Sprintf("got %q, want %q for kind %s", e.DetailType, e.Kind.DetailType(), e.Kind), nil)
	case e.Source != e.Kind.Source():
		return malformed("source", fmt.Sprintf("got %q, want %q for kind %s", e.Source, e.Kind.Source(), e.Kind), nil)
	case e.ID == "":
		return malformed("id", "missing or empty; want the event id", nil)
	case !isAccount(e.Account):
		return malformed("account", fmt.Sprintf("got %q, want a 12-digit account id", e.Account), nil)
	case !hook && !IsRegion(e.Region):
		return malformed("region", fmt.Sprintf("got %q, want a region name like us-east-1", e.Region), nil)
	case e.Time.IsZero():
		return malformed("time", "missing or zero; want an RFC 3339 timestamp", nil)
	}
	// Encoding needs a four-digit year once the time is in UTC.
	if y := e.Time.UTC().Year(); y < 1 || y > 9999 {
		return malformed("time", fmt.Sprintf("year %d in UTC is outside 0001–9999", y), nil)
	}
	return nil
}

func required(path, value string) error {
	if value == "" {
		return malformed(path, "missing or empty", nil)
	}
	return nil
}

func validID(path, id, prefix string) error {
	if id == "" {
		return malformed(path, fmt.Sprintf("missing or empty; want a %s id", prefix), nil)
	}
	if err := checkID(id, prefix); err != nil {
		return malformed(path, "", err)
	}
	return nil
}

func validateLifecycle(k Kind, l *LifecycleAction, path string) error {
	want := TransitionLaunching
	if k == KindTerminateAction {
		want = TransitionTerminating
	}
	for _, err := range []error{
		required(path+"LifecycleActionToken", l.Token),
		required(path+"AutoScalingGroupName", l.Group),
		required(path+"LifecycleHookName", l.Hook),
		validID(path+"EC2InstanceId", l.InstanceID, "i-"),
	} {
		if err != nil {
			return err
		}
	}
	if l.Transition != want {
		return malformed(path+"LifecycleTransition", fmt.Sprintf("got %q, want %q", l.Transition, want), nil)
	}
	return nil
}

func validateLaunch(k Kind, l *LaunchResult) error {
	if err := required("detail.AutoScalingGroupName", l.Group); err != nil {
		return err
	}
	if err := required("detail.ActivityId", l.ActivityID); err != nil {
		return err
	}
	// A launch that failed may never have had an instance.
	if l.InstanceID != "" || k == KindLaunchSuccessful {
		if err := validID("detail.EC2InstanceId", l.InstanceID, "i-"); err != nil {
			return err
		}
	}
	if l.Successful != (k == KindLaunchSuccessful) {
		return malformed("detail-type", fmt.Sprintf("Successful is %t for kind %s", l.Successful, k), nil)
	}
	return nil
}

func validateSnapshot(e *Event, s *SnapshotResult) error {
	if err := validID("detail.snapshot_id", s.SnapshotID, "snap-"); err != nil {
		return err
	}
	if err := validID("detail.source", s.VolumeID, "vol-"); err != nil {
		return err
	}
	if s.Region != e.Region {
		return malformed("region", fmt.Sprintf("snapshot region %q differs from the event's %q; the event's is the truth", s.Region, e.Region), nil)
	}
	return nil
}

func validateVolume(e *Event, v *VolumeResult) error {
	if err := validID("resources", v.VolumeID, "vol-"); err != nil {
		return err
	}
	id, err := volumeFromResources(e.Resources)
	if err != nil {
		return err
	}
	if id != v.VolumeID {
		return malformed("resources", fmt.Sprintf("names volume %s, but VolumeID is %s", id, v.VolumeID), nil)
	}
	if v.Region != e.Region {
		return malformed("region", fmt.Sprintf("volume region %q differs from the event's %q; the event's is the truth", v.Region, e.Region), nil)
	}
	return nil
}

func validateInstanceState(s *InstanceStateChange) error {
	if err := validID("detail.instance-id", s.InstanceID, "i-"); err != nil {
		return err
	}
	if !slices.Contains(instanceStates, s.State) {
		return malformed("detail.state", fmt.Sprintf("got %q, want one of %q", s.State, instanceStates), nil)
	}
	return nil
}
