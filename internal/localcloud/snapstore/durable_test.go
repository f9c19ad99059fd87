package snapstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

// TestChunkFileKinds round-trips a tree through both ways of writing a new
// chunk: unnamed and linked (O_TMPFILE), and named and renamed, which the
// store falls back to where the filesystem or /proc does not allow the first.
func TestChunkFileKinds(t *testing.T) {
	t.Parallel()
	for _, tmpfile := range []bool{true, false} {
		t.Run(fmt.Sprintf("tmpfile=%v", tmpfile), func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			if tmpfile && !s.tmpfile {
				t.Skip("O_TMPFILE not available here")
			}
			s.tmpfile = tmpfile
			src := t.TempDir()
			buildTree(t, src, []node{
				{path: "big", kind: "file", data: randBytes(1, 20<<20)},
				{path: "d/small", kind: "file", data: []byte("small")},
			})
			want := listTree(t, src)
			_, st, err := s.Create(context.Background(), "snap-1", src, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := countChunks(t, s); got != st.NewChunks {
				t.Errorf("%d chunk files stored, stats say %d new", got, st.NewChunks)
			}
			if names, _ := readDirNames(s.tmpDir); len(names) != 0 {
				t.Errorf("temporary files left: %v", names)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			if _, err := s.Restore(context.Background(), "snap-1", dst, nil); err != nil {
				t.Fatal(err)
			}
			compareTrees(t, want, listTree(t, dst))
		})
	}
}

// TestPipeWriter writes through the pipe and through each fallback: a
// destination splice refuses (O_APPEND) and a writer without a pipe.
func TestPipeWriter(t *testing.T) {
	t.Parallel()
	data := randBytes(7, 3<<20+123)
	tests := []struct {
		name   string
		flags  int
		noPipe bool
	}{
		{name: "splice", flags: os.O_WRONLY | os.O_CREATE},
		{name: "append falls back to write", flags: os.O_WRONLY | os.O_CREATE | os.O_APPEND},
		{name: "no pipe", flags: os.O_WRONLY | os.O_CREATE, noPipe: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "out")
			f, err := os.OpenFile(p, tc.flags, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			pw := newPipeWriter()
			defer pw.close()
			if tc.noPipe {
				pw.close()
			}
			// Twice, so the second write follows whatever the first
			// fell back to.
			for range 2 {
				if n, err := pw.write(f, data); n != len(data) || err != nil {
					t.Fatalf("wrote %d of %d bytes: %v", n, len(data), err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if want := slices.Concat(data, data); !slices.Equal(got, want) {
				t.Errorf("file holds %d bytes, not the %d written", len(got), len(want))
			}
		})
	}
}

// TestDirSeqs: a Create depends on the directories of the chunks it stores
// and of those it finds stored but not known durable, and fsyncs each such
// directory at most once until a name is added to it.
func TestDirSeqs(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	src := t.TempDir()
	buildTree(t, src, []node{{path: "f", kind: "file", data: randBytes(1, 4<<20)}})
	m, _, err := s.Create(context.Background(), "snap-1", src, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	synced := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range entry(t, m, "f").Chunks {
			for _, dir := range []string{filepath.Dir(s.chunkPath(c.Hash)), s.chunksDir} {
				if d := s.dirs[dir]; d == nil || d.synced < d.added {
					return false
				}
			}
		}
		return true
	}
	if !synced() {
		t.Fatal("directories of stored chunks not synced after Create")
	}

	// A chunk stored by an earlier process: its directory is synced once.
	s2 := openStore(t)
	if err := os.CopyFS(s2.chunksDir, os.DirFS(s.chunksDir)); err != nil {
		t.Fatal(err)
	}
	b := s2.newChunkBatch()
	data, err := os.ReadFile(filepath.Join(src, "f"))
	if err != nil {
		t.Fatal(err)
	}
	pw := newPipeWriter()
	defer pw.close()
	ref := entry(t, m, "f").Chunks[0]
	if hash, wrote, err := b.put(data[:ref.Size], pw); err != nil || wrote || hash != ref.Hash {
		t.Fatalf("put of a stored chunk: %s, wrote %v, %v", hash, wrote, err)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(s2.chunkPath(ref.Hash))
	if b.need[dir] == 0 {
		t.Fatalf("no dependency on %s, whose durability this process does not know", dir)
	}
	if err := b.durable(); err != nil {
		t.Fatal(err)
	}
	s2.mu.Lock()
	d := *s2.dirs[dir]
	s2.mu.Unlock()
	if d.synced < b.need[dir] {
		t.Errorf("%s: synced %d, needed %d", dir, d.synced, b.need[dir])
	}
}

// TestConcurrentSameContent: Creates storing the same new chunks at once
// store each once, wait for one another, and all restore.
func TestConcurrentSameContent(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	var nodes []node
	for i := range 6 {
		nodes = append(nodes, node{path: fmt.Sprintf("f%d", i), kind: "file", data: randBytes(uint64(i), 3<<20)})
	}
	var srcs []string
	for range 4 {
		src := t.TempDir()
		buildTree(t, src, nodes)
		srcs = append(srcs, src)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(srcs))
	for i, src := range srcs {
		wg.Go(func() {
			_, _, errs[i] = s.Create(context.Background(), fmt.Sprintf("snap-%d", i), src, "", nil)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	m, err := s.Manifest("snap-0")
	if err != nil {
		t.Fatal(err)
	}
	unique := map[string]bool{}
	for _, e := range m.Entries {
		for _, c := range e.Chunks {
			unique[c.Hash] = true
		}
	}
	if got := countChunks(t, s); got != len(unique) {
		t.Errorf("%d chunk files for %d distinct chunks", got, len(unique))
	}
	for i, src := range srcs {
		dst := filepath.Join(t.TempDir(), "dst")
		if _, err := s.Restore(context.Background(), fmt.Sprintf("snap-%d", i), dst, nil); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, listTree(t, src), listTree(t, dst))
	}
}

// TestOlderChunking: a store written before the chunker changed (restic's
// Rabin chunker, other boundaries) restores as it is, and an incremental
// Create on top of it reuses unchanged files without reading them.
func TestOlderChunking(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	s.clock = clock.NewFake(time.Now().Add(time.Minute))
	src := t.TempDir()
	kept, changed := randBytes(1, 5<<20), randBytes(2, 3<<20)
	buildTree(t, src, []node{
		{path: "kept", kind: "file", data: kept, mtime: past},
		{path: "changed", kind: "file", data: changed, mtime: past},
	})
	// Write the old snapshot by hand: chunks cut where the old chunker
	// might have, 600 KiB to 3 MiB, below today's minimum.
	chunk := func(data []byte, cuts ...int) (refs []ChunkRef) {
		for i, from := range cuts {
			to := len(data)
			if i+1 < len(cuts) {
				to = cuts[i+1]
			}
			sum := hashHex(data[from:to])
			p := s.chunkPath(string(sum[:]))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			write(t, p, data[from:to])
			refs = append(refs, ChunkRef{Hash: string(sum[:]), Size: int64(to - from)})
		}
		return refs
	}
	m := &Manifest{ID: "old", Created: time.Now().Add(time.Minute).UTC()}
	entries, err := s.scan(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Path {
		case "kept":
			e.Chunks = chunk(kept, 0, 600<<10, 3<<20)
		case "changed":
			e.Chunks = chunk(changed, 0, 700<<10)
		}
		m.Size += e.Size
		m.Entries = append(m.Entries, e)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	write(t, s.manifestPath("old"), b)

	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := s.Restore(context.Background(), "old", dst, nil); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, listTree(t, src), listTree(t, dst))

	write(t, filepath.Join(src, "changed"), append(changed, "more"...))
	want := listTree(t, src)
	nm, st, err := s.Create(context.Background(), "new", src, "old", nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.ReusedFiles != 1 || st.BytesRead != int64(len(changed)+4) {
		t.Errorf("stats %+v: want kept reused and only changed read", st)
	}
	if got := entry(t, nm, "kept").Chunks; !slices.Equal(got, entry(t, m, "kept").Chunks) {
		t.Errorf("kept: chunks %v, want the old snapshot's", got)
	}
	dst = filepath.Join(t.TempDir(), "dst")
	if _, err := s.Restore(context.Background(), "new", dst, nil); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, want, listTree(t, dst))
}

func TestBufferPool(t *testing.T) {
	var p bufferPool
	a, b := p.get(), p.get()
	if len(a) != bufferSize || len(b) != bufferSize {
		t.Fatalf("buffers of %d and %d bytes, want %d", len(a), len(b), bufferSize)
	}
	a[0], a[bufferSize-1] = 1, 2
	p.put(a)
	if c := p.get(); &c[0] != &a[0] {
		t.Error("a buffer put back was not reused")
	}
	p.put(a)
	p.put(b)
	p.release()
	p.mu.Lock()
	n := len(p.free)
	p.timer.Stop()
	p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d buffers kept after release", n)
	}
}
