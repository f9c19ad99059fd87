// Package store is kvstore's durable state: append-only segment files
// (seg-000001.log, …) in one directory and an in-memory index of where each
// key's latest record lies in them. Every change is a checksummed record
// appended to the newest segment and fsynced before the call returns, so a
// caller may acknowledge a write as soon as Put or Delete returns nil.
//
// Open rebuilds the index. A sealed segment (any but the newest) with an
// intact hint file (seg-000001.hint, see hint.go) is indexed from it without
// reading its values; any other segment is replayed record by record. Hints
// are written when a segment is sealed and by Flush and Close, so that the
// cost of a restart follows the number of keys rather than the bytes stored.
//
// It must never report success for a record that is not yet on disk, nor
// serve a value whose checksum it has not just verified: values are read
// from the segments on every Get, and a missing, stale or damaged hint may
// cost time but never correctness.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// DefaultSegmentSize is the size at which a segment is closed and the next
// one started.
const DefaultSegmentSize = 64 << 20

// ErrClosed is returned by reads and writes of a closed Store.
var ErrClosed = errors.New("store is closed")

// Options configures Open. The zero Options uses the defaults.
type Options struct {
	// SegmentSize is the size after which a new segment is started; a single
	// record may exceed it. Zero means DefaultSegmentSize.
	SegmentSize int64
	Logger      *slog.Logger
}

// Stats describes the store for GET /stats.
type Stats struct {
	Keys     int   `json:"keys"`
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
}

// loc is where a key's latest value lies.
type loc struct {
	seq uint32
	n   uint32 // bytes of the whole record, header included
	crc uint32 // the record's checksum, which Get checks the record against
	off int64
}

// openStats says how Open built the index, for its log line and for tests
// that must tell a hint used from a hint ignored.
type openStats struct {
	hinted, replayed int
	replayedBytes    int64
}

// Store is safe for concurrent use. Writers are serialised: each holds the
// lock through its write and fsync, so the order of records on disk is the
// order of acknowledgements.
type Store struct {
	dir     string
	segSize int64
	log     *slog.Logger
	opened  openStats

	mu      sync.RWMutex // guards everything below
	index   map[string]loc
	files   map[int]*os.File // every segment, open for reading
	cur     *os.File         // the newest segment, open for appending
	curSeq  int
	curSize int64
	// curHint holds the newest segment's hint entries (appendHintEntry),
	// written out as its hint file when it is sealed.
	curHint []byte
	// unhinted holds the hint files of sealed segments that still lack one
	// on disk: replayed by Open, or whose hint could not be written. Flush
	// and Close try again.
	unhinted map[int][]byte
	segments int
	bytes    int64 // in all segments, the current one included
	closed   bool
	// failed is set by a failed append or fsync: after a failed fsync the
	// kernel may have dropped the dirty pages, so nothing written since the
	// last good fsync can be trusted and the store takes no more writes.
	failed error
}

// Open indexes every segment in dir (which it creates if missing) and
// returns a Store ready for writes. A record cut short at the tail of the
// newest segment — a write interrupted by a crash, so never acknowledged — is
// truncated away; damage anywhere else found while replaying is an error.
// Damage inside a segment indexed from its hint is found by Get instead.
func Open(dir string, opts Options) (*Store, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", dir, err)
	}
	start := time.Now()
	s := &Store{
		dir: dir, segSize: opts.SegmentSize, log: opts.Logger,
		index: map[string]loc{}, files: map[int]*os.File{}, unhinted: map[int][]byte{},
	}
	removeHintTemps(dir)
	seqs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if err := s.load(seqs); err != nil {
		s.closeFiles()
		return nil, err
	}
	if len(seqs) == 0 {
		if err := s.roll(1); err != nil {
			return nil, err
		}
	} else {
		last := seqs[len(seqs)-1]
		f, err := os.OpenFile(s.segPath(last), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("opening segment %d: %w", last, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			s.closeFiles()
			return nil, fmt.Errorf("opening segment %d: %w", last, err)
		}
		s.cur, s.curSeq, s.curSize, s.segments = f, last, st.Size(), len(seqs)
	}
	// Hints for the segments just replayed make the next start fast. Open
	// writes them now rather than at Close so that a crash does not lose
	// them, and so that their entries need not stay in memory; it costs a
	// few fsyncs, once.
	s.writeUnhinted()
	s.log.Info("opened store", "segments", s.segments, "from-hints", s.opened.hinted,
		"replayed", s.opened.replayed, "replayed-bytes", s.opened.replayedBytes,
		"keys", len(s.index), "bytes", s.bytes, "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}

func (s *Store) segPath(seq int) string {
	return filepath.Join(s.dir, fmt.Sprintf("seg-%06d.log", seq))
}

func listSegments(dir string) ([]int, error) {
	names, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if err != nil {
		return nil, fmt.Errorf("listing segments in %s: %w", dir, err)
	}
	var seqs []int
	for _, name := range names {
		var seq int
		if _, err := fmt.Sscanf(filepath.Base(name), "seg-%06d.log", &seq); err != nil || seq < 1 {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// load indexes the segments seqs, in order, and opens each for reading.
func (s *Store) load(seqs []int) error {
	var buf []byte // reused across replays
	for i, seq := range seqs {
		f, err := os.Open(s.segPath(seq))
		if err != nil {
			return fmt.Errorf("opening segment %d: %w", seq, err)
		}
		s.files[seq] = f
		last := i == len(seqs)-1
		// The newest segment is the one a crash may have torn, and the
		// one writes go on appending to: it is always replayed.
		if !last && s.loadHint(seq, f) {
			continue
		}
		entries, size, err := s.replay(seq, f, last, &buf)
		if err != nil {
			return err
		}
		if last {
			s.curHint = entries
		} else {
			s.unhinted[seq] = encodeHint(seq, size, entries)
		}
	}
	return nil
}

// loadHint indexes segment seq from its hint file and reports whether it
// could; if not, nothing was applied and the segment must be replayed.
func (s *Store) loadHint(seq int, f *os.File) bool {
	b, err := os.ReadFile(filepath.Join(s.dir, hintName(seq)))
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Debug("no hint, replaying", "segment", seq)
		return false
	}
	var h hint
	if err == nil {
		h, err = decodeHint(b)
	}
	var st os.FileInfo
	if err == nil {
		st, err = f.Stat()
	}
	if err == nil {
		err = checkHint(h, seq, f, st.Size())
	}
	if err != nil {
		s.log.Warn("ignoring hint, replaying", "segment", seq, "error", err)
		return false
	}
	for _, e := range h.entries {
		s.apply(e.op, e.key, loc{seq: uint32(seq), n: e.n, crc: e.crc, off: e.off})
	}
	s.bytes += h.size
	s.opened.hinted++
	return true
}

// replay applies one segment's records to the index and returns their hint
// entries and the segment's size. buf is scratch space, grown as needed.
func (s *Store) replay(seq int, f *os.File, last bool, buf *[]byte) ([]byte, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("reading segment %d: %w", seq, err)
	}
	if int64(cap(*buf)) < st.Size() {
		*buf = make([]byte, st.Size())
	}
	b := (*buf)[:st.Size()]
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, st.Size()), b); err != nil {
		return nil, 0, fmt.Errorf("reading segment %d: %w", seq, err)
	}
	var entries []byte
	off := 0
	for off < len(b) {
		rec, n, err := parseRecord(b[off:])
		if err != nil {
			if !last {
				return nil, 0, fmt.Errorf("segment %d at offset %d: %w", seq, off, err)
			}
			// Only the newest segment is ever written to, and a write is
			// acknowledged only after its fsync: a bad tail there is a
			// write that never finished.
			s.log.Warn("truncating torn tail", "segment", seq, "offset", off, "dropped-bytes", len(b)-off, "error", err)
			if err := truncate(s.segPath(seq), int64(off)); err != nil {
				return nil, 0, err
			}
			break
		}
		l := loc{seq: uint32(seq), n: uint32(n), crc: binary.BigEndian.Uint32(b[off+4:]), off: int64(off)}
		entries = appendHintEntry(entries, hintEntry{op: rec.Op, key: rec.Key, off: l.off, n: l.n, crc: l.crc})
		s.apply(rec.Op, rec.Key, l)
		off += n
	}
	s.bytes += int64(off)
	s.opened.replayed++
	s.opened.replayedBytes += int64(off)
	return entries, int64(off), nil
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("truncating %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncating %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("truncating %s: %w", path, err)
	}
	return nil
}

func (s *Store) apply(op Op, key string, l loc) {
	switch op {
	case OpPut:
		s.index[key] = l
	case OpDelete:
		delete(s.index, key)
	}
}

// roll seals the current segment, if any, and starts segment seq. If the
// new segment cannot be created the store is left as it was, still
// appending to the current one; only a failed fsync fails the store.
func (s *Store) roll(seq int) error {
	if s.cur != nil {
		if err := s.cur.Sync(); err != nil {
			s.failed = fmt.Errorf("syncing segment %d: %w", s.curSeq, err)
			return s.failed
		}
	}
	path := s.segPath(seq)
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("creating segment %d: %w", seq, err)
	}
	r, err := os.Open(path)
	if err == nil {
		// The new file's name must be durable before a record in it is
		// acknowledged.
		err = syncDir(s.dir)
	}
	if err != nil {
		w.Close()
		if r != nil {
			r.Close()
		}
		// Removed, or the next roll would find it and fail for good.
		os.Remove(path)
		return fmt.Errorf("creating segment %d: %w", seq, err)
	}
	if s.cur != nil {
		if err := s.cur.Close(); err != nil {
			// Synced above, so nothing is lost.
			s.log.Warn("closing sealed segment", "segment", s.curSeq, "error", err)
		}
		s.unhinted[s.curSeq] = encodeHint(s.curSeq, s.curSize, s.curHint)
	}
	s.cur, s.curSeq, s.curSize, s.curHint = w, seq, 0, nil
	s.files[seq] = r
	s.segments++
	s.writeUnhinted()
	return nil
}

// writeUnhinted writes the hint files still missing. A failure is only
// logged, and the hint kept for the next try: without a hint the segment
// is replayed, which is slower but as correct.
func (s *Store) writeUnhinted() {
	if len(s.unhinted) == 0 {
		return
	}
	var written []int
	for seq, b := range s.unhinted {
		if err := writeHintFile(s.dir, seq, b); err != nil {
			s.log.Warn("cannot write hint", "segment", seq, "error", err)
			continue
		}
		written = append(written, seq)
	}
	if len(written) == 0 {
		return
	}
	if err := syncDir(s.dir); err != nil {
		s.log.Warn("cannot write hints", "error", err)
		return
	}
	for _, seq := range written {
		delete(s.unhinted, seq)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// Get returns key's value and whether it exists. It reads the value from
// its segment and verifies the record's checksum, and that the record is
// the one the index expects, on every call: an error wrapping ErrCorrupt
// means the bytes on disk are not what was written, and nothing is served.
// After Close it returns ErrClosed.
func (s *Store) Get(key string) ([]byte, bool, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, false, ErrClosed
	}
	l, ok := s.index[key]
	f := s.files[int(l.seq)]
	s.mu.RUnlock()
	if !ok {
		return nil, false, nil
	}
	// Read without the lock, so that a slow disk holds up no writer.
	// Segments are never removed, so l stays valid; a Close meanwhile
	// makes ReadAt fail with os.ErrClosed.
	b := make([]byte, l.n)
	if _, err := f.ReadAt(b, l.off); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return nil, false, ErrClosed
		}
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: segment ends before the record", ErrCorrupt)
		}
		return nil, false, fmt.Errorf("reading %q from segment %d at offset %d: %w", key, l.seq, l.off, err)
	}
	rec, n, err := parseRecord(b)
	switch {
	case err != nil:
	case n != len(b) || rec.Op != OpPut || rec.Key != key:
		err = fmt.Errorf("%w: another record than indexed", ErrCorrupt)
	case binary.BigEndian.Uint32(b[4:]) != l.crc:
		// A valid record, but not the one the index (perhaps a hint)
		// was built from.
		err = fmt.Errorf("%w: checksum differs from the index", ErrCorrupt)
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %q from segment %d at offset %d: %w", key, l.seq, l.off, err)
	}
	return rec.Value, true, nil
}

// Put stores value under key and returns once the record is fsynced.
func (s *Store) Put(key string, value []byte) error {
	if len(value) > MaxValueSize {
		return fmt.Errorf("value of %d bytes: above the limit of %d", len(value), MaxValueSize)
	}
	return s.write(Record{Op: OpPut, Key: key, Value: value})
}

// Delete removes key (writing a tombstone) and returns once the record is
// fsynced. Deleting a missing key succeeds and still writes a tombstone.
func (s *Store) Delete(key string) error {
	return s.write(Record{Op: OpDelete, Key: key})
}

func (s *Store) write(rec Record) error {
	if len(rec.Key) == 0 || len(rec.Key) > MaxKeySize {
		return fmt.Errorf("key of %d bytes: must be 1 to %d", len(rec.Key), MaxKeySize)
	}
	b := appendRecord(nil, rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.failed != nil {
		return s.failed
	}
	if s.curSize > 0 && s.curSize+int64(len(b)) > s.segSize {
		if err := s.roll(s.curSeq + 1); err != nil {
			return err
		}
	}
	n, err := s.cur.Write(b)
	if err == nil {
		err = s.cur.Sync()
	}
	if err != nil {
		// The record may be partly on disk; cut it off so that the next
		// record does not land behind garbage.
		if terr := s.cur.Truncate(s.curSize); terr != nil {
			s.log.Error("cannot truncate after a failed write", "segment", s.curSeq, "error", terr)
		}
		s.failed = fmt.Errorf("appending to segment %d: %w", s.curSeq, err)
		return s.failed
	}
	l := loc{seq: uint32(s.curSeq), n: uint32(n), crc: binary.BigEndian.Uint32(b[4:]), off: s.curSize}
	s.curHint = appendHintEntry(s.curHint, hintEntry{op: rec.Op, key: rec.Key, off: l.off, n: l.n, crc: l.crc})
	s.curSize += int64(n)
	s.bytes += int64(n)
	s.apply(rec.Op, rec.Key, l)
	return nil
}

// Flush readies the directory to be copied by a snapshot, for a fence: it
// seals the current segment unless it is empty, writes the hint files still
// missing, and fsyncs what it wrote. Safe to repeat; a repeat with no write
// in between does nothing more. An error means the segment data may not be
// durable; a hint that cannot be written is only logged, since it costs the
// next Open time, not data.
//
// Flush seals whatever the current segment holds, however small: otherwise
// the instance started from the snapshot would replay it, reading up to
// SegmentSize bytes of values while writes are paused. Writes are stopped
// during a fence, and fences are rare (one per handover), so the cost is
// one more, possibly small, segment file per fence.
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.failed != nil {
		return s.failed
	}
	if s.curSize > 0 {
		if err := s.roll(s.curSeq + 1); err != nil {
			if s.failed != nil {
				return err
			}
			s.log.Warn("cannot seal the current segment, the next start will replay it", "segment", s.curSeq, "error", err)
		}
	}
	if err := s.cur.Sync(); err != nil {
		return fmt.Errorf("syncing segment %d: %w", s.curSeq, err)
	}
	s.writeUnhinted()
	return nil
}

// Stats returns the number of keys, segments and bytes in segments.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Keys: len(s.index), Segments: s.segments, Bytes: s.bytes}
}

// Close waits for the write in progress, fsyncs and closes the current
// segment, writes the hint files still missing and closes every segment.
// It does not seal the current segment: a restart replays it, which costs
// at most SegmentSize bytes. Reads and writes after Close fail with
// ErrClosed; Close is safe to repeat.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.writeUnhinted()
	s.closeFiles()
	if s.cur == nil {
		return nil
	}
	err := s.cur.Sync()
	if cerr := s.cur.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("closing segment %d: %w", s.curSeq, err)
	}
	return nil
}

// closeFiles closes the segments opened for reading.
func (s *Store) closeFiles() {
	for seq, f := range s.files {
		f.Close()
		delete(s.files, seq)
	}
}

var _ io.Closer = (*Store)(nil)
