package events

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/encoded golden files")

func TestEncodeRoundTripsEventFiles(t *testing.T) {
	for _, name := range eventFiles(t) {
		t.Run(name, func(t *testing.T) {
			ev, err := Decode(readEvent(t, name))
			if IsIgnored(err) {
				t.Skip("ignored event")
			}
			if err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, ev)
		})
	}
}

// simulated returns one event of each kind, built the way the simulator
// builds them: from a clock that is not in UTC and has nanoseconds.
func simulated(t testing.TB) map[string]*Event {
	t.Helper()
	at := time.Date(2025, 3, 14, 10, 26, 53, 123456789, time.FixedZone("CET", 3600))
	env := func(k Kind, resources ...string) Event {
		return Event{ID: "sim-" + k.String(), DetailType: k.DetailType(), Source: k.Source(),
			Region: "eu-west-1", Account: "000000000000", Time: at, Resources: resources, Kind: k}
	}
	launch := env(KindLaunchAction)
	launch.Lifecycle = &LifecycleAction{Group: "db-tenant-7", Hook: "handover", Token: "tok-1",
		InstanceID: "i-00000000000000001", Transition: TransitionLaunching, Metadata: `{"database":"tenant-7"}`}
	term := env(KindTerminateAction)
	term.Lifecycle = &LifecycleAction{Group: "db-tenant-7", Hook: "handover-terminate", Token: "tok-2",
		InstanceID: "i-00000000000000002", Transition: TransitionTerminating}
	ok := env(KindLaunchSuccessful)
	ok.Launch = &LaunchResult{Group: "db-tenant-7", InstanceID: "i-00000000000000001", ActivityID: "act-1",
		StatusCode: "InProgress", AvailabilityZone: "eu-west-1a", Successful: true}
	fail := env(KindLaunchUnsuccessful)
	fail.Launch = &LaunchResult{Group: "db-tenant-7", ActivityID: "act-2", StatusCode: "Failed",
		StatusMessage: "zone eu-west-1c is down", Cause: "<scale-out & retry>"}
	snap := env(KindSnapshot)
	snap.Snapshot = &SnapshotResult{SnapshotID: "snap-00000000000000001", VolumeID: "vol-00000000000000001",
		Succeeded: true, Region: "eu-west-1"}
	vol := env(KindVolume, FormatEC2ARN(ShapeFull, "eu-west-1", "000000000000", "volume", "vol-00000000000000002"))
	vol.Volume = &VolumeResult{VolumeID: "vol-00000000000000002", Available: true, RequestID: "req-1", Region: "eu-west-1"}
	state := env(KindInstanceState, "arn:aws:ec2:eu-west-1:000000000000:instance/i-00000000000000002")
	state.InstanceState = &InstanceStateChange{InstanceID: "i-00000000000000002", State: "stopped"}
	return map[string]*Event{
		"launch-action": &launch, "terminate-action": &term, "launch-successful": &ok,
		"launch-unsuccessful": &fail, "snapshot": &snap, "volume": &vol, "instance-state": &state,
	}
}

// The wire shape the simulator produces, pinned in golden files (run with
// -update after a deliberate change).
func TestEncodeGolden(t *testing.T) {
	for name, ev := range simulated(t) {
		t.Run(name, func(t *testing.T) {
			b, err := Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, b, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", "encoded", name+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Fatalf("Encode output differs from %s:\n%s", path, pretty.Bytes())
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !sameEvent(got, ev) || got.Time.Location() != time.UTC {
				t.Fatalf("round trip: got %s\nwant %s", dump(got), dump(ev))
			}
			checkRoundTrip(t, got)
		})
	}
}

func TestEncodeSnapshotShapes(t *testing.T) {
	ev := simulated(t)["snapshot"]
	tests := []struct {
		opts           EncodeOptions
		snapID, source string
	}{
		{EncodeOptions{}, "arn:aws:ec2::eu-west-1:snapshot/snap-00000000000000001", "arn:aws:ec2::eu-west-1:volume/vol-00000000000000001"},
		{EncodeOptions{SnapshotIDs: ShapeEmptyAccount}, "arn:aws:ec2:eu-west-1::snapshot/snap-00000000000000001", "arn:aws:ec2:eu-west-1::volume/vol-00000000000000001"},
		{EncodeOptions{SnapshotIDs: ShapeFull}, "arn:aws:ec2:eu-west-1:000000000000:snapshot/snap-00000000000000001", "arn:aws:ec2:eu-west-1:000000000000:volume/vol-00000000000000001"},
		{EncodeOptions{SnapshotIDs: ShapePlainID}, "snap-00000000000000001", "vol-00000000000000001"},
		{EncodeOptions{ARNRegion: "us-west-2"}, "arn:aws:ec2::us-west-2:snapshot/snap-00000000000000001", "arn:aws:ec2::us-west-2:volume/vol-00000000000000001"},
		{EncodeOptions{SnapshotIDs: ShapeEmptyAccount, ARNRegion: "cn-north-1"}, "arn:aws-cn:ec2:cn-north-1::snapshot/snap-00000000000000001", "arn:aws-cn:ec2:cn-north-1::volume/vol-00000000000000001"},
	}
	for _, tt := range tests {
		t.Run(tt.opts.SnapshotIDs.String()+"/"+tt.opts.ARNRegion, func(t *testing.T) {
			b, err := EncodeWith(ev, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var wire struct {
				Region string `json:"region"`
				Detail struct {
					SnapshotID string `json:"snapshot_id"`
					Source     string `json:"source"`
				} `json:"detail"`
			}
			if err := json.Unmarshal(b, &wire); err != nil {
				t.Fatal(err)
			}
			if wire.Detail.SnapshotID != tt.snapID || wire.Detail.Source != tt.source || wire.Region != "eu-west-1" {
				t.Fatalf("got %+v", wire)
			}
			got, err := Decode(b)
			if err != nil || !sameEvent(got, ev) {
				t.Fatalf("Decode = %s, %v", dump(got), err)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name string
		kind string // which simulated event to start from
		edit func(e *Event)
		opts EncodeOptions
		want string
	}{
		{"kind unknown", "launch-action", func(e *Event) { e.Kind = KindUnknown }, EncodeOptions{}, "detail-type: event kind 0"},
		{"detail-type of another kind", "launch-action", func(e *Event) { e.DetailType = KindTerminateAction.DetailType() }, EncodeOptions{}, "detail-type: got"},
		{"source empty", "volume", func(e *Event) { e.Source = "" }, EncodeOptions{}, `source: got ""`},
		{"id empty", "snapshot", func(e *Event) { e.ID = "" }, EncodeOptions{}, "id: missing"},
		{"account empty", "snapshot", func(e *Event) { e.Account = "" }, EncodeOptions{}, "account:"},
		{"region empty", "instance-state", func(e *Event) { e.Region = "" }, EncodeOptions{}, "region:"},
		{"time zero", "instance-state", func(e *Event) { e.Time = time.Time{} }, EncodeOptions{}, "time: missing"},
		{"time past 9999", "instance-state", func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, EncodeOptions{}, "time: year 10000"},
		{"no detail", "launch-action", func(e *Event) { e.Lifecycle = nil }, EncodeOptions{}, "detail: 0 detail structs"},
		{"two details", "launch-action", func(e *Event) { e.Launch = &LaunchResult{} }, EncodeOptions{}, "detail: 2 detail structs"},
		{"detail of another kind", "launch-action", func(e *Event) { e.Lifecycle, e.Launch = nil, &LaunchResult{} }, EncodeOptions{}, "does not match kind launch-action"},
		{"token empty", "launch-action", func(e *Event) { e.Lifecycle.Token = "" }, EncodeOptions{}, "detail.LifecycleActionToken: missing"},
		{"transition empty", "terminate-action", func(e *Event) { e.Lifecycle.Transition = "" }, EncodeOptions{}, "detail.LifecycleTransition:"},
		{"successful flag wrong", "launch-successful", func(e *Event) { e.Launch.Successful = false }, EncodeOptions{}, "Successful is false"},
		{"snapshot id not an id", "snapshot", func(e *Event) { e.Snapshot.SnapshotID = "arn:aws:ec2::eu-west-1:snapshot/snap-1" }, EncodeOptions{}, "detail.snapshot_id:"},
		{"snapshot region not the event's", "snapshot", func(e *Event) { e.Snapshot.Region = "us-west-2" }, EncodeOptions{}, "region: snapshot region"},
		{"volume missing from resources", "volume", func(e *Event) { e.Resources = nil }, EncodeOptions{}, "resources: has no EC2 volume ARN"},
		{"volume differs from resources", "volume", func(e *Event) { e.Volume.VolumeID = "vol-9" }, EncodeOptions{}, "resources: names volume vol-00000000000000002, but VolumeID is vol-9"},
		{"state unknown", "instance-state", func(e *Event) { e.InstanceState.State = "hibernated" }, EncodeOptions{}, "detail.state:"},
		{"ARNRegion not a region", "snapshot", func(e *Event) {}, EncodeOptions{ARNRegion: "moon"}, `ARNRegion "moon"`},
		{"unknown shape", "snapshot", func(e *Event) {}, EncodeOptions{SnapshotIDs: 9}, "unknown SnapshotIDs shape 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := simulated(t)[tt.kind]
			tt.edit(ev)
			b, err := EncodeWith(ev, tt.opts)
			if err == nil {
				t.Fatalf("EncodeWith accepted it: %s", b)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := Encode(nil); err == nil {
		t.Fatal("Encode(nil) succeeded")
	}
}
