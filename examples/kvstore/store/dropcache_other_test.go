//go:build !linux

package store

import "testing"

// dropCache is Linux-only (posix_fadvise): elsewhere the cold-cache
// benchmarks are skipped.
func dropCache(tb testing.TB, dir string) {
	tb.Skip("evicting files from the page cache needs Linux")
}
