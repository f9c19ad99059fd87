package logs

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// plainPrefixSlow is plainPrefix's definition, a byte at a time.
func plainPrefixSlow(v []byte) int {
	for i, c := range v {
		if !plain[c] {
			return i
		}
	}
	return len(v)
}

// TestPlainPrefix holds the eight-bytes-at-once scan to its definition:
// every byte value at every position of lines of several lengths, over
// plain bytes, and with a second byte needing care after the first (a
// borrow must not move the first stop).
func TestPlainPrefix(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 24} {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				for _, second := range []int{-1, 0x00, '"', '\\', 0x1f, 0x80, 0xff} {
					v := make([]byte, n)
					for i := range v {
						v[i] = 'a' + byte(i%26)
					}
					v[pos] = byte(c)
					if second >= 0 && pos+1 < n {
						v[pos+1] = byte(second)
					}
					if got, want := plainPrefix(v), plainPrefixSlow(v); got != want {
						t.Fatalf("plainPrefix(%q) = %d, want %d", v, got, want)
					}
				}
			}
		}
	}
}

// TestAppendStringEscapes: strings needing care at and around the
// eight-byte boundaries encode to the JSON encoding/json reads back.
func TestAppendStringEscapes(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`abcdefg"`, `abcdefg"`},
		{`abcdefgh"ijklmnop\q`, `abcdefgh"ijklmnop\q`},
		{"abcdefgh\x01", "abcdefgh\x01"},
		{"abcdefgh\xffijklmnop", "abcdefgh\ufffdijklmnop"},
		{"abcdefghijklmno\u00e9", "abcdefghijklmno\u00e9"},
		{"\t1234567\n", "\t1234567\n"},
	} {
		out := appendString(nil, []byte(c.in), false)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: not JSON: %v", c.in, out, err)
		}
		if got != c.want {
			t.Errorf("appendString(%q) reads back as %q, want %q", c.in, got, c.want)
		}
	}
}

// TestSpaceAt holds the tokenizer's eight-bytes-at-once space search to
// bytes.IndexByte: a space, and each byte that XORs with a space to a
// value whose borrow could mislead, at every position.
func TestSpaceAt(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 25} {
		for pos := -1; pos < n; pos++ {
			for _, c := range []byte{' ', '!', 0x21, 0x00, 0xa0, 0x1f, 0xff} {
				v := []byte(strings.Repeat("x", n))
				if pos >= 0 {
					v[pos] = c
					if pos+1 < n {
						v[pos+1] = ' '
					}
				}
				if got, want := spaceAt(v), bytes.IndexByte(v, ' '); got != want {
					t.Fatalf("spaceAt(%q) = %d, want %d", v, got, want)
				}
			}
		}
	}
}
