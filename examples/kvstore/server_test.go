package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/handover-dev/handover/examples/kvstore/store"
)

// instance is one running kvstore on a test server.
type instance struct {
	t   *testing.T
	url string
	hs  *httptest.Server
	st  *store.Store
}

func start(t *testing.T, dir string, epoch int64) *instance {
	t.Helper()
	return startWith(t, Config{DataDir: dir, Epoch: epoch})
}

func startWith(t *testing.T, cfg Config) *instance {
	t.Helper()
	dir := cfg.DataDir
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(st, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	in := &instance{t: t, url: hs.URL, hs: hs, st: st}
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	in.hs.Close()
	if err := in.st.Close(); err != nil {
		in.t.Error(err)
	}
}

// do sends a request and returns the status, a header and the body.
func (in *instance) do(method, path, body string) (int, http.Header, string) {
	in.t.Helper()
	req, err := http.NewRequest(method, in.url+path, strings.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	if strings.HasPrefix(path, "/admin/") {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		in.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (in *instance) want(method, path, body string, code int, wantBody string) {
	in.t.Helper()
	got, _, b := in.do(method, path, body)
	if got != code || (wantBody != "" && strings.TrimSpace(b) != wantBody) {
		in.t.Fatalf("%s %s = %d %q, want %d %q", method, path, got, b, code, wantBody)
	}
}

func TestKV(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir(), 0)
	steps := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/healthz", "", 200, ""},
		{"GET", "/kv/a", "", 404, ""},
		{"PUT", "/kv/a", "hello", 204, ""},
		{"GET", "/kv/a", "", 200, "hello"},
		{"PUT", "/kv/a", "world", 204, ""},
		{"GET", "/kv/a", "", 200, "world"},
		{"DELETE", "/kv/a", "", 204, ""},
		{"GET", "/kv/a", "", 404, ""},
		{"PUT", "/kv/big", strings.Repeat("x", store.MaxValueSize+1), 413, ""},
		{"PUT", "/kv/b", "1", 204, ""},
		{"GET", "/stats", "", 200, ""},
	}
	for _, s := range steps {
		in.want(s.method, s.path, s.body, s.code, s.want)
	}
	_, _, b := in.do("GET", "/stats", "")
	if !strings.Contains(b, `"keys":1`) || !strings.Contains(b, `"segments":1`) {
		t.Errorf("stats = %s", b)
	}
}

func TestRestartKeepsWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, dir, 0)
	in.want("PUT", "/kv/a", "1", 204, "")
	in.want("PUT", "/kv/b", "2", 204, "")
	in.want("DELETE", "/kv/a", "", 204, "")
	in.stop()
	in2 := start(t, dir, 0)
	in2.want("GET", "/kv/a", "", 404, "")
	in2.want("GET", "/kv/b", "", 200, "2")
}

func TestFence(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir(), 0)
	in.want("PUT", "/kv/a", "1", 204, "")
	in.want("POST", "/admin/fence", `{"epoch": 5}`, 200, `{"fenced":true,"epoch":5}`)

	code, h, _ := in.do("PUT", "/kv/a", "2")
	if code != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("PUT while fenced = %d, Retry-After %q; want 503 with Retry-After", code, h.Get("Retry-After"))
	}
	in.want("DELETE", "/kv/a", "", 503, "")
	in.want("GET", "/kv/a", "", 200, "1")

	in.want("POST", "/admin/fence", `{"epoch": 4}`, 409, "")
	in.want("POST", "/admin/unfence", `{"epoch": 6}`, 409, "")
	in.want("POST", "/admin/unfence", `{"epoch": 5}`, 200, `{"fenced":false,"epoch":5}`)
	in.want("PUT", "/kv/a", "3", 204, "")
	in.want("GET", "/kv/a", "", 200, "3")
	in.want("POST", "/admin/fence", `{"epoch": 4}`, 409, "")
}

// TestFenceLeavesHints checks that what a snapshot taken right after a
// fence copies lets the new instance index the volume from hints: the
// fence sealed the segment that held the writes and wrote its hint.
func TestFenceLeavesHints(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, dir, 0)
	in.want("PUT", "/kv/a", "1", 204, "")
	in.want("PUT", "/kv/b", "2", 204, "")
	in.want("POST", "/admin/fence", `{"epoch": 5}`, 200, "")
	if _, err := os.Stat(filepath.Join(dir, "seg-000001.hint")); err != nil {
		t.Fatalf("no hint for the sealed segment after the fence: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "seg-000002.log")); err != nil || fi.Size() != 0 {
		t.Fatalf("the fence did not start an empty segment: %v, %v", fi, err)
	}
	in.want("GET", "/kv/a", "", 200, "1")

	// The snapshot, on a new instance under the next epoch.
	snap := t.TempDir()
	for _, name := range []string{"seg-000001.log", "seg-000001.hint", "seg-000002.log", fenceFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(snap, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in2 := start(t, snap, 6)
	in2.want("GET", "/kv/a", "", 200, "1")
	in2.want("GET", "/kv/b", "", 200, "2")
	in2.want("PUT", "/kv/c", "3", 204, "")
}

// TestCorruptValueNotServed checks that a value whose bytes changed on
// disk is answered with an error, not with the bytes.
func TestCorruptValueNotServed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, dir, 0)
	in.want("PUT", "/kv/a", "good-value", 204, "")
	seg := filepath.Join(dir, "seg-000001.log")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] = 'X' // the last byte of a's value
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, body := in.do("GET", "/kv/a", "")
	if code != 500 || strings.Contains(body, "good-valu") {
		t.Fatalf("GET of a damaged value = %d %q, want 500 without the value", code, body)
	}
}

func TestFenceSurvivesRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		epoch     int64 // the epoch the restarted instance is started under
		wantFence bool
		wantEpoch string
	}{
		{"no epoch", 0, true, "7"},
		{"older epoch", 6, true, "7"},
		{"same epoch", 7, false, "7"},
		{"newer epoch", 8, false, "8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			in := start(t, dir, 0)
			in.want("PUT", "/kv/a", "1", 204, "")
			in.want("POST", "/admin/fence", `{"epoch": 7}`, 200, "")
			in.stop()

			in2 := start(t, dir, tt.epoch)
			in2.want("GET", "/kv/a", "", 200, "1")
			code := 204
			if tt.wantFence {
				code = 503
			}
			in2.want("PUT", "/kv/a", "2", code, "")
			in2.want("POST", "/admin/fence", `{"epoch": 6}`, 409, `{"error":"stale epoch","epoch":`+tt.wantEpoch+`}`)
			in2.stop()
			// Whatever it started with is persisted in turn.
			in3 := start(t, dir, 0)
			in3.want("PUT", "/kv/b", "2", code, "")
		})
	}
}

func TestUnfencePersisted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, dir, 0)
	in.want("POST", "/admin/fence", `{"epoch": 3}`, 200, "")
	in.want("POST", "/admin/unfence", `{"epoch": 3}`, 200, "")
	in.stop()
	in2 := start(t, dir, 0)
	in2.want("PUT", "/kv/a", "1", 204, "")
}

func TestConcurrentWritersOverHTTP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, dir, 0)
	const writers, each = 12, 15
	var mu sync.Mutex
	acked := map[string]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k, v := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("v%d", i)
				// A write refused while fenced is tried again, as a client
				// honouring 503 would: on a busy disk the fence's fsync can
				// outlast every writer's first attempt.
				for try := 0; try < 200; try++ {
					req, _ := http.NewRequest("PUT", in.url+"/kv/"+k, strings.NewReader(v))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						break
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusNoContent {
						mu.Lock()
						acked[k] = v
						mu.Unlock()
					}
					if resp.StatusCode != http.StatusServiceUnavailable {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	// A fence in the middle: every write acknowledged before or after it
	// must survive.
	in.want("POST", "/admin/fence", `{"epoch": 1}`, 200, "")
	in.want("POST", "/admin/unfence", `{"epoch": 1}`, 200, "")
	wg.Wait()
	in.stop()
	if len(acked) == 0 {
		t.Fatal("no write acknowledged")
	}
	in2 := start(t, dir, 0)
	for k, v := range acked {
		in2.want("GET", "/kv/"+k, "", 200, v)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	epochFile := filepath.Join(t.TempDir(), "epoch")
	if err := os.WriteFile(epochFile, []byte("12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    Config
		wantErr bool
	}{
		{"defaults", []string{"--data", "d"}, nil, Config{DataDir: "d", Listen: "127.0.0.1:8080"}, false},
		{"private ip", []string{"--data", "d"}, map[string]string{"HANDOVER_PRIVATE_IP": "10.0.0.5"}, Config{DataDir: "d", Listen: "10.0.0.5:8080"}, false},
		{"listen flag wins", []string{"--data", "d", "--listen", ":9"}, map[string]string{"HANDOVER_PRIVATE_IP": "10.0.0.5"}, Config{DataDir: "d", Listen: ":9"}, false},
		{"env epoch", []string{"--data", "d"}, map[string]string{"HANDOVER_EPOCH": "4"}, Config{DataDir: "d", Listen: "127.0.0.1:8080", Epoch: 4}, false},
		{"epoch file wins", []string{"--data", "d", "--epoch-file", epochFile}, map[string]string{"HANDOVER_EPOCH": "4"}, Config{DataDir: "d", Listen: "127.0.0.1:8080", EpochFile: epochFile, Epoch: 12}, false},
		{"state dir from env", nil, map[string]string{"HANDOVER_STATE_DIR": "/st"}, Config{DataDir: "/st", Listen: "127.0.0.1:8080"}, false},
		{"data flag wins over env", []string{"--data", "d"}, map[string]string{"HANDOVER_STATE_DIR": "/st"}, Config{DataDir: "d", Listen: "127.0.0.1:8080"}, false},
		{"no data", nil, nil, Config{}, true},
		{"empty data flag", []string{"--data", ""}, map[string]string{"HANDOVER_STATE_DIR": "/st"}, Config{}, true},
		{"bad epoch", []string{"--data", "d"}, map[string]string{"HANDOVER_EPOCH": "x"}, Config{}, true},
		{"missing epoch file", []string{"--data", "d", "--epoch-file", epochFile + "-no"}, nil, Config{}, true},
		{"start fenced from env", []string{"--data", "d"}, map[string]string{"HANDOVER_EPOCH": "4", "HANDOVER_START_FENCED": "1"}, Config{DataDir: "d", Listen: "127.0.0.1:8080", Epoch: 4, StartFenced: true}, false},
		{"start fenced flag", []string{"--data", "d", "--start-fenced"}, map[string]string{"HANDOVER_EPOCH": "4"}, Config{DataDir: "d", Listen: "127.0.0.1:8080", Epoch: 4, StartFenced: true}, false},
		{"start fenced off", []string{"--data", "d"}, map[string]string{"HANDOVER_EPOCH": "4", "HANDOVER_START_FENCED": "0"}, Config{DataDir: "d", Listen: "127.0.0.1:8080", Epoch: 4}, false},
		{"start fenced typo", []string{"--data", "d"}, map[string]string{"HANDOVER_EPOCH": "4", "HANDOVER_START_FENCED": "yes please"}, Config{}, true},
		{"start fenced without an epoch", []string{"--data", "d", "--start-fenced"}, nil, Config{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			tt.want.ShutdownTimeout = 30 * time.Second
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRunShutsDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--data", dir, "--listen", addr}, func(string) string { return "" }, slog.New(slog.DiscardHandler))
	}()
	var resp *http.Response
	for range 100 {
		req, _ := http.NewRequest("PUT", "http://"+addr+"/kv/a", strings.NewReader("1"))
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT = %d", resp.StatusCode)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	in := start(t, dir, 0)
	in.want("GET", "/kv/a", "", 200, "1")
}

// TestRelease: GET /release answers the release the agent started it from,
// which the release controller asks before a launch completes.
func TestRelease(t *testing.T) {
	for _, tt := range []struct {
		release    string
		wantStatus int
		wantBody   string
	}{
		{"v2", http.StatusOK, `"release":"v2"`},
		{"", http.StatusNotFound, "HANDOVER_RELEASE is not set"},
	} {
		in := startWith(t, Config{DataDir: t.TempDir(), Release: tt.release})
		status, _, body := in.do(http.MethodGet, "/release", "")
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
			t.Errorf("release %q: GET /release = %d %s, want %d with %s", tt.release, status, body, tt.wantStatus, tt.wantBody)
		}
	}
}
