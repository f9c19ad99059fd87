package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// builds holds the programs Binary built in this test binary.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
	errs map[string]error
}

// Binary builds the program of package pkg (an import path) once per test
// binary and returns its path, for end-to-end tests that run the real
// program as a process. A failed build fails the test with go build's
// output.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.bins == nil {
		builds.bins, builds.errs = map[string]string{}, map[string]error{}
	}
	if bin, ok := builds.bins[pkg]; ok {
		return bin
	}
	if err, ok := builds.errs[pkg]; ok {
		t.Fatal(err)
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "handover-test-bin-")
		if err != nil {
			t.Fatalf("making a directory for test programs: %v", err)
		}
		builds.dir = dir
	}
	bin := filepath.Join(builds.dir, path.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		builds.errs[pkg] = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		t.Fatal(builds.errs[pkg])
	}
	builds.bins[pkg] = bin
	return bin
}
