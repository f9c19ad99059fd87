package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A lifecycle hook whose NotificationTargetARN names an SQS queue (or an
// SNS topic) gets, besides the EventBridge event, a message of its own from
// Auto Scaling for every lifecycle action, and a test message when the hook
// is put. The message is flat JSON, not an EventBridge envelope, and it
// carries no region and no resources:
//
//	{"Origin":"EC2","LifecycleHookName":"my-hook","Destination":"AutoScalingGroup",
//	 "AccountId":"123456789012","RequestId":"…","LifecycleTransition":"autoscaling:EC2_INSTANCE_LAUNCHING",
//	 "AutoScalingGroupName":"my-asg","Service":"AWS Auto Scaling","Time":"2022-12-10T12:52:08.814Z",
//	 "EC2InstanceId":"i-…","NotificationMetadata":"…","LifecycleActionToken":"…"}
//
// NotificationMetadata is there only when the hook has some; Origin and
// Destination only in messages sent since 2022 or so. The test message has
// "Event":"autoscaling:TEST_NOTIFICATION" and AutoScalingGroupARN instead of
// the lifecycle fields. (Field order as AWS writes it; examples in
// testdata/notifications, from the Auto Scaling user guide's "Notification
// message example for Amazon SNS and Amazon SQS" and messages seen on
// queues.)

// Delivery says which wire shape an Event came in, and so which one Encode
// writes it back in.
type Delivery int

const (
	// DeliveryEventBridge is an EventBridge event, bare or as the body an
	// EventBridge rule puts on a queue. The zero value.
	DeliveryEventBridge Delivery = iota
	// DeliveryHookNotification is the message Auto Scaling sends a
	// lifecycle hook's own notification target. Only lifecycle actions come
	// this way, and the message names no region and no resources, so those
	// fields stay empty.
	DeliveryHookNotification
)

// ServiceAutoScaling is the "Service" of every hook notification.
const ServiceAutoScaling = "AWS Auto Scaling"

// TestNotification is the "Event" of the message Auto Scaling sends a
// hook's notification target when the hook is put. Decode returns it as an
// *IgnoredError with this DetailType (see IsTestNotification).
const TestNotification = "autoscaling:TEST_NOTIFICATION"

// IsTestNotification reports whether err is Decode's answer to a hook's
// test notification: nothing to do, and no fault of anyone's. A consumer
// acknowledges (deletes) the message; it deserves a debug line at most.
func IsTestNotification(err error) bool {
	var ie *IgnoredError
	return errors.As(err, &ie) && ie.DetailType == TestNotification
}

// hookNotification is both shapes of the message, in AWS's field order;
// Event and AutoScalingGroupARN are set only in test notifications.
type hookNotification struct {
	Origin               string `json:"Origin,omitempty"`
	LifecycleHookName    string `json:"LifecycleHookName,omitempty"`
	Destination          string `json:"Destination,omitempty"`
	AccountID            string `json:"AccountId"`
	RequestID            string `json:"RequestId"`
	AutoScalingGroupARN  string `json:"AutoScalingGroupARN,omitempty"`
	LifecycleTransition  string `json:"LifecycleTransition,omitempty"`
	AutoScalingGroupName string `json:"AutoScalingGroupName"`
	Service              string `json:"Service"`
	Event                string `json:"Event,omitempty"`
	Time                 string `json:"Time"`
	EC2InstanceID        string `json:"EC2InstanceId,omitempty"`
	NotificationMetadata string `json:"NotificationMetadata,omitempty"`
	LifecycleActionToken string `json:"LifecycleActionToken,omitempty"`
}

// looksLikeHookNotification tells the flat hook message from an EventBridge
// envelope: it has a Service of Auto Scaling's and no detail-type. Anything
// it cannot read is left to the EventBridge decoder, whose errors name the
// envelope's fields.
func looksLikeHookNotification(data []byte) bool {
	var probe struct {
		DetailType json.RawMessage `json:"detail-type"`
		Service    string          `json:"Service"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return false
	}
	return probe.DetailType == nil && probe.Service == ServiceAutoScaling
}

// decodeHookNotification decodes the message a lifecycle hook sends its
// notification target into the Event the matching EventBridge lifecycle
// action gives, with Delivery set, no region and no resources. Its ID is the
// message's RequestId.
func decodeHookNotification(data []byte) (*Event, error) {
	var n hookNotification
	if err := json.Unmarshal(data, &n); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("decoding lifecycle hook notification: %w", typeError("", te))
		}
		return nil, fmt.Errorf("decoding lifecycle hook notification: %w", envelopeError(err))
	}
	if n.Event != "" {
		reason := "Auto Scaling notification of a kind handover does not consume (only lifecycle actions)"
		if n.Event == TestNotification {
			reason = "test message Auto Scaling sends when a lifecycle hook with a notification target is put; nothing to do"
		}
		return nil, &IgnoredError{ID: n.RequestID, DetailType: n.Event, Reason: reason}
	}
	var kind Kind
	switch n.LifecycleTransition {
	case TransitionLaunching:
		kind = KindLaunchAction
	case TransitionTerminating:
		kind = KindTerminateAction
	case "":
		return nil, fmt.Errorf("decoding lifecycle hook notification %q: %w", n.RequestID,
			malformed("LifecycleTransition", fmt.Sprintf("missing or empty; want %q or %q", TransitionLaunching, TransitionTerminating), nil))
	default:
		return nil, &IgnoredError{ID: n.RequestID, DetailType: n.LifecycleTransition,
			Reason: "lifecycle hook notification of a transition handover does not consume"}
	}
	ev := &Event{
		ID:         n.RequestID,
		DetailType: kind.DetailType(),
		Source:     kind.Source(),
		Account:    n.AccountID,
		Kind:       kind,
		Delivery:   DeliveryHookNotification,
		Lifecycle: &LifecycleAction{
			Group:       n.AutoScalingGroupName,
			Hook:        n.LifecycleHookName,
			Token:       n.LifecycleActionToken,
			InstanceID:  n.EC2InstanceID,
			Transition:  n.LifecycleTransition,
			Origin:      n.Origin,
			Destination: n.Destination,
			Metadata:    n.NotificationMetadata,
		},
	}
	if n.Time == "" {
		return nil, fmt.Errorf("decoding lifecycle hook notification %q: %w", n.RequestID, malformed("Time", "missing or empty; want an RFC 3339 timestamp", nil))
	}
	t, err := time.Parse(time.RFC3339Nano, n.Time)
	if err != nil {
		return nil, fmt.Errorf("decoding lifecycle hook notification %q: %w", n.RequestID, malformed("Time", "not an RFC 3339 timestamp", err))
	}
	ev.Time = t.UTC()
	if err := validate(ev); err != nil {
		return nil, fmt.Errorf("decoding lifecycle hook notification %q: %w", n.RequestID, err)
	}
	return ev, nil
}

// hookStamp writes a time as AWS does in hook notifications, with
// milliseconds, or with every digit the time has when it has more (so that
// what Decode read comes back unchanged).
func hookStamp(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()%int(time.Millisecond) == 0 {
		return t.Format("2006-01-02T15:04:05.000Z07:00")
	}
	return t.Format(time.RFC3339Nano)
}

// encodeHookNotification writes a validated lifecycle action as the message
// its hook's notification target receives.
func encodeHookNotification(e *Event) ([]byte, error) {
	l := e.Lifecycle
	out, err := marshal(hookNotification{
		Origin:               l.Origin,
		LifecycleHookName:    l.Hook,
		Destination:          l.Destination,
		AccountID:            e.Account,
		RequestID:            e.ID,
		LifecycleTransition:  l.Transition,
		AutoScalingGroupName: l.Group,
		Service:              ServiceAutoScaling,
		Time:                 hookStamp(e.Time),
		EC2InstanceID:        l.InstanceID,
		NotificationMetadata: l.Metadata,
		LifecycleActionToken: l.Token,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding lifecycle hook notification %q: %w", e.ID, err)
	}
	return out, nil
}

// HookTest is the test message Auto Scaling sends a hook's notification
// target when the hook is put.
type HookTest struct {
	Account, RequestID, GroupARN, Group string
	Time                                time.Time
}

// EncodeHookTest writes the test notification as AWS sends it to an SQS
// queue. Decode answers it with an *IgnoredError for which
// IsTestNotification is true.
func EncodeHookTest(h HookTest) ([]byte, error) {
	switch {
	case !isAccount(h.Account):
		return nil, malformed("AccountId", fmt.Sprintf("got %q, want a 12-digit account id", h.Account), nil)
	case h.RequestID == "":
		return nil, malformed("RequestId", "missing or empty", nil)
	case h.Group == "":
		return nil, malformed("AutoScalingGroupName", "missing or empty", nil)
	case h.Time.IsZero():
		return nil, malformed("Time", "missing or zero", nil)
	}
	return marshal(hookNotification{
		AccountID: h.Account, RequestID: h.RequestID, AutoScalingGroupARN: h.GroupARN,
		AutoScalingGroupName: h.Group, Service: ServiceAutoScaling, Event: TestNotification, Time: hookStamp(h.Time),
	})
}
