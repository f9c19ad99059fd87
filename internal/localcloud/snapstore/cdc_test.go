package snapstore

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// cuts chunks data whole.
func cuts(data []byte) []int {
	var out []int
	for p := 0; p < len(data); {
		n, _ := chunkLen(data[p:], 0, true)
		out = append(out, n)
		p += n
	}
	return out
}

// TestChunkBoundaries pins where chunks are cut: a change here stops files
// re-read by an incremental Create from deduplicating against snapshots
// taken before it (see cdc.go).
func TestChunkBoundaries(t *testing.T) {
	got := cuts(randBytes(1, 16<<20))
	want := []int{2107799, 2728400, 2122715, 2267066, 2050175, 1746954, 2254030, 1500077}
	if !slices.Equal(got, want) {
		t.Errorf("chunk lengths\n got %v\nwant %v", got, want)
	}
}

// TestGearScan checks the two-bytes-a-step scan against the plain
// definition of the hash.
func TestGearScan(t *testing.T) {
	plain := func(data []byte, h, mask uint64) (int, uint64) {
		for i, b := range data {
			h = h<<1 + gear[b]
			if h&mask == 0 {
				return i + 1, h
			}
		}
		return 0, h
	}
	data := randBytes(6, 4<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		p := r.IntN(len(data))
		seg := data[p : p+r.IntN(min(len(data)-p, 64<<10)+1)]
		h, mask := r.Uint64(), uint64(1<<(4+r.IntN(12))-1)<<(64-4-r.IntN(12))
		i1, h1 := plain(seg, h, mask)
		i2, h2 := gearScan(seg, h, mask)
		if i1 != i2 || h1 != h2 {
			t.Fatalf("%d bytes, mask %x: got %d %x, want %d %x", len(seg), mask, i2, h2, i1, h1)
		}
	}
}

func TestChunkSizes(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want func(n []int) bool
	}{
		{"empty", nil, func(n []int) bool { return len(n) == 0 }},
		{"below the minimum", randBytes(2, minChunkSize-1), func(n []int) bool { return slices.Equal(n, []int{minChunkSize - 1}) }},
		{"zeros are cut at the maximum", make([]byte, 2*maxChunkSize+5), func(n []int) bool {
			return slices.Equal(n, []int{maxChunkSize, maxChunkSize, 5})
		}},
		{"random data", randBytes(3, 64<<20), func(n []int) bool {
			for _, k := range n[:len(n)-1] {
				if k < minChunkSize || k > maxChunkSize {
					return false
				}
			}
			mean := 64 << 20 / len(n)
			return mean > 2<<20 && mean < 3<<20
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := cuts(tc.data); !tc.want(n) {
				t.Errorf("chunk lengths %v", n)
			}
		})
	}
}

// TestChunkLenResumes feeds data the way Create reads it, a piece at a
// time, and expects the cuts of chunking it whole.
func TestChunkLenResumes(t *testing.T) {
	data := randBytes(4, 40<<20)
	want := cuts(data)
	r := rand.New(rand.NewPCG(1, 2))
	for _, step := range []int{1 << 10, 100 << 10, 1 << 20, 3 << 20} {
		var got []int
		start, end, resume := 0, 0, 0
		for {
			k, rs := chunkLen(data[start:end], resume, end == len(data))
			if k == 0 {
				if end == len(data) {
					break
				}
				end = min(len(data), end+1+r.IntN(step))
				resume = rs
				continue
			}
			got = append(got, k)
			start, resume = start+k, 0
		}
		if !slices.Equal(got, want) {
			t.Errorf("steps up to %d: chunk lengths\n got %v\nwant %v", step, got, want)
		}
	}
}

// TestChunkResync: bytes inserted near the front change only the chunks
// around them.
func TestChunkResync(t *testing.T) {
	data := randBytes(5, 32<<20)
	shifted := append(append(slices.Clone(data[:100]), "inserted"...), data[100:]...)
	a, b := cuts(data), cuts(shifted)
	if len(a) < 4 || !slices.Equal(a[2:], b[2:]) {
		t.Errorf("chunk lengths after an insertion\n got %v\nwant …%v", b, a[2:])
	}
	if !bytes.Equal(shifted[100:108], []byte("inserted")) {
		t.Fatal("bad test data")
	}
}
