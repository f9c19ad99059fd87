package daemon

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
)

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:7070", "", true},
		{"[::1]:7070", "", true},
		{"localhost:7070", "", true},
		{"0.0.0.0:7070", "", false},
		{":7070", "", false},
		{"10.0.0.5:7070", "", false},
		{"0.0.0.0:7070", "s3cret", true},
		{"no-port", "", false},
	}
	for _, tt := range tests {
		if err := CheckListen(tt.addr, tt.token); (err == nil) != tt.ok {
			t.Errorf("CheckListen(%q, %q) = %v, want ok=%v", tt.addr, tt.token, err, tt.ok)
		}
	}
}

// apiServer serves a daemon over a ledger holding one finished and one
// running migration of database orders.
func apiServer(t *testing.T, token string) (*httptest.Server, time.Time) {
	t.Helper()
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	led := memory.New()
	ctx := t.Context()
	done := &ledger.Migration{ID: "tok-1", Database: "orders", Group: "g", Hook: "handover", Instance: "i-1", State: ledger.Committed,
		CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Hour + 10*time.Second), StepStartedAt: now,
		Timeline: []ledger.Step{
			{State: ledger.Launching, Start: now.Add(-time.Hour), End: now.Add(-time.Hour + 2*time.Second)},
			{State: ledger.Fencing, Start: now.Add(-time.Hour + 2*time.Second), End: now.Add(-time.Hour + 10*time.Second), Note: "fenced"},
			{State: ledger.Committed, Start: now.Add(-time.Hour + 10*time.Second), End: now.Add(-time.Hour + 10*time.Second)},
		}}
	running := &ledger.Migration{ID: "tok-2", Database: "orders", Group: "g", Hook: "handover", Instance: "i-2", State: ledger.Snapshotting,
		CreatedAt: now.Add(-time.Minute), UpdatedAt: now, StepStartedAt: now,
		Timeline: []ledger.Step{{State: ledger.Snapshotting, Start: now.Add(-time.Minute)}}}
	for _, m := range []*ledger.Migration{done, running} {
		if err := led.CreateMigration(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := led.SaveDatabase(ctx, &ledger.Database{ID: "orders", Volume: "vol-1", Instance: "i-1", Epoch: 4, Claim: "tok-2"}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.QueueURL, cfg.Holder = "q", "controller-1"
	d, err := New(cfg, &fakeEngine{}, &fakeQueue{}, led, clock.NewFake(now), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler(token))
	t.Cleanup(srv.Close)
	return srv, now
}

func TestAPI(t *testing.T) {
	srv, _ := apiServer(t, "")
	c, err := api.NewClient(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	st, err := c.Status(ctx)
	if err != nil || st.Holder != "controller-1" || st.Unfinished != 1 || st.Migrations["Committed"] != 1 || st.Databases != 1 {
		t.Errorf("status = %+v, %v", st, err)
	}
	ms, err := c.Migrations(ctx, nil)
	if err != nil || len(ms) != 2 || ms[0].ID != "tok-2" || ms[1].DurationMS != 10000 {
		t.Errorf("migrations (newest first; the finished one took 10s) = %+v, %v", ms, err)
	}
	ms, err = c.Migrations(ctx, map[string][]string{"unfinished": {"true"}})
	if err != nil || len(ms) != 1 || ms[0].ID != "tok-2" || ms[0].DurationMS != 60000 {
		t.Errorf("unfinished migrations = %+v, %v", ms, err)
	}
	ms, err = c.Migrations(ctx, map[string][]string{"state": {"Committed"}})
	if err != nil || len(ms) != 1 || ms[0].ID != "tok-1" {
		t.Errorf("committed migrations = %+v, %v", ms, err)
	}
	if _, err := c.Migrations(ctx, map[string][]string{"state": {"Done"}}); err == nil || !strings.Contains(err.Error(), "Committed") {
		t.Errorf("unknown state: want an error listing the states, got %v", err)
	}
	m, err := c.Migration(ctx, "tok-1")
	if err != nil || len(m.Steps) != 3 || m.Steps[1].State != "Fencing" || m.Steps[1].DurationMS != 8000 || m.Steps[1].Note != "fenced" {
		t.Errorf("migration tok-1 = %+v, %v", m, err)
	}
	if _, err := c.Migration(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "handover migrations list") {
		t.Errorf("unknown migration: %v", err)
	}
	dbs, err := c.Databases(ctx)
	if err != nil || len(dbs) != 1 || dbs[0].Epoch != 4 || dbs[0].Claim != "tok-2" {
		t.Errorf("databases = %+v, %v", dbs, err)
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`handover_migrations{state="Committed"} 1`, `handover_migrations{state="Snapshotting"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestAPIToken(t *testing.T) {
	srv, _ := apiServer(t, "s3cret")
	get := func(path, auth string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		path, auth string
		want       int
	}{
		{"/v1/status", "", 401},
		{"/v1/status", "Bearer wrong", 401},
		{"/v1/status", "Bearer s3cret", 200},
		{"/metrics", "", 401},
		{"/healthz", "", 200},
		// The dashboard's page and assets hold no data: they load without
		// the token, and the page asks for it.
		{"/", "", 200},
		{"/ui/app.js", "", 200},
		{"/ui/no-such-file.js", "", 404},
		// Only "/" is the page: other paths are not the dashboard, and
		// keep needing the token.
		{"/v1/nothing", "", 401},
		{"/index.html", "", 401},
	}
	for _, tt := range tests {
		if got := get(tt.path, tt.auth); got != tt.want {
			t.Errorf("GET %s with %q = %d, want %d", tt.path, tt.auth, got, tt.want)
		}
	}
	c, _ := api.NewClient(srv.URL, "", nil)
	if _, err := c.Status(t.Context()); err == nil || !strings.Contains(err.Error(), "HANDOVER_API_TOKEN") {
		t.Errorf("client without a token: %v", err)
	}
}

// TestDashboardHeaders: the page is served with a policy that keeps it
// to its own origin, and its modules with a JavaScript type (browsers
// refuse a module of another type under nosniff).
func TestDashboardHeaders(t *testing.T) {
	srv, _ := apiServer(t, "s3cret")
	for path, want := range map[string]string{"/": "text/html", "/ui/app.js": "text/javascript", "/ui/style.css": "text/css"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
}

func TestWritePauseInSummary(t *testing.T) {
	srv, _ := apiServer(t, "")
	c, _ := api.NewClient(srv.URL, "", nil)
	m, err := c.Migration(t.Context(), "tok-1")
	if err != nil {
		t.Fatal(err)
	}
	// Fencing starts 2 s in, Committed 10 s in.
	if m.WritePauseMS != 8000 {
		t.Errorf("write pause %d ms, want 8000", m.WritePauseMS)
	}
	// Still running: the pause of a fenced migration grows with the clock.
	run, err := c.Migration(t.Context(), "tok-2")
	if err != nil {
		t.Fatal(err)
	}
	if run.WritePauseMS != 0 {
		t.Errorf("a migration that never fenced reports a write pause of %d ms", run.WritePauseMS)
	}
}
