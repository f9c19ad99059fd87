package snapstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeRandomTree writes files × size bytes of pseudo-random data under
// root, in eight directories, and returns the total.
func writeRandomTree(tb testing.TB, root string, files, size int) int64 {
	tb.Helper()
	for i := range files {
		p := filepath.Join(root, fmt.Sprintf("d%d", i%8), fmt.Sprintf("f%03d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, randBytes(uint64(i), size), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return int64(files) * int64(size)
}

// BenchmarkCreate snapshots a 256 MiB tree into an empty store each time.
func BenchmarkCreate(b *testing.B) {
	src := b.TempDir()
	total := writeRandomTree(b, src, 16, 16<<20)
	syscall.Sync()
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := openStore(b)
		b.StartTimer()
		if _, _, err := s.Create(context.Background(), "snap-1", src, "", nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		os.RemoveAll(s.dir)
		b.StartTimer()
	}
}

// BenchmarkRestore restores a 256 MiB snapshot into a fresh directory each
// time.
func BenchmarkRestore(b *testing.B) {
	src := b.TempDir()
	total := writeRandomTree(b, src, 16, 16<<20)
	s := openStore(b)
	if _, _, err := s.Create(context.Background(), "snap-1", src, "", nil); err != nil {
		b.Fatal(err)
	}
	syscall.Sync()
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(b.TempDir(), "dst")
		if _, err := s.Restore(context.Background(), "snap-1", dst, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dst)
		b.StartTimer()
	}
}

// procIO is the kernel's I/O accounting of a process: rchar/wchar count
// bytes through read/write-like system calls (page cache hits included),
// read_bytes/write_bytes what went to the block device.
type procIO struct {
	rchar, wchar, readBytes, writeBytes int64
	cpu                                 time.Duration // user + system
}

func parseProcIO(b []byte) procIO {
	var io procIO
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "rchar":
			io.rchar = n
		case "wchar":
			io.wchar = n
		case "read_bytes":
			io.readBytes = n
		case "write_bytes":
			io.writeBytes = n
		}
	}
	return io
}

func selfIO(tb testing.TB) procIO {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Fatal(err)
	}
	io := parseProcIO(b)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	io.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return io
}

func (a procIO) sub(b procIO) procIO {
	return procIO{a.rchar - b.rchar, a.wchar - b.wchar, a.readBytes - b.readBytes, a.writeBytes - b.writeBytes, a.cpu - b.cpu}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// runMeasured runs a command and returns its I/O and CPU time. A shell
// reads its own /proc/PID/io after the command exits: the kernel adds a
// reaped child's I/O accounting to its parent's.
func runMeasured(tb testing.TB, name string, args ...string) procIO {
	tb.Helper()
	script := `"$@"; s=$?; cat /proc/$$/io; exit $s`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh", name}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	io := parseProcIO(out.Bytes())
	// wait4's usage for the shell includes the command it waited for.
	io.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return io
}
