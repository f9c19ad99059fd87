package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A record on disk is
//
//	length  uint32 (big endian): bytes in payload
//	crc     uint32 (big endian): CRC-32C of payload
//	payload op byte, key length uint32, key, value
//
// The length comes first so that replay can tell a record cut short by a
// crash (ErrTorn) from the end of the file without trusting any payload byte.
const (
	headerSize = 8
	// MaxKeySize and MaxValueSize bound what a record may hold, so that a
	// damaged length field cannot make replay allocate gigabytes.
	MaxKeySize   = 1 << 10
	MaxValueSize = 1 << 20
	maxPayload   = 1 + 4 + MaxKeySize + MaxValueSize
)

// Op is what a record does to its key.
type Op byte

const (
	OpPut    Op = 1
	OpDelete Op = 2 // a tombstone: the key has no value from here on
)

// Record is one decoded log entry.
type Record struct {
	Op    Op
	Key   string
	Value []byte // nil for OpDelete
}

var (
	// ErrTorn means the bytes end in the middle of a record: the tail of a
	// write that a crash interrupted.
	ErrTorn = errors.New("torn record")
	// ErrCorrupt means a record's bytes are all there but wrong (checksum or
	// fields). At the tail of the last segment it is also what a torn write
	// that left garbage looks like.
	ErrCorrupt = errors.New("corrupt record")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends rec's encoding to b.
func appendRecord(b []byte, rec Record) []byte {
	payload := 1 + 4 + len(rec.Key) + len(rec.Value)
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(payload))
	b = binary.BigEndian.AppendUint32(b, 0) // crc, filled in below
	b = append(b, byte(rec.Op))
	b = binary.BigEndian.AppendUint32(b, uint32(len(rec.Key)))
	b = append(b, rec.Key...)
	b = append(b, rec.Value...)
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+headerSize:], castagnoli))
	return b
}

// DecodeRecord decodes the record at the start of b and returns it with the
// number of bytes it took. It returns ErrTorn if b ends before the record
// does and ErrCorrupt if the record is damaged. The returned Value does not
// alias b.
func DecodeRecord(b []byte) (Record, int, error) {
	rec, n, err := parseRecord(b)
	if err == nil && rec.Value != nil {
		rec.Value = append([]byte{}, rec.Value...)
	}
	return rec, n, err
}

// parseRecord is DecodeRecord without the copy: the Value aliases b. Replay
// and Get use it so that a value is not copied only to be dropped or
// returned once.
func parseRecord(b []byte) (Record, int, error) {
	if len(b) < headerSize {
		return Record{}, 0, ErrTorn
	}
	n := binary.BigEndian.Uint32(b)
	if n < 5 || n > maxPayload {
		return Record{}, 0, fmt.Errorf("%w: payload length %d", ErrCorrupt, n)
	}
	if uint64(len(b)-headerSize) < uint64(n) {
		return Record{}, 0, ErrTorn
	}
	payload := b[headerSize : headerSize+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return Record{}, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	op := Op(payload[0])
	klen := binary.BigEndian.Uint32(payload[1:])
	if klen > MaxKeySize || uint64(klen) > uint64(len(payload)-5) {
		return Record{}, 0, fmt.Errorf("%w: key length %d", ErrCorrupt, klen)
	}
	rec := Record{Op: op, Key: string(payload[5 : 5+klen])}
	value := payload[5+klen:]
	switch op {
	case OpPut:
		if len(value) > MaxValueSize {
			return Record{}, 0, fmt.Errorf("%w: value length %d", ErrCorrupt, len(value))
		}
		rec.Value = value
	case OpDelete:
		if len(value) != 0 {
			return Record{}, 0, fmt.Errorf("%w: tombstone with a value", ErrCorrupt)
		}
	default:
		return Record{}, 0, fmt.Errorf("%w: unknown op %d", ErrCorrupt, op)
	}
	return rec, headerSize + int(n), nil
}
