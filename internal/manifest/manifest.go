// Package manifest describes a directory tree by content: every path with
// its type, permission bits, size, BLAKE3 hash or link target, sorted by
// path, and one hash over it all. A release is identified by the manifest
// of its tree (internal/release); an environment's verify compares the
// manifest of a database's data directory in DST with the one its source
// served at the quiesce point (internal/env).
//
// Owners and times are never part of a manifest: two trees with the same
// paths, types, modes, contents and links have the same manifest, wherever
// and whenever they were written. Building one must never follow a link
// below the root, nor change the tree.
package manifest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/zeebo/blake3"
)

// Entry is one path of a tree as the manifest hashes it.
type Entry struct {
	Path string      `json:"path"` // slash-separated, relative to the root
	Type string      `json:"type"` // "dir", "file" or "symlink"
	Mode fs.FileMode `json:"mode"` // permission bits with setuid, setgid and sticky
	Size int64       `json:"size,omitempty"`
	// Hash is the BLAKE3 of a file's content; Link a symlink's target.
	Hash string `json:"hash,omitempty"`
	Link string `json:"link,omitempty"`
}

// Manifest is a tree, its entries sorted by path.
type Manifest struct {
	Entries []Entry
}

// ModeBits are the mode bits a manifest keeps.
const ModeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Files and Bytes count the regular files of m and their sizes.
func (m Manifest) Files() (n, bytes int64) {
	for _, e := range m.Entries {
		if e.Type == "file" {
			n++
			bytes += e.Size
		}
	}
	return n, bytes
}

// Hash is the manifest's hash, "blake3:<hex>", over one line per entry.
// Paths cannot hold a NUL or a newline that would make two trees' lines
// agree: each field is quoted.
func (m Manifest) Hash() string {
	h := blake3.New()
	for _, e := range m.Entries {
		fmt.Fprintf(h, "%s %s %o %d %s %s\n", strconv.Quote(e.Path), e.Type, uint32(e.Mode), e.Size, e.Hash, strconv.Quote(e.Link))
	}
	return "blake3:" + hex.EncodeToString(h.Sum(nil))
}

// Diff names the first difference between m and o, or "" when they agree.
func (m Manifest) Diff(o Manifest) string {
	for i := 0; i < len(m.Entries) || i < len(o.Entries); i++ {
		switch {
		case i >= len(m.Entries):
			return "extra " + o.Entries[i].Path
		case i >= len(o.Entries):
			return "missing " + m.Entries[i].Path
		case m.Entries[i] != o.Entries[i]:
			return fmt.Sprintf("%s differs (%+v, found %+v)", m.Entries[i].Path, m.Entries[i], o.Entries[i])
		}
	}
	return ""
}

// Compare lists every difference between want (m) and got (o), by path:
// "missing P" (in m only), "extra P" (in o only), "P differs: ..." (what
// changed). Both must be sorted by path, as Build makes them. Nil when
// they agree.
func (m Manifest) Compare(o Manifest) []string {
	var out []string
	i, j := 0, 0
	for i < len(m.Entries) || j < len(o.Entries) {
		switch {
		case j >= len(o.Entries) || i < len(m.Entries) && m.Entries[i].Path < o.Entries[j].Path:
			out = append(out, "missing "+m.Entries[i].Path)
			i++
		case i >= len(m.Entries) || o.Entries[j].Path < m.Entries[i].Path:
			out = append(out, "extra "+o.Entries[j].Path)
			j++
		default:
			if w, g := m.Entries[i], o.Entries[j]; w != g {
				out = append(out, w.Path+" differs: "+what(w, g))
			}
			i++
			j++
		}
	}
	return out
}

// what says how got differs from want, one path's two entries.
func what(want, got Entry) string {
	var d []string
	if want.Type != got.Type {
		d = append(d, fmt.Sprintf("type %s, found %s", want.Type, got.Type))
	}
	if want.Mode != got.Mode {
		d = append(d, fmt.Sprintf("mode %o, found %o", uint32(want.Mode), uint32(got.Mode)))
	}
	if want.Size != got.Size {
		d = append(d, fmt.Sprintf("size %d, found %d", want.Size, got.Size))
	}
	if want.Hash != got.Hash {
		d = append(d, fmt.Sprintf("content %.12s, found %.12s", want.Hash, got.Hash))
	}
	if want.Link != got.Link {
		d = append(d, fmt.Sprintf("link %q, found %q", want.Link, got.Link))
	}
	return strings.Join(d, ", ")
}

// ErrUnsupported marks a tree entry a manifest cannot describe: a device,
// a socket or a named pipe. Terminal: remove it from the tree.
var ErrUnsupported = errors.New("not a directory, regular file or symlink")

// Build reads the tree under root, hashing every file. A path (slash
// separated, relative to root) for which skip returns true is left out,
// and so is everything under it when it is a directory; skip may be nil.
func Build(root string, skip func(rel string) bool) (Manifest, error) {
	var m Manifest
	// The root may be a link to the tree (the local cloud's attached
	// volume, a release link): what is under it is the tree.
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return Manifest{}, fmt.Errorf("reading the tree %s: %w", root, err)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		e, err := EntryOf(p, rel)
		if err != nil {
			return err
		}
		m.Entries = append(m.Entries, e)
		return nil
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("reading the tree %s: %w", root, err)
	}
	SortEntries(m.Entries)
	return m, nil
}

// SortEntries sorts es by path, the order a manifest keeps.
func SortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
}

// EntryOf describes the path p (named rel in the manifest), hashing a file.
func EntryOf(p, rel string) (Entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Path: rel, Mode: fi.Mode() & ModeBits}
	switch t := fi.Mode().Type(); {
	case t == fs.ModeDir:
		e.Type = "dir"
	case t == fs.ModeSymlink:
		e.Type, e.Mode = "symlink", 0 // a symlink's mode means nothing on Linux
		if e.Link, err = os.Readlink(p); err != nil {
			return Entry{}, err
		}
	case t == 0:
		e.Type, e.Size = "file", fi.Size()
		if e.Hash, err = HashFile(p); err != nil {
			return Entry{}, err
		}
	default:
		return Entry{}, fmt.Errorf("%s (%s): %w", p, t, ErrUnsupported)
	}
	return e, nil
}

// HashFile returns the BLAKE3 of the file at p, in hex.
func HashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
