package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/api"
	"github.com/handover-dev/handover/internal/clock"
	"github.com/handover-dev/handover/internal/ledger"
	"github.com/handover-dev/handover/internal/ledger/memory"
	"github.com/handover-dev/handover/internal/manifest"
	"github.com/handover-dev/handover/internal/release"
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

type fakeInstancer struct {
	insts []release.InstanceRelease
	err   error
	calls int
}

func (f *fakeInstancer) Instances(_ context.Context, channel string) ([]release.InstanceRelease, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return slices.Clone(f.insts), nil
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

	if rel.Instances != nil {
		t.Errorf("releases without a cloud to read: instances %+v, want none", rel.Instances)
	}
	// With the cloud's view: each channel's instances, sorted, read again
	// only once the last reading is old.
	fi := &fakeInstancer{insts: []release.InstanceRelease{
		{Group: "web", Instance: "i-2", Lifecycle: "InService", Releases: []string{"v2"}, Volumes: []string{"vol-2"}},
		{Group: "web", Instance: "i-1", Lifecycle: "InService", Releases: []string{"v1", "v2"}, Volumes: []string{"vol-1", "vol-3"}},
	}}
	d.WithReleaseInstances(fi)
	getJSON(t, h, api.PathReleases, 200, &rel)
	getJSON(t, h, api.PathReleases, 200, &rel)
	if len(rel.Instances) != 1 || rel.Instances[0].Channel != "web" || len(rel.Instances[0].Instances) != 2 ||
		rel.Instances[0].Instances[0].Instance != "i-1" || !slices.Equal(rel.Instances[0].Instances[0].Releases, []string{"v1", "v2"}) || rel.Instances[0].Error != "" {
		t.Errorf("release instances: %+v", rel.Instances)
	}
	if fi.calls != 1 {
		t.Errorf("two reads within %s listed the cloud %d times, want once", releaseInstancesAge, fi.calls)
	}
	fi.err = errors.New("DescribeVolumes: throttled")
	d.clk.(*clock.Fake).Advance(releaseInstancesAge)
	getJSON(t, h, api.PathReleases, 200, &rel)
	if len(rel.Instances) != 1 || !strings.Contains(rel.Instances[0].Error, "throttled") || rel.Instances[0].Instances == nil {
		t.Errorf("release instances after a failed read: %+v", rel.Instances)
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
