package pacing

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestLimiterBurstThenRefill(t *testing.T) {
	tests := []struct {
		name     string
		b        Bucket
		burst    int           // tokens available at once from full
		interval time.Duration // time for one token to come back
	}{
		{"create-snapshot", Bucket{Burst: 100, Refill: 5}, 100, 200 * time.Millisecond},
		{"describe", Bucket{Burst: 100, Refill: 20}, 100, 50 * time.Millisecond},
		{"unfiltered", Bucket{Burst: 50, Refill: 10}, 50, 100 * time.Millisecond},
		{"advertise-byoip", Bucket{Burst: 1, Refill: 0.1}, 1, 10 * time.Second},
		{"fractional-burst", Bucket{Burst: 2.5, Refill: 2}, 2, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLimiter(tt.b, t0)
			if got := l.Available(t0); got != tt.b.Burst {
				t.Fatalf("Available at start = %v, want %v", got, tt.b.Burst)
			}
			for i := range tt.burst {
				if !l.Allow(t0) {
					t.Fatalf("Allow #%d refused within the burst", i+1)
				}
			}
			if l.Allow(t0) {
				t.Fatalf("Allow #%d granted beyond the burst", tt.burst+1)
			}
			// The token comes back exactly one interval after the bucket ran
			// dry, or after the fraction left over refills.
			leftover := tt.b.Burst - float64(tt.burst)
			want := time.Duration(math.Round((1 - leftover) * float64(tt.interval)))
			if got := l.WaitFor(t0); got != want {
				t.Fatalf("WaitFor after burst = %v, want %v", got, want)
			}
			if l.Allow(t0.Add(want - 1)) {
				t.Fatalf("Allow granted 1ns before the token is back")
			}
			now := t0.Add(want)
			if !l.Allow(now) {
				t.Fatalf("Allow refused when WaitFor said a token is back")
			}
			// Taken greedily, the bucket then sustains exactly its refill
			// rate.
			const window = 20 * time.Second
			end := now.Add(window)
			n := 0
			for now.Before(end) {
				now = now.Add(time.Millisecond)
				for l.Allow(now) {
					n++
				}
			}
			if want := int(tt.b.Refill * window.Seconds()); n != want {
				t.Fatalf("granted %d tokens over %v at %v/s, want %d", n, window, tt.b.Refill, want)
			}
		})
	}
}

func TestLimiterCapsAtBurst(t *testing.T) {
	l := NewLimiter(Bucket{Burst: 10, Refill: 5}, t0)
	for l.Allow(t0) {
	}
	later := t0.Add(time.Hour)
	if got := l.Available(later); got != 10 {
		t.Fatalf("Available after an idle hour = %v, want the burst 10", got)
	}
	n := 0
	for l.Allow(later) {
		n++
	}
	if n != 10 {
		t.Fatalf("granted %d after an idle hour, want 10", n)
	}
}

func TestLimiterDrainAndAvailable(t *testing.T) {
	l := NewLimiter(Bucket{Burst: 100, Refill: 5}, t0)
	l.Drain(t0)
	for _, tt := range []struct {
		after time.Duration
		want  float64
	}{
		{0, 0},
		{100 * time.Millisecond, 0.5},
		{200 * time.Millisecond, 1},
		{time.Second, 5},
		{20 * time.Second, 100},
		{time.Minute, 100},
	} {
		if got := l.Available(t0.Add(tt.after)); got != tt.want {
			t.Errorf("Available %v after Drain = %v, want %v", tt.after, got, tt.want)
		}
	}
	if got := l.WaitFor(t0); got != 200*time.Millisecond {
		t.Errorf("WaitFor after Drain = %v, want 200ms", got)
	}
}

func TestLimiterClockGoingBack(t *testing.T) {
	l := NewLimiter(Bucket{Burst: 1, Refill: 1}, t0)
	if !l.Allow(t0) {
		t.Fatal("first Allow refused")
	}
	// A clock stepping backwards must not mint tokens.
	if l.Allow(t0.Add(-time.Hour)) {
		t.Fatal("Allow granted at an earlier time")
	}
	if !l.Allow(t0.Add(time.Second)) {
		t.Fatal("Allow refused once the token is back")
	}
}

func TestBucketValidate(t *testing.T) {
	tests := []struct {
		b  Bucket
		ok bool
	}{
		{Bucket{Burst: 100, Refill: 5}, true},
		{Bucket{Burst: 1, Refill: 0.1}, true},
		{Bucket{Burst: 0.5, Refill: 5}, false},
		{Bucket{Burst: 0, Refill: 5}, false},
		{Bucket{Burst: 10, Refill: 0}, false},
		{Bucket{Burst: 10, Refill: -1}, false},
		{Bucket{Burst: math.NaN(), Refill: 1}, false},
		{Bucket{Burst: 10, Refill: math.Inf(1)}, false},
		{Bucket{Burst: 10, Refill: 2e9}, false},
		{Bucket{Burst: 1e12, Refill: 1e-6}, false},
	}
	for _, tt := range tests {
		if err := tt.b.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.b, err, tt.ok)
		}
	}
}

func TestNewLimiterPanicsOnInvalidBucket(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewLimiter accepted a bucket with no refill")
		}
	}()
	NewLimiter(Bucket{Burst: 1}, t0)
}
