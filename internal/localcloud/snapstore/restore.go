package snapstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Restore writes snapshot id into dst, which must be an empty directory or
// absent (then it is created), recreating directories, files and symlinks
// with their modes and mtimes; ownership, hard links, holes, extended
// attributes, ctimes and inode numbers are not reproduced. Every chunk's
// hash is verified as it is read; a mismatch fails with ErrCorrupt naming
// the chunk and the file. Files are fsynced, and directories at the end.
//
// On failure, including ctx's cancellation, whatever Restore wrote under dst
// is removed (and dst itself if Restore created it), so it is safe to
// repeat. Fails with ErrNotEmpty, touching nothing, if dst has entries.
// progress, if not nil, is called with cumulative file bytes written, one
// call at a time, from Restore's worker goroutines.
func (s *Store) Restore(ctx context.Context, id, dst string, progressFn func(done, total int64)) (st Stats, err error) {
	start := time.Now()
	defer func() {
		st.Duration = time.Since(start)
		if err != nil {
			err = fmt.Errorf("restoring snapshot %s into %s: %w", id, dst, err)
		}
	}()
	if err := ctx.Err(); err != nil {
		return st, err
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	m, err := s.Manifest(id)
	if err != nil {
		return st, err
	}
	if err := checkEntries(m.Entries); err != nil {
		return st, err
	}
	created, err := prepareDst(dst)
	if err != nil {
		return st, err
	}
	defer func() {
		if err != nil {
			if cerr := s.removeRestored(dst, created); cerr != nil {
				s.logger.Error("cleaning up failed restore", "snapshot-id", id, "path", dst, "error", cerr)
			}
		}
	}()

	prog := &progress{fn: progressFn, total: m.Size}
	st.BytesScanned = m.Size
	var files []int
	for i := range m.Entries {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		e := &m.Entries[i]
		p := filepath.Join(dst, filepath.FromSlash(e.Path))
		switch {
		case e.Path == ".":
		case e.Mode.IsDir():
			// Owner-writable until finishDir applies the real mode, so
			// read-only directories can still be filled.
			if err := os.Mkdir(p, 0o700); err != nil {
				return st, fmt.Errorf("creating directory %s: %w", e.Path, err)
			}
		case e.Mode&fs.ModeSymlink != 0:
			if err := os.Symlink(e.Link, p); err != nil {
				return st, fmt.Errorf("creating symlink %s: %w", e.Path, err)
			}
			if err := lchtimes(p, e.MTime); err != nil {
				return st, fmt.Errorf("setting mtime of symlink %s: %w", e.Path, err)
			}
		default:
			files = append(files, i)
		}
	}

	// Workers write files and hand them to the syncers, which fsync and
	// close them while the workers go on (see durable.go for why).
	syncer := newFileSyncer()
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan int)
	workerStats := make([]Stats, min(s.workers, len(files)))
	for w := range workerStats {
		g.Go(func() error {
			buf := buffers.get()
			defer buffers.put(buf)
			pw := newPipeWriter()
			defer pw.close()
			rw := &restoreWorker{s: s, prog: prog, st: &workerStats[w], buf: buf[:maxChunkSize], pw: pw, syncer: syncer}
			for i := range jobs {
				e := &m.Entries[i]
				if err := rw.file(gctx, filepath.Join(dst, filepath.FromSlash(e.Path)), e); err != nil {
					return fmt.Errorf("file %s: %w", e.Path, err)
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		for _, i := range files {
			select {
			case jobs <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	err = g.Wait()
	if serr := syncer.stop(); err == nil {
		err = serr
	}
	for _, ws := range workerStats {
		st.add(ws)
	}
	if err != nil {
		return st, err
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}

	// Deepest first, so setting a directory's mtime is the last change to it.
	for i := len(m.Entries) - 1; i >= 0; i-- {
		if e := &m.Entries[i]; e.Mode.IsDir() {
			if err := finishDir(filepath.Join(dst, filepath.FromSlash(e.Path)), e); err != nil {
				return st, fmt.Errorf("directory %s: %w", e.Path, err)
			}
		}
	}
	if created {
		if err := syncDir(filepath.Dir(filepath.Clean(dst))); err != nil {
			return st, err
		}
	}
	s.logger.Info("snapshot restored", "snapshot-id", id, "path", dst, "files", st.Files,
		"bytes-written", st.BytesWritten, "duration", time.Since(start))
	return st, nil
}

// checkEntries rejects a manifest that would make Restore write outside dst
// or through a symlink: the root first, every path local and clean, every
// parent a directory listed earlier.
func checkEntries(entries []Entry) error {
	if len(entries) == 0 || entries[0].Path != "." || !entries[0].Mode.IsDir() {
		return fmt.Errorf("%w: manifest does not start with the root directory", ErrCorrupt)
	}
	dirs := map[string]bool{".": true}
	for _, e := range entries[1:] {
		if !filepath.IsLocal(e.Path) || path.Clean(e.Path) != e.Path || !dirs[path.Dir(e.Path)] {
			return fmt.Errorf("%w: manifest entry %q is outside the tree or out of order", ErrCorrupt, e.Path)
		}
		if e.Mode.IsDir() {
			dirs[e.Path] = true
		}
	}
	return nil
}

// prepareDst checks that dst is an empty directory, or creates it.
func prepareDst(dst string) (created bool, err error) {
	fi, err := os.Stat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return false, err
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dst)
	}
	d, err := os.Open(dst)
	if err != nil {
		return false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if len(names) > 0 {
		return false, ErrNotEmpty
	}
	if err != nil && err != io.EOF {
		return false, err
	}
	return false, nil
}

// removeRestored undoes a failed restore; dst was empty or absent before.
func (s *Store) removeRestored(dst string, created bool) error {
	if created {
		return os.RemoveAll(dst)
	}
	names, err := readDirNames(dst)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(dst, n)); err != nil {
			return err
		}
	}
	return nil
}

// finishDir applies a restored directory's mode and mtime and makes its
// entries durable.
func finishDir(p string, e *Entry) error {
	d, err := os.Open(p) // before Chmod, which may take away read permission
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Chmod(e.Mode); err != nil {
		return err
	}
	if err := os.Chtimes(p, time.Time{}, e.MTime); err != nil {
		return err
	}
	return d.Sync()
}

func lchtimes(p string, mtime time.Time) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// restoreWorker writes files, reusing one chunk-sized buffer.
type restoreWorker struct {
	s      *Store
	prog   *progress
	st     *Stats
	buf    []byte // len maxChunkSize
	pw     *pipeWriter
	syncer *fileSyncer
}

func (w *restoreWorker) file(ctx context.Context, p string, e *Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	n, err := w.writeChunks(ctx, f, e.Chunks)
	if err == nil && n != e.Size {
		err = fmt.Errorf("%w: chunks hold %d bytes, manifest says %d", ErrCorrupt, n, e.Size)
	}
	if err == nil {
		err = f.Chmod(e.Mode)
	}
	if err == nil {
		err = os.Chtimes(p, time.Time{}, e.MTime)
	}
	if err != nil {
		f.Close()
		return err
	}
	w.st.Files++
	w.syncer.sync(f)
	return nil
}

// writeChunks streams a file's chunks in order, verifying each before
// writing it, and starts the file's write-back as it goes.
func (w *restoreWorker) writeChunks(ctx context.Context, dst *os.File, refs []ChunkRef) (int64, error) {
	var n int64
	for _, ref := range refs {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		data, err := w.readVerified(ref)
		if err != nil {
			return n, err
		}
		k, err := w.pw.write(dst, data)
		n += int64(k)
		w.st.BytesWritten += int64(k)
		if err != nil {
			return n, err
		}
		startWriteback(dst)
		w.prog.add(int64(k))
	}
	return n, nil
}

func (w *restoreWorker) readVerified(ref ChunkRef) ([]byte, error) {
	cf, err := w.s.openChunk(ref)
	if err != nil {
		return nil, err
	}
	defer cf.Close()
	data, err := readChunk(cf, ref, w.buf)
	if err != nil {
		return nil, err
	}
	w.st.BytesRead += ref.Size
	w.st.BytesHashed += ref.Size
	return data, nil
}

// fileSyncer fsyncs and closes files handed to it, many at once.
type fileSyncer struct {
	files chan *os.File
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
}

func newFileSyncer() *fileSyncer {
	sy := &fileSyncer{files: make(chan *os.File, syncers)}
	for range syncers {
		sy.wg.Go(func() {
			for f := range sy.files {
				err := f.Sync()
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					sy.mu.Lock()
					if sy.err == nil {
						sy.err = fmt.Errorf("syncing %s: %w", f.Name(), err)
					}
					sy.mu.Unlock()
				}
			}
		})
	}
	return sy
}

// sync takes over f: it will be fsynced and closed.
func (sy *fileSyncer) sync(f *os.File) { sy.files <- f }

// stop waits until every file handed over is fsynced and closed, and
// returns the first failure. Call it once, after the last sync.
func (sy *fileSyncer) stop() error {
	close(sy.files)
	sy.wg.Wait()
	return sy.err
}
