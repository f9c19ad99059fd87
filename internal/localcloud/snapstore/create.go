package snapstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// timestampGranularity is how much older than the parent snapshot's start a
// file's timestamps must be before its unchanged metadata is trusted. Like
// git's "racy clean" check: a file rewritten within the same timestamp tick
// after the parent read it can keep its size, mtime and ctime, so the parent
// recorded old content under metadata that still matches. Two seconds covers the coarsest timestamps in use (FAT/exFAT store 2 s,
// ext3, HFS+ and some NFS servers 1 s) and the lag of the kernel's coarse
// clock, which stamps files, behind the wall clock read for Created.
//
// Both mtime and ctime must be old: a tool that rewrites a file and then sets
// its mtime back (cp -p, rsync, tar) only moves ctime.
const timestampGranularity = 2 * time.Second

// Create snapshots the tree at src under id and returns its manifest. parent
// names an earlier snapshot of the same tree ("" for none): a file whose
// size, mtime, ctime and inode match the parent's entry, and whose
// timestamps are older than the parent's start by timestampGranularity, is
// recorded with the parent's chunks without being read.
//
// The snapshot is not point-in-time: each file is read as it is when Create
// reaches it. Files that vanish during the run are left out; special files
// (sockets, FIFOs, devices) are skipped with a warning.
//
// On any failure, including ctx's cancellation, no manifest is written;
// chunks already stored remain until GC. Fails with ErrExists if id is taken.
// progress, if not nil, is called with cumulative file bytes processed, one
// call at a time, from Create's worker goroutines.
func (s *Store) Create(ctx context.Context, id, src, parent string, progressFn func(done, total int64)) (*Manifest, Stats, error) {
	start := time.Now()
	var st Stats
	fail := func(err error) (*Manifest, Stats, error) {
		st.Duration = time.Since(start)
		return nil, st, fmt.Errorf("creating snapshot %s of %s: %w", id, src, err)
	}
	if err := validID(id); err != nil {
		return fail(err)
	}
	if parent == id {
		return fail(fmt.Errorf("snapshot cannot be its own parent"))
	}
	if err := s.beginCreate(id); err != nil {
		return fail(err)
	}
	defer s.endCreate(id)
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()

	m := &Manifest{ID: id, Parent: parent, Created: s.clock.Now().UTC()}
	var prev map[string]*Entry
	var trustBefore time.Time
	if parent != "" {
		pm, err := s.Manifest(parent)
		if err != nil {
			return fail(err)
		}
		prev = make(map[string]*Entry, len(pm.Entries))
		for i := range pm.Entries {
			prev[pm.Entries[i].Path] = &pm.Entries[i]
		}
		trustBefore = pm.Created.Add(-timestampGranularity)
	}

	entries, err := s.scan(ctx, src)
	if err != nil {
		return fail(err)
	}
	prog := &progress{fn: progressFn}
	var toRead []int
	var reusedBytes int64
	for i := range entries {
		e := &entries[i]
		if !e.Mode.IsRegular() {
			continue
		}
		st.Files++
		st.BytesScanned += e.Size
		prog.total += e.Size
		if s.reuse(e, prev[e.Path], trustBefore) {
			st.ReusedFiles++
			reusedBytes += e.Size
			continue
		}
		toRead = append(toRead, i)
	}
	prog.add(reusedBytes)
	// Largest first, so the workers finish together instead of one
	// chunking the last big file alone.
	slices.SortStableFunc(toRead, func(a, b int) int { return cmp.Compare(entries[b].Size, entries[a].Size) })

	batch := s.newChunkBatch()
	vanished := make([]bool, len(entries))
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan int)
	workerStats := make([]Stats, min(s.workers, len(toRead)))
	for w := range workerStats {
		g.Go(func() error {
			buf := buffers.get()
			defer buffers.put(buf)
			pw := newPipeWriter()
			defer pw.close()
			cw := &createWorker{s: s, batch: batch, prog: prog, st: &workerStats[w], buf: buf, pw: pw}
			for i := range jobs {
				abs := filepath.Join(src, filepath.FromSlash(entries[i].Path))
				gone, err := cw.file(gctx, abs, &entries[i])
				if err != nil {
					return fmt.Errorf("reading %s: %w", entries[i].Path, err)
				}
				vanished[i] = gone
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		for _, i := range toRead {
			select {
			case jobs <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	err = g.Wait()
	if serr := batch.stop(); err == nil {
		err = serr
	}
	for _, ws := range workerStats {
		st.add(ws)
	}
	if err != nil {
		return fail(err)
	}

	kept := entries[:0]
	for i, e := range entries {
		if vanished[i] {
			st.Files--
			st.BytesScanned -= e.Size
			continue
		}
		if e.Mode.IsRegular() {
			m.Size += e.Size
		}
		kept = append(kept, e)
	}
	m.Entries = kept
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := s.writeManifest(m, batch.durable); err != nil {
		return fail(err)
	}
	st.Duration = time.Since(start)
	s.logger.Info("snapshot created", "snapshot-id", id, "parent", parent, "files", st.Files,
		"reused-files", st.ReusedFiles, "bytes-hashed", st.BytesHashed, "new-chunks", st.NewChunks,
		"duration", st.Duration)
	return m, st, nil
}

func (s *Store) beginCreate(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.creating[id] {
		return ErrExists
	}
	if _, err := os.Lstat(s.manifestPath(id)); err == nil {
		return ErrExists
	}
	s.creating[id] = true
	return nil
}

func (s *Store) endCreate(id string) {
	s.mu.Lock()
	delete(s.creating, id)
	s.mu.Unlock()
}

// scan lists the tree at src, sorted by path, without reading file content.
func (s *Store) scan(ctx context.Context, src string) ([]Entry, error) {
	fi, err := os.Lstat(src)
	if err != nil {
		return nil, fmt.Errorf("scanning: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("scanning: %s is not a directory", src)
	}
	// A store inside the tree would snapshot its own chunks as it writes them.
	store, err := os.Stat(s.dir)
	if err != nil {
		return nil, fmt.Errorf("scanning: %w", err)
	}
	var entries []Entry
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != src && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked: not point-in-time anyway
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		e := Entry{Path: filepath.ToSlash(rel), Mode: info.Mode(), MTime: info.ModTime().UTC()}
		e.CTime, e.Inode = statExtra(info)
		switch mode := info.Mode(); {
		case mode.IsDir():
			if os.SameFile(info, store) {
				s.logger.Warn("skipping the snapshot store inside the source tree", "path", p)
				return filepath.SkipDir
			}
		case mode.IsRegular():
			e.Size = info.Size()
		case mode&fs.ModeSymlink != 0:
			if e.Link, err = os.Readlink(p); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
		default:
			s.logger.Warn("skipping special file", "path", p, "mode", mode.String())
			return nil
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning: %w", err)
	}
	slices.SortFunc(entries, comparePaths)
	return entries, nil
}

// comparePaths orders manifest entries: the root "." first (names such as
// "-x" sort before it bytewise), then bytewise by path, which puts every
// directory before its contents. WalkDir's order differs: it visits "a/…"
// before "a.b".
func comparePaths(a, b Entry) int {
	switch {
	case a.Path == b.Path:
		return 0
	case a.Path == ".":
		return -1
	case b.Path == ".":
		return 1
	}
	return strings.Compare(a.Path, b.Path)
}

// reuse copies the parent's chunks into e if the file is unchanged since the
// parent and old enough for its metadata to be trusted.
func (s *Store) reuse(e, p *Entry, trustBefore time.Time) bool {
	if p == nil || !p.Mode.IsRegular() || p.Size != e.Size || p.Inode != e.Inode ||
		!p.MTime.Equal(e.MTime) || !p.CTime.Equal(e.CTime) {
		return false
	}
	if !e.MTime.Before(trustBefore) || !e.CTime.Before(trustBefore) {
		s.logger.Debug("re-reading racy file", "path", e.Path)
		return false
	}
	var n int64
	for _, c := range p.Chunks {
		n += c.Size
		// A missing chunk would turn into a corrupt snapshot; reading the
		// file again repairs it instead. A stat per chunk is cheap.
		if len(c.Hash) != 64 {
			return false
		}
		if _, err := os.Lstat(s.chunkPath(c.Hash)); err != nil {
			s.logger.Warn("parent chunk missing, re-reading file", "path", e.Path, "chunk", c.Hash)
			return false
		}
	}
	if n != e.Size {
		return false
	}
	e.Chunks = p.Chunks
	return true
}

// createWorker reads files, reusing one buffer across them.
type createWorker struct {
	s     *Store
	batch *chunkBatch
	prog  *progress
	st    *Stats
	buf   []byte // len createBufferSize
	pw    *pipeWriter
}

// readStep is how much a worker reads at a time: small enough that the
// chunker and the hash find the bytes still in the CPU's caches.
const readStep = 1 << 20

// createBufferSize holds the longest chunk and room to read more after it,
// so a chunk is always whole in the buffer without being copied out.
const createBufferSize = maxChunkSize + 2*readStep

// file chunks and stores one file, filling e's chunks and refreshing its
// metadata from the open file. It reports gone if the file vanished since
// the scan.
func (w *createWorker) file(ctx context.Context, abs string, e *Entry) (gone bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	f, err := openSource(abs)
	if errors.Is(err, fs.ErrNotExist) {
		w.s.logger.Warn("file vanished during snapshot", "path", abs)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	// Record the metadata from before the read: if the file changes while
	// being read, its timestamps move past these and the next incremental
	// Create reads it again.
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("no longer a regular file (%s)", fi.Mode())
	}
	e.Mode, e.Size, e.MTime = fi.Mode(), fi.Size(), fi.ModTime().UTC()
	e.CTime, e.Inode = statExtra(fi)
	e.Chunks = nil

	// buf[start:end] is read and not yet stored: the current chunk's
	// bytes, scanned up to start+resume.
	buf := w.buf
	var start, end, resume int
	var n int64
	eof := false
	for {
		k, r := chunkLen(buf[start:end], resume, eof)
		if k == 0 {
			if eof {
				break
			}
			if err := ctx.Err(); err != nil {
				return false, err
			}
			if len(buf)-end < readStep {
				end = copy(buf, buf[start:end])
				start = 0
			}
			m, err := io.ReadFull(f, buf[end:end+readStep])
			end += m
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				eof = true
			} else if err != nil {
				return false, err
			}
			resume = r
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		data := buf[start : start+k]
		start, resume = start+k, 0
		hash, wrote, err := w.batch.put(data, w.pw)
		if err != nil {
			return false, err
		}
		size := int64(k)
		if wrote {
			w.st.NewChunks++
			w.st.BytesWritten += size
		} else {
			w.st.ReusedChunks++
		}
		w.st.BytesRead += size
		w.st.BytesHashed += size
		e.Chunks = append(e.Chunks, ChunkRef{Hash: hash, Size: size})
		n += size
		w.prog.add(size)
	}
	if n != e.Size {
		w.s.logger.Warn("file changed size while being read", "path", abs, "size-before", e.Size, "bytes-read", n)
		e.Size = n
	}
	return false, nil
}

// openSource opens a file for reading without following a symlink swapped in
// since the scan and, where the kernel allows (the caller owns the file or
// has CAP_FOWNER), without updating its access time.
func openSource(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NOATIME, 0)
	if errors.Is(err, syscall.EPERM) {
		f, err = os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	return f, err
}
