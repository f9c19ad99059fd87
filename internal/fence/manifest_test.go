package fence

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/handover-dev/handover/internal/manifest"
)

// TestManifestRoute: the client reads what the handler builds, the
// skipped file left out; a change of content changes the hash; a
// service without the route is IsNotImplemented; POST is refused.
func TestManifestRoute(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"seg-000001.log": "abc", "fence.json": `{"epoch":1}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle(PathManifest, ManifestHandler(dir, func(rel string) bool { return rel == "fence.json" }))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var c Client
	m, err := c.Manifest(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != 1 || m.Entries[0].Path != "seg-000001.log" || m.Entries[0].Size != 3 {
		t.Fatalf("manifest %+v", m)
	}
	if err := os.WriteFile(filepath.Join(dir, "seg-000001.log"), []byte("abd"), 0o644); err != nil {
		t.Fatal(err)
	}
	m2, err := c.Manifest(t.Context(), addr)
	if err != nil || m2.Hash() == m.Hash() || len(m.Compare(m2)) != 1 {
		t.Fatalf("after a same-size change: %v, %q", err, m.Compare(m2))
	}

	resp, err := http.Post(srv.URL+PathManifest, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}

	none := httptest.NewServer(http.NotFoundHandler())
	defer none.Close()
	if _, err := c.Manifest(t.Context(), strings.TrimPrefix(none.URL, "http://")); !IsNotImplemented(err) {
		t.Errorf("a service without the route: %v, want IsNotImplemented", err)
	}
}

func manifestBody(t testing.TB, r ManifestResponse) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseManifestRefusesInconsistent: an answer whose hash, counts or
// order disagree with its entries is ErrBadResponse.
func TestParseManifestRefusesInconsistent(t *testing.T) {
	es := []manifest.Entry{{Path: "a", Type: "file", Mode: 0o644, Size: 1, Hash: "x"}, {Path: "b", Type: "file", Mode: 0o644, Size: 2, Hash: "y"}}
	good := ManifestResponse{Hash: manifest.Manifest{Entries: es}.Hash(), Files: 2, Bytes: 3, Entries: es}
	if _, err := ParseManifest(manifestBody(t, good)); err != nil {
		t.Fatalf("a consistent manifest: %v", err)
	}
	for name, r := range map[string]ManifestResponse{
		"hash":     {Hash: "blake3:00", Files: 2, Bytes: 3, Entries: es},
		"files":    {Hash: good.Hash, Files: 1, Bytes: 3, Entries: es},
		"bytes":    {Hash: good.Hash, Files: 2, Bytes: 4, Entries: es},
		"unsorted": {Hash: manifest.Manifest{Entries: []manifest.Entry{es[1], es[0]}}.Hash(), Files: 2, Bytes: 3, Entries: []manifest.Entry{es[1], es[0]}},
		"twice":    {Hash: manifest.Manifest{Entries: []manifest.Entry{es[0], es[0]}}.Hash(), Files: 2, Bytes: 2, Entries: []manifest.Entry{es[0], es[0]}},
	} {
		if _, err := ParseManifest(manifestBody(t, r)); !errors.Is(err, ErrBadResponse) {
			t.Errorf("%s: %v, want ErrBadResponse", name, err)
		}
	}
}

// FuzzParseManifest: whatever a service answers, ParseManifest either
// refuses it or returns entries sorted by path whose hash the answer gave.
func FuzzParseManifest(f *testing.F) {
	es := []manifest.Entry{{Path: "a", Type: "file", Mode: 0o644, Size: 1, Hash: "x"}}
	f.Add(manifestBody(f, ManifestResponse{Hash: manifest.Manifest{Entries: es}.Hash(), Files: 1, Bytes: 1, Entries: es}))
	for _, s := range []string{`{}`, `null`, `{"entries":null,"hash":""}`, `{"entries":[{"path":"a"},{"path":"a"}]}`, "\xff", `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseManifest(body)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("refused without ErrBadResponse: %v", err)
			}
			return
		}
		var r ManifestResponse
		_ = json.Unmarshal(body, &r)
		if m.Hash() != r.Hash {
			t.Fatalf("accepted hash %s for entries hashing %s", r.Hash, m.Hash())
		}
		for i := 1; i < len(m.Entries); i++ {
			if m.Entries[i-1].Path >= m.Entries[i].Path {
				t.Fatalf("accepted unsorted entries %v", m.Entries)
			}
		}
	})
}
