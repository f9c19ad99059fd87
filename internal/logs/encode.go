package logs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// DocID is the stable part of the ids of an object's documents: a hash of
// the bucket's ARN and the key. A line's id is DocID-OFFSET, so the same
// line of the same object always gets the same id, however often it is
// delivered.
func DocID(bucket, key string) string {
	h := sha256.Sum256([]byte("arn:aws:s3:::" + bucket + "/" + key))
	return hex.EncodeToString(h[:10])
}

// AppendAction appends the bulk action line creating document base-offset
// in the daily index prefix-YYYY.MM.DD of the line's time.
func AppendAction(dst []byte, l *Line, prefix, base string, offset int64) []byte {
	dst = append(dst, `{"create":{"_index":"`...)
	dst = appendIndex(dst, l, prefix)
	dst = append(dst, `","_id":"`...)
	dst = append(dst, base...)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, offset, 10)
	return append(dst, "\"}}\n"...)
}

func appendIndex(dst []byte, l *Line, prefix string) []byte {
	t := l.Time()
	dst = append(dst, prefix...)
	dst = append(dst, '-')
	dst = append(dst, t[0:4]...)
	dst = append(dst, '.')
	dst = append(dst, t[5:7]...)
	dst = append(dst, '.')
	return append(dst, t[8:10]...)
}

// IndexName returns the daily index of a parsed line.
func IndexName(l *Line, prefix string) string { return string(appendIndex(nil, l, prefix)) }

// AppendDoc appends the line's document as JSON: each known field under
// its AWS name (ip:port fields split in two, the request split into
// method, URL and protocol), absent (-) fields left out, unknown trailing
// fields under unknown_fields, and where the line came from.
func AppendDoc(dst []byte, l *Line, object string, offset int64) []byte {
	dst = appendFields(dst, l)
	dst = append(dst, `,"log_object":`...)
	dst = appendString(dst, []byte(object), false)
	return appendOffset(dst, offset)
}

// objectField is a document's log_object member, encoded once per object:
// the pipeline writes the same one into every line's document.
func objectField(object string) []byte {
	return appendString([]byte(`,"log_object":`), []byte(object), false)
}

// appendDoc is AppendDoc with the object's member already encoded.
func appendDoc(dst []byte, l *Line, objField []byte, offset int64) []byte {
	dst = appendFields(dst, l)
	dst = append(dst, objField...)
	return appendOffset(dst, offset)
}

func appendOffset(dst []byte, offset int64) []byte {
	dst = append(dst, `,"log_offset":`...)
	dst = strconv.AppendInt(dst, offset, 10)
	return append(dst, '}')
}

// appendFields appends the document up to its log_object member.
func appendFields(dst []byte, l *Line) []byte {
	s := l.spec
	dst = append(dst, `{"lb_type":"`...)
	dst = append(dst, s.format.String()...)
	dst = append(dst, '"')
	known := min(l.n, len(s.fields))
	for i := 0; i < known; i++ {
		v := l.f[i]
		if isDash(v) {
			continue
		}
		d := &s.fields[i]
		q := l.quoted&(1<<uint(i)) != 0
		switch d.typ {
		case tInt, tFloat:
			dst = append(dst, d.key...)
			dst = appendNumber(dst, v)
		case tHostPort:
			c := hostPortAt(v)
			ip := v[:c]
			if len(ip) > 1 && ip[0] == '[' && ip[len(ip)-1] == ']' {
				ip = ip[1 : len(ip)-1]
			}
			dst = append(dst, d.ipKey...)
			dst = appendString(dst, ip, false)
			dst = append(dst, d.portKey...)
			dst = appendNumber(dst, v[c+1:])
		case tDate:
			// Parse checked it is digits, '-', 'T', ':', '.' and 'Z'
			// only: nothing to escape.
			dst = append(dst, d.keyQuote...)
			dst = append(dst, v...)
			dst = append(dst, '"')
		case tRequest:
			dst = append(dst, d.key...)
			dst = appendString(dst, v, q)
			if m := bytes.IndexByte(v, ' '); m > 0 && !(m == 1 && v[0] == '-') {
				if p := bytes.LastIndexByte(v, ' '); p > m {
					dst = append(dst, `,"http_method":`...)
					dst = appendString(dst, v[:m], q)
					dst = append(dst, `,"url":`...)
					dst = appendString(dst, v[m+1:p], q)
					if p+1 < len(v) {
						dst = append(dst, `,"http_version":`...)
						dst = appendString(dst, v[p+1:], q)
					}
				}
			}
		default:
			// Most fields need no escaping: test that here, without the
			// call, and write key, quote and value in two appends.
			if plainPrefix(v) == len(v) {
				dst = append(dst, d.keyQuote...)
				dst = append(dst, v...)
				dst = append(dst, '"')
				continue
			}
			dst = append(dst, d.key...)
			dst = appendString(dst, v, q)
		}
	}
	if l.n > len(s.fields) {
		dst = append(dst, `,"unknown_fields":[`...)
		for i := len(s.fields); i < l.n; i++ {
			if i > len(s.fields) {
				dst = append(dst, ',')
			}
			dst = appendString(dst, l.f[i], l.quoted&(1<<uint(i)) != 0)
		}
		dst = append(dst, ']')
	}
	return dst
}

// appendNumber writes a checked number as JSON: a leading dot or a
// trailing one is not JSON, so they get a zero.
func appendNumber(dst []byte, v []byte) []byte {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		dst = append(dst, '-')
		v = v[1:]
	}
	if len(v) > 0 && v[0] == '.' {
		dst = append(dst, '0')
	}
	// JSON forbids leading zeros ("007"): drop them.
	for len(v) > 1 && v[0] == '0' && v[1] != '.' {
		v = v[1:]
	}
	dst = append(dst, v...)
	if v[len(v)-1] == '.' {
		dst = append(dst, '0')
	}
	return dst
}

// plain marks bytes that go into a JSON string unchanged.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainPrefix returns how many leading bytes of v go into a JSON string
// unchanged. This scan is most of the encoding's time, so it tests eight
// bytes at once: a byte needs care if it is ≥ 0x80, < 0x20, '"' or '\\'.
// Each test sets the high bit of the bytes it matches, exactly up to the
// first match (a borrow only runs past a byte that matched), so the
// lowest set bit is the first byte to stop at.
func plainPrefix(v []byte) int {
	i := 0
	// Sixteen bytes a turn while they are all plain, then eight.
	for ; i+16 <= len(v); i += 16 {
		x, y := binary.LittleEndian.Uint64(v[i:]), binary.LittleEndian.Uint64(v[i+8:])
		tx := (x | (x - 0x20*lsb) | ((x ^ '"'*lsb) - lsb) | ((x ^ '\\'*lsb) - lsb))
		ty := (y | (y - 0x20*lsb) | ((y ^ '"'*lsb) - lsb) | ((y ^ '\\'*lsb) - lsb))
		if (tx|ty)&msb != 0 {
			break
		}
	}
	for ; i+8 <= len(v); i += 8 {
		x := binary.LittleEndian.Uint64(v[i:])
		t := (x | (x - 0x20*lsb) | ((x ^ '"'*lsb) - lsb) | ((x ^ '\\'*lsb) - lsb)) & msb
		if t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for _, c := range v[i:] {
		if !plain[c] {
			break
		}
		i++
	}
	return i
}

const hexDigits = "0123456789abcdef"

// appendString writes v as a JSON string. In a quoted field ELB's escapes
// (\xHH, \" and \\) are decoded first. Bytes that are not valid UTF-8
// become U+FFFD, so the document is always valid JSON.
func appendString(dst []byte, v []byte, unescape bool) []byte {
	dst = append(dst, '"')
	i := 0
	for i < len(v) {
		start := i
		i += plainPrefix(v[i:])
		dst = append(dst, v[start:i]...)
		if i == len(v) {
			break
		}
		c := v[i]
		switch {
		case c == '\\' && unescape && i+1 < len(v):
			if v[i+1] == 'x' && i+3 < len(v) && unhex(v[i+2]) >= 0 && unhex(v[i+3]) >= 0 {
				b := byte(unhex(v[i+2])<<4 | unhex(v[i+3]))
				i += 4
				if b >= 0x80 {
					// A multi-byte character escaped byte by byte:
					// gather it, then check it is UTF-8.
					var seq [4]byte
					n := 0
					seq[n], n = b, 1
					for n < 4 && i+3 < len(v) && v[i] == '\\' && v[i+1] == 'x' && unhex(v[i+2]) >= 0 && unhex(v[i+3]) >= 0 {
						nb := byte(unhex(v[i+2])<<4 | unhex(v[i+3]))
						if nb < 0x80 || utf8.RuneStart(nb) {
							break
						}
						seq[n] = nb
						n++
						i += 4
					}
					dst = appendUTF8(dst, seq[:n])
					continue
				}
				dst = appendByte(dst, b)
				continue
			}
			dst = appendByte(dst, v[i+1])
			i += 2
		case c >= 0x80:
			r, size := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && size <= 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, v[i:i+size]...)
			}
			i += max(size, 1)
		default:
			dst = appendByte(dst, c)
			i++
		}
	}
	return append(dst, '"')
}

func appendUTF8(dst, seq []byte) []byte {
	for len(seq) > 0 {
		r, size := utf8.DecodeRune(seq)
		if r == utf8.RuneError && size <= 1 {
			dst = append(dst, `\ufffd`...)
			seq = seq[1:]
			continue
		}
		dst = append(dst, seq[:size]...)
		seq = seq[size:]
	}
	return dst
}

// appendByte writes one ASCII byte, escaped as JSON needs.
func appendByte(dst []byte, c byte) []byte {
	switch {
	case c == '"' || c == '\\':
		return append(dst, '\\', c)
	case c < 0x20:
		return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
	case c >= 0x80:
		return append(dst, `\ufffd`...)
	}
	return append(dst, c)
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Template is the index template for the daily indices of prefix: times
// as dates, addresses as ip, counters and timings as numbers, everything
// else as keywords. It is built from the same field tables the parsers
// use, so the two cannot drift apart.
func Template(prefix string) []byte {
	props := map[string]any{
		"lb_type": kw(), "log_object": kw(), "log_offset": map[string]string{"type": "long"},
		"unknown_fields": kw(), "http_method": kw(), "url": map[string]any{"type": "keyword", "ignore_above": 8191}, "http_version": kw(),
	}
	for _, f := range []Format{FormatALB, FormatClassic, FormatNLB, FormatConnection} {
		for _, d := range specs[f].fields {
			if _, seen := props[d.name]; seen && d.typ != tHostPort {
				continue
			}
			switch d.typ {
			case tDate:
				props[d.name] = map[string]string{"type": "date", "format": "strict_date_optional_time||epoch_millis"}
			case tHostPort:
				props[d.ip] = map[string]string{"type": "ip"}
				props[d.port] = map[string]string{"type": "long"}
			case tIP:
				props[d.name] = map[string]string{"type": "ip"}
			case tInt:
				props[d.name] = map[string]string{"type": "long"}
			case tFloat:
				props[d.name] = map[string]string{"type": "double"}
			case tRequest:
				props[d.name] = map[string]any{"type": "keyword", "ignore_above": 8191}
			default:
				props[d.name] = kw()
			}
		}
	}
	t := map[string]any{
		"index_patterns": []string{prefix + "-*"},
		"priority":       100,
		"template": map[string]any{
			"settings": map[string]any{"number_of_shards": 1},
			"mappings": map[string]any{"dynamic": "false", "properties": props},
		},
	}
	out, _ := json.Marshal(t)
	return out
}

func kw() map[string]any { return map[string]any{"type": "keyword", "ignore_above": 2048} }
