package daemon

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/dashboard"
	"github.com/handover-dev/handover/internal/ledger"
)

// CheckListen refuses an API address off the loopback interface without a
// bearer token: the API tells anyone who can reach it which instances hold
// which databases.
func CheckListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("API address %q is not host:port: %w", addr, err)
	}
	if token != "" {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to serve the API on %s without a bearer token: set --api-token or HANDOVER_API_TOKEN, or listen on 127.0.0.1", addr)
}

// Handler serves the API and the dashboard. With a token, every path but
// /healthz and the dashboard's static assets requires
// "Authorization: Bearer <token>".
func (d *Daemon) Handler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathHealth, d.serveHealth)
	mux.HandleFunc("GET "+api.PathStatus, d.serveStatus)
	mux.HandleFunc("GET "+api.PathMigrations, d.serveMigrations)
	mux.HandleFunc("GET "+api.PathMigrations+"/{id}", d.serveMigration)
	mux.HandleFunc("GET "+api.PathDatabases, d.serveDatabases)
	d.routeUpdates(mux)
	d.routeDashboard(mux)
	mux.Handle("GET "+api.PathMetrics, promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{}))
	dashboard.Register(mux)
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The dashboard's page and assets hold no data; the page asks for
		// the token and sends it with every API call.
		if r.URL.Path != api.PathHealth && !dashboard.Public(r.URL.Path) && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="handover"`)
			writeJSON(w, http.StatusUnauthorized, api.Error{Error: "missing or wrong bearer token"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (d *Daemon) fail(w http.ResponseWriter, what string, err error) {
	d.log.Warn("api: "+what, "err", err)
	writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: what + ": " + err.Error()})
}

// serveHealth answers 200 while the ledger answers.
func (d *Daemon) serveHealth(w http.ResponseWriter, r *http.Request) {
	if _, err := d.led.ListDatabases(r.Context()); err != nil {
		d.fail(w, "reading the ledger", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (d *Daemon) serveStatus(w http.ResponseWriter, r *http.Request) {
	ms, err := d.led.ListMigrations(r.Context(), ledger.MigrationQuery{})
	if err != nil {
		d.fail(w, "listing migrations", err)
		return
	}
	dbs, err := d.led.ListDatabases(r.Context())
	if err != nil {
		d.fail(w, "listing databases", err)
		return
	}
	st := api.Status{Holder: d.cfg.Holder, StartedAt: d.started, Queue: d.cfg.QueueURL, Ledger: d.cfg.LedgerName,
		Migrations: map[string]int{}, Databases: len(dbs)}
	for _, m := range ms {
		st.Migrations[m.State.String()]++
		if !m.State.Terminal() {
			st.Unfinished++
		}
	}
	d.mu.Lock()
	c := d.status
	d.mu.Unlock()
	st.MessagesHandled, st.MessagesPoison, st.LastMessageAt, st.QueueLagSeconds = c.handled, c.poison, c.lastMessage, c.lag
	st.LastReconcileAt, st.LastReconcileError = c.lastReconcile, c.reconcileErr
	st.LastSweepAt, st.LastSweepError, st.SweptVolumes, st.SweptSnapshots = c.lastSweep, c.sweepErr, c.sweptVolumes, c.sweptSnapshots
	st.LastReleasePassAt, st.LastReleasePassError = c.lastReleasePass, c.releaseErr
	st.Leases = d.leases()
	st.EventsQueue, st.DeadLetterQueue = d.queueDepths(r.Context())
	writeJSON(w, http.StatusOK, st)
}

// serveMigrations lists migrations, newest first, filtered by the query
// parameters state, database and unfinished, at most limit (default 100).
func (d *Daemon) serveMigrations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lq := ledger.MigrationQuery{Database: q.Get("database")}
	if v := q.Get("unfinished"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: fmt.Sprintf("unfinished=%q is not true or false", v)})
			return
		}
		lq.Unfinished = b
	}
	var state ledger.State
	if v := q.Get("state"); v != "" {
		s, err := ledger.ParseState(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: fmt.Sprintf("%v; states are %s", err, stateNames())})
			return
		}
		state = s
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: fmt.Sprintf("limit=%q must be a positive integer", v)})
			return
		}
		limit = n
	}
	ms, err := d.led.ListMigrations(r.Context(), lq)
	if err != nil {
		d.fail(w, "listing migrations", err)
		return
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].CreatedAt.After(ms[j].CreatedAt) })
	out := api.Migrations{Migrations: []api.MigrationSummary{}}
	now := d.clk.Now()
	for _, m := range ms {
		if state != ledger.StateUnknown && m.State != state {
			continue
		}
		if len(out.Migrations) == limit {
			break
		}
		out.Migrations = append(out.Migrations, api.Summarize(m, now))
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) serveMigration(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	m, err := d.led.GetMigration(r.Context(), id)
	if errors.Is(err, ledger.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no migration %q; list them with `handover migrations list`", id)})
		return
	}
	if err != nil {
		d.fail(w, "reading migration "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Detail(m, d.clk.Now()))
}

func (d *Daemon) serveDatabases(w http.ResponseWriter, r *http.Request) {
	dbs, err := d.led.ListDatabases(r.Context())
	if err != nil {
		d.fail(w, "listing databases", err)
		return
	}
	sort.Slice(dbs, func(i, j int) bool { return dbs[i].ID < dbs[j].ID })
	out := api.Databases{Databases: make([]api.Database, 0, len(dbs))}
	for _, db := range dbs {
		out.Databases = append(out.Databases, api.FromDatabase(db))
	}
	writeJSON(w, http.StatusOK, out)
}

func stateNames() string {
	var names []string
	for _, s := range ledger.States() {
		names = append(names, s.String())
	}
	return strings.Join(names, ", ")
}
