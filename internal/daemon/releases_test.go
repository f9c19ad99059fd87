package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/api"
)

// fakeReleaser counts passes, fails the ones told to, and holds pass
// number holdAt until hold is closed.
type fakeReleaser struct {
	mu     sync.Mutex
	passes int
	fail   map[int]error // by pass number, from 1
	holdAt int
	hold   chan struct{}
}

func (r *fakeReleaser) Pass(ctx context.Context) error {
	r.mu.Lock()
	r.passes++
	n := r.passes
	r.mu.Unlock()
	if n == r.holdAt {
		select {
		case <-r.hold:
		case <-ctx.Done():
		}
	}
	return r.fail[n]
}

func (r *fakeReleaser) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.passes
}

// TestRunPassesReleases: with WithReleases the daemon runs the release
// controller's pass on its interval beside the migrations, goes on after
// a failed pass, and /v1/status shows the last pass and its error.
func TestRunPassesReleases(t *testing.T) {
	rel := &fakeReleaser{fail: map[int]error{2: errors.New("listing waiting lifecycle actions: throttled")}, holdAt: 3, hold: make(chan struct{})}
	d := newDaemon(t, &fakeEngine{}, &fakeQueue{}, func(c *Config) { c.WaitTime = 0 })
	d.WithReleases(rel, 10*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	deadline := time.After(20 * time.Second)
	for rel.count() < 3 { // pass 3 is held: pass 2's outcome is recorded
		select {
		case <-deadline:
			t.Fatalf("after 20s: %d release passes", rel.count())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if st := status(t, d); st.LastReleasePassAt.IsZero() || st.LastReleasePassError != "listing waiting lifecycle actions: throttled" {
		t.Errorf("status after the failed pass: %+v", st)
	}
	close(rel.hold)
	for rel.count() < 5 { // pass 4 went through

		select {
		case <-deadline:
			t.Fatalf("after 20s: %d release passes; a failed pass stopped them", rel.count())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if st := status(t, d); st.LastReleasePassAt.IsZero() || st.LastReleasePassError != "" {
		t.Errorf("status after a pass that went through: %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func status(t *testing.T, d *Daemon) api.Status {
	t.Helper()
	rec := httptest.NewRecorder()
	d.Handler("").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/status", nil))
	var st api.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("GET /v1/status: %v: %s", err, rec.Body.String())
	}
	return st
}
