// Command writepause measures the write pause of a handover on the local
// cloud, with and without the pre-copy, next to what a user would do
// instead: fence, copy the whole state directory (cp -a), or rsync it to a
// copy taken before the fence, then start the service on the copy.
//
// Every run changes 1 % of the state since the last copy: for the
// pre-copy handover the change is written while the pre-copy snapshot is
// being taken (slowed by a fault so the change lands inside it), so the
// final snapshot after the fence carries that 1 %; for the others it is
// written just before the fence.
//
// The handover's pause is what a client writing through the load balancer
// sees: the longest gap between two acknowledged writes. The baselines'
// pause is from the fence to the copy's service answering /healthz (no load
// balancer in the way, which favours them). Raw lines go to stdout, one per
// run, then the medians.
//
// --cutovers runs the pre-copy handover once per cutover in the same run
// (docs/fence-protocol.md): overlap, the ordering before invariant no-stale-reads (the
// new instance takes writes while the old one may still answer stale
// reads); retire, the old instance forwarding to the new one; drain, the
// old instance taken out of the load balancer and drained (the target
// group's deregistration delay is --deregistration-delay) before the new
// one is unfenced. Each line says how many reads came back stale: only
// overlap may have any.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/demo"
	"github.com/handover-dev/handover/internal/localcloud/faults"
)

func main() {
	sizes := flag.String("sizes", "256MiB,1GiB,4GiB", "state sizes, comma-separated")
	runs := flag.Int("runs", 5, "measured runs per size and way")
	bin := flag.String("bin", "bin", "directory holding the handover and kvstore programs (make build)")
	ways := flag.String("ways", "precopy,noprecopy,cp,rsync", "which ways to measure")
	cutovers := flag.String("cutovers", "retire", "cutovers the handover ways run under, comma-separated: overlap, retire, drain (auto is retire for kvstore)")
	delay := flag.Duration("deregistration-delay", 5*time.Second, "the target group's deregistration delay, which the drain cutover waits out")
	flag.Parse()
	log.SetFlags(0)
	abs, err := filepath.Abs(*bin)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	fmt.Printf("# writepause: nproc=%d, %s, runs=%d, cutovers=%s, deregistration delay %s\n", nprocs(), memTotal(), *runs, *cutovers, *delay)
	cuts := strings.Split(*cutovers, ",")
	for _, c := range cuts {
		if c != "overlap" && c != "retire" && c != "drain" {
			log.Fatalf("--cutovers: unknown cutover %q: want overlap, retire or drain", c)
		}
	}
	summary := map[string]map[string]int64{}
	var order []string
	for _, s := range strings.Split(*sizes, ",") {
		size, err := parseSize(s)
		if err != nil {
			log.Fatal(err)
		}
		order = append(order, s)
		summary[s] = map[string]int64{}
		for _, way := range strings.Split(*ways, ",") {
			switch way {
			case "precopy", "noprecopy":
				for _, c := range cuts {
					pauses, err := handover(ctx, abs, size, *runs, way == "precopy", c, *delay, s)
					if err != nil {
						log.Fatalf("%s %s %s: %v", s, way, c, err)
					}
					summary[s][way+"/"+c] = median(pauses)
				}
				// The comparison with the copies is against the
				// default cutover when it ran, else the first.
				c := cuts[0]
				if slices.Contains(cuts, "retire") {
					c = "retire"
				}
				summary[s][way] = summary[s][way+"/"+c]
			case "cp", "rsync":
				pauses, err := baseline(ctx, abs, size, *runs, way, s)
				if err != nil {
					log.Fatalf("%s %s: %v", s, way, err)
				}
				summary[s][way] = median(pauses)
			default:
				log.Fatalf("unknown way %q", way)
			}
		}
	}
	fmt.Println("\n# medians (ms): size  precopy  noprecopy  cp-a  rsync  cp-a/precopy  rsync/precopy")
	for _, s := range order {
		m := summary[s]
		fmt.Printf("%-7s %8d %10d %6d %6d %12s %13s\n", s, m["precopy"], m["noprecopy"], m["cp"], m["rsync"], ratio(m["cp"], m["precopy"]), ratio(m["rsync"], m["precopy"]))
	}
	if len(cuts) > 1 {
		fmt.Printf("\n# medians (ms) of the pre-copy handover per cutover: size  %s\n", strings.Join(cuts, "  "))
		for _, s := range order {
			fmt.Printf("%-7s", s)
			for _, c := range cuts {
				fmt.Printf(" %8d", summary[s]["precopy/"+c])
			}
			fmt.Println()
		}
	}
}

// handover runs runs updates under cutover (after one warm-up that makes
// the base snapshot) and returns the write pauses the traffic saw.
func handover(ctx context.Context, bin string, size int64, runs int, preCopy bool, cutover string, delay time.Duration, label string) ([]int64, error) {
	dir, err := os.MkdirTemp("", "writepause-")
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	env, err := demo.Start(ctx, demo.Options{DataDir: dir, HandoverBin: filepath.Join(bin, "handover"), KVStoreBin: filepath.Join(bin, "kvstore"), NoPreCopy: !preCopy})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if err := env.CreateGroupWith(ctx, demo.GroupOptions{Cutover: cutover, DeregistrationDelay: delay}); err != nil {
		return nil, err
	}
	keys, err := env.Load(ctx, size, nil)
	if err != nil {
		return nil, err
	}
	way := "noprecopy"
	if preCopy {
		way = "precopy"
	}
	churn := size / 100
	var pauses []int64
	for i := 0; i <= runs; i++ {
		tag := strconv.Itoa(i)
		env.OnStep = nil
		if preCopy {
			// Slow the pre-copy down so the 1 % lands after it started.
			if _, err := env.Cloud().Faults.Add(faults.Rule{Service: "ec2", Action: "CreateSnapshot", Kind: faults.SlowSnapshot, Delay: 3 * time.Second, Count: 1}); err != nil {
				return nil, err
			}
			done := false
			env.OnStep = func(state string) {
				if state == "PreCopying" && !done {
					done = true
					if err := env.Churn(ctx, churn, tag); err != nil {
						log.Printf("churn: %v", err)
					}
				}
			}
		} else if err := env.Churn(ctx, churn, tag); err != nil {
			return nil, err
		}
		r, err := env.Run(ctx, demo.ScenarioUpdate, keys, func(string) {})
		if err != nil {
			return nil, err
		}
		if problems := unexpected(r, cutover); len(problems) > 0 {
			keep = true
			return nil, fmt.Errorf("run %d not ok (logs kept in %s): %v", i, dir, problems)
		}
		if i == 0 {
			continue // warm-up: the first handover after the load has no base snapshot
		}
		pauses = append(pauses, r.WritePauseMS)
		fmt.Printf("size=%s way=%s cutover=%s run=%d write_pause_ms=%d fence_to_commit_ms=%d stale_reads=%d own_writes_read_back=%d steps=%s\n",
			label, way, cutover, i, r.WritePauseMS, fenceToCommit(r), r.StaleReads, r.FreshReadsOK, steps(r))
	}
	return pauses, nil
}

// unexpected is a run's problems, less the stale reads the overlap
// cutover is known for (they are what the other cutovers prevent, and are
// reported on each line).
func unexpected(r demo.Result, cutover string) []string {
	if cutover != "overlap" {
		return r.Problems
	}
	var out []string
	for _, p := range r.Problems {
		stale := strings.Contains(p, "stale reads:") || (r.ReadsFailed == r.StaleReads && strings.Contains(p, "reads failed:"))
		if !stale {
			out = append(out, p)
		}
	}
	return out
}

func fenceToCommit(r demo.Result) int64 {
	var fenced, committed time.Time
	for _, s := range r.Steps {
		switch s.State {
		case "Fencing":
			fenced = s.Start
		case "Committed":
			committed = s.Start
		}
	}
	return committed.Sub(fenced).Milliseconds()
}

func steps(r demo.Result) string {
	var b []string
	for _, s := range r.Steps {
		b = append(b, fmt.Sprintf("%s:%d", s.State, s.DurationMS))
	}
	return strings.Join(b, ",")
}

// baseline loads a kvstore directly, then per run: change 1 %, fence,
// copy (cp -a of everything, or rsync -a onto a copy made before the
// change), start kvstore on the copy and wait for its health.
func baseline(ctx context.Context, bin string, size int64, runs int, way, label string) ([]int64, error) {
	dir, err := os.MkdirTemp("", "writepause-base-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	srcKV, err := startKV(bin, src, 0)
	if err != nil {
		return nil, err
	}
	defer srcKV.stop()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 256<<10)
	write := func(prefix string, n int64) error {
		for i := 0; int64(i)*int64(len(buf)) < n; i++ {
			_, _ = rng.Read(buf)
			if err := srcKV.put(fmt.Sprintf("%s-%07d", prefix, i), buf); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write("pre", size); err != nil {
		return nil, err
	}
	var pauses []int64
	for i := 1; i <= runs; i++ {
		dst := filepath.Join(dir, fmt.Sprintf("copy-%d", i))
		if way == "rsync" {
			if out, err := exec.Command("rsync", "-a", src+"/", dst+"/").CombinedOutput(); err != nil {
				return nil, fmt.Errorf("rsync pre-copy: %v: %s", err, out)
			}
		}
		if err := write(fmt.Sprintf("churn-%d", i), size/100); err != nil {
			return nil, err
		}
		epoch := int64(i)
		start := time.Now()
		if err := srcKV.admin("fence", epoch); err != nil {
			return nil, err
		}
		var cmd *exec.Cmd
		if way == "rsync" {
			cmd = exec.Command("rsync", "-a", "--delete", src+"/", dst+"/")
		} else {
			cmd = exec.Command("cp", "-a", src, dst)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", way, err, out)
		}
		copyKV, err := startKV(bin, dst, epoch)
		if err != nil {
			return nil, err
		}
		pause := time.Since(start)
		copyKV.stop()
		if err := srcKV.admin("unfence", epoch); err != nil {
			return nil, err
		}
		os.RemoveAll(dst)
		pauses = append(pauses, pause.Milliseconds())
		fmt.Printf("size=%s way=%s run=%d write_pause_ms=%d\n", label, way, i, pause.Milliseconds())
	}
	return pauses, nil
}

type kv struct {
	cmd  *exec.Cmd
	addr string
	hc   *http.Client
}

// startKV starts kvstore on dir and waits until it serves.
func startKV(bin, dir string, epoch int64) (*kv, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(filepath.Join(bin, "kvstore"), "--data", dir, "--listen", addr)
	cmd.Env = append(os.Environ(), "HANDOVER_EPOCH="+strconv.FormatInt(epoch, 10))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	k := &kv{cmd: cmd, addr: addr, hc: &http.Client{Timeout: 30 * time.Second}}
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		resp, err := k.hc.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return k, nil
			}
		}
	}
	k.stop()
	return nil, fmt.Errorf("kvstore on %s did not become healthy", dir)
}

func (k *kv) stop() {
	_ = k.cmd.Process.Signal(os.Interrupt)
	_ = k.cmd.Wait()
}

func (k *kv) put(key string, body []byte) error {
	req, _ := http.NewRequest(http.MethodPut, "http://"+k.addr+"/kv/"+key, strings.NewReader(string(body)))
	resp, err := k.hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s: %s", key, resp.Status)
	}
	return nil
}

func (k *kv) admin(op string, epoch int64) error {
	resp, err := k.hc.Post("http://"+k.addr+"/admin/"+op, "application/json", strings.NewReader(fmt.Sprintf(`{"epoch":%d}`, epoch)))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", op, resp.Status)
	}
	return nil
}

func median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ratio(a, b int64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

func parseSize(s string) (int64, error) {
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}} {
		if n, ok := strings.CutSuffix(s, u.suf); ok {
			v, err := strconv.ParseFloat(n, 64)
			return int64(v * float64(u.m)), err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func nprocs() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.Join(strings.Fields(line), " ")
}
