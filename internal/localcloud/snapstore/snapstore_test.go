package snapstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		nodes []node
	}{
		{name: "empty tree"},
		{name: "mixed", nodes: []node{
			{path: "a/b/c/deep.txt", kind: "file", data: []byte("deep\n"), mtime: past},
			{path: "a/b/c", kind: "dir", mode: 0o750, mtime: past.Add(time.Hour)},
			{path: "a/empty", kind: "file"},
			{path: "empty-dir", kind: "dir", mtime: past},
			{path: "empty", kind: "file", mode: 0o600, mtime: past},
			{path: "big.bin", kind: "file", data: randBytes(1, 20<<20), mtime: past.Add(time.Minute)},
			{path: "just-over-min.bin", kind: "file", data: randBytes(2, minChunkSize+1000)},
			{path: "run.sh", kind: "file", data: []byte("#!/bin/sh\n"), mode: 0o755},
			{path: "secret", kind: "file", data: []byte("x"), mode: 0o400},
			{path: "ro/inside", kind: "file", data: []byte("in a read-only dir")},
			{path: "ro", kind: "dir", mode: 0o555},
			{path: "link", kind: "link", link: "a/b/c/deep.txt", mtime: past},
			{path: "dangling", kind: "link", link: "/nonexistent/target"},
			{path: ".", kind: "dir", mode: 0o711, mtime: past},
		}},
		{name: "names that sort across directories", nodes: []node{
			{path: "a/b", kind: "file", data: []byte("1")},
			{path: "a.b", kind: "file", data: []byte("2")},
			{path: "a-b/c", kind: "file", data: []byte("3")},
			{path: "a/b.c/d", kind: "file", data: []byte("4")},
			{path: "-dash/x", kind: "file", data: []byte("5")},
			{path: " space", kind: "file", data: []byte("6")},
			{path: "+plus", kind: "link", link: "-dash/x"},
		}},
		{name: "store inside the source is skipped", nodes: []node{
			{path: "f", kind: "file", data: []byte("1")},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			src := filepath.Join(t.TempDir(), "src")
			buildTree(t, src, tc.nodes)
			storeInside := strings.HasPrefix(tc.name, "store inside")
			if storeInside {
				s.Close()
				var err error
				if s, err = Open(filepath.Join(src, "store"), nil); err != nil {
					t.Fatal(err)
				}
				defer s.Close()
			}
			before := listTree(t, src)
			if storeInside {
				maps.DeleteFunc(before, func(p string, _ treeEntry) bool { return strings.HasPrefix(p, "store") })
			}

			var lastDone, lastTotal int64
			m, st, err := s.Create(context.Background(), "snap-1", src, "", func(done, total int64) {
				if done < lastDone {
					t.Errorf("progress went backwards: %d after %d", done, lastDone)
				}
				lastDone, lastTotal = done, total
			})
			if err != nil {
				t.Fatal(err)
			}
			if !storeInside {
				compareTrees(t, before, listTree(t, src)) // src untouched
			}

			var files int
			var size int64
			for _, n := range tc.nodes {
				if n.kind == "file" {
					files++
					size += int64(len(n.data))
				}
			}
			if st.Files != files || st.BytesHashed != size || st.BytesScanned != size || m.Size != size || st.ReusedFiles != 0 {
				t.Errorf("stats %+v, manifest size %d; want %d files, %d bytes", st, m.Size, files, size)
			}
			if size > 0 && (lastDone != size || lastTotal != size) {
				t.Errorf("last progress %d/%d, want %d/%d", lastDone, lastTotal, size, size)
			}
			if !slices.IsSortedFunc(m.Entries, comparePaths) || m.Entries[0].Path != "." {
				t.Error("manifest entries not sorted by path")
			}
			for _, e := range m.Entries {
				for _, c := range e.Chunks {
					if c.Size > maxChunkSize {
						t.Errorf("%s: chunk of %d bytes", e.Path, c.Size)
					}
				}
				if e.Mode.IsRegular() && e.Size > 0 && e.Size < minChunkSize && len(e.Chunks) != 1 {
					t.Errorf("%s: small file in %d chunks", e.Path, len(e.Chunks))
				}
				if e.Size > 2*maxChunkSize && len(e.Chunks) < 3 {
					t.Errorf("%s: %d bytes in only %d chunks", e.Path, e.Size, len(e.Chunks))
				}
			}
			stored, err := s.Manifest("snap-1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(stored, m) {
				t.Error("stored manifest differs from the one Create returned")
			}

			for _, dst := range []string{filepath.Join(t.TempDir(), "absent", "dst"), t.TempDir()} {
				rst, err := s.Restore(context.Background(), "snap-1", dst, nil)
				if err != nil {
					t.Fatal(err)
				}
				compareTrees(t, before, listTree(t, dst))
				if rst.Files != files || rst.BytesWritten != size || rst.BytesHashed != size {
					t.Errorf("restore stats %+v; want %d files, %d bytes", rst, files, size)
				}
			}
		})
	}
}

// incrementalTree is 40 small files in four directories and one 2 MiB file,
// all with mtimes well in the past.
func incrementalTree() []node {
	var nodes []node
	for i := range 40 {
		nodes = append(nodes, node{path: fmt.Sprintf("d%d/f%02d", i%4, i), kind: "file", data: randBytes(uint64(100+i), 8<<10), mtime: past})
	}
	return append(nodes, node{path: "big", kind: "file", data: randBytes(99, bigSize), mtime: past})
}

// bigSize is the size of incrementalTree's big file, several chunks.
const bigSize = 8 << 20

func TestIncremental(t *testing.T) {
	t.Parallel()
	const small = 8 << 10
	tests := []struct {
		name        string
		change      func(t *testing.T, src string)
		wantFiles   int
		wantHashed  int64
		wantReused  int // files
		wantDedup   bool
		wantNewOnly bool // every chunk read is new
	}{
		{
			name: "rewrite one small file",
			change: func(t *testing.T, src string) {
				write(t, filepath.Join(src, "d1/f05"), randBytes(7, small))
			},
			wantFiles: 41, wantHashed: small, wantReused: 40, wantNewOnly: true,
		},
		{
			name: "append to the big file",
			change: func(t *testing.T, src string) {
				f, err := os.OpenFile(filepath.Join(src, "big"), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.Write(randBytes(8, 1000)); err != nil {
					t.Fatal(err)
				}
			},
			// Content-defined chunking keeps the chunks before the append.
			wantFiles: 41, wantHashed: bigSize + 1000, wantReused: 40, wantDedup: true,
		},
		{
			name:      "add a file",
			change:    func(t *testing.T, src string) { write(t, filepath.Join(src, "d2/new"), randBytes(9, 1000)) },
			wantFiles: 42, wantHashed: 1000, wantReused: 41, wantNewOnly: true,
		},
		{
			name: "remove a file",
			change: func(t *testing.T, src string) {
				if err := os.Remove(filepath.Join(src, "d3/f07")); err != nil {
					t.Fatal(err)
				}
			},
			wantFiles: 40, wantHashed: 0, wantReused: 40,
		},
		{
			name: "chmod only moves ctime",
			change: func(t *testing.T, src string) {
				if err := os.Chmod(filepath.Join(src, "d0/f00"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantFiles: 41, wantHashed: small, wantReused: 40, wantDedup: true,
		},
		{
			name: "replaced with same size and mtime",
			change: func(t *testing.T, src string) {
				p := filepath.Join(src, "d0/f04")
				write(t, p+".tmp", randBytes(10, small))
				if err := os.Chtimes(p+".tmp", past, past); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(p+".tmp", p); err != nil {
					t.Fatal(err)
				}
			},
			wantFiles: 41, wantHashed: small, wantReused: 40, wantNewOnly: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			// Snapshots "taken" a minute from now see files written by the
			// test as safely older than the racy window.
			s.clock = clock.NewFake(time.Now().Add(time.Minute))
			src := t.TempDir()
			buildTree(t, src, incrementalTree())
			if _, st, err := s.Create(context.Background(), "snap-a", src, "", nil); err != nil {
				t.Fatal(err)
			} else if st.BytesHashed != 40*small+bigSize {
				t.Fatalf("first snapshot hashed %d bytes", st.BytesHashed)
			}
			tc.change(t, src)
			want := listTree(t, src)

			m, st, err := s.Create(context.Background(), "snap-b", src, "snap-a", nil)
			if err != nil {
				t.Fatal(err)
			}
			if st.Files != tc.wantFiles || st.ReusedFiles != tc.wantReused || st.BytesHashed != tc.wantHashed || st.BytesRead != tc.wantHashed {
				t.Errorf("stats %+v; want files %d, reused %d, hashed and read %d", st, tc.wantFiles, tc.wantReused, tc.wantHashed)
			}
			if tc.wantNewOnly && st.ReusedChunks != 0 {
				t.Errorf("%d chunks deduplicated, want none", st.ReusedChunks)
			}
			if tc.wantDedup && (st.ReusedChunks == 0 || st.BytesWritten >= st.BytesHashed) {
				t.Errorf("stats %+v: expected the read file's old chunks to be reused", st)
			}
			if m.Parent != "snap-a" {
				t.Errorf("parent %q", m.Parent)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			if _, err := s.Restore(context.Background(), "snap-b", dst, nil); err != nil {
				t.Fatal(err)
			}
			compareTrees(t, want, listTree(t, dst))
		})
	}
}

func write(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRacyGuard: a file rewritten in the same clock tick just after the
// parent read it keeps its metadata. ext4's nanosecond ctime cannot be made
// to stand still, so the parent's manifest is patched to the file's new
// ctime: every field Create compares then matches, and only the file's age
// relative to the parent's start decides.
func TestRacyGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		age        time.Duration // mtime before the parent's start
		patchCTime bool
		wantReread bool
	}{
		{name: "within the window", age: time.Second, patchCTime: true, wantReread: true},
		{name: "at the window's edge", age: timestampGranularity, patchCTime: true, wantReread: true},
		{name: "older than the window", age: timestampGranularity + time.Second, patchCTime: true, wantReread: false},
		{name: "mtime set back, ctime moved", age: time.Hour, wantReread: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			// The parent starts an hour from now, so the file's real ctime
			// is old and only its (Chtimes-set) mtime is near the start.
			parentStart := time.Now().Add(time.Hour)
			fake := clock.NewFake(parentStart)
			s.clock = fake
			src := t.TempDir()
			p := filepath.Join(src, "f")
			mtime := parentStart.Add(-tc.age)
			write(t, p, randBytes(1, 4096))
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Create(context.Background(), "parent", src, "", nil); err != nil {
				t.Fatal(err)
			}

			// A tick later, so an unpatched ctime surely moves.
			time.Sleep(20 * time.Millisecond)
			newContent := randBytes(2, 4096) // same size, same inode
			write(t, p, newContent)
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			if tc.patchCTime {
				fi, err := os.Lstat(p)
				if err != nil {
					t.Fatal(err)
				}
				ctime, inode := statExtra(fi)
				patchManifest(t, s, "parent", func(m *Manifest) {
					e := entry(t, m, "f")
					if e.Inode != inode || !e.MTime.Equal(fi.ModTime()) || e.Size != fi.Size() {
						t.Fatalf("test setup: metadata besides ctime changed: %+v vs %v", e, fi)
					}
					e.CTime = ctime
				})
			}
			fake.Advance(time.Minute)

			_, st, err := s.Create(context.Background(), "child", src, "parent", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantReread {
				if st.ReusedFiles != 0 || st.BytesHashed != 4096 {
					t.Fatalf("stats %+v: file not re-read", st)
				}
				dst := filepath.Join(t.TempDir(), "dst")
				if _, err := s.Restore(context.Background(), "child", dst, nil); err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(filepath.Join(dst, "f")); string(got) != string(newContent) {
					t.Fatal("restored the stale content")
				}
			} else if st.ReusedFiles != 1 || st.BytesHashed != 0 {
				t.Fatalf("stats %+v: old file with matching metadata not reused", st)
			}
		})
	}
}

func TestDedup(t *testing.T) {
	t.Parallel()
	big := randBytes(1, 12<<20)
	tests := []struct {
		name         string
		first        []node
		second       []node
		atLeast      int  // ReusedChunks lower bound
		wantNewFiles bool // new chunks expected
	}{
		{
			name:    "same file in another tree",
			first:   []node{{path: "x/big", kind: "file", data: big}, {path: "s1", kind: "file", data: []byte("one")}},
			second:  []node{{path: "y/copy", kind: "file", data: big}, {path: "s2", kind: "file", data: []byte("two")}},
			atLeast: 2, wantNewFiles: true,
		},
		{
			name:    "identical files within one snapshot",
			first:   nil,
			second:  []node{{path: "a", kind: "file", data: big}, {path: "b", kind: "file", data: big}},
			atLeast: 2, wantNewFiles: true,
		},
		{
			name:    "bytes inserted at the front",
			first:   []node{{path: "big", kind: "file", data: big}},
			second:  []node{{path: "big", kind: "file", data: append([]byte("inserted header\n"), big...)}},
			atLeast: 2, wantNewFiles: true,
		},
		{
			name:    "identical tree",
			first:   []node{{path: "big", kind: "file", data: big}, {path: "small", kind: "file", data: []byte("s")}},
			second:  []node{{path: "big", kind: "file", data: big}, {path: "small", kind: "file", data: []byte("s")}},
			atLeast: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			s.workers = 1 // two workers may both store a chunk neither has seen yet
			src1, src2 := filepath.Join(t.TempDir(), "1"), filepath.Join(t.TempDir(), "2")
			buildTree(t, src1, tc.first)
			buildTree(t, src2, tc.second)
			if _, _, err := s.Create(context.Background(), "snap-1", src1, "", nil); err != nil {
				t.Fatal(err)
			}
			before := countChunks(t, s)
			m, st, err := s.Create(context.Background(), "snap-2", src2, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if st.ReusedChunks < tc.atLeast {
				t.Errorf("stats %+v: want at least %d reused chunks", st, tc.atLeast)
			}
			if (st.NewChunks > 0) != tc.wantNewFiles || countChunks(t, s) != before+st.NewChunks {
				t.Errorf("stats %+v: %d chunks stored before, %d after", st, before, countChunks(t, s))
			}
			refs := 0
			for _, e := range m.Entries {
				refs += len(e.Chunks)
			}
			if st.NewChunks+st.ReusedChunks != refs {
				t.Errorf("new %d + reused %d chunks != %d referenced", st.NewChunks, st.ReusedChunks, refs)
			}
		})
	}
}

func TestDeleteAndGC(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := context.Background()
	shared := randBytes(3, 100<<10)
	srcA, srcB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	buildTree(t, srcA, []node{{path: "only-a", kind: "file", data: randBytes(1, 2<<20)}, {path: "shared", kind: "file", data: shared}})
	buildTree(t, srcB, []node{{path: "only-b", kind: "file", data: randBytes(2, 300<<10)}, {path: "shared", kind: "file", data: shared}})
	ma, _, err := s.Create(ctx, "snap-a", srcA, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, "snap-b", srcB, "", nil); err != nil {
		t.Fatal(err)
	}
	onlyA := entry(t, ma, "only-a").Chunks

	steps := []struct {
		name        string
		del         string
		wantRemoved int
		wantFreed   int64
		wantLeft    int
	}{
		{name: "nothing deleted", wantRemoved: 0, wantFreed: 0, wantLeft: len(onlyA) + 2},
		{name: "delete a", del: "snap-a", wantRemoved: len(onlyA), wantFreed: 2 << 20, wantLeft: 2},
		{name: "delete a again", del: "snap-a", wantLeft: 2},
		{name: "delete b", del: "snap-b", wantRemoved: 2, wantFreed: 300<<10 + 100<<10, wantLeft: 0},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if step.del != "" {
				if err := s.Delete(step.del); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Manifest(step.del); !errors.Is(err, ErrNotFound) {
					t.Fatalf("manifest after delete: %v", err)
				}
			}
			removed, freed, err := s.GC(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if removed != step.wantRemoved || freed != step.wantFreed || countChunks(t, s) != step.wantLeft {
				t.Fatalf("removed %d chunks (%d bytes), %d left; want %d (%d bytes), %d left",
					removed, freed, countChunks(t, s), step.wantRemoved, step.wantFreed, step.wantLeft)
			}
			if step.del == "snap-a" { // b must still restore
				dst := filepath.Join(t.TempDir(), "dst")
				if _, err := s.Restore(ctx, "snap-b", dst, nil); err != nil {
					t.Fatal(err)
				}
				compareTrees(t, listTree(t, srcB), listTree(t, dst))
			}
		})
	}
}

func TestGCRefusesUnreadableManifest(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	src := t.TempDir()
	buildTree(t, src, []node{{path: "f", kind: "file", data: []byte("data")}})
	if _, _, err := s.Create(context.Background(), "snap-1", src, "", nil); err != nil {
		t.Fatal(err)
	}
	write(t, s.manifestPath("snap-2"), []byte("{not json"))
	if _, _, err := s.GC(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GC with a corrupt manifest: %v", err)
	}
	if countChunks(t, s) != 1 {
		t.Fatal("GC removed chunks despite failing")
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of %s: %v", dir, err)
	}
	src := t.TempDir()
	buildTree(t, src, []node{{path: "f", kind: "file", data: randBytes(1, 1<<20)}})
	want := listTree(t, src)
	if _, _, err := s.Create(context.Background(), "snap-1", src, "", nil); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(s.tmpDir, "chunk-leftover"), []byte("from a crash"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if names, _ := readDirNames(s.tmpDir); len(names) != 0 {
		t.Errorf("temporary files left after Open: %v", names)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := s.Restore(context.Background(), "snap-1", dst, nil); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, want, listTree(t, dst))
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	src := t.TempDir()
	buildTree(t, src, []node{{path: "f", kind: "file", data: []byte("x")}})
	if _, _, err := s.Create(context.Background(), "snap-1", src, "", nil); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(src, "f")
	tests := []struct {
		name, id, src, parent string
		want                  error
	}{
		{name: "existing id", id: "snap-1", src: src, want: ErrExists},
		{name: "empty id", id: "", src: src, want: ErrInvalidID},
		{name: "id with a slash", id: "../x", src: src, want: ErrInvalidID},
		{name: "unknown parent", id: "snap-2", src: src, parent: "snap-0", want: ErrNotFound},
		{name: "source not a directory", id: "snap-3", src: notDir},
		{name: "source missing", id: "snap-4", src: filepath.Join(src, "nope"), want: os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.Create(context.Background(), tc.id, tc.src, tc.parent, nil)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "snapshot "+tc.id) {
				t.Errorf("error %q does not name the snapshot", err)
			}
			if tc.id != "snap-1" && validID(tc.id) == nil {
				if _, err := s.Manifest(tc.id); !errors.Is(err, ErrNotFound) {
					t.Errorf("manifest left behind: %v", err)
				}
			}
		})
	}
}

func TestRestoreRefuses(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	src := t.TempDir()
	buildTree(t, src, []node{{path: "f", kind: "file", data: []byte("x")}})
	if _, _, err := s.Create(context.Background(), "snap-1", src, "", nil); err != nil {
		t.Fatal(err)
	}
	nonEmpty := t.TempDir()
	write(t, filepath.Join(nonEmpty, "precious"), []byte("keep me"))
	aFile := filepath.Join(t.TempDir(), "file")
	write(t, aFile, []byte("keep me"))
	tests := []struct {
		name, id, dst string
		want          error
		wantText      string
	}{
		{name: "non-empty directory", id: "snap-1", dst: nonEmpty, want: ErrNotEmpty, wantText: "destination is not empty"},
		{name: "destination is a file", id: "snap-1", dst: aFile, wantText: "is not a directory"},
		{name: "unknown snapshot", id: "snap-9", dst: filepath.Join(t.TempDir(), "d"), want: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Restore(context.Background(), tc.id, tc.dst, nil)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("got %v, want %v / %q", err, tc.want, tc.wantText)
			}
			if !strings.Contains(err.Error(), tc.dst) || !strings.Contains(err.Error(), tc.id) {
				t.Errorf("error %q does not name the snapshot and destination", err)
			}
		})
	}
	for _, p := range []string{filepath.Join(nonEmpty, "precious"), aFile} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "keep me" {
			t.Errorf("%s changed: %q %v", p, b, err)
		}
	}
	if names, _ := readDirNames(nonEmpty); len(names) != 1 {
		t.Errorf("non-empty destination now holds %v", names)
	}
}

func TestCorruptChunk(t *testing.T) {
	t.Parallel()
	flip := func(t *testing.T, p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x10
		write(t, p, b)
	}
	tests := []struct {
		name   string
		file   string
		chunk  int // index into the file's chunks
		damage func(t *testing.T, p string)
	}{
		{name: "bit flip in a one-chunk file", file: "dir/small", chunk: 0, damage: flip},
		{name: "bit flip in a multi-chunk file", file: "big", chunk: 1, damage: flip},
		{name: "missing chunk", file: "big", chunk: 2, damage: func(t *testing.T, p string) { os.Remove(p) }},
		{name: "truncated chunk", file: "dir/small", chunk: 0, damage: func(t *testing.T, p string) { os.Truncate(p, 10) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			src := t.TempDir()
			buildTree(t, src, []node{
				{path: "dir/small", kind: "file", data: randBytes(1, 5000)},
				{path: "big", kind: "file", data: randBytes(2, 12<<20)},
			})
			m, _, err := s.Create(context.Background(), "snap-1", src, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			ref := entry(t, m, tc.file).Chunks[tc.chunk]
			tc.damage(t, s.chunkPath(ref.Hash))

			dst := filepath.Join(t.TempDir(), "dst")
			_, err = s.Restore(context.Background(), "snap-1", dst, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), ref.Hash) || !strings.Contains(err.Error(), "file "+tc.file) {
				t.Errorf("error %q does not name chunk %s and file %s", err, ref.Hash, tc.file)
			}
			if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("failed restore left %s behind (%v)", dst, err)
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	var nodes []node
	for i := range 12 {
		nodes = append(nodes, node{path: fmt.Sprintf("f%02d", i), kind: "file", data: randBytes(uint64(i), 600<<10)})
	}
	tests := []struct {
		name   string
		op     string // "create" or "restore"
		before bool   // cancel before the call, else at the first progress report
	}{
		{name: "create cancelled before start", op: "create", before: true},
		{name: "create cancelled midway", op: "create"},
		{name: "restore cancelled before start", op: "restore", before: true},
		{name: "restore cancelled midway", op: "restore"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			s.workers = 1
			src := t.TempDir()
			buildTree(t, src, nodes)
			if tc.op == "restore" {
				if _, _, err := s.Create(context.Background(), "snap-1", src, "", nil); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.before {
				cancel()
			}
			var reports int
			onProgress := func(done, total int64) {
				reports++
				cancel()
			}
			dst := filepath.Join(t.TempDir(), "dst")
			var err error
			if tc.op == "create" {
				_, _, err = s.Create(ctx, "snap-1", src, "", onProgress)
			} else {
				_, err = s.Restore(ctx, "snap-1", dst, onProgress)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if reports > 2 {
				t.Errorf("%d progress reports after cancelling", reports)
			}
			if tc.op == "create" {
				if _, err := s.Manifest("snap-1"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("cancelled Create left a manifest: %v", err)
				}
				// The id is free for a retry.
				if _, _, err := s.Create(context.Background(), "snap-1", src, "", nil); err != nil {
					t.Fatal(err)
				}
			} else {
				if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("cancelled Restore left %s (%v)", dst, err)
				}
				if _, err := s.Restore(context.Background(), "snap-1", dst, nil); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestConcurrentUse runs Creates, Restores and GCs at once, for -race and
// for GC's exclusion: every snapshot must restore completely afterwards.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	src := t.TempDir()
	buildTree(t, src, incrementalTree())
	want := listTree(t, src)
	ctx := context.Background()
	if _, _, err := s.Create(ctx, "base", src, "", nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 3 {
		wg.Go(func() {
			id := fmt.Sprintf("snap-%d", i)
			if _, _, err := s.Create(ctx, id, src, "base", nil); err != nil {
				errs <- err
				return
			}
			if _, err := s.Restore(ctx, id, filepath.Join(t.TempDir(), "dst"), nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			if _, _, err := s.GC(ctx); err != nil {
				errs <- err
			}
		}
	})
	wg.Go(func() {
		// The same id twice at once: exactly one may win.
		var mu sync.Mutex
		var won int
		var inner sync.WaitGroup
		for range 2 {
			inner.Go(func() {
				_, _, err := s.Create(ctx, "dup", src, "", nil)
				if err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				} else if !errors.Is(err, ErrExists) {
					errs <- err
				}
			})
		}
		inner.Wait()
		if won != 1 {
			errs <- fmt.Errorf("%d concurrent Creates of one id succeeded", won)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"base", "snap-0", "snap-1", "snap-2", "dup"} {
		dst := filepath.Join(t.TempDir(), "dst")
		if _, err := s.Restore(ctx, id, dst, nil); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, want, listTree(t, dst))
	}
}
