package store

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, Record{Op: OpPut, Key: "k", Value: []byte("v")}))
	f.Add(appendRecord(nil, Record{Op: OpDelete, Key: "gone"}))
	f.Add([]byte{0, 0, 0, 5, 1, 2, 3, 4, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrTorn) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		// What decodes must encode back to the same bytes.
		if again := appendRecord(nil, rec); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding %+v gives %x, decoded from %x", rec, again, b[:n])
		}
	})
}

// FuzzDecodeHint feeds decodeHint what a damaged or foreign hint file could
// hold. Whatever it accepts must be the one canonical encoding of a hint
// whose entries tile the segment with records a segment could hold, since
// Open indexes from it without looking at the values.
func FuzzDecodeHint(f *testing.F) {
	valid := hint{seq: 2, size: 2*recordMin + 3 + 4, entries: []hintEntry{
		{op: OpPut, key: "ab", off: 0, n: recordMin + 2 + 4, crc: 0xdeadbeef},
		{op: OpDelete, key: "c", off: recordMin + 2 + 4, n: recordMin + 1, crc: 1},
	}}
	f.Add(valid.encode())
	f.Add(hint{seq: 1}.encode())
	f.Add(hint{seq: 7, size: recordMin, entries: []hintEntry{{op: OpPut, n: recordMin}}}.encode())
	f.Add(valid.encode()[:hintHeaderSize+5])
	f.Add([]byte(hintMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeHint(t, b)
		// With its checksum fixed, so that the fuzzer reaches the parsing
		// behind it instead of failing on the checksum every time.
		if len(b) >= 4 {
			checkDecodeHint(t, withChecksum(slices.Clone(b[:len(b)-4])))
		}
	})
}

func checkDecodeHint(t *testing.T, b []byte) {
	t.Helper()
	h, err := decodeHint(b)
	if err != nil {
		if !errors.Is(err, errBadHint) {
			t.Fatalf("unclassified error %v", err)
		}
		return
	}
	if again := h.encode(); !bytes.Equal(again, b) {
		t.Fatalf("re-encoding %+v gives %x, decoded from %x", h, again, b)
	}
	if h.seq < 1 {
		t.Fatalf("segment %d", h.seq)
	}
	var off int64
	for _, e := range h.entries {
		least := int64(headerSize + 5 + len(e.key))
		if e.off != off || len(e.key) > MaxKeySize ||
			e.op == OpPut && (int64(e.n) < least || int64(e.n)-least > MaxValueSize) ||
			e.op == OpDelete && int64(e.n) != least ||
			e.op != OpPut && e.op != OpDelete {
			t.Fatalf("accepted entry %+v at offset %d", e, off)
		}
		off += int64(e.n)
	}
	if off != h.size {
		t.Fatalf("entries cover %d bytes of %d", off, h.size)
	}
}
