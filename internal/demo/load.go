package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// valueSize is the size of each preloaded value: big enough that a state
// of a few GiB loads in minutes, small enough for kvstore's 1 MiB limit.
// ValueSize is the size of each preloaded value.
const ValueSize = 256 << 10

const valueSize = ValueSize

// value returns the deterministic contents of a preloaded key, so a read
// can be checked without remembering what was written.
func value(key string, size int) []byte {
	out := make([]byte, 0, size)
	seed := sha256.Sum256([]byte(key))
	for len(out) < size {
		out = append(out, seed[:]...)
		seed = sha256.Sum256(seed[:])
	}
	return out[:size]
}

func preloadKey(i int) string { return fmt.Sprintf("pre-%07d", i) }

// client talks to the load balancer without keep-alive surprises: each
// request may land on any target, as through a real load balancer.
func newClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: t, Timeout: 10 * time.Second}
}

// Load writes size bytes of preloaded keys through the load balancer. It
// reports progress through onProgress(done, total) and returns the number
// of keys.
func (e *Env) Load(ctx context.Context, size int64, onProgress func(done, total int64)) (int, error) {
	n := int((size + valueSize - 1) / valueSize)
	hc := newClient()
	var next atomic.Int64
	var done atomic.Int64
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				k := preloadKey(i)
				if err := put(ctx, hc, e.LBURL, k, value(k, valueSize)); err != nil {
					errc <- fmt.Errorf("loading key %s: %w", k, err)
					return
				}
				if onProgress != nil {
					onProgress(done.Add(valueSize), int64(n)*valueSize)
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	return n, ctx.Err()
}

func put(ctx context.Context, hc *http.Client, base, key string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/kv/"+key, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT /kv/%s: %s", key, resp.Status)
	}
	return nil
}

func get(ctx context.Context, hc *http.Client, base, key string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/kv/"+key, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Traffic is a running load generator: readers check preloaded keys and
// the newest write the traffic got acknowledged, the writer writes fresh
// keys, remembers every acknowledged one and reads each back at once — a
// tenant reading what it just wrote, through the load balancer, where any
// target may answer (invariant no-stale-reads: no read answered from older data once a
// newer write was acknowledged).
type Traffic struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// draining ends the loops after their current request (Drain).
	draining atomic.Bool
	counter  *countingTransport

	readsOK, readsFailed atomic.Int64
	freshOK, stale       atomic.Int64
	mu                   sync.Mutex
	acked                []ack
	failures             map[string]int
	staleKeys            []string
}

type ack struct {
	key string
	at  time.Time
}

// StartTraffic reads and writes through the load balancer until Stop.
// keys is how many preloaded keys there are to read.
func (e *Env) StartTraffic(keys int) *Traffic { return startTraffic(e.LBURL, keys, true) }

// StartReads only reads preloaded keys through the load balancer at base:
// for a pool, whose load balancer spreads one database's keys over every
// instance, so its own writes are read back by TenantWrites instead,
// through the instance that holds the database.
func StartReads(base string, keys int) *Traffic { return startTraffic(base, keys, false) }

func startTraffic(base string, keys int, writes bool) *Traffic {
	ctx, cancel := context.WithCancel(context.Background())
	hc := newClient()
	counter := &countingTransport{base: hc.Transport}
	hc.Transport = counter
	t := &Traffic{cancel: cancel, failures: map[string]int{}, counter: counter}
	live := func() bool { return ctx.Err() == nil && !t.draining.Load() }
	for r := range 2 {
		t.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for n := 0; live(); n++ {
				if k, ok := t.newest(); ok && n%2 == 1 {
					t.readBack(ctx, hc, base, k)
				} else {
					k := preloadKey(rng.IntN(keys))
					t.check(ctx, hc, base, k, valueSize, false)
				}
				sleep(ctx, 5*time.Millisecond)
			}
		})
	}
	if !writes {
		return t
	}
	t.wg.Go(func() {
		for i := 0; live(); i++ {
			k := fmt.Sprintf("w-%07d", i)
			// Retry the same key until it is acknowledged: a write the
			// client gave up on is not an acknowledged write.
			for live() {
				err := put(ctx, hc, base, k, value(k, 512))
				if err == nil {
					t.mu.Lock()
					t.acked = append(t.acked, ack{k, time.Now()})
					t.mu.Unlock()
					t.readBack(ctx, hc, base, k)
					break
				}
				sleep(ctx, 20*time.Millisecond)
			}
			sleep(ctx, 10*time.Millisecond)
		}
	})
	return t
}

// newest returns the newest acknowledged key.
func (t *Traffic) newest() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.acked) == 0 {
		return "", false
	}
	return t.acked[len(t.acked)-1].key, true
}

// readBack reads an acknowledged write back: a 404 or an older value is a
// stale read.
func (t *Traffic) readBack(ctx context.Context, hc *http.Client, base, key string) {
	t.check(ctx, hc, base, key, 512, true)
}

// check reads key and counts the outcome; own says the key is one of the
// traffic's acknowledged writes.
func (t *Traffic) check(ctx context.Context, hc *http.Client, base, key string, size int, own bool) {
	code, body, err := get(ctx, hc, base, key)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		t.fail("read: " + err.Error())
	case own && (code == http.StatusNotFound || code == http.StatusOK && !bytes.Equal(body, value(key, size))):
		t.staleRead(key, code)
	case code != http.StatusOK:
		t.fail(fmt.Sprintf("read: HTTP %d", code))
	case !bytes.Equal(body, value(key, size)):
		t.fail("read: wrong value")
	default:
		t.readsOK.Add(1)
		if own {
			t.freshOK.Add(1)
		}
	}
}

func (t *Traffic) fail(why string) {
	t.readsFailed.Add(1)
	t.mu.Lock()
	t.failures[why]++
	t.mu.Unlock()
}

// staleRead counts a read of an acknowledged write that came back missing
// or old: answered from older data than the write's (invariant no-stale-reads).
func (t *Traffic) staleRead(key string, code int) {
	t.stale.Add(1)
	t.fail("stale read of an acknowledged write")
	t.mu.Lock()
	if len(t.staleKeys) < 10 {
		t.staleKeys = append(t.staleKeys, fmt.Sprintf("%s (HTTP %d)", key, code))
	}
	t.mu.Unlock()
}

// Stop ends the traffic and waits for it. Requests in flight are
// cancelled.
func (t *Traffic) Stop() {
	t.cancel()
	t.wg.Wait()
}

// Drain ends the traffic after the requests in flight are answered, so
// that every request it counted was also seen whole by the load balancer.
func (t *Traffic) Drain() {
	t.draining.Store(true)
	t.wg.Wait()
	t.cancel()
}

// loadAgent starts the User-Agent of every request the traffic sends.
const loadAgent = "handover-demo-load/"

// countingTransport numbers every request the traffic sends in its
// User-Agent (loadAgent + N) and counts the answered ones: each answered
// request is one line of the load balancer's access log, which the logs
// scenario finds again in the store by that number.
type countingTransport struct {
	base                 http.RoundTripper
	sent                 atomic.Int64
	answered, unanswered atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	n := c.sent.Add(1)
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", loadAgent+strconv.FormatInt(n, 10))
	resp, err := c.base.RoundTrip(r)
	if err != nil {
		c.unanswered.Add(1)
	} else {
		c.answered.Add(1)
	}
	return resp, err
}

// TrafficResult is what the traffic saw.
type TrafficResult struct {
	ReadsOK, ReadsFailed int64
	ReadFailures         map[string]int
	// FreshReads are reads of the traffic's own acknowledged writes that
	// returned them; StaleReads those that came back missing or old
	// (counted in ReadsFailed too), with examples in StaleKeys.
	FreshReads, StaleReads int64
	StaleKeys              []string
	WritesAcked            int
	// WritePause is the longest time between two acknowledged writes.
	WritePause time.Duration
	// Requests is how many requests the load balancer answered (every
	// read, write and read-back, retries included); Unanswered those that
	// got no response (connection errors, or cut by Stop).
	Requests, Unanswered int64
	Acked                []string
}

// Result summarizes the traffic so far.
func (t *Traffic) Result() TrafficResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := TrafficResult{ReadsOK: t.readsOK.Load(), ReadsFailed: t.readsFailed.Load(), ReadFailures: map[string]int{}, WritesAcked: len(t.acked),
		FreshReads: t.freshOK.Load(), StaleReads: t.stale.Load(), StaleKeys: slices.Clone(t.staleKeys),
		Requests: t.counter.answered.Load(), Unanswered: t.counter.unanswered.Load()}
	for k, v := range t.failures {
		r.ReadFailures[k] = v
	}
	for i, a := range t.acked {
		r.Acked = append(r.Acked, a.key)
		if i > 0 {
			r.WritePause = max(r.WritePause, a.at.Sub(t.acked[i-1].at))
		}
	}
	return r
}

// LostWrites reads every acknowledged key back through the load balancer
// and returns those missing or wrong.
func (e *Env) LostWrites(ctx context.Context, keys []string) ([]string, error) {
	hc := newClient()
	var lost []string
	for _, k := range keys {
		code, body, err := get(ctx, hc, e.LBURL, k)
		if err != nil {
			return nil, fmt.Errorf("reading back %s: %w", k, err)
		}
		if code != http.StatusOK || !bytes.Equal(body, value(k, 512)) {
			lost = append(lost, k)
		}
	}
	slices.Sort(lost)
	return lost, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Churn writes n bytes of new keys (named with tag) through the load
// balancer, as a burst of changes for benchmarks: "1 % of the data changed
// since the pre-copy".
func (e *Env) Churn(ctx context.Context, n int64, tag string) error {
	hc := newClient()
	for i := 0; int64(i)*valueSize < n; i++ {
		k := fmt.Sprintf("churn-%s-%06d", tag, i)
		if err := put(ctx, hc, e.LBURL, k, value(k, valueSize)); err != nil {
			return fmt.Errorf("writing %s: %w", k, err)
		}
	}
	return nil
}

// Client returns an HTTP client and the load balancer's URL, for
// benchmarks that make their own traffic.
func (e *Env) Client() (*http.Client, string) { return newClient(), e.LBURL }
