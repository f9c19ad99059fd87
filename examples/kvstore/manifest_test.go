package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/handover-dev/handover/internal/fence"
	"github.com/handover-dev/handover/internal/manifest"
)

func (in *instance) manifest(t *testing.T) manifest.Manifest {
	t.Helper()
	code, _, body := in.do("GET", fence.PathManifest, "")
	if code != 200 {
		t.Fatalf("GET %s = %d %s", fence.PathManifest, code, body)
	}
	m, err := fence.ParseManifest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestManifestOfACopy: the manifest a fenced source serves equals the one
// a copy of its directory serves once started under the next epoch (its
// fence state differs, and is left out); a write to the copy changes it,
// and the difference names the segment.
func TestManifestOfACopy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, dir, 0)
	in.want("PUT", "/kv/a", "1", 204, "")
	in.want("PUT", "/kv/b", "2", 204, "")
	in.want("POST", "/admin/fence", `{"epoch": 5}`, 200, "")
	src := in.manifest(t)
	if len(src.Entries) != 3 { // seg-000001.log, its hint, the empty seg-000002.log
		t.Fatalf("the source's manifest %+v: want two segments and a hint, no fence.json", src.Entries)
	}

	cp := t.TempDir()
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, p := range names {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		// A snapshot keeps each file's mode, and the manifest compares it.
		if err := os.WriteFile(filepath.Join(cp, filepath.Base(p)), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	in2 := start(t, cp, 6)
	if diff := src.Compare(in2.manifest(t)); diff != nil {
		t.Fatalf("the copy's manifest differs from the source's: %q", diff)
	}
	in2.want("PUT", "/kv/c", "3", 204, "")
	diff := src.Compare(in2.manifest(t))
	if len(diff) != 1 || diff[0][:len("seg-000002.log differs")] != "seg-000002.log differs" {
		t.Fatalf("after a write to the copy: %q", diff)
	}
}
