package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	lambdaevents "github.com/aws/aws-lambda-go/events"
)

// Decode parses one message handover consumes: a bare EventBridge event
// (JSON), or the message a lifecycle hook sends its notification target,
// which gives the same Event as the EventBridge lifecycle action with
// Delivery set to DeliveryHookNotification (see notification.go). A hook's
// test notification is ignored (IsTestNotification).
//
// A detail-type handover does not consume, or an EBS event for an operation
// it does not consume (copySnapshot, attachVolume…), returns an
// *IgnoredError (see IsIgnored) whose Reason says why. Anything else that
// cannot be used returns a *MalformedError naming the field by its JSON path,
// as in "detail.LifecycleActionToken". On error the *Event is nil.
func Decode(data []byte) (*Event, error) {
	if looksLikeHookNotification(data) {
		return decodeHookNotification(data)
	}
	// aws-lambda-go's CloudWatchEvent is exactly the EventBridge envelope;
	// the detail is decoded here, per detail-type.
	var env lambdaevents.CloudWatchEvent
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("decoding EventBridge event: %w", envelopeError(err))
	}
	if env.DetailType == "" {
		return nil, fmt.Errorf("decoding EventBridge event %q: %w", env.ID,
			malformed("detail-type", "missing or empty; want the EventBridge detail-type", nil))
	}
	kind, ok := kindOf(env.DetailType)
	if !ok {
		return nil, &IgnoredError{ID: env.ID, DetailType: env.DetailType, Reason: "handover does not consume this detail-type"}
	}
	if env.Source != kind.Source() {
		return nil, &IgnoredError{ID: env.ID, DetailType: env.DetailType,
			Reason: fmt.Sprintf("source is %q, but only %s emits this detail-type", env.Source, kind.Source())}
	}
	ev := &Event{
		ID:         env.ID,
		DetailType: env.DetailType,
		Source:     env.Source,
		Region:     env.Region,
		Account:    env.AccountID,
		Time:       env.Time.UTC(),
		Resources:  env.Resources,
		Kind:       kind,
	}
	if len(ev.Resources) == 0 {
		ev.Resources = nil
	}
	var err error
	switch kind {
	case KindLaunchAction, KindTerminateAction:
		err = decodeLifecycle(ev, env.Detail)
	case KindLaunchSuccessful, KindLaunchUnsuccessful:
		err = decodeLaunch(ev, env.Detail)
	case KindSnapshot:
		err = decodeSnapshot(ev, env.Detail)
	case KindVolume:
		err = decodeVolume(ev, env.Detail)
	case KindInstanceState:
		err = decodeInstanceState(ev, env.Detail)
	}
	if err == nil {
		err = validate(ev)
	}
	if err != nil {
		var ie *IgnoredError
		if errors.As(err, &ie) {
			return nil, err
		}
		return nil, fmt.Errorf("decoding %q event %q: %w", ev.DetailType, ev.ID, err)
	}
	return ev, nil
}

// DecodeSQSBody decodes an SQS message body carrying an EventBridge event:
// the event JSON itself, as an EventBridge rule delivers it to a queue, or
// that JSON encoded once more as a JSON string, as some pipelines forward it;
// or carrying a lifecycle hook's notification, as Auto Scaling sends it to a
// hook whose NotificationTargetARN is the queue (see Decode).
func DecodeSQSBody(body string) (*Event, error) {
	s := strings.TrimSpace(body)
	if s == "" {
		return nil, malformed("", "SQS message body is empty; want an EventBridge event as JSON", nil)
	}
	if s[0] == '"' {
		var inner string
		if err := json.Unmarshal([]byte(s), &inner); err != nil {
			return nil, malformed("", "SQS message body starts like a JSON string but is not one", err)
		}
		s = inner
	}
	return Decode([]byte(s))
}

// envelopeError names the field json.Unmarshal failed on.
func envelopeError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return malformed("", fmt.Sprintf("not valid JSON (at byte %d)", se.Offset), err)
	case errors.As(err, &te):
		return typeError("", te)
	default:
		// time.Time is the only field of CloudWatchEvent with its own
		// UnmarshalJSON, so any other error is about "time".
		return malformed("time", "not an RFC 3339 timestamp in a JSON string", err)
	}
}

// typeError turns a json type mismatch into a MalformedError under prefix.
func typeError(prefix string, te *json.UnmarshalTypeError) *MalformedError {
	path := prefix
	if te.Field != "" {
		if path != "" {
			path += "."
		}
		path += te.Field
	}
	return malformed(path, fmt.Sprintf("got JSON %s, want %s", te.Value, jsonKind(te.Type)), nil)
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "true or false"
	default:
		return t.String()
	}
}

// decodeDetail unmarshals the detail object into v, naming any mismatched
// field by its path under "detail".
func decodeDetail(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return malformed("detail", "missing; want an object", nil)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return typeError("detail", te)
		}
		return malformed("detail", "not a valid JSON object", err)
	}
	return nil
}

// Detail shapes, with the field names AWS uses. Fields handover reads are
// typed, so a wrong type is reported; fields it only writes for realism are
// `any`, so whatever AWS puts there never fails a decode.
type (
	lifecycleDetail struct {
		LifecycleActionToken string `json:"LifecycleActionToken"`
		AutoScalingGroupName string `json:"AutoScalingGroupName"`
		LifecycleHookName    string `json:"LifecycleHookName"`
		EC2InstanceID        string `json:"EC2InstanceId"`
		LifecycleTransition  string `json:"LifecycleTransition"`
		NotificationMetadata string `json:"NotificationMetadata,omitempty"`
		Origin               string `json:"Origin,omitempty"`
		Destination          string `json:"Destination,omitempty"`
	}
	launchDetail struct {
		StatusCode           string         `json:"StatusCode"`
		Description          any            `json:"Description,omitempty"`
		AutoScalingGroupName string         `json:"AutoScalingGroupName"`
		ActivityID           string         `json:"ActivityId"`
		Details              *launchDetails `json:"Details,omitempty"`
		RequestID            any            `json:"RequestId,omitempty"`
		StatusMessage        string         `json:"StatusMessage"`
		EndTime              any            `json:"EndTime,omitempty"`
		EC2InstanceID        string         `json:"EC2InstanceId"`
		StartTime            any            `json:"StartTime,omitempty"`
		Cause                string         `json:"Cause"`
	}
	launchDetails struct {
		AvailabilityZone string `json:"Availability Zone"`
		SubnetID         any    `json:"Subnet ID,omitempty"`
	}
	// ebsDetail serves both EBS Snapshot and EBS Volume notifications.
	ebsDetail struct {
		Event      string `json:"event"`
		Result     string `json:"result"`
		Cause      string `json:"cause"`
		RequestID  string `json:"request-id"`
		SnapshotID string `json:"snapshot_id,omitempty"`
		Source     string `json:"source,omitempty"`
		StartTime  any    `json:"startTime,omitempty"`
		EndTime    any    `json:"endTime,omitempty"`
	}
	stateDetail struct {
		InstanceID string `json:"instance-id"`
		State      string `json:"state"`
	}
)

func decodeLifecycle(ev *Event, raw json.RawMessage) error {
	var d lifecycleDetail
	if err := decodeDetail(raw, &d); err != nil {
		return err
	}
	ev.Lifecycle = &LifecycleAction{
		Group:       d.AutoScalingGroupName,
		Hook:        d.LifecycleHookName,
		Token:       d.LifecycleActionToken,
		InstanceID:  d.EC2InstanceID,
		Transition:  d.LifecycleTransition,
		Origin:      d.Origin,
		Destination: d.Destination,
		Metadata:    d.NotificationMetadata,
	}
	return nil
}

func decodeLaunch(ev *Event, raw json.RawMessage) error {
	var d launchDetail
	if err := decodeDetail(raw, &d); err != nil {
		return err
	}
	r := &LaunchResult{
		Group:         d.AutoScalingGroupName,
		InstanceID:    d.EC2InstanceID,
		ActivityID:    d.ActivityID,
		StatusCode:    d.StatusCode,
		StatusMessage: d.StatusMessage,
		Cause:         d.Cause,
		Successful:    ev.Kind == KindLaunchSuccessful,
	}
	if d.Details != nil {
		r.AvailabilityZone = d.Details.AvailabilityZone
	}
	ev.Launch = r
	return nil
}

// ebsOperation reads detail.event alone, so that an operation handover does
// not consume is ignored even when the rest of its detail has another shape
// (shareSnapshot's source is an account number).
func ebsOperation(ev *Event, raw json.RawMessage, want string) error {
	var op struct {
		Event string `json:"event"`
	}
	if err := decodeDetail(raw, &op); err != nil {
		return err
	}
	if op.Event == "" {
		return malformed("detail.event", fmt.Sprintf("missing or empty; want %q", want), nil)
	}
	if op.Event != want {
		return &IgnoredError{ID: ev.ID, DetailType: ev.DetailType,
			Reason: fmt.Sprintf("EBS operation %q is not %s, the only one handover consumes here", op.Event, want)}
	}
	return nil
}

func decodeSnapshot(ev *Event, raw json.RawMessage) error {
	if err := ebsOperation(ev, raw, "createSnapshot"); err != nil {
		return err
	}
	var d ebsDetail
	if err := decodeDetail(raw, &d); err != nil {
		return err
	}
	r := &SnapshotResult{Cause: d.Cause, RequestID: d.RequestID, Region: ev.Region}
	switch d.Result {
	case "succeeded":
		r.Succeeded = true
	case "failed":
	default:
		return malformed("detail.result", fmt.Sprintf(`got %q, want "succeeded" or "failed"`, d.Result), nil)
	}
	var err error
	if r.SnapshotID, err = idField("detail.snapshot_id", d.SnapshotID, "snap-"); err != nil {
		return err
	}
	if r.VolumeID, err = idField("detail.source", d.Source, "vol-"); err != nil {
		return err
	}
	ev.Snapshot = r
	return nil
}

func idField(path, s, prefix string) (string, error) {
	if s == "" {
		return "", malformed(path, fmt.Sprintf("missing or empty; want a %s id or an ARN naming one", prefix), nil)
	}
	id, err := ResourceID(s, prefix)
	if err != nil {
		return "", malformed(path, "", err)
	}
	return id, nil
}

func decodeVolume(ev *Event, raw json.RawMessage) error {
	if err := ebsOperation(ev, raw, "createVolume"); err != nil {
		return err
	}
	var d ebsDetail
	if err := decodeDetail(raw, &d); err != nil {
		return err
	}
	r := &VolumeResult{Cause: d.Cause, RequestID: d.RequestID, Region: ev.Region}
	switch d.Result {
	case "available":
		r.Available = true
	case "failed":
	default:
		return malformed("detail.result", fmt.Sprintf(`got %q, want "available" or "failed"`, d.Result), nil)
	}
	var err error
	if r.VolumeID, err = volumeFromResources(ev.Resources); err != nil {
		return err
	}
	ev.Volume = r
	return nil
}

// volumeFromResources finds the one volume an EBS Volume Notification is
// about: EBS names it only in resources, next to unrelated ARNs (a KMS key).
func volumeFromResources(resources []string) (string, error) {
	var found string
	for i, r := range resources {
		if !strings.Contains(r, ":volume/") {
			continue
		}
		id, err := ResourceID(r, "vol-")
		if err != nil {
			return "", malformed(fmt.Sprintf("resources[%d]", i), "looks like a volume ARN but is not one", err)
		}
		if found != "" && id != found {
			return "", malformed("resources", fmt.Sprintf("names volumes %s and %s; want exactly one", found, id), nil)
		}
		found = id
	}
	if found == "" {
		return "", malformed("resources", "has no EC2 volume ARN; want one like arn:aws:ec2:REGION:ACCOUNT:volume/vol-…", nil)
	}
	return found, nil
}

func decodeInstanceState(ev *Event, raw json.RawMessage) error {
	var d stateDetail
	if err := decodeDetail(raw, &d); err != nil {
		return err
	}
	ev.InstanceState = &InstanceStateChange{InstanceID: d.InstanceID, State: d.State}
	return nil
}
