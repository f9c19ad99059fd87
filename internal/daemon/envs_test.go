package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

// fakeEnvs is an EnvRunner over a ledger: Abort marks a standby's
// resume-as-abort, or refuses with NextErr.
type fakeEnvs struct {
	led      ledger.Ledger
	mu       sync.Mutex
	NextErr  error
	advanced []string
}

var _ EnvRunner = (*fakeEnvs)(nil)

func (f *fakeEnvs) Get(ctx context.Context, id string) (*ledger.EnvOp, error) {
	op, err := f.led.GetEnvOp(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reading environment operation %s: %w", id, err)
	}
	return op, nil
}

func (f *fakeEnvs) Abort(ctx context.Context, op *ledger.EnvOp) (*ledger.EnvOp, error) {
	f.mu.Lock()
	err := f.NextErr
	f.NextErr = nil
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	op.ResumeRequested, op.Abort = true, true
	return op, f.led.SaveEnvOp(ctx, op)
}

func (f *fakeEnvs) Advance(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanced = append(f.advanced, id)
	return nil
}

func TestEnvAbort(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	led := memory.New()
	ctx := t.Context()
	for _, op := range []*ledger.EnvOp{
		{ID: "env-standby", Environment: "staging", Op: env.OpStandby, State: ledger.UpdateRunning, Phase: "in-standby", CreatedAt: now},
		{ID: "env-clone", Environment: "staging", Op: env.OpClone, State: ledger.UpdateRunning, Phase: "copy", CreatedAt: now},
		{ID: "env-aborting", Environment: "prod", Op: env.OpClone, State: ledger.UpdateRollingBack, Phase: "abort-delete", CreatedAt: now, Aborting: &ledger.EnvAbort{From: "copy"}},
	} {
		if err := led.CreateEnvOp(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.QueueURL = "q"
	d, err := New(cfg, &fakeEngine{}, &fakeQueue{}, led, clock.NewFake(now), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	post := func(h http.Handler, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"reason":"test"}`)))
		return rec
	}
	// Without a runner the controller says where to go instead.
	if rec := post(d.Handler(""), api.PathEnvs+"/env-standby/abort"); rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), "handover env abort") {
		t.Errorf("abort without a runner: %d %s", rec.Code, rec.Body)
	}
	f := &fakeEnvs{led: led}
	d.WithEnvs(f)
	h := d.Handler("")
	if rec := post(h, api.PathEnvs+"/nope/abort"); rec.Code != http.StatusNotFound {
		t.Errorf("abort of an unknown op: %d %s", rec.Code, rec.Body)
	}
	f.NextErr = fmt.Errorf("standby env-standby ended Succeeded: %w", env.ErrBadRequest)
	if rec := post(h, api.PathEnvs+"/env-standby/abort"); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "ended Succeeded") {
		t.Errorf("a refused abort: %d %s", rec.Code, rec.Body)
	}
	f.NextErr = errors.New("ledger down")
	if rec := post(h, api.PathEnvs+"/env-standby/abort"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a failed abort: %d %s", rec.Code, rec.Body)
	}
	rec := post(h, api.PathEnvs+"/env-standby/abort")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"abort": true`) {
		t.Fatalf("abort: %d %s", rec.Code, rec.Body)
	}
	// The controller carries the aborts, and only them.
	d.advanceEnvAborts(ctx)
	slices.Sort(f.advanced)
	if want := []string{"env-aborting", "env-standby"}; !slices.Equal(f.advanced, want) {
		t.Errorf("advanced %v, want the aborts %v", f.advanced, want)
	}
}
