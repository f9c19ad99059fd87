package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The benchmarks open a store of benchSize bytes in values of benchValue
// bytes (the demo's --state-size values, a quarter of its 1 GiB), by
// replaying every segment and from hints, each with the page cache warm
// (the files were just written) and cold (evicted first, as on an instance
// whose volume was just created from a snapshot).
const (
	benchSize  = 256 << 20
	benchValue = 256 << 10
)

func BenchmarkOpenReplay(b *testing.B) { benchmarkOpen(b, false) }
func BenchmarkOpenHints(b *testing.B)  { benchmarkOpen(b, true) }

func benchmarkOpen(b *testing.B, hints bool) {
	dir := buildBenchStore(b)
	for _, cold := range []bool{false, true} {
		name := "cache=warm"
		if cold {
			name = "cache=cold"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				if !hints {
					removeHints(b, dir)
				}
				if cold {
					dropCache(b, dir)
				}
				b.StartTimer()
				s, err := Open(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := s.Stats().Keys; got != benchSize/benchValue {
					b.Fatalf("%d keys, want %d", got, benchSize/benchValue)
				}
				if hints && s.opened.replayedBytes != 0 || !hints && s.opened.hinted != 0 {
					b.Fatalf("opened %+v", s.opened)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// buildBenchStore writes the benchmark's store as the store itself would
// have: full segments, then Open and Flush, which leave a hint for every
// segment and an empty current one, as a fence does. It writes the records
// itself, with one fsync per segment instead of one per record, only to
// take seconds rather than minutes.
func buildBenchStore(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	var seg []byte
	seq := 1
	flush := func() {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("seg-%06d.log", seq)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = f.Write(seg)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
		seg, seq = seg[:0], seq+1
	}
	for i := range benchSize / benchValue {
		rec := appendRecord(nil, Record{Op: OpPut, Key: fmt.Sprintf("key-%06d", i), Value: bytes.Repeat([]byte{byte(i)}, benchValue)})
		if len(seg) > 0 && len(seg)+len(rec) > DefaultSegmentSize {
			flush()
		}
		seg = append(seg, rec...)
	}
	flush()
	s, err := Open(dir, Options{})
	if err == nil {
		err = s.Flush()
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	return dir
}
