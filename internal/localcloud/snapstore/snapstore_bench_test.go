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

// runMeasured runs a command and returns its wall time and I/O. A shell
// reads its own /proc/PID/io after the command exits: the kernel adds a
// reaped child's I/O accounting to its parent's.
func runMeasured(t *testing.T, name string, args ...string) (time.Duration, procIO) {
	t.Helper()
	script := `"$@"; s=$?; cat /proc/$$/io; exit $s`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh", name}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	d := time.Since(start)
	io := parseProcIO(out.Bytes())
	// wait4's usage for the shell includes the command it waited for.
	io.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return d, io
}

// timedSync flushes dirty pages, so each step starts with a clean page cache
// and copies that do not fsync can be charged for their write-back.
func timedSync() time.Duration {
	start := time.Now()
	syscall.Sync()
	return time.Since(start)
}

// TestMeasure1GiB compares the store with cp and rsync on a 1 GiB tree (64
// files × 16 MiB). Run with HANDOVER_BENCH_1GIB=1 and -v; it needs about
// 5 GiB free under /tmp and removes everything afterwards. Page cache is
// warm throughout (the data fits in memory), so these are CPU and write
// costs, not cold-read costs.
func TestMeasure1GiB(t *testing.T) {
	if os.Getenv("HANDOVER_BENCH_1GIB") != "1" {
		t.Skip("set HANDOVER_BENCH_1GIB=1 to run")
	}
	base, err := os.MkdirTemp("/tmp", "snapstore-1gib-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(base); err != nil {
			t.Errorf("removing %s: %v", base, err)
		}
	})
	src := filepath.Join(base, "src")
	total := writeRandomTree(t, src, 64, 16<<20)
	t.Logf("source: %s in 64 files; flushing took %v", mib(total), timedSync())
	built := time.Now()

	report := func(step string, d, syncd time.Duration, io procIO) {
		line := fmt.Sprintf("%-32s %6.2fs (cpu %5.2fs) %7.1f MiB/s  read %s, written %s (to disk %s)",
			step, d.Seconds(), io.cpu.Seconds(), float64(total)/(1<<20)/d.Seconds(), mib(io.rchar), mib(io.wchar), mib(io.writeBytes))
		if syncd > 0 {
			line += fmt.Sprintf("; then sync %.2fs", syncd.Seconds())
		}
		t.Log(line)
	}

	// (1) cp -a
	d, io := runMeasured(t, "cp", "-a", src, filepath.Join(base, "cp"))
	report("cp -a", d, timedSync(), io)

	// (2) full snapshot. The racy guard would re-read files written less
	// than 2 s before the snapshot starts; a real volume's are older.
	time.Sleep(time.Until(built.Add(timestampGranularity + 100*time.Millisecond)))
	s, err := Open(filepath.Join(base, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	before := selfIO(t)
	_, st, err := s.Create(ctx, "snap-full", src, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	report("Store.Create full", st.Duration, 0, selfIO(t).sub(before))
	t.Logf("    stats: %+v", st)
	timedSync()

	// Change 1%: overwrite 2 MiB in the middle of five files.
	for i := range 5 {
		p := filepath.Join(src, fmt.Sprintf("d%d", (i*13)%8), fmt.Sprintf("f%03d", i*13))
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(randBytes(uint64(1000+i), 2<<20), 7<<20); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	timedSync()

	// (3) incremental snapshot
	before = selfIO(t)
	_, st, err = s.Create(ctx, "snap-incr", src, "snap-full", nil)
	if err != nil {
		t.Fatal(err)
	}
	report("Store.Create incremental (1%)", st.Duration, 0, selfIO(t).sub(before))
	t.Logf("    stats: %+v", st)
	timedSync()

	// (4) rsync -a: a full copy, and an update of the cp copy (the
	// equivalent of the incremental snapshot).
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Log("rsync -a                           skipped: rsync not installed")
	} else {
		d, io := runMeasured(t, "rsync", "-a", src+"/", filepath.Join(base, "rsync")+"/")
		report("rsync -a full", d, timedSync(), io)
		d, io = runMeasured(t, "rsync", "-a", src+"/", filepath.Join(base, "cp")+"/")
		report("rsync -a update of cp copy (1%)", d, timedSync(), io)
	}

	// (5) restore of the full snapshot
	before = selfIO(t)
	rst, err := s.Restore(ctx, "snap-full", filepath.Join(base, "restore"), nil)
	if err != nil {
		t.Fatal(err)
	}
	report("Store.Restore full", rst.Duration, 0, selfIO(t).sub(before))
	t.Logf("    stats: %+v", rst)
}
