package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/update"
)

// fakeUpdater is an Updater over a ledger: Start stores a Running update
// (upd-new-1, upd-new-2, …), Abort marks a stored one RollingBack, Plan
// answers PlanOut. Calls records each call as "start g", "plan g",
// "abort ID: why" or "advance".
type fakeUpdater struct {
	mu      sync.Mutex
	led     ledger.Ledger
	now     time.Time
	PlanOut update.Plan
	// NextErr is returned, once, by the next Plan, Start, Abort or
	// AdvanceAll.
	NextErr error
	Calls   []string
	Starts  []update.Request
	n       int
}

var _ Updater = (*fakeUpdater)(nil)

func (f *fakeUpdater) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.NextErr, f.Calls, f.Starts = nil, nil, nil
}

// call records a call and takes NextErr.
func (f *fakeUpdater) call(s string) error {
	f.Calls = append(f.Calls, s)
	err := f.NextErr
	f.NextErr = nil
	return err
}

func (f *fakeUpdater) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Calls)
}

func (f *fakeUpdater) Plan(_ context.Context, req update.Request) (update.Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("plan " + req.Group); err != nil {
		return update.Plan{}, err
	}
	return f.PlanOut, nil
}

func (f *fakeUpdater) Start(ctx context.Context, req update.Request) (*ledger.Update, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("start " + req.Group); err != nil {
		return nil, err
	}
	f.Starts = append(f.Starts, req)
	f.n++
	u := &ledger.Update{ID: fmt.Sprintf("upd-new-%d", f.n), Group: req.Group, State: ledger.UpdateRunning, Phase: update.PhaseBatch.String(),
		Spec: ledger.UpdateSpec{Strategy: req.Strategy, BatchSize: req.BatchSize}, CreatedAt: f.now, UpdatedAt: f.now}
	if err := f.led.CreateUpdate(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

func (f *fakeUpdater) Abort(ctx context.Context, id, why string) (*ledger.Update, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("abort " + id + ": " + why); err != nil {
		return nil, err
	}
	u, err := f.led.GetUpdate(ctx, id)
	if err != nil {
		return nil, err
	}
	u.AbortRequested, u.State, u.Error = true, ledger.UpdateRollingBack, why
	return u, f.led.SaveUpdate(ctx, u)
}

func (f *fakeUpdater) AdvanceAll(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.call("advance")
}

var updatesNow = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// updatesServer serves a daemon with group updates over a ledger holding
// upd-a (g, Succeeded), upd-b (g, Running) and upd-c (h, Failed), and
// migrations of upd-b (forward and rollback), of upd-c, of an update whose
// id starts like upd-b's, and of none.
func updatesServer(t *testing.T, token string) (*httptest.Server, *fakeUpdater) {
	t.Helper()
	led := memory.New()
	ctx := t.Context()
	for _, u := range []*ledger.Update{
		{ID: "upd-a", Group: "g", State: ledger.UpdateSucceeded, CreatedAt: updatesNow.Add(-3 * time.Hour)},
		{ID: "upd-b", Group: "g", State: ledger.UpdateRunning, Phase: update.PhaseBatch.String(), CreatedAt: updatesNow.Add(-2 * time.Hour)},
		{ID: "upd-c", Group: "h", State: ledger.UpdateFailed, Error: "batch 1 failed", CreatedAt: updatesNow.Add(-time.Hour)},
	} {
		if err := led.CreateUpdate(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range []*ledger.Migration{
		{ID: "m-fwd", Update: "upd-b", State: ledger.Committed},
		{ID: "m-back", Update: "upd-b#rollback", State: ledger.Snapshotting},
		{ID: "m-c", Update: "upd-c", State: ledger.Committed},
		{ID: "m-bx", Update: "upd-bx", State: ledger.Committed},
		{ID: "m-none", State: ledger.Committed},
	} {
		m.Database, m.Group, m.Instance = "db-"+m.ID, "g", "i-"+m.ID
		m.CreatedAt = updatesNow.Add(-time.Hour + time.Duration(i)*time.Minute)
		m.UpdatedAt = m.CreatedAt
		if err := led.CreateMigration(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.QueueURL = "q"
	d, err := New(cfg, &fakeEngine{}, &fakeQueue{}, led, clock.NewFake(updatesNow), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpdater{led: led, now: updatesNow, PlanOut: update.Plan{Group: "g", Strategy: update.Rolling, Capacity: 2,
		Steps: []update.PlanStep{{Phase: update.PhaseBatch, Batch: 1, Instances: []update.PlanInstance{{ID: "i-1"}}, WaitsFor: "handovers"}}}}
	d.WithUpdates(f)
	srv := httptest.NewServer(d.Handler(token))
	t.Cleanup(srv.Close)
	return srv, f
}

// send makes one request and returns its status and body.
func send(t *testing.T, method, url, body, auth string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func updateIDs(us []*ledger.Update) []string {
	var ids []string
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return ids
}

func migrationIDs(ms []api.MigrationSummary) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

const okRequest = `{"group":"g","strategy":"rolling","batch_size":1,"min_healthy_percent":50}`

func TestUpdatesAPI(t *testing.T) {
	tests := []struct {
		name         string
		method, path string
		body         string
		nextErr      error
		wantCode     int
		wantBody     []string // substrings of the answer
		wantCalls    []string
		check        func(t *testing.T, f *fakeUpdater, body []byte)
	}{
		{
			name: "start", method: "POST", path: "/v1/updates",
			body:     `{"group":"g","strategy":"rolling","batch_size":2,"min_healthy_percent":50,"pause":"90s","bake":"2m","launch_template_version":"7"}`,
			wantCode: 201, wantCalls: []string{"start g"}, wantBody: []string{`"migrations": []`},
			check: func(t *testing.T, f *fakeUpdater, body []byte) {
				u := decode[api.Update](t, body)
				if u.Update == nil || u.ID != "upd-new-1" || u.Group != "g" || u.State != ledger.UpdateRunning {
					t.Errorf("answer = %s", body)
				}
				want := update.Request{Group: "g", Strategy: update.Rolling, Version: "7", BatchSize: 2, MinHealthyPercent: 50, Pause: 90 * time.Second, Bake: 2 * time.Minute}
				if len(f.Starts) != 1 || f.Starts[0] != want {
					t.Errorf("Start got %+v, want %+v", f.Starts, want)
				}
			},
		},
		{name: "malformed JSON", method: "POST", path: "/v1/updates", body: `{"group":`, wantCode: 400, wantBody: []string{"decoding the update request"}},
		{name: "empty body", method: "POST", path: "/v1/updates", wantCode: 400, wantBody: []string{"decoding the update request"}},
		{name: "unknown field", method: "POST", path: "/v1/updates", body: `{"group":"g","strategy":"rolling","batch_size":1,"colour":"red"}`,
			wantCode: 400, wantBody: []string{`unknown field \"colour\"`}},
		{name: "bad duration", method: "POST", path: "/v1/updates", body: `{"group":"g","strategy":"rolling","batch_size":1,"pause":"soon"}`,
			wantCode: 400, wantBody: []string{`pause \"soon\" is not a duration like 90s`}},
		{name: "every bad duration is named", method: "POST", path: "/v1/updates",
			body:     `{"group":"g","strategy":"replace-all","batch_size":1,"bake":"2","signal_timeout":"forever","migration_timeout":"x"}`,
			wantCode: 400, wantBody: []string{`bake \"2\"`, `signal_timeout \"forever\"`, `migration_timeout \"x\"`}},
		{name: "batch size 0", method: "POST", path: "/v1/updates", body: `{"group":"g","strategy":"rolling","batch_size":0}`,
			wantCode: 400, wantBody: []string{"batch-size must be at least 1, got 0"}},
		{name: "unknown strategy", method: "POST", path: "/v1/updates", body: `{"group":"g","strategy":"blue-green","batch_size":1}`,
			wantCode: 400, wantBody: []string{`strategy \"blue-green\" is not rolling or replace-all`}},
		{name: "no group", method: "POST", path: "/v1/updates", body: `{"strategy":"rolling","batch_size":1}`,
			wantCode: 400, wantBody: []string{"group is required"}},
		{name: "negative pause", method: "POST", path: "/v1/updates", body: `{"group":"g","strategy":"rolling","batch_size":1,"pause":"-1s"}`,
			wantCode: 400, wantBody: []string{"pause and --bake must not be negative"}},
		{name: "replace-all without a signal timeout", method: "POST", path: "/v1/updates", body: `{"group":"g","strategy":"replace-all","batch_size":1}`,
			wantCode: 400, wantBody: []string{"signal-timeout must be positive"}},
		{name: "busy", method: "POST", path: "/v1/updates", body: okRequest,
			nextErr:  fmt.Errorf("group g: update upd-b is Running: %w (wait for it, or abort it with handover update --abort upd-b)", update.ErrBusy),
			wantCode: 409, wantCalls: []string{"start g"}, wantBody: []string{"upd-b is Running", "handover update --abort upd-b"}},
		{name: "start fails", method: "POST", path: "/v1/updates", body: okRequest,
			nextErr:  errors.New("group g does not exist: check --group (and --region)"),
			wantCode: 400, wantCalls: []string{"start g"}, wantBody: []string{"group g does not exist"}},
		{
			name: "dry run", method: "POST", path: "/v1/updates?dry_run=true", body: okRequest,
			wantCode: 200, wantCalls: []string{"plan g"},
			check: func(t *testing.T, _ *fakeUpdater, body []byte) {
				p := decode[update.Plan](t, body)
				if p.Group != "g" || len(p.Steps) != 1 || p.Steps[0].Instances[0].ID != "i-1" {
					t.Errorf("plan = %s", body)
				}
			},
		},
		{name: "dry run of an invalid request", method: "POST", path: "/v1/updates?dry_run=1", body: `{"group":"g","strategy":"rolling"}`,
			wantCode: 400, wantBody: []string{"batch-size"}},
		{name: "dry run fails", method: "POST", path: "/v1/updates?dry_run=true", body: okRequest, nextErr: errors.New("group g does not use a launch template"),
			wantCode: 400, wantCalls: []string{"plan g"}, wantBody: []string{"does not use a launch template"}},
		{
			name: "list", method: "GET", path: "/v1/updates", wantCode: 200,
			check: func(t *testing.T, _ *fakeUpdater, body []byte) {
				if got := updateIDs(decode[api.Updates](t, body).Updates); !slices.Equal(got, []string{"upd-a", "upd-b", "upd-c"}) {
					t.Errorf("updates = %v, want all three oldest first", got)
				}
			},
		},
		{
			name: "list of a group", method: "GET", path: "/v1/updates?group=g", wantCode: 200,
			check: func(t *testing.T, _ *fakeUpdater, body []byte) {
				if got := updateIDs(decode[api.Updates](t, body).Updates); !slices.Equal(got, []string{"upd-a", "upd-b"}) {
					t.Errorf("updates = %v, want upd-a, upd-b", got)
				}
			},
		},
		{
			name: "list unfinished", method: "GET", path: "/v1/updates?unfinished=true", wantCode: 200,
			check: func(t *testing.T, _ *fakeUpdater, body []byte) {
				if got := updateIDs(decode[api.Updates](t, body).Updates); !slices.Equal(got, []string{"upd-b"}) {
					t.Errorf("updates = %v, want upd-b", got)
				}
			},
		},
		{name: "list matching nothing is an empty list", method: "GET", path: "/v1/updates?group=h&unfinished=true", wantCode: 200,
			wantBody: []string{`"updates": []`}},
		{
			name: "show", method: "GET", path: "/v1/updates/upd-b", wantCode: 200,
			check: func(t *testing.T, _ *fakeUpdater, body []byte) {
				u := decode[api.Update](t, body)
				if u.Update == nil || u.ID != "upd-b" || u.State != ledger.UpdateRunning {
					t.Errorf("update = %s", body)
				}
				if got := migrationIDs(u.Migrations); !slices.Equal(got, []string{"m-fwd", "m-back"}) {
					t.Errorf("migrations = %v, want exactly m-fwd and its rollback m-back", got)
				}
			},
		},
		{name: "show of an update without migrations", method: "GET", path: "/v1/updates/upd-a", wantCode: 200, wantBody: []string{`"migrations": []`}},
		{name: "show of an unknown id", method: "GET", path: "/v1/updates/nope", wantCode: 404, wantBody: []string{"no update nope"}},
		{
			name: "abort", method: "POST", path: "/v1/updates/upd-b/abort", body: `{"reason":"bad build"}`,
			wantCode: 200, wantCalls: []string{"abort upd-b: bad build"},
			check: func(t *testing.T, _ *fakeUpdater, body []byte) {
				u := decode[api.Update](t, body)
				if u.Update == nil || u.State != ledger.UpdateRollingBack || !u.AbortRequested || u.Error != "bad build" {
					t.Errorf("update = %s", body)
				}
				if got := migrationIDs(u.Migrations); !slices.Equal(got, []string{"m-fwd", "m-back"}) {
					t.Errorf("migrations = %v, want m-fwd, m-back", got)
				}
			},
		},
		{name: "abort without a body", method: "POST", path: "/v1/updates/upd-b/abort", wantCode: 200, wantCalls: []string{"abort upd-b: aborted by request"}},
		{name: "abort with a malformed body", method: "POST", path: "/v1/updates/upd-b/abort", body: `{"reason":`,
			wantCode: 400, wantBody: []string{"decoding the abort request"}},
		{name: "abort past the point of no return", method: "POST", path: "/v1/updates/upd-b/abort",
			nextErr:  fmt.Errorf("update upd-b: every new instance signalled and the hooks are completing: %w; it will finish", update.ErrPastNoReturn),
			wantCode: 409, wantCalls: []string{"abort upd-b: aborted by request"}, wantBody: []string{"past its point of no return"}},
		{name: "abort of an unknown id", method: "POST", path: "/v1/updates/nope/abort", wantCode: 404,
			wantCalls: []string{"abort nope: aborted by request"}, wantBody: []string{"no update nope"}},
		{name: "abort fails", method: "POST", path: "/v1/updates/upd-b/abort", nextErr: errLedgerDown, wantCode: 503,
			wantCalls: []string{"abort upd-b: aborted by request"}, wantBody: []string{"aborting update: ledger down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, f := updatesServer(t, "")
			f.NextErr = tt.nextErr
			code, body := send(t, tt.method, srv.URL+tt.path, tt.body, "")
			if code != tt.wantCode {
				t.Errorf("%s %s = %d, want %d: %s", tt.method, tt.path, code, tt.wantCode, body)
			}
			for _, want := range tt.wantBody {
				if !strings.Contains(string(body), want) {
					t.Errorf("answer lacks %q: %s", want, body)
				}
			}
			if got := f.calls(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("updater calls = %q, want %q", got, tt.wantCalls)
			}
			if tt.check != nil {
				tt.check(t, f, body)
			}
		})
	}
}

// TestUpdatesAPIRejectsUnclearFlags: a query flag that is not a boolean
// must not be read as false. For dry_run that would start a real update
// when the caller asked only for a plan.
func TestUpdatesAPIRejectsUnclearFlags(t *testing.T) {
	tests := []struct {
		method, path, body string
	}{
		{"POST", "/v1/updates?dry_run=yes", okRequest},
		{"GET", "/v1/updates?unfinished=yes", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			srv, f := updatesServer(t, "")
			code, _ := send(t, tt.method, srv.URL+tt.path, tt.body, "")
			if code != http.StatusBadRequest || slices.Contains(f.calls(), "start g") {
				t.Fatalf("regression: %s %s = %d with updater calls %q; want 400 naming the parameter, and no update started",
					tt.method, tt.path, code, f.calls())
			}
		})
	}
}

func TestUpdatesAPIToken(t *testing.T) {
	tests := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/v1/updates", okRequest, 201},
		{"POST", "/v1/updates?dry_run=true", okRequest, 200},
		{"GET", "/v1/updates", "", 200},
		{"GET", "/v1/updates/upd-b", "", 200},
		{"POST", "/v1/updates/upd-b/abort", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			srv, f := updatesServer(t, "s3cret")
			for _, auth := range []string{"", "Bearer wrong", "s3cret"} {
				if code, body := send(t, tt.method, srv.URL+tt.path, tt.body, auth); code != http.StatusUnauthorized {
					t.Errorf("with Authorization %q: %d, want 401: %s", auth, code, body)
				}
			}
			if got := f.calls(); len(got) != 0 {
				t.Errorf("unauthorized requests reached the updater: %q", got)
			}
			if code, body := send(t, tt.method, srv.URL+tt.path, tt.body, "Bearer s3cret"); code != tt.want {
				t.Errorf("with the token: %d, want %d: %s", code, tt.want, body)
			}
		})
	}
}

// TestUpdatesNotServedWithoutUpdater: a controller without WithUpdates does
// not pretend to run updates.
func TestUpdatesNotServedWithoutUpdater(t *testing.T) {
	srv, _ := apiServer(t, "")
	for _, tt := range []struct{ method, path, body string }{
		{"POST", "/v1/updates", okRequest},
		{"GET", "/v1/updates", ""},
		{"GET", "/v1/updates/upd-b", ""},
		{"POST", "/v1/updates/upd-b/abort", ""},
	} {
		if code, body := send(t, tt.method, srv.URL+tt.path, tt.body, ""); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s = %d, want 404 or 405: %s", tt.method, tt.path, code, body)
		}
	}
}

// TestRunAdvancesUpdates: with an Updater, Run advances updates on its
// advance interval, and a failed pass does not stop the loop.
func TestRunAdvancesUpdates(t *testing.T) {
	d := newDaemon(t, &fakeEngine{}, &fakeQueue{}, func(c *Config) { c.AdvanceEvery, c.WaitTime = 5*time.Millisecond, 0 })
	f := &fakeUpdater{NextErr: errLedgerDown}
	d.WithUpdates(f)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	deadline := time.After(20 * time.Second)
	for len(f.calls()) < 3 {
		select {
		case <-deadline:
			t.Fatalf("after 20s the updater saw %q, want 3 advances", f.calls())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	for _, c := range f.calls() {
		if c != "advance" {
			t.Errorf("Run called %q, want only advances", c)
		}
	}
}
