package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/update"
)

// Updater runs group updates (*update.Runner).
type Updater interface {
	Plan(ctx context.Context, req update.Request) (update.Plan, error)
	Start(ctx context.Context, req update.Request) (*ledger.Update, error)
	Abort(ctx context.Context, id, why string) (*ledger.Update, error)
	AdvanceAll(ctx context.Context) error
}

var _ Updater = (*update.Runner)(nil)

// WithUpdates makes the daemon advance group updates and serve
// /v1/updates. Call it before Run and Handler.
func (d *Daemon) WithUpdates(u Updater) { d.updates = u }

func (d *Daemon) advanceUpdates(ctx context.Context) {
	if err := d.updates.AdvanceAll(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("advancing updates", "err", err)
	}
}

func (d *Daemon) routeUpdates(mux *http.ServeMux) {
	if d.updates == nil {
		return
	}
	mux.HandleFunc("POST "+api.PathUpdates, d.serveStartUpdate)
	mux.HandleFunc("GET "+api.PathUpdates, d.serveUpdates)
	mux.HandleFunc("GET "+api.PathUpdates+"/{id}", d.serveUpdate)
	mux.HandleFunc("POST "+api.PathUpdates+"/{id}/abort", d.serveAbortUpdate)
}

func parseDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a duration like 90s or 15m", name, s)
	}
	return v, nil
}

// requestFrom turns the API document into an update request.
func requestFrom(r api.UpdateRequest) (update.Request, error) {
	q := update.Request{
		Group: r.Group, Strategy: r.Strategy, Version: r.LaunchTemplateVersion, ImageID: r.ImageID,
		BatchSize: r.BatchSize, MinHealthyPercent: r.MinHealthyPercent, MigrationGroup: r.MigrationGroup,
	}
	var errs []error
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"pause", r.Pause, &q.Pause}, {"bake", r.Bake, &q.Bake}, {"signal_timeout", r.SignalTimeout, &q.SignalTimeout}, {"migration_timeout", r.MigrationTimeout, &q.MigrationTimeout}} {
		v, err := parseDuration(d.name, d.in)
		errs = append(errs, err)
		*d.out = v
	}
	return q, errors.Join(errs...)
}

func (d *Daemon) serveStartUpdate(w http.ResponseWriter, r *http.Request) {
	var in api.UpdateRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: "decoding the update request: " + err.Error()})
		return
	}
	req, err := requestFrom(in)
	if err == nil {
		err = req.Validate()
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: err.Error()})
		return
	}
	dry, err := queryBool(r, "dry_run")
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: err.Error()})
		return
	}
	if dry {
		p, err := d.updates.Plan(r.Context(), req)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, p)
		return
	}
	u, err := d.updates.Start(r.Context(), req)
	switch {
	case errors.Is(err, update.ErrBusy):
		writeJSON(w, http.StatusConflict, api.Error{Error: err.Error()})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, api.Error{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, api.Update{Update: u, Migrations: []api.MigrationSummary{}})
}

func (d *Daemon) serveUpdates(w http.ResponseWriter, r *http.Request) {
	q := ledger.UpdateQuery{Group: r.URL.Query().Get("group")}
	var err error
	if q.Unfinished, err = queryBool(r, "unfinished"); err != nil {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: err.Error()})
		return
	}
	us, err := d.led.ListUpdates(r.Context(), q)
	if err != nil {
		d.fail(w, "listing updates", err)
		return
	}
	if us == nil {
		us = []*ledger.Update{}
	}
	writeJSON(w, http.StatusOK, api.Updates{Updates: us})
}

// updateDoc is an update with the migrations it caused, forward and back.
func (d *Daemon) updateDoc(ctx context.Context, u *ledger.Update) (api.Update, error) {
	ms, err := d.led.ListMigrations(ctx, ledger.MigrationQuery{})
	if err != nil {
		return api.Update{}, err
	}
	doc := api.Update{Update: u, Migrations: []api.MigrationSummary{}}
	now := d.clk.Now()
	for _, m := range ms {
		if m.Update == u.ID || m.Update == u.ID+"#rollback" {
			doc.Migrations = append(doc.Migrations, api.Summarize(m, now))
		}
	}
	return doc, nil
}

func (d *Daemon) serveUpdate(w http.ResponseWriter, r *http.Request) {
	u, err := d.led.GetUpdate(r.Context(), r.PathValue("id"))
	if errors.Is(err, ledger.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, api.Error{Error: "no update " + r.PathValue("id")})
		return
	}
	if err != nil {
		d.fail(w, "reading update", err)
		return
	}
	doc, err := d.updateDoc(r.Context(), u)
	if err != nil {
		d.fail(w, "listing the update's migrations", err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (d *Daemon) serveAbortUpdate(w http.ResponseWriter, r *http.Request) {
	var in api.AbortRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: "decoding the abort request: " + err.Error()})
		return
	}
	why := in.Reason
	if why == "" {
		why = "aborted by request"
	}
	u, err := d.updates.Abort(r.Context(), r.PathValue("id"), why)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		writeJSON(w, http.StatusNotFound, api.Error{Error: "no update " + r.PathValue("id")})
		return
	case errors.Is(err, update.ErrPastNoReturn):
		writeJSON(w, http.StatusConflict, api.Error{Error: err.Error()})
		return
	case err != nil:
		d.fail(w, "aborting update", err)
		return
	}
	doc, err := d.updateDoc(r.Context(), u)
	if err != nil {
		d.fail(w, "listing the update's migrations", err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

// queryBool reads a true/false query parameter; absent is false, anything
// else is an error rather than a silent false.
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q is not true or false", name, v)
	}
	return b, nil
}
