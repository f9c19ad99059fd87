package controller_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuMeter measures, over a run, this process's CPU time and how busy the
// whole machine was, so a throughput figure can be read against what else
// was running: the benchmark machine is shared.
type cpuMeter struct {
	self             time.Duration
	children         map[int]time.Duration
	busy, total      uint64
	haveSelf, haveOS bool
}

func startCPU() cpuMeter {
	var m cpuMeter
	m.self, m.haveSelf = selfCPU()
	m.children = descendantsCPU()
	m.busy, m.total, m.haveOS = machineCPU()
	return m
}

// cpuUse is what a run cost: this process's CPU, that of the processes it
// started (the PostgreSQL server pgtest runs), and the machine's busy share
// (0–1) over the same span.
type cpuUse struct {
	self, children time.Duration
	busy           float64
}

// stop returns the CPU used since start; ok is false where it cannot be
// read.
func (m cpuMeter) stop() (use cpuUse, ok bool) {
	s, ok1 := selfCPU()
	children := descendantsCPU()
	b, t, ok2 := machineCPU()
	if !(ok1 && ok2 && m.haveSelf && m.haveOS) || t <= m.total {
		return cpuUse{}, false
	}
	use = cpuUse{self: s - m.self, busy: float64(b-m.busy) / float64(t-m.total)}
	for pid, d := range children {
		use.children += d - m.children[pid] // a process started since counts whole
	}
	return use, true
}

func selfCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// descendantsCPU returns the CPU time (user + system) of every live process
// below this one, by pid.
func descendantsCPU() map[int]time.Duration {
	type proc struct {
		ppid int
		cpu  time.Duration
	}
	procs := map[int]proc{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may hold spaces; fields start after its ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b)[i+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		procs[pid] = proc{ppid: ppid, cpu: time.Duration(utime+stime) * clockTick}
	}
	self := os.Getpid()
	out := map[int]time.Duration{}
	for pid, p := range procs {
		for anc, hops := p.ppid, 0; anc > 1 && hops < 64; anc, hops = procs[anc].ppid, hops+1 {
			if anc == self {
				out[pid] = p.cpu
				break
			}
		}
	}
	return out
}

// machineCPU reads the first line of /proc/stat: busy and total jiffies of
// every core.
func machineCPU() (busy, total uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 3 && i != 4 { // idle and iowait
			busy += v
		}
	}
	return busy, total, true
}

// BenchmarkFsync measures what every durable SQLite commit waits for at
// least: a 4 KiB write and fsync, in the directory the SQLite ledger of
// BenchmarkEvents lives in. One op is one write and fsync; p50 and p99 are
// over the ops of a run.
func BenchmarkFsync(b *testing.B) {
	f, err := os.CreateTemp(b.TempDir(), "fsync-")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i%256)*int64(len(buf))); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
