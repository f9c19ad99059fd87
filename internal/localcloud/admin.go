package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/handover-dev/handover/internal/localcloud/faults"
)

// AdminPrefix is where the admin API lives on the local cloud's endpoint.
const AdminPrefix = "/_localcloud/"

// RuleRequest is the body of POST /_localcloud/faults.
type RuleRequest struct {
	Service string  `json:"service"`
	Action  string  `json:"action,omitempty"`
	Kind    string  `json:"kind"`
	Rate    float64 `json:"rate,omitempty"`
	Count   int     `json:"count,omitempty"`
	// Delay is a Go duration ("2s").
	Delay string `json:"delay,omitempty"`
}

// adminHandler serves the admin API:
//
//	GET    /_localcloud/healthz
//	GET    /_localcloud/faults          list fault rules
//	POST   /_localcloud/faults          add one (RuleRequest) → the rule
//	DELETE /_localcloud/faults/ID       remove one
//	DELETE /_localcloud/faults          remove all
//	POST   /_localcloud/instances/ID/kill       kill its processes (a crash; EC2 state unchanged)
//	POST   /_localcloud/instances/ID/unhealthy  mark it Unhealthy in its Auto Scaling group
//	POST   /_localcloud/zones/ZONE/down|up      freeze a zone's instances and refuse work there, or undo
func (c *Cloud) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AdminPrefix+"healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeAdmin(w, http.StatusOK, map[string]any{"ok": true, "region": c.cfg.Region, "zones": c.cfg.Zones, "account": c.cfg.AccountID})
	})
	mux.HandleFunc("GET "+AdminPrefix+"faults", func(w http.ResponseWriter, _ *http.Request) {
		writeAdmin(w, http.StatusOK, c.Faults.Rules())
	})
	mux.HandleFunc("POST "+AdminPrefix+"faults", func(w http.ResponseWriter, r *http.Request) {
		var req RuleRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			adminError(w, http.StatusBadRequest, fmt.Errorf("parsing the fault rule: %w", err))
			return
		}
		rule := faults.Rule{Service: req.Service, Action: req.Action, Kind: req.Kind, Rate: req.Rate, Count: req.Count}
		if req.Delay != "" {
			d, err := time.ParseDuration(req.Delay)
			if err != nil {
				adminError(w, http.StatusBadRequest, fmt.Errorf("delay %q: %w (use a Go duration such as 2s)", req.Delay, err))
				return
			}
			rule.Delay = d
		}
		added, err := c.Faults.Add(rule)
		if err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		writeAdmin(w, http.StatusCreated, added)
	})
	mux.HandleFunc("DELETE "+AdminPrefix+"faults", func(w http.ResponseWriter, _ *http.Request) {
		c.Faults.Clear()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE "+AdminPrefix+"faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !c.Faults.Remove(r.PathValue("id")) {
			adminError(w, http.StatusNotFound, fmt.Errorf("no fault rule %q (list them with GET %sfaults)", r.PathValue("id"), AdminPrefix))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+AdminPrefix+"instances/{id}/kill", func(w http.ResponseWriter, r *http.Request) {
		if err := c.EC2.KillProcesses(r.Context(), r.PathValue("id")); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		writeAdmin(w, http.StatusOK, map[string]string{"killed": r.PathValue("id")})
	})
	mux.HandleFunc("POST "+AdminPrefix+"instances/{id}/unhealthy", func(w http.ResponseWriter, r *http.Request) {
		if err := c.markUnhealthy(r.Context(), r.PathValue("id")); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		writeAdmin(w, http.StatusOK, map[string]string{"unhealthy": r.PathValue("id")})
	})
	mux.HandleFunc("POST "+AdminPrefix+"zones/{zone}/{state}", func(w http.ResponseWriter, r *http.Request) {
		state := r.PathValue("state")
		if state != "down" && state != "up" {
			adminError(w, http.StatusNotFound, fmt.Errorf("zones/%s/%s: use down or up", r.PathValue("zone"), state))
			return
		}
		if err := c.EC2.SetZoneDown(r.PathValue("zone"), state == "down"); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		writeAdmin(w, http.StatusOK, map[string]string{"zone": r.PathValue("zone"), "state": state})
	})
	mux.HandleFunc(AdminPrefix, func(w http.ResponseWriter, r *http.Request) {
		adminError(w, http.StatusNotFound, fmt.Errorf("no admin endpoint %s %s; see `handover localcloud --help`", r.Method, strings.TrimPrefix(r.URL.Path, AdminPrefix)))
	})
	return mux
}

func writeAdmin(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func adminError(w http.ResponseWriter, status int, err error) {
	writeAdmin(w, status, map[string]string{"error": err.Error()})
}

// markUnhealthy calls Auto Scaling's SetInstanceHealth in-process, so the
// instance is replaced exactly as one that failed its health check.
func (c *Cloud) markUnhealthy(ctx context.Context, id string) error {
	form := url.Values{"Action": {"SetInstanceHealth"}, "Version": {"2011-01-01"}, "InstanceId": {id},
		"HealthStatus": {"Unhealthy"}, "ShouldRespectGracePeriod": {"false"}}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	c.AutoScaling.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		body, _ := io.ReadAll(rec.Body)
		return fmt.Errorf("marking %s unhealthy: %s", id, body)
	}
	return nil
}
