package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/manifest"
)

func getJSON(t *testing.T, h http.Handler, path string, want int, into any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != want {
		t.Fatalf("GET %s = %d, want %d: %s", path, rec.Code, want, rec.Body.String())
	}
	if into != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
}

// TestDashboardEndpoints: the /v1 documents the dashboard added.
func TestDashboardEndpoints(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	led := memory.New()
	ctx := t.Context()
	if err := led.SaveChannel(ctx, &ledger.Channel{ID: "web", Latest: "v2", Previous: "v1", UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v1", "v2"} {
		if err := led.CreateRelease(ctx, &ledger.Release{ID: ledger.ReleaseID("web", name), Channel: "web", Name: name, State: ledger.ReleasePublished, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	op := &ledger.EnvOp{ID: "env-1", Environment: "staging", Op: "clone", State: ledger.UpdateRunning, Phase: "verify", CreatedAt: now,
		Cloning: &ledger.EnvClone{Dest: "staging-2",
			Manifests: []ledger.EnvManifest{{Database: "orders", Hash: "abc", Files: 1, Entries: []manifest.Entry{{Path: "a"}}}},
			Objects:   []ledger.EnvObjects{{Bucket: "b", Count: 1, Sums: map[string]string{"k": "s"}}},
			Verify:    &ledger.EnvVerify{State: "passed", StartedAt: now}}}
	if err := led.CreateEnvOp(ctx, op); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.QueueURL, cfg.Holder = "https://sqs.local/000000000000/events", "controller-1"
	d, err := New(cfg, &fakeEngine{}, &fakeQueue{}, led, clock.NewFake(now), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.showDeadLetter("https://sqs.local/000000000000/events-dlq")
	h := d.Handler("")

	var st api.Status
	getJSON(t, h, api.PathStatus, 200, &st)
	if st.Leases == nil {
		t.Error("status has no leases list (want [] when none)")
	}
	if st.EventsQueue == nil || st.EventsQueue.URL != cfg.QueueURL || st.DeadLetterQueue == nil || st.DeadLetterQueue.URL == "" {
		t.Errorf("status queues: %+v, %+v", st.EventsQueue, st.DeadLetterQueue)
	}

	// Every holder's leases, not only this process's; the expired one and
	// the released one are nobody's.
	var ls api.Leases
	getJSON(t, h, api.PathLeases, 200, &ls)
	if ls.Leases == nil || len(ls.Leases) != 0 {
		t.Errorf("leases with none taken: %+v (want [])", ls)
	}
	for _, a := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"update/u1", "controller-2", time.Minute}, {"migration/m1", "controller-1", time.Minute}, {"old", "controller-3", -time.Second}, {"gone", "controller-3", time.Minute}} {
		at := now
		if a.ttl < 0 {
			at, a.ttl = now.Add(-time.Minute), 30*time.Second
		}
		l, err := led.AcquireLease(ctx, a.name, a.holder, at, a.ttl)
		if err != nil {
			t.Fatal(err)
		}
		if a.name == "gone" {
			if err := led.ReleaseLease(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
	}
	getJSON(t, h, api.PathLeases, 200, &ls)
	if len(ls.Leases) != 2 || ls.Leases[0].Name != "migration/m1" || ls.Leases[0].Holder != "controller-1" ||
		ls.Leases[1].Name != "update/u1" || ls.Leases[1].Holder != "controller-2" || !ls.Leases[1].Expires.Equal(now.Add(time.Minute)) || !ls.At.Equal(now) {
		t.Errorf("leases: %+v", ls)
	}

	var rel api.Releases
	getJSON(t, h, api.PathReleases, 200, &rel)
	if len(rel.Channels) != 1 || rel.Channels[0].Latest != "v2" || len(rel.Releases) != 2 {
		t.Errorf("releases: %+v", rel)
	}

	var ops api.EnvOps
	getJSON(t, h, api.PathEnvs, 200, &ops)
	if len(ops.Ops) != 1 || ops.Ops[0].Dest != "staging-2" || ops.Ops[0].Verify != "passed" {
		t.Errorf("env ops: %+v", ops)
	}
	var one api.EnvOp
	getJSON(t, h, api.PathEnvs+"/env-1", 200, &one)
	if one.EnvOp == nil || one.Cloning == nil || len(one.Cloning.Manifests) != 1 || one.Cloning.Manifests[0].Entries != nil || one.Cloning.Objects[0].Sums != nil {
		t.Errorf("env op detail not trimmed: %+v", one.EnvOp)
	}
	if one.Cloning.Manifests[0].Hash != "abc" || one.Cloning.Objects[0].Count != 1 {
		t.Errorf("env op detail lost its digests: %+v", one.Cloning)
	}
	if stored, _ := led.GetEnvOp(ctx, "env-1"); len(stored.Cloning.Manifests[0].Entries) != 1 {
		t.Error("trimming changed the stored record")
	}
	getJSON(t, h, api.PathEnvs+"/nope", 404, nil)
}
