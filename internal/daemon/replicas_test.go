package daemon

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/replica"
)

// fakeReplicas answers each replica's status from a table; an id
// without an entry fails.
type fakeReplicas struct {
	mu   sync.Mutex
	lag  map[string]int64
	seen int
}

func (f *fakeReplicas) Status(_ context.Context, id string) (*replica.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen++
	lag, ok := f.lag[id]
	if !ok {
		return nil, errors.New("DB instance " + id + " not found")
	}
	return &replica.Status{Replica: id, Source: "db", State: "available", LagBytes: lag, LagSeconds: float64(lag) / 1000}, nil
}

func TestReplicaWatch(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.QueueURL = "q"
	d, err := New(cfg, &fakeEngine{}, &fakeQueue{}, memory.New(), clock.NewFake(now), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var none api.Replicas
	getJSON(t, d.Handler(""), api.PathReplicas, 200, &none)
	if none.Replicas == nil || len(none.Replicas) != 0 {
		t.Errorf("no --replica: %+v", none)
	}
	f := &fakeReplicas{lag: map[string]int64{"orders-rr": 2048}}
	d.WithReplicas([]string{"orders-rr", "gone-rr"}, f, time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { d.watchReplicas(ctx); close(done) }()
	var out api.Replicas
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		getJSON(t, d.Handler(""), api.PathReplicas, 200, &out)
		if len(out.Replicas) == 2 && len(out.Replicas[0].Samples) >= 3 {
			break
		}
	}
	cancel()
	<-done
	if len(out.Replicas) != 2 || out.Replicas[0].ID != "orders-rr" || len(out.Replicas[0].Samples) < 3 || out.Replicas[0].Samples[0].LagBytes != 2048 || out.Replicas[0].Error != "" {
		t.Fatalf("replicas %+v", out)
	}
	if r := out.Replicas[1]; r.ID != "gone-rr" || r.Error == "" || len(r.Samples) != 0 || r.Status != nil {
		t.Errorf("a replica that cannot be read: %+v", r)
	}
	// The history is bounded.
	d.replicas.mu.Lock()
	d.replicas.samples["orders-rr"] = make([]api.ReplicaSample, replicaHistory)
	d.replicas.mu.Unlock()
	ctx, cancel = context.WithCancel(t.Context())
	go func() {
		for {
			f.mu.Lock()
			n := f.seen
			f.mu.Unlock()
			if n > 20 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	d.watchReplicas(ctx)
	d.replicas.mu.Lock()
	defer d.replicas.mu.Unlock()
	if n := len(d.replicas.samples["orders-rr"]); n != replicaHistory {
		t.Errorf("%d readings kept, want %d", n, replicaHistory)
	}
}
