package release

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmark of issue 16: publish a tree with 1 % of it changed to a
// fleet of 10 instances, until every instance serves it, against the field
// report's way, rsync to each instance (locally: the machine has no sshd,
// so rsync runs between directories, which is what rsync over ssh does
// minus the network and the encryption). Sizes by environment:
// HANDOVER_BENCH_TREE_MIB (default 1024) and HANDOVER_BENCH_FLEET (10).
// Run with bench/releases/run.sh.

func benchSizes() (treeMiB, fleet int) {
	treeMiB, fleet = 1024, 10
	if v, err := strconv.Atoi(os.Getenv("HANDOVER_BENCH_TREE_MIB")); err == nil && v > 0 {
		treeMiB = v
	}
	if v, err := strconv.Atoi(os.Getenv("HANDOVER_BENCH_FLEET")); err == nil && v > 0 {
		fleet = v
	}
	return treeMiB, fleet
}

// benchTree writes treeMiB files of 1 MiB of random bytes under dir.
func benchTree(b *testing.B, dir string, treeMiB int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for i := range treeMiB {
		fillRandom(rng, buf)
		p := filepath.Join(dir, fmt.Sprintf("lib/%02d/part-%04d.bin", i%32, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// changeOnePercent rewrites 1 % of the tree's files with new content.
func changeOnePercent(b *testing.B, dir string, treeMiB int, round uint64) int {
	b.Helper()
	rng := rand.New(rand.NewPCG(round, 3))
	buf := make([]byte, 1<<20)
	n := max(treeMiB/100, 1)
	for i := range n {
		fillRandom(rng, buf)
		j := i * 100
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("lib/%02d/part-%04d.bin", j%32, j)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

func fillRandom(rng *rand.Rand, buf []byte) {
	for i := 0; i+8 <= len(buf); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			buf[i+k] = byte(v >> (8 * k))
		}
	}
}

func BenchmarkPublishToFleet(b *testing.B) {
	treeMiB, n := benchSizes()
	f := newFleet(b, int32(n), "")
	// Restoring a volume of the whole tree is part of each instance's
	// switch here (the local cloud restores eagerly; EBS lazily).
	f.pub.Rollout.Batch, f.pub.Rollout.MinHealthyPercent, f.pub.Rollout.StepTimeout = n/2, 50, 10*time.Minute
	benchTree(b, f.src, treeMiB)
	if err := os.WriteFile(filepath.Join(f.src, "index.html"), []byte("<h1>b1</h1>"), 0o644); err != nil {
		b.Fatal(err)
	}
	// The first full release, outside the timing: the fleet runs it.
	if _, err := f.pub.Publish(b.Context(), PublishSpec{Dir: f.src, Channel: "web", Name: "b1", Instance: f.server}); err != nil {
		b.Fatal(err)
	}
	f.waitConverged("b1", n)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		changed := changeOnePercent(b, f.src, treeMiB, uint64(i+10))
		name := fmt.Sprintf("b%d", i+2)
		b.StartTimer()
		start := time.Now()
		res, err := f.pub.Publish(b.Context(), PublishSpec{Dir: f.src, Channel: "web", Name: name, Instance: f.server})
		took := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.checkAll("after the benchmark's publish", name)
		b.Logf("publish %s: %d MiB tree, %d files changed, %d instances: %s to converged; sync wrote %d bytes (%d files), %d instances switched, each restoring a %d MiB volume from the snapshot",
			name, treeMiB, changed, n, took.Round(time.Millisecond), res.Sync.CopiedBytes, res.Sync.Copied, len(res.Converge.Switched), treeMiB)
		b.ReportMetric(float64(res.Sync.CopiedBytes), "sync-bytes/op")
		b.ReportMetric(float64(int64(len(res.Converge.Switched))*int64(treeMiB)<<20), "restored-bytes/op")
		b.StartTimer()
	}
}

// BenchmarkRsyncToFleet is the field report's way: rsync the tree to each
// instance's copy of it, one after the other, then nothing more (no
// snapshot, no atomic switch: the service sees files change under it).
func BenchmarkRsyncToFleet(b *testing.B) {
	treeMiB, n := benchSizes()
	root := b.TempDir()
	src := filepath.Join(root, "src")
	benchTree(b, src, treeMiB)
	dsts := make([]string, n)
	for i := range dsts {
		dsts[i] = filepath.Join(root, fmt.Sprintf("instance-%d", i))
		if out, err := exec.Command("rsync", "-a", "--delete", src+"/", dsts[i]+"/").CombinedOutput(); err != nil {
			b.Fatalf("rsync: %v\n%s", err, out)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		changed := changeOnePercent(b, src, treeMiB, uint64(i+10))
		b.StartTimer()
		start := time.Now()
		var sent int64
		for _, d := range dsts {
			out, err := exec.Command("rsync", "-a", "--delete", "--stats", src+"/", d+"/").CombinedOutput()
			if err != nil {
				b.Fatalf("rsync: %v\n%s", err, out)
			}
			sent += rsyncStat(out, "Total bytes sent:")
		}
		took := time.Since(start)
		b.StopTimer()
		b.Logf("rsync: %d MiB tree, %d files changed, %d instances: %s; %d bytes sent in all", treeMiB, changed, n, took.Round(time.Millisecond), sent)
		b.ReportMetric(float64(sent), "sent-bytes/op")
		b.StartTimer()
	}
}

// rsyncStat reads one "--stats" line's number.
func rsyncStat(out []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			v = strings.ReplaceAll(strings.Fields(v)[0], ",", "")
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
