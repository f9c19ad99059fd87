package snapstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sync/errgroup"
)

// A chunk is durable once its content is fsynced and its name is in a
// directory fsynced since: only then may a manifest refer to it. fsync is
// the expensive part — on this project's virtual disk (ext4 without a
// journal) one fsync of a new 1 MiB file takes 30 to 80 ms — so a Create
// never waits for one chunk's: its workers write each new chunk to a
// temporary file, start its write-back and hand it to a chunkBatch, whose
// syncers fsync many at once (their writes overlap and share the disk's
// cache flushes) and link or rename each into place once its content is
// durable. A name in chunks/ therefore always holds durable content, and a
// Create that finds a chunk stored needs at most its directory synced. The
// directories are fsynced, all at once, after the last chunk; the manifest
// is written meanwhile and published after them.

const (
	// syncers is how many fsyncs of one Create's chunks may wait at once;
	// more merge into fewer commits, and each holds only a descriptor.
	syncers = 32
	// dirSyncers bounds the directory fsyncs at the end of a Create.
	dirSyncers = 64
)

// dirSeq counts, for one directory of the store, the names added to it
// (chunks renamed in, shard directories created) and how many of those the
// last fsync of it covered, so a Create fsyncs only the directories holding
// names it depends on that are not yet known durable, including names
// another Create added. A directory first seen since Open counts one added
// name of unknown durability: a process that crashed may have renamed into
// it without syncing it.
type dirSeq struct {
	added, synced uint64
	exists        bool // a shard directory known to exist
}

// dirLocked returns dir's counts; s.mu must be held.
func (s *Store) dirLocked(dir string) *dirSeq {
	d := s.dirs[dir]
	if d == nil {
		d = &dirSeq{added: 1}
		s.dirs[dir] = d
	}
	return d
}

// inflightChunk is a chunk some Create is writing and has not yet put in
// place; other writers of the same content wait for it instead of
// writing it again.
type inflightChunk struct {
	hash string
	done chan struct{}
	ok   bool // set before done is closed: the chunk is in place
}

// claim registers hash as being written by the caller (mine), or returns
// the write already in flight.
func (s *Store) claim(hash string) (ic *inflightChunk, mine bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ic := s.inflight[hash]; ic != nil {
		return ic, false
	}
	ic = &inflightChunk{hash: hash, done: make(chan struct{})}
	s.inflight[hash] = ic
	return ic, true
}

func (s *Store) release(ic *inflightChunk, ok bool) {
	s.mu.Lock()
	delete(s.inflight, ic.hash)
	ic.ok = ok
	s.mu.Unlock()
	close(ic.done)
}

// chunkBatch stores one Create's chunks and makes them durable.
type chunkBatch struct {
	s     *Store
	queue chan pendingChunk
	wg    sync.WaitGroup

	mu    sync.Mutex
	err   error             // the first failure of a syncer
	need  map[string]uint64 // directory → names added that must be synced
	waits []*inflightChunk  // chunks other writers are storing for us
}

// pendingChunk is a new chunk written to a temporary file, not yet durable.
type pendingChunk struct {
	f     chunkFile
	final string
	ic    *inflightChunk
}

func (s *Store) newChunkBatch() *chunkBatch {
	b := &chunkBatch{s: s, queue: make(chan pendingChunk, syncers), need: make(map[string]uint64)}
	for range syncers {
		b.wg.Go(b.syncLoop)
	}
	return b
}

// put stores data under its hash unless a chunk of that name is stored or
// being stored, reporting whether it wrote one. It returns once the content
// is written, before it is durable; stop and durable wait for that. Safe for
// concurrent use until stop.
func (b *chunkBatch) put(data []byte, pw *pipeWriter) (hash string, wrote bool, err error) {
	sum := hashHex(data)
	hash = string(sum[:])
	final := b.s.chunkPath(hash)
	ic, mine := b.s.claim(hash)
	if !mine {
		b.mu.Lock()
		b.waits = append(b.waits, ic)
		b.mu.Unlock()
		return hash, false, nil
	}
	if _, err := os.Lstat(final); err == nil {
		b.s.release(ic, true)
		b.needDir(filepath.Dir(final))
		return hash, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		b.s.release(ic, false)
		return hash, false, fmt.Errorf("checking chunk %s: %w", hash, err)
	}
	f, err := b.s.createChunkFile()
	if err != nil {
		b.s.release(ic, false)
		return hash, false, fmt.Errorf("storing chunk %s: %w", hash, err)
	}
	if _, err := pw.write(f.File, data); err != nil {
		f.discard()
		b.s.release(ic, false)
		return hash, false, fmt.Errorf("storing chunk %s: %w", hash, err)
	}
	// The fsync will not wait for all of the write-back it would
	// otherwise start.
	startWriteback(f.File)
	b.queue <- pendingChunk{f: f, final: final, ic: ic}
	return hash, true, nil
}

func (b *chunkBatch) syncLoop() {
	for p := range b.queue {
		if err := b.commit(p); err != nil {
			b.mu.Lock()
			if b.err == nil {
				b.err = err
			}
			b.mu.Unlock()
		}
	}
}

// commit makes a pending chunk's content durable and puts it in place.
func (b *chunkBatch) commit(p pendingChunk) error {
	dir := filepath.Dir(p.final)
	err := p.f.Sync()
	if err == nil {
		err = b.ensureShard(dir)
	}
	if err == nil {
		err = p.f.publish(p.final)
	}
	if err != nil {
		p.f.discard()
		b.s.release(p.ic, false)
		return fmt.Errorf("storing chunk %s: %w", p.ic.hash, err)
	}
	if err := p.f.Close(); err != nil {
		// Durable and in place: the name stays valid.
		b.s.logger.Warn("closing stored chunk", "chunk", p.ic.hash, "error", err)
	}
	b.added(dir)
	b.s.release(p.ic, true)
	return nil
}

// ensureShard creates a shard directory unless it is known to exist, and
// makes the batch depend on its name in chunks/, whoever created it: a
// shard another Create made moments ago may not be durable yet. Creating
// under the store's lock, once per shard in the Store's life, keeps another
// batch from seeing the shard before its creation is counted.
func (b *chunkBatch) ensureShard(dir string) error {
	b.s.mu.Lock()
	d := b.s.dirLocked(dir)
	if !d.exists {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			b.s.dirLocked(b.s.chunksDir).added++
		} else if !errors.Is(err, fs.ErrExist) {
			b.s.mu.Unlock()
			return err
		}
		d.exists = true
	}
	n := b.s.dirLocked(b.s.chunksDir).added
	b.s.mu.Unlock()
	b.depend(b.s.chunksDir, n)
	return nil
}

// added records a name added to dir, which the batch depends on. Call it
// before releasing the chunk's claim: a writer that finds the chunk stored
// only after the release must see it counted (needDir).
func (b *chunkBatch) added(dir string) {
	b.s.mu.Lock()
	d := b.s.dirLocked(dir)
	d.added++
	n := d.added
	b.s.mu.Unlock()
	b.depend(dir, n)
}

// needDir makes the batch depend on every name added to dir so far.
func (b *chunkBatch) needDir(dir string) {
	b.s.mu.Lock()
	n := b.s.dirLocked(dir).added
	b.s.mu.Unlock()
	b.depend(dir, n)
}

func (b *chunkBatch) depend(dir string, n uint64) {
	b.mu.Lock()
	b.need[dir] = max(b.need[dir], n)
	b.mu.Unlock()
}

// stop waits for the syncers to make every chunk put durable and returns
// the first failure. Call it once, after the last put, also when the
// Create has failed, so no temporary file is left open.
func (b *chunkBatch) stop() error {
	close(b.queue)
	b.wg.Wait()
	return b.err
}

// durable waits, after stop, until the chunks the batch found being stored
// by other writers are durable too, then fsyncs the directories holding
// the names the batch depends on.
func (b *chunkBatch) durable() error {
	for _, ic := range b.waits {
		<-ic.done
		if !ic.ok {
			return fmt.Errorf("storing chunk %s: a concurrent write of it failed", ic.hash)
		}
		b.needDir(filepath.Dir(b.s.chunkPath(ic.hash)))
	}
	return b.syncDirs()
}

// syncDirs fsyncs, all at once, the directories holding names the batch
// depends on that no fsync has covered yet.
func (b *chunkBatch) syncDirs() error {
	var todo []string
	b.s.mu.Lock()
	for dir, n := range b.need {
		if b.s.dirLocked(dir).synced < n {
			todo = append(todo, dir)
		}
	}
	b.s.mu.Unlock()
	var g errgroup.Group
	g.SetLimit(dirSyncers)
	for _, dir := range todo {
		g.Go(func() error {
			b.s.mu.Lock()
			covered := b.s.dirs[dir].added
			b.s.mu.Unlock()
			if err := syncDir(dir); err != nil {
				return err
			}
			b.s.mu.Lock()
			d := b.s.dirs[dir]
			d.synced = max(d.synced, covered)
			b.s.mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}
