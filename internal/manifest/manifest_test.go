package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func write(t *testing.T, root, rel, body string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func build(t *testing.T, root string, skip func(string) bool) Manifest {
	t.Helper()
	m, err := Build(root, skip)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBuildSkips: a skipped file is left out, a skipped directory with
// everything under it, and the rest is sorted by path.
func TestBuildSkips(t *testing.T) {
	root := t.TempDir()
	write(t, root, "seg-000002.log", "b")
	write(t, root, "seg-000001.log", "a")
	write(t, root, "fence.json", `{"epoch":1}`)
	write(t, root, "tmp/x", "x")
	if err := os.Symlink("seg-000001.log", filepath.Join(root, "latest")); err != nil {
		t.Fatal(err)
	}
	m := build(t, root, func(rel string) bool { return rel == "fence.json" || rel == "tmp" })
	var paths []string
	for _, e := range m.Entries {
		paths = append(paths, e.Path)
	}
	if want := []string{"latest", "seg-000001.log", "seg-000002.log"}; !slices.Equal(paths, want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	if n, b := m.Files(); n != 2 || b != 2 {
		t.Errorf("Files() = %d, %d; want 2, 2", n, b)
	}
	if m.Entries[0].Type != "symlink" || m.Entries[0].Link != "seg-000001.log" {
		t.Errorf("link entry %+v", m.Entries[0])
	}
	// What is skipped changes nothing.
	write(t, root, "fence.json", `{"epoch":2}`)
	if got := build(t, root, func(rel string) bool { return rel == "fence.json" || rel == "tmp" }); got.Hash() != m.Hash() {
		t.Errorf("a skipped file's change changed the hash")
	}
}

// TestCompare: every difference is named by path, whatever the order of
// insertions and removals (an index-wise comparison would call every path
// after an insertion different).
func TestCompare(t *testing.T) {
	e := func(p, h string) Entry { return Entry{Path: p, Type: "file", Mode: 0o644, Size: 1, Hash: h} }
	want := Manifest{Entries: []Entry{e("a", "1"), e("b", "2"), e("d", "4"), e("e", "5")}}
	for _, tt := range []struct {
		name string
		got  []Entry
		diff []string
	}{
		{"same", want.Entries, nil},
		{"inserted", []Entry{e("a", "1"), e("b", "2"), e("c", "3"), e("d", "4"), e("e", "5")}, []string{"extra c"}},
		{"removed", []Entry{e("a", "1"), e("d", "4"), e("e", "5")}, []string{"missing b"}},
		{"changed", []Entry{e("a", "1"), e("b", "9"), e("d", "4"), e("e", "5")}, []string{"b differs: content 2, found 9"}},
		{"all", []Entry{e("0", "0"), e("b", "2"), {Path: "d", Type: "dir", Mode: 0o755}}, []string{"extra 0", "missing a", "d differs: type file, found dir, mode 644, found 755, size 1, found 0, content 4, found ", "missing e"}},
		{"empty", nil, []string{"missing a", "missing b", "missing d", "missing e"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := want.Compare(Manifest{Entries: tt.got})
			if !slices.Equal(got, tt.diff) {
				t.Errorf("Compare = %q, want %q", got, tt.diff)
			}
			if (len(tt.diff) == 0) != (want.Hash() == Manifest{Entries: tt.got}.Hash()) {
				t.Errorf("Hash agrees %v with Compare's %q", want.Hash() == Manifest{Entries: tt.got}.Hash(), got)
			}
		})
	}
}

func TestBuildRefusesSpecialFiles(t *testing.T) {
	root := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(root, "pipe"), 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	if _, err := Build(root, nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Build with a named pipe: %v, want ErrUnsupported", err)
	}
	if _, err := Build(root, func(rel string) bool { return rel == "pipe" }); err != nil {
		t.Fatalf("Build with the pipe skipped: %v", err)
	}
}
