package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/env"
	"github.com/handover-dev/handover/internal/ledger"
)

// EnvRunner runs environment operations (*env.Runner): what the
// dashboard's abort button needs.
type EnvRunner interface {
	// Get returns the stored operation (ledger.ErrNotFound when absent).
	Get(ctx context.Context, id string) (*ledger.EnvOp, error)
	// Abort starts aborting op, as `handover env abort` does; safe to
	// repeat (an abort under way is returned as it is).
	Abort(ctx context.Context, op *ledger.EnvOp) (*ledger.EnvOp, error)
	// Advance moves the operation on under its lease; safe to repeat.
	Advance(ctx context.Context, id string) error
}

var _ EnvRunner = (*env.Runner)(nil)

// WithEnvs makes the daemon serve POST /v1/envs/{id}/abort and carry every
// abort to its end, whoever asked for it: an abort is advanced under the
// operation's lease, so a `handover env abort` following it keeps it, and
// the controller takes over if that process dies. Other operations are
// left to the commands that run them. Call it before Run and Handler.
func (d *Daemon) WithEnvs(r EnvRunner) { d.envs = r }

// aborting reports whether op is being aborted and not done: a clone or
// migration in the abort's phases (Aborting is set), or a standby asked to
// resume as an abort.
func abortingOp(op *ledger.EnvOp) bool {
	if op.State.Terminal() {
		return false
	}
	return op.Aborting != nil || (op.Op == env.OpStandby && op.ResumeRequested && op.Abort)
}

func (d *Daemon) advanceEnvAborts(ctx context.Context) {
	ops, err := d.led.ListEnvOps(ctx, ledger.EnvOpQuery{Unfinished: true})
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("listing environment operations", "err", err)
		}
		return
	}
	for _, op := range ops {
		if !abortingOp(op) {
			continue
		}
		if err := d.envs.Advance(ctx, op.ID); err != nil && ctx.Err() == nil {
			d.log.Warn("advancing the abort of an environment operation", "env-op-id", op.ID, "err", err)
		}
	}
}

func (d *Daemon) serveAbortEnv(w http.ResponseWriter, r *http.Request) {
	if d.envs == nil {
		writeJSON(w, http.StatusNotImplemented, api.Error{Error: "this controller does not run environment operations; run handover env abort"})
		return
	}
	var in api.AbortRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: "decoding the abort request: " + err.Error()})
		return
	}
	id := r.PathValue("id")
	op, err := d.envs.Get(r.Context(), id)
	if errors.Is(err, ledger.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no environment operation %q", id)})
		return
	}
	if err != nil {
		d.fail(w, "reading environment operation "+id, err)
		return
	}
	op, err = d.envs.Abort(r.Context(), op)
	switch {
	case errors.Is(err, env.ErrBadRequest), errors.Is(err, env.ErrBusy):
		writeJSON(w, http.StatusConflict, api.Error{Error: err.Error()})
		return
	case err != nil:
		d.fail(w, "aborting environment operation "+id, err)
		return
	}
	d.log.Info("environment operation abort asked through the API", "env-op-id", op.ID, "environment", op.Environment, "reason", in.Reason)
	writeJSON(w, http.StatusOK, api.TrimEnvOp(op))
}
