package snapstore

import (
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 1}).Read(b)
	return b
}

// node is one thing in a test tree. Directories are created implicitly for
// files; a "dir" node sets a directory's mode and mtime.
type node struct {
	path  string
	kind  string // "dir", "file", "link"
	data  []byte
	link  string
	mode  fs.FileMode // permission bits; 0 means the default
	mtime time.Time   // zero means "now"
}

var past = time.Date(2024, 3, 1, 12, 30, 45, 123456789, time.UTC)

func buildTree(t testing.TB, root string, nodes []node) {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		p := filepath.Join(root, filepath.FromSlash(n.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch n.kind {
		case "dir":
			err = os.MkdirAll(p, 0o755)
		case "file":
			err = os.WriteFile(p, n.data, 0o644)
			if err == nil && n.mode != 0 {
				err = os.Chmod(p, n.mode)
			}
			if err == nil && !n.mtime.IsZero() {
				err = os.Chtimes(p, n.mtime, n.mtime)
			}
		case "link":
			err = os.Symlink(n.link, p)
			if err == nil && !n.mtime.IsZero() {
				err = lchtimes(p, n.mtime)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Directory modes and mtimes last, deepest first, once nothing else
	// changes inside them.
	dirs := slices.Clone(nodes)
	slices.SortFunc(dirs, func(a, b node) int { return strings.Compare(b.path, a.path) })
	for _, n := range dirs {
		if n.kind != "dir" {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(n.path))
		if n.mode != 0 {
			if err := os.Chmod(p, n.mode); err != nil {
				t.Fatal(err)
			}
		}
		if !n.mtime.IsZero() {
			if err := os.Chtimes(p, n.mtime, n.mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// treeEntry is what a restore must reproduce of one path.
type treeEntry struct {
	Mode  fs.FileMode
	MTime time.Time
	Size  int64
	Hash  string
	Link  string
}

// listTree describes every path under root ("." included).
func listTree(t testing.TB, root string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		e := treeEntry{Mode: fi.Mode(), MTime: fi.ModTime().UTC()}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := blake3.Sum256(b)
			e.Size, e.Hash = int64(len(b)), hex.EncodeToString(sum[:])
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTrees(t testing.TB, want, got map[string]treeEntry) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: missing", p)
		case g.Mode != w.Mode || !g.MTime.Equal(w.MTime) || g.Size != w.Size || g.Hash != w.Hash || g.Link != w.Link:
			t.Errorf("%s: got %+v, want %+v", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected", p)
		}
	}
}

// patchManifest rewrites a stored manifest in place, to simulate what the
// filesystem cannot be made to do.
func patchManifest(t testing.TB, s *Store, id string, fn func(*Manifest)) {
	t.Helper()
	m, err := s.Manifest(id)
	if err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.manifestPath(id), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func entry(t testing.TB, m *Manifest, path string) *Entry {
	t.Helper()
	for i := range m.Entries {
		if m.Entries[i].Path == path {
			return &m.Entries[i]
		}
	}
	t.Fatalf("snapshot %s has no entry %s", m.ID, path)
	return nil
}

func countChunks(t testing.TB, s *Store) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(s.chunksDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
