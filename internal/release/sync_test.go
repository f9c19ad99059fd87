package release

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// node is one path of a test tree: a file (content), a symlink (link) or,
// with neither, a directory.
type node struct {
	path, content, link string
	mode                fs.FileMode
	dir                 bool
}

func writeTree(t testing.TB, root string, nodes []node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(root, n.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case n.dir:
			err = os.MkdirAll(p, 0o755)
		case n.link != "":
			err = os.Symlink(n.link, p)
		default:
			err = os.WriteFile(p, []byte(n.content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Modes after everything is written, deepest first.
	for i := len(nodes) - 1; i >= 0; i-- {
		if n := nodes[i]; n.mode != 0 {
			if err := os.Chmod(filepath.Join(root, n.path), n.mode); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func manifestOf(t testing.TB, root string) Manifest {
	t.Helper()
	m, err := BuildManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSyncExact(t *testing.T) {
	src := []node{
		{path: "bin/serve", content: "#!/bin/sh\necho v2\n", mode: 0o755},
		{path: "bin/setuid", content: "x", mode: 0o4750},
		{path: "conf/app.conf", content: "port=8080\n"},
		{path: "conf/same-size", content: "BBBB"},
		{path: "current", link: "bin/serve"},
		{path: "dangling", link: "nowhere/at/all"},
		{path: "empty", dir: true, mode: 0o700},
		{path: "ro", dir: true},
		{path: "ro/file", content: "read only", mode: 0o444},
		{path: "was-file", dir: true},
		{path: "was-file/inner", content: "now a dir"},
		{path: "was-dir", content: "now a file"},
		{path: "was-link", content: "now a file"},
	}
	for _, tc := range []struct {
		name string
		dst  []node
	}{
		{"Empty", nil},
		{"Stale", []node{
			{path: "bin/serve", content: "#!/bin/sh\necho v1\n", mode: 0o755},
			{path: "bin/old-tool", content: "gone in v2", mode: 0o755},
			{path: "conf/app.conf", content: "port=8080\n", mode: 0o600}, // same content, other mode
			{path: "conf/same-size", content: "AAAA"},                    // same size, other content
			{path: "current", link: "bin/old-tool"},
			{path: "obsolete/deep/er/file", content: "x"},
			{path: "ro", dir: true, mode: 0o555}, // a read-only directory to write into
			{path: "ro/file", content: "old", mode: 0o444},
			{path: "was-file", content: "a file"},
			{path: "was-dir/inner", content: "a dir"},
			{path: "was-link", link: "bin/serve"},
			{path: MarkerFile, content: `{"name":"v1"}`},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, d := t.TempDir(), t.TempDir()
			writeTree(t, s, src)
			writeTree(t, d, tc.dst)
			want := manifestOf(t, s)
			st, err := Sync(s, d, want)
			if err != nil {
				t.Fatal(err)
			}
			got := manifestOf(t, d)
			if diff := want.Diff(got); diff != "" || want.Hash() != got.Hash() {
				t.Fatalf("after the sync the trees differ: %s", diff)
			}
			if tc.dst != nil {
				if b, err := os.ReadFile(filepath.Join(d, MarkerFile)); err != nil || string(b) != `{"name":"v1"}` {
					t.Errorf("the marker file was not left alone: %q, %v", b, err)
				}
				if st.Removed == 0 || st.Unchanged == 0 {
					t.Errorf("stats %+v: want removals and unchanged files", st)
				}
			}
			again, err := Sync(s, d, want)
			if err != nil {
				t.Fatal(err)
			}
			if again.Copied != 0 || again.Linked != 0 || again.Removed != 0 {
				t.Errorf("a second sync changed things: %+v", again)
			}
		})
	}
}

func TestManifestHashSeesEveryDifference(t *testing.T) {
	base := []node{{path: "a", content: "1"}, {path: "d", dir: true}, {path: "l", link: "a"}}
	root := t.TempDir()
	writeTree(t, root, base)
	h0 := manifestOf(t, root).Hash()
	for _, tc := range []struct {
		name   string
		change func(root string) error
	}{
		{"Content", func(r string) error { return os.WriteFile(filepath.Join(r, "a"), []byte("2"), 0o644) }},
		{"Mode", func(r string) error { return os.Chmod(filepath.Join(r, "a"), 0o600) }},
		{"LinkTarget", func(r string) error {
			os.Remove(filepath.Join(r, "l"))
			return os.Symlink("d", filepath.Join(r, "l"))
		}},
		{"NewEmptyDir", func(r string) error { return os.Mkdir(filepath.Join(r, "e"), 0o755) }},
		{"Removed", func(r string) error { return os.Remove(filepath.Join(r, "a")) }},
		{"Renamed", func(r string) error { return os.Rename(filepath.Join(r, "a"), filepath.Join(r, "b")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := t.TempDir()
			writeTree(t, r, base)
			if err := tc.change(r); err != nil {
				t.Fatal(err)
			}
			if manifestOf(t, r).Hash() == h0 {
				t.Error("the manifest hash did not change")
			}
		})
	}
	t.Run("MarkerAndTimesIgnored", func(t *testing.T) {
		r := t.TempDir()
		writeTree(t, r, append(base, node{path: MarkerFile, content: "{}"}))
		if err := os.Chtimes(filepath.Join(r, "a"), fs0, fs0); err != nil {
			t.Fatal(err)
		}
		if manifestOf(t, r).Hash() != h0 {
			t.Error("the marker file or a time changed the hash")
		}
	})
}

func TestManifestRefusesSpecialFiles(t *testing.T) {
	r := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(r, "pipe"), 0o644); err != nil {
		t.Skip("no mkfifo:", err)
	}
	_, err := BuildManifest(r)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("BuildManifest with a named pipe: %v, want ErrUnsupported", err)
	}
}

var fs0 = time.Unix(1e9, 0)
