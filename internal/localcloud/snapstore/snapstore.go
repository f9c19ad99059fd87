// Package snapstore keeps incremental, content-addressed snapshots of
// directory trees: the local cloud's EBS snapshots. A snapshot is a manifest
// listing the tree's directories, files and symlinks with their metadata; file
// content is cut into chunks by content-defined chunking (cdc.go), each chunk
// named by its BLAKE3 hash and stored once however many files and snapshots
// share it. A Create given a parent snapshot of the same volume reuses the
// parent's chunk lists for files whose metadata shows them unchanged, without
// reading them. Chunks are made durable in batches (durable.go); a snapshot's
// manifest is published only once everything it names is durable.
//
// Linux only: it uses Linux's stat fields, splice(2), sync_file_range(2) and
// O_TMPFILE (with a fallback for filesystems without it).
//
// Layout under the store's directory:
//
//	chunks/ab/cdef…       chunk content, named by its BLAKE3 hex digest
//	manifests/<id>.json   one manifest per completed snapshot
//	tmp/                  files being written, renamed or linked into place
//	lock                  flock held by the open Store
//
// The package must never write to, chmod or otherwise mutate a source tree
// (files are opened read-only, with O_NOATIME where permitted); never leave a
// manifest for a snapshot that did not complete, nor replace an existing one
// (the manifest is written last, by an atomic link that fails if the name is
// taken); never restore over existing data; and never let GC remove a chunk
// that a manifest, or a Create or Restore in flight, may still need.
package snapstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handover-dev/handover/internal/clock"
)

var (
	// ErrNotFound means no completed snapshot has that id. Retrying helps
	// only if a Create of that id is still in flight.
	ErrNotFound = errors.New("snapshot not found")
	// ErrExists means Create was given an id that already has a manifest or
	// a Create in flight. Terminal: pick another id.
	ErrExists = errors.New("snapshot already exists")
	// ErrNotEmpty means Restore's destination already has entries. Terminal
	// for that destination; nothing in it was touched.
	ErrNotEmpty = errors.New("destination is not empty")
	// ErrCorrupt means stored data does not match what a manifest says (a
	// chunk's hash or size differs, a chunk is missing, or a manifest does
	// not parse). Terminal: the snapshot is damaged.
	ErrCorrupt = errors.New("snapshot store corrupt")
	// ErrLocked means another Store (in this or another process) has the
	// directory open. Safe to retry once that Store is closed.
	ErrLocked = errors.New("snapshot store in use")
	// ErrInvalidID means a snapshot id is not usable as a file name.
	// Terminal.
	ErrInvalidID = errors.New("invalid snapshot id")
)

// Manifest describes one completed snapshot.
type Manifest struct {
	ID     string `json:"id"`
	Parent string `json:"parent,omitempty"`
	// Created is when Create started, before the tree was read, by the
	// wall clock whatever clock the caller simulates: a later Create that
	// names this snapshot as parent compares it with file timestamps and
	// distrusts files not clearly older (see timestampGranularity).
	Created time.Time `json:"created"`
	// Size is the logical size: the sum of the regular files' sizes.
	Size int64 `json:"size"`
	// Entries are sorted by Path; the root directory is ".", first.
	Entries []Entry `json:"entries"`
}

// Entry is one directory, regular file or symlink. Path is slash-separated
// and relative to the snapshot root. CTime and Inode only serve change
// detection; Restore cannot and does not reproduce them.
type Entry struct {
	Path   string      `json:"path"`
	Mode   fs.FileMode `json:"mode"`
	Size   int64       `json:"size,omitzero"`
	MTime  time.Time   `json:"mtime"`
	CTime  time.Time   `json:"ctime,omitzero"`
	Inode  uint64      `json:"inode,omitzero"`
	Link   string      `json:"link,omitzero"`
	Chunks []ChunkRef  `json:"chunks,omitzero"`
}

// ChunkRef names one chunk of a file's content, in file order.
type ChunkRef struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
}

// Stats reports the work one Create or Restore did.
//
// Create: Files counts regular files, ReusedFiles those taken from the parent
// without reading; BytesScanned is the logical size of all files;
// BytesRead and BytesHashed are the source bytes read and hashed (equal);
// BytesWritten is what new chunks added to the store; NewChunks are chunks
// written, ReusedChunks chunks of read files that were already stored (dedup
// hits; chunks of reused files are not counted).
//
// Restore: Files counts regular files; BytesRead and BytesHashed are chunk
// bytes read from the store and verified; BytesWritten is what was written
// to the destination; BytesScanned is the snapshot's logical size.
type Stats struct {
	Files, ReusedFiles                                 int
	BytesScanned, BytesHashed, BytesWritten, BytesRead int64
	NewChunks, ReusedChunks                            int
	Duration                                           time.Duration
}

func (s *Stats) add(o Stats) {
	s.Files += o.Files
	s.ReusedFiles += o.ReusedFiles
	s.BytesScanned += o.BytesScanned
	s.BytesHashed += o.BytesHashed
	s.BytesWritten += o.BytesWritten
	s.BytesRead += o.BytesRead
	s.NewChunks += o.NewChunks
	s.ReusedChunks += o.ReusedChunks
}

// Store is a snapshot store in one directory. It is safe for concurrent use;
// one Store at a time may have a directory open (enforced with flock).
type Store struct {
	dir, chunksDir, manifestsDir, tmpDir string

	logger  *slog.Logger
	clock   clock.Clock
	workers int

	// gcMu is held shared by Create and Restore for their whole run and
	// exclusively by GC, so GC never removes a chunk that an in-flight
	// Create found present (and will reference) or a Restore will read.
	gcMu sync.RWMutex

	mu       sync.Mutex
	lock     *os.File                  // nil once closed
	creating map[string]bool           // ids with a Create in flight
	dirs     map[string]*dirSeq        // see durable.go
	inflight map[string]*inflightChunk // chunks being stored, by hash
	tmpfile  bool                      // see tmpfile_linux.go
}

// Open opens the store in dir, creating its layout if needed. Leftover
// temporary files of an earlier process (one that crashed mid-Create) are
// removed. logger may be nil.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		dir:          dir,
		chunksDir:    filepath.Join(dir, "chunks"),
		manifestsDir: filepath.Join(dir, "manifests"),
		tmpDir:       filepath.Join(dir, "tmp"),
		logger:       logger,
		clock:        clock.Real{},
		// A worker is busy on a core but for its system calls, which
		// mostly copy to and from the page cache: a few more workers than
		// cores keep the cores busy. Each holds a 10 MiB buffer.
		workers:  min(runtime.GOMAXPROCS(0)+2, 8),
		creating: make(map[string]bool),
		dirs:     make(map[string]*dirSeq),
		inflight: make(map[string]*inflightChunk),
	}
	for _, d := range []string{s.chunksDir, s.manifestsDir, s.tmpDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("opening snapshot store %s: %w", dir, err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening snapshot store %s: %w", dir, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			err = ErrLocked
		}
		return nil, fmt.Errorf("opening snapshot store %s: %w", dir, err)
	}
	s.lock = lock
	if err := s.cleanTmp(); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening snapshot store %s: %w", dir, err)
	}
	s.tmpfile = probeTmpfile(s.tmpDir)
	return s, nil
}

// Close releases the store's directory. Operations in flight must have
// returned. Safe to repeat.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close() // closing the descriptor releases the flock
	s.lock = nil
	if err != nil {
		return fmt.Errorf("closing snapshot store %s: %w", s.dir, err)
	}
	return nil
}

// cleanTmp removes temporary files; callers must exclude Creates (Open, or
// GC under the exclusive lock).
func (s *Store) cleanTmp() error {
	names, err := readDirNames(s.tmpDir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(s.tmpDir, n)); err != nil {
			return err
		}
	}
	return nil
}

// Manifest returns the manifest of completed snapshot id, or an error
// wrapping ErrNotFound (also for an id that could never be valid).
func (s *Store) Manifest(id string) (*Manifest, error) {
	if err := validID(id); err != nil {
		return nil, fmt.Errorf("reading manifest of snapshot %q: %w: %w", id, ErrNotFound, err)
	}
	b, err := os.ReadFile(s.manifestPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading manifest of snapshot %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifest of snapshot %s: %w", id, err)
	}
	m := new(Manifest)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("reading manifest of snapshot %s: %w: %w", id, ErrCorrupt, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("reading manifest of snapshot %s: %w: it names snapshot %q", id, ErrCorrupt, m.ID)
	}
	return m, nil
}

// Delete removes snapshot id's manifest; its chunks stay until GC. Deleting
// a snapshot that others name as parent is safe: every manifest lists all
// of its own chunks. A missing snapshot is not an error; safe to repeat.
func (s *Store) Delete(id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("deleting snapshot %q: %w", id, err)
	}
	if err := os.Remove(s.manifestPath(id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("deleting snapshot %s: %w", id, err)
	}
	if err := syncDir(s.manifestsDir); err != nil {
		return fmt.Errorf("deleting snapshot %s: %w", id, err)
	}
	s.logger.Debug("snapshot deleted", "snapshot-id", id)
	return nil
}

// writeManifest makes m durable under its id, failing with ErrExists rather
// than replacing a manifest already there. It publishes m only after
// ready, which runs meanwhile (while m is written and fsynced to a
// temporary file), returns nil.
func (s *Store) writeManifest(m *Manifest, ready func() error) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	tmp, err := os.CreateTemp(s.tmpDir, "manifest-*")
	if err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	defer os.Remove(tmp.Name())
	written := make(chan error, 1)
	go func() {
		_, err := tmp.Write(b)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		written <- err
	}()
	rerr := ready()
	if err := <-written; err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	if rerr != nil {
		return rerr
	}
	// link(2), unlike rename(2), refuses to replace an existing name.
	if err := os.Link(tmp.Name(), s.manifestPath(m.ID)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ErrExists
		}
		return fmt.Errorf("writing manifest: %w", err)
	}
	if err := syncDir(s.manifestsDir); err != nil {
		return fmt.Errorf("writing manifest: %w", err)
	}
	return nil
}

func (s *Store) manifestPath(id string) string {
	return filepath.Join(s.manifestsDir, id+".json")
}

// chunkPath shards by the first two hex digits, keeping directories small.
func (s *Store) chunkPath(hash string) string {
	return filepath.Join(s.chunksDir, hash[:2], hash[2:])
}

// listManifests returns the ids of completed snapshots.
func (s *Store) listManifests() ([]string, error) {
	names, err := readDirNames(s.manifestsDir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range names {
		if id, ok := strings.CutSuffix(n, ".json"); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// validID accepts ids usable as file names: EC2's "snap-0abc…" and the like.
func validID(id string) error {
	if id == "" || len(id) > 128 || id[0] == '.' || id[0] == '-' {
		return ErrInvalidID
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return ErrInvalidID
		}
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// syncDir makes the directory's entries (creations, renames, removals)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
