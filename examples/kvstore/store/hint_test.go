package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// copyDir copies the files of src into a new directory, as a snapshot of
// the volume would.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	names, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(src, n.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, n.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func removeHints(t testing.TB, dir string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.hint"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil {
			t.Fatal(err)
		}
	}
}

func segFile(dir string, seq int) string { return filepath.Join(dir, fmt.Sprintf("seg-%06d.log", seq)) }
func hintFile(dir string, seq int) string {
	return filepath.Join(dir, hintName(seq))
}

// wantSameStore fails unless a and b have the same index and serve the same
// values.
func wantSameStore(t *testing.T, a, b *Store) {
	t.Helper()
	if !maps.Equal(a.index, b.index) {
		t.Fatalf("indexes differ:\n%v\n%v", a.index, b.index)
	}
	if a.Stats() != b.Stats() {
		t.Errorf("Stats %+v and %+v", a.Stats(), b.Stats())
	}
	for k := range a.index {
		va, _, erra := a.Get(k)
		vb, _, errb := b.Get(k)
		if erra != nil || errb != nil || !bytes.Equal(va, vb) {
			t.Errorf("Get(%q) = %q, %v and %q, %v", k, va, erra, vb, errb)
		}
	}
}

// op is one step of a workload; a nil value deletes.
type op struct {
	key   string
	value []byte
}

func randomOps(seed uint64, n, keys, maxValue int, deletes bool) []op {
	rng := rand.New(rand.NewPCG(seed, 1))
	ops := make([]op, n)
	for i := range ops {
		ops[i].key = fmt.Sprintf("k%03d", rng.IntN(keys))
		if deletes && rng.IntN(4) == 0 {
			continue
		}
		ops[i].value = bytes.Repeat([]byte{byte('a' + i%26)}, rng.IntN(maxValue+1))
	}
	return ops
}

func TestHintsMatchReplay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		segSize int64
		ops     []op
		// end is how the store stops before its directory is copied:
		// "close", "flush" (a fence, then the copy) or "crash" (copied
		// while open, as a snapshot of a live volume).
		end string
	}{
		{"puts across segments", 512, randomOps(1, 60, 1000, 60, false), "close"},
		{"overwrites", 512, randomOps(2, 200, 10, 60, false), "close"},
		{"overwrites and deletes", 512, randomOps(3, 300, 20, 60, true), "close"},
		{"delete of a key from an earlier segment", 128, []op{
			{"a", []byte("1")}, {"b", bytes.Repeat([]byte("x"), 120)}, {"c", bytes.Repeat([]byte("y"), 120)}, {"a", nil},
		}, "close"},
		{"empty values", 128, []op{{"a", []byte{}}, {"b", []byte{}}, {"a", nil}, {"c", []byte{}}}, "close"},
		{"records above the segment size", 64, randomOps(4, 30, 5, 200, true), "close"},
		{"one segment", 1 << 20, randomOps(5, 50, 10, 60, true), "close"},
		{"sealed by a flush", 512, randomOps(6, 200, 30, 60, true), "flush"},
		{"copied while open", 512, randomOps(7, 200, 30, 60, true), "crash"},
		{"no writes", 512, nil, "close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := open(t, dir, tt.segSize)
			want := map[string][]byte{}
			for _, o := range tt.ops {
				var err error
				if o.value == nil {
					err = s.Delete(o.key)
					delete(want, o.key)
				} else {
					err = s.Put(o.key, o.value)
					want[o.key] = o.value
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			switch tt.end {
			case "close":
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			case "flush":
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			sealed := s.Stats().Segments - 1
			hinted, replayed := copyDir(t, dir), copyDir(t, dir)
			removeHints(t, replayed)

			h := open(t, hinted, tt.segSize)
			r := open(t, replayed, tt.segSize)
			if h.opened.hinted != sealed || h.opened.replayed != 1 {
				t.Errorf("with hints: %d segments from hints, %d replayed; want %d and 1", h.opened.hinted, h.opened.replayed, sealed)
			}
			if r.opened.hinted != 0 {
				t.Errorf("without hints: %d segments from hints", r.opened.hinted)
			}
			if tt.end == "flush" && h.opened.replayedBytes != 0 {
				t.Errorf("after a flush, %d bytes replayed; want none", h.opened.replayedBytes)
			}
			wantSameStore(t, h, r)
			if len(h.index) != len(want) {
				t.Errorf("%d keys, want %d", len(h.index), len(want))
			}
			for k, v := range want {
				wantValue(t, h, k, v)
			}
			// Writes go on after an open from hints, and the next open
			// agrees.
			if err := h.Put("after", []byte("x")); err != nil {
				t.Fatal(err)
			}
			h.Close()
			wantValue(t, open(t, hinted, tt.segSize), "after", []byte("x"))
		})
	}
}

// segmentHint builds the hint of segment seq in dir from the segment itself.
func segmentHint(t *testing.T, dir string, seq int) hint {
	t.Helper()
	b, err := os.ReadFile(segFile(dir, seq))
	if err != nil {
		t.Fatal(err)
	}
	h := hint{seq: seq, size: int64(len(b))}
	for off := 0; off < len(b); {
		rec, n, err := DecodeRecord(b[off:])
		if err != nil {
			t.Fatalf("segment %d at %d: %v", seq, off, err)
		}
		h.entries = append(h.entries, hintEntry{op: rec.Op, key: rec.Key, off: int64(off), n: uint32(n), crc: crcAt(b, off)})
		off += n
	}
	return h
}

func crcAt(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off+4:]) }

func (h hint) encode() []byte {
	var entries []byte
	for _, e := range h.entries {
		entries = appendHintEntry(entries, e)
	}
	return encodeHint(h.seq, h.size, entries)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendToFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestHintFallback(t *testing.T) {
	t.Parallel()
	// Every record is 8+5+3+40 = 56 bytes, so segments of 224 bytes hold
	// four each and every sealed segment has the same size: a hint can
	// then be moved to another segment without its size giving it away.
	const segSize, value = 224, 40
	build := func(t *testing.T) string {
		dir := t.TempDir()
		s := open(t, dir, segSize)
		for i := range 14 {
			if err := s.Put(fmt.Sprintf("k%02d", i), bytes.Repeat([]byte{byte('a' + i)}, value)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir // segments 1-3 sealed with hints, 4 holds k12 and k13
	}
	const sealed = 3
	tests := []struct {
		name       string
		damage     func(t *testing.T, dir string)
		wantHinted int
		wantErr    bool
		check      func(t *testing.T, s *Store) // beyond equality with a replay
	}{
		{"intact", func(*testing.T, string) {}, sealed, false, nil},
		{"hint missing", func(t *testing.T, dir string) { os.Remove(hintFile(dir, 2)) }, sealed - 1, false, nil},
		{"hint empty", func(t *testing.T, dir string) { writeFile(t, hintFile(dir, 2), nil) }, sealed - 1, false, nil},
		{"hint bit flipped", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(hintFile(dir, 2))
			b[len(b)/2] ^= 1
			writeFile(t, hintFile(dir, 2), b)
		}, sealed - 1, false, nil},
		{"hint cut short", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(hintFile(dir, 2))
			writeFile(t, hintFile(dir, 2), b[:len(b)-5])
		}, sealed - 1, false, nil},
		{"hint of another segment", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(hintFile(dir, 3))
			writeFile(t, hintFile(dir, 2), b)
		}, sealed - 1, false, nil},
		{"another segment's hint renumbered, checksum valid", func(t *testing.T, dir string) {
			h := segmentHint(t, dir, 3)
			h.seq = 2
			writeFile(t, hintFile(dir, 2), h.encode())
		}, sealed - 1, false, nil},
		{"segment extended after its hint", func(t *testing.T, dir string) {
			appendToFile(t, segFile(dir, 2), appendRecord(nil, Record{Op: OpPut, Key: "extra", Value: []byte("e")}))
		}, sealed - 1, false, func(t *testing.T, s *Store) { wantValue(t, s, "extra", []byte("e")) }},
		{"segment truncated after its hint", func(t *testing.T, dir string) {
			if err := os.Truncate(segFile(dir, 2), segSize-56); err != nil {
				t.Fatal(err)
			}
		}, sealed - 1, false, func(t *testing.T, s *Store) { wantValue(t, s, "k07", nil) }},
		{"segment torn after its hint", func(t *testing.T, dir string) {
			if err := os.Truncate(segFile(dir, 2), segSize-10); err != nil {
				t.Fatal(err)
			}
		}, 0, true, nil},
		{"torn tail in the newest segment", func(t *testing.T, dir string) {
			if err := os.Truncate(segFile(dir, 4), 56+30); err != nil {
				t.Fatal(err)
			}
		}, sealed, false, func(t *testing.T, s *Store) {
			wantValue(t, s, "k12", bytes.Repeat([]byte{'a' + 12}, value))
			wantValue(t, s, "k13", nil)
		}},
		{"the newest segment's hint is not used", func(t *testing.T, dir string) {
			writeFile(t, hintFile(dir, 4), segmentHint(t, dir, 4).encode())
		}, sealed, false, nil},
		{"stale temporary hint", func(t *testing.T, dir string) {
			writeFile(t, hintFile(dir, 2)+".tmp-123", []byte("junk"))
		}, sealed, false, func(t *testing.T, s *Store) {
			if _, err := os.Stat(hintFile(s.dir, 2) + ".tmp-123"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary hint left behind: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := build(t)
			tt.damage(t, dir)
			replayed := copyDir(t, dir)
			removeHints(t, replayed)

			s, err := Open(dir, Options{SegmentSize: segSize})
			if tt.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			if s.opened.hinted != tt.wantHinted {
				t.Errorf("%d segments from hints, want %d", s.opened.hinted, tt.wantHinted)
			}
			wantSameStore(t, s, open(t, replayed, segSize))
			if tt.check != nil {
				tt.check(t, s)
			}
			// Open wrote a good hint in place of the bad one, durably
			// and at once: a copy taken before Close has it.
			if again := open(t, copyDir(t, dir), segSize); again.opened.hinted != sealed {
				t.Errorf("reopened: %d segments from hints, want %d", again.opened.hinted, sealed)
			}
		})
	}
}

// TestGetVerifies checks that neither damage on disk nor a hint that lies
// (with a valid checksum) makes Get serve bytes other than the key's value.
func TestGetVerifies(t *testing.T) {
	t.Parallel()
	const segSize = 1 << 10
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		bad    []string // keys whose Get must fail with ErrCorrupt
	}{
		{"intact", func(*testing.T, string) {}, nil},
		{"value byte flipped", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(segFile(dir, 1))
			h := segmentHint(t, dir, 1)
			e := h.entries[2]
			b[e.off+int64(e.n)-1] ^= 1
			writeFile(t, segFile(dir, 1), b)
		}, []string{"k2"}},
		{"hint swaps two keys", func(t *testing.T, dir string) {
			h := segmentHint(t, dir, 1)
			h.entries[1].key, h.entries[2].key = h.entries[2].key, h.entries[1].key
			writeFile(t, hintFile(dir, 1), h.encode())
		}, []string{"k1", "k2"}},
		{"hint with another checksum", func(t *testing.T, dir string) {
			h := segmentHint(t, dir, 1)
			h.entries[2].crc++
			writeFile(t, hintFile(dir, 1), h.encode())
		}, []string{"k2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := open(t, dir, segSize)
			for i := range 8 {
				if err := s.Put(fmt.Sprintf("k%d", i), bytes.Repeat([]byte{byte('a' + i)}, 200)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			s.Close()
			tt.damage(t, dir)
			s2 := open(t, dir, segSize)
			if s2.opened.hinted != 2 {
				t.Fatalf("%d segments from hints, want 2: the damage must not be seen at open", s2.opened.hinted)
			}
			for i := range 8 {
				k := fmt.Sprintf("k%d", i)
				v, ok, err := s2.Get(k)
				if slices.Contains(tt.bad, k) {
					if !errors.Is(err, ErrCorrupt) || v != nil || ok {
						t.Errorf("Get(%q) = %q, %v, %v; want ErrCorrupt", k, v, ok, err)
					}
					continue
				}
				if err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte('a' + i)}, 200)) {
					t.Errorf("Get(%q) = %q, %v", k, v, err)
				}
			}
		})
	}
}

func TestFlush(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Segments; got != 1 {
		t.Fatalf("flush of an empty store: %d segments, want 1", got)
	}
	if err := s.Put("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the repeat must change nothing
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := s.Stats().Segments; got != 2 {
			t.Fatalf("%d segments after flush, want 2", got)
		}
		if _, err := os.Stat(hintFile(dir, 1)); err != nil {
			t.Fatalf("no hint after flush: %v", err)
		}
		if fi, err := os.Stat(segFile(dir, 2)); err != nil || fi.Size() != 0 {
			t.Fatalf("segment 2 after flush: %v, %v", fi, err)
		}
	}
	snap := copyDir(t, dir) // what the controller's snapshot holds
	if err := s.Put("b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	wantValue(t, s, "a", []byte("1"))
	wantValue(t, s, "b", []byte("2"))
	s2 := open(t, snap, 0)
	if s2.opened.hinted != 1 || s2.opened.replayedBytes != 0 {
		t.Errorf("open of the flushed copy: %+v, want 1 segment from hints and nothing replayed", s2.opened)
	}
	wantValue(t, s2, "a", []byte("1"))
	wantValue(t, s2, "b", nil)
}

func TestReadAfterClose(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir(), 0)
	if err := s.Put("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, _, err := s.Get("a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if err := s.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close = %v, want ErrClosed", err)
	}
}

func TestDecodeHint(t *testing.T) {
	t.Parallel()
	good := hint{seq: 3, size: 2*recordMin + 2 + 5, entries: []hintEntry{
		{op: OpPut, key: "a", off: 0, n: recordMin + 1 + 5, crc: 7},
		{op: OpDelete, key: "b", off: recordMin + 1 + 5, n: recordMin + 1, crc: 9},
	}}
	mutate := func(f func(h *hint)) []byte {
		h := good
		h.entries = slices.Clone(good.entries)
		f(&h)
		return h.encode()
	}
	tests := []struct {
		name    string
		b       []byte
		wantErr string
	}{
		{"good", good.encode(), ""},
		{"empty segment", hint{seq: 1}.encode(), ""},
		{"too short", []byte(hintMagic), "bytes"},
		{"bad checksum", func() []byte {
			b := good.encode()
			b[len(b)-1] ^= 1
			return b
		}(), "checksum"},
		{"other format", func() []byte {
			b := good.encode()[:len(good.encode())-4]
			b[len(hintMagic)-1] = 9
			return withChecksum(b)
		}(), "format"},
		{"segment 0", mutate(func(h *hint) { h.seq = 0 }), "segment 0"},
		{"gap between entries", mutate(func(h *hint) { h.entries[1].off++; h.size++ }), "offset"},
		{"size beyond the entries", mutate(func(h *hint) { h.size++ }), "cover"},
		{"tombstone with a value", mutate(func(h *hint) { h.entries[1].n++; h.size++ }), "op 2"},
		{"put shorter than its key", mutate(func(h *hint) { h.entries[0].n = recordMin; h.size = 2*recordMin + 1 }), "op 1"},
		{"unknown op", mutate(func(h *hint) { h.entries[0].op = 3 }), "op 3"},
		{"key too long", mutate(func(h *hint) {
			h.entries = []hintEntry{{op: OpDelete, key: strings.Repeat("k", MaxKeySize+1), n: uint32(recordMin + MaxKeySize + 1)}}
			h.size = int64(h.entries[0].n)
		}), "key length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := decodeHint(tt.b)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(h.encode(), tt.b) {
					t.Errorf("decoded %+v, which encodes differently", h)
				}
				return
			}
			if !errors.Is(err, errBadHint) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want errBadHint mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// withChecksum appends b's checksum to it, as encodeHint does, for
// hint files with a wrong body and a right checksum.
func withChecksum(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func TestCheckHint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 0)
	for i := range 3 {
		if err := s.Put(fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	f, err := os.Open(segFile(dir, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // after the parallel subtests
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	good := segmentHint(t, dir, 1)
	tests := []struct {
		name   string
		change func(h *hint)
		seq    int
		size   int64
		ok     bool
	}{
		{"matches", func(*hint) {}, 1, fi.Size(), true},
		{"other segment number", func(*hint) {}, 2, fi.Size(), false},
		{"other size", func(*hint) {}, 1, fi.Size() + 1, false},
		{"first record differs", func(h *hint) { h.entries[0].crc++ }, 1, fi.Size(), false},
		{"last record differs", func(h *hint) { h.entries[2].crc++ }, 1, fi.Size(), false},
		{"middle record not read", func(h *hint) { h.entries[1].crc++ }, 1, fi.Size(), true},
		{"empty segment", func(h *hint) { h.entries, h.size = nil, 0 }, 1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := good
			h.entries = slices.Clone(good.entries)
			tt.change(&h)
			err := checkHint(h, tt.seq, f, tt.size)
			if tt.ok && err != nil || !tt.ok && !errors.Is(err, errBadHint) {
				t.Fatalf("checkHint = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
