package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readNotification(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "notifications", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// editNotification returns the named notification after edit changed it as
// a generic JSON value.
func editNotification(t testing.TB, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readNotification(t, name), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hookEvent(t testing.TB, id, at string, k Kind, l LifecycleAction) *Event {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		t.Fatal(err)
	}
	return &Event{ID: id, DetailType: k.DetailType(), Source: SourceAutoScaling, Account: "123456789012",
		Time: tm.UTC(), Kind: k, Delivery: DeliveryHookNotification, Lifecycle: &l}
}

// TestDecodeHookNotificationFiles: the messages Auto Scaling puts on a
// hook's queue decode to the lifecycle action the EventBridge event gives,
// and Encode writes them back byte for byte as AWS does.
func TestDecodeHookNotificationFiles(t *testing.T) {
	tests := []struct {
		file string
		want *Event
	}{
		// The Auto Scaling user guide's example, in the JSON an SQS
		// target receives.
		{"launch-action.json", hookEvent(t, "18b2ec17-3e9b-4c15-8024-ff2e8ce8786a", "2021-01-19T00:36:26.533Z", KindLaunchAction, LifecycleAction{
			Group: "my-asg", Hook: "my-hook", Token: "71514b9d-6a40-4b26-8523-05e7ee35fa40", InstanceID: "i-0598c7d356eba48d7",
			Transition: TransitionLaunching, Origin: "EC2", Destination: "AutoScalingGroup", Metadata: "hook message metadata",
		})},
		{"launch-action-handover.json", hookEvent(t, "f6e613f0-5d34-4aef-040d-19b78b000e23", "2022-12-10T12:52:08.814Z", KindLaunchAction, LifecycleAction{
			Group: "tenant-42-db", Hook: "handover-launch", Token: "c1069c83-a3d9-4a6a-9a08-89a361c171e2", InstanceID: "i-0faa113d8c63b3f60",
			Transition: TransitionLaunching, Origin: "EC2", Destination: "AutoScalingGroup", Metadata: `{"database":"tenant-42"}`,
		})},
		{"terminate-action.json", hookEvent(t, "a7b2d01b-69d3-4940-910a-3a2ee0cbe1f9", "2021-02-26T06:40:06.663Z", KindTerminateAction, LifecycleAction{
			Group: "tenant-42-db", Hook: "handover-terminate", Token: "dce60e5a-ffe3-4a47-bd57-56effbaefd60", InstanceID: "i-016a0e69d8b5ae49d",
			Transition: TransitionTerminating, Origin: "AutoScalingGroup", Destination: "EC2", Metadata: `{"database":"tenant-42"}`,
		})},
		// The shape of messages sent before Origin and Destination existed.
		{"terminate-action-no-origin.json", hookEvent(t, "5d858daa-5692-135e-98ca-ef04118c2ab5", "2018-05-16T20:13:40.414Z", KindTerminateAction, LifecycleAction{
			Group: "tenant-42-db", Hook: "handover-terminate", Token: "602063c7-4a06-4a67-b8cf-87ccc33bdc86", InstanceID: "i-0194708ef7e24dcc7",
			Transition: TransitionTerminating,
		})},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := readNotification(t, tt.file)
			for _, body := range []string{string(raw), string(raw) + "\n", quote(string(raw))} {
				got, err := DecodeSQSBody(body)
				if err != nil {
					t.Fatalf("DecodeSQSBody(%s): %v", body, err)
				}
				if !sameEvent(got, tt.want) {
					t.Fatalf("got %s\nwant %s", dump(got), dump(tt.want))
				}
			}
			got, err := Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			checkRequired(t, got)
			enc, err := Encode(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, raw) {
				t.Fatalf("Encode wrote\n%s\nwant AWS's\n%s", enc, raw)
			}
		})
	}
}

// TestHookNotificationGivesTheEventBridgeAction: what the controller reads
// of a lifecycle action (the Kind, the hook reference, the metadata, the
// time) is the same whichever way the action arrived.
func TestHookNotificationGivesTheEventBridgeAction(t *testing.T) {
	eb, err := Decode(readEvent(t, "launch-lifecycle-action.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The same action as Auto Scaling's direct message would carry it.
	direct := *eb.Lifecycle
	n := hookEvent(t, "0d4c2b1a-9e8f-4a7b-8c6d-5e4f3a2b1c0d", eb.Time.Format(time.RFC3339Nano), eb.Kind, direct)
	n.Account = eb.Account
	body, err := Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSQSBody(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != eb.Kind || got.DetailType != eb.DetailType || got.Source != eb.Source || !got.Time.Equal(eb.Time) || *got.Lifecycle != *eb.Lifecycle {
		t.Fatalf("hook notification gave %s\nEventBridge gave %s", dump(got), dump(eb))
	}
}

func TestDecodeTestNotification(t *testing.T) {
	raw := readNotification(t, "test-notification.json")
	for _, body := range []string{string(raw), quote(string(raw))} {
		ev, err := DecodeSQSBody(body)
		if ev != nil || !IsTestNotification(err) || !IsIgnored(err) || IsMalformed(err) {
			t.Fatalf("DecodeSQSBody = %v, %v; want an ignored test notification", ev, err)
		}
		var ie *IgnoredError
		errors.As(err, &ie)
		if ie.ID != "18b2ec17-3e9b-4c15-8024-ff2e8ce8786a" || ie.DetailType != TestNotification {
			t.Fatalf("got %+v", *ie)
		}
	}
	// EncodeHookTest writes AWS's message exactly.
	at, _ := time.Parse(time.RFC3339Nano, "2021-01-19T00:35:52.359Z")
	b, err := EncodeHookTest(HookTest{Account: "123456789012", RequestID: "18b2ec17-3e9b-4c15-8024-ff2e8ce8786a",
		GroupARN: "arn:aws:autoscaling:us-west-2:123456789012:autoScalingGroup:042cba90-ad2f-431c-9b4d-6d9055bcc9fb:autoScalingGroupName/my-asg",
		Group:    "my-asg", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, raw) {
		t.Fatalf("EncodeHookTest wrote\n%s\nwant AWS's\n%s", b, raw)
	}
	if _, err := EncodeHookTest(HookTest{Account: "1", RequestID: "r", Group: "g", Time: at}); err == nil {
		t.Fatal("EncodeHookTest accepted a bad account")
	}
	if IsTestNotification(&IgnoredError{DetailType: "EBS Snapshot Notification"}) || IsTestNotification(errors.New(TestNotification)) {
		t.Fatal("IsTestNotification is true for something else")
	}
}

func TestDecodeHookNotificationErrors(t *testing.T) {
	const launch = "launch-action-handover.json"
	tests := []struct {
		name    string
		data    []byte
		ignored bool
		want    string
	}{
		{"token missing", editNotification(t, launch, func(m map[string]any) { delete(m, "LifecycleActionToken") }), false, "LifecycleActionToken: missing"},
		{"group missing", editNotification(t, launch, func(m map[string]any) { delete(m, "AutoScalingGroupName") }), false, "AutoScalingGroupName: missing"},
		{"hook missing", editNotification(t, launch, func(m map[string]any) { delete(m, "LifecycleHookName") }), false, "LifecycleHookName: missing"},
		// Seen in consumers' test fixtures: an empty instance id.
		{"instance id empty", editNotification(t, launch, func(m map[string]any) { m["EC2InstanceId"] = "" }), false, "EC2InstanceId: missing"},
		{"instance id not an id", editNotification(t, launch, func(m map[string]any) { m["EC2InstanceId"] = "vol-0a" }), false, "EC2InstanceId:"},
		{"account of 11 digits", editNotification(t, launch, func(m map[string]any) { m["AccountId"] = "12345689012" }), false, "AccountId: got"},
		{"request id missing", editNotification(t, launch, func(m map[string]any) { delete(m, "RequestId") }), false, "RequestId: missing"},
		{"time missing", editNotification(t, launch, func(m map[string]any) { delete(m, "Time") }), false, "Time: missing"},
		{"time not a time", editNotification(t, launch, func(m map[string]any) { m["Time"] = "yesterday" }), false, "Time: not an RFC 3339"},
		{"transition missing", editNotification(t, launch, func(m map[string]any) { delete(m, "LifecycleTransition") }), false, "LifecycleTransition: missing"},
		{"token of the wrong type", editNotification(t, launch, func(m map[string]any) { m["LifecycleActionToken"] = 7 }), false, "LifecycleActionToken: got JSON number"},
		{"a transition handover does not consume", editNotification(t, launch, func(m map[string]any) {
			m["LifecycleTransition"] = "autoscaling:EC2_INSTANCE_WARMED"
		}), true, "transition handover does not consume"},
		// What a notification configuration (not a hook) sends through SNS.
		{"an instance-launch notification", editNotification(t, "test-notification.json", func(m map[string]any) {
			m["Event"] = "autoscaling:EC2_INSTANCE_LAUNCH"
		}), true, "does not consume"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeSQSBody(string(tt.data))
			if ev != nil || err == nil {
				t.Fatalf("DecodeSQSBody = %v, %v; want an error", ev, err)
			}
			if IsIgnored(err) != tt.ignored || IsMalformed(err) == tt.ignored {
				t.Fatalf("error %v: ignored %t, malformed %t; want ignored %t", err, IsIgnored(err), IsMalformed(err), tt.ignored)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestEncodeHookNotificationRejects(t *testing.T) {
	base := func() *Event {
		e, err := Decode(readNotification(t, "launch-action-handover.json"))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	tests := []struct {
		name string
		edit func(e *Event)
		want string
	}{
		{"a region", func(e *Event) { e.Region = "us-east-1" }, "names no region"},
		{"resources", func(e *Event) {
			e.Resources = []string{"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/g"}
		}, "no resources"},
		{"not a lifecycle action", func(e *Event) {
			e.Kind, e.DetailType, e.Lifecycle = KindLaunchSuccessful, KindLaunchSuccessful.DetailType(), nil
			e.Launch = &LaunchResult{Group: "g", ActivityID: "a", InstanceID: "i-01", Successful: true}
		}, "lifecycle actions only"},
		{"no request id", func(e *Event) { e.ID = "" }, "RequestId: missing"},
		{"token empty", func(e *Event) { e.Lifecycle.Token = "" }, "encoding launch-action event"},
		{"unknown delivery", func(e *Event) { e.Delivery = 7 }, "delivery 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base()
			tt.edit(e)
			if b, err := Encode(e); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Encode = %s, %v; want an error containing %q", b, err, tt.want)
			}
		})
	}
}

// FuzzDecodeHookNotification: whatever a hook's queue holds, decoding never
// panics, answers an event or an error that is exactly one of ignored and
// malformed, and an event survives Encode (in the hook's own shape) and a
// second decode unchanged.
func FuzzDecodeHookNotification(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "notifications", "*.json"))
	for _, p := range names {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Service":"AWS Auto Scaling"}`))
	f.Add([]byte(`{"Service":"AWS Auto Scaling","LifecycleTransition":"autoscaling:EC2_INSTANCE_LAUNCHING","Time":"2021-01-19T00:36:26.123456789+02:00"}`))
	f.Add([]byte(`{"Service":"AWS Auto Scaling","detail-type":"EC2 Instance-launch Lifecycle Action"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data)
		checkDecoded(t, ev, err)
		if looksLikeHookNotification(data) {
			ev2, err2 := decodeHookNotification(data)
			if (err == nil) != (err2 == nil) || !sameEvent(ev, ev2) {
				t.Fatalf("Decode and decodeHookNotification disagree: %v, %v", err, err2)
			}
			if ev != nil && ev.Delivery != DeliveryHookNotification {
				t.Fatalf("hook notification decoded with delivery %d", ev.Delivery)
			}
		}
		if err != nil {
			return
		}
		enc, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeSQSBody(string(enc))
		if err != nil || !sameEvent(got, ev) {
			t.Fatalf("DecodeSQSBody(%s) = %s, %v; want %s", enc, dump(got), err, dump(ev))
		}
	})
}
