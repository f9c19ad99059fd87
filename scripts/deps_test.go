// Package scripts holds the tests of the shell scripts beside it.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// essential are the programs of a fresh machine as the README describes
// it: Debian's essential packages (coreutils, dash, bash…) plus Go. The
// benchmarks may run them without scripts/deps.sh installing anything.
var essential = []string{"bash", "cat", "cp", "go", "mkdir", "mv", "nproc", "rm", "sh", "sync"}

// TestDepsCoversTheBenchmarks: every program the benchmarks run (by name,
// from Go: exec.Command, exec.CommandContext, exec.LookPath) is essential
// or checked for, and installed, by deps.sh.
func TestDepsCoversTheBenchmarks(t *testing.T) {
	script, err := os.ReadFile("deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for _, m := range regexp.MustCompile(`command -v ([a-z0-9_-]+)`).FindAllStringSubmatch(string(script), -1) {
		checked[m[1]] = true
	}
	var files []string
	for _, pattern := range []string{"../bench/*/*.go", "../bench/*/*/*.go", "../internal/localcloud/*bench_test.go", "../internal/localcloud/*/*bench_test.go"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no benchmark sources found")
	}
	run := regexp.MustCompile(`exec\.(?:Command|LookPath)\("([^"/]+)"|exec\.CommandContext\([^,]+, "([^"/]+)"`)
	found := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range run.FindAllStringSubmatch(string(b), -1) {
			found[m[1]+m[2]] = f
		}
	}
	if _, ok := found["rsync"]; !ok {
		t.Fatalf("the scan found no rsync in %d benchmark files: is the pattern stale? found %v", len(files), found)
	}
	for prog, file := range found {
		if !slices.Contains(essential, prog) && !checked[prog] {
			t.Errorf("%s runs %s, which deps.sh neither checks for (command -v %s) nor is essential", file, prog, prog)
		}
	}
}

// TestDepsInstallsWhatIsMissing runs deps.sh on this machine's programs
// with rsync taken away and apt-get replaced by a recorder: it must ask for
// rsync, and only when rsync is missing.
func TestDepsInstallsWhatIsMissing(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs("deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	// dynalite as deps.sh would have installed it, so npm is not run.
	cache := t.TempDir()
	text, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	version := regexp.MustCompile(`(?m)^dynalite_version=(\S+)$`).FindSubmatch(text)
	if version == nil {
		t.Fatal("no dynalite_version in deps.sh")
	}
	bin := filepath.Join(cache, "handover", "dynalite-"+string(version[1]), "node_modules", ".bin")
	writeExec(t, filepath.Join(bin, "dynalite"), "#!/bin/sh\n")

	for _, c := range []struct {
		name      string
		withRsync bool
	}{{"rsync missing", false}, {"rsync present", true}} {
		t.Run(c.name, func(t *testing.T) {
			dir := sandboxPath(t, "rsync", "apt-get", "id")
			log := filepath.Join(t.TempDir(), "apt-get.log")
			writeExec(t, filepath.Join(dir, "apt-get"), "#!/bin/sh\necho \"$@\" >> '"+log+"'\n")
			// Root, and Debian's postgres user exists.
			writeExec(t, filepath.Join(dir, "id"), "#!/bin/sh\n[ \"$1\" = -u ] && echo 0\nexit 0\n")
			if c.withRsync {
				writeExec(t, filepath.Join(dir, "rsync"), "#!/bin/sh\n")
			}
			cmd := exec.Command(bash, script)
			cmd.Env = []string{"PATH=" + dir, "HOME=" + cache, "XDG_CACHE_HOME=" + cache}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("deps.sh: %v\n%s", err, out)
			}
			calls, _ := os.ReadFile(log)
			var installed []string
			for _, line := range strings.Split(string(calls), "\n") {
				if f := strings.Fields(line); slices.Contains(f, "install") {
					installed = append(installed, f...)
				}
			}
			if got := slices.Contains(installed, "rsync"); got == c.withRsync {
				t.Errorf("apt-get calls %q: rsync installed = %v, want %v", calls, got, !c.withRsync)
			}
		})
	}
}

// sandboxPath returns a directory of links to every program on PATH but
// the hidden ones: this machine, less those programs.
func sandboxPath(t *testing.T, hidden ...string) string {
	t.Helper()
	dir := t.TempDir()
	seen := map[string]bool{}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			name := e.Name()
			if seen[name] || slices.Contains(hidden, name) {
				continue
			}
			seen[name] = true
			if err := os.Symlink(filepath.Join(d, name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}
