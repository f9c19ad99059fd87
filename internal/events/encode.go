package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
)

// EncodeOptions choose among the shapes AWS is known to emit where there is
// more than one, so the simulator can replay each of them.
type EncodeOptions struct {
	// SnapshotIDs is the shape of detail.snapshot_id and detail.source in EBS
	// Snapshot Notification events. The zero value, ShapeRegionInAccount, is
	// the shape of AWS's published example.
	SnapshotIDs IDShape
	// ARNRegion, when set, is the region written inside those ARNs instead of
	// the event's, reproducing events whose ARNs disagree with their region.
	ARNRegion string
}

// Encode writes e as the EventBridge event AWS would send (which is also the
// SQS message body an EventBridge rule delivers), with default options. See
// EncodeWith.
func Encode(e *Event) ([]byte, error) {
	return EncodeWith(e, EncodeOptions{})
}

// EncodeWith writes e as the EventBridge event AWS would send, using the
// exact AWS field names; or, for Delivery DeliveryHookNotification, as the
// message a lifecycle hook sends its notification target (o does not apply). It accepts exactly the events Decode can return and
// refuses any other with a *MalformedError, so Decode(EncodeWith(e, o))
// gives back e for every e and o it accepts (Time comes back in UTC).
//
// Resources are written as they are: for KindVolume they must hold the
// volume's ARN (see FormatEC2ARN), since that is where EBS names the volume.
// Fields an Event does not keep are filled in plausibly: StartTime and
// EndTime are the event's time, and version is "0".
func EncodeWith(e *Event, o EncodeOptions) ([]byte, error) {
	if e == nil {
		return nil, malformed("", "nil event", nil)
	}
	if err := validate(e); err != nil {
		return nil, fmt.Errorf("encoding %s event %q: %w", e.Kind, e.ID, err)
	}
	if e.Delivery == DeliveryHookNotification {
		return encodeHookNotification(e)
	}
	if o.ARNRegion != "" && !IsRegion(o.ARNRegion) {
		return nil, fmt.Errorf("encoding %s event %q: ARNRegion %q is not a region name like us-east-1", e.Kind, e.ID, o.ARNRegion)
	}
	if o.SnapshotIDs < ShapeRegionInAccount || o.SnapshotIDs > ShapePlainID {
		return nil, fmt.Errorf("encoding %s event %q: unknown SnapshotIDs shape %d", e.Kind, e.ID, int(o.SnapshotIDs))
	}
	t := e.Time.UTC()
	stamp := t.Format(time.RFC3339)
	var detail any
	switch {
	case e.Lifecycle != nil:
		l := e.Lifecycle
		detail = lifecycleDetail{
			LifecycleActionToken: l.Token,
			AutoScalingGroupName: l.Group,
			LifecycleHookName:    l.Hook,
			EC2InstanceID:        l.InstanceID,
			LifecycleTransition:  l.Transition,
			NotificationMetadata: l.Metadata,
			Origin:               l.Origin,
			Destination:          l.Destination,
		}
	case e.Launch != nil:
		l := e.Launch
		d := launchDetail{
			StatusCode:           l.StatusCode,
			AutoScalingGroupName: l.Group,
			ActivityID:           l.ActivityID,
			StatusMessage:        l.StatusMessage,
			EC2InstanceID:        l.InstanceID,
			Cause:                l.Cause,
			StartTime:            stamp,
			EndTime:              stamp,
		}
		if l.Successful {
			d.Description = "Launching a new EC2 instance: " + l.InstanceID
		}
		if l.AvailabilityZone != "" {
			d.Details = &launchDetails{AvailabilityZone: l.AvailabilityZone}
		}
		detail = d
	case e.Snapshot != nil:
		s := e.Snapshot
		region := e.Region
		if o.ARNRegion != "" {
			region = o.ARNRegion
		}
		d := ebsDetail{
			Event:      "createSnapshot",
			Result:     "failed",
			Cause:      s.Cause,
			RequestID:  s.RequestID,
			SnapshotID: FormatEC2ARN(o.SnapshotIDs, region, e.Account, "snapshot", s.SnapshotID),
			Source:     FormatEC2ARN(o.SnapshotIDs, region, e.Account, "volume", s.VolumeID),
			StartTime:  stamp,
			EndTime:    stamp,
		}
		if s.Succeeded {
			d.Result = "succeeded"
		}
		detail = d
	case e.Volume != nil:
		v := e.Volume
		d := ebsDetail{Event: "createVolume", Result: "failed", Cause: v.Cause, RequestID: v.RequestID}
		if v.Available {
			d.Result = "available"
		}
		detail = d
	case e.InstanceState != nil:
		detail = stateDetail{InstanceID: e.InstanceState.InstanceID, State: e.InstanceState.State}
	}
	raw, err := marshal(detail)
	if err != nil {
		return nil, fmt.Errorf("encoding %s event %q detail: %w", e.Kind, e.ID, err)
	}
	resources := e.Resources
	if resources == nil {
		resources = []string{} // AWS always sends the list
	}
	out, err := marshal(lambdaevents.CloudWatchEvent{
		Version:    "0",
		ID:         e.ID,
		DetailType: e.DetailType,
		Source:     e.Source,
		AccountID:  e.Account,
		Time:       t,
		Region:     e.Region,
		Resources:  resources,
		Detail:     raw,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding %s event %q: %w", e.Kind, e.ID, err)
	}
	return out, nil
}

// marshal is json.Marshal without HTML escaping, which AWS does not do.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
