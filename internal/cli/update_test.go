package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/daemon"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/update"
)

// scriptedUpdater plays a controller running a two-batch rolling update of
// its group: each AdvanceAll moves every unfinished update one phase on
// (batch 1, bake, batch 2, done), storing a committed handover per batch in
// the ledger; with Fail the second batch fails and rolls back instead. Abort
// marks an update RollingBack; the next AdvanceAll ends it Aborted. Hang
// keeps updates running forever. Times are fixed, so the output is stable.
type scriptedUpdater struct {
	mu   sync.Mutex
	led  ledger.Ledger
	Fail bool
	Hang bool
	// NextErr is returned, once, by the next Plan, Start or Abort.
	NextErr error
	Calls   []string // "plan g", "start g", "abort ID: why"
	Starts  []update.Request
	n       int
}

var _ daemon.Updater = (*scriptedUpdater)(nil)

var scriptStart = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func (f *scriptedUpdater) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.NextErr, f.Calls, f.Starts = nil, nil, nil
}

func (f *scriptedUpdater) call(s string) error {
	f.Calls = append(f.Calls, s)
	err := f.NextErr
	f.NextErr = nil
	return err
}

func (f *scriptedUpdater) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Calls)
}

func (f *scriptedUpdater) Plan(_ context.Context, req update.Request) (update.Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("plan " + req.Group); err != nil {
		return update.Plan{}, err
	}
	return update.Plan{Group: req.Group, Strategy: req.Strategy, Capacity: 2,
		From: ledger.TemplateRef{Name: "lt", Version: "7"}, To: ledger.TemplateRef{Name: "lt", Version: "8"},
		Steps: []update.PlanStep{
			{Phase: update.PhaseBatch, Batch: 1, Instances: []update.PlanInstance{{ID: "i-old-1", Zone: "us-east-1a", Database: "db-1"}}, WaitsFor: "its handover and health"},
			{Phase: update.PhaseBatch, Batch: 2, Instances: []update.PlanInstance{{ID: "i-old-2", Database: "db-2"}}, WaitsFor: "its handover and health"},
		}}, nil
}

func (f *scriptedUpdater) Start(ctx context.Context, req update.Request) (*ledger.Update, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("start " + req.Group); err != nil {
		return nil, err
	}
	f.Starts = append(f.Starts, req)
	f.n++
	u := &ledger.Update{ID: fmt.Sprintf("upd-%d", f.n), Group: req.Group, State: ledger.UpdateRunning, Phase: update.PhaseBatch.String(),
		Spec:        ledger.UpdateSpec{Strategy: req.Strategy, Template: ledger.TemplateRef{Name: "lt", Version: "8"}, BatchSize: req.BatchSize},
		OldTemplate: ledger.TemplateRef{Name: "lt", Version: "7"}, OldDesired: 2,
		Batches: [][]string{{"i-old-1"}, {"i-old-2"}}, CreatedAt: scriptStart, UpdatedAt: scriptStart,
		Timeline: []ledger.UpdateStep{{Phase: update.PhaseBatch.String(), Start: scriptStart, Note: "batch 1: i-old-1"}}}
	if err := f.led.CreateUpdate(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

func (f *scriptedUpdater) Abort(ctx context.Context, id, why string) (*ledger.Update, error) {
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
	f.enter(u, update.PhaseRollback, "abort requested")
	return u, f.led.SaveUpdate(ctx, u)
}

// enter ends the current phase a minute after it began and starts the next.
func (f *scriptedUpdater) enter(u *ledger.Update, phase update.Phase, note string) {
	at := scriptStart.Add(time.Duration(len(u.Timeline)) * time.Minute)
	if n := len(u.Timeline); n > 0 {
		u.Timeline[n-1].End = at
	}
	u.Phase, u.UpdatedAt = phase.String(), at
	if phase == update.PhaseDone {
		u.EndedAt = at
		return
	}
	u.Timeline = append(u.Timeline, ledger.UpdateStep{Phase: phase.String(), Start: at, Note: note})
}

// handover stores a committed migration that took 12s, caused by update.
func (f *scriptedUpdater) handover(ctx context.Context, id, update string, batch int) error {
	at := scriptStart.Add(time.Duration(batch) * time.Minute)
	return f.led.CreateMigration(ctx, &ledger.Migration{ID: id, Update: update, Database: fmt.Sprintf("db-%d", batch+1),
		Group: "g", Instance: fmt.Sprintf("i-new-%d", batch+1), State: ledger.Committed, CreatedAt: at, UpdatedAt: at.Add(12 * time.Second)})
}

func (f *scriptedUpdater) AdvanceAll(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Hang {
		return nil
	}
	us, err := f.led.ListUpdates(ctx, ledger.UpdateQuery{Unfinished: true})
	if err != nil {
		return err
	}
	for _, u := range us {
		if err := f.advance(ctx, u); err != nil {
			return err
		}
		if err := f.led.SaveUpdate(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

func (f *scriptedUpdater) advance(ctx context.Context, u *ledger.Update) error {
	switch {
	case u.State == ledger.UpdateRollingBack:
		u.State = ledger.UpdateAborted
		if f.Fail {
			u.State = ledger.UpdateFailed
		}
		f.enter(u, update.PhaseDone, "")
	case u.Phase == update.PhaseBatch.String() && u.Batch == 0:
		f.enter(u, update.PhaseBake, "watching i-new-1")
		return f.handover(ctx, u.ID+"-m1", u.ID, 0)
	case u.Phase == update.PhaseBake.String():
		u.Batch = 1
		f.enter(u, update.PhaseBatch, "batch 2: i-old-2")
	case u.Phase == update.PhaseBatch.String() && f.Fail:
		u.State, u.Error = ledger.UpdateRollingBack, "batch 2: handover of db-2 rolled back twice: the new version is not coming up"
		f.enter(u, update.PhaseRollback, "putting i-old-1 back")
		return f.handover(ctx, u.ID+"-r1", u.ID+"#rollback", 2)
	case u.Phase == update.PhaseBatch.String():
		u.State = ledger.UpdateSucceeded
		f.enter(u, update.PhaseDone, "")
		return f.handover(ctx, u.ID+"-m2", u.ID, 1)
	}
	return nil
}

// updateAPI serves a controller API whose updates move one phase on each
// time one is read, as if the controller advanced them between polls.
func updateAPI(t *testing.T, f *scriptedUpdater) string {
	t.Helper()
	led := memory.New()
	f.led = led
	cfg := daemon.DefaultConfig()
	cfg.QueueURL, cfg.Holder = "q", "controller-1"
	d, err := daemon.New(cfg, idleEngine{}, idleQueue{}, led, clock.NewFake(scriptStart), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.WithUpdates(f)
	h := d.Handler("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, api.PathUpdates+"/") {
			if err := f.AdvanceAll(r.Context()); err != nil {
				t.Errorf("advancing updates: %v", err)
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

const succeededTimeline = `update upd-1 of group g (rolling): Succeeded in 3m0s
launch template version 7 -> 8

PHASE  DURATION  NOTE
batch  1m0s      batch 1: i-old-1
bake   1m0s      watching i-new-1
batch  1m0s      batch 2: i-old-2

HANDOVER  DATABASE  NEW INSTANCE  STATE      DURATION
upd-1-m1  db-1      i-new-1       Committed  12s
upd-1-m2  db-2      i-new-2       Committed  12s
`

func TestUpdateFollowsToSuccess(t *testing.T) {
	f := &scriptedUpdater{}
	url := updateAPI(t, f)
	out, errs, code := run(t, "update", "--group", "g", "--pause", "30s", "--poll", "10ms", "--api", url)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if out != succeededTimeline {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, succeededTimeline)
	}
	for _, want := range []string{
		"update: upd-1 Running: batch 1/2; 0 of 0 handovers committed",
		"update: upd-1 Running: bake 1/2; 1 of 1 handovers committed",
		"update: upd-1 Running: batch 2/2; 1 of 1 handovers committed",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("progress lacks %q:\n%s", want, errs)
		}
	}
	// The flags' defaults reach the controller; the migration timeout only
	// with a migration group.
	want := update.Request{Group: "g", Strategy: update.Rolling, BatchSize: 1, MinHealthyPercent: 90, Pause: 30 * time.Second, SignalTimeout: 15 * time.Minute}
	if len(f.Starts) != 1 || f.Starts[0] != want {
		t.Errorf("the controller was asked for %+v, want %+v", f.Starts, want)
	}
}

func TestUpdateOutputJSON(t *testing.T) {
	f := &scriptedUpdater{}
	url := updateAPI(t, f)
	out, errs, code := run(t, "update", "--group", "g", "--poll", "10ms", "--output", "json", "--api", url)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var u api.Update
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
	}
	if u.Update == nil || u.ID != "upd-1" || u.State != ledger.UpdateSucceeded || len(u.Timeline) != 3 || len(u.Migrations) != 2 {
		t.Errorf("final update = %s", out)
	}
}

func TestUpdateThatFailsExits1(t *testing.T) {
	f := &scriptedUpdater{Fail: true}
	url := updateAPI(t, f)
	out, errs, code := run(t, "update", "--group", "g", "--poll", "10ms", "--api", url)
	const why = "batch 2: handover of db-2 rolled back twice: the new version is not coming up"
	if code != 1 || !strings.Contains(errs, "handover: update upd-1 failed: "+why) {
		t.Errorf("exit %d, stderr:\n%s\nwant 1 and the update's error", code, errs)
	}
	for _, want := range []string{": Failed in 4m0s", "why: " + why, "rollback  1m0s      putting i-old-1 back", "upd-1-r1"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

func TestUpdateDryRun(t *testing.T) {
	f := &scriptedUpdater{}
	url := updateAPI(t, f)
	out, errs, code := run(t, "update", "--group", "g", "--dry-run", "--api", url)
	want := `plan: rolling update of group g (2 instances) from launch template version 7 to 8
1. batch 1
     i-old-1  us-east-1a  database db-1
     waits for: its handover and health
2. batch 2
     i-old-2  -  database db-2
     waits for: its handover and health
nothing was changed (dry run)
`
	if code != 0 || out != want {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s%s", code, out, want, errs)
	}
	out, errs, code = run(t, "update", "--group", "g", "--dry-run", "--output", "json", "--api", url)
	var p update.Plan
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Capacity != 2 || len(p.Steps) != 2 {
		t.Errorf("--output json: exit %d\n%s%s", code, out, errs)
	}
	if got := f.calls(); !slices.Equal(got, []string{"plan g", "plan g"}) {
		t.Errorf("controller calls %q, want two plans and no start", got)
	}
}

func TestUpdateDetachThenAbort(t *testing.T) {
	f := &scriptedUpdater{}
	url := updateAPI(t, f)
	out, errs, code := run(t, "update", "--group", "g", "--detach", "--api", url)
	if code != 0 || out != "update upd-1 of group g: Running (batch)\n" {
		t.Fatalf("--detach: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = run(t, "update", "--abort", "upd-1", "--poll", "10ms", "--api", url)
	if code != 1 || !strings.Contains(errs, "update upd-1 aborted: aborted with handover update --abort") {
		t.Errorf("--abort: exit %d, stderr:\n%s\nwant 1 naming the abort", code, errs)
	}
	if !strings.Contains(out, ": Aborted in ") || !strings.Contains(out, "rollback") {
		t.Errorf("--abort stdout:\n%s", out)
	}
	if got := f.calls(); !slices.Equal(got, []string{"start g", "abort upd-1: aborted with handover update --abort"}) {
		t.Errorf("controller calls %q", got)
	}
}

func TestUpdateAbortRefused(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		nextErr error
		want    string
	}{
		{"unknown id", "nope", nil, "no update nope"},
		{"past the point of no return", "upd-1", fmt.Errorf("update upd-1: every new instance signalled: %w; it will finish", update.ErrPastNoReturn), "past its point of no return; it will finish"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &scriptedUpdater{}
			url := updateAPI(t, f)
			if _, errs, code := run(t, "update", "--group", "g", "--detach", "--api", url); code != 0 {
				t.Fatalf("starting: %d %s", code, errs)
			}
			f.NextErr = tt.nextErr
			_, errs, code := run(t, "update", "--abort", tt.id, "--api", url)
			if code == 0 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want an error containing %q", code, errs, tt.want)
			}
		})
	}
}

// runSafely is run for a command that might panic.
func runSafely(t *testing.T, args ...string) (stdout, stderr string, code int, panicked any) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	stdout, stderr, code = run(t, args...)
	return
}

func TestUpdateBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no group", []string{"update"}, "--group is required (or --abort ID)"},
		{"unknown strategy", []string{"update", "--group", "g", "--strategy", "blue-green"}, `--strategy "blue-green" is not rolling or replace-all`},
		{"batch size 0", []string{"update", "--group", "g", "--batch-size", "0"}, "--batch-size must be at least 1"},
		{"migration group is the group", []string{"update", "--group", "g", "--migration-group", "g"}, "--migration-group must name another group"},
		{"unknown output", []string{"update", "--group", "g", "--output", "yaml"}, "unknown output"},
		{"arguments", []string{"update", "g"}, "unknown command"},
		{"zero poll", []string{"update", "--group", "g", "--poll", "0"}, "--poll"},
		{"negative poll", []string{"update", "--group", "g", "--poll", "-1s"}, "--poll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &scriptedUpdater{}
			url := updateAPI(t, f)
			_, errs, code, panicked := runSafely(t, append(tt.args, "--api", url)...)
			started := slices.Contains(f.calls(), "start g")
			if panicked != nil || code != 2 || started || !strings.Contains(errs, tt.want) {
				if strings.Contains(tt.name, "poll") {
					t.Fatalf("regression: %v: exit %d, panic %v, update started %v; want exit 2 naming --poll before anything starts", tt.args, code, panicked, started)
				}
				t.Errorf("exit %d, stderr %q, update started %v; want 2, %q and nothing started", code, errs, started, tt.want)
			}
		})
	}
}

// TestUpdateCtrlCStopsFollowing: ending the command leaves the update
// running and says how to find or abort it.
func TestUpdateCtrlCStopsFollowing(t *testing.T) {
	f := &scriptedUpdater{Hang: true}
	url := updateAPI(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { // Ctrl-C once the update runs and has been polled a few times
		for !slices.Contains(f.calls(), "start g") {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	var out, errs bytes.Buffer
	code := Execute(ctx, []string{"update", "--group", "g", "--poll", "10ms", "--api", url}, &out, &errs)
	if code == 0 || !strings.Contains(errs.String(), "stopped following update upd-1 (it goes on") || !strings.Contains(errs.String(), "handover update --abort upd-1") {
		t.Errorf("exit %d, stderr:\n%s", code, errs.String())
	}
	if got := f.calls(); !slices.Equal(got, []string{"start g"}) {
		t.Errorf("controller calls %q, want only the start", got)
	}
}

func TestUpdatesListAndShow(t *testing.T) {
	f := &scriptedUpdater{}
	url := updateAPI(t, f)
	if _, errs, code := run(t, "update", "--group", "g", "--poll", "10ms", "--api", url); code != 0 {
		t.Fatalf("update: %d %s", code, errs)
	}
	f.Fail = true
	if _, errs, code := run(t, "update", "--group", "g", "--poll", "10ms", "--api", url); code != 1 {
		t.Fatalf("failing update: %d %s", code, errs)
	}

	out, errs, code := run(t, "updates", "list", "--api", url)
	want := `ID     GROUP  STRATEGY  STATE      PHASE  VERSION  STARTED               ERROR
upd-1  g      rolling   Succeeded  done   7->8     2026-11-26T09:00:00Z  
upd-2  g      rolling   Failed     done   7->8     2026-11-26T09:00:00Z  batch 2: handover of db-2 rolled back twice: the new version is not coming up
`
	if code != 0 || out != want {
		t.Errorf("updates list: exit %d\n%s\nwant:\n%s%s", code, out, want, errs)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"group", []string{"--group", "g"}, []string{"upd-1", "upd-2"}},
		{"other group", []string{"--group", "h"}, nil},
		{"unfinished", []string{"--unfinished"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := run(t, append([]string{"updates", "list", "--output", "json", "--api", url}, tt.args...)...)
			var us api.Updates
			if code != 0 || json.Unmarshal([]byte(out), &us) != nil {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			var ids []string
			for _, u := range us.Updates {
				ids = append(ids, u.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("updates %v, want %v", ids, tt.want)
			}
		})
	}

	out, errs, code = run(t, "updates", "show", "upd-1", "--api", url)
	if code != 0 || out != succeededTimeline {
		t.Errorf("updates show: exit %d\n%s\nwant:\n%s%s", code, out, succeededTimeline, errs)
	}
	out, errs, code = run(t, "updates", "show", "upd-2", "--output", "json", "--api", url)
	var u api.Update
	if code != 0 || json.Unmarshal([]byte(out), &u) != nil || u.State != ledger.UpdateFailed || len(u.Migrations) != 2 || u.Migrations[1].ID != "upd-2-r1" {
		t.Errorf("updates show --output json: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code := run(t, "updates", "show", "nope", "--api", url); code == 0 || !strings.Contains(errs, "no update nope") {
		t.Errorf("show of an unknown id: exit %d, %s", code, errs)
	}
	if _, errs, code := run(t, "updates", "show", "--api", url); code == 0 || !strings.Contains(errs, "accepts 1 arg") {
		t.Errorf("show without an id: exit %d, %s", code, errs)
	}
}

func TestSignalRefusesBadStatus(t *testing.T) {
	// Should a bad status get past the check, keep it from reaching AWS.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	for _, status := range []string{"MAYBE", "", "OK"} {
		_, errs, code := run(t, "signal", "--status", status, "--instance", "i-1", "--region", "us-east-1")
		if code != 2 || !strings.Contains(errs, "must be SUCCESS or FAILURE") {
			t.Errorf("--status %q: exit %d, %q; want 2 naming SUCCESS and FAILURE", status, code, errs)
		}
	}
}

func TestWaitOK(t *testing.T) {
	var hits atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(flaky.Close)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		want    []string // substrings of the error; none: success
	}{
		{"200 after a few 503s", flaky.URL, 10 * time.Second, nil},
		{"never 200", down.URL + "/healthz", time.Second, []string{down.URL + "/healthz did not answer 200 within 1s", "last: 503 Service Unavailable"}},
		{"nothing listening", gone.URL, 2 * time.Second, []string{gone.URL + " did not answer 200", "connection refused"}},
		{"not a URL", "://nowhere", time.Second, []string{`--wait-url "://nowhere"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := waitOK(t.Context(), tt.url, tt.timeout)
			if tt.want == nil {
				if err != nil || hits.Load() != 4 {
					t.Errorf("waitOK = %v after %d requests, want nil after 4", err, hits.Load())
				}
				return
			}
			if err == nil {
				t.Fatal("waitOK = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if took := time.Since(start); took > tt.timeout+5*time.Second {
				t.Errorf("waitOK took %s with a %s timeout", took, tt.timeout)
			}
		})
	}
}
