package testenv

import (
	"os"
	"testing"
)

// OpenTempDir returns a new directory under /tmp that other users can
// enter (mode 0755), removed when t ends. Tests that run as root start
// PostgreSQL as the postgres user, which cannot enter t.TempDir() (its
// parent is 0700).
func OpenTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "handover-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
