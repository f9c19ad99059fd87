package release

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

// MarkerFile is the file at the root of a release volume that says which
// release the volume holds. It is written by publish, read by the agent,
// and is not part of the release's tree: a DIR that has one at its top is
// refused, and the manifest and the sync leave it out.
const MarkerFile = ".handover-release.json"

// Entry is one path of a release tree as the manifest hashes it. Owners and
// times are not part of a release: two trees with the same paths, types,
// permission bits, contents and link targets are the same release.
type Entry struct {
	Path string      `json:"path"` // slash-separated, relative to the root
	Type string      `json:"type"` // "dir", "file" or "symlink"
	Mode fs.FileMode `json:"mode"` // permission bits with setuid, setgid and sticky
	Size int64       `json:"size,omitempty"`
	// Hash is the BLAKE3 of a file's content; Link a symlink's target.
	Hash string `json:"hash,omitempty"`
	Link string `json:"link,omitempty"`
}

// Manifest is a release tree, its entries sorted by path.
type Manifest struct {
	Entries []Entry
}

// modeBits are the mode bits a release keeps.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

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

// ErrUnsupported marks a tree entry a release cannot hold: a device, a
// socket or a named pipe. Terminal: remove it from the tree.
var ErrUnsupported = errors.New("not a directory, regular file or symlink")

// BuildManifest reads the tree under root, hashing every file. At the root
// the marker file is left out.
func BuildManifest(root string) (Manifest, error) {
	var m Manifest
	// The root may be a link to the tree (the local cloud's attached
	// volume, a release link): what is under it is the release.
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
		if rel == "." || rel == MarkerFile {
			return nil
		}
		e, err := entryOf(p, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		m.Entries = append(m.Entries, e)
		return nil
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("reading the tree %s: %w", root, err)
	}
	sortEntries(m.Entries)
	return m, nil
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
}

// entryOf describes the path p (named rel in the manifest), hashing a file.
func entryOf(p, rel string) (Entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Path: rel, Mode: fi.Mode() & modeBits}
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
		if e.Hash, err = hashFile(p); err != nil {
			return Entry{}, err
		}
	default:
		return Entry{}, fmt.Errorf("%s (%s): %w", p, t, ErrUnsupported)
	}
	return e, nil
}

func hashFile(p string) (string, error) {
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
