package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func open(t *testing.T, dir string, segSize int64) *Store {
	t.Helper()
	s, err := Open(dir, Options{SegmentSize: segSize})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func wantValue(t *testing.T, s *Store, key string, want []byte) {
	t.Helper()
	got, ok, err := s.Get(key)
	switch {
	case err != nil:
		t.Errorf("Get(%q): %v", key, err)
	case want == nil && ok:
		t.Errorf("Get(%q) = %q, want missing", key, got)
	case want != nil && !ok:
		t.Errorf("Get(%q) missing, want %q", key, want)
	case want != nil && !bytes.Equal(got, want):
		t.Errorf("Get(%q) = %q, want %q", key, got, want)
	}
}

func TestRoundTripAndReplay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ops  func(s *Store) error
		want map[string][]byte // nil value: missing
	}{
		{"put", func(s *Store) error { return s.Put("a", []byte("1")) }, map[string][]byte{"a": []byte("1")}},
		{"overwrite", func(s *Store) error {
			if err := s.Put("a", []byte("1")); err != nil {
				return err
			}
			return s.Put("a", []byte("2"))
		}, map[string][]byte{"a": []byte("2")}},
		{"delete", func(s *Store) error {
			if err := s.Put("a", []byte("1")); err != nil {
				return err
			}
			return s.Delete("a")
		}, map[string][]byte{"a": nil}},
		{"empty value", func(s *Store) error { return s.Put("e", []byte{}) }, map[string][]byte{"e": {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := open(t, dir, 0)
			if err := tt.ops(s); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				wantValue(t, s, k, v)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := open(t, dir, 0)
			for k, v := range tt.want {
				wantValue(t, s2, k, v)
			}
		})
	}
}

func TestTornTail(t *testing.T) {
	t.Parallel()
	for _, cut := range []int64{1, 3, 8, 12} {
		t.Run(fmt.Sprintf("cut %d", cut), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := open(t, dir, 0)
			for i := range 10 {
				if err := s.Put(fmt.Sprintf("k%d", i), []byte("value-value")); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			seg := filepath.Join(dir, "seg-000001.log")
			fi, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(seg, fi.Size()-cut); err != nil {
				t.Fatal(err)
			}
			s2 := open(t, dir, 0)
			for i := range 9 {
				wantValue(t, s2, fmt.Sprintf("k%d", i), []byte("value-value"))
			}
			wantValue(t, s2, "k9", nil)
			// The torn bytes are gone, so new records replay after them.
			if err := s2.Put("after", []byte("x")); err != nil {
				t.Fatal(err)
			}
			s2.Close()
			s3 := open(t, dir, 0)
			wantValue(t, s3, "after", []byte("x"))
			wantValue(t, s3, "k8", []byte("value-value"))
		})
	}
}

func TestCorruptEarlierSegmentFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 64)
	for i := range 5 {
		if err := s.Put(fmt.Sprintf("k%d", i), bytes.Repeat([]byte("v"), 40)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := os.Truncate(filepath.Join(dir, "seg-000001.log"), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{SegmentSize: 64}); err == nil {
		t.Fatal("Open succeeded on a damaged earlier segment")
	}
}

func TestSegmentRolling(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 256)
	value := bytes.Repeat([]byte("x"), 100)
	for i := range 20 {
		if err := s.Put(fmt.Sprintf("k%02d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Segments < 5 || st.Keys != 20 {
		t.Fatalf("Stats = %+v, want ≥5 segments and 20 keys", st)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if len(names) != st.Segments {
		t.Fatalf("%d segment files, Stats says %d", len(names), st.Segments)
	}
	for _, n := range names {
		fi, err := os.Stat(n)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 256 {
			t.Errorf("%s is %d bytes, above the limit", n, fi.Size())
		}
	}
	s.Close()
	s2 := open(t, dir, 256)
	if got := s2.Stats(); got != st {
		t.Errorf("after restart Stats = %+v, want %+v", got, st)
	}
	for i := range 20 {
		wantValue(t, s2, fmt.Sprintf("k%02d", i), value)
	}
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir, 4096)
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Put(fmt.Sprintf("w%d-%d", w, i), fmt.Appendf(nil, "v%d-%d", w, i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.Close()
	s2 := open(t, dir, 4096)
	for w := range writers {
		for i := range each {
			wantValue(t, s2, fmt.Sprintf("w%d-%d", w, i), fmt.Appendf(nil, "v%d-%d", w, i))
		}
	}
}

func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir(), 0)
	s.Close()
	if err := s.Put("a", nil); err != ErrClosed {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
}
