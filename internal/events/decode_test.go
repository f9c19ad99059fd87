package events

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeEventFiles(t *testing.T) {
	tenantASG := "arn:aws:autoscaling:us-west-2:123456789012:autoScalingGroup:2d7b1e5c-8f7a-4a63-9c3e-0b1f6a5d4e21:autoScalingGroupName/tenant-42-db"
	tests := []struct {
		file string
		want *Event
	}{
		{"launch-lifecycle-action.json", &Event{
			ID: "3e3c153a-8339-4e30-8c35-687ebef853fe", DetailType: "EC2 Instance-launch Lifecycle Action",
			Source: "aws.autoscaling", Region: "us-west-2", Account: "123456789012",
			Time: mustTime(t, "2025-03-14T09:26:53Z"), Resources: []string{tenantASG}, Kind: KindLaunchAction,
			Lifecycle: &LifecycleAction{
				Group: "tenant-42-db", Hook: "handover-launch", Token: "b6c1e0f4-7d2a-4f8e-9a1b-3c5d7e9f0a12",
				InstanceID: "i-0a1b2c3d4e5f60718", Transition: TransitionLaunching,
				Origin: "EC2", Destination: "AutoScalingGroup", Metadata: `{"database":"tenant-42"}`,
			},
		}},
		{"launch-lifecycle-action-no-metadata.json", &Event{
			ID: "9f0e8d7c-6b5a-4938-8271-605f4e3d2c1b", DetailType: "EC2 Instance-launch Lifecycle Action",
			Source: "aws.autoscaling", Region: "eu-central-1", Account: "123456789012",
			Time:      mustTime(t, "2025-03-14T09:30:02Z"),
			Resources: []string{"arn:aws:autoscaling:eu-central-1:123456789012:autoScalingGroup:5a6b7c8d-1e2f-4a3b-9c4d-5e6f7a8b9c0d:autoScalingGroupName/orders-db"},
			Kind:      KindLaunchAction,
			Lifecycle: &LifecycleAction{
				Group: "orders-db", Hook: "handover-launch", Token: "71c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e",
				InstanceID: "i-0fedcba9876543210", Transition: TransitionLaunching,
			},
		}},
		{"terminate-lifecycle-action.json", &Event{
			ID: "0c2f7d3a-55e1-4b9c-a8d6-1e2f3a4b5c6d", DetailType: "EC2 Instance-terminate Lifecycle Action",
			Source: "aws.autoscaling", Region: "us-west-2", Account: "123456789012",
			Time: mustTime(t, "2025-03-14T09:41:17Z"), Resources: []string{tenantASG}, Kind: KindTerminateAction,
			Lifecycle: &LifecycleAction{
				Group: "tenant-42-db", Hook: "handover-terminate", Token: "e4d3c2b1-a098-4f7e-8d6c-5b4a39281706",
				InstanceID: "i-09876543210fedcba", Transition: TransitionTerminating, Metadata: `{"database":"tenant-42"}`,
			},
		}},
		{"launch-successful.json", &Event{
			ID: "6a7b8c9d-0e1f-4a2b-b3c4-d5e6f7a8b9c0", DetailType: "EC2 Instance Launch Successful",
			Source: "aws.autoscaling", Region: "us-west-2", Account: "123456789012",
			Time:      mustTime(t, "2025-03-14T09:33:41Z"),
			Resources: []string{tenantASG, "arn:aws:ec2:us-west-2:123456789012:instance/i-0a1b2c3d4e5f60718"},
			Kind:      KindLaunchSuccessful,
			Launch: &LaunchResult{
				Group: "tenant-42-db", InstanceID: "i-0a1b2c3d4e5f60718", ActivityID: "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a10",
				StatusCode: "InProgress", AvailabilityZone: "us-west-2b", Successful: true,
				Cause: "At 2025-03-14T09:26:47Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 1 to 2.",
			},
		}},
		{"launch-unsuccessful.json", &Event{
			ID: "b1c2d3e4-f5a6-4789-9abc-def012345678", DetailType: "EC2 Instance Launch Unsuccessful",
			Source: "aws.autoscaling", Region: "us-west-2", Account: "123456789012",
			Time: mustTime(t, "2025-03-14T10:02:09Z"), Resources: []string{tenantASG}, Kind: KindLaunchUnsuccessful,
			Launch: &LaunchResult{
				Group: "tenant-42-db", ActivityID: "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d", StatusCode: "Failed",
				StatusMessage:    "We currently do not have sufficient m6i.large capacity in the Availability Zone you requested (us-west-2c).",
				Cause:            "At 2025-03-14T10:02:05Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 1 to 2.",
				AvailabilityZone: "us-west-2c",
			},
		}},
		{"snapshot-failed.json", &Event{
			ID: "9a6c4f2d-7b8e-4d0f-9a1b-2c3d4e5f6071", DetailType: "EBS Snapshot Notification",
			Source: "aws.ec2", Region: "us-east-1", Account: "123456789012",
			Time:      mustTime(t, "2025-03-14T09:29:12Z"),
			Resources: []string{"arn:aws:ec2::us-east-1:snapshot/snap-0d4b6f8a0c2e4a6b8"},
			Kind:      KindSnapshot,
			Snapshot: &SnapshotResult{
				SnapshotID: "snap-0d4b6f8a0c2e4a6b8", VolumeID: "vol-04a6c8e0b2d4f6a8c",
				Cause: "Snapshot snap-0d4b6f8a0c2e4a6b8 is in status error", Region: "us-east-1",
			},
		}},
		{"volume-created.json", &Event{
			ID: "d0a8d6b4-1f2c-4b4d-9e5f-607182930415", DetailType: "EBS Volume Notification",
			Source: "aws.ec2", Region: "us-west-2", Account: "123456789012",
			Time:      mustTime(t, "2025-03-14T09:31:04Z"),
			Resources: []string{"arn:aws:ec2:us-west-2:123456789012:volume/vol-0b1c2d3e4f5a6b7c8"},
			Kind:      KindVolume,
			Volume: &VolumeResult{
				VolumeID: "vol-0b1c2d3e4f5a6b7c8", Available: true,
				RequestID: "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f", Region: "us-west-2",
			},
		}},
		{"volume-failed-kms.json", &Event{
			ID: "f2c0f8d6-3b4e-4d6f-9071-829304152637", DetailType: "EBS Volume Notification",
			Source: "aws.ec2", Region: "sa-east-1", Account: "123456789012",
			Time: mustTime(t, "2025-03-14T09:31:04Z"),
			Resources: []string{
				"arn:aws:ec2:sa-east-1:123456789012:volume/vol-0c2d4e6f8a0b2c4d6",
				"arn:aws:kms:sa-east-1:123456789012:key/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
			},
			Kind: KindVolume,
			Volume: &VolumeResult{
				VolumeID:  "vol-0c2d4e6f8a0b2c4d6",
				Cause:     "arn:aws:kms:sa-east-1:123456789012:key/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9 is disabled.",
				RequestID: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b0", Region: "sa-east-1",
			},
		}},
		{"instance-state-pending.json", &Event{
			ID: "7bf73129-1428-4cd3-a780-95db273d1602", DetailType: "EC2 Instance State-change Notification",
			Source: "aws.ec2", Region: "us-west-2", Account: "123456789012",
			Time:          mustTime(t, "2025-03-14T09:26:49Z"),
			Resources:     []string{"arn:aws:ec2:us-west-2:123456789012:instance/i-0a1b2c3d4e5f60718"},
			Kind:          KindInstanceState,
			InstanceState: &InstanceStateChange{InstanceID: "i-0a1b2c3d4e5f60718", State: "pending"},
		}},
		{"instance-state-terminated.json", &Event{
			ID: "25f3cb09-6e71-4092-a3a4-152637485960", DetailType: "EC2 Instance State-change Notification",
			Source: "aws.ec2", Region: "us-west-2", Account: "123456789012",
			Time:          mustTime(t, "2025-03-14T09:44:02Z"),
			Resources:     []string{"arn:aws:ec2:us-west-2:123456789012:instance/i-09876543210fedcba"},
			Kind:          KindInstanceState,
			InstanceState: &InstanceStateChange{InstanceID: "i-09876543210fedcba", State: "terminated"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Decode(readEvent(t, tt.file))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !sameEvent(got, tt.want) {
				t.Fatalf("got  %s\nwant %s", dump(got), dump(tt.want))
			}
			checkRequired(t, got)
		})
	}
}

// Each quirk EBS events are known to carry, from an event file shaped like
// AWS's published examples.
func TestDecodeEBSQuirks(t *testing.T) {
	tests := []struct {
		name, file        string
		region            string
		snapshot, volume  string
		wantKind          Kind
		resourceMentioned string // a region named inside the event's ARNs
	}{
		{"snapshot_id and source as ARNs with the region in the account field",
			"snapshot-region-in-account.json", "us-east-1", "snap-0c3a5e7f9b1d2e4f6", "vol-04a6c8e0b2d4f6a8c", KindSnapshot, "us-east-1"},
		{"ARN region disagrees with the event region; the event wins",
			"snapshot-region-disagrees.json", "us-east-1", "snap-01234567", "vol-01234567", KindSnapshot, "us-west-2"},
		{"snapshot ARNs with an empty account field",
			"snapshot-empty-account.json", "us-east-1", "snap-0c3a5e7f9b1d2e4f6", "vol-04a6c8e0b2d4f6a8c", KindSnapshot, "us-east-1"},
		{"snapshot ARNs in the standard shape",
			"snapshot-full-arn.json", "eu-west-1", "snap-0aa11bb22cc33dd44", "vol-0ee55ff66aa77bb88", KindSnapshot, "eu-west-1"},
		{"snapshot_id and source as plain ids",
			"snapshot-plain-ids.json", "us-east-1", "snap-0c3a5e7f9b1d2e4f6", "vol-04a6c8e0b2d4f6a8c", KindSnapshot, "us-east-1"},
		{"volume ARN with an empty account field",
			"volume-created-empty-account.json", "us-west-2", "", "vol-0b1c2d3e4f5a6b7c8", KindVolume, "us-west-2"},
		{"volume ARN in the aws-cn partition",
			"volume-created-cn.json", "cn-north-1", "", "vol-0d3e5f7a9b1c3d5e7", KindVolume, "cn-north-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := readEvent(t, tt.file)
			if !strings.Contains(string(raw), tt.resourceMentioned) {
				t.Fatalf("%s does not mention %s", tt.file, tt.resourceMentioned)
			}
			got, err := Decode(raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkRequired(t, got)
			if got.Kind != tt.wantKind || got.Region != tt.region {
				t.Fatalf("kind %s region %s, want %s %s", got.Kind, got.Region, tt.wantKind, tt.region)
			}
			switch got.Kind {
			case KindSnapshot:
				s := got.Snapshot
				if s.SnapshotID != tt.snapshot || s.VolumeID != tt.volume || s.Region != tt.region || !s.Succeeded {
					t.Fatalf("got %+v", *s)
				}
			case KindVolume:
				v := got.Volume
				if v.VolumeID != tt.volume || v.Region != tt.region || !v.Available {
					t.Fatalf("got %+v", *v)
				}
			}
		})
	}
}

func TestDecodeIgnored(t *testing.T) {
	tests := []struct {
		name       string
		data       []byte
		wantReason string
	}{
		{"instance refresh", readEvent(t, "instance-refresh-started.json"), "does not consume this detail-type"},
		{"multi-volume snapshots", readEvent(t, "multi-volume-snapshots.json"), "does not consume this detail-type"},
		{"copySnapshot", readEvent(t, "snapshot-copy.json"), `"copySnapshot" is not createSnapshot`},
		{"shareSnapshot with a numeric source", readEvent(t, "snapshot-share.json"), `"shareSnapshot" is not createSnapshot`},
		{"attachVolume", readEvent(t, "volume-attach-failed.json"), `"attachVolume" is not createVolume`},
		{"known detail-type from a custom source", mutate(t, "launch-lifecycle-action.json", func(m map[string]any) {
			m["source"] = "com.example.tests"
		}), `source is "com.example.tests", but only aws.autoscaling emits`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Decode(tt.data)
			if ev != nil || !IsIgnored(err) || IsMalformed(err) {
				t.Fatalf("Decode = %v, %v; want nil and an IgnoredError", ev, err)
			}
			var ie *IgnoredError
			errors.As(err, &ie)
			if !strings.Contains(ie.Reason, tt.wantReason) || ie.DetailType == "" || ie.ID == "" {
				t.Fatalf("got %+v, want reason containing %q", *ie, tt.wantReason)
			}
		})
	}
}

// The errors a user (or the local cloud) would hit, each naming the field.
func TestDecodeErrors(t *testing.T) {
	del := func(file string, keys ...string) []byte {
		return mutate(t, file, func(m map[string]any) {
			for _, k := range keys {
				if d, ok := strings.CutPrefix(k, "detail."); ok {
					delete(detail(m), d)
				} else {
					delete(m, k)
				}
			}
		})
	}
	set := func(file, key string, v any) []byte {
		return mutate(t, file, func(m map[string]any) {
			if d, ok := strings.CutPrefix(key, "detail."); ok {
				detail(m)[d] = v
			} else {
				m[key] = v
			}
		})
	}
	const (
		launch = "launch-lifecycle-action.json"
		term   = "terminate-lifecycle-action.json"
		ok     = "launch-successful.json"
		fail   = "launch-unsuccessful.json"
		snap   = "snapshot-region-in-account.json"
		vol    = "volume-created.json"
		state  = "instance-state-pending.json"
	)
	tests := []struct {
		name string
		data []byte
		want []string // substrings of the error
	}{
		{"empty input", []byte(""), []string{"event:", "not valid JSON"}},
		{"truncated JSON", readEvent(t, launch)[:200], []string{"not valid JSON"}},
		{"trailing garbage", append(readEvent(t, launch), []byte("}")...), []string{"not valid JSON"}},
		{"array instead of object", []byte(`[1,2]`), []string{"event: got JSON array, want an object"}},
		{"string instead of object", []byte(`"x"`), []string{"event: got JSON string"}},
		{"JSON null", []byte(`null`), []string{"detail-type: missing"}},
		{"missing detail-type", del(launch, "detail-type"), []string{"detail-type: missing"}},
		{"detail-type a number", set(launch, "detail-type", 7), []string{"detail-type: got JSON number, want a string"}},
		{"id missing", del(launch, "id"), []string{"id: missing"}},
		{"id a number", set(launch, "id", 12), []string{"id: got JSON number"}},
		{"account missing", del(launch, "account"), []string{"account:", "12-digit"}},
		{"account not 12 digits", set(launch, "account", "0123456789ab"), []string{"account:", `"0123456789ab"`}},
		{"region missing", del(launch, "region"), []string{"region:", "region name"}},
		{"region not a region", set(launch, "region", "mars"), []string{"region:", `"mars"`}},
		{"time missing", del(launch, "time"), []string{"time: missing"}},
		{"time not RFC 3339", set(launch, "time", "14/03/2025 09:26"), []string{"time: not an RFC 3339 timestamp"}},
		{"time a number", set(launch, "time", 1741944413), []string{"time: not an RFC 3339 timestamp"}},
		{"time past year 9999 in UTC", set(launch, "time", "9999-12-31T23:59:59-05:00"), []string{"time: year 10000"}},
		{"resources a string", set(launch, "resources", "arn:aws:autoscaling"), []string{"resources: got JSON string, want an array"}},
		{"resources holding a number", set(launch, "resources", []any{1}), []string{"resources", "got JSON number, want a string"}},
		{"detail missing", del(launch, "detail"), []string{"detail: missing"}},
		{"detail null", set(launch, "detail", nil), []string{"detail: missing"}},
		{"detail a string", set(launch, "detail", "{}"), []string{"detail: got JSON string, want an object"}},
		{"detail an array", set(snap, "detail", []any{}), []string{"detail: got JSON array, want an object"}},

		{"lifecycle token missing", del(launch, "detail.LifecycleActionToken"), []string{"detail.LifecycleActionToken: missing"}},
		{"lifecycle token a number", set(launch, "detail.LifecycleActionToken", 5), []string{"detail.LifecycleActionToken: got JSON number, want a string"}},
		{"lifecycle group missing", del(term, "detail.AutoScalingGroupName"), []string{"detail.AutoScalingGroupName: missing"}},
		{"lifecycle hook missing", del(launch, "detail.LifecycleHookName"), []string{"detail.LifecycleHookName: missing"}},
		{"lifecycle instance missing", del(launch, "detail.EC2InstanceId"), []string{"detail.EC2InstanceId: missing"}},
		{"lifecycle instance not an id", set(launch, "detail.EC2InstanceId", "vol-0a1b"), []string{"detail.EC2InstanceId:", `"vol-0a1b" is not a valid i- id`}},
		{"lifecycle transition missing", del(launch, "detail.LifecycleTransition"), []string{"detail.LifecycleTransition:", `want "autoscaling:EC2_INSTANCE_LAUNCHING"`}},
		{"lifecycle transition of the other hook", set(term, "detail.LifecycleTransition", TransitionLaunching), []string{"detail.LifecycleTransition:", `want "autoscaling:EC2_INSTANCE_TERMINATING"`}},
		{"lifecycle metadata an object", set(launch, "detail.NotificationMetadata", map[string]any{"database": "x"}), []string{"detail.NotificationMetadata: got JSON object, want a string"}},

		{"launch group missing", del(ok, "detail.AutoScalingGroupName"), []string{"detail.AutoScalingGroupName: missing"}},
		{"launch activity missing", del(fail, "detail.ActivityId"), []string{"detail.ActivityId: missing"}},
		{"successful launch without instance", set(ok, "detail.EC2InstanceId", ""), []string{"detail.EC2InstanceId: missing"}},
		{"failed launch with a bad instance id", set(fail, "detail.EC2InstanceId", "i-"), []string{"detail.EC2InstanceId:", "not a valid i- id"}},
		{"launch Details a string", set(ok, "detail.Details", "us-west-2b"), []string{"detail.Details: got JSON string, want an object"}},
		{"launch zone a number", set(ok, "detail.Details", map[string]any{"Availability Zone": 2}), []string{"detail.Details.Availability Zone: got JSON number"}},

		{"EBS event missing", del(snap, "detail.event"), []string{"detail.event: missing", `want "createSnapshot"`}},
		{"EBS event a number", set(vol, "detail.event", 1), []string{"detail.event: got JSON number"}},
		{"snapshot result unknown", set(snap, "detail.result", "completed"), []string{"detail.result:", `want "succeeded" or "failed"`}},
		{"snapshot result missing", del(snap, "detail.result"), []string{"detail.result:", `got ""`}},
		{"snapshot_id missing", del(snap, "detail.snapshot_id"), []string{"detail.snapshot_id: missing"}},
		{"snapshot_id a number", set(snap, "detail.snapshot_id", 7), []string{"detail.snapshot_id: got JSON number"}},
		{"snapshot_id names a volume", set(snap, "detail.snapshot_id", "arn:aws:ec2::us-east-1:volume/vol-0a1b"), []string{"detail.snapshot_id:", `type "volume" in service "ec2"; want type "snapshot"`}},
		{"snapshot_id a bad ARN", set(snap, "detail.snapshot_id", "arn:aws:ec2:us-east-1:acct:snapshot/snap-0a1b"), []string{"detail.snapshot_id:", `account "acct"`}},
		{"snapshot_id with region in account and in region", set(snap, "detail.snapshot_id", "arn:aws:ec2:us-east-1:us-east-1:snapshot/snap-0a1b"), []string{"detail.snapshot_id:", "account field holds region"}},
		{"source missing", del(snap, "detail.source"), []string{"detail.source: missing"}},
		{"source a snapshot", set(snap, "detail.source", "snap-0a1b"), []string{"detail.source:", `"snap-0a1b" is not a valid vol- id`}},

		{"volume result unknown", set(vol, "detail.result", "deleted"), []string{"detail.result:", `want "available" or "failed"`}},
		{"volume without resources", del(vol, "resources"), []string{"resources: has no EC2 volume ARN"}},
		{"volume resources without a volume", set(vol, "resources", []any{"arn:aws:kms:us-west-2:123456789012:key/abc"}), []string{"resources: has no EC2 volume ARN"}},
		{"volume ARN malformed", set(vol, "resources", []any{"arn:aws:ec2:us-west-2:12345:volume/vol-0a1b"}), []string{"resources[0]: looks like a volume ARN", `account "12345"`}},
		{"two volumes", set(vol, "resources", []any{"arn:aws:ec2:us-west-2::volume/vol-0a1b", "arn:aws:ec2:us-west-2::volume/vol-0c2d"}), []string{"resources: names volumes vol-0a1b and vol-0c2d"}},

		{"state instance missing", del(state, "detail.instance-id"), []string{"detail.instance-id: missing"}},
		{"state missing", del(state, "detail.state"), []string{"detail.state:", `got ""`, "pending"}},
		{"state unknown", set(state, "detail.state", "rebooting"), []string{"detail.state:", `"rebooting"`}},
		{"state a bool", set(state, "detail.state", true), []string{"detail.state: got JSON bool, want a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Decode(tt.data)
			if err == nil {
				t.Fatalf("Decode succeeded: %s", dump(ev))
			}
			if ev != nil || !IsMalformed(err) || IsIgnored(err) {
				t.Fatalf("Decode = %v, %v (%T); want nil and a MalformedError", ev, err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeSQSBody(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", "sqs", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	launch, err := Decode(readEvent(t, "launch-lifecycle-action.json"))
	if err != nil {
		t.Fatal(err)
	}
	volume, err := Decode(readEvent(t, "volume-created.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		body    string
		want    *Event
		wantErr string
	}{
		{"bare event as EventBridge delivers it", string(readEvent(t, "launch-lifecycle-action.json")), launch, ""},
		{"bare event with a trailing newline", read("raw-with-newline.txt"), volume, ""},
		{"event double-encoded as a JSON string", read("double-encoded.txt"), launch, ""},
		{"empty body", "  \n", nil, "SQS message body is empty"},
		{"unterminated JSON string", `"{\"version\":`, nil, "starts like a JSON string but is not one"},
		{"string holding no event", `"hello"`, nil, "not valid JSON"},
		{"triple-encoded", `"\"{}\""`, nil, "event: got JSON string"},
		{"double-encoded with a missing field", `"{\"detail-type\":\"EC2 Instance State-change Notification\",\"source\":\"aws.ec2\",\"detail\":{}}"`, nil, "id: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSQSBody(tt.body)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Fatalf("DecodeSQSBody = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameEvent(got, tt.want) {
				t.Fatalf("got %s\nwant %s", dump(got), dump(tt.want))
			}
		})
	}
	t.Run("ignored inside a double-encoded body", func(t *testing.T) {
		_, err := DecodeSQSBody(quote(string(readEvent(t, "snapshot-copy.json"))))
		if !IsIgnored(err) {
			t.Fatalf("got %v, want an IgnoredError", err)
		}
	})
}

func TestIsIgnoredSeesWrapped(t *testing.T) {
	err := fmt.Errorf("handling message 1: %w", &IgnoredError{DetailType: "x", Reason: "y"})
	if !IsIgnored(err) || IsMalformed(err) {
		t.Fatal("IsIgnored misses a wrapped IgnoredError")
	}
	if IsIgnored(errors.New("other")) || IsIgnored(nil) {
		t.Fatal("IsIgnored is true for another error")
	}
}

func TestKindString(t *testing.T) {
	for k := KindUnknown; k <= KindInstanceState+1; k++ {
		if k.String() == "" {
			t.Errorf("Kind(%d) has no name", int(k))
		}
		if k > KindUnknown && k <= KindInstanceState {
			got, ok := kindOf(k.DetailType())
			if !ok || got != k || k.Source() == "" {
				t.Errorf("kind %s does not map back from its detail-type", k)
			}
		}
	}
	if Kind(-1).String() != "unknown" || Kind(99).DetailType() != "" || Kind(99).Source() != "" {
		t.Error("out-of-range kinds must be unknown")
	}
}
