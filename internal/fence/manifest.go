package fence

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/handover-dev/handover/internal/manifest"
)

// PathManifest is the route a service answers with the content manifest
// of its database's data directory (GET): what an environment's verify
// compares between the source at the quiesce point and its clone. It is
// optional: a service that does not serve it answers 404, and
// IsNotImplemented(err) is then true.
const PathManifest = "/admin/manifest"

// maxManifestBody bounds a manifest answer: some hundred bytes an entry,
// so tens of thousands of files.
const maxManifestBody = 16 << 20

// ManifestResponse is the body of a 200 answer to GET /admin/manifest.
// Hash, Files and Bytes are the manifest's own (manifest.Manifest.Hash,
// Files): a client checks them against Entries.
type ManifestResponse struct {
	Hash    string           `json:"hash"`
	Files   int64            `json:"files"`
	Bytes   int64            `json:"bytes"`
	Entries []manifest.Entry `json:"entries"`
}

// ManifestHandler serves GET /admin/manifest with the manifest of the tree
// under dir, skip leaving out what changes with fencing and is not the
// database's data (the service's persisted fence state, its temporary
// files). It holds off no write: the manifest of a directory being written
// is of no one moment, so it is compared where nothing writes — a source
// fenced for its snapshot, a clone before it takes traffic. Mount it next
// to Handler; wrap it in RequireToken as the fence routes are.
func ManifestHandler(dir string, skip func(rel string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathManifest {
			writeJSON(w, http.StatusNotFound, ErrorResponse{Error: "no such endpoint: " + r.URL.Path})
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "method " + r.Method + " not allowed: use GET"})
			return
		}
		m, err := manifest.Build(dir, skip)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: "building the manifest: " + err.Error()})
			return
		}
		n, b := m.Files()
		writeJSON(w, http.StatusOK, ManifestResponse{Hash: m.Hash(), Files: n, Bytes: b, Entries: m.Entries})
	})
}

// Manifest asks the service at addr for the content manifest of its data
// directory. Safe to repeat; it changes nothing. A service that does not
// serve the route fails with an error for which IsNotImplemented is true.
func (c *Client) Manifest(ctx context.Context, addr string) (manifest.Manifest, error) {
	hostport, err := c.hostPort(addr)
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("reading the manifest of %q: %w", addr, err)
	}
	what := "reading the manifest of " + hostport
	code, header, body, err := c.doLimit(ctx, http.MethodGet, hostport, PathManifest, nil, maxManifestBody)
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("%s: %w", what, err)
	}
	if code != http.StatusOK {
		return manifest.Manifest{}, fmt.Errorf("%s: %w", what, newStatusError(code, header, body))
	}
	m, err := ParseManifest(body)
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("%s: %w", what, err)
	}
	return m, nil
}

// ParseManifest reads a 200 answer to GET /admin/manifest, insisting that
// its hash and counts are those of its entries and that the entries are
// sorted by path, each once: a manifest that disagrees with itself would
// make a verify pass or fail for the wrong reason.
func ParseManifest(body []byte) (manifest.Manifest, error) {
	if len(body) > maxManifestBody {
		return manifest.Manifest{}, fmt.Errorf("%w: a manifest of more than %d bytes", ErrBadResponse, maxManifestBody)
	}
	var r ManifestResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return manifest.Manifest{}, fmt.Errorf("%w: answered 200 with %q: %v", ErrBadResponse, printable(string(body)), err)
	}
	m := manifest.Manifest{Entries: r.Entries}
	for i := 1; i < len(m.Entries); i++ {
		if m.Entries[i-1].Path >= m.Entries[i].Path {
			return manifest.Manifest{}, fmt.Errorf("%w: the manifest's entries are not sorted by path, each once (%q before %q)", ErrBadResponse, printable(m.Entries[i-1].Path), printable(m.Entries[i].Path))
		}
	}
	n, b := m.Files()
	if h := m.Hash(); h != r.Hash || n != r.Files || b != r.Bytes {
		return manifest.Manifest{}, fmt.Errorf("%w: the manifest says hash %s, %d files, %d bytes; its entries make %s, %d, %d", ErrBadResponse, printable(r.Hash), r.Files, r.Bytes, h, n, b)
	}
	return m, nil
}
