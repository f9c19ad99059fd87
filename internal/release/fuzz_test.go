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
	for _, s := range []string{`{"channel":"web"}`, `{"database":"orders","channel":"web"}`, `{"channel":"w b"}`, `{"channel":"web","count":2}`, `orders`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		md, err := handover.ParseMetadata(s)
		if err != nil {
			return
		}
		if md.Channel != "" {
			if verr := ledger.ValidReleaseName("channel", md.Channel); verr != nil {
				t.Fatalf("ParseMetadata(%q) accepted channel %q: %v", s, md.Channel, verr)
			}
		}
		if md.ReleaseOnly() && (md.Database != "" || len(md.Pool()) > 0) {
			t.Fatalf("ParseMetadata(%q) = %+v: release-only with a database", s, md)
		}
		if !md.ReleaseOnly() && md.Database == "" && len(md.Databases) == 0 {
			t.Fatalf("ParseMetadata(%q) = %+v: neither a database nor a channel", s, md)
		}
	})
}
