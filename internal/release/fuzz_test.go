package release

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/handover-dev/handover/internal/handover"
	"github.com/handover-dev/handover/internal/ledger"
)

// FuzzReadMarker: whatever a release volume's marker holds, ReadMarker
// returns an error or a marker naming a channel and a release; it never
// panics.
func FuzzReadMarker(f *testing.F) {
	f.Add([]byte(`{"channel":"web","name":"v1","manifest_hash":"blake3:00","published_at":"2026-12-07T13:45:29Z"}`))
	f.Add([]byte(`{"channel":"","name":"v1"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, MarkerFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadMarker(dir)
		if err == nil && (m.Channel == "" || m.Name == "") {
			t.Fatalf("ReadMarker(%q) = %+v without an error", b, m)
		}
	})
}

// FuzzChannelMetadata: a hook's metadata that parses names a valid
// channel or none, and a release-only group names no database.
func FuzzChannelMetadata(f *testing.F) {
	for _, s := range []string{`{"channel":"web"}`, `{"database":"orders","channel":"web"}`, `{"channel":"w b"}`, `{"channel":"web","count":2}`, `orders`, ``, `{}`} {
		f.Add(s, "")
		f.Add(s, "web")
	}
	f.Add(`{"database":"orders"}`, "w b")
	f.Fuzz(func(t *testing.T, s, tag string) {
		md, err := handover.ParseLaunchMetadata(s, tag)
		if err != nil {
			return
		}
		if md.Channel != "" {
			if verr := ledger.ValidReleaseName("channel", md.Channel); verr != nil {
				t.Fatalf("ParseLaunchMetadata(%q, %q) accepted channel %q: %v", s, tag, md.Channel, verr)
			}
		}
		if tag != "" && md.Channel == "" {
			t.Fatalf("ParseLaunchMetadata(%q, %q) = %+v: the group's tag gave no channel", s, tag, md)
		}
		if plain, perr := handover.ParseMetadata(s); perr == nil && plain.Channel != "" && md.Channel != plain.Channel {
			t.Fatalf("ParseLaunchMetadata(%q, %q) channel %q: the metadata's %q must win over the tag", s, tag, md.Channel, plain.Channel)
		}
		if md.ReleaseOnly() && (md.Database != "" || len(md.Pool()) > 0) {
			t.Fatalf("ParseLaunchMetadata(%q, %q) = %+v: release-only with a database", s, tag, md)
		}
		if !md.ReleaseOnly() && md.Database == "" && len(md.Databases) == 0 {
			t.Fatalf("ParseLaunchMetadata(%q, %q) = %+v: neither a database nor a channel", s, tag, md)
		}
	})
}
