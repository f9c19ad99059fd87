package fence

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGateStateMachine(t *testing.T) {
	type step struct {
		op         string // "fence" or "unfence"
		epoch      int64
		wantErr    error // nil, ErrStaleEpoch, or errBad for an invalid epoch
		wantFenced bool
		wantEpoch  int64
	}
	errBad := errors.New("invalid epoch")
	tests := []struct {
		name  string
		steps []step
	}{
		{"fence-unfence", []step{
			{"fence", 5, nil, true, 5},
			{"unfence", 5, nil, false, 5},
		}},
		{"fence-is-idempotent", []step{
			{"fence", 5, nil, true, 5},
			{"fence", 5, nil, true, 5},
			{"fence", 6, nil, true, 6},
		}},
		{"lower-epoch-is-stale", []step{
			{"fence", 5, nil, true, 5},
			{"fence", 4, ErrStaleEpoch, true, 5},
			{"unfence", 5, nil, false, 5},
			{"fence", 4, ErrStaleEpoch, false, 5},
			{"fence", 5, nil, true, 5},
		}},
		{"unfence-only-own-epoch", []step{
			{"fence", 7, nil, true, 7},
			{"unfence", 6, ErrStaleEpoch, true, 7},
			{"unfence", 8, ErrStaleEpoch, true, 7},
			{"unfence", 7, nil, false, 7},
		}},
		{"unfence-when-not-fenced", []step{
			{"unfence", 3, nil, false, 0},
			{"fence", 2, nil, true, 2},
			{"unfence", 2, nil, false, 2},
			{"unfence", 2, nil, false, 2},
			{"unfence", 9, nil, false, 2},
		}},
		{"invalid-epochs", []step{
			{"fence", 0, errBad, false, 0},
			{"fence", -1, errBad, false, 0},
			{"unfence", 0, errBad, false, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g Gate
			for i, s := range tt.steps {
				var err error
				if s.op == "fence" {
					err = g.Fence(s.epoch)
				} else {
					err = g.Unfence(s.epoch)
				}
				switch {
				case s.wantErr == nil && err != nil,
					s.wantErr == ErrStaleEpoch && !errors.Is(err, ErrStaleEpoch),
					s.wantErr == errBad && (err == nil || errors.Is(err, ErrStaleEpoch)):
					t.Fatalf("step %d: %s(%d) = %v, want %v", i, s.op, s.epoch, err, s.wantErr)
				}
				if fenced, epoch := g.Fenced(); fenced != s.wantFenced || epoch != s.wantEpoch {
					t.Fatalf("step %d: after %s(%d): Fenced() = %v, %d; want %v, %d",
						i, s.op, s.epoch, fenced, epoch, s.wantFenced, s.wantEpoch)
				}
			}
		})
	}
}

// TestGateFenceWaitsForWrites checks the property the snapshot depends on: a
// fence returns only after every admitted write is applied, and no write is
// admitted after it.
func TestGateFenceWaitsForWrites(t *testing.T) {
	var g Gate
	done, err := g.BeginWrite()
	if err != nil {
		t.Fatalf("BeginWrite on an open gate: %v", err)
	}
	var applied atomic.Bool
	fenced := make(chan error)
	go func() { fenced <- g.Fence(1) }()

	select {
	case err := <-fenced:
		t.Fatalf("Fence returned (%v) while a write was in progress", err)
	case <-time.After(50 * time.Millisecond):
	}
	applied.Store(true)
	done()
	done() // idempotent
	if err := <-fenced; err != nil {
		t.Fatalf("Fence: %v", err)
	}
	if !applied.Load() {
		t.Fatal("Fence returned before the write was applied")
	}
	if _, err := g.BeginWrite(); !errors.Is(err, ErrFenced) {
		t.Fatalf("BeginWrite after Fence = %v, want ErrFenced", err)
	}
	if err := g.Unfence(1); err != nil {
		t.Fatal(err)
	}
	done, err = g.BeginWrite()
	if err != nil {
		t.Fatalf("BeginWrite after Unfence: %v", err)
	}
	done()
}

func TestGateConcurrentWritesAndFences(t *testing.T) {
	// Every write acknowledged is counted before the fence's flush reads
	// the count: no acknowledged write escapes the flush.
	var g Gate
	var acked, flushedAt atomic.Int64
	flush := func() error { flushedAt.Store(acked.Load()); return nil }
	srv := httptest.NewServer(g.Handler(flush))
	defer srv.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var afterFence atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				done, err := g.BeginWrite()
				if err != nil {
					continue
				}
				acked.Add(1)
				if fenced, _ := g.Fenced(); fenced {
					afterFence.Add(1)
				}
				done()
			}
		})
	}
	c := &Client{}
	addr := srv.Listener.Addr().String()
	time.Sleep(10 * time.Millisecond)
	if err := c.Fence(context.Background(), addr, 1); err != nil {
		t.Fatalf("Fence: %v", err)
	}
	final := acked.Load()
	close(stop)
	wg.Wait()
	if got := flushedAt.Load(); got != final || acked.Load() != final {
		t.Fatalf("flush saw %d writes, %d acknowledged when fenced, %d in the end", got, final, acked.Load())
	}
	if n := afterFence.Load(); n != 0 {
		t.Fatalf("%d writes were applied while the gate was fenced", n)
	}
}

// TestClientAgainstGate runs the protocol end to end over real HTTP.
func TestClientAgainstGate(t *testing.T) {
	var g Gate
	var flushes atomic.Int64
	var failFlush atomic.Bool
	flush := func() error {
		if failFlush.Load() {
			return errors.New("fsync: input/output error")
		}
		flushes.Add(1)
		return nil
	}
	srv := httptest.NewServer(RequireToken("tok", g.Handler(flush)))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	ctx := context.Background()
	c := &Client{Token: "tok"}

	steps := []struct {
		name  string
		call  func() error
		want  error
		state string // "fenced@N" or "open@N" after the call
	}{
		{"fence", func() error { return c.Fence(ctx, addr, 5) }, nil, "fenced@5"},
		{"fence-again", func() error { return c.Fence(ctx, addr, 5) }, nil, "fenced@5"},
		{"fence-higher", func() error { return c.Fence(ctx, addr, 7) }, nil, "fenced@7"},
		{"fence-stale", func() error { return c.Fence(ctx, addr, 6) }, ErrStaleEpoch, "fenced@7"},
		{"unfence-other", func() error { return c.Unfence(ctx, addr, 5) }, ErrStaleEpoch, "fenced@7"},
		{"unfence", func() error { return c.Unfence(ctx, addr, 7) }, nil, "open@7"},
		{"unfence-again", func() error { return c.Unfence(ctx, addr, 7) }, nil, "open@7"},
		{"fence-stale-open", func() error { return c.Fence(ctx, addr, 3) }, ErrStaleEpoch, "open@7"},
		{"wrong-token", func() error { return (&Client{Token: "nope"}).Fence(ctx, addr, 9) }, ErrRejected, "open@7"},
		{"no-token", func() error { return (&Client{}).Fence(ctx, addr, 9) }, ErrRejected, "open@7"},
		{"flush-fails", func() error { failFlush.Store(true); return c.Fence(ctx, addr, 8) }, ErrServer, "fenced@8"},
		{"flush-retried", func() error { failFlush.Store(false); return c.Fence(ctx, addr, 8) }, nil, "fenced@8"},
	}
	for _, s := range steps {
		err := s.call()
		if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
		fenced, epoch := g.Fenced()
		state := "open@"
		if fenced {
			state = "fenced@"
		}
		if got := state + strconv.FormatInt(epoch, 10); got != s.state {
			t.Fatalf("%s: gate %s, want %s", s.name, got, s.state)
		}
	}
	if n := flushes.Load(); n != 4 {
		t.Fatalf("flushed %d times, want once per successful fence (4)", n)
	}
	var se *StatusError
	err := c.Fence(ctx, addr, 2)
	if !errors.As(err, &se) || se.Epoch != 8 || !se.HasEpoch {
		t.Fatalf("stale fence = %v, want the service's epoch 8 in the error", err)
	}
}

func TestGateHandlerHTTP(t *testing.T) {
	var g Gate
	h := g.Handler(nil)
	tests := []struct {
		method, path, body string
		code               int
		wantBody           string
	}{
		{"POST", PathFence, `{"epoch": 3}`, 200, `{"fenced":true,"epoch":3}`},
		{"POST", PathFence, `{"epoch": 2}`, 409, `{"error":"stale epoch","epoch":3}`},
		{"POST", PathUnfence, `{"epoch": 2}`, 409, `{"error":"fenced under another epoch","epoch":3}`},
		{"POST", PathUnfence, `{"epoch": 3}`, 200, `{"fenced":false,"epoch":3}`},
		{"POST", PathUnfence, `{"epoch": 3}`, 200, `{"fenced":false,"epoch":3}`},
		{"POST", PathFence, `{}`, 400, ""},
		{"POST", PathFence, `{"epoch": "3"}`, 400, ""},
		{"POST", PathFence, `{"epoch": 3.5}`, 400, ""},
		{"POST", PathFence, `{"epoch": 0}`, 400, ""},
		{"POST", PathFence, `{"epoch": 3} {"epoch": 4}`, 400, ""},
		{"POST", PathFence, `{"epoch": 3, "x": "` + strings.Repeat("a", maxRequestBody) + `"}`, 413, ""},
		{"GET", PathFence, ``, 405, ""},
		{"POST", "/admin/other", `{"epoch": 3}`, 404, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))
		if rec.Code != tt.code {
			t.Errorf("%s %s %.40q: %d %s, want %d", tt.method, tt.path, tt.body, rec.Code, rec.Body, tt.code)
			continue
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tt.method, tt.path, ct)
		}
		if tt.wantBody != "" && strings.TrimSpace(rec.Body.String()) != tt.wantBody {
			t.Errorf("%s %s %q: body %s, want %s", tt.method, tt.path, tt.body, rec.Body, tt.wantBody)
		}
	}
}

func TestRefuseWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	RefuseWrite(rec)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("RefuseWrite: %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestGateDropsFenceOfDepartedCaller(t *testing.T) {
	var g Gate
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("POST", PathFence, strings.NewReader(`{"epoch": 4}`)).WithContext(ctx)
	g.Handler(nil).ServeHTTP(httptest.NewRecorder(), req)
	if fenced, epoch := g.Fenced(); fenced || epoch != 0 {
		t.Fatalf("a fence whose caller had gone was applied: fenced %v at %d", fenced, epoch)
	}
}
