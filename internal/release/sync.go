package release

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// SyncStats says what a sync changed.
type SyncStats struct {
	Copied      int64 `json:"copied"`       // files written
	CopiedBytes int64 `json:"copied_bytes"` // their bytes
	Linked      int64 `json:"linked"`       // symlinks made
	Removed     int64 `json:"removed"`      // paths removed (a directory counts once)
	Unchanged   int64 `json:"unchanged"`    // files and links already right
}

// Sync makes the tree under dst exactly want, the manifest of src: what is
// missing or different is copied from src, what want does not list is
// removed, modes and symlinks are set as want says. The marker file at
// dst's root is left alone. Files are replaced by a rename, so a reader of
// dst sees a file whole, before or after. A file of src that no longer
// matches want is copied as it is now; the caller's verification of dst
// against want catches it.
func Sync(src, dst string, want Manifest) (SyncStats, error) {
	var st SyncStats
	dst, err := filepath.EvalSymlinks(dst)
	if err != nil {
		return st, fmt.Errorf("reading the release volume: %w", err)
	}
	have, err := statTree(dst)
	if err != nil {
		return st, err
	}
	wanted := make(map[string]Entry, len(want.Entries))
	for _, e := range want.Entries {
		wanted[e.Path] = e
	}
	// Write access to every directory first (the last pass sets the modes
	// want asks for); then removals, deepest first, so that a path whose
	// type changed is gone before its replacement is made.
	for _, p := range have.order {
		if h := have.byPath[p]; h.Type == "dir" && h.Mode&0o700 != 0o700 {
			if err := os.Chmod(filepath.Join(dst, p), h.Mode|0o700); err != nil {
				return st, fmt.Errorf("making %s writable for the sync: %w", p, err)
			}
		}
	}
	for _, p := range slices.Backward(have.order) {
		h := have.byPath[p]
		if w, ok := wanted[p]; ok && w.Type == h.Type {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dst, p)); err != nil {
			return st, fmt.Errorf("removing %s: %w", p, err)
		}
		delete(have.byPath, p)
		st.Removed++
	}
	for _, w := range want.Entries {
		s, d := filepath.Join(src, filepath.FromSlash(w.Path)), filepath.Join(dst, filepath.FromSlash(w.Path))
		h, exists := have.byPath[w.Path]
		switch w.Type {
		case "dir":
			if !exists {
				if err := os.Mkdir(d, 0o700); err != nil {
					return st, fmt.Errorf("making directory %s: %w", w.Path, err)
				}
			}
		case "symlink":
			if exists && h.Link == w.Link {
				st.Unchanged++
				continue
			}
			if err := replaceSymlink(w.Link, d); err != nil {
				return st, fmt.Errorf("linking %s to %s: %w", w.Path, w.Link, err)
			}
			st.Linked++
		case "file":
			if exists && h.Size == w.Size {
				hash, err := hashFile(d)
				if err != nil {
					return st, err
				}
				if hash == w.Hash {
					if h.Mode != w.Mode {
						if err := os.Chmod(d, w.Mode); err != nil {
							return st, fmt.Errorf("setting the mode of %s: %w", w.Path, err)
						}
					}
					st.Unchanged++
					continue
				}
			}
			n, err := copyFile(s, d, w.Mode)
			if err != nil {
				return st, fmt.Errorf("copying %s: %w", w.Path, err)
			}
			st.Copied++
			st.CopiedBytes += n
		}
	}
	// Directory modes last, deepest first, so a read-only directory is
	// made so only once nothing more is written into it.
	for _, w := range slices.Backward(want.Entries) {
		if w.Type == "dir" {
			if err := os.Chmod(filepath.Join(dst, filepath.FromSlash(w.Path)), w.Mode); err != nil {
				return st, fmt.Errorf("setting the mode of %s: %w", w.Path, err)
			}
		}
	}
	return st, nil
}

// tree is a directory's entries by path, without content hashes.
type tree struct {
	order  []string
	byPath map[string]Entry
}

func statTree(root string) (tree, error) {
	t := tree{byPath: map[string]Entry{}}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." || rel == MarkerFile {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: filepath.ToSlash(rel), Mode: fi.Mode() & modeBits}
		switch fi.Mode().Type() {
		case fs.ModeDir:
			e.Type = "dir"
		case fs.ModeSymlink:
			e.Type = "symlink"
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case 0:
			e.Type, e.Size = "file", fi.Size()
		default:
			e.Type = "other" // never wanted: removed
		}
		t.order = append(t.order, e.Path)
		t.byPath[e.Path] = e
		return nil
	})
	if err != nil {
		return tree{}, fmt.Errorf("reading the release volume %s: %w", root, err)
	}
	return t, nil
}

// copyFile writes src's content to a temporary file beside dst with mode,
// flushes it and renames it over dst. It returns the bytes copied.
func copyFile(src, dst string, mode fs.FileMode) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".handover-sync-*")
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, in) // copy_file_range where the filesystems allow
	if err != nil {
		return 0, err
	}
	if err := tmp.Chmod(mode); err != nil {
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	// The source's mtime, so that tools comparing times (and people) see
	// the release's own.
	if err := os.Chtimes(tmp.Name(), fi.ModTime(), fi.ModTime()); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, err
	}
	ok = true
	return n, nil
}

// replaceSymlink makes dst a symlink to target, by a rename.
func replaceSymlink(target, dst string) error {
	tmp := dst + ".handover-tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
