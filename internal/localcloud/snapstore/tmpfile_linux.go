package snapstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// A new chunk is written to an unnamed file (O_TMPFILE) in tmp/ and linked
// into chunks/ once durable, where the filesystem allows: its fsync then
// need not write a directory entry (ext4 without a journal syncs a new
// file's directory along with it), and a crash leaves no name behind.
// Elsewhere it is written to a named temporary file and renamed.

// chunkFile is a new chunk's file, not yet in place.
type chunkFile struct {
	*os.File
	named bool // a temporary name in tmp/, else unnamed
}

// probeTmpfile reports whether unnamed files in dir can be linked into
// place: the filesystem must support O_TMPFILE, and linking one by its
// /proc/self/fd path needs /proc.
func probeTmpfile(dir string) bool {
	f, err := openTmpfile(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	p := filepath.Join(dir, "probe-"+strconv.Itoa(os.Getpid()))
	if err := linkTmpfile(f, p); err != nil {
		return false
	}
	os.Remove(p)
	return true
}

func openTmpfile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), nil
}

func linkTmpfile(f *os.File, p string) error {
	src := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, p, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "link", Old: src, New: p, Err: err}
	}
	return nil
}

func (s *Store) createChunkFile() (chunkFile, error) {
	if s.tmpfile {
		f, err := openTmpfile(s.tmpDir)
		return chunkFile{File: f}, err
	}
	f, err := os.CreateTemp(s.tmpDir, "chunk-*")
	return chunkFile{File: f, named: true}, err
}

// publish gives a durable chunk file its name. Another writer may have
// stored the same content under it meanwhile, durably too: that is no
// failure.
func (f chunkFile) publish(final string) error {
	if f.named {
		return os.Rename(f.Name(), final)
	}
	err := linkTmpfile(f.File, final)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}

// discard closes a chunk file that will not be published.
func (f chunkFile) discard() {
	f.Close()
	if f.named {
		os.Remove(f.Name())
	}
}
