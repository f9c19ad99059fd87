// Command reads measures read availability through the load balancer while
// handovers run on the local cloud: a steady mixed load (reads of small
// keys at a fixed rate, plus writes) runs across repeated updates, and
// every read is classified as during a handover (from the update's start
// to the old instance leaving) or outside one. It reports failed reads and
// p50/p99 latency for both, the same run giving the figures without a
// handover. A writer also writes fresh keys through the load balancer and
// reads each back as soon as it is acknowledged, as a tenant reading what
// it just wrote: a read that comes back missing or old is a stale read
// (invariant no-stale-reads), and the run exits 1 if there is any.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/handover-dev/handover/internal/demo"
)

type sample struct {
	at  time.Time
	lat time.Duration
	ok  bool
}

func main() {
	rate := flag.Int("rate", 600, "reads per second")
	minReads := flag.Int("reads", 50000, "stop once this many reads were made")
	minHandovers := flag.Int("handovers", 5, "and at least this many handovers")
	bin := flag.String("bin", "bin", "directory holding the handover and kvstore programs")
	flag.Parse()
	log.SetFlags(0)
	abs, _ := filepath.Abs(*bin)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-reads-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	env, err := demo.Start(ctx, demo.Options{DataDir: dir, HandoverBin: filepath.Join(abs, "handover"), KVStoreBin: filepath.Join(abs, "kvstore")})
	if err != nil {
		log.Fatal(err)
	}
	defer env.Close()
	if err := env.CreateGroup(ctx); err != nil {
		log.Fatal(err)
	}
	keys, err := env.Load(ctx, 64<<20, nil)
	if err != nil {
		log.Fatal(err)
	}
	hc, lb := env.Client()
	const small = 2000
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1024) }
	for i := range small {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/kv/r-%05d", lb, i), bytes.NewReader(val(i)))
		resp, err := hc.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			log.Fatalf("loading read keys: %v %v", err, resp)
		}
		resp.Body.Close()
	}

	var (
		mu      sync.Mutex
		samples []sample
		n       atomic.Int64
		// The writer's own writes: acknowledged, read back as written,
		// read back missing or old (stale), read back failed.
		ownAcked, ownFresh, ownStale, ownFailed atomic.Int64
	)
	loadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; loadCtx.Err() == nil; i++ {
			k := fmt.Sprintf("%s/kv/fw-%07d", lb, i)
			v := bytes.Repeat([]byte{byte(i), 'w'}, 256)
			req, _ := http.NewRequestWithContext(loadCtx, http.MethodPut, k, bytes.NewReader(v))
			resp, err := hc.Do(req)
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				time.Sleep(20 * time.Millisecond) // fenced: try the next key
				continue
			}
			ownAcked.Add(1)
			resp, err = hc.Get(k)
			switch {
			case err != nil:
				ownFailed.Add(1)
			default:
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusOK && bytes.Equal(b, v):
					ownFresh.Add(1)
				case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusOK:
					ownStale.Add(1)
				default:
					ownFailed.Add(1)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	jobs := make(chan int, *rate)
	wg.Go(func() {
		defer close(jobs)
		for i := 0; ; i++ {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
				select {
				case jobs <- i:
				default: // workers behind: the offered rate drops, and shows
				}
			}
		}
	})
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				k := i % small
				start := time.Now()
				resp, err := hc.Get(fmt.Sprintf("%s/kv/r-%05d", lb, k))
				ok := false
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK && bytes.Equal(b, val(k))
				}
				mu.Lock()
				samples = append(samples, sample{start, time.Since(start), ok})
				mu.Unlock()
				n.Add(1)
			}
		})
	}

	type window struct{ from, to time.Time }
	var windows []window
	var demoStale int64
	began := time.Now()
	for i := 0; n.Load() < int64(*minReads) || i < *minHandovers; i++ {
		time.Sleep(3 * time.Second) // reads outside a handover
		from := time.Now()
		r, err := env.Run(ctx, demo.ScenarioUpdate, keys, func(string) {})
		if err != nil {
			log.Fatal(err)
		}
		windows = append(windows, window{from, time.Now()})
		demoStale += r.StaleReads
		fmt.Printf("handover %d: ok=%v write_pause_ms=%d stale_reads=%d reads so far %d\n", i+1, r.OK, r.WritePauseMS, r.StaleReads, n.Load())
	}
	stop()
	wg.Wait()
	elapsed := time.Since(began)

	var in, out []time.Duration
	failedIn, failedOut := 0, 0
	for _, s := range samples {
		during := false
		for _, w := range windows {
			if !s.at.Before(w.from) && s.at.Before(w.to) {
				during = true
			}
		}
		switch {
		case during && s.ok:
			in = append(in, s.lat)
		case during:
			failedIn++
		case s.ok:
			out = append(out, s.lat)
		default:
			failedOut++
		}
	}
	fmt.Printf("# reads: nproc=%s, %s\n", nproc(), memTotal())
	fmt.Printf("reads=%d in %s (%.0f/s offered %d/s), handovers=%d\n", len(samples), elapsed.Round(time.Second), float64(len(samples))/elapsed.Seconds(), *rate, len(windows))
	fmt.Printf("during handovers: reads=%d failed=%d p50=%s p99=%s\n", len(in)+failedIn, failedIn, pct(in, 50), pct(in, 99))
	fmt.Printf("outside handovers: reads=%d failed=%d p50=%s p99=%s\n", len(out)+failedOut, failedOut, pct(out, 50), pct(out, 99))
	fmt.Printf("own writes: acked=%d read_back=%d stale=%d failed=%d; the demo traffic's stale reads: %d\n",
		ownAcked.Load(), ownFresh.Load(), ownStale.Load(), ownFailed.Load(), demoStale)
	if ownStale.Load() > 0 || demoStale > 0 {
		log.Fatalf("stale reads: %d of the writer's own writes, %d of the demo traffic's (invariant no-stale-reads)", ownStale.Load(), demoStale)
	}
}

func pct(xs []time.Duration, p int) string {
	if len(xs) == 0 {
		return "-"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(10 * time.Microsecond).String()
}

func nproc() string {
	out, _ := exec.Command("nproc").Output()
	return strings.TrimSpace(string(out))
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.Join(strings.Fields(line), " ")
}
