package daemon

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/replica"
)

// ReplicaStatuser reads a read replica's lag (`handover replica status`:
// *replica.Tool with the primary's master login).
type ReplicaStatuser interface {
	Status(ctx context.Context, id string) (*replica.Status, error)
}

// replicaHistory is how many readings of each replica /v1/replicas keeps.
const replicaHistory = 360

type replicaWatch struct {
	ids   []string
	r     ReplicaStatuser
	every time.Duration

	mu      sync.Mutex
	last    map[string]*replica.Status
	errs    map[string]string
	samples map[string][]api.ReplicaSample
}

// WithReplicas makes the daemon read the lag of each of ids every
// interval and serve it, with the readings of the last 360 intervals, at
// /v1/replicas. Call it before Run and Handler.
func (d *Daemon) WithReplicas(ids []string, r ReplicaStatuser, every time.Duration) {
	if len(ids) == 0 {
		return
	}
	if every <= 0 {
		every = 10 * time.Second
	}
	d.replicas = &replicaWatch{ids: slices.Clone(ids), r: r, every: every,
		last: map[string]*replica.Status{}, errs: map[string]string{}, samples: map[string][]api.ReplicaSample{}}
}

func (d *Daemon) watchReplicas(ctx context.Context) {
	w := d.replicas
	if w == nil {
		return
	}
	d.every(ctx, w.every, func(ctx context.Context) {
		for _, id := range w.ids {
			cctx, cancel := context.WithTimeout(ctx, w.every)
			st, err := w.r.Status(cctx, id)
			cancel()
			if ctx.Err() != nil {
				return
			}
			w.mu.Lock()
			if err != nil {
				w.errs[id] = err.Error()
			} else {
				w.errs[id] = ""
				w.last[id] = st
				s := append(w.samples[id], api.ReplicaSample{At: d.clk.Now(), LagBytes: st.LagBytes, LagSeconds: st.LagSeconds})
				if len(s) > replicaHistory {
					s = slices.Delete(s, 0, len(s)-replicaHistory)
				}
				w.samples[id] = s
			}
			w.mu.Unlock()
		}
	})
}

func (d *Daemon) serveReplicas(w http.ResponseWriter, _ *http.Request) {
	out := api.Replicas{Replicas: []api.ReplicaWatch{}}
	if rw := d.replicas; rw != nil {
		rw.mu.Lock()
		for _, id := range rw.ids {
			r := api.ReplicaWatch{ID: id, Error: rw.errs[id], Samples: append([]api.ReplicaSample{}, rw.samples[id]...)}
			if st := rw.last[id]; st != nil {
				r.Status = st
			}
			out.Replicas = append(out.Replicas, r)
		}
		rw.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, out)
}
