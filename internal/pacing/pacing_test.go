package pacing

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/clock"
)

func newPacer(t testing.TB, cfg Config) (*Pacer, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	p, err := New(clk, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, clk
}

func drain(p *Pacer, f Family) int {
	n := 0
	for {
		ok, _ := p.Take(f)
		if !ok {
			return n
		}
		n++
	}
}

func TestTakeBurstThenRefill(t *testing.T) {
	tests := []struct {
		family   Family
		cfg      Config
		burst    int
		interval time.Duration
	}{
		{FamilySnapshot, Config{}, 100, 200 * time.Millisecond},
		{FamilyVolume, Config{}, 100, 200 * time.Millisecond},
		{FamilyDelete, Config{}, 100, 200 * time.Millisecond},
		{FamilyDescribe, Config{}, 100, 50 * time.Millisecond},
		{FamilyDescribeUnfiltered, Config{}, 50, 100 * time.Millisecond},
		{FamilyMutate, Config{}, 50, 200 * time.Millisecond},
		{FamilyAutoScaling, Config{}, 20, 500 * time.Millisecond},
		{"not-configured", Config{}, 50, 200 * time.Millisecond},
		{FamilySnapshot, Config{Buckets: map[Family]Bucket{FamilySnapshot: {Burst: 3, Refill: 1}}}, 3, time.Second},
	}
	for _, tt := range tests {
		t.Run(string(tt.family), func(t *testing.T) {
			p, clk := newPacer(t, tt.cfg)
			if n := drain(p, tt.family); n != tt.burst {
				t.Fatalf("took %d tokens at once, want the burst %d", n, tt.burst)
			}
			ok, wait := p.Take(tt.family)
			if ok || wait != tt.interval {
				t.Fatalf("Take after the burst = %v, %v; want false, %v", ok, wait, tt.interval)
			}
			clk.Advance(tt.interval - time.Nanosecond)
			if ok, wait := p.Take(tt.family); ok || wait != time.Nanosecond {
				t.Fatalf("Take 1ns early = %v, %v; want false, 1ns", ok, wait)
			}
			clk.Advance(time.Nanosecond)
			if ok, _ := p.Take(tt.family); !ok {
				t.Fatalf("Take refused after %v", tt.interval)
			}
			st := p.Stats()[tt.family]
			if st.Taken != uint64(tt.burst+1) || st.Denied != 3 {
				t.Fatalf("stats = %+v, want %d taken and 3 denied", st, tt.burst+1)
			}
		})
	}
}

func TestFamiliesAreIndependent(t *testing.T) {
	p, _ := newPacer(t, Config{})
	drain(p, FamilySnapshot)
	p.Throttled(FamilySnapshot)
	if ok, _ := p.Take(FamilyVolume); !ok {
		t.Fatal("an empty, throttled snapshot family held back the volume family")
	}
	// Overriding one family keeps the others' defaults.
	p, _ = newPacer(t, Config{Buckets: map[Family]Bucket{FamilySnapshot: {Burst: 1, Refill: 1}}})
	if n := drain(p, FamilyVolume); n != 100 {
		t.Fatalf("volume burst with a snapshot override = %d, want 100", n)
	}
}

func TestBackoffCeiling(t *testing.T) {
	s := time.Second
	tests := []struct {
		base, max time.Duration
		n         int
		want      time.Duration
	}{
		{s, 20 * s, 1, s},
		{s, 20 * s, 2, 2 * s},
		{s, 20 * s, 3, 4 * s},
		{s, 20 * s, 5, 16 * s},
		{s, 20 * s, 6, 20 * s},
		{s, 20 * s, 7, 20 * s},
		{s, 20 * s, 1 << 30, 20 * s},
		{s, s, 4, s},
		{100 * time.Millisecond, time.Minute, 4, 800 * time.Millisecond},
		{time.Nanosecond, math.MaxInt64, 200, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := backoffCeiling(tt.base, tt.max, tt.n); got != tt.want {
			t.Errorf("backoffCeiling(%v, %v, %d) = %v, want %v", tt.base, tt.max, tt.n, got, tt.want)
		}
	}
}

// TestThrottledBacksOff checks the exact back-off against the same seeded
// draws: full jitter in [0, base·2^(n−1)] capped at max, and a drained bucket
// underneath it.
func TestThrottledBacksOff(t *testing.T) {
	const base, hi = time.Second, 20 * time.Second
	p, clk := newPacer(t, Config{BackoffBase: base, BackoffMax: hi, Rand: rand.New(rand.NewPCG(7, 7))})
	ref := rand.New(rand.NewPCG(7, 7))
	interval := 200 * time.Millisecond // FamilySnapshot refill
	for n := 1; n <= 10; n++ {
		p.Throttled(FamilySnapshot)
		ceiling := backoffCeiling(base, hi, n)
		jitter := time.Duration(ref.Int64N(int64(ceiling) + 1))
		ok, wait := p.Take(FamilySnapshot)
		if ok {
			t.Fatalf("throttle %d: Take succeeded during back-off", n)
		}
		if want := max(jitter, interval); wait != want {
			t.Fatalf("throttle %d: wait %v, want %v (jitter %v, ceiling %v)", n, wait, want, jitter, ceiling)
		}
		if wait > max(ceiling, interval) {
			t.Fatalf("throttle %d: wait %v above ceiling %v", n, wait, ceiling)
		}
		clk.Advance(wait)
		if ok, _ := p.Take(FamilySnapshot); !ok {
			t.Fatalf("throttle %d: Take refused once the wait it gave had passed", n)
		}
	}
	if st := p.Stats()[FamilySnapshot]; st.Throttles != 10 || st.Consecutive != 10 {
		t.Fatalf("stats = %+v, want 10 throttles, 10 consecutive", st)
	}
	p.Succeeded(FamilySnapshot)
	if st := p.Stats()[FamilySnapshot]; st.Consecutive != 0 || st.Throttles != 10 {
		t.Fatalf("stats after Succeeded = %+v, want 0 consecutive, 10 throttles", st)
	}
	// After a success the next back-off starts from base again.
	for range 50 {
		p.Throttled(FamilySnapshot)
		_, wait := p.Take(FamilySnapshot)
		if wait > base {
			t.Fatalf("back-off after a success = %v, above base %v", wait, base)
		}
		p.Succeeded(FamilySnapshot)
		clk.Advance(base)
	}
}

func TestJitterDeterministic(t *testing.T) {
	waits := func(seed uint64) []time.Duration {
		p, _ := newPacer(t, Config{Rand: rand.New(rand.NewPCG(seed, seed))})
		var ws []time.Duration
		for range 8 {
			p.Throttled(FamilyMutate)
			_, w := p.Take(FamilyMutate)
			ws = append(ws, w)
		}
		return ws
	}
	a, b, c := waits(42), waits(42), waits(43)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, wait %d: %v vs %v", i, a[i], b[i])
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatalf("seeds 42 and 43 drew identical back-offs %v", a)
	}
}

func TestBackoffNeverShortened(t *testing.T) {
	// Later throttles draw fresh jitter, often smaller than the first; the
	// back-off in force must still run its course.
	p, _ := newPacer(t, Config{BackoffBase: 10 * time.Second, BackoffMax: 10 * time.Second})
	p.Throttled(FamilyMutate)
	_, first := p.Take(FamilyMutate)
	for range 20 {
		p.Throttled(FamilyMutate)
		if _, w := p.Take(FamilyMutate); w < first {
			t.Fatalf("a later throttle shortened the back-off from %v to %v", first, w)
		}
	}
}

func TestWaitAdvancesFakeClock(t *testing.T) {
	var slept time.Duration
	var clk *clock.Fake
	p, clk := newPacer(t, Config{Sleep: func(ctx context.Context, d time.Duration) error {
		slept += d
		clk.Advance(d)
		return nil
	}})
	drain(p, FamilySnapshot)
	if err := p.Wait(context.Background(), FamilySnapshot); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if slept != 200*time.Millisecond {
		t.Fatalf("Wait slept %v, want 200ms", slept)
	}
}

func TestWaitReturnsContextError(t *testing.T) {
	t.Run("already-canceled", func(t *testing.T) {
		p, _ := newPacer(t, Config{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.Wait(ctx, FamilySnapshot); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
		if st := p.Stats()[FamilySnapshot]; st.Taken != 0 {
			t.Fatalf("Wait on a canceled context took a token: %+v", st)
		}
	})
	t.Run("canceled-while-waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p, _ := newPacer(t, Config{Sleep: func(ctx context.Context, d time.Duration) error {
			cancel()
			return ctx.Err()
		}})
		drain(p, FamilySnapshot)
		if err := p.Wait(ctx, FamilySnapshot); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	})
	t.Run("real-sleep-deadline", func(t *testing.T) {
		// The default Sleep on a fake clock that never moves: only the
		// deadline can end the wait.
		p, _ := newPacer(t, Config{})
		drain(p, FamilySnapshot)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := p.Wait(ctx, FamilySnapshot); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait = %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestConcurrentTakeNeverExceedsBurst(t *testing.T) {
	p, clk := newPacer(t, Config{})
	var taken atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 50 {
				if ok, _ := p.Take(FamilySnapshot); ok {
					taken.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := taken.Load(); n != 100 {
		t.Fatalf("32 goroutines took %d tokens at one instant, want the burst 100", n)
	}

	// Everything at once, with time moving: the race detector is the check,
	// plus the total never exceeding burst + refill × elapsed.
	taken.Store(0)
	start := clk.Now()
	stop := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				clk.Advance(time.Millisecond)
			}
		}
	})
	for i := range 16 {
		wg.Go(func() {
			for range 200 {
				if ok, _ := p.Take(FamilyDescribe); ok {
					taken.Add(1)
				}
				switch i % 4 {
				case 0:
					p.Throttled(FamilyMutate)
				case 1:
					p.Succeeded(FamilyMutate)
				case 2:
					_ = p.Stats()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	ticker.Wait()
	elapsed := clk.Now().Sub(start)
	if limit := 100 + 1 + int64(20*elapsed.Seconds()); taken.Load() > limit {
		t.Fatalf("took %d describe tokens in %v, above the bucket's %d", taken.Load(), elapsed, limit)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"override", Config{Buckets: map[Family]Bucket{FamilyMutate: {Burst: 200, Refill: 10}}}, true},
		{"backoff", Config{BackoffBase: time.Millisecond, BackoffMax: time.Minute}, true},
		{"base-only-below-default-max", Config{BackoffBase: 5 * time.Second}, true},
		{"negative-base", Config{BackoffBase: -1}, false},
		{"negative-max", Config{BackoffMax: -1}, false},
		{"base-above-max", Config{BackoffBase: time.Minute, BackoffMax: time.Second}, false},
		{"base-above-default-max", Config{BackoffBase: time.Minute}, false},
		{"no-refill", Config{Buckets: map[Family]Bucket{FamilySnapshot: {Burst: 100}}}, false},
		{"no-burst", Config{Buckets: map[Family]Bucket{FamilySnapshot: {Refill: 5}}}, false},
		{"empty-family", Config{Buckets: map[Family]Bucket{"": {Burst: 1, Refill: 1}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if _, nerr := New(clock.NewFake(t0), tt.cfg); (nerr == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok=%v", nerr, tt.ok)
			}
		})
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Fatal("New accepted a nil clock")
	}
}

func TestDefaultBucketsValid(t *testing.T) {
	for f, b := range DefaultBuckets() {
		if err := b.Validate(); err != nil {
			t.Errorf("default bucket for %s: %v", f, err)
		}
	}
	// The map is the caller's to modify.
	DefaultBuckets()[FamilySnapshot] = Bucket{}
	if DefaultBuckets()[FamilySnapshot].Burst != 100 {
		t.Fatal("DefaultBuckets returned a shared map")
	}
}

func TestEC2Family(t *testing.T) {
	tests := map[string]Family{
		"CreateSnapshot":     FamilySnapshot,
		"CreateSnapshots":    FamilySnapshot,
		"CreateVolume":       FamilyVolume,
		"DeleteSnapshot":     FamilyDelete,
		"DeleteVolume":       FamilyDelete,
		"DescribeVolumes":    FamilyDescribe,
		"DescribeSnapshots":  FamilyDescribe,
		"GetConsoleOutput":   FamilyDescribe,
		"AttachVolume":       FamilyMutate,
		"DetachVolume":       FamilyMutate,
		"StopInstances":      FamilyMutate,
		"TerminateInstances": FamilyMutate,
		"CreateTags":         FamilyMutate,
		"DeleteTags":         FamilyMutate,
	}
	for action, want := range tests {
		if got := EC2Family(action); got != want {
			t.Errorf("EC2Family(%q) = %s, want %s", action, got, want)
		}
	}
}

func BenchmarkTake(b *testing.B) {
	// A bucket big enough that every Take succeeds: this measures the
	// bookkeeping, not the waiting.
	p, err := New(clock.Real{}, Config{Buckets: map[Family]Bucket{FamilyDescribe: {Burst: 1e9, Refill: 1e9}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			p.Take(FamilyDescribe)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.Take(FamilyDescribe)
			}
		})
	})
}

// TestBorrowLeavesDebt: Borrow goes ahead from an empty bucket, and the
// callers after it wait the debt out, so the rate over time is kept.
func TestBorrowLeavesDebt(t *testing.T) {
	p, clk := newPacer(t, Config{Buckets: map[Family]Bucket{FamilySnapshot: {Burst: 1, Refill: 10}}})
	if ok, _ := p.Take(FamilySnapshot); !ok {
		t.Fatal("first Take refused")
	}
	for i := range 3 {
		if ok, wait := p.Borrow(FamilySnapshot); !ok {
			t.Fatalf("Borrow %d refused (wait %s)", i, wait)
		}
	}
	// One token refills every 100 ms: the three borrowed, then the one
	// this Take wants.
	if ok, wait := p.Take(FamilySnapshot); ok || wait != 400*time.Millisecond {
		t.Fatalf("Take after 3 borrows = %v, %s; want refused for 400ms", ok, wait)
	}
	clk.Advance(400 * time.Millisecond)
	if ok, _ := p.Take(FamilySnapshot); !ok {
		t.Fatal("Take refused once the debt was waited out")
	}
	if s := p.Stats()[FamilySnapshot]; s.Taken != 5 || s.Borrowed != 3 {
		t.Errorf("stats %+v, want 5 taken of which 3 borrowed", s)
	}
}

// TestBorrowRespectsBackoff: the cloud said it is over its limit, so a
// borrow waits like everyone else.
func TestBorrowRespectsBackoff(t *testing.T) {
	p, _ := newPacer(t, Config{BackoffBase: time.Second, BackoffMax: time.Second, Rand: rand.New(rand.NewPCG(1, 2))})
	p.Throttled(FamilyDescribe) // this seed draws a back-off above 0
	if ok, wait := p.Borrow(FamilyDescribe); ok || wait <= 0 {
		t.Errorf("Borrow during a back-off = %v, %s; want refused with a wait", ok, wait)
	}
}
