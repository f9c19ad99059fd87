package snapstore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/restic/chunker"
	"github.com/zeebo/blake3"
)

// chunkPolynomial fixes the Rabin fingerprint's irreducible polynomial
// (restic/chunker's own test polynomial; TestChunkPolynomial checks it is
// irreducible). Chunk boundaries depend on it, so it must stay the same across
// runs, restarts and versions: restic draws a random one per repository to
// hide content fingerprints from an untrusted storage provider, but here a
// new polynomial would cut every file differently and nothing would dedup
// against older snapshots. The store is local and trusted, so the
// fingerprinting concern does not apply. Changing it never breaks Restore,
// only dedup.
const chunkPolynomial = chunker.Pol(0x3DA3358B4DC173)

// maxChunkSize bounds every chunk the chunker cuts (8 MiB), and with it the
// buffers; files smaller than chunker.MinSize (512 KiB) are one chunk.
const maxChunkSize = chunker.MaxSize

// buffers are one worker's: a chunk-sized buffer and (for Create) a
// chunker, whose tables and 512 KiB read buffer survive Reset. They are
// pooled on the Store, so repeated Creates and Restores allocate nothing big.
type buffers struct {
	chunk   []byte // len maxChunkSize
	chunker *chunker.Chunker
}

func (s *Store) getBuffers() *buffers {
	if b, ok := s.buffers.Get().(*buffers); ok {
		return b
	}
	return &buffers{chunk: make([]byte, maxChunkSize)}
}

// hashHex is a chunk's name: its BLAKE3-256 digest in lowercase hex.
func hashHex(data []byte) (sum [64]byte) {
	d := blake3.Sum256(data)
	hex.Encode(sum[:], d[:])
	return sum
}

// dirtyDirs collects directories whose entries changed during one Create, so
// they are fsynced once, before the manifest that depends on them.
type dirtyDirs struct {
	mu   sync.Mutex
	dirs map[string]bool
}

func (d *dirtyDirs) add(dir string) {
	d.mu.Lock()
	if d.dirs == nil {
		d.dirs = make(map[string]bool)
	}
	d.dirs[dir] = true
	d.mu.Unlock()
}

func (d *dirtyDirs) sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for dir := range d.dirs {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	d.dirs = nil
	return nil
}

// putChunk stores data under its hash unless a chunk of that name exists,
// reporting whether it wrote one. The write is atomic (temporary file,
// fsync, rename), so a reader or a crash never sees a partial chunk.
func (s *Store) putChunk(data []byte, dirty *dirtyDirs) (hash string, wrote bool, err error) {
	sum := hashHex(data)
	hash = string(sum[:])
	final := s.chunkPath(hash)
	if _, err := os.Lstat(final); err == nil {
		return hash, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return hash, false, fmt.Errorf("checking chunk %s: %w", hash, err)
	}
	if err := s.ensureShard(filepath.Dir(final), dirty); err != nil {
		return hash, false, fmt.Errorf("storing chunk %s: %w", hash, err)
	}
	tmp, err := os.CreateTemp(s.tmpDir, "chunk-*")
	if err != nil {
		return hash, false, fmt.Errorf("storing chunk %s: %w", hash, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), final)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return hash, false, fmt.Errorf("storing chunk %s: %w", hash, err)
	}
	dirty.add(filepath.Dir(final))
	return hash, true, nil
}

func (s *Store) ensureShard(dir string, dirty *dirtyDirs) error {
	s.mu.Lock()
	known := s.shards[dir]
	s.mu.Unlock()
	if known {
		return nil
	}
	if err := os.Mkdir(dir, 0o755); err == nil {
		dirty.add(s.chunksDir)
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	}
	s.mu.Lock()
	s.shards[dir] = true
	s.mu.Unlock()
	return nil
}

// openChunk opens a stored chunk and checks its size against ref.
func (s *Store) openChunk(ref ChunkRef) (*os.File, error) {
	if len(ref.Hash) != 64 || ref.Size < 0 || ref.Size > maxChunkSize {
		return nil, fmt.Errorf("chunk %q: %w: malformed reference", ref.Hash, ErrCorrupt)
	}
	f, err := os.Open(s.chunkPath(ref.Hash))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("chunk %s: %w: missing", ref.Hash, ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", ref.Hash, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("chunk %s: %w", ref.Hash, err)
	}
	if fi.Size() != ref.Size {
		f.Close()
		return nil, fmt.Errorf("chunk %s: %w: %d bytes stored, manifest says %d", ref.Hash, ErrCorrupt, fi.Size(), ref.Size)
	}
	return f, nil
}

// readChunk reads the chunk f (opened by openChunk) into buf and verifies
// its hash, returning the content.
func readChunk(f *os.File, ref ChunkRef, buf []byte) ([]byte, error) {
	data := buf[:ref.Size]
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("chunk %s: reading: %w", ref.Hash, err)
	}
	if sum := hashHex(data); string(sum[:]) != ref.Hash {
		return nil, fmt.Errorf("chunk %s: %w: content hashes to %s", ref.Hash, ErrCorrupt, sum[:])
	}
	return data, nil
}

// progress reports cumulative bytes to the caller's callback, one call at a
// time so done never goes backwards.
type progress struct {
	mu          sync.Mutex
	done, total int64
	fn          func(done, total int64)
}

func (p *progress) add(n int64) {
	if p.fn == nil || n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	// A file that grew while being read can push done past the total
	// measured by the scan.
	p.fn(p.done, max(p.total, p.done))
}
