// Package store is kvstore's durable state: an in-memory index of keys and
// values rebuilt from append-only segment files (seg-000001.log, …) in one
// directory. Every change is a checksummed record appended to the newest
// segment and fsynced before the call returns, so a caller may acknowledge a
// write as soon as Put or Delete returns nil. It must never report success
// for a record that is not yet on disk.
package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// DefaultSegmentSize is the size at which a segment is closed and the next
// one started.
const DefaultSegmentSize = 64 << 20

// ErrClosed is returned by writes to a closed Store.
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

// Store is safe for concurrent use. Writers are serialised: each holds the
// lock through its write and fsync, so the order of records on disk is the
// order of acknowledgements.
type Store struct {
	dir     string
	segSize int64
	log     *slog.Logger

	mu       sync.RWMutex // guards everything below
	index    map[string][]byte
	cur      *os.File // the newest segment, open for appending
	curSeq   int
	curSize  int64
	segments int
	bytes    int64 // in all segments, the current one included
	closed   bool
	// failed is set by a failed append or fsync: after a failed fsync the
	// kernel may have dropped the dirty pages, so nothing written since the
	// last good fsync can be trusted and the store takes no more writes.
	failed error
}

// Open replays every segment in dir (which it creates if missing) and
// returns a Store ready for writes. A record cut short at the tail of the
// newest segment — a write interrupted by a crash, so never acknowledged — is
// truncated away; damage anywhere else is an error.
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
	s := &Store{dir: dir, segSize: opts.SegmentSize, log: opts.Logger, index: map[string][]byte{}}
	seqs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	for i, seq := range seqs {
		if err := s.replay(seq, i == len(seqs)-1); err != nil {
			return nil, err
		}
	}
	if len(seqs) == 0 {
		if err := s.roll(1); err != nil {
			return nil, err
		}
	} else {
		last := seqs[len(seqs)-1]
		f, err := os.OpenFile(s.segPath(last), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, fmt.Errorf("opening segment %d: %w", last, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("opening segment %d: %w", last, err)
		}
		s.cur, s.curSeq, s.curSize, s.segments = f, last, st.Size(), len(seqs)
	}
	s.log.Info("replayed segments", "segments", s.segments, "keys", len(s.index), "bytes", s.bytes)
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

// replay applies one segment's records to the index.
func (s *Store) replay(seq int, last bool) error {
	path := s.segPath(seq)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading segment %d: %w", seq, err)
	}
	off := 0
	for off < len(b) {
		rec, n, err := DecodeRecord(b[off:])
		if err != nil {
			if !last {
				return fmt.Errorf("segment %d at offset %d: %w", seq, off, err)
			}
			// Only the newest segment is ever written to, and a write is
			// acknowledged only after its fsync: a bad tail there is a
			// write that never finished.
			s.log.Warn("truncating torn tail", "segment", seq, "offset", off, "dropped-bytes", len(b)-off, "error", err)
			if err := truncate(path, int64(off)); err != nil {
				return err
			}
			break
		}
		s.apply(rec)
		off += n
	}
	s.bytes += int64(off)
	return nil
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

func (s *Store) apply(rec Record) {
	switch rec.Op {
	case OpPut:
		s.index[rec.Key] = rec.Value
	case OpDelete:
		delete(s.index, rec.Key)
	}
}

// roll closes the current segment, if any, and starts segment seq.
func (s *Store) roll(seq int) error {
	if s.cur != nil {
		if err := s.cur.Sync(); err != nil {
			return fmt.Errorf("syncing segment %d: %w", s.curSeq, err)
		}
		if err := s.cur.Close(); err != nil {
			return fmt.Errorf("closing segment %d: %w", s.curSeq, err)
		}
		s.cur = nil
	}
	f, err := os.OpenFile(s.segPath(seq), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("creating segment %d: %w", seq, err)
	}
	// The new file's name must be durable before a record in it is
	// acknowledged.
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.cur, s.curSeq, s.curSize = f, seq, 0
	s.segments++
	return nil
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

// Get returns key's value and whether it exists. The slice must not be
// modified.
func (s *Store) Get(key string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.index[key]
	return v, ok
}

// Put stores value under key and returns once the record is fsynced.
func (s *Store) Put(key string, value []byte) error {
	if len(value) > MaxValueSize {
		return fmt.Errorf("value of %d bytes: above the limit of %d", len(value), MaxValueSize)
	}
	return s.write(Record{Op: OpPut, Key: key, Value: slices.Clone(value)})
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
			// roll may have closed the old segment without opening the
			// new one.
			s.failed = err
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
	s.curSize += int64(n)
	s.bytes += int64(n)
	s.apply(rec)
	return nil
}

// Sync fsyncs the current segment. Every acknowledged write is already
// synced; Sync is for callers (a fence) that must be sure, and is safe to
// repeat.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.failed != nil {
		return s.failed
	}
	if err := s.cur.Sync(); err != nil {
		return fmt.Errorf("syncing segment %d: %w", s.curSeq, err)
	}
	return nil
}

// Stats returns the number of keys, segments and bytes in segments.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Keys: len(s.index), Segments: s.segments, Bytes: s.bytes}
}

// Close waits for the write in progress, fsyncs and closes the current
// segment. Writes after Close fail with ErrClosed; Close is safe to repeat.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
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

var _ io.Closer = (*Store)(nil)
