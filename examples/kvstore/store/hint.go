package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// A hint file (seg-000001.hint beside seg-000001.log) lets Open index a
// sealed segment without reading its values, the idea of Bitcask's hint
// files: it lists every record of the segment by key, place and checksum,
// so a restart costs a read of the keys instead of the data. Hints are an
// optimisation only. Open uses one only if it is intact and still describes
// its segment, and replays the segment otherwise; Get checks the record it
// reads against the hint's checksum and key, so a wrong hint makes a read
// fail rather than serve another record's bytes.
//
//	magic    8 bytes, hintMagic (the format version is its last byte)
//	seq      uint32: the segment described
//	size     uint64: the segment's size in bytes
//	entries  one per record in segment order, until the checksum:
//	         op byte, key length uint16, key, offset uint64,
//	         length uint32 (the whole record, header included),
//	         crc uint32 (the record's, as in its header)
//	checksum uint32: CRC-32C of everything before it
//
// Entries tile the segment: the first starts at 0, each starts where the
// previous ended and the last ends at size. Keeping every record, not only
// each key's last, makes that checkable and makes applying a hint the same
// sequence of index updates as replaying its segment.
const (
	hintMagic      = "kvhint\x00\x01"
	hintHeaderSize = len(hintMagic) + 4 + 8
	// hintEntryMin is the size of an entry for an empty key.
	hintEntryMin = 1 + 2 + 8 + 4 + 4
	// recordMin is the size of a record with an empty key and value.
	recordMin = headerSize + 1 + 4
)

// errBadHint means a hint file cannot be used. Open never returns it: it
// replays the segment instead.
var errBadHint = errors.New("unusable hint")

// hintEntry is one record of a segment as a hint lists it.
type hintEntry struct {
	op  Op
	key string
	off int64
	n   uint32 // bytes of the whole record, header included
	crc uint32
}

// hint is a decoded hint file.
type hint struct {
	seq     int
	size    int64
	entries []hintEntry
}

func hintName(seq int) string { return fmt.Sprintf("seg-%06d.hint", seq) }

// appendHintEntry appends e's encoding to b. The store builds the active
// segment's entries this way as it writes, so that sealing the segment
// needs no second read of it and the pending list costs about its keys'
// bytes, with no per-entry pointers for the garbage collector.
func appendHintEntry(b []byte, e hintEntry) []byte {
	b = append(b, byte(e.op))
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.key)))
	b = append(b, e.key...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.off))
	b = binary.BigEndian.AppendUint32(b, e.n)
	return binary.BigEndian.AppendUint32(b, e.crc)
}

// encodeHint returns the hint file for segment seq of size bytes whose
// encoded entries (appendHintEntry) are entries.
func encodeHint(seq int, size int64, entries []byte) []byte {
	b := make([]byte, 0, hintHeaderSize+len(entries)+4)
	b = append(b, hintMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(seq))
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = append(b, entries...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeHint parses a hint file. It trusts nothing in b: every error wraps
// errBadHint, and a hint it accepts is internally consistent (entries tile
// the segment and each length fits its op and key), though it may still
// describe another segment than the one on disk; checkHint tells.
func decodeHint(b []byte) (hint, error) {
	if len(b) < hintHeaderSize+4 {
		return hint{}, fmt.Errorf("%w: %d bytes", errBadHint, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(body):]) {
		return hint{}, fmt.Errorf("%w: checksum mismatch", errBadHint)
	}
	if string(body[:len(hintMagic)]) != hintMagic {
		return hint{}, fmt.Errorf("%w: unknown format %q", errBadHint, body[:len(hintMagic)])
	}
	h := hint{
		seq:  int(binary.BigEndian.Uint32(body[len(hintMagic):])),
		size: int64(binary.BigEndian.Uint64(body[len(hintMagic)+4:])),
	}
	if h.seq < 1 || h.size < 0 {
		return hint{}, fmt.Errorf("%w: segment %d of %d bytes", errBadHint, h.seq, h.size)
	}
	rest := body[hintHeaderSize:]
	// Each entry takes at least hintEntryMin bytes, so this bounds the
	// allocation by the file's size, whatever the file claims.
	h.entries = make([]hintEntry, 0, len(rest)/hintEntryMin)
	var off int64
	for len(rest) > 0 {
		if len(rest) < hintEntryMin {
			return hint{}, fmt.Errorf("%w: entry cut short at segment offset %d", errBadHint, off)
		}
		op := Op(rest[0])
		klen := int(binary.BigEndian.Uint16(rest[1:]))
		if klen > MaxKeySize || len(rest) < hintEntryMin+klen {
			return hint{}, fmt.Errorf("%w: key length %d at segment offset %d", errBadHint, klen, off)
		}
		e := hintEntry{op: op, key: string(rest[3 : 3+klen])}
		p := rest[3+klen:]
		e.off = int64(binary.BigEndian.Uint64(p))
		e.n = binary.BigEndian.Uint32(p[8:])
		e.crc = binary.BigEndian.Uint32(p[12:])
		rest = rest[hintEntryMin+klen:]
		if e.off != off {
			return hint{}, fmt.Errorf("%w: entry at offset %d, want %d", errBadHint, e.off, off)
		}
		// The record lengths a valid segment can hold, as parseRecord
		// checks them.
		least := uint32(recordMin + klen)
		switch {
		case op == OpPut && e.n >= least && e.n-least <= MaxValueSize:
		case op == OpDelete && e.n == least:
		default:
			return hint{}, fmt.Errorf("%w: op %d with key of %d bytes in a record of %d bytes at offset %d", errBadHint, op, klen, e.n, off)
		}
		off += int64(e.n)
		h.entries = append(h.entries, e)
	}
	if off != h.size {
		return hint{}, fmt.Errorf("%w: entries cover %d bytes of a %d-byte segment", errBadHint, off, h.size)
	}
	return h, nil
}

// checkHint tells whether h, decoded from seq's hint file, describes the
// segment f as it is now. The size catches a segment truncated or
// appended to since the hint was written. The first and last records'
// headers (length and checksum of each) catch a segment replaced by another
// of the same size, at the cost of two small reads; a change in between
// would also need the same size and the same first and last records, and
// Get would still refuse its records on their checksums.
func checkHint(h hint, seq int, f *os.File, size int64) error {
	if h.seq != seq {
		return fmt.Errorf("%w: describes segment %d", errBadHint, h.seq)
	}
	if h.size != size {
		return fmt.Errorf("%w: segment of %d bytes, hint for %d", errBadHint, size, h.size)
	}
	if len(h.entries) == 0 {
		return nil
	}
	for _, e := range []hintEntry{h.entries[0], h.entries[len(h.entries)-1]} {
		var hdr [headerSize]byte
		if _, err := f.ReadAt(hdr[:], e.off); err != nil {
			return fmt.Errorf("reading the record header at offset %d: %w", e.off, err)
		}
		if binary.BigEndian.Uint32(hdr[:]) != e.n-headerSize || binary.BigEndian.Uint32(hdr[4:]) != e.crc {
			return fmt.Errorf("%w: record at offset %d differs", errBadHint, e.off)
		}
	}
	return nil
}

// writeHintFile writes a hint file atomically: a crash leaves the old file
// or the new one, never a torn one (which decodeHint would reject anyway).
// The caller fsyncs the directory, once for a batch: without that the
// rename may not be in a snapshot taken right after.
func writeHintFile(dir string, seq int, b []byte) error {
	name := hintName(seq)
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing hint for segment %d: %w", seq, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		return fmt.Errorf("writing hint for segment %d: %w", seq, err)
	}
	return nil
}

// removeHintTemps removes what a crash in writeHintFile left behind.
func removeHintTemps(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, "seg-*.hint.tmp-*"))
	for _, n := range names {
		os.Remove(n)
	}
}
