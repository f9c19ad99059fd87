package store

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// dropCache evicts dir's files from the page cache, so that the next read
// of them goes to the disk. Only clean pages are evicted: the files must
// have been fsynced, which everything the store writes is.
func dropCache(tb testing.TB, dir string) {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			tb.Fatal(err)
		}
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			tb.Fatalf("evicting %s from the page cache: %v", n, err)
		}
	}
}
