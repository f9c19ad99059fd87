package demo

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// BenchmarkEnvVerify measures what env verify costs on BenchmarkEnvClone's
// staging (cloneBenchEnv): the write pause a clone adds by reading the
// databases' manifests while they are fenced, and the time env verify
// takes. Five clones in a row, alternately without manifests and with
// them (--manifests=false first and last); before each, every volume's
// data is rewritten, so that each
// clone's snapshots capture the same number of changed bytes (the local
// cloud's snapshot costs the bytes changed since the last one). Then env
// verify of the clone with manifests. bench/envverify/run.sh runs it;
// skipped unless HANDOVER_BENCH_ENV=1.
func BenchmarkEnvVerify(b *testing.B) {
	if os.Getenv("HANDOVER_BENCH_ENV") != "1" {
		b.Skip("set HANDOVER_BENCH_ENV=1 (bench/envverify/run.sh)")
	}
	e, bin, volumes := cloneBenchEnv(b)
	volMiB := envInt("HANDOVER_BENCH_ENV_VOLUME_MIB", 1024)
	c := envCLI{e: e, bin: bin}
	rewrite := func() {
		for _, v := range volumes {
			f, err := os.Create(filepath.Join(volumeDir(b, e, v), "ballast.bin"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyN(f, rand.Reader, int64(volMiB)<<20); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	run := func(args ...string) (string, string, time.Duration) {
		cmd := exec.Command(bin, c.args(args...)...)
		cmd.Env = e.awsEnv()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("handover %v: %v\n%s\n%s", args, err, out.String(), errb.String())
		}
		return out.String(), errb.String(), took
	}
	said := func(stderr, pattern string) string {
		if m := regexp.MustCompile(pattern).FindStringSubmatch(stderr); m != nil {
			return m[1]
		}
		return "-"
	}
	b.ResetTimer()
	pauses := map[bool][]int64{}
	for i, manifests := range []bool{false, true, false, true, false} {
		dst := fmt.Sprintf("prod%d", i+1)
		if i > 0 {
			rewrite()
		}
		out, errOut, took := run("env", "clone", "staging", dst, "--poll", "1s", "--service-port", fmt.Sprint(servicePort), fmt.Sprintf("--manifests=%v", manifests), "--output", "json")
		var op struct {
			WritePauseMS int64 `json:"write_pause_ms"`
		}
		if err := json.Unmarshal([]byte(out), &op); err != nil {
			b.Fatal(err)
		}
		pauses[manifests] = append(pauses[manifests], op.WritePauseMS)
		fmt.Printf("clone staging -> %s --manifests=%v: write pause %d ms; snapshots started in %s; manifests read in %s; whole clone %s\n",
			dst, manifests, op.WritePauseMS, said(errOut, `started \d+ snapshots in (\S+)`), said(errOut, `read \d+ manifests in (\S+)`), took.Round(10*time.Millisecond))
	}
	pw := filepath.Join(b.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("app-password-1"), 0o600); err != nil {
		b.Fatal(err)
	}
	out, errOut, took := run("env", "verify", "staging", "prod2", "--rds-password-file", pw, "--poll", "1s", "--service-port", fmt.Sprint(servicePort))
	fmt.Printf("env verify staging prod2: %s\n%s%s", took.Round(10*time.Millisecond), errOut, out)
	mean := func(ms []int64) float64 {
		var t int64
		for _, m := range ms {
			t += m
		}
		return float64(t) / float64(len(ms))
	}
	b.ReportMetric(mean(pauses[true]), "pause-with-manifests-ms")
	b.ReportMetric(mean(pauses[false]), "pause-without-manifests-ms")
	b.ReportMetric(took.Seconds(), "verify-s")
}
