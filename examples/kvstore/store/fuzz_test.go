package store

import (
	"bytes"
	"errors"
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
