package events

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventFiles lists testdata/events, for tests and fuzz seeds that want all
// of them.
func eventFiles(t testing.TB) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no event files: %v", err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// mutate returns the named event file after edit has changed it as a generic
// JSON value, so error tests start from a real event and change one thing.
func mutate(t testing.TB, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readEvent(t, name), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func detail(m map[string]any) map[string]any { return m["detail"].(map[string]any) }

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UTC()
}

// sameEvent compares two events, times by instant.
func sameEvent(a, b *Event) bool {
	if a == nil || b == nil {
		return a == b
	}
	if !a.Time.Equal(b.Time) {
		return false
	}
	ac, bc := *a, *b
	ac.Time, bc.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(&ac, &bc)
}

func dump(e *Event) string {
	b, _ := json.MarshalIndent(e, "", "  ")
	return string(b)
}

// checkRequired asserts, independently of validate, that a decoded event has
// what its consumers rely on.
func checkRequired(t testing.TB, e *Event) {
	t.Helper()
	if e.ID == "" || e.DetailType == "" || e.Source == "" || e.Account == "" || e.Time.IsZero() {
		t.Fatalf("envelope field empty: %s", dump(e))
	}
	switch e.Delivery {
	case DeliveryEventBridge:
		if e.Region == "" {
			t.Fatalf("EventBridge event without a region: %s", dump(e))
		}
	case DeliveryHookNotification:
		// The message names neither; a consumer must not find them set.
		if e.Region != "" || e.Resources != nil || (e.Kind != KindLaunchAction && e.Kind != KindTerminateAction) {
			t.Fatalf("hook notification with a region, resources or kind %s: %s", e.Kind, dump(e))
		}
	default:
		t.Fatalf("delivery %d", e.Delivery)
	}
	if e.Time.Location() != time.UTC {
		t.Fatalf("time not in UTC: %v", e.Time)
	}
	if e.Kind.DetailType() != e.DetailType || e.Kind.Source() != e.Source {
		t.Fatalf("kind %s does not match %q/%q", e.Kind, e.DetailType, e.Source)
	}
	set := 0
	switch e.Kind {
	case KindLaunchAction, KindTerminateAction:
		l := e.Lifecycle
		if l == nil || l.Token == "" || l.Group == "" || l.Hook == "" || !strings.HasPrefix(l.InstanceID, "i-") || l.Transition == "" {
			t.Fatalf("lifecycle incomplete: %s", dump(e))
		}
	case KindLaunchSuccessful, KindLaunchUnsuccessful:
		l := e.Launch
		if l == nil || l.Group == "" || l.ActivityID == "" || l.Successful != (e.Kind == KindLaunchSuccessful) {
			t.Fatalf("launch incomplete: %s", dump(e))
		}
		if l.Successful && !strings.HasPrefix(l.InstanceID, "i-") {
			t.Fatalf("successful launch without instance: %s", dump(e))
		}
	case KindSnapshot:
		s := e.Snapshot
		if s == nil || !strings.HasPrefix(s.SnapshotID, "snap-") || !strings.HasPrefix(s.VolumeID, "vol-") || s.Region != e.Region {
			t.Fatalf("snapshot incomplete: %s", dump(e))
		}
	case KindVolume:
		v := e.Volume
		if v == nil || !strings.HasPrefix(v.VolumeID, "vol-") || v.Region != e.Region {
			t.Fatalf("volume incomplete: %s", dump(e))
		}
	case KindInstanceState:
		s := e.InstanceState
		if s == nil || !strings.HasPrefix(s.InstanceID, "i-") || s.State == "" {
			t.Fatalf("state change incomplete: %s", dump(e))
		}
	default:
		t.Fatalf("decoded kind %s", e.Kind)
	}
	for _, p := range []bool{e.Lifecycle != nil, e.Launch != nil, e.Snapshot != nil, e.Volume != nil, e.InstanceState != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		t.Fatalf("%d detail structs set: %s", set, dump(e))
	}
}

// checkRoundTrip asserts that e, which Decode returned, survives Encode and
// every EncodeWith shape.
func checkRoundTrip(t testing.TB, e *Event) {
	t.Helper()
	opts := []EncodeOptions{{}}
	if e.Kind == KindSnapshot {
		for _, s := range []IDShape{ShapeRegionInAccount, ShapeEmptyAccount, ShapeFull, ShapePlainID} {
			opts = append(opts, EncodeOptions{SnapshotIDs: s}, EncodeOptions{SnapshotIDs: s, ARNRegion: "ap-southeast-2"})
		}
	}
	for _, o := range opts {
		b, err := EncodeWith(e, o)
		if err != nil {
			t.Fatalf("EncodeWith(%+v) of a decoded event: %v\n%s", o, err, dump(e))
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(EncodeWith(%+v)): %v\n%s", o, err, b)
		}
		if !sameEvent(got, e) {
			t.Fatalf("round trip with %+v changed the event\nbefore: %s\nafter:  %s\nwire: %s", o, dump(e), dump(got), b)
		}
	}
}

// quote encodes s as a JSON string, as a pipeline that double-encodes does.
func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
